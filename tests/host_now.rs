//! The host as it is now, in network namespaces this test creates (the host's own settings
//! are never touched):
//!
//! - **Ports held in TIME_WAIT by explicit binds.** With `ip_local_port_range` narrowed to 50
//!   ports and 30 of them held in `TIME_WAIT` by sockets bound to their port explicitly (on
//!   127.0.0.1), `wsscale preflight` counts them, says until when, and shrinks the free
//!   figure; `wsscale run -c 40` from a fresh source address (127.0.0.2) runs out of ports at
//!   about 20, says `SOURCE PORTS EXHAUSTED (retrying, N retries)`, and once the TIME_WAIT
//!   sockets are gone opens the other 20: the report counts the retries. Linux keeps
//!   `TIME_WAIT` for a fixed 60 s; the test ends them early with `ss -K` (SOCK_DESTROY, the
//!   same release the kernel does at expiry) and waits for the real expiry only on kernels
//!   without it.
//! - **Conntrack.** With `nf_conntrack` loaded but no rule in the namespace, a plan larger than
//!   `nf_conntrack_max` passes the conntrack check as "loaded, not tracking this traffic";
//!   with an nftables rule that uses connection tracking it fails as "tracking this
//!   traffic". Skipped (with a message) when the module is not loaded or `nft` is missing.
//!
//! The tests need root and iproute2 (`ip`, `ss`). They fail with a clear message when those
//! are missing; set `WSSCALE_SKIP_NETNS_TESTS=1` to skip them knowingly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

fn skip() -> bool {
    if std::env::var_os("WSSCALE_SKIP_NETNS_TESTS").is_some() {
        eprintln!("WSSCALE_SKIP_NETNS_TESTS set: skipping the network-namespace test");
        return true;
    }
    false
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A network namespace with `lo` up, deleted on drop (also when the test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn create(tag: &str) -> Netns {
        let name = format!("wsscale-{tag}-{}", std::process::id());
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
        let ns = Netns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    fn exec(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("ip netns exec")
    }

    /// Runs `args` in the namespace and insists on success.
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.exec(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        out
    }

    fn write_sysctl(&self, path: &str, value: &str) {
        self.ok(&["sh", "-c", &format!("echo '{value}' > /proc/sys/{path}")]);
    }

    fn read(&self, path: &str) -> Option<String> {
        let out = self.exec(&["cat", path]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Sockets in TIME_WAIT in the namespace (state 06 in `/proc/net/tcp`).
    fn time_wait(&self) -> usize {
        let tcp = self.read("/proc/net/tcp").expect("/proc/net/tcp");
        tcp.lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(3) == Some("06"))
            .count()
    }

    /// Runs `f` on a thread that has entered the namespace (threads it starts are in it too).
    fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns(2) with a valid descriptor of a network namespace; it changes only
            // the namespace of this thread.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// A child process killed and reaped on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Leaves one socket in TIME_WAIT per port of `ports`, each bound to 127.0.0.1:PORT
/// explicitly and connected to a listener on `server`; the client closes first, so the
/// TIME_WAIT is on the bound side. Runs inside the namespace.
fn time_wait_on(ports: std::ops::Range<u16>, server: u16) {
    let listener = TcpListener::bind(("127.0.0.1", server)).expect("holder listener");
    for port in ports {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.set_reuse_address(true).unwrap();
        let local: SocketAddr = ([127, 0, 0, 1], port).into();
        s.bind(&local.into())
            .unwrap_or_else(|e| panic!("bind {local}: {e}"));
        let remote: SocketAddr = ([127, 0, 0, 1], server).into();
        s.connect(&remote.into()).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        drop(s); // FIN from the bound side first
        let mut rest = Vec::new();
        let _ = accepted.read_to_end(&mut rest); // EOF: the client's FIN arrived
        drop(accepted); // the server's FIN: the client side enters TIME_WAIT
    }
}

/// Waits until something accepts TCP connections at `addr` inside `ns`.
fn wait_listening(ns: &Netns, addr: SocketAddr) {
    let ok = ns.within(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                // Closed with a reset: no TIME_WAIT left behind.
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    assert!(ok, "nothing listens on {addr} in the namespace");
}

fn finding<'a>(doc: &'a Value, check: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no finding {check}: {doc:#}"))
}

fn preflight_json(ns: &Netns, args: &[&str]) -> Value {
    let mut all = vec![BIN, "preflight", "--json"];
    all.extend_from_slice(args);
    let out = ns.exec(&all);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn ports_held_in_time_wait_are_counted_and_an_exhausted_source_recovers() {
    if skip() {
        return;
    }
    let ns = Netns::create("held");
    ns.write_sysctl("net/ipv4/ip_local_port_range", "40000 40049");
    assert_eq!(
        ns.read("/proc/sys/net/ipv4/ip_local_port_range").as_deref(),
        Some("40000\t40049")
    );
    let _gateway = Kid(ns
        .command(&[BIN, "serve", "--listen", "127.0.0.1:9000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wsscale serve"));
    wait_listening(&ns, ([127, 0, 0, 1], 9000).into());

    // Can TIME_WAIT sockets be ended early here (SOCK_DESTROY)? One on a port outside the
    // range tells.
    let before = ns.time_wait();
    ns.within(|| time_wait_on(39000..39001, 9101));
    assert_eq!(ns.time_wait(), before + 1, "one more TIME_WAIT socket");
    let _ = ns.exec(&["ss", "-K", "-tan", "state", "time-wait"]);
    let destroy = ns.time_wait() == 0;
    if !destroy {
        eprintln!(
            "this kernel cannot end TIME_WAIT sockets early (ss -K); waiting for their \
             60 s expiry instead"
        );
    }

    // 30 of the 50 ports held in TIME_WAIT by explicit binds on 127.0.0.1.
    ns.within(|| time_wait_on(40000..40030, 9100));
    let held = ns.time_wait();
    assert!(held >= 30, "{held} sockets in TIME_WAIT");

    // Preflight counts them and says until when; the free figure shrinks to 20.
    let doc = preflight_json(
        &ns,
        &[
            "-c",
            "40",
            "--source-ip",
            "127.0.0.2",
            "--target",
            "ws://127.0.0.1:9000/",
        ],
    );
    let ports_held = finding(&doc, "ports_held");
    let found = ports_held["found"].as_str().unwrap();
    assert!(
        found.starts_with("30 of 50 held: 30 in TIME_WAIT until "),
        "{found}"
    );
    assert_eq!(ports_held["status"], "warn", "{ports_held:#}");
    assert!(
        ports_held["why"]
            .as_str()
            .unwrap()
            .contains("about 20 connections open before connect() fails"),
        "{ports_held:#}"
    );
    let ephemeral = finding(&doc, "ephemeral_ports");
    assert!(
        ephemeral["found"]
            .as_str()
            .unwrap()
            .ends_with("; 20 free now"),
        "{ephemeral:#}"
    );

    // The run: about 20 open, then the pair is full and retried; once the TIME_WAIT sockets
    // are gone the other 20 open.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let hold = if destroy { "10s" } else { "75s" };
    let mut run = Kid(ns
        .command(&[
            BIN,
            "run",
            "--target",
            "ws://127.0.0.1:9000/",
            "-c",
            "40",
            "--ramp",
            "0s",
            "--hold",
            hold,
            "--source-ip",
            "127.0.0.2",
            "--report-json",
            report.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsscale run"));
    let stderr = run.0.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let exhausted = loop {
        let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            break None;
        };
        seen.push(line.clone());
        if line.contains("SOURCE PORTS EXHAUSTED (retrying, ") {
            break Some(line);
        }
    };
    let exhausted =
        exhausted.unwrap_or_else(|| panic!("no exhaustion in the live output:\n{seen:#?}"));
    assert!(exhausted.contains("open 2"), "about 20 open: {exhausted}");
    // The ports come free.
    if destroy {
        ns.ok(&["ss", "-K", "-tan", "state", "time-wait"]);
    }
    let status = run.0.wait().expect("wait for the run");
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let mut stdout = String::new();
    run.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap())
        .unwrap_or_else(|e| panic!("{e}\n{stdout}\n{seen:#?}"));
    let c = &doc["connections"];
    assert_eq!(c["peak_open"], 40, "recovered to 40: {c:#}\n{seen:#?}");
    assert_eq!(c["established"], 40, "{c:#}");
    assert_eq!(c["failed"], 0, "a full pair is not a failure: {c:#}");
    let retries = c["source_port_retries"].as_u64().unwrap();
    assert!(retries >= 1, "{c:#}");
    assert_eq!(doc["sources_exhausted"], true);
    assert!(
        c["per_source"][0]["addr_not_available"].as_u64().unwrap() >= 1,
        "{c:#}"
    );
    assert!(
        status.success(),
        "the run reached its peak: {status}\n{stdout}\n{seen:#?}"
    );
    // After recovery the live line says how many retries it took.
    assert!(
        seen.iter().any(|l| l.contains("| source port retries ")),
        "{seen:#?}"
    );
}

#[test]
fn conntrack_probe_tells_loaded_from_tracking() {
    if skip() {
        return;
    }
    let ns = Netns::create("ct");
    let Some(max) = ns
        .read("/proc/sys/net/netfilter/nf_conntrack_max")
        .and_then(|v| v.parse::<u64>().ok())
    else {
        eprintln!("nf_conntrack is not loaded on this host: nothing to probe; skipping");
        return;
    };
    // More connections than the table holds, against the embedded gateway (loopback).
    let n = (max + 1000).to_string();
    let doc = preflight_json(&ns, &["-c", &n]);
    let f = finding(&doc, "net.netfilter.nf_conntrack_max");
    assert_eq!(f["status"], "pass", "{f:#}");
    let found = f["found"].as_str().unwrap();
    assert!(
        found.ends_with("loaded, not tracking this traffic"),
        "{f:#}"
    );
    assert!(
        f["why"]
            .as_str()
            .unwrap()
            .starts_with("probe: 16 connections held to its own listener on 127.0.0.1:"),
        "{f:#}"
    );

    // A rule that needs connection tracking: conntrack hooks register in this namespace.
    let nft = ns
        .command(&["nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut nft) = nft else {
        eprintln!("nft (nftables) is not installed: the tracking half is skipped");
        return;
    };
    nft.stdin
        .take()
        .unwrap()
        .write_all(
            b"table inet wsscale_test {\n  chain out {\n    type filter hook output priority 0;\n    \
              ct state established,related accept\n  }\n}\n",
        )
        .unwrap();
    let out = nft.wait_with_output().unwrap();
    assert!(out.status.success(), "nft: {}", text(&out));
    let doc = preflight_json(&ns, &["-c", &n]);
    let f = finding(&doc, "net.netfilter.nf_conntrack_max");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["found"]
            .as_str()
            .unwrap()
            .ends_with("; tracking this traffic"),
        "{f:#}"
    );
    assert!(
        f["why"]
            .as_str()
            .unwrap()
            .contains("this traffic is tracked"),
        "{f:#}"
    );
    assert_eq!(doc["exit_code"], 2);
}
