//! Host facts: descriptor limits, `/proc/sys` access, and the shipped sysctl.d files.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, getrlimit};
use wsscale::system::{
    FD_HEADROOM, cores, ephemeral_port_count, kernel_release, local_port_range,
    max_connections_for_fds, max_connections_for_fds_with_gateway, nofile_limits, parse_port_range,
    raise_nofile_to_hard, read_sysctl, sysctl_path, write_sysctl,
};

#[test]
fn nofile_soft_is_at_most_hard() {
    let limits = nofile_limits().unwrap();
    assert!(limits.soft <= limits.hard, "{limits:?}");
}

#[test]
fn raising_nofile_reaches_the_hard_limit() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let raised = raise_nofile_to_hard().unwrap();
    assert_eq!(raised.hard, hard);
    if hard == nix::sys::resource::RLIM_INFINITY {
        // An infinite hard limit cannot be a soft limit; fs.nr_open is used instead.
        let nr_open: u64 = read_sysctl("fs.nr_open").unwrap().parse().unwrap();
        assert_eq!(raised.soft, nr_open);
    } else {
        assert_eq!(raised.soft, raised.hard);
    }
    assert_eq!(nofile_limits().unwrap(), raised);
    // Idempotent.
    assert_eq!(raise_nofile_to_hard().unwrap(), raised);
}

#[test]
fn fd_arithmetic() {
    assert_eq!(FD_HEADROOM, 64);
    assert_eq!(max_connections_for_fds(20_000), 19_936);
    assert_eq!(max_connections_for_fds(1_048_576), 1_048_512);
    assert_eq!(max_connections_for_fds(64), 0);
    assert_eq!(max_connections_for_fds(10), 0);
    assert_eq!(max_connections_for_fds(0), 0);
    assert_eq!(max_connections_for_fds(u64::MAX), u64::MAX - 64);
    assert_eq!(max_connections_for_fds_with_gateway(20_000), 9_968);
    assert_eq!(max_connections_for_fds_with_gateway(65), 0);
    assert_eq!(max_connections_for_fds_with_gateway(66), 1);
    assert_eq!(max_connections_for_fds_with_gateway(10), 0);
}

#[test]
fn port_range_is_read_and_parsed() {
    let raw = read_sysctl("net.ipv4.ip_local_port_range").unwrap();
    assert_eq!(raw, raw.trim(), "value is trimmed");
    let (lo, hi) = local_port_range().unwrap();
    assert!(lo <= hi, "{lo}..{hi}");
    assert_eq!((lo, hi), parse_port_range(&raw).unwrap());
    assert_eq!(
        ephemeral_port_count().unwrap(),
        u64::from(hi) - u64::from(lo) + 1
    );
}

#[test]
fn port_range_text_formats() {
    assert_eq!(parse_port_range("32768\t60999").unwrap(), (32768, 60999));
    assert_eq!(parse_port_range(" 1024 65535\n").unwrap(), (1024, 65535));
    assert_eq!(parse_port_range("5000 5000").unwrap(), (5000, 5000));
    for bad in ["", "32768", "60999 32768", "1 2 3", "a b", "0 70000"] {
        let err = parse_port_range(bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
    }
}

#[test]
fn bad_sysctl_names_are_rejected() {
    for name in [
        "",
        "../etc/passwd",
        "net..ipv4",
        "net/ipv4/ip_local_port_range",
        "net.ipv4.ip_local_port_range/../../x",
        ".net.ipv4",
        "net.ipv4.",
        "Net.IPv4.tcp_mem",
        "net.ipv4.tcp mem",
        "net.ipv4.tcp_mem\n",
        "kernel.*",
    ] {
        let err = read_sysctl(name).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}: {err}");
        assert!(err.to_string().contains("invalid sysctl name"), "{err}");
        let err = write_sysctl(name, "1").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}: {err}");
    }
}

#[test]
fn bad_sysctl_values_are_rejected_before_writing() {
    for value in ["", "   ", "1\n2", "1\0"] {
        let err = write_sysctl("net.ipv4.tcp_fin_timeout", value).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{value:?}: {err}");
    }
}

#[test]
fn sysctl_names_map_under_proc_sys() {
    assert_eq!(
        sysctl_path("net.ipv4.ip_local_port_range").unwrap(),
        Path::new("/proc/sys/net/ipv4/ip_local_port_range")
    );
    assert_eq!(
        sysctl_path("fs.file-max").unwrap(),
        Path::new("/proc/sys/fs/file-max")
    );
}

#[test]
fn missing_sysctl_is_not_found_and_named() {
    let err = read_sysctl("net.ipv4.no_such_setting_wsscale").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains("net.ipv4.no_such_setting_wsscale"),
        "{err}"
    );
}

#[test]
fn cores_and_kernel_release() {
    assert!(cores() >= 1);
    let release = kernel_release().expect("/proc is mounted on the test host");
    assert!(
        release.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{release:?}"
    );
}

/// Keys the shipped files set that may legitimately be missing from `/proc/sys` here:
///
/// - `net.netfilter.nf_conntrack_max` — exists only while the `nf_conntrack` module is
///   loaded (any stateful firewall, NAT, Docker…).
/// - `net.ipv4.tcp_mem` — global, not per network namespace: visible only in the initial
///   netns, so absent inside containers with their own netns.
/// - `net.ipv4.tcp_max_orphans` — same: global, initial netns only.
/// - `net.core.netdev_max_backlog` — same: global `net.core` table, initial netns only.
const MAY_BE_ABSENT: &[&str] = &[
    "net.netfilter.nf_conntrack_max",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_max_orphans",
    "net.core.netdev_max_backlog",
];

fn sysctl_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sysctl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "conf"))
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_sysctl_files_are_valid_and_name_real_keys() {
    let files = sysctl_files();
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains("loadgen.conf") && names.contains("gateway.conf"),
        "{names:?}"
    );
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut keys = BTreeSet::new();
        for (index, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.display(), index + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{at}: not `key = value`: {line:?}"));
            let (key, value) = (key.trim(), value.trim());
            assert!(!value.is_empty(), "{at}: empty value for {key}");
            assert!(
                !value.contains('#'),
                "{at}: trailing comment in value {value:?}"
            );
            assert!(keys.insert(key.to_owned()), "{at}: {key} set twice");
            let path = sysctl_path(key).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert!(
                path.exists() || MAY_BE_ABSENT.contains(&key),
                "{at}: {key} does not exist under /proc/sys ({}) and is not in MAY_BE_ABSENT",
                path.display()
            );
            if key == "net.ipv4.ip_local_port_range" {
                assert_eq!(parse_port_range(value).unwrap(), (1024, 65535), "{at}");
            }
        }
        assert!(
            keys.len() >= 10,
            "{}: only {} keys",
            file.display(),
            keys.len()
        );
    }
}

#[test]
fn every_setting_is_explained_by_a_comment() {
    for file in sysctl_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let previous = index.checked_sub(1).map(|i| lines[i].trim());
            assert!(
                previous.is_some_and(|p| p.starts_with('#')),
                "{}:{}: {line:?} has no comment directly above it",
                file.display(),
                index + 1
            );
        }
    }
}
