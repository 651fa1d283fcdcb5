//! `wsscale preflight`: the capacity arithmetic, `/proc/sys` value parsing, the checks on
//! synthetic hosts, the real binary on this host (limits read via getrlimit, never assumed),
//! reachability against an in-process gateway, and the JSON output against the committed
//! schema. `wsscale run` refusing an impossible plan is checked here too. Ports held now,
//! the `--processes` source split (a table of the arithmetic) and the conntrack probe run
//! against synthetic facts and a fake `/proc` tree; `tests/host_now.rs` does the same in
//! network namespaces.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::time::Duration;

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
use serde_json::Value;
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::plan::{Auth, JwtAlg, JwtPlacement, Plan, Secret, Stage, Target};
use wsscale::system::host::SysctlAccess;
use wsscale::system::human::count;
use wsscale::system::limits::NofileLimits;
use wsscale::system::preflight::capacity::*;
use wsscale::system::preflight::held::PortsHeld;
use wsscale::system::preflight::spread::{Layout, equal_shares, max_load, spread};
use wsscale::system::preflight::{
    Finding, HostFacts, Needs, Status, check_system, check_system_at, peak_rate, preflight, reach,
    render, system_findings,
};
use wsscale::system::{Role, normalize_value, parse_numbers, parse_port_range, read_sysctl};

const SCHEMA: &str = include_str!("../schema/preflight-v1.json");
const DOC: &str = include_str!("../docs/preflight.md");

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsscale"))
        .args(args)
        .output()
        .expect("run the wsscale binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The hard `RLIMIT_NOFILE` of this test process (the binary inherits it).
fn hard_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).unwrap().1
}

/// A connection count that cannot fit one process here with the embedded gateway: 100,000,
/// or more where the hard limit allows 100,000 (never assume this machine's 20,000).
fn too_many_for_one_process() -> u64 {
    let hard = hard_limit();
    assert_ne!(
        hard, RLIM_INFINITY,
        "this test needs a finite hard RLIMIT_NOFILE"
    );
    if fds_needed(100_000, true) > hard {
        100_000
    } else {
        hard
    }
}

// ---------------------------------------------------------------------------------------
// Arithmetic.

#[test]
fn capacity_arithmetic() {
    // (connections, embedded gateway, fds needed)
    for (conns, embedded, fds) in [
        (0, false, 64),
        (500, false, 564),
        (500, true, 1_064),
        (100_000, true, 200_064),
        (1_000_000, false, 1_000_064),
        (u64::MAX, true, u64::MAX),
    ] {
        assert_eq!(fds_needed(conns, embedded), fds, "{conns} {embedded}");
    }
    // (fd limit, embedded, connections per process)
    for (limit, embedded, per) in [
        (20_000, false, 19_936),
        (20_000, true, 9_968),
        (1_048_576, false, 1_048_512),
        (64, false, 0),
        (10, true, 0),
    ] {
        assert_eq!(
            conns_per_process(limit, embedded),
            per,
            "{limit} {embedded}"
        );
    }
    for (conns, per, processes) in [
        (100_000, 9_968, Some(11)),
        (100_000, 19_936, Some(6)),
        (19_936, 19_936, Some(1)),
        (0, 100, Some(1)),
        (5, 0, None),
    ] {
        assert_eq!(processes_needed(conns, per), processes, "{conns}/{per}");
    }
    // (sources, destinations, ports, IP_BIND_ADDRESS_NO_PORT, capacity)
    for (s, d, ports, no_port, cap) in [
        (0, 1, 28_232, true, 28_232),
        (1, 1, 28_232, true, 28_232),
        (4, 1, 28_232, true, 112_928),
        (4, 3, 64_512, true, 774_144),
        (4, 3, 64_512, false, 258_048),
        (16, 1, 64_512, true, 1_032_192),
    ] {
        assert_eq!(port_capacity(s, d, ports, no_port), cap, "{s}x{d}x{ports}");
    }
    assert_eq!(usable_ports(28_232), 25_408);
    // (connections, destinations, ports, sources needed)
    for (conns, d, ports, sources) in [
        (100_000, 1, 28_232, 4),
        (100_000, 1, 64_512, 2),
        (1_000_000, 1, 64_512, 18),
        (1_000_000, 4, 64_512, 5),
        (10, 1, 28_232, 1),
    ] {
        assert_eq!(
            sources_needed(conns, d, ports),
            sources,
            "{conns} {d} {ports}"
        );
    }
    assert_eq!(bytes_per_conn(false, false), 4198 + 1024);
    assert_eq!(bytes_per_conn(false, true), 2 * 4198 + 1024 + 6144);
    assert_eq!(bytes_per_conn(true, false), 4198 + 6144);
    assert_eq!(CLIENT_BYTES_PER_CONN, 1024);
    for (rate, backlog) in [
        (0.0, 128),
        (1_000.0, 128),
        (10_000.0, 1_000),
        (50_000.0, 5_000),
    ] {
        assert_eq!(backlog_needed(rate), backlog, "{rate}");
    }
    assert_eq!(netdev_backlog_needed(50_000.0, 2), 7_500);
    assert_eq!(netdev_backlog_needed(100.0, 2), 1_000);
    assert_eq!(conntrack_buckets_needed(100_000), 12_500);
    assert!(has_bind_address_no_port((4, 2)));
    assert!(has_bind_address_no_port((6, 18)));
    assert!(!has_bind_address_no_port((4, 1)));
    assert!(!has_bind_address_no_port((3, 10)));
    assert_eq!(round_up_pow2(200_064), 262_144);
    assert_eq!(round_up_pow2(1 << 20), 1 << 20);
}

#[test]
fn arrival_rate_of_stages() {
    let s = |secs: u64, target: u64| Stage {
        duration: Duration::from_secs(secs),
        target,
    };
    assert_eq!(peak_rate(&[s(10, 1000), s(30, 1000), s(5, 0)]), 100.0);
    assert_eq!(peak_rate(&[s(10, 1000), s(1, 3000)]), 2000.0);
    assert_eq!(
        peak_rate(&[s(0, 500)]),
        500.0,
        "an instant jump counts over 1 s"
    );
    assert_eq!(peak_rate(&[]), 0.0);
}

// ---------------------------------------------------------------------------------------
// /proc/sys value parsing.

#[test]
fn proc_sys_values_parse() {
    assert_eq!(normalize_value("32768\t60999\n"), "32768 60999");
    assert_eq!(
        normalize_value("  4096\t131072\t6291456 "),
        "4096 131072 6291456"
    );
    assert_eq!(
        parse_numbers("4096\t131072\t6291456"),
        Some(vec![4096, 131_072, 6_291_456])
    );
    assert_eq!(
        parse_numbers("9223372036854775807"),
        Some(vec![9_223_372_036_854_775_807])
    );
    assert_eq!(parse_numbers(""), None);
    assert_eq!(parse_numbers("1 x"), None);
    assert_eq!(parse_numbers("-1"), None);
    // Live values have the shapes the checks expect.
    for name in ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"] {
        let v = parse_numbers(&read_sysctl(name).unwrap()).unwrap();
        assert_eq!(v.len(), 3, "{name}: {v:?}");
        assert!(v[0] <= v[1] && v[1] <= v[2], "{name}: {v:?}");
    }
    let range = read_sysctl("net.ipv4.ip_local_port_range").unwrap();
    let (lo, hi) = parse_port_range(&range).unwrap();
    assert!(lo <= hi);
    let facts = HostFacts::read();
    assert_eq!(
        facts.get("net.ipv4.ip_local_port_range"),
        Some(normalize_value(&range).as_str())
    );
    assert!(facts.num("fs.nr_open").is_some_and(|v| v >= 1024));
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert_eq!(facts.nofile.map(|l| l.hard), Some(hard));
}

// ---------------------------------------------------------------------------------------
// Checks on synthetic hosts.

/// A roomy host at typical defaults.
fn host() -> HostFacts {
    let mut facts = HostFacts {
        nofile: Some(NofileLimits {
            soft: 1024,
            hard: 524_288,
        }),
        cap_sys_resource: false,
        kernel_release: Some("6.8.0-45-generic".to_owned()),
        cores: 4,
        mem_available: Some(16 << 30),
        cgroup_memory: None,
        initial_netns: true,
        // Nothing holds a port of the range.
        ports_held: Some(PortsHeld {
            range: (1024, 65535),
            ..PortsHeld::default()
        }),
        ..HostFacts::default()
    };
    for (k, v) in [
        ("fs.file-max", "9223372036854775807"),
        ("fs.file-nr", "1000 0 9223372036854775807"),
        ("fs.nr_open", "1048576"),
        ("fs.epoll.max_user_watches", "3000000"),
        ("net.ipv4.ip_local_port_range", "1024 65535"),
        ("net.ipv4.tcp_tw_reuse", "1"),
        ("net.ipv4.tcp_timestamps", "1"),
        ("net.ipv4.tcp_fin_timeout", "15"),
        ("net.ipv4.tcp_max_tw_buckets", "2097152"),
        ("net.ipv4.tcp_max_orphans", "262144"),
        ("net.ipv4.tcp_mem", "786432 1048576 1572864"),
        ("net.core.somaxconn", "65535"),
        ("net.ipv4.tcp_max_syn_backlog", "65535"),
        ("net.core.netdev_max_backlog", "16384"),
        ("net.ipv4.tcp_rmem", "4096 16384 6291456"),
        ("net.ipv4.tcp_wmem", "4096 16384 4194304"),
    ] {
        facts.sysctls.insert(k.to_owned(), v.to_owned());
    }
    facts
}

fn needs(connections: u64) -> Needs {
    Needs {
        role: Role::Loadgen,
        connections,
        embedded_gateway: false,
        destinations: 1,
        sources: Vec::new(),
        loopback_only: false,
        peak_rate: 1000.0,
        graceful_close: true,
        processes: 1,
        sends_per_conn_s: 0.0,
    }
}

fn find<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no finding {check}: {findings:#?}"))
}

#[test]
fn a_tuned_host_passes_everything() {
    // Two source addresses: 25,000 per (source, destination) pair, under half the range.
    let mut n = needs(50_000);
    n.sources = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let findings = system_findings(&n, &host());
    let bad: Vec<_> = findings
        .iter()
        .filter(|f| f.status != Status::Pass)
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn soft_limit_below_need_passes_when_the_hard_limit_allows_it() {
    let f = system_findings(&needs(50_000), &host());
    let nofile = find(&f, "nofile");
    assert_eq!(nofile.status, Status::Pass);
    assert!(
        nofile.why.contains("raises the soft limit"),
        "{}",
        nofile.why
    );
}

#[test]
fn hard_limit_without_cap_sys_resource_recommends_processes() {
    let mut facts = host();
    facts.nofile = Some(NofileLimits {
        soft: 4096,
        hard: 4096,
    });
    let mut n = needs(10_000);
    n.embedded_gateway = true;
    let f = system_findings(&n, &facts);
    let nofile = find(&f, "nofile");
    assert_eq!(nofile.status, Status::Fail);
    assert!(
        nofile.why.contains("4,096 cannot be raised"),
        "{}",
        nofile.why
    );
    assert!(nofile.why.contains("CAP_SYS_RESOURCE"), "{}", nofile.why);
    // The embedded gateway runs in processes of its own (`wsscale serve` children), so the
    // client's descriptors are all its own: 4096 − 64 = 4032 per process → 3 processes.
    assert!(
        nofile.why.contains("at most 4,032 connections"),
        "{}",
        nofile.why
    );
    let fixes = nofile.fix.join("\n");
    assert!(
        fixes.contains("--processes 3 (3 processes of at most 4,032"),
        "{fixes}"
    );
    assert!(fixes.contains("LimitNOFILE=16384"), "{fixes}");
    assert!(fixes.contains("--ulimit nofile=16384:16384"), "{fixes}");

    // Following the advice: 3 processes of 3,334 connections (gateway in its own processes).
    n.processes = 3;
    let f = system_findings(&n, &facts);
    let nofile = find(&f, "nofile");
    assert_eq!(nofile.status, Status::Pass, "{nofile:#?}");
    assert!(
        nofile.needed.starts_with("3,398 descriptors"),
        "{}",
        nofile.needed
    );
    // Host-wide needs still count both sides of every connection.
    assert_eq!(find(&f, "fs.epoll.max_user_watches").needed, ">= 20,000");

    // One process holds what fits its own descriptors: the embedded gateway is a child
    // process with descriptors of its own.
    n.processes = 1;
    n.connections = 3_000;
    let f = system_findings(&n, &facts);
    assert_eq!(find(&f, "nofile").status, Status::Pass);
}

#[test]
fn hard_limit_with_cap_sys_resource_says_ulimit_and_nr_open() {
    let mut facts = host();
    facts.cap_sys_resource = true;
    facts.nofile = Some(NofileLimits {
        soft: 1024,
        hard: 1024,
    });
    facts
        .sysctls
        .insert("fs.nr_open".to_owned(), "1048576".to_owned());
    let f = system_findings(&needs(2_000_000), &facts);
    let nofile = find(&f, "nofile");
    assert_eq!(nofile.status, Status::Fail);
    let fixes = nofile.fix.join("\n");
    assert!(fixes.contains("ulimit -Hn 2097152"), "{fixes}");
    assert!(fixes.contains("sysctl -w fs.nr_open="), "{fixes}");
    assert_eq!(find(&f, "fs.nr_open").status, Status::Fail);
}

#[test]
fn ports_memory_conntrack_and_epoll_fail_with_their_fixes() {
    let mut facts = host();
    facts
        .sysctls
        .insert("net.ipv4.ip_local_port_range".into(), "32768 60999".into());
    facts
        .sysctls
        .insert("fs.epoll.max_user_watches".into(), "100000".into());
    facts
        .sysctls
        .insert("net.netfilter.nf_conntrack_max".into(), "65536".into());
    facts
        .sysctls
        .insert("net.netfilter.nf_conntrack_count".into(), "1000".into());
    facts
        .sysctls
        .insert("net.netfilter.nf_conntrack_buckets".into(), "16384".into());
    facts.access.insert(
        "net.netfilter.nf_conntrack_max".into(),
        SysctlAccess::ReadOnly("test".into()),
    );
    facts.mem_available = Some(100 << 20);
    let mut n = needs(200_000);
    n.loopback_only = true;
    let f = system_findings(&n, &facts);

    let ports = find(&f, "ephemeral_ports");
    assert_eq!(ports.status, Status::Fail);
    assert!(
        ports.found.starts_with("28,232 = 1 source"),
        "{}",
        ports.found
    );
    let fixes = ports.fix.join("\n");
    assert!(
        fixes.contains("net.ipv4.ip_local_port_range=\"1024 65535\""),
        "{fixes}"
    );
    assert!(fixes.contains("securityContext:"), "{fixes}");
    // 200,000 / (28,232 × 0.9) → 8 loopback sources; 4 with the wide range (64,512 × 0.9).
    assert!(
        fixes.contains("--source-ip 127.0.0.1-127.0.0.8 (or 127.0.0.1-127.0.0.4)"),
        "{fixes}"
    );

    assert_eq!(find(&f, "fs.epoll.max_user_watches").status, Status::Fail);
    let conntrack = find(&f, "net.netfilter.nf_conntrack_max");
    assert_eq!(conntrack.status, Status::Fail);
    assert!(conntrack.needed.contains("201,000"), "{}", conntrack.needed);
    assert!(
        conntrack.fix[0].contains("cannot change it"),
        "{:?}",
        conntrack.fix
    );
    assert_eq!(
        find(&f, "net.netfilter.nf_conntrack_buckets").status,
        Status::Warn
    );
    let memory = find(&f, "memory");
    assert_eq!(memory.status, Status::Fail);
    assert!(
        memory.why.contains("200,000 connections x"),
        "{}",
        memory.why
    );
}

#[test]
fn a_child_network_namespace_names_the_node_settings() {
    let mut facts = host();
    facts.initial_netns = false;
    for k in [
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_max_orphans",
        "net.core.netdev_max_backlog",
    ] {
        facts.sysctls.remove(k);
    }
    let mut n = needs(1000);
    n.role = Role::Gateway;
    let f = system_findings(&n, &facts);
    for check in [
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_max_orphans",
        "net.core.netdev_max_backlog",
    ] {
        let finding = find(&f, check);
        assert_eq!(finding.status, Status::Warn, "{finding:#?}");
        assert!(
            finding.found.contains("child network namespace"),
            "{finding:#?}"
        );
        assert!(finding.why.contains("belongs to the node"), "{finding:#?}");
    }
    // conntrack not visible, not a failure.
    assert_eq!(
        find(&f, "net.netfilter.nf_conntrack_max").status,
        Status::Pass
    );
}

#[test]
fn close_settings_warn_only_at_scale() {
    let mut facts = host();
    facts
        .sysctls
        .insert("net.ipv4.tcp_fin_timeout".into(), "60".into());
    facts
        .sysctls
        .insert("net.ipv4.tcp_tw_reuse".into(), "2".into());
    let small = system_findings(&needs(500), &facts);
    assert_eq!(
        find(&small, "net.ipv4.tcp_fin_timeout").status,
        Status::Pass
    );
    let big = system_findings(&needs(50_000), &facts);
    assert_eq!(find(&big, "net.ipv4.tcp_fin_timeout").status, Status::Warn);
    // tw_reuse = 2 covers loopback targets only.
    assert_eq!(find(&big, "net.ipv4.tcp_tw_reuse").status, Status::Warn);
    let mut loopback = needs(50_000);
    loopback.loopback_only = true;
    let f = system_findings(&loopback, &facts);
    assert_eq!(find(&f, "net.ipv4.tcp_tw_reuse").status, Status::Pass);
}

#[test]
fn source_addresses_are_test_bound() {
    let mut n = needs(100);
    n.sources = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let f = system_findings(&n, &host());
    assert_eq!(find(&f, "source_addresses").status, Status::Pass);
    // TEST-NET-3, never assigned to a host.
    n.sources.push("203.0.113.77".parse::<IpAddr>().unwrap());
    let f = system_findings(&n, &host());
    let s = find(&f, "source_addresses");
    assert_eq!(s.status, Status::Fail);
    assert!(
        s.found.contains("1 of 3 not bindable: 203.0.113.77"),
        "{}",
        s.found
    );
    // An old kernel without IP_BIND_ADDRESS_NO_PORT: capacity is per source, not per pair.
    let mut old = host();
    old.kernel_release = Some("4.1.0".into());
    let mut n = needs(100);
    n.sources = vec!["127.0.0.2".parse().unwrap()];
    n.destinations = 3;
    let f = system_findings(&n, &old);
    assert_eq!(find(&f, "kernel").status, Status::Warn);
    assert!(
        find(&f, "ephemeral_ports")
            .found
            .starts_with("64,512 = 1 sources")
    );
}

// ---------------------------------------------------------------------------------------
// The real binary on this host.

#[test]
fn too_many_connections_fail_on_open_files_naming_the_hard_limit_and_processes() {
    let n = too_many_for_one_process();
    let out = bin(&["preflight", "-c", &n.to_string()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}\n{}", stderr(&out));
    let line = text
        .lines()
        .find(|l| l.contains("open files (RLIMIT_NOFILE)"))
        .unwrap_or_else(|| panic!("no open files line:\n{text}"));
    assert!(line.starts_with("FAIL"), "{line}");
    let hard = count(hard_limit());
    assert!(line.contains(&format!("hard {hard}")), "{line}");
    // The explanation is wrapped: compare with the line breaks folded.
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&format!("hard limit {hard}")), "{text}");
    assert!(text.contains("--processes"), "{text}");
    assert!(text.contains("exit 2"), "{text}");
}

#[test]
fn five_hundred_connections_pass() {
    let out = bin(&["preflight", "-c", "500"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(!text.lines().any(|l| l.starts_with("FAIL")), "{text}");
    assert!(text.contains("embedded gateway"), "{text}");
}

#[test]
fn run_refuses_an_impossible_plan_with_the_preflight_explanation() {
    let n = too_many_for_one_process();
    let out = bin(&["run", "-c", &n.to_string(), "--ramp", "1s", "--hold", "1s"]);
    let err = stderr(&out);
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "{:?}\n{err}",
        out.status
    );
    assert!(err.contains("the plan cannot run on this host"), "{err}");
    assert!(err.contains("open files (RLIMIT_NOFILE)"), "{err}");
    let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("hard limit {}", count(hard_limit()))),
        "{err}"
    );
    assert!(err.contains("--processes"), "{err}");
    assert!(err.contains("--skip-preflight"), "{err}");
    assert!(stdout(&out).is_empty(), "nothing ran: {}", stdout(&out));
}

// ---------------------------------------------------------------------------------------
// Reachability.

fn plan_for(addr: SocketAddr) -> Plan {
    Plan::with_defaults(
        vec![Target::ws(addr, "/ws")],
        vec![Stage {
            duration: Duration::from_secs(1),
            target: 10,
        }],
    )
}

#[test]
fn reachability_passes_against_the_embedded_gateway() {
    let gw =
        GatewayHandle::start("127.0.0.1:0".parse().unwrap(), GatewayConfig::default(), 1).unwrap();
    let plan = plan_for(gw.local_addr());
    let (findings, probes) = reach::check_targets(&plan, &[]);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].status, Status::Pass, "{:#?}", findings[0]);
    assert!(
        findings[0].found.contains("upgrade 101 in"),
        "{}",
        findings[0].found
    );
    let probe = &probes[0];
    assert!(
        probe.connect_ms.is_some() && probe.upgrade_ms.is_some(),
        "{probe:?}"
    );
    assert_eq!(probe.dns_ms, None, "an IP literal needs no DNS");
}

#[test]
fn reachability_uses_the_plans_auth() {
    let secret = Secret("preflight-secret".to_owned());
    let config = GatewayConfig {
        jwt_secret: Some(secret.clone()),
        ..GatewayConfig::default()
    };
    let gw = GatewayHandle::start("127.0.0.1:0".parse().unwrap(), config, 1).unwrap();
    let mut plan = plan_for(gw.local_addr());
    let (findings, _) = reach::check_targets(&plan, &[]);
    assert_eq!(findings[0].status, Status::Fail);
    assert!(
        findings[0].found.contains("HTTP 401"),
        "{}",
        findings[0].found
    );
    assert!(findings[0].fix[0].contains("auth"), "{:?}", findings[0].fix);

    plan.handshake.auth = Auth::Jwt {
        alg: JwtAlg::HS256,
        key: secret,
        claims: serde_json::json!({"sub": "user-{conn}", "exp": "{now+3600}"}),
        placement: JwtPlacement::Header,
    };
    let (findings, _) = reach::check_targets(&plan, &[]);
    assert_eq!(findings[0].status, Status::Pass, "{:#?}", findings[0]);
}

#[test]
fn reachability_covers_wss_with_the_plans_tls_settings() {
    let server = wsscale::gateway::tls::self_signed(&["127.0.0.1".to_owned()]).unwrap();
    let config = GatewayConfig {
        tls: Some(server.config.clone()),
        ..GatewayConfig::default()
    };
    let gw = GatewayHandle::start("127.0.0.1:0".parse().unwrap(), config, 1).unwrap();
    let mut plan = plan_for(gw.local_addr());
    let target = &mut plan.targets[0];
    target.tls = true;
    target.url = target.url.replacen("ws://", "wss://", 1);
    // Untrusted self-signed certificate: the TLS step fails and says how to trust it.
    let (findings, probes) = reach::check_targets(&plan, &[]);
    assert_eq!(findings[0].status, Status::Fail, "{:#?}", findings[0]);
    assert!(findings[0].found.contains("TLS"), "{}", findings[0].found);
    assert!(
        findings[0].fix[0].contains("--tls-ca"),
        "{:?}",
        findings[0].fix
    );
    assert_eq!(probes[0].upgrade_ms, None);
    // Trusting its certificate: TLS and the upgrade succeed.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.cert_pem).unwrap();
    plan.tls.ca_files = vec![ca];
    let (findings, probes) = reach::check_targets(&plan, &[]);
    assert_eq!(findings[0].status, Status::Pass, "{:#?}", findings[0]);
    assert!(probes[0].tls_ms.is_some() && probes[0].upgrade_ms.is_some());
}

#[test]
fn reachability_fails_against_a_closed_port() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }; // closed again here
    let plan = plan_for(addr);
    let (findings, probes) = reach::check_targets(&plan, &[]);
    assert_eq!(findings[0].status, Status::Fail);
    assert!(
        findings[0].found.contains("TCP connect"),
        "{}",
        findings[0].found
    );
    assert!(
        findings[0].fix[0].contains("wsscale serve"),
        "{:?}",
        findings[0].fix
    );
    assert_eq!(probes[0].status, Status::Fail);
}

#[test]
fn no_target_means_the_embedded_gateway() {
    let plan = Plan::with_defaults(
        Vec::new(),
        vec![Stage {
            duration: Duration::from_secs(1),
            target: 10,
        }],
    );
    let (findings, probes) = reach::check_targets(&plan, &[]);
    assert_eq!(findings[0].status, Status::Pass);
    assert!(findings[0].found.contains("embedded gateway"));
    assert!(probes.is_empty());
    assert!(check_system(&plan, Role::Loadgen).needs.embedded_gateway);
}

// ---------------------------------------------------------------------------------------
// JSON.

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    jsonschema::meta::validate(&schema).expect("schema is a valid JSON Schema");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

#[test]
fn json_output_matches_the_schema() {
    let v = validator();
    for (n, code) in [(500, 0), (too_many_for_one_process(), 2)] {
        let out = bin(&["preflight", "-c", &n.to_string(), "--json"]);
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
        assert_valid(&v, &doc);
        assert_eq!(doc["exit_code"], code);
        assert_eq!(doc["connections"], n);
        assert_eq!(doc["host"]["nofile_hard"], hard_limit());
    }
    // With probed targets (one passing, one closed) and the gateway role.
    let gw =
        GatewayHandle::start("127.0.0.1:0".parse().unwrap(), GatewayConfig::default(), 1).unwrap();
    let mut plan = plan_for(gw.local_addr());
    plan.targets
        .push(Target::ws("127.0.0.1:1".parse().unwrap(), "/"));
    let report = preflight(&plan, Role::Loadgen, &[]);
    let doc = render::json(&report);
    assert_valid(&v, &doc);
    assert_eq!(doc["targets"].as_array().unwrap().len(), 2);
    assert_eq!(doc["targets"][0]["status"], "pass");
    assert_eq!(doc["targets"][1]["status"], "fail");
    assert_valid(&v, &render::json(&preflight(&plan, Role::Gateway, &[])));
    // Every field is documented.
    let mut keys = Vec::new();
    collect_keys(&doc, &mut keys);
    for key in keys {
        assert!(
            DOC.contains(&format!("`{key}`")),
            "JSON field {key} is not documented in docs/preflight.md"
        );
    }
    // A document with an extra field is rejected: the schema is closed.
    let mut extra = doc.clone();
    extra["surprise"] = Value::Bool(true);
    assert!(!v.is_valid(&extra));
}

fn collect_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                out.push(k.clone());
                collect_keys(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_keys(i, out)),
        _ => {}
    }
}

#[test]
fn a_pair_holding_more_than_half_the_port_range_warns_and_suggests_sources() {
    let mut facts = host();
    facts
        .sysctls
        .insert("net.ipv4.ip_local_port_range".into(), "32768 60999".into());
    // 18,000 fit in 28,232 ports at ≤ 90 % use, but one pair holding > 14,116 slows connect().
    let f = system_findings(&needs(18_000), &facts);
    let ports = find(&f, "ephemeral_ports");
    assert_eq!(ports.status, Status::Warn);
    assert!(ports.why.contains("more than half"), "{}", ports.why);
    assert!(
        ports.fix.join("\n").contains("at least 2 source addresses"),
        "{:?}",
        ports.fix
    );
    // Two sources: 9,000 per pair, under half the range.
    let mut n = needs(18_000);
    n.sources = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let f = system_findings(&n, &facts);
    assert_eq!(find(&f, "ephemeral_ports").status, Status::Pass);
}

// ---------------------------------------------------------------------------------------
// Ports held now.

fn held(range: (u16, u16), time_wait: u64, active: u64) -> PortsHeld {
    PortsHeld {
        range,
        active_sockets: active,
        time_wait_sockets: time_wait,
        ports: time_wait + active,
        time_wait_ports: time_wait,
        reserved_ports: 0,
        time_wait_clears_in_ms: (time_wait > 0).then_some(42_000),
        // 2023-11-14 22:13:20 UTC.
        read_at_unix_ms: 1_700_000_000_000,
    }
}

#[test]
fn ports_held_now_shrink_the_free_figure_and_warn_until_they_expire() {
    // The case: 18,000 ports of the default range held in TIME_WAIT by explicit binds,
    // and a run of 18,000 from one fresh source address.
    let mut facts = host();
    facts
        .sysctls
        .insert("net.ipv4.ip_local_port_range".into(), "32768 60999".into());
    facts.ports_held = Some(held((32768, 60999), 18_000, 0));
    let mut n = needs(18_000);
    n.sources = vec!["127.0.0.2".parse().unwrap()];
    n.loopback_only = true;
    let f = system_findings(&n, &facts);
    let ports = find(&f, "ephemeral_ports");
    assert!(
        ports.found.ends_with("; 10,232 free now"),
        "{}",
        ports.found
    );
    let h = find(&f, "ports_held");
    assert_eq!(h.status, Status::Warn, "{h:#?}");
    assert_eq!(
        h.found,
        "18,000 of 28,232 held: 18,000 in TIME_WAIT until 22:14:02 UTC"
    );
    // 18,000 at <= 90 % = 20,000 ports on the one pair: at most 8,232 may be held.
    assert_eq!(h.needed, "<= 8,232 held (20,000 free per pair)");
    assert!(
        h.why.contains(
            "18,000 connections at <= 90% use over 1 (source, destination) pair need 20,000 free \
             ports per pair, of the 28,232 in 32768-60999; the last TIME_WAIT socket of the range \
             expires in 42 s"
        ),
        "{}",
        h.why
    );
    assert!(h.why.contains("whatever the source address"), "{}", h.why);
    assert!(
        h.why
            .contains("about 10,232 connections open before connect() fails"),
        "{}",
        h.why
    );
    assert!(
        h.fix[0].starts_with("wait until 22:14:02 UTC (42 s) for the 18,000 ports"),
        "{:?}",
        h.fix
    );
    assert!(
        h.fix[1].contains("sport >= :32768 and sport <= :60999"),
        "{:?}",
        h.fix
    );

    // Sockets in use stay held: said so, with the fix.
    facts.ports_held = Some(held((32768, 60999), 0, 12_000));
    let f = system_findings(&n, &facts);
    let h = find(&f, "ports_held");
    assert_eq!(h.status, Status::Warn);
    assert_eq!(h.found, "12,000 of 28,232 held: 12,000 in use");
    assert!(
        h.fix.iter().any(|l| l.contains("12,000 ports stay held")),
        "{:?}",
        h.fix
    );

    // A smaller plan fits in what is free: pass, with the count shown.
    let f = system_findings(&needs(5_000), &facts);
    let h = find(&f, "ports_held");
    assert_eq!(h.status, Status::Pass, "{h:#?}");
    assert!(h.found.starts_with("12,000 of 28,232 held"), "{}", h.found);

    // Two source addresses to two destinations: 4 pairs share the need.
    let mut n = needs(18_000);
    n.sources = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    n.destinations = 2;
    let f = system_findings(&n, &facts);
    assert_eq!(find(&f, "ports_held").status, Status::Pass);
}

// ---------------------------------------------------------------------------------------
// The --processes source split.

#[test]
fn source_split_arithmetic_table() {
    // (addresses, processes, connections, layout, addresses per process, most on one address)
    type Case = (usize, usize, u64, Layout, &'static [usize], u64);
    let cases: &[Case] = &[
        // The README's 100K example: disjoint blocks would leave 4 processes a single address.
        (8, 6, 100_000, Layout::Groups { groups: 2 }, &[4; 6], 12_500),
        (12, 6, 100_000, Layout::Disjoint, &[2; 6], 8_334),
        (6, 6, 100_000, Layout::Disjoint, &[1; 6], 16_667),
        (16, 6, 100_000, Layout::Groups { groups: 2 }, &[8; 6], 6_250),
        (4, 6, 100_000, Layout::Groups { groups: 2 }, &[2; 6], 25_000),
        (5, 6, 100_000, Layout::Shared, &[5; 6], 20_000),
        (9, 4, 100_000, Layout::Shared, &[9; 4], 11_112),
        (2, 6, 60_000, Layout::Groups { groups: 2 }, &[1; 6], 30_000),
        (1, 3, 30_000, Layout::Shared, &[1; 3], 30_000),
        (3, 1, 30_000, Layout::Disjoint, &[3], 10_000),
    ];
    for &(m, k, n, layout, per_process, most) in cases {
        let shares = equal_shares(n, k);
        let s = spread(m, &shares);
        let case = format!("{m} addresses, {k} processes, {n} connections");
        assert_eq!(s.layout, layout, "{case}");
        let lens: Vec<usize> = s.ranges.iter().map(|r| r.len()).collect();
        assert_eq!(lens, per_process, "{case}");
        assert_eq!(s.max_load.ceil() as u64, most, "{case}");
    }
    // What the old disjoint split did with the README's example: 16,667 on one pair.
    let old = [0..2, 2..4, 4..5, 5..6, 6..7, 7..8];
    assert_eq!(
        max_load(8, &equal_shares(100_000, 6), &old).ceil() as u64,
        16_667
    );
    // Uneven shares: disjoint blocks in proportion (1 and 3 addresses: 10,000 each).
    let s = spread(4, &[10_000, 30_000]);
    assert_eq!(s.layout, Layout::Disjoint);
    assert_eq!(s.ranges, vec![0..1, 1..4]);
    // Every layout uses every address, stays in bounds, and reaches the even load
    // (connections / addresses) up to the 1-connection differences between equal shares.
    for m in 1..=20 {
        for k in 1..=12 {
            let s = spread(m, &equal_shares(100_000, k));
            let mut used = vec![false; m];
            for r in &s.ranges {
                assert!(!r.is_empty() && r.end <= m, "{m}/{k}: {:?}", s.ranges);
                used[r.clone()].iter_mut().for_each(|u| *u = true);
            }
            assert!(used.iter().all(|&u| u), "{m}/{k}: {:?}", s.ranges);
            assert!(
                s.max_load <= 100_000.0 / m as f64 + k as f64,
                "{m}/{k}: {} per address",
                s.max_load
            );
        }
    }
}

#[test]
fn source_split_check_reports_the_layout_and_proposes_addresses() {
    let mut facts = host();
    facts
        .sysctls
        .insert("net.ipv4.ip_local_port_range".into(), "32768 60999".into());
    let loopback = |k: u8| -> Vec<IpAddr> {
        (2..2 + k)
            .map(|i| format!("127.0.0.{i}").parse().unwrap())
            .collect()
    };
    let mut n = needs(100_000);
    n.processes = 6;
    n.loopback_only = true;
    n.embedded_gateway = true;
    n.sources = loopback(8);
    let f = system_findings(&n, &facts);
    let split = find(&f, "source_split");
    assert_eq!(split.status, Status::Pass, "{split:#?}");
    assert_eq!(
        split.found,
        "8 addresses, 2 groups of 3 processes sharing 4 each: 12,500 per pair"
    );
    assert_eq!(split.needed, "<= 14,116 per pair (half of 28,232 ports)");

    // Six addresses: one each, 16,667 per pair, over half the range.
    n.sources = loopback(6);
    let f = system_findings(&n, &facts);
    let split = find(&f, "source_split");
    assert_eq!(split.status, Status::Warn);
    assert_eq!(split.found, "6 addresses, 1 per process: 16,667 per pair");
    assert_eq!(
        split.fix[0],
        "use at least 8 source addresses (12 give each of the 6 processes 2 of its own), e.g. \
         --source-ip 127.0.0.2-127.0.0.13 on loopback"
    );
    assert!(split.fix[1].contains("1024 65535"), "{:?}", split.fix);

    // One process, or no --source-ip: the ephemeral-port check covers it.
    n.processes = 1;
    assert!(
        system_findings(&n, &facts)
            .iter()
            .all(|f| f.check != "source_split")
    );
    n.processes = 6;
    n.sources.clear();
    assert!(
        system_findings(&n, &facts)
            .iter()
            .all(|f| f.check != "source_split")
    );
}

#[test]
fn preflight_with_processes_shows_the_split() {
    let out = bin(&[
        "preflight",
        "-c",
        "100000",
        "--processes",
        "6",
        "--source-ip",
        "127.0.0.2-127.0.0.9",
        "--json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_valid(&validator(), &doc);
    let split = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "source_split")
        .unwrap_or_else(|| panic!("no source_split finding: {doc:#}"));
    let found = split["found"].as_str().unwrap();
    assert_eq!(
        found,
        "8 addresses, 2 groups of 3 processes sharing 4 each: 12,500 per pair"
    );
}

// ---------------------------------------------------------------------------------------
// The conntrack probe, against a fake /proc tree.

/// A `/proc` tree with a conntrack table of 1,000 entries, `count` in use, and one socket of
/// the port range in TIME_WAIT.
fn fake_proc(count: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let put = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    put("sys/net/netfilter/nf_conntrack_max", "1000\n");
    put(
        "sys/net/netfilter/nf_conntrack_count",
        &format!("{count}\n"),
    );
    put("sys/net/netfilter/nf_conntrack_buckets", "16384\n");
    put("sys/net/ipv4/ip_local_port_range", "32768\t60999\n");
    put("sys/net/ipv4/tcp_mem", "1 2 3\n");
    put("sys/kernel/osrelease", "6.8.0-fake\n");
    put(
        "net/tcp",
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  \
         timeout inode\n   0: 0100007F:9C40 0100007F:2328 06 00000000:00000000 03:00000BB8 \
         00000000     0        0 0 3 0000000000000000\n",
    );
    dir
}

fn conntrack_finding(report: &wsscale::system::preflight::Report) -> Finding {
    find(&report.findings, "net.netfilter.nf_conntrack_max").clone()
}

#[test]
fn conntrack_that_tracks_nothing_passes_with_a_note() {
    let root = fake_proc(0);
    // A listener nobody reads from: the kernel completes the handshakes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut plan = plan_for(addr);
    plan.stages[0].target = 5_000;
    let report = check_system_at(&plan, Role::Loadgen, root.path());
    let f = conntrack_finding(&report);
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert!(
        f.found.ends_with("; loaded, not tracking this traffic"),
        "{}",
        f.found
    );
    assert!(
        f.why.starts_with(&format!(
            "probe: 16 connections held to {addr}: nf_conntrack_count 0 -> 0; nothing tracks \
             this traffic"
        )),
        "{}",
        f.why
    );
    assert!(f.why.contains("1,000 is short of the 5,000"), "{}", f.why);
    assert!(f.fix.is_empty(), "{:?}", f.fix);
    // The other facts came from the same tree.
    let held = report.facts.ports_held.as_ref().unwrap();
    assert_eq!((held.time_wait_sockets, held.ports), (1, 1));
    assert_eq!(report.facts.kernel_release.as_deref(), Some("6.8.0-fake"));

    // The embedded gateway: the probe connects to a listener of its own on loopback.
    let mut plan = plan_for(addr);
    plan.targets.clear();
    plan.stages[0].target = 5_000;
    let f = conntrack_finding(&check_system_at(&plan, Role::Loadgen, root.path()));
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert!(
        f.why.contains("its own listener on 127.0.0.1:"),
        "{}",
        f.why
    );

    // A table large enough: no probe, nothing said about tracking.
    let mut plan = plan_for(addr);
    plan.stages[0].target = 500;
    let report = check_system_at(&plan, Role::Loadgen, root.path());
    assert!(report.facts.conntrack_probe.is_none());
    assert!(!conntrack_finding(&report).found.contains("tracking"));
}

#[test]
fn conntrack_that_tracks_this_traffic_still_fails() {
    let root = fake_proc(40);
    let count_file = root.path().join("sys/net/netfilter/nf_conntrack_count");
    // The "kernel": every accepted connection takes a table entry.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let path = count_file.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            held.push(stream);
            let n: u64 = std::fs::read_to_string(&path)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            std::fs::write(&path, format!("{}\n", n + 1)).unwrap();
        }
    });
    let mut plan = plan_for(addr);
    plan.stages[0].target = 5_000;
    let report = check_system_at(&plan, Role::Loadgen, root.path());
    let f = conntrack_finding(&report);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.found.ends_with("; tracking this traffic"), "{}", f.found);
    let probe = report.facts.conntrack_probe.as_ref().unwrap();
    assert_eq!(probe.tracked, Some(true));
    assert_eq!(probe.before, 40);
    assert!(probe.during >= 48, "{probe:?}");
    assert!(
        f.why.contains(&format!(
            "probe: 16 connections held to {addr}: nf_conntrack_count 40 -> "
        )),
        "{}",
        f.why
    );
    assert!(f.why.contains("this traffic is tracked"), "{}", f.why);
    assert!(f.fix.iter().any(|l| l.contains("notrack")), "{:?}", f.fix);
    assert!(report.failed());
}

#[test]
fn conntrack_probe_that_cannot_connect_keeps_the_failure() {
    let root = fake_proc(0);
    // A port nothing listens on.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut plan = plan_for(addr);
    plan.stages[0].target = 5_000;
    let f = conntrack_finding(&check_system_at(&plan, Role::Loadgen, root.path()));
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(
        f.why
            .contains("could not tell whether this traffic is tracked"),
        "{}",
        f.why
    );
    assert!(f.why.contains("so it is taken as tracked"), "{}", f.why);
}

// ---------------------------------------------------------------------------------------
// One million connections with the gateway on the same host (bench/hold-1m.sh).

/// This machine's shape: 20,000 descriptors per process (not raisable), fs.file-max 2,466,116,
/// 600 files open, 24 GiB available.
fn million_host() -> HostFacts {
    let mut facts = host();
    facts.nofile = Some(NofileLimits {
        soft: 20_000,
        hard: 20_000,
    });
    facts.mem_available = Some(24 << 30);
    for (k, v) in [
        ("fs.file-max", "2466116"),
        ("fs.file-nr", "600 0 2466116"),
        ("fs.epoll.max_user_watches", "5491378"),
    ] {
        facts.sysctls.insert(k.to_owned(), v.to_owned());
    }
    facts
}

/// `wsscale preflight -c 1M --processes 51 --source-ip 127.1.0.1-127.1.0.51` (no target: the
/// embedded gateway).
fn million_needs() -> Needs {
    let mut n = needs(1_000_000);
    n.embedded_gateway = true;
    n.loopback_only = true;
    n.processes = 51;
    n.sources = (1..=51)
        .map(|i| IpAddr::from([127, 1, 0, i as u8]))
        .collect();
    n
}

#[test]
fn reuseport_processes_leave_room_for_the_hash_spread() {
    // (connections, per process, processes): 5 standard deviations under the limit.
    for (conns, per, processes) in [
        (1_000_000, 19_936, Some(53)),
        (100_000, 19_936, Some(6)),
        (19_000, 19_936, Some(1)),
        (0, 19_936, Some(1)),
        (1_000, 10, None),
    ] {
        assert_eq!(reuseport_processes(conns, per), processes, "{conns}/{per}");
    }
    // The fullest process at 5 sigma stays under the limit.
    let p = reuseport_processes(1_000_000, 19_936).unwrap() as f64;
    let mean = 1_000_000.0 / p;
    assert!(mean + 5.0 * mean.sqrt() < 19_936.0, "{mean}");
}

#[test]
fn a_million_with_the_gateway_here_counts_both_sockets_and_every_process() {
    let n = million_needs();
    let facts = million_host();
    let f = system_findings(&n, &facts);
    assert_eq!(find(&f, "nofile").status, Status::Pass, "{f:#?}");
    let file_max = find(&f, "fs.file-max");
    assert_eq!(file_max.status, Status::Pass, "{file_max:#?}");
    assert_eq!(file_max.needed, format!(">= {}", count(2_000_600)));
    assert!(
        file_max.why.contains("1,000,000 connections x 2 sockets"),
        "{}",
        file_max.why
    );
    assert_eq!(
        find(&f, "fs.epoll.max_user_watches").needed,
        format!(">= {}", count(2_000_000))
    );
    // 51 client processes + 53 gateway processes, each with its baseline.
    let memory = find(&f, "memory");
    let expected = 1_000_000 * bytes_per_conn(false, true) + 104 * PROCESS_BASE_BYTES;
    assert!(
        memory.why.contains("104 wsscale processes"),
        "{}",
        memory.why
    );
    assert_eq!(
        memory.needed,
        format!("about {}", wsscale::system::human::bytes(expected))
    );

    // A host with 1.5M files allowed fails on fs.file-max, though one side alone would fit.
    let mut small = million_host();
    small.sysctls.insert("fs.file-max".into(), "1500000".into());
    let f = system_findings(&n, &small);
    let file_max = find(&f, "fs.file-max");
    assert_eq!(file_max.status, Status::Fail);
    assert!(file_max.why.contains("ENFILE"), "{}", file_max.why);

    // Too little memory for both sides fails, with the arithmetic.
    let mut tight = million_host();
    tight.mem_available = Some(expected - 1);
    let memory = find(&system_findings(&n, &tight), "memory").clone();
    assert_eq!(memory.status, Status::Fail, "{memory:#?}");
}

#[test]
fn a_loopback_target_puts_the_gateway_sockets_on_this_host() {
    let mut facts = million_host();
    facts.sysctls.insert("fs.file-max".into(), "1500000".into());
    let mut n = needs(1_000_000);
    n.processes = 51;
    n.sources = million_needs().sources;
    // A remote target: only the client sockets are here.
    let f = system_findings(&n, &facts);
    assert_eq!(find(&f, "fs.file-max").status, Status::Pass);
    // The same plan against a gateway on loopback: both sides are here.
    n.loopback_only = true;
    let f = system_findings(&n, &facts);
    let file_max = find(&f, "fs.file-max");
    assert_eq!(file_max.status, Status::Fail, "{file_max:#?}");
    assert_eq!(file_max.needed, format!(">= {}", count(2_000_600)));
    let memory = find(&f, "memory");
    assert!(
        memory.why.contains("the target is on loopback"),
        "{}",
        memory.why
    );
}

#[test]
fn cpu_predicts_that_a_million_pinged_every_30s_does_not_fit_two_cores() {
    let mut facts = million_host();
    facts.cores = 2;
    let mut n = million_needs();
    // --ping-interval 30s: 1M × 1/30 s × 100 µs (client, gateway and kernel here) = 3.33.
    n.sends_per_conn_s = 1.0 / 30.0;
    let f = wsscale::system::preflight::cpu::steady(&n, &facts);
    assert_eq!(f.status, Status::Warn, "{f:#?}");
    assert!(f.needed.contains("3.33 cores"), "{f:#?}");
    assert!(f.why.contains("1,000,000 connections"), "{f:#?}");
    assert!(
        f.fix.iter().any(|l| l.contains("--ping-interval")),
        "{f:#?}"
    );
    // A ping every 120 s: 0.83 cores, under half of two.
    n.sends_per_conn_s = 1.0 / 120.0;
    let f = wsscale::system::preflight::cpu::steady(&n, &facts);
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert!(f.needed.contains("0.83 cores"), "{f:#?}");
    // The gateway elsewhere: the client's share only (30 µs a send), a ping every 60 s.
    n.sends_per_conn_s = 1.0 / 60.0;
    n.embedded_gateway = false;
    n.loopback_only = false;
    let f = wsscale::system::preflight::cpu::steady(&n, &facts);
    assert!(f.needed.contains("0.50 cores"), "{f:#?}");
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    // Nothing scheduled: nothing to warn about.
    n.sends_per_conn_s = 0.0;
    let f = wsscale::system::preflight::cpu::steady(&n, &facts);
    assert_eq!(f.status, Status::Pass, "{f:#?}");
}
