//! Facts about the host that decide how many sockets a process can open: file-descriptor
//! limits, `/proc/sys` settings, cores and kernel release.
//!
//! - [`limits`] — `RLIMIT_NOFILE` read/raise and the descriptor arithmetic
//!   ([`max_connections_for_fds`]).
//! - [`sysctl`] — validated reads and writes under `/proc/sys`, the ephemeral port range,
//!   sysctl.d file parsing.
//! - [`host`] — capabilities, `MemAvailable`, memory cgroup, kernel version, child network
//!   namespace detection, and whether a sysctl is writable from here.
//! - [`settings`] — the [`Role`] of a host, where each setting lives (node or network
//!   namespace), Kubernetes rules, and fix lines (`sysctl -w`, pod `securityContext` snippet).
//! - [`preflight`] — `wsscale preflight`: what a plan needs vs what this host offers.
//! - [`tune`] — `wsscale tune`: recommended settings for N connections, apply/revert/write.
//! - [`human`] — `100,000` and `3.9 GiB` for people.
//! - [`watch`] — the gateway during a run: `/proc`, `sock_diag`, its Prometheus endpoint and
//!   health URL, sampled once per interval on a thread of its own.
//!
//! Everything here reads the live system and returns `std::io::Result`: a missing file or a
//! refused write is an I/O fact about this host, and callers (preflight, tune) turn it into
//! a finding with the fix. The kernel release is read from `/proc/sys/kernel/osrelease`,
//! which is exactly what `uname -r` prints; that keeps us off nix's `feature` cargo feature
//! (needed for `nix::sys::utsname`) and off `unsafe` `libc::uname`.

pub mod host;
pub mod human;
pub mod limits;
pub mod preflight;
pub mod settings;
pub mod sysctl;
pub mod tune;
pub mod watch;

pub use limits::{
    FD_HEADROOM, NofileLimits, max_connections_for_fds, max_connections_for_fds_with_gateway,
    nofile_limits, raise_nofile_to_hard,
};
pub use settings::{Role, Scope};
pub use sysctl::{
    ConfEntry, ephemeral_port_count, local_port_range, normalize_value, parse_numbers,
    parse_port_range, parse_sysctl_conf, read_sysctl, sysctl_path, validate_sysctl_name,
    write_sysctl,
};

/// Number of CPUs this process may run on (affinity and cgroup quota respected), at least 1.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The running kernel's release string, as `uname -r` prints it (`6.8.0-45-generic`);
/// `None` when `/proc` is not mounted.
pub fn kernel_release() -> Option<String> {
    read_sysctl("kernel.osrelease")
        .ok()
        .filter(|release| !release.is_empty())
}
