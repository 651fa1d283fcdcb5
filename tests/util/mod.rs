//! Plumbing shared by the integration tests: the embedded gateway on `127.0.0.1:0`, plans
//! and stages, engine runs, hand-written servers, and bounded waits.
//!
//! Every `tests/*.rs` file is a crate of its own and includes this module with `mod util;`;
//! a crate that uses only some of the helpers would warn about the others, hence the
//! `dead_code` allowance below.
//!
//! Nothing here sleeps to synchronize: waits are on channels, or poll a condition, always
//! with a deadline ([`WAIT`]) generous enough for a busy two-core machine running every test
//! binary at once.
#![allow(dead_code)]

pub mod link;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wsscale::engine::{self, RunOptions};
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::metrics::{Counters, RunOutcome};
use wsscale::plan::{Plan, Stage, Target};

/// How long any wait may take before the test fails (a bound, never a pause).
pub const WAIT: Duration = Duration::from_secs(60);

/// Connect and handshake timeouts of [`plan_for`]: far above anything a loaded machine
/// needs on loopback, short enough that a hung server fails a test quickly.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A last hold (ms) that only a stop ends within [`WAIT`]: for plans run with [`run_until`].
pub const UNTIL_STOPPED: u64 = 600_000;

/// A stage of `ms` milliseconds moving to `target` connections.
pub fn stage(ms: u64, target: u64) -> Stage {
    Stage {
        duration: Duration::from_millis(ms),
        target,
    }
}

/// The embedded gateway on `127.0.0.1:0` (ask it for its address or URL), served by
/// `worker_threads` threads. Shuts down when dropped.
pub fn gateway(config: GatewayConfig, worker_threads: usize) -> GatewayHandle {
    GatewayHandle::start("127.0.0.1:0".parse().unwrap(), config, worker_threads).expect("gateway")
}

/// A plan of `stages` against `targets` on one engine thread; everything else is the
/// library's default.
pub fn plan(targets: Vec<Target>, stages: Vec<Stage>) -> Plan {
    let mut p = Plan::with_defaults(targets, stages);
    p.threads = 1;
    p
}

/// [`plan`] against `ws://addr/`, with [`TIMEOUT`] to connect and to handshake.
pub fn plan_for(addr: SocketAddr, stages: Vec<Stage>) -> Plan {
    let mut p = plan(vec![Target::ws(addr, "/")], stages);
    p.connect_timeout = TIMEOUT;
    p.handshake_timeout = TIMEOUT;
    p
}

/// Run `plan` in this process to its end.
pub fn run(plan: &Plan) -> RunOutcome {
    engine::run(plan, &RunOptions::new(Arc::new(AtomicBool::new(false)))).expect("engine run")
}

/// Run `plan` until `done` holds for its counters so far (summed from the engine's own
/// snapshots), then stop it the way Ctrl-C does and return the outcome (`interrupted`).
///
/// For plans that end on a long hold: a count that must be reached is waited for instead of
/// hoped for within a fixed stage, so a slow machine only makes the test slower. Fails the
/// test when `done` does not hold within [`WAIT`] or the run ends first.
pub fn run_until(plan: &Plan, what: &str, mut done: impl FnMut(&Counters) -> bool) -> RunOutcome {
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = RunOptions::new(stop.clone());
    let (tx, rx) = mpsc::channel();
    opts.observer = Some(tx);
    let plan = plan.clone();
    let outcome = spawn(move || engine::run(&plan, &opts).expect("engine run"));
    let deadline = Instant::now() + WAIT;
    let mut totals = Counters::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((snapshot, last)) => {
                totals.merge(&snapshot.counters);
                if done(&totals) {
                    break;
                }
                assert!(!last, "the run ended before {what}: {totals:?}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("timed out waiting for {what}: {totals:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the run ended before {what}: {totals:?}")
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    outcome
        .recv_timeout(WAIT)
        .expect("the run ends once stopped")
}

/// Run `f` on a thread of its own and get its result on a channel (so a wait for it is
/// bounded: `recv_timeout(WAIT)`).
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// Poll `cond` until it holds or [`WAIT`] passes (for state of another thread or process
/// that has no channel to wait on).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback address nothing listens on (bound, then released): connecting is refused.
pub fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A TCP server on `127.0.0.1:0` that runs `f` on each accepted connection, each on a thread
/// of its own. Lives as long as the test process.
pub fn tcp_server(f: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let f = Arc::new(f);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let f = f.clone();
            std::thread::spawn(move || f(s));
        }
    });
    addr
}

/// A WebSocket server (tungstenite, blocking) running `f` on each connection that completes
/// the upgrade.
pub fn ws_server(
    f: impl Fn(tungstenite::WebSocket<TcpStream>) + Send + Sync + 'static,
) -> SocketAddr {
    tcp_server(move |s| {
        if let Ok(ws) = tungstenite::accept(s) {
            f(ws)
        }
    })
}

/// Read from `s` until the peer closes or fails (holds a connection open without answering).
pub fn drain(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| ip(t)).collect()
}
