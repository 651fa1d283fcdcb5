//! Reading a gateway process from `/proc/PID`: RSS (`status`), CPU time and threads (`stat`),
//! open descriptors and the inodes of its sockets (`fd/`), and finding processes by name.
//!
//! Counting `fd/` is one directory read; telling which descriptors are sockets costs one
//! `readlink` per descriptor, the bulk of a sample's time at 100,000 held connections (see
//! `bench/watch-cost.sh`) — so the sampler asks for socket inodes only when its budget for
//! the connection count allows (module `watch`).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

/// One read of one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcReading {
    pub rss_bytes: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub threads: u64,
    /// Open descriptors; `None` when the descriptors were not read this time.
    pub fds: Option<u64>,
}

/// Clock ticks per second (`USER_HZ`) for `/proc/PID/stat` times.
pub fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf reads a constant and has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Parse `/proc/PID/stat`: (utime + stime, num_threads). The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is f[0]; utime is field 14, stime 15, num_threads 20.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let threads: u64 = f.get(17)?.parse().ok()?;
    Some((utime + stime, threads))
}

/// Read process `pid`; with `sockets`, also add the inodes of its sockets to it (one
/// `readlink` per descriptor) and count the descriptors; without, read neither (at 100,000
/// descriptors even listing `fd/` is a cost: the sampler reads it on its count budget).
pub fn read_process(pid: u32, sockets: Option<&mut HashSet<u64>>) -> io::Result<ProcReading> {
    let dir = Path::new("/proc").join(pid.to_string());
    let status = fs::read_to_string(dir.join("status"))?;
    let rss_bytes = crate::metrics::parse_vm_rss(&status).unwrap_or(0);
    let stat = fs::read_to_string(dir.join("stat"))?;
    let (cpu_ticks, threads) = parse_stat(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/PID/stat"))?;
    let fds = match sockets {
        None => None,
        Some(sockets) => {
            let mut fds = 0;
            for entry in fs::read_dir(dir.join("fd"))? {
                let Ok(entry) = entry else { continue };
                fds += 1;
                if let Ok(target) = fs::read_link(entry.path())
                    && let Some(inode) = socket_inode(target.as_os_str().to_str().unwrap_or(""))
                {
                    sockets.insert(inode);
                }
            }
            Some(fds)
        }
    };
    Ok(ProcReading {
        rss_bytes,
        cpu_ticks,
        threads,
        fds,
    })
}

/// The inode of a `socket:[12345]` link target.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Pids of the processes called `name` — by `comm` (truncated by the kernel to 15 bytes) or
/// by the file name of `argv[0]` — other than `exclude` (this process).
pub fn pids_named(name: &str, exclude: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != exclude && is_named(pid, name))
        .collect();
    pids.sort_unstable();
    pids
}

fn is_named(pid: u32, name: &str) -> bool {
    let dir = Path::new("/proc").join(pid.to_string());
    if let Ok(comm) = fs::read_to_string(dir.join("comm"))
        && comm.trim_end() == name
    {
        return true;
    }
    let Ok(cmdline) = fs::read(dir.join("cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    Path::new(argv0.as_ref())
        .file_name()
        .is_some_and(|f| f == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let stat = "4242 (my (odd) gw) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 123 4096 300 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((300, 7)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[1]"), None);
    }

    #[test]
    fn reads_this_process() {
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut sockets = HashSet::new();
        let r = read_process(std::process::id(), Some(&mut sockets)).unwrap();
        assert!(
            r.rss_bytes > 0 && r.threads >= 1 && r.fds >= Some(3),
            "{r:?}"
        );
        assert!(!sockets.is_empty(), "the listener's inode is found");
        // Without a set, only the cheap files are read.
        let light = read_process(std::process::id(), None).unwrap();
        assert!(light.rss_bytes > 0 && light.fds.is_none(), "{light:?}");
    }
}
