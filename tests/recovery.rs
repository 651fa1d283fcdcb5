//! Disruption and recovery, bursts and gateway fault injection, end to end: a `wsscale run`
//! whose embedded gateway (`wsscale serve` child) drops every connection once, with
//! `recovery_s.max` deciding the exit code; SIGUSR1 to a `wsscale serve`; repeated drop waves
//! and a stall of the in-process gateway; a burst run's figures.
//!
//! Nothing waits on the clock: the engine runs until a count is reached (`util::run_until`),
//! the serve child is ready when it prints its address.

mod util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use util::{UNTIL_STOPPED, gateway, plan_for, run, run_until, stage};
use wsscale::gateway::GatewayConfig;
use wsscale::gateway::faults::Faults;
use wsscale::metrics::DropReason;
use wsscale::plan::recovery::MessageBurst;
use wsscale::plan::{MessageSpec, PingSpec, Reconnect};

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `wsscale run` against the embedded gateway, which resets every connection 1.5 s after
/// it started; 60 connections reconnect with a 50 ms first back-off.
fn failover_run(dir: &Path, threshold: &str) -> (Output, Value) {
    let json = dir.join(format!("{}.json", threshold.len()));
    let out = Command::new(BIN)
        .args([
            "run",
            "-c",
            "60",
            "--ramp",
            "300ms",
            "--hold",
            "3s",
            "--ramp-down",
            "0s",
            "--interval",
            "250ms",
            "--threads",
            "1",
            "--reconnect",
            "--reconnect-initial",
            "50ms",
            "--gateway-drop-all-after",
            "1500ms",
            "--threshold",
            threshold,
            "--report-json",
        ])
        .arg(&json)
        .output()
        .expect("the binary runs");
    let doc = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
        .unwrap_or(Value::Null);
    (out, doc)
}

#[test]
fn drop_all_after_gives_one_disruption_and_the_recovery_threshold_decides() {
    let dir = tempfile::tempdir().unwrap();
    let (out, doc) = failover_run(dir.path(), "recovery_s.max<60");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let d = doc["disruptions"].as_array().expect("disruptions[]");
    assert_eq!(d.len(), 1, "{:#}", doc["disruptions"]);
    let d = &d[0];
    assert_eq!(d["open_before"], 60, "{d:#}");
    assert_eq!(d["dropped"], 60, "{d:#}");
    assert!(d["recovery_s"].as_f64().unwrap() > 0.0, "{d:#}");
    assert!(d["reconnect_attempts"].as_u64().unwrap() >= 60, "{d:#}");
    assert!(
        d["peak_reconnect_rate_per_s"].as_f64().unwrap() > 0.0,
        "{d:#}"
    );
    let reasons = d["drops_by_reason"].as_object().unwrap();
    assert!(
        reasons.keys().all(|r| r == "reset" || r == "eof"),
        "{reasons:?}"
    );
    // The drops are still in the verdict's totals and in the text summary.
    assert_eq!(doc["connections"]["dropped"], 60);
    let summary = text(&out.stdout);
    assert!(summary.contains("Disruptions"), "{summary}");
    assert!(summary.contains("recovered in"), "{summary}");

    // The same run with a bound no recovery can meet (at least one 250 ms interval).
    let (out, doc) = failover_run(dir.path(), "recovery_s.max<0.01");
    assert_eq!(out.status.code(), Some(99), "{}", text(&out.stderr));
    assert_eq!(doc["disruptions"].as_array().unwrap().len(), 1);
    assert_eq!(doc["thresholds"][0]["passed"], false);
    assert!(doc["thresholds"][0]["measured"].as_f64().unwrap() >= 0.01);
}

#[test]
fn gateway_fault_flags_need_the_embedded_gateway() {
    let out = Command::new(BIN)
        .args([
            "run",
            "-c",
            "10",
            "--target",
            "ws://127.0.0.1:9/",
            "--gateway-drop-all-after",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("embedded gateway"));
}

/// A `wsscale serve` child, stopped with SIGTERM (and reaped) when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

impl Serve {
    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0.id() as i32)
    }
}

#[test]
fn sigusr1_drops_every_connection() {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let serve = Serve(child);
    let addr = line
        .trim()
        .strip_prefix("listening on ws://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    const N: u64 = 20;
    let plan = plan_for(addr, vec![stage(100, N), stage(UNTIL_STOPPED, N)]);
    let mut signalled = false;
    let o = run_until(&plan, "every connection dropped", |c| {
        if !signalled && c.established >= N {
            nix::sys::signal::kill(serve.pid(), nix::sys::signal::Signal::SIGUSR1).unwrap();
            signalled = true;
        }
        c.dropped >= N
    });
    assert_eq!(o.totals.counters.dropped, N);
    // Without --reconnect they stay closed: the serve child is still up, no one came back.
    assert_eq!(o.totals.counters.established, N);
}

#[test]
fn drop_every_gives_repeated_waves() {
    let gw = gateway(
        GatewayConfig {
            faults: Faults {
                drop_every: Some((Duration::from_millis(800), 0.5)),
                ..Default::default()
            },
            ..Default::default()
        },
        1,
    );
    const N: u64 = 100;
    let mut plan = plan_for(
        gw.local_addr(),
        vec![stage(100, N), stage(UNTIL_STOPPED, N)],
    );
    plan.interval = Duration::from_millis(100);
    plan.reconnect = Some(Reconnect {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        ..Default::default()
    });
    // Three waves of about half the connections each.
    let o = run_until(&plan, "three drop waves", |c| c.dropped >= 120);
    let d = o.disruptions();
    assert!(d.len() >= 2, "{d:#?}");
    assert!(d[0].recovery_s.is_some(), "{d:#?}");
    assert!(d.iter().all(|d| d.dropped > 0 && d.dropped < N), "{d:#?}");
    assert!(gw.stats().upgraded > N);
}

#[test]
fn stall_after_makes_pings_time_out() {
    let gw = gateway(
        GatewayConfig {
            faults: Faults {
                stall_after: Some((Duration::from_millis(300), Duration::from_secs(30))),
                ..Default::default()
            },
            ..Default::default()
        },
        1,
    );
    const N: u64 = 10;
    let mut plan = plan_for(gw.local_addr(), vec![stage(50, N), stage(UNTIL_STOPPED, N)]);
    plan.traffic.ping = Some(PingSpec {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(400),
    });
    let o = run_until(&plan, "ping timeouts", |c| {
        c.drops.get(&DropReason::PingTimeout).copied().unwrap_or(0) >= N
    });
    let c = &o.totals.counters;
    assert_eq!(c.drops[&DropReason::PingTimeout], N, "{:?}", c.drops);
    assert!(c.pongs_received > 0, "answered before the stall: {c:?}");
}

#[test]
fn a_burst_run_records_burst_figures() {
    let gw = gateway(GatewayConfig::default(), 1);
    const N: u64 = 10;
    let mut plan = plan_for(gw.local_addr(), vec![stage(100, N), stage(3_400, N)]);
    // Above the engine's 200 ms snapshot period, below the burst period.
    plan.interval = Duration::from_millis(250);
    plan.traffic.message = Some(MessageSpec {
        rate: 5.0,
        size: 64,
        text: None,
        timeout: Duration::from_secs(10),
    });
    plan.traffic.message_burst = Some(MessageBurst::parse("40@1s~50ms").unwrap());
    let o = run(&plan);
    let marked: Vec<u64> = o.timeseries.iter().map(|r| r.burst).collect();
    assert!(marked.contains(&1) && marked.contains(&2), "{marked:?}");
    let b = o.bursts();
    assert!(b.len() >= 2, "{b:#?}");
    // Outside bursts: 5 msgs/s × 10 connections; a burst interval sends 400 messages.
    let steady = o
        .timeseries
        .iter()
        .filter(|r| r.burst == 0 && r.t_s > 0.5)
        .map(|r| r.msgs_sent_per_s)
        .fold(0.0f64, f64::max);
    for burst in &b {
        assert!(burst.p99_ms > 0.0, "{burst:?}");
        assert!(burst.baseline_p99_ms.is_some(), "{burst:?}");
        assert!(
            burst.peak_msgs_sent_per_s > 2.0 * steady,
            "{burst:?} vs steady {steady}"
        );
    }
    // Every message of every burst that began was sent (3 bursts at 1, 2, 3 s).
    let c = &o.totals.counters;
    assert!(c.messages_sent >= 3 * 40 * N, "{c:?}");
    assert_eq!(c.messages_lost, 0, "{c:?}");
    let json = wsscale::report::to_json(&o);
    assert_eq!(json["bursts"].as_array().unwrap().len(), b.len());
}
