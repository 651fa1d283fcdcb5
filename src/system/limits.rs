//! `RLIMIT_NOFILE` and what it means for connection counts.
//!
//! Every test socket is one file descriptor, so the soft `RLIMIT_NOFILE` caps the connections
//! one process can hold. An unprivileged process may raise its soft limit up to the hard
//! limit ([`raise_nofile_to_hard`]); going past the hard limit needs root (and
//! `fs.nr_open`), which is the job of `wsscale tune` and the sysctl files, not of a run.
//!
//! [`FD_HEADROOM`] descriptors are kept back for the process itself: stdio, the epoll
//! instances of the shards and of tokio, the Prometheus/gateway listeners, report and
//! `/proc` files, eventfds and wakers.

use std::io;

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

/// File descriptors reserved for the process itself, not for connections.
pub const FD_HEADROOM: u64 = 64;

/// The process's `RLIMIT_NOFILE`; `RLIM_INFINITY` shows as `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimits {
    /// The limit in force: `open`/`socket`/`accept` fail with `EMFILE` beyond it.
    pub soft: u64,
    /// The ceiling an unprivileged process may raise `soft` to.
    pub hard: u64,
}

/// Reads `getrlimit(RLIMIT_NOFILE)`.
pub fn nofile_limits() -> io::Result<NofileLimits> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(NofileLimits { soft, hard })
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limits now in force.
///
/// An infinite hard limit cannot be used as a soft limit on Linux (the kernel caps open
/// files at `fs.nr_open`), so in that case the soft limit goes to `fs.nr_open` instead.
pub fn raise_nofile_to_hard() -> io::Result<NofileLimits> {
    let current = nofile_limits()?;
    let target = if current.hard == RLIM_INFINITY {
        crate::system::read_sysctl("fs.nr_open")?
            .parse::<u64>()
            .map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("fs.nr_open is not a number: {err}"),
                )
            })?
    } else {
        current.hard
    };
    if current.soft != target {
        setrlimit(Resource::RLIMIT_NOFILE, target, current.hard)?;
    }
    nofile_limits()
}

/// Connections one process can hold with `limit` descriptors when only the client side of
/// each connection lives in it: `limit − FD_HEADROOM`, never below 0.
pub fn max_connections_for_fds(limit: u64) -> u64 {
    limit.saturating_sub(FD_HEADROOM)
}

/// Connections one process can hold with `limit` descriptors when the embedded gateway runs
/// in the same process: each connection then costs two descriptors (client and server
/// socket), so `(limit − FD_HEADROOM) / 2`.
pub fn max_connections_for_fds_with_gateway(limit: u64) -> u64 {
    max_connections_for_fds(limit) / 2
}
