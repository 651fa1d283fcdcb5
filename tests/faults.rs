//! Faults, each a test, with real processes where the fault is a process's fate: the
//! gateway (`wsscale serve`) killed with SIGKILL mid-hold and restarted, the gateway
//! stopped with SIGSTOP, an agent killed with SIGKILL, the coordinator killed with SIGKILL,
//! a run killed with SIGKILL (its last checkpoint survives), and a report path that cannot
//! be written (refused before the run).
//!
//! Waits poll a condition with a deadline (the engine's observer channel, the gateway's
//! counters, a file's contents); nothing sleeps to synchronize.

mod util;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use util::{UNTIL_STOPPED, WAIT, eventually, spawn, stage};
use wsscale::cluster::coordinator::{Coordinator, CoordinatorConfig};
use wsscale::engine::{self, RunOptions};
use wsscale::gateway::GatewayConfig;
use wsscale::metrics::verdict::{self, Status};
use wsscale::metrics::{Counters, DropReason, Gauges, RunOutcome};
use wsscale::plan::{PingSpec, Plan, Reconnect, Secret};

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

/// A `wsscale serve` child process, killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(listen: &str) -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("serve prints its address").unwrap();
            if let Some(url) = line.strip_prefix("listening on ws://") {
                break url.trim_end_matches('/').parse().unwrap();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Serve { child, addr }
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `plan` in-process; `step` sees the totals and gauges after every snapshot and may act
/// on them (kill, restart…); the run is stopped once `step` returns true.
fn drive(plan: &Plan, what: &str, mut step: impl FnMut(&Counters, &Gauges) -> bool) -> RunOutcome {
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = RunOptions::new(stop.clone());
    let (tx, rx) = mpsc::channel();
    opts.observer = Some(tx);
    opts.snapshot_every = Duration::from_millis(50);
    let plan = plan.clone();
    let outcome = spawn(move || engine::run(&plan, &opts).expect("engine run"));
    let deadline = Instant::now() + 2 * WAIT;
    let mut totals = Counters::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((snapshot, last)) => {
                totals.merge(&snapshot.counters);
                if step(&totals, &snapshot.gauges) {
                    break;
                }
                assert!(!last, "the run ended before {what}: {totals:?}");
            }
            Err(e) => panic!("{e:?} waiting for {what}: {totals:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    outcome
        .recv_timeout(WAIT)
        .expect("the run ends once stopped")
}

fn hold_plan(addr: SocketAddr, n: u64) -> Plan {
    let mut plan = util::plan_for(addr, vec![stage(200, n), stage(UNTIL_STOPPED, n)]);
    plan.interval = Duration::from_millis(100);
    plan.close_timeout = Duration::from_millis(300);
    plan
}

#[test]
fn a_gateway_killed_mid_hold_shows_as_drops_and_reconnects_recover() {
    let n = 20;
    let first = Serve::start("127.0.0.1:0");
    let addr = first.addr;
    let mut plan = hold_plan(addr, n);
    plan.reconnect = Some(Reconnect {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        ..Default::default()
    });
    let mut gateway = Some(first);
    let mut phase = 0;
    let outcome = drive(&plan, "kill, restart and recovery", |c, g| {
        match phase {
            0 if g.open == n => {
                // SIGKILL: the kernel closes the gateway's sockets, nothing says goodbye.
                drop(gateway.take());
                phase = 1;
            }
            1 if c.dropped >= n => {
                gateway = Some(Serve::start(&addr.to_string()));
                phase = 2;
            }
            2 if g.open == n && c.established >= 2 * n => return true,
            _ => {}
        }
        false
    });
    let c = &outcome.totals.counters;
    assert_eq!(c.dropped, n, "every held connection dropped once: {c:?}");
    let by_kernel: u64 = [DropReason::Eof, DropReason::Reset]
        .iter()
        .map(|r| c.drops.get(r).copied().unwrap_or(0))
        .sum();
    assert_eq!(by_kernel, n, "dropped as EOF or reset: {:?}", c.drops);
    assert!(c.reconnects >= n, "re-opened after the restart: {c:?}");
    assert!(
        c.established >= 2 * n,
        "held again after the restart: {c:?}"
    );
}

#[test]
fn a_stopped_gateway_shows_as_ping_timeouts() {
    let n = 10;
    let gw = Serve::start("127.0.0.1:0");
    let mut plan = hold_plan(gw.addr, n);
    plan.traffic.ping = Some(PingSpec {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(600),
    });
    let mut stopped = false;
    let outcome = drive(&plan, "ping timeouts", |c, g| {
        if !stopped && g.open == n {
            // SIGSTOP: the kernel still accepts bytes; nobody answers them.
            gw.signal(Signal::SIGSTOP);
            stopped = true;
        }
        stopped && c.dropped >= n
    });
    gw.signal(Signal::SIGCONT);
    let c = &outcome.totals.counters;
    assert_eq!(
        c.drops.get(&DropReason::PingTimeout),
        Some(&n),
        "{:?}",
        c.drops
    );
}

/// Read `path` as JSON once it exists and parses (it is replaced atomically, never partial).
fn read_json(path: &std::path::Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("a checkpoint is always whole JSON"))
}

#[test]
fn a_run_killed_with_sigkill_leaves_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let mut child = Command::new(BIN)
        .args(["run", "-c", "12", "--ramp", "100ms", "--hold", "10m"])
        .args([
            "--interval",
            "100ms",
            "--checkpoint",
            "100ms",
            "--report-json",
        ])
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The embedded gateway's pid, from the run's first line (the rest is drained).
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (pid_tx, pid_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(rest) = line.split("(wsscale serve, pid ").nth(1) {
                let pid: i32 = rest.split(';').next().unwrap().trim().parse().unwrap();
                let _ = pid_tx.send(pid);
            }
        }
    });
    let gateway_pid = pid_rx
        .recv_timeout(WAIT)
        .expect("the run names its gateway's pid");
    eventually("a checkpoint with every connection open", || {
        read_json(&report).is_some_and(|r| r["connections"]["peak_open"] == 12)
    });
    child.kill().unwrap(); // SIGKILL: no handler runs, no final report
    child.wait().unwrap();
    // Its embedded gateway does not outlive it (gone, or a zombie awaiting its new parent).
    eventually("the embedded gateway to exit with its run", || {
        std::fs::read_to_string(format!("/proc/{gateway_pid}/stat")).map_or(true, |s| {
            s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z'))
        })
    });
    let r = read_json(&report).expect("the last checkpoint is still there");
    assert_eq!(r["complete"], false, "a checkpoint says it is not the end");
    assert!(r["verdict"].is_null(), "a checkpoint is not judged");
    assert_eq!(r["connections"]["established"], 12);
    assert!(!r["timeseries"].as_array().unwrap().is_empty());
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/report-v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&r).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "checkpoint violates the schema: {errors:?}"
    );
}

#[test]
fn a_finished_run_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let out = Command::new(BIN)
        .args([
            "run",
            "-c",
            "3",
            "--ramp",
            "100ms",
            "--hold",
            "300ms",
            "--ramp-down",
            "0s",
        ])
        .args([
            "--interval",
            "100ms",
            "--checkpoint",
            "100ms",
            "--allow-failures",
        ])
        .arg("--report-json")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = read_json(&report).unwrap();
    assert_eq!(r["complete"], true);
    assert_eq!(r["verdict"]["status"], "passed");
}

#[test]
fn an_unwritable_report_path_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir/run.json");
    let out = Command::new(BIN)
        .args(["run", "-c", "3", "--hold", "1s", "--report-json"])
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--report-json"), "{err}");
    assert!(err.contains("mkdir -p"), "{err}");
    assert!(!err.contains("embedded gateway"), "nothing started: {err}");

    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken").unwrap();
    let out = Command::new(BIN)
        .args([
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--agents",
            "1",
            "--token-file",
        ])
        .arg(&token)
        .args(["--target", "ws://127.0.0.1:9/", "-c", "1", "--report-json"])
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("mkdir -p"), "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "the coordinator did not start"
    );
}

fn token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, "fault-test-token-1234567890").unwrap();
    path
}

fn agent_process(url: &str, token: &std::path::Path, name: &str, orphan: &str) -> Child {
    Command::new(BIN)
        .args(["agent", "--coordinator", url, "--token-file"])
        .arg(token)
        .args([
            "--name",
            name,
            "--threads",
            "1",
            "--orphan-timeout",
            orphan,
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn an_agent_killed_mid_run_is_lost_and_the_run_is_incomplete() {
    let gw = util::gateway(GatewayConfig::default(), 1);
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let n = 20;
    // A hold long enough that the kill lands in it on a busy machine.
    let mut plan = util::plan_for(gw.local_addr(), vec![stage(300, n), stage(8_000, n)]);
    plan.interval = Duration::from_millis(200);
    let mut cfg = CoordinatorConfig::new(2, Secret("fault-test-token-1234567890".into()));
    cfg.orphan_timeout = Duration::from_secs(1);
    cfg.join_timeout = WAIT;
    let c = Coordinator::bind("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let url = c.url();
    let p = plan.clone();
    let result = spawn(move || c.run(&p, Arc::new(AtomicBool::new(false))));
    let mut doomed = agent_process(&url, &token, "doomed", "10s");
    let mut survivor = agent_process(&url, &token, "survivor", "10s");
    eventually("every connection open", || gw.stats().open == n);
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let outcome = result
        .recv_timeout(2 * WAIT)
        .unwrap()
        .expect("the run goes on without the lost agent");
    assert!(survivor.wait().unwrap().success());
    let lost: Vec<_> = outcome.agents.iter().filter(|a| a.lost.is_some()).collect();
    assert_eq!(lost.len(), 1, "{:?}", outcome.agents);
    assert_eq!(lost[0].name, "doomed");
    assert!(
        lost[0].totals.counters.established > 0,
        "its last snapshot is kept: {:?}",
        lost[0].totals.counters
    );
    let v = verdict::judge(&outcome, false);
    assert_eq!(v.status, Status::Incomplete, "{v:?}");
    assert_eq!(v.exit_code(), verdict::EXIT_INCOMPLETE);
    assert!(v.reasons[0].contains("doomed"), "{:?}", v.reasons);
}

#[test]
fn agents_close_everything_and_exit_when_the_coordinator_is_killed() {
    let gw = util::gateway(GatewayConfig::default(), 1);
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let n = 10;
    let mut coordinator = Command::new(BIN)
        .args([
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--agents",
            "1",
            "--token-file",
        ])
        .arg(&token)
        .args([
            "-c",
            &n.to_string(),
            "--ramp",
            "200ms",
            "--hold",
            "10m",
            "--target",
        ])
        .arg(format!("ws://{}/", gw.local_addr()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(coordinator.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the coordinator prints its URL")
            .unwrap();
        if let Some(u) = line.strip_prefix("coordinator listening on ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let mut agent = agent_process(&url, &token, "orphan", "1s");
    eventually("every connection open", || gw.stats().open == n);
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
    let status = spawn(move || agent.wait())
        .recv_timeout(WAIT)
        .expect("the orphaned agent exits")
        .unwrap();
    assert_eq!(status.code(), Some(3), "exit code 3: orphaned");
    // Every connection it held was closed (it exited, and the gateway saw the closes).
    eventually("the gateway to see every connection closed", || {
        gw.stats().open == 0
    });
}
