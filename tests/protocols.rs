//! Session protocols: the generic primitives (open sequence, auto-replies, payload notation)
//! against fakes written from the specs, and the presets against real servers started by
//! `ci/servers.sh` (python-socketio, RabbitMQ Web-MQTT and Web-STOMP, nats-server). Each real
//! server test holds connections longer than the server's keep-alive timeout and requires 0
//! drops, timed messages with latency recorded, and (where the server pings) pings answered.

#[path = "util/servers.rs"]
mod servers;
mod util;

use std::time::{Duration, Instant};

use tungstenite::Message;
use util::*;
use wsscale::metrics::{FailureKind, RunOutcome};
use wsscale::plan::Overrides;
use wsscale::plan::build::build_plan;

/// A plan from flags, the way `wsscale run` builds it.
fn plan_of(o: Overrides) -> wsscale::plan::Plan {
    let mut p = build_plan(&o).expect("plan builds");
    p.threads = 2;
    p
}

fn overrides(url: &str, conns: u64, hold: Duration) -> Overrides {
    Overrides {
        targets: vec![url.to_string()],
        connections: Some(conns),
        ramp: Some(Duration::from_millis(500)),
        hold: Some(hold),
        ramp_down: Some(Duration::ZERO),
        ..Default::default()
    }
}

/// A Socket.IO (Engine.IO 4) server written from the spec: `0{…}` on open, `40` → `40{…}`,
/// a `2` ping every 200 ms, and a client that misses a `3` within 300 ms is dropped; event
/// `42[…]` frames are echoed.
fn fake_socketio() -> std::net::SocketAddr {
    ws_server(|mut ws| {
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let _ = ws.send(Message::text(
            "0{\"sid\":\"s\",\"upgrades\":[],\"pingInterval\":200,\"pingTimeout\":300}",
        ));
        let mut next_ping = Instant::now() + Duration::from_millis(200);
        let mut awaiting: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if let Some(since) = awaiting
                && now > since + Duration::from_millis(300)
            {
                let _ = ws.close(None);
                return; // missed pong: dropped, as python-socketio does
            }
            if now >= next_ping {
                if ws.send(Message::text("2")).is_err() {
                    return;
                }
                awaiting.get_or_insert(now);
                next_ping = now + Duration::from_millis(200);
            }
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let t = t.as_str();
                    if t == "40" {
                        let _ = ws.send(Message::text("40{\"sid\":\"x\"}"));
                    } else if t == "3" {
                        awaiting = None;
                    } else if t.starts_with("42") {
                        let _ = ws.send(Message::text(t.to_string()));
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    })
}

#[test]
fn socketio_preset_holds_against_a_pinging_server() {
    let addr = fake_socketio();
    let mut o = overrides(&format!("ws://{addr}/"), 5, Duration::from_millis(1500));
    o.protocol = Some("socketio".into());
    o.message_rate = Some(5.0);
    let plan = plan_of(o);
    assert_eq!(
        plan.targets[0].path_and_query,
        "/socket.io/?EIO=4&transport=websocket"
    );
    let out = run(&plan);
    let c = &out.totals.counters;
    assert_eq!(c.established, 5, "{c:?}");
    assert_eq!(c.dropped, 0, "Engine.IO pings answered: no drop {c:?}");
    assert!(c.server_pings_answered >= 5 * 3, "{c:?}");
    assert!(c.messages_received > 0 && c.messages_lost == 0, "{c:?}");
}

#[test]
fn without_the_preset_the_same_server_drops_the_connections() {
    // The observation, reproduced: a raw client that does not answer `2` is dropped.
    let addr = fake_socketio();
    let mut o = overrides(
        &format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
        3,
        Duration::from_millis(1500),
    );
    o.first_message = Some("40".into());
    o.first_message_expect = Some("40{".into());
    let out = run(&plan_of(o));
    assert_eq!(out.totals.counters.established, 3);
    assert_eq!(out.totals.counters.dropped, 3, "{:?}", out.totals.counters);
}

#[test]
fn generic_open_sequence_and_reply_with_regex_groups() {
    // A Phoenix-like server: requires a join, then sends heartbeats with a ref that must be
    // echoed; a connection that answers with the wrong ref is closed.
    let addr = ws_server(|mut ws| {
        let Ok(Message::Text(join)) = ws.read() else {
            return;
        };
        if join.as_str() != "JOIN room\u{1e}" {
            let _ = ws.close(None);
            return;
        }
        let _ = ws.send(Message::text("JOINED"));
        for r in 1..=5 {
            let _ = ws.send(Message::text(format!(
                "{{\"event\":\"hb\",\"ref\":\"{r}\"}}"
            )));
            match ws.read() {
                Ok(Message::Text(t)) if t.as_str() == format!("ack {r}") => {}
                _ => {
                    let _ = ws.close(None);
                    return;
                }
            }
        }
        while ws.read().is_ok() {}
    });
    let mut o = overrides(&format!("ws://{addr}/"), 3, Duration::from_millis(500));
    o.open = vec![
        wsscale::plan::OpenArg::Send("JOIN room\\x1e".into()),
        wsscale::plan::OpenArg::Expect("JOINED".into()),
    ];
    o.replies = vec!["re:\"ref\":\"(\\d+)\"=>ack {1}".into()];
    let out = run(&plan_of(o));
    let c = &out.totals.counters;
    assert_eq!(c.established, 3, "{c:?}");
    assert_eq!(c.dropped, 0, "{c:?}");
    assert_eq!(
        c.replies,
        vec![15],
        "five refs per connection answered {c:?}"
    );
}

#[test]
fn an_open_sequence_that_never_completes_fails_with_its_own_category() {
    let silent = ws_server(|mut ws| while ws.read().is_ok() {});
    let mut o = overrides(&format!("ws://{silent}/"), 2, Duration::from_millis(800));
    o.handshake_timeout = Some(Duration::from_millis(200));
    o.open = vec![
        wsscale::plan::OpenArg::Send("hello".into()),
        wsscale::plan::OpenArg::Expect("^welcome".into()),
    ];
    let out = run(&plan_of(o));
    let c = &out.totals.counters;
    assert_eq!(c.failures_of(FailureKind::OpenSequenceTimeout), 2, "{c:?}");
    let closing = ws_server(|mut ws| {
        let _ = ws.read();
        let _ = ws.close(None);
        while ws.read().is_ok() {}
    });
    let mut o = overrides(&format!("ws://{closing}/"), 2, Duration::from_millis(800));
    o.open = vec![
        wsscale::plan::OpenArg::Send("hello".into()),
        wsscale::plan::OpenArg::Expect("^welcome".into()),
    ];
    let out = run(&plan_of(o));
    let c = &out.totals.counters;
    assert_eq!(c.failures_of(FailureKind::OpenSequenceClosed), 2, "{c:?}");
}

/// A real server: hold `conns` for `hold` (longer than its keep-alive timeout) with timed
/// messages; 0 drops, every connection established, latency recorded.
fn hold_real(url: &str, protocol: &str, hold: Duration, heartbeat: Option<Duration>) -> RunOutcome {
    let mut o = overrides(url, 20, hold);
    o.protocol = Some(protocol.into());
    o.message_rate = Some(2.0);
    o.heartbeat_interval = heartbeat;
    let out = run(&plan_of(o));
    let c = &out.totals.counters;
    assert_eq!(c.established, 20, "{protocol}: {c:?}");
    assert_eq!(c.failed, 0, "{protocol}: {c:?}");
    assert_eq!(
        c.dropped, 0,
        "{protocol}: held past the keep-alive timeout {c:?}"
    );
    assert!(
        c.messages_received > 20,
        "{protocol}: timed messages came back {c:?}"
    );
    assert!(out.totals.hist.message_rtt.len() > 20, "{protocol}");
    out
}

#[test]
fn socketio_against_python_socketio() {
    let Some(url) = servers::url("socketio") else {
        return;
    };
    // python-socketio: ping interval 5 s, timeout 3 s: a silent client is gone within 8 s.
    let out = hold_real(&url, "socketio", Duration::from_secs(11), None);
    assert!(
        out.totals.counters.server_pings_answered >= 20,
        "{:?}",
        out.totals.counters
    );
}

#[test]
fn mqtt_against_rabbitmq_web_mqtt() {
    let Some(url) = servers::url("mqtt") else {
        return;
    };
    // Keep-alive 2 s: the broker drops a client silent for 1.5 × keep-alive.
    let out = hold_real(
        &url,
        "mqtt",
        Duration::from_secs(6),
        Some(Duration::from_secs(2)),
    );
    let c = &out.totals.counters;
    assert!(c.heartbeat_replies >= 20, "PINGRESP answered {c:?}");
    assert!(out.totals.hist.heartbeat_rtt.len() >= 20);
}

#[test]
fn stomp_against_rabbitmq_web_stomp() {
    let Some(url) = servers::url("stomp") else {
        return;
    };
    let out = hold_real(
        &url,
        "stomp",
        Duration::from_secs(6),
        Some(Duration::from_secs(1)),
    );
    assert!(out.totals.counters.heartbeats_sent >= 20);
}

#[test]
fn nats_against_nats_server() {
    let Some(url) = servers::url("nats") else {
        return;
    };
    // ci/servers.sh: ping_interval 2 s, ping_max 2: a client that ignores PING is gone in ~6 s.
    let out = hold_real(&url, "nats", Duration::from_secs(8), None);
    assert!(
        out.totals.counters.server_pings_answered >= 20,
        "{:?}",
        out.totals.counters
    );
}
