//! Engine runs against the in-process gateway (port 0) and against small hand-written
//! misbehaving servers. Every count is checked exactly.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use util::{UNTIL_STOPPED, closed_port, drain, run, run_until, stage, tcp_server};
use wsscale::engine::{self, RunOptions};
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::metrics::{DropReason, FailureKind};
use wsscale::plan::{Auth, CloseMode, JwtAlg, JwtPlacement, Plan, Secret, Stage, Target};

/// This file's plans: `ws://addr/ws` on two engine threads, [`util::TIMEOUT`] to connect
/// and to handshake.
fn plan_for(addr: SocketAddr, stages: Vec<Stage>) -> Plan {
    let mut p = util::plan(vec![Target::ws(addr, "/ws")], stages);
    p.threads = 2;
    p.connect_timeout = util::TIMEOUT;
    p.handshake_timeout = util::TIMEOUT;
    p
}

fn gateway(config: GatewayConfig) -> GatewayHandle {
    util::gateway(config, 1)
}

#[test]
fn a_few_hundred_connections_every_count_exact() {
    let gw = gateway(GatewayConfig::default());
    let plan = plan_for(
        gw.local_addr(),
        // A long hold: every connection must be open before the ramp-down starts, also on
        // a busy machine.
        vec![stage(400, 300), stage(3000, 300), stage(200, 0)],
    );
    let o = run(&plan);
    let c = &o.totals.counters;
    assert_eq!(c.attempted, 300);
    assert_eq!(c.established, 300);
    assert_eq!(c.failed, 0);
    assert_eq!(c.dropped, 0);
    assert_eq!(c.aborted, 0);
    assert_eq!(c.closed, 300, "graceful ramp-down closes every connection");
    assert_eq!(o.peak_open, 300);
    assert_eq!(o.totals.gauges.open, 0);
    assert_eq!(o.totals.hist.tcp_connect.len(), 300);
    assert_eq!(o.totals.hist.ws_handshake.len(), 300);
    assert_eq!(o.per_source.len(), 1);
    assert_eq!(o.per_source[0].address, "kernel");
    assert_eq!(o.per_source[0].established, 300);
    let g = gw.stats();
    assert_eq!(g.upgraded, 300);
}

#[test]
fn end_of_run_closes_what_is_still_open_with_reset() {
    let gw = gateway(GatewayConfig::default());
    let mut plan = plan_for(
        gw.local_addr(),
        vec![stage(200, 50), stage(UNTIL_STOPPED, 50)],
    );
    plan.close_mode = CloseMode::Reset;
    let o = run_until(&plan, "50 connections", |c| c.established >= 50);
    let c = &o.totals.counters;
    assert_eq!((c.attempted, c.established, c.closed), (50, 50, 50));
    assert_eq!(c.dropped, 0);
}

#[test]
fn spreads_over_source_addresses() {
    let gw = gateway(GatewayConfig::default());
    let mut plan = plan_for(
        gw.local_addr(),
        vec![stage(300, 200), stage(UNTIL_STOPPED, 200)],
    );
    plan.sources = (2..=5)
        .map(|i| format!("127.0.0.{i}").parse().unwrap())
        .collect();
    let o = run_until(&plan, "200 connections", |c| c.established >= 200);
    assert_eq!(o.totals.counters.established, 200);
    let addrs: Vec<&str> = o.per_source.iter().map(|s| s.address.as_str()).collect();
    assert_eq!(addrs, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]);
    for s in &o.per_source {
        assert_eq!(
            s.established, 50,
            "round robin gives each address a quarter: {s:?}"
        );
        assert_eq!(s.failed, 0);
    }
}

#[test]
fn refused_port_is_counted_as_refused() {
    let addr = closed_port();
    let plan = plan_for(addr, vec![stage(100, 20), stage(UNTIL_STOPPED, 20)]);
    let o = run_until(&plan, "20 failures", |c| c.failed >= 20);
    let c = &o.totals.counters;
    assert_eq!(
        c.attempted, 20,
        "failed slots are not retried without --reconnect"
    );
    assert_eq!(c.failed, 20);
    assert_eq!(c.failures_of(FailureKind::Refused), 20);
    assert_eq!(c.established, 0);
}

#[test]
fn reconnect_retries_failed_slots() {
    let addr = closed_port();
    let mut plan = plan_for(addr, vec![stage(50, 4), stage(600, 4)]);
    plan.reconnect = Some(wsscale::plan::Reconnect {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(40),
        ..Default::default()
    });
    let o = run(&plan);
    let c = &o.totals.counters;
    assert!(c.reconnects > 0, "{c:?}");
    assert_eq!(c.attempted, 4 + c.reconnects);
    // A reconnect still connecting when the run ends is aborted, not failed.
    assert_eq!(c.failures_of(FailureKind::Refused) + c.aborted, c.attempted);
}

/// Read an HTTP request head and return the Sec-WebSocket-Key.
fn read_key(s: &mut std::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .map(|k| k.trim().to_string())
}

fn accept_101(s: &mut std::net::TcpStream) -> bool {
    let Some(key) = read_key(s) else { return false };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    s.write_all(resp.as_bytes()).is_ok()
}

#[test]
fn server_that_never_answers_the_upgrade_is_handshake_timeout() {
    let addr = tcp_server(|mut s| {
        let _ = read_key(&mut s);
        // Hold the socket open without answering until the client gives up.
        drain(&mut s);
    });
    let mut plan = plan_for(addr, vec![stage(50, 5), stage(UNTIL_STOPPED, 5)]);
    plan.handshake_timeout = Duration::from_millis(200);
    let o = run_until(&plan, "5 failures", |c| c.failed >= 5);
    let c = &o.totals.counters;
    assert_eq!(c.attempted, 5);
    assert_eq!(c.failures_of(FailureKind::HandshakeTimeout), 5);
    assert_eq!(c.established, 0);
}

#[test]
fn malformed_frame_is_counted_as_protocol() {
    let addr = tcp_server(|mut s| {
        if accept_101(&mut s) {
            // Opcode 0x3 is reserved: a protocol violation.
            let _ = s.write_all(&[0x83, 0x00]);
            drain(&mut s);
        }
    });
    let plan = plan_for(addr, vec![stage(50, 3), stage(UNTIL_STOPPED, 3)]);
    let o = run_until(&plan, "3 drops", |c| c.dropped >= 3);
    let c = &o.totals.counters;
    assert_eq!(c.established, 3);
    assert_eq!(c.dropped, 3);
    assert_eq!(c.drops.get(&DropReason::Protocol), Some(&3));
}

#[test]
fn oversized_frame_is_counted_as_protocol() {
    let addr = tcp_server(|mut s| {
        if accept_101(&mut s) {
            // A 1 KiB binary frame header against a 100-byte --max-frame.
            let _ = s.write_all(&[0x82, 126, 0x04, 0x00]);
            drain(&mut s);
        }
    });
    let mut plan = plan_for(addr, vec![stage(50, 2), stage(UNTIL_STOPPED, 2)]);
    plan.max_frame = 100;
    let o = run_until(&plan, "2 drops", |c| c.dropped >= 2);
    assert_eq!(o.totals.counters.drops.get(&DropReason::Protocol), Some(&2));
}

#[test]
fn server_close_during_hold_is_a_drop_with_its_code_and_pings_are_answered() {
    let addr = tcp_server(|mut s| {
        if accept_101(&mut s) {
            // A ping, then a close with code 1001 (going away).
            let _ = s.write_all(&[0x89, 0x02, b'h', b'i']);
            let _ = s.write_all(&[0x88, 0x02, 0x03, 0xE9]);
            drain(&mut s);
        }
    });
    let plan = plan_for(addr, vec![stage(50, 4), stage(UNTIL_STOPPED, 4)]);
    let o = run_until(&plan, "4 drops", |c| c.dropped >= 4);
    let c = &o.totals.counters;
    assert_eq!(c.established, 4);
    assert_eq!(c.pings_answered, 4);
    assert_eq!(c.drops.get(&DropReason::CloseCode(1001)), Some(&4));
    assert_eq!(c.dropped, 4);
}

#[test]
fn jwt_accepted_and_bad_secret_is_http_401() {
    let secret = Secret("gateway-secret".into());
    let gw = gateway(GatewayConfig {
        jwt_secret: Some(secret.clone()),
        ..Default::default()
    });
    let claims = serde_json::json!({"sub":"user-{conn}","exp":"{now+3600}"});
    for (placement, key, expect_ok) in [
        (JwtPlacement::Header, secret.clone(), true),
        (JwtPlacement::Query("token".into()), secret.clone(), true),
        (JwtPlacement::Header, Secret("wrong".into()), false),
    ] {
        let mut plan = plan_for(
            gw.local_addr(),
            vec![stage(100, 10), stage(UNTIL_STOPPED, 10)],
        );
        plan.handshake.auth = Auth::Jwt {
            alg: JwtAlg::HS256,
            key,
            claims: claims.clone(),
            placement: placement.clone(),
        };
        let o = run_until(&plan, "10 attempts done", |c| {
            c.established + c.failed >= 10
        });
        let c = &o.totals.counters;
        if expect_ok {
            assert_eq!(c.established, 10, "{placement:?}");
        } else {
            assert_eq!(c.established, 0);
            assert_eq!(c.failures_of(FailureKind::HttpStatus), 10);
            assert_eq!(c.http_status.get(&401), Some(&10));
        }
    }
}

#[test]
fn several_targets_round_robin() {
    let a = gateway(GatewayConfig::default());
    let b = gateway(GatewayConfig::default());
    let mut plan = plan_for(
        a.local_addr(),
        vec![stage(200, 100), stage(UNTIL_STOPPED, 100)],
    );
    plan.targets.push(Target::ws(b.local_addr(), "/"));
    let o = run_until(&plan, "100 connections", |c| c.established >= 100);
    assert_eq!(o.totals.counters.established, 100);
    assert_eq!(a.stats().upgraded, 50);
    assert_eq!(b.stats().upgraded, 50);
}

#[test]
fn stop_flag_ends_the_run_and_closes_everything() {
    let gw = gateway(GatewayConfig::default());
    let plan = plan_for(gw.local_addr(), vec![stage(100, 20), stage(60_000, 20)]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = RunOptions::new(stop.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    opts.observer = Some(tx);
    let t = std::thread::spawn(move || engine::run(&plan, &opts).unwrap());
    // Wait (on the engine's own snapshots) until the client holds all 20, then interrupt.
    let mut established = 0;
    while established < 20 {
        let (snap, _last) = rx.recv().expect("the engine reports while it runs");
        established += snap.counters.established;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let o = t.join().unwrap();
    assert!(o.interrupted);
    assert_eq!(o.totals.counters.established, 20);
    assert_eq!(o.totals.counters.closed, 20);
    assert!(o.duration < Duration::from_secs(30));
}

#[test]
fn abort_on_fail_stops_when_a_threshold_is_lost() {
    let addr = closed_port();
    let mut plan = plan_for(addr, vec![stage(2000, 50), stage(60_000, 50)]);
    plan.thresholds = vec![wsscale::plan::threshold::parse("failed<3").unwrap()];
    plan.abort_on_fail = true;
    let o = run(&plan);
    assert!(o.aborted_by_threshold);
    assert!(!o.interrupted, "an abort is not an interruption");
    let c = &o.totals.counters;
    assert!(c.failed >= 3);
    assert!(
        c.attempted < 50,
        "the run stopped before the ramp finished: {}",
        c.attempted
    );
}

#[test]
fn ramps_split_over_many_shards_open_each_connection_once() {
    // With 7 shards a slice's share of a rising target can dip for a moment; the shard must
    // not close and re-open a connection because of it.
    let gw = gateway(GatewayConfig::default());
    let mut plan = plan_for(
        gw.local_addr(),
        // A long hold: every connection must be open before the ramp-down starts, also on
        // a busy machine.
        vec![stage(500, 300), stage(3000, 300), stage(300, 0)],
    );
    plan.threads = 7;
    let o = run(&plan);
    let c = &o.totals.counters;
    assert_eq!(c.attempted, 300, "{c:?}");
    assert_eq!(c.established, 300);
    assert_eq!(c.closed, 300);
    assert_eq!(gw.stats().upgraded, 300);
}

/// Session duration: every connection that ends after being established — closed by the
/// client or dropped by the server — is one sample, counted from establishment (in ms).
#[test]
fn session_duration_counts_every_closed_and_dropped_connection() {
    let gw = gateway(GatewayConfig::default());
    // 20 connections within 200 ms, held 1.5 s, closed over 100 ms.
    let plan = plan_for(
        gw.local_addr(),
        vec![stage(200, 20), stage(1500, 20), stage(100, 0)],
    );
    let o = run(&plan);
    let c = &o.totals.counters;
    assert_eq!((c.established, c.closed, c.dropped), (20, 20, 0));
    let h = &o.totals.hist.session_duration;
    assert_eq!(h.len(), 20, "one session per closed connection");
    // Recorded in ms: no session outlasts the run, and each spans most of the hold.
    assert!(h.max() <= o.duration.as_millis() as u64 + 1, "{}", h.max());
    assert!(h.min() >= 200, "sessions span the hold: min {} ms", h.min());

    // A server that closes each connection: drops are sessions too.
    let addr = util::ws_server(|mut ws| {
        let _ = ws.close(None);
        let _ = ws.flush();
        while ws.read().is_ok() {}
    });
    let mut plan = plan_for(addr, vec![stage(100, 5), stage(300, 5)]);
    plan.threads = 1;
    let o = run(&plan);
    let c = &o.totals.counters;
    assert_eq!(c.established, 5);
    assert_eq!(c.dropped, 5, "{c:?}");
    assert_eq!(o.totals.hist.session_duration.len(), c.closed + c.dropped);
}
