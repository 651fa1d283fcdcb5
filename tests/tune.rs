//! `wsscale tune` and the shipped `sysctl/*.conf` files: the files are the tool's
//! recommendation for 1M connections (kept in step here), recommendations combine with
//! current values without ever lowering a sufficient one, settings that cannot be changed
//! from a child network namespace are reported, `--write` produces a parseable file, and
//! `--apply`/`--revert` change and restore `ip_local_port_range` and `somaxconn` inside a
//! network namespace this test creates — the host's values are asserted unchanged.
//!
//! The namespace test needs root and `ip` (iproute2). It fails with a clear message when
//! they are missing; set `WSSCALE_SKIP_NETNS_TESTS=1` to skip it knowingly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wsscale::system::host::SysctlAccess;
use wsscale::system::tune::apply::{conf_text, write_conf};
use wsscale::system::tune::{
    Bound, LineState, Observed, Want, assess_with, file_value, recommendations,
};
use wsscale::system::{Role, normalize_value, parse_sysctl_conf, read_sysctl};

fn shipped(role: Role) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sysctl")
        .join(format!("{}.conf", role.label()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

#[test]
fn shipped_files_are_the_recommendation_for_one_million() {
    for role in [Role::Loadgen, Role::Gateway] {
        let (path, text) = shipped(role);
        let entries =
            parse_sysctl_conf(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file: BTreeMap<String, String> =
            entries.into_iter().map(|e| (e.key, e.value)).collect();
        let recs: BTreeMap<String, String> = recommendations(role, 1_000_000)
            .into_iter()
            .filter(|r| r.in_file)
            .map(|r| (r.name.to_owned(), r.want.file_value()))
            .collect();
        assert_eq!(
            file,
            recs,
            "{} and `wsscale tune --role {role} -c 1M` disagree",
            path.display()
        );
        // The setting the file leaves to the module option is explained in it.
        assert!(text.contains("hashsize=524288"), "{}", path.display());
        assert_eq!(
            file_value(role, 1_000_000, "net.netfilter.nf_conntrack_buckets").as_deref(),
            Some("524288")
        );
    }
}

#[test]
fn sysctl_conf_parsing() {
    let text = "# comment\n; also a comment\n\nnet.core.somaxconn = 65535\n\
                -net.ipv4.tcp_mem=1 2\t3\nnet/ipv4/tcp_fin_timeout = 15\n";
    let entries = parse_sysctl_conf(text).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].key, "net.core.somaxconn");
    assert_eq!(entries[0].value, "65535");
    assert_eq!(entries[0].line, 4);
    assert!(entries[1].ignore_failure);
    assert_eq!(entries[1].value, "1 2 3");
    assert_eq!(entries[2].key, "net.ipv4.tcp_fin_timeout");
    for bad in [
        "net.core.somaxconn",
        "net.core.somaxconn =",
        "Net.Core = 1",
        "a = 1\na = 2",
    ] {
        let err = parse_sysctl_conf(bad).unwrap_err();
        assert!(err.to_string().contains("line "), "{bad:?}: {err}");
    }
}

#[test]
fn wants_never_lower_a_sufficient_value() {
    let recs = recommendations(Role::Loadgen, 100_000);
    let want = |name: &str| {
        recs.iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .want
            .clone()
    };
    // systemd's fs.file-max stays.
    assert!(want("fs.file-max").satisfied_by("9223372036854775807"));
    assert_eq!(want("fs.file-max").recommend("65536").unwrap(), "524288");
    assert_eq!(
        want("net.ipv4.tcp_rmem")
            .recommend("4096\t131072\t33554432")
            .unwrap(),
        "4096 16384 33554432"
    );
    assert_eq!(want("net.ipv4.tcp_tw_reuse").recommend("2").unwrap(), "1");
    assert_eq!(
        want("net.ipv4.ip_local_port_range"),
        Want::PortRange {
            lo: 1024,
            hi: 65535
        }
    );
    assert_eq!(
        want("net.ipv4.tcp_fin_timeout"),
        Want::Fields(vec![Bound::AtMost(15)])
    );
    // Every recommendation for N is at least what N needs.
    for n in [1_000u64, 100_000, 1_000_000, 5_000_000] {
        let v = |name: &str| -> u64 {
            file_value(Role::Loadgen, n, name)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(v("fs.nr_open") >= 2 * n + 64, "{n}");
        assert!(v("fs.file-max") >= 4 * n, "{n}");
        assert!(v("fs.epoll.max_user_watches") >= 2 * n, "{n}");
        assert!(v("net.netfilter.nf_conntrack_max") >= n, "{n}");
        assert!(v("net.netfilter.nf_conntrack_buckets") >= n / 8, "{n}");
        assert!(v("net.ipv4.tcp_max_tw_buckets") >= n, "{n}");
    }
}

fn observed(value: Option<&str>, access: SysctlAccess) -> Observed {
    Observed {
        value: value.map(str::to_owned),
        access,
    }
}

#[test]
fn assessment_reports_what_cannot_be_changed_from_here() {
    let recs = recommendations(Role::Loadgen, 1_000_000);
    // A child network namespace: fs.* visible but node-wide, tcp_mem absent, conntrack
    // read-only, port range writable.
    let lines = assess_with(recs.clone(), false, |name| match name {
        "fs.file-max" => observed(Some("100000"), SysctlAccess::Writable),
        "net.ipv4.tcp_mem" | "net.ipv4.tcp_max_orphans" | "net.core.netdev_max_backlog" => {
            observed(None, SysctlAccess::Absent)
        }
        "net.netfilter.nf_conntrack_max" => observed(
            Some("262144"),
            SysctlAccess::ReadOnly("read-only entry".into()),
        ),
        "net.ipv4.ip_local_port_range" => observed(Some("32768\t60999"), SysctlAccess::Writable),
        "net.core.somaxconn" => observed(Some("65535"), SysctlAccess::Writable),
        _ => observed(None, SysctlAccess::Absent),
    });
    let state = |name: &str| {
        lines
            .iter()
            .find(|l| l.rec.name == name)
            .unwrap()
            .state
            .clone()
    };
    assert!(matches!(state("fs.file-max"), LineState::Blocked(why) if why.contains("node-wide")));
    assert!(matches!(state("net.ipv4.tcp_mem"), LineState::Unknown(why) if why.contains("node")));
    assert!(matches!(
        state("net.netfilter.nf_conntrack_max"),
        LineState::Blocked(_)
    ));
    assert_eq!(state("net.ipv4.ip_local_port_range"), LineState::Change);
    assert_eq!(state("net.core.somaxconn"), LineState::Ok);
    let port = lines
        .iter()
        .find(|l| l.rec.name == "net.ipv4.ip_local_port_range")
        .unwrap();
    assert_eq!(port.current.as_deref(), Some("32768 60999"));
    assert_eq!(port.recommended, "1024 65535");
    assert!(port.shown_by_default());

    // The initial namespace: conntrack not loaded is not applicable; a non-root writer is
    // denied; a read-only /proc/sys is blocked.
    let lines = assess_with(recs, true, |name| match name {
        "net.core.somaxconn" => observed(Some("4096"), SysctlAccess::Denied("EACCES".into())),
        "net.ipv4.tcp_fin_timeout" => observed(
            Some("60"),
            SysctlAccess::ReadOnly("/proc/sys is mounted read-only".into()),
        ),
        _ => observed(None, SysctlAccess::Absent),
    });
    let state = |name: &str| {
        lines
            .iter()
            .find(|l| l.rec.name == name)
            .unwrap()
            .state
            .clone()
    };
    assert!(matches!(
        state("net.netfilter.nf_conntrack_max"),
        LineState::NotApplicable(_)
    ));
    assert!(matches!(state("net.core.somaxconn"), LineState::Denied(_)));
    assert!(
        matches!(state("net.ipv4.tcp_fin_timeout"), LineState::Blocked(why) if why.contains("read-only"))
    );
}

#[test]
fn written_files_parse_and_never_lower_current_values() {
    let recs = recommendations(Role::Gateway, 200_000);
    let lines = assess_with(recs, true, |name| match name {
        "fs.file-max" => observed(Some("9223372036854775807"), SysctlAccess::Writable),
        "net.core.somaxconn" => observed(Some("4096"), SysctlAccess::Writable),
        _ => observed(None, SysctlAccess::Absent),
    });
    let text = conf_text(Role::Gateway, 200_000, &lines);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("90-wsscale-gateway.conf");
    write_conf(&path, &text).unwrap();
    let entries = parse_sysctl_conf(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let get = |k: &str| entries.iter().find(|e| e.key == k).map(|e| e.value.clone());
    assert_eq!(get("fs.file-max").as_deref(), Some("9223372036854775807"));
    assert_eq!(get("net.core.somaxconn").as_deref(), Some("65535"));
    // Absent keys are written with '-' (ignore failure), buckets only as a comment.
    assert!(
        entries
            .iter()
            .any(|e| e.key == "net.ipv4.tcp_mem" && e.ignore_failure)
    );
    assert_eq!(get("net.netfilter.nf_conntrack_buckets"), None);
    assert!(text.contains("options nf_conntrack hashsize="));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wsscale"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn tune_prints_current_next_to_recommended() {
    let out = bin()
        .args(["tune", "--role", "loadgen", "-c", "1M", "--all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SETTING"), "{stdout}");
    let current = normalize_value(&read_sysctl("net.ipv4.ip_local_port_range").unwrap());
    let line = stdout
        .lines()
        .find(|l| l.starts_with("net.ipv4.ip_local_port_range"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(&current), "{line}");
    assert!(line.contains("1024 65535"), "{line}");
    for rec in recommendations(Role::Loadgen, 1_000_000) {
        assert!(
            stdout.contains(rec.name),
            "--all lists {}: {stdout}",
            rec.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// --apply / --revert inside a network namespace.

/// A network namespace deleted on drop (also when the test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Netns {
        let name = format!("wsscale-test-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `ip netns add` ({e}): this test needs iproute2 (apt-get install -y \
                     iproute2) and root; set WSSCALE_SKIP_NETNS_TESTS=1 to skip it"
                )
            });
        assert!(
            out.status.success(),
            "`ip netns add {name}` failed (needs root / CAP_SYS_ADMIN; set \
             WSSCALE_SKIP_NETNS_TESTS=1 to skip): {}",
            text(&out)
        );
        Netns { name }
    }

    fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    fn read(&self, name: &str) -> String {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        let out = self.exec(&["cat", &path]);
        assert!(out.status.success(), "{}", text(&out));
        normalize_value(&String::from_utf8_lossy(&out.stdout))
    }

    fn wsscale(&self, args: &[&str]) -> Output {
        let mut all = vec![env!("CARGO_BIN_EXE_wsscale")];
        all.extend_from_slice(args);
        self.exec(&all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// Host values that must not move, namespaced ones and node-wide ones alike.
const WATCHED: &[&str] = &[
    "net.ipv4.ip_local_port_range",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "fs.file-max",
    "fs.nr_open",
    "fs.epoll.max_user_watches",
    "net.netfilter.nf_conntrack_max",
];

fn host_values() -> BTreeMap<&'static str, Option<String>> {
    WATCHED
        .iter()
        .map(|k| (*k, read_sysctl(k).ok().map(|v| normalize_value(&v))))
        .collect()
}

#[test]
fn apply_and_revert_inside_a_network_namespace() {
    if std::env::var_os("WSSCALE_SKIP_NETNS_TESTS").is_some() {
        eprintln!("WSSCALE_SKIP_NETNS_TESTS set: skipping the network-namespace test");
        return;
    }
    let host_before = host_values();
    let ns = Netns::create();
    let port_before = ns.read("net.ipv4.ip_local_port_range");
    let somaxconn_before = ns.read("net.core.somaxconn");
    assert_ne!(
        port_before, "1024 65535",
        "a fresh namespace has the kernel default"
    );

    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.conf");
    let backup_s = backup.to_str().unwrap();
    let args = [
        "tune", "--role", "loadgen", "-c", "1M", "--apply", "--backup",
    ];

    // Apply.
    let out = ns.wsscale(&[&args[..], &[backup_s]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("child network namespace"), "{stdout}");
    assert!(
        stdout.contains("node-wide"),
        "node-wide settings are reported: {stdout}"
    );
    assert_eq!(ns.read("net.ipv4.ip_local_port_range"), "1024 65535");
    assert_eq!(ns.read("net.core.somaxconn"), "65535");
    assert_eq!(host_values(), host_before, "the host must be untouched");
    let saved = parse_sysctl_conf(&std::fs::read_to_string(&backup).unwrap()).unwrap();
    let saved_value = |k: &str| saved.iter().find(|e| e.key == k).map(|e| e.value.clone());
    assert_eq!(
        saved_value("net.ipv4.ip_local_port_range"),
        Some(port_before.clone())
    );
    assert_eq!(
        saved_value("net.core.somaxconn"),
        Some(somaxconn_before.clone())
    );
    assert!(
        saved.iter().all(|e| !e.key.starts_with("fs.")),
        "node-wide settings are neither changed nor backed up: {saved:?}"
    );

    // Apply again: idempotent, no second backup.
    let backup2 = dir.path().join("backup2.conf");
    let out = ns.wsscale(&[&args[..], &[backup2.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to change"),
        "{}",
        text(&out)
    );
    assert!(!backup2.exists(), "nothing changed, so no backup");
    assert_eq!(ns.read("net.core.somaxconn"), "65535");

    // Revert.
    let out = ns.wsscale(&["tune", "--revert", backup_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ns.read("net.ipv4.ip_local_port_range"), port_before);
    assert_eq!(ns.read("net.core.somaxconn"), somaxconn_before);

    // A backup is never overwritten: applying with the old backup path refuses and changes
    // nothing.
    let out = ns.wsscale(&[&args[..], &[backup_s]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never overwritten"),
        "{}",
        text(&out)
    );
    assert_eq!(ns.read("net.ipv4.ip_local_port_range"), port_before);

    assert_eq!(host_values(), host_before, "the host must be untouched");
}
