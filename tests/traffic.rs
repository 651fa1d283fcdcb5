//! Heartbeats, timed messages and latency, against the in-process gateway and small
//! hand-written servers. Timing assertions are bounds (a lower bound that follows from the
//! setup, and a generous upper bound), never exact wall-clock values.

mod util;

use std::net::SocketAddr;
use std::time::Duration;

use tungstenite::Message;
use util::{run, stage, ws_server};
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::metrics::{DropReason, FailureKind};
use wsscale::plan::{HeartbeatSpec, MessageSpec, PingSpec, Plan, Target};

/// `conns` connections to `ws://addr/` opened over 50 ms and held for `hold_ms`.
fn plan_for(addr: SocketAddr, conns: u64, hold_ms: u64) -> Plan {
    util::plan(
        vec![Target::ws(addr, "/")],
        vec![stage(50, conns), stage(hold_ms, conns)],
    )
}

fn gateway(config: GatewayConfig) -> GatewayHandle {
    util::gateway(config, 1)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[test]
fn ping_rtt_is_recorded_for_every_pong() {
    let gw = gateway(GatewayConfig::default());
    let mut plan = plan_for(gw.local_addr(), 10, 600);
    plan.traffic.ping = Some(PingSpec {
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
    });
    let o = run(&plan);
    let c = &o.totals.counters;
    assert_eq!(c.established, 10);
    assert!(
        c.pings_sent >= 10,
        "every connection pings during the hold: {c:?}"
    );
    assert_eq!(
        c.pongs_received, c.pings_sent,
        "the gateway answers every ping"
    );
    assert_eq!(o.totals.hist.ping_rtt.len(), c.pongs_received);
    assert_eq!(c.dropped, 0);
}

#[test]
fn unanswered_pings_drop_the_connection_as_ping_timeout() {
    // tungstenite answers pings only while the application reads; this server never reads.
    let addr = ws_server(|ws| {
        std::thread::sleep(Duration::from_secs(5));
        drop(ws);
    });
    let mut plan = plan_for(addr, 3, 1500);
    plan.traffic.ping = Some(PingSpec {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
    });
    let o = run(&plan);
    let c = &o.totals.counters;
    assert_eq!(c.established, 3);
    assert_eq!(c.drops.get(&DropReason::PingTimeout), Some(&3), "{c:?}");
}

#[test]
fn app_heartbeat_with_expected_reply() {
    let gw = gateway(GatewayConfig::default());
    let mut plan = plan_for(gw.local_addr(), 5, 600);
    plan.traffic.heartbeat = Some(HeartbeatSpec {
        binary: false,
        text: b"{\"type\":\"ping\"}".to_vec(),
        interval: Duration::from_millis(100),
        expect: Some(b"\"ping\"".to_vec()),
        timeout: Duration::from_secs(5),
    });
    let o = run(&plan);
    let c = &o.totals.counters;
    assert!(c.heartbeats_sent >= 5, "{c:?}");
    assert_eq!(
        c.heartbeat_replies, c.heartbeats_sent,
        "the echo answers each heartbeat"
    );
    assert_eq!(o.totals.hist.heartbeat_rtt.len(), c.heartbeat_replies);
    assert_eq!(c.dropped, 0);
}

#[test]
fn heartbeat_reply_inside_a_binary_frame_with_other_data_counts() {
    let addr = ws_server(|mut ws| {
        while let Ok(m) = ws.read() {
            if m.is_text() {
                let reply = format!("prefix|pong|{}", m.to_text().unwrap());
                if ws.send(Message::binary(reply.into_bytes())).is_err() {
                    break;
                }
            }
        }
    });
    let mut plan = plan_for(addr, 2, 500);
    plan.traffic.heartbeat = Some(HeartbeatSpec {
        binary: false,
        text: b"hb".to_vec(),
        interval: Duration::from_millis(100),
        expect: Some(b"pong".to_vec()),
        timeout: Duration::from_secs(5),
    });
    let o = run(&plan);
    let c = &o.totals.counters;
    assert!(c.heartbeat_replies >= 2, "{c:?}");
    assert_eq!(c.dropped, 0);
}

#[test]
fn first_message_expect_gates_established() {
    // Replies "welcome" to a "login" message only.
    let addr = ws_server(|mut ws| {
        while let Ok(m) = ws.read() {
            if m.is_text() && m.to_text().unwrap() == "login" {
                let _ = ws.send(Message::text("welcome"));
            }
        }
    });
    let mut plan = plan_for(addr, 4, 300);
    plan.traffic.first_message = Some(b"login".to_vec());
    plan.traffic.first_message_expect = Some(b"welcome".to_vec());
    let o = run(&plan);
    assert_eq!(o.totals.counters.established, 4);

    // A server that never sends the expected reply: nothing is established; the connections
    // fail as open_sequence_timeout.
    let silent = ws_server(|mut ws| while ws.read().is_ok() {});
    let mut plan = plan_for(silent, 3, 600);
    plan.handshake_timeout = Duration::from_millis(200);
    plan.traffic.first_message = Some(b"login".to_vec());
    plan.traffic.first_message_expect = Some(b"welcome".to_vec());
    let o = run(&plan);
    let c = &o.totals.counters;
    assert_eq!(c.established, 0);
    assert_eq!(c.failures_of(FailureKind::OpenSequenceTimeout), 3);
}

fn message_spec(rate: f64, size: usize) -> MessageSpec {
    MessageSpec {
        rate,
        size,
        text: None,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn echo_messages_are_timed_and_counted_both_ways() {
    let gw = gateway(GatewayConfig::default());
    let mut plan = plan_for(gw.local_addr(), 10, 1000);
    plan.traffic.message = Some(message_spec(20.0, 256));
    let o = run(&plan);
    let c = &o.totals.counters;
    assert!(c.messages_sent >= 10 * 15, "~20/s × 1 s × 10 conns: {c:?}");
    assert_eq!(c.messages_received, c.messages_sent);
    assert_eq!(c.messages_lost, 0);
    assert_eq!(c.message_bytes_sent, c.messages_sent * 256);
    assert_eq!(c.message_bytes_received, c.message_bytes_sent);
    assert_eq!(o.totals.hist.message_rtt.len(), c.messages_received);
    assert_eq!(o.totals.hist.schedule_lag.len(), c.messages_sent);
}

#[test]
fn text_template_placeholders_and_echo() {
    let gw = gateway(GatewayConfig::default());
    let mut plan = plan_for(gw.local_addr(), 2, 400);
    let mut spec = message_spec(20.0, 100);
    spec.text = Some("{\"conn\":{conn},\"seq\":{seq},\"ts\":{ts},\"m\":\"{marker}\"}".into());
    plan.traffic.message = Some(spec);
    let o = run(&plan);
    let c = &o.totals.counters;
    assert!(c.messages_sent > 0);
    assert_eq!(c.messages_received, c.messages_sent);
    assert_eq!(
        c.message_bytes_sent,
        c.messages_sent * 100,
        "padded to --message-size"
    );
}

#[test]
fn delayed_echo_shows_in_latency() {
    let delay = Duration::from_millis(100);
    let gw = gateway(GatewayConfig {
        echo_delay: Some(delay),
        ..Default::default()
    });
    let mut plan = plan_for(gw.local_addr(), 5, 1200);
    plan.traffic.message = Some(message_spec(10.0, 64));
    let o = run(&plan);
    let h = &o.totals.hist.message_rtt;
    assert!(h.len() >= 20, "{}", h.len());
    let p50 = ms(h.value_at_quantile(0.5));
    assert!(
        p50 >= 100.0,
        "latency cannot be below the gateway's delay: p50 {p50} ms"
    );
    assert!(p50 < 1000.0, "generous upper bound: p50 {p50} ms");
    assert_eq!(o.totals.counters.messages_lost, 0);
}

#[test]
fn a_stalled_gateway_raises_p99_to_the_stall_no_coordinated_omission() {
    let stall = Duration::from_millis(600);
    // Echo server that stalls once, right after receiving its first message, for `stall`.
    let addr = ws_server(move |mut ws| {
        let mut first = true;
        while let Ok(m) = ws.read() {
            if m.is_binary() || m.is_text() {
                if first {
                    std::thread::sleep(stall);
                    first = false;
                }
                if ws.send(m).is_err() {
                    break;
                }
            }
        }
    });
    let mut plan = plan_for(addr, 1, 1500);
    plan.traffic.message = Some(message_spec(20.0, 64));
    let o = run(&plan);
    let h = &o.totals.hist.message_rtt;
    let c = &o.totals.counters;
    assert_eq!(c.messages_received, c.messages_sent);
    // The first message waited the whole stall; the ones scheduled during the stall waited
    // the rest of it, measured from their intended send times.
    assert!(ms(h.max()) >= 600.0, "max {} ms", ms(h.max()));
    assert!(ms(h.value_at_quantile(0.99)) >= 600.0);
    let during_stall = h.count_between(1, 100_000);
    assert!(
        h.len() - during_stall >= 5,
        "several messages intended during the stall carry its delay: {} of {}",
        h.len() - during_stall,
        h.len()
    );
}

#[test]
fn echoes_that_never_come_back_are_lost() {
    // Swallows every message.
    let addr = ws_server(|mut ws| while ws.read().is_ok() {});
    let mut plan = plan_for(addr, 2, 800);
    let mut spec = message_spec(20.0, 64);
    spec.timeout = Duration::from_millis(200);
    plan.traffic.message = Some(spec);
    let o = run(&plan);
    let c = &o.totals.counters;
    assert!(c.messages_sent > 10);
    assert_eq!(c.messages_received, 0);
    // Everything older than the timeout is lost by the end of the hold; the last ~200 ms of
    // sends are still outstanding when the client closes (not counted as lost).
    assert!(c.messages_lost >= c.messages_sent / 2, "{c:?}");
    assert!(c.messages_lost <= c.messages_sent);
}
