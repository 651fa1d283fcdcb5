//! Host facts read from `/proc` and `/sys` that are not sysctls: capabilities, memory,
//! cgroup memory limit, network-namespace kind, kernel version, and whether a sysctl can be
//! written from here.
//!
//! Every reader has a pure parser next to it (`parse_*`) so the text formats are tested
//! without depending on the machine the tests run on.
//!
//! **Child network namespace detection.** `net.ipv4.tcp_mem` (like `tcp_max_orphans` and
//! `net.core.netdev_max_backlog`) is registered only for the initial network namespace, so
//! its absence from `/proc/sys` is the kernel's own statement that this process lives in a
//! child network namespace (a container, a pod, `ip netns exec`). Comparing
//! `/proc/self/ns/net` with `/proc/1/ns/net` would not work inside a container, where PID 1
//! shares the container's namespace.
//!
//! **Writability probe.** [`sysctl_access`] opens the `/proc/sys` file for writing without
//! writing anything: the kernel's permission check runs at `open`, so a read-only mount
//! (`EROFS`), a read-only entry (mode 0444, e.g. `nf_conntrack_max` outside the initial
//! namespace) and a missing privilege (`EACCES`/`EPERM` on a writable entry) are told apart
//! without changing any value.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::sysctl::{sysctl_path, sysctl_path_at};

/// Capability number of `CAP_SYS_RESOURCE` (raise the hard `RLIMIT_NOFILE`, exceed quotas).
pub const CAP_SYS_RESOURCE: u32 = 24;

/// Parses the `CapEff:` line of a `/proc/<pid>/status` text (hex bit mask).
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// This process's effective capability set, from `/proc/self/status`.
pub fn cap_effective() -> io::Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    parse_cap_eff(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc/self/status has no parseable CapEff line",
        )
    })
}

/// Whether capability number `cap` is in this process's effective set (false when unknown).
pub fn has_capability(cap: u32) -> bool {
    cap_effective().is_ok_and(|mask| cap < 64 && mask & (1u64 << cap) != 0)
}

/// Parses one `Key:   123 kB` line of `/proc/meminfo` into bytes.
pub fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
    let mut fields = line.split(':').nth(1)?.split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes: what can be allocated without swapping.
pub fn mem_available() -> io::Result<u64> {
    let text = fs::read_to_string("/proc/meminfo")?;
    parse_meminfo(&text, "MemAvailable").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc/meminfo has no MemAvailable line (kernel older than 3.14?)",
        )
    })
}

/// The memory cgroup limit of this process and its current usage, in bytes, when a limit
/// is set (cgroup v2 `memory.max`/`memory.current`, or v1 `memory.limit_in_bytes`/
/// `memory.usage_in_bytes`). Kernel socket memory is charged to the cgroup, so in a
/// container this, not `MemAvailable`, is what runs out first. `None` when there is no limit
/// or it cannot be read.
pub fn cgroup_memory() -> Option<(u64, u64)> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let read = |path: String| fs::read_to_string(path).ok();
    // cgroup v2: "0::/path".
    if let Some(path) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) {
        let dir = format!("/sys/fs/cgroup{}", path.trim_end_matches('/'));
        if let (Some(max), Some(current)) = (
            read(format!("{dir}/memory.max")),
            read(format!("{dir}/memory.current")),
        ) {
            return parse_cgroup_limit(&max, &current);
        }
    }
    // cgroup v1: "N:memory:/path" (the controller list may hold several names).
    let path = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    })?;
    let dir = format!("/sys/fs/cgroup/memory{}", path.trim_end_matches('/'));
    let limit = read(format!("{dir}/memory.limit_in_bytes"))?;
    let usage = read(format!("{dir}/memory.usage_in_bytes"))?;
    parse_cgroup_limit(&limit, &usage)
}

/// `(limit, usage)` from the texts of a cgroup limit file and usage file; `None` for `max`
/// (v2) or the v1 "no limit" value (close to `i64::MAX`, page-aligned).
pub fn parse_cgroup_limit(limit: &str, usage: &str) -> Option<(u64, u64)> {
    let limit: u64 = limit.trim().parse().ok()?;
    if limit >= (1u64 << 62) {
        return None;
    }
    let usage: u64 = usage.trim().parse().ok()?;
    Some((limit, usage))
}

/// `(major, minor)` of a kernel release string such as `6.8.0-45-generic` or `4.19.112+`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether this process runs in the initial network namespace (see the module docs).
pub fn in_initial_netns() -> bool {
    sysctl_path("net.ipv4.tcp_mem").is_ok_and(|p| p.exists())
}

/// [`in_initial_netns`] as the `/proc` tree at `proc_root` tells it.
pub fn in_initial_netns_at(proc_root: &Path) -> bool {
    sysctl_path_at(proc_root, "net.ipv4.tcp_mem").is_ok_and(|p| p.exists())
}

/// Whether a sysctl can be written from this process, probed without writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlAccess {
    /// Opening it for writing succeeded.
    Writable,
    /// Not present under `/proc/sys` here (module not loaded, or not in this namespace).
    Absent,
    /// Present but not writable by anyone from here: read-only mount or read-only entry.
    ReadOnly(String),
    /// Writable in principle, but not by this process (not root / missing capability).
    Denied(String),
}

impl SysctlAccess {
    /// Short explanation for tables (`"writable"`, `"read-only: …"`…).
    pub fn describe(&self) -> String {
        match self {
            SysctlAccess::Writable => "writable from here".to_owned(),
            SysctlAccess::Absent => "not present here".to_owned(),
            SysctlAccess::ReadOnly(why) => format!("read-only here ({why})"),
            SysctlAccess::Denied(why) => format!("not writable by this process ({why})"),
        }
    }
}

/// Probes whether sysctl `name` can be written (see the module docs). Invalid names are
/// reported as [`SysctlAccess::Absent`].
pub fn sysctl_access(name: &str) -> SysctlAccess {
    sysctl_access_at(Path::new(super::sysctl::PROC), name)
}

/// [`sysctl_access`] of the file under the `/proc` tree at `proc_root`.
pub fn sysctl_access_at(proc_root: &Path, name: &str) -> SysctlAccess {
    let Ok(path) = sysctl_path_at(proc_root, name) else {
        return SysctlAccess::Absent;
    };
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(_) => return SysctlAccess::Absent,
    };
    match OpenOptions::new().write(true).open(&path) {
        Ok(_) => SysctlAccess::Writable,
        Err(err) if err.raw_os_error() == Some(libc::EROFS) => {
            SysctlAccess::ReadOnly("/proc/sys is mounted read-only".to_owned())
        }
        Err(err) if meta.permissions().mode() & 0o222 == 0 => SysctlAccess::ReadOnly(format!(
            "the kernel exposes it read-only in this network namespace: {err}"
        )),
        Err(err) => SysctlAccess::Denied(format!(
            "{err}; run as root, or with CAP_NET_ADMIN for net.* in its own namespace"
        )),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn cap_eff_parsing() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        let mask = parse_cap_eff(status).unwrap();
        assert_eq!(mask, 0x1fffeffffff);
        assert_eq!(mask & (1 << CAP_SYS_RESOURCE), 0, "bit 24 is clear");
        assert_ne!(
            parse_cap_eff("CapEff:\t000001ffffffffff").unwrap() & (1 << CAP_SYS_RESOURCE),
            0
        );
        assert_eq!(parse_cap_eff("CapPrm:\t0\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
    }

    #[test]
    fn meminfo_parsing() {
        let text =
            "MemTotal:       32768000 kB\nMemAvailable:   23267048 kB\nHugePages_Total:       0\n";
        assert_eq!(parse_meminfo(text, "MemAvailable"), Some(23_267_048 * 1024));
        assert_eq!(parse_meminfo(text, "HugePages_Total"), Some(0));
        assert_eq!(parse_meminfo(text, "Mem"), None);
        assert_eq!(parse_meminfo(text, "SwapTotal"), None);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.2.0"), Some((4, 2)));
        assert_eq!(
            parse_kernel_version("3.10.0-1160.el7.x86_64"),
            Some((3, 10))
        );
        assert_eq!(parse_kernel_version("5.15"), Some((5, 15)));
        assert_eq!(parse_kernel_version("linux"), None);
        assert_eq!(parse_kernel_version("6"), None);
    }

    #[test]
    fn cgroup_limits() {
        assert_eq!(parse_cgroup_limit("max\n", "123\n"), None);
        assert_eq!(
            parse_cgroup_limit("9223372036854771712\n", "10592256"),
            None
        );
        assert_eq!(
            parse_cgroup_limit("4294967296\n", "1048576\n"),
            Some((4 << 30, 1 << 20))
        );
    }
}
