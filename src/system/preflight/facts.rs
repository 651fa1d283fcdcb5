//! One snapshot of the host for the checks: rlimits, capabilities, memory, kernel, network
//! namespace, the `/proc/sys` values preflight looks at, the ports of the ephemeral range held
//! right now ([`super::held`]) and, when the conntrack table matters, whether this traffic is
//! really tracked ([`super::conntrack`]). Reading everything once keeps the checks pure
//! (tests build synthetic [`HostFacts`]) and the report consistent.
//!
//! [`HostFacts::read_at`] reads the `/proc` files (sysctls, `net/tcp*`, the kernel release)
//! under a root other than `/proc`: tests point it at a fake tree. Rlimits, capabilities and
//! memory always come from the live process.

use std::collections::BTreeMap;
use std::path::Path;

use super::conntrack::ConntrackProbe;
use super::held::{self, PortsHeld};
use crate::system::host::{
    CAP_SYS_RESOURCE, SysctlAccess, cgroup_memory, has_capability, in_initial_netns_at,
    mem_available, parse_kernel_version, sysctl_access_at,
};
use crate::system::limits::{NofileLimits, nofile_limits};
use crate::system::sysctl::{PROC, normalize_value, parse_numbers, read_sysctl_at};

/// The sysctls preflight reads.
pub const FACT_KEYS: &[&str] = &[
    "fs.file-max",
    "fs.file-nr",
    "fs.nr_open",
    "fs.epoll.max_user_watches",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_orphans",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_count",
    "net.ipv4.tcp_mem",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.core.netdev_max_backlog",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// Sysctls whose writability from here preflight reports (conntrack: "can this namespace
/// change them?").
pub const PROBED_KEYS: &[&str] = &[
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
];

/// What preflight knows about the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFacts {
    /// `getrlimit(RLIMIT_NOFILE)`; `None` if it could not be read.
    pub nofile: Option<NofileLimits>,
    /// `CAP_SYS_RESOURCE` in the effective set: the hard limit can be raised.
    pub cap_sys_resource: bool,
    /// `uname -r`.
    pub kernel_release: Option<String>,
    pub cores: usize,
    /// `MemAvailable`, bytes.
    pub mem_available: Option<u64>,
    /// Memory cgroup `(limit, usage)` bytes, when a limit is set.
    pub cgroup_memory: Option<(u64, u64)>,
    /// This is the initial network namespace (not a container / pod / `ip netns`).
    pub initial_netns: bool,
    /// Normalized values of [`FACT_KEYS`]; absent keys are missing.
    pub sysctls: BTreeMap<String, String>,
    /// Writability of [`PROBED_KEYS`] that exist.
    pub access: BTreeMap<String, SysctlAccess>,
    /// Ports of the ephemeral range held now (`None`: not readable).
    pub ports_held: Option<PortsHeld>,
    /// Whether this plan's traffic is tracked, measured (`None`: not probed — conntrack is
    /// not loaded, or its table is large enough anyway).
    pub conntrack_probe: Option<ConntrackProbe>,
}

impl HostFacts {
    /// Reads the live host.
    pub fn read() -> HostFacts {
        HostFacts::read_at(Path::new(PROC))
    }

    /// Reads the host with the `/proc` tree at `proc_root` (see the module docs).
    pub fn read_at(proc_root: &Path) -> HostFacts {
        let mut sysctls = BTreeMap::new();
        for key in FACT_KEYS {
            if let Ok(value) = read_sysctl_at(proc_root, key) {
                sysctls.insert((*key).to_owned(), normalize_value(&value));
            }
        }
        let access = PROBED_KEYS
            .iter()
            .filter(|k| sysctls.contains_key(**k))
            .map(|k| ((*k).to_owned(), sysctl_access_at(proc_root, k)))
            .collect();
        let mut facts = HostFacts {
            nofile: nofile_limits().ok(),
            cap_sys_resource: has_capability(CAP_SYS_RESOURCE),
            kernel_release: read_sysctl_at(proc_root, "kernel.osrelease")
                .ok()
                .filter(|r| !r.is_empty()),
            cores: crate::system::cores(),
            mem_available: mem_available().ok(),
            cgroup_memory: cgroup_memory(),
            initial_netns: in_initial_netns_at(proc_root),
            sysctls,
            access,
            ports_held: None,
            conntrack_probe: None,
        };
        facts.ports_held = held::read_for(proc_root, &facts);
        facts
    }

    /// The normalized value of sysctl `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.sysctls.get(name).map(String::as_str)
    }

    /// `net.ipv4.ip_local_port_range` as `(lo, hi)`, when readable.
    pub fn port_range(&self) -> Option<(u16, u16)> {
        self.get("net.ipv4.ip_local_port_range")
            .and_then(|v| crate::system::sysctl::parse_port_range(v).ok())
    }

    /// The first number of sysctl `name`.
    pub fn num(&self, name: &str) -> Option<u64> {
        self.nums(name).and_then(|v| v.first().copied())
    }

    /// All numbers of sysctl `name`.
    pub fn nums(&self, name: &str) -> Option<Vec<u64>> {
        self.get(name).and_then(parse_numbers)
    }

    /// `(major, minor)` of the kernel.
    pub fn kernel_version(&self) -> Option<(u32, u32)> {
        self.kernel_release
            .as_deref()
            .and_then(parse_kernel_version)
    }

    /// Memory the run may use: `MemAvailable`, or less when a cgroup limit leaves less.
    pub fn usable_memory(&self) -> Option<u64> {
        let cgroup = self
            .cgroup_memory
            .map(|(limit, usage)| limit.saturating_sub(usage));
        match (self.mem_available, cgroup) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }
    }

    /// Writability of a probed sysctl.
    pub fn access(&self, name: &str) -> Option<&SysctlAccess> {
        self.access.get(name)
    }
}
