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

// ---- graphql-ws, SignalR, Phoenix, Action Cable, Centrifugo: presets against fakes ----
//
// Each fake is written from its protocol's spec and is strict where the real server is: it
// drops a client that does not keep the connection alive the way the protocol requires (or,
// for Action Cable, that sends to a channel it has not subscribed to), and it echoes or
// broadcasts timed messages back. The hold tests keep 5 connections for 1.5 s, five times
// the fakes' 300 ms keep-alive timeout, and require 0 drops and message latency recorded;
// the `..._drops_...` tests show the fakes do drop a client that only opens the session.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tungstenite::WebSocket;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::CloseFrame;
use wsscale::plan::OpenArg;

/// Like `ws_server`, checking the upgrade request first: the request target must be `path`
/// (404 otherwise) and, when given, `subprotocol` must be among the requested ones (400
/// otherwise; it is selected in the 101).
#[allow(clippy::result_large_err)] // the error type is tungstenite's callback's
fn ws_server_checked(
    path: &'static str,
    subprotocol: Option<&'static str>,
    f: impl Fn(WebSocket<TcpStream>) + Send + Sync + 'static,
) -> SocketAddr {
    tcp_server(move |s| {
        let check = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
            let refuse = |status: u16, why: &str| {
                Err(tungstenite::http::Response::builder()
                    .status(status)
                    .body(Some(why.to_string()))
                    .unwrap())
            };
            if req.uri().path_and_query().map(|p| p.as_str()) != Some(path) {
                return refuse(404, "no such endpoint");
            }
            if let Some(want) = subprotocol {
                let offered = req
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !offered.split(',').any(|p| p.trim() == want) {
                    return refuse(400, "subprotocol not acceptable");
                }
                resp.headers_mut()
                    .insert("Sec-WebSocket-Protocol", want.parse().unwrap());
            }
            Ok(resp)
        };
        if let Ok(ws) = tungstenite::accept_hdr(s, check) {
            f(ws)
        }
    })
}

/// Topic → the connections subscribed to it: what the fakes broadcast through. A
/// connection receives `(topic, message)` on its channel and frames it its own way.
#[derive(Clone, Default)]
struct Hub(Arc<Mutex<HashMap<String, Vec<Member>>>>);

/// A connection's inbox in the [`Hub`]: `(topic, message)`.
type Member = Sender<(String, String)>;

impl Hub {
    fn join(&self, topic: &str, me: &Member) {
        let mut topics = self.0.lock().unwrap();
        topics
            .entry(topic.to_string())
            .or_default()
            .push(me.clone());
    }

    fn publish(&self, topic: &str, message: &str) {
        let mut topics = self.0.lock().unwrap();
        if let Some(members) = topics.get_mut(topic) {
            members.retain(|m| m.send((topic.to_string(), message.to_string())).is_ok());
        }
    }
}

/// What reaches a fake's protocol logic.
enum In<'a> {
    /// A text frame from the client.
    Text(&'a str),
    /// A message published to a topic the connection joined.
    Hub(&'a str, &'a str),
    /// Every 100 ms (server keep-alives, open timeouts).
    Tick,
}

/// What the protocol logic made of it.
enum Verdict {
    Fine,
    /// The client did what keeps it alive (answered a ping, sent a heartbeat).
    Alive,
    /// A protocol violation: close with this code and reason.
    Close(u16, String),
}

const TICK: Duration = Duration::from_millis(100);
/// The fakes' keep-alive timeout.
const KEEPALIVE: Duration = Duration::from_millis(300);

/// The loop shared by the fakes: frames from the client, broadcasts and ticks go to `on`,
/// which queues answers in `out`; a client that was not `Alive` for `timeout` (when given)
/// is closed with `timeout`'s code and reason.
fn serve(
    mut ws: WebSocket<TcpStream>,
    timeout: Option<(u16, &str)>,
    mut on: impl FnMut(In, &Member, &mut Vec<String>) -> Verdict,
) {
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let (me, inbox): (Member, Receiver<(String, String)>) = channel();
    let mut alive = Instant::now();
    let mut next_tick = Instant::now() + TICK;
    let mut out = Vec::new();
    loop {
        let mut verdicts = Vec::new();
        if Instant::now() >= next_tick {
            next_tick += TICK;
            verdicts.push(on(In::Tick, &me, &mut out));
        }
        while let Ok((topic, m)) = inbox.try_recv() {
            verdicts.push(on(In::Hub(&topic, &m), &me, &mut out));
        }
        match ws.read() {
            Ok(Message::Text(t)) => verdicts.push(on(In::Text(t.as_str()), &me, &mut out)),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
        for m in out.drain(..) {
            if ws.send(Message::text(m)).is_err() {
                return;
            }
        }
        let mut close = None;
        for v in verdicts {
            match v {
                Verdict::Fine => {}
                Verdict::Alive => alive = Instant::now(),
                Verdict::Close(code, why) => close = Some((code, why)),
            }
        }
        if let Some((code, why)) = timeout
            && alive.elapsed() > KEEPALIVE
        {
            close.get_or_insert((code, why.to_string()));
        }
        if let Some((code, why)) = close {
            let _ = ws.close(Some(CloseFrame {
                code: code.into(),
                reason: why.into(),
            }));
            let _ = ws.flush();
            return;
        }
    }
}

fn parse(t: &str) -> Option<Value> {
    serde_json::from_str(t).ok()
}

fn close(code: u16, why: &str) -> Verdict {
    Verdict::Close(code, why.to_string())
}

/// 5 connections of `o` for 1.5 s at 5 timed messages/s each (5× the fakes' keep-alive
/// timeout): all established, none dropped, messages echoed with latency, none lost.
fn hold_fake(mut o: Overrides) -> RunOutcome {
    o.connections = Some(5);
    o.message_rate = Some(5.0);
    let out = run(&plan_of(o));
    let c = &out.totals.counters;
    assert_eq!(c.established, 5, "{c:?}");
    assert_eq!(c.failed, 0, "{c:?}");
    assert_eq!(c.dropped, 0, "held past the keep-alive timeout: {c:?}");
    assert!(c.messages_received >= 5 * 3, "{c:?}");
    assert_eq!(c.messages_lost, 0, "{c:?}");
    assert!(out.totals.hist.message_rtt.len() >= 15);
    out
}

/// 2 connections that only run `open` (no keep-alive, no preset) are dropped by the fake.
fn silent_is_dropped(url: &str, subprotocol: Option<&str>, open: &[&str]) {
    let mut o = overrides(url, 2, Duration::from_millis(1000));
    o.subprotocol = subprotocol.map(str::to_string);
    o.open = open
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i % 2 == 0 {
                OpenArg::Send(s.to_string())
            } else {
                OpenArg::Expect(s.to_string())
            }
        })
        .collect();
    let out = run(&plan_of(o));
    let c = &out.totals.counters;
    assert_eq!(c.established, 2, "{c:?}");
    assert_eq!(c.dropped, 2, "{c:?}");
}

/// GraphQL over WebSocket, from graphql-ws's PROTOCOL.md (graphql-transport-ws) or, with
/// `legacy`, subscriptions-transport-ws's PROTOCOL.md (`graphql-ws`), serving a schema with
/// one subscription, `subscription { messages(room: "lobby") }`, and one mutation,
/// `send(text: $marker)`, that publishes to it.
///
/// No `connection_init` within 300 ms closes 4408, a second one 4429, an init payload
/// without an `authToken` 4403, an operation before the ack 4401, an operation id in use
/// 4409, a frame that is not a protocol message 4400; an unknown query gets an `error`.
/// graphql-transport-ws: after the ack a `ping` every 100 ms, and a client that sends no
/// `pong` for 300 ms is closed (gqlgen's ping-pong timeout); a client `ping` is answered
/// `pong`. Legacy: `ka` every 100 ms after the ack, nothing expected back.
fn fake_graphql(legacy: bool) -> SocketAddr {
    let hub = Hub::default();
    let proto = if legacy {
        "graphql-ws"
    } else {
        "graphql-transport-ws"
    };
    ws_server_checked("/graphql", Some(proto), move |ws| {
        let hub = hub.clone();
        let opened = Instant::now();
        let mut acked = false;
        let mut active: HashSet<String> = HashSet::new();
        let mut subscriptions: Vec<String> = Vec::new();
        let (start, next) = if legacy {
            ("start", "data")
        } else {
            ("subscribe", "next")
        };
        let timeout = (!legacy).then_some((4408, "ping timeout"));
        let h = hub.clone();
        serve(ws, timeout, move |input, me, out| match input {
            In::Tick if !acked && opened.elapsed() > KEEPALIVE => {
                close(4408, "Connection initialisation timeout")
            }
            In::Tick if acked => {
                out.push(json!({"type": if legacy { "ka" } else { "ping" }}).to_string());
                Verdict::Fine
            }
            In::Tick => Verdict::Fine,
            In::Hub(_, marker) => {
                for id in &subscriptions {
                    out.push(
                        json!({"id": id, "type": next,
                               "payload": {"data": {"messages": marker}}})
                        .to_string(),
                    );
                }
                Verdict::Fine
            }
            In::Text(t) => {
                let Some(m) = parse(t) else {
                    return close(4400, "Invalid message received");
                };
                match m["type"].as_str().unwrap_or("") {
                    "connection_init" if acked => close(4429, "Too many initialisation requests"),
                    "connection_init" => {
                        if !m["payload"]["authToken"]
                            .as_str()
                            .is_some_and(|t| t.starts_with("t-"))
                        {
                            return close(4403, "Forbidden");
                        }
                        acked = true;
                        out.push(json!({"type": "connection_ack"}).to_string());
                        Verdict::Fine
                    }
                    "ping" if !legacy => {
                        out.push(json!({"type": "pong"}).to_string());
                        Verdict::Fine
                    }
                    "pong" if !legacy => Verdict::Alive,
                    op if op == start => {
                        if !acked {
                            return close(4401, "Unauthorized");
                        }
                        let Some(id) = m["id"].as_str().map(str::to_string) else {
                            return close(4400, "Invalid message received");
                        };
                        if active.contains(&id) {
                            return close(4409, &format!("Subscriber for {id} already exists"));
                        }
                        let query = m["payload"]["query"].as_str().unwrap_or("");
                        let marker = m["payload"]["variables"]["marker"].as_str();
                        if query == "subscription { messages(room: \"lobby\") }" {
                            active.insert(id.clone());
                            subscriptions.push(id);
                            h.join("messages", me);
                        } else if let Some(marker) =
                            marker.filter(|_| query.starts_with("mutation"))
                        {
                            out.push(
                                json!({"id": id, "type": next,
                                       "payload": {"data": {"send": true}}})
                                .to_string(),
                            );
                            out.push(json!({"id": id, "type": "complete"}).to_string());
                            h.publish("messages", marker);
                        } else {
                            let e = json!({"message": format!("cannot query {query:?}")});
                            let payload = if legacy { e } else { json!([e]) };
                            out.push(
                                json!({"id": id, "type": "error", "payload": payload}).to_string(),
                            );
                        }
                        Verdict::Fine
                    }
                    "complete" | "stop" => {
                        let id = m["id"].as_str().unwrap_or("");
                        active.remove(id);
                        subscriptions.retain(|s| s != id);
                        Verdict::Fine
                    }
                    "connection_terminate" if legacy => close(1000, "terminated"),
                    _ => close(4400, "Invalid message received"),
                }
            }
        })
    })
}

fn graphql_overrides(addr: SocketAddr, protocol: &str) -> Overrides {
    let mut o = overrides(
        &format!("ws://{addr}/graphql"),
        5,
        Duration::from_millis(1500),
    );
    o.protocol = Some(protocol.into());
    o.init_payload = Some("{\"authToken\":\"t-{conn}\"}".into());
    o.subscribe = vec!["subscription { messages(room: \"lobby\") }".into()];
    o.publish_topic = Some("mutation($marker: String!) { send(text: $marker) }".into());
    o
}

#[test]
fn graphql_ws_preset_holds_against_a_pinging_server() {
    let addr = fake_graphql(false);
    let mut o = graphql_overrides(addr, "graphql-ws");
    o.heartbeat_interval = Some(Duration::from_millis(200));
    let out = hold_fake(o);
    let c = &out.totals.counters;
    assert!(
        c.server_pings_answered >= 5 * 10,
        "pings answered pong {c:?}"
    );
    assert!(
        c.heartbeat_replies >= 5 * 4,
        "client pings, pong timed {c:?}"
    );
    assert!(!out.totals.hist.heartbeat_rtt.is_empty());
}

#[test]
fn graphql_ws_legacy_preset_holds() {
    let out = hold_fake(graphql_overrides(fake_graphql(true), "graphql-ws-legacy"));
    let c = &out.totals.counters;
    assert_eq!(c.server_pings_answered, 0, "ka needs no answer");
    assert!(c.other_messages_received >= 5 * 10, "ka received {c:?}");
}

#[test]
fn graphql_ws_fake_drops_a_client_that_does_not_pong() {
    let addr = fake_graphql(false);
    silent_is_dropped(
        &format!("ws://{addr}/graphql"),
        Some("graphql-transport-ws"),
        &[
            "{\"type\":\"connection_init\",\"payload\":{\"authToken\":\"t-1\"}}",
            "*connection_ack",
        ],
    );
}

/// ASP.NET Core SignalR, JSON hub protocol, from HubProtocol.md (clients connect without
/// negotiate, as with `skipNegotiation`). The first frame must be the handshake request
/// `{"protocol":"json","version":1}␞` within 300 ms, answered `{}␞` (anything else gets
/// `{"error":…}␞` and a close). Then a ping `{"type":6}␞` every 100 ms (the keep-alive
/// interval), and a client that sends nothing for 300 ms is closed (the client timeout:
/// any message counts). The hub's one method, `Echo(text)`, calls `Echo(text)` back on
/// the caller (and sends a completion for a blocking invocation); records are split on ␞.
fn fake_signalr() -> SocketAddr {
    ws_server_checked("/hub", None, |ws| {
        let opened = Instant::now();
        let mut shaken = false;
        serve(ws, Some((1000, "client timeout")), move |input, _, out| {
            let t = match input {
                In::Tick if !shaken && opened.elapsed() > KEEPALIVE => {
                    return close(1002, "handshake timeout");
                }
                In::Tick if shaken => {
                    out.push("{\"type\":6}\u{1e}".into());
                    return Verdict::Fine;
                }
                In::Text(t) => t,
                _ => return Verdict::Fine,
            };
            let records: Vec<&str> = t.split('\u{1e}').collect();
            if records.len() < 2 || !records.last().unwrap().is_empty() {
                return close(1002, "a record is not terminated by 0x1e");
            }
            for r in &records[..records.len() - 1] {
                let Some(m) = parse(r) else {
                    return close(1002, "not JSON");
                };
                if !shaken {
                    if m != json!({"protocol": "json", "version": 1}) {
                        out.push(
                            "{\"error\":\"Requested protocol is not available.\"}\u{1e}".into(),
                        );
                        return close(1002, "handshake");
                    }
                    shaken = true;
                    out.push("{}\u{1e}".into());
                    continue;
                }
                match m["type"].as_u64() {
                    Some(1) if m["target"] == "Echo" => {
                        let arg = m["arguments"][0].clone();
                        out.push(format!(
                            "{}\u{1e}",
                            json!({"type": 1, "target": "Echo", "arguments": [arg]})
                        ));
                        if let Some(id) = m["invocationId"].as_str() {
                            out.push(format!("{}\u{1e}", json!({"type": 3, "invocationId": id})));
                        }
                    }
                    Some(1) => {
                        if let Some(id) = m["invocationId"].as_str() {
                            out.push(format!(
                                "{}\u{1e}",
                                json!({"type": 3, "invocationId": id,
                                       "error": "Unknown hub method"})
                            ));
                        }
                    }
                    Some(6) => {}
                    Some(7) => return close(1000, "closed by the client"),
                    _ => return close(1002, "unknown message type"),
                }
            }
            Verdict::Alive
        })
    })
}

#[test]
fn signalr_preset_holds_against_a_pinging_server() {
    let addr = fake_signalr();
    let mut o = overrides(&format!("ws://{addr}/hub"), 5, Duration::from_millis(1500));
    o.protocol = Some("signalr".into());
    o.heartbeat_interval = Some(Duration::from_millis(100));
    let out = hold_fake(o);
    let c = &out.totals.counters;
    assert!(c.server_pings_answered >= 5 * 10, "{c:?}");
    assert!(c.heartbeats_sent >= 5 * 10, "{c:?}");
}

#[test]
fn signalr_fake_drops_a_silent_client() {
    let addr = fake_signalr();
    silent_is_dropped(
        &format!("ws://{addr}/hub"),
        None,
        &["{\"protocol\":\"json\",\"version\":1}\\x1e", "^{}\\x1e"],
    );
}

/// Phoenix channels, V2 JSON serializer, from Phoenix.Socket and
/// Phoenix.Socket.V2.JSONSerializer: the socket is at `/socket/websocket?vsn=2.0.0` (404
/// elsewhere); frames are `[join_ref, ref, topic, event, payload]`. `phx_join` to a
/// `room:*` or `wsscale:*` topic is answered `phx_reply` ok (Jason's key order:
/// `{"response":{},"status":"ok"}`), to another topic `unmatched topic`; a `heartbeat` on
/// `phoenix` is answered ok; any other event on a topic joined with that join ref is
/// broadcast to the topic as `[null,null,topic,event,payload]`, and one on a topic not
/// joined is answered `unmatched topic`. A socket with no heartbeat for 300 ms is closed
/// (Phoenix closes an idle socket after its timeout; this fake counts only heartbeats).
fn fake_phoenix() -> SocketAddr {
    let hub = Hub::default();
    ws_server_checked("/socket/websocket?vsn=2.0.0", None, move |ws| {
        let h = hub.clone();
        let mut joined: HashMap<String, String> = HashMap::new(); // topic → join ref
        serve(ws, Some((1000, "idle")), move |input, me, out| {
            let reply = |jr: &Value, r: &Value, topic: &str, status: &str, response: Value| {
                json!([jr, r, topic, "phx_reply", {"response": response, "status": status}])
                    .to_string()
            };
            match input {
                In::Hub(topic, msg) => {
                    let (event, payload): (String, Value) = serde_json::from_str(msg).unwrap();
                    out.push(json!([null, null, topic, event, payload]).to_string());
                    Verdict::Fine
                }
                In::Tick => Verdict::Fine,
                In::Text(t) => {
                    let Some(Value::Array(f)) = parse(t) else {
                        return close(1003, "not a V2 frame");
                    };
                    let [jr, r, topic, event, payload] = &f[..] else {
                        return close(1003, "not a V2 frame");
                    };
                    let (Some(topic), Some(event)) = (topic.as_str(), event.as_str()) else {
                        return close(1003, "not a V2 frame");
                    };
                    match (topic, event) {
                        ("phoenix", "heartbeat") => {
                            out.push(reply(jr, r, topic, "ok", json!({})));
                            Verdict::Alive
                        }
                        (_, "phx_join") => {
                            if topic.starts_with("room:") || topic.starts_with("wsscale:") {
                                joined.insert(topic.into(), jr.as_str().unwrap_or("").into());
                                h.join(topic, me);
                                out.push(reply(jr, r, topic, "ok", json!({})));
                            } else {
                                let why = json!({"reason": "unmatched topic"});
                                out.push(reply(jr, r, topic, "error", why));
                            }
                            Verdict::Fine
                        }
                        _ if joined.get(topic).map(String::as_str) == jr.as_str() => {
                            h.publish(topic, &json!([event, payload]).to_string());
                            Verdict::Fine
                        }
                        _ => {
                            let why = json!({"reason": "unmatched topic"});
                            out.push(reply(jr, r, topic, "error", why));
                            Verdict::Fine
                        }
                    }
                }
            }
        })
    })
}

#[test]
fn phoenix_preset_holds_with_heartbeats_and_broadcasts() {
    let addr = fake_phoenix();
    let mut o = overrides(&format!("ws://{addr}/"), 5, Duration::from_millis(1500));
    o.protocol = Some("phoenix".into());
    o.subscribe = vec!["room:lobby".into()];
    o.heartbeat_interval = Some(Duration::from_millis(100));
    let out = hold_fake(o);
    let c = &out.totals.counters;
    assert!(c.heartbeat_replies >= 5 * 10, "{c:?}");
    assert!(!out.totals.hist.heartbeat_rtt.is_empty());
    // The room broadcasts every connection's messages to all five: with the heartbeat
    // replies, about 7 frames per echo (3 if each got only its own).
    assert!(c.frames_received >= 5 * c.messages_received, "{c:?}");
}

#[test]
fn phoenix_fake_drops_a_socket_without_heartbeats() {
    let addr = fake_phoenix();
    silent_is_dropped(
        &format!("ws://{addr}/socket/websocket?vsn=2.0.0"),
        None,
        &[
            "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]",
            "*\"status\":\"ok\"",
        ],
    );
}

/// Rails Action Cable, from the action_cable protocol as Rails implements it: subprotocol
/// `actioncable-v1-json` (refused otherwise), `{"type":"welcome"}` on open, then
/// `{"type":"ping","message":<unix s>}` every 100 ms (Rails: 3 s), which needs no answer.
/// Commands are `{"command","identifier","data"}`: `subscribe` to an identifier naming
/// `EchoChannel` is confirmed (`confirm_subscription`), another channel rejected; `message`
/// passes the parsed data to the channel, which broadcasts it to the identifier's
/// subscribers as `{"identifier","message"}`. A `message` to an identifier not subscribed
/// closes the connection (Rails logs it and drops the command; the fake is stricter).
fn fake_actioncable() -> SocketAddr {
    let hub = Hub::default();
    ws_server_checked("/cable", Some("actioncable-v1-json"), move |mut ws| {
        let h = hub.clone();
        let _ = ws.send(Message::text("{\"type\":\"welcome\"}"));
        let mut subscribed: HashSet<String> = HashSet::new();
        serve(ws, None, move |input, me, out| match input {
            In::Tick => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                out.push(json!({"type": "ping", "message": now}).to_string());
                Verdict::Fine
            }
            In::Hub(id, data) => {
                let message: Value = serde_json::from_str(data).unwrap();
                out.push(json!({"identifier": id, "message": message}).to_string());
                Verdict::Fine
            }
            In::Text(t) => {
                let Some(m) = parse(t) else {
                    return close(1003, "not JSON");
                };
                let Some(id) = m["identifier"].as_str().map(str::to_string) else {
                    return close(1003, "no identifier");
                };
                match m["command"].as_str() {
                    Some("subscribe") => {
                        let channel = parse(&id).map(|i| i["channel"].clone());
                        let kind = if channel == Some(json!("EchoChannel")) {
                            subscribed.insert(id.clone());
                            h.join(&id, me);
                            "confirm_subscription"
                        } else {
                            "reject_subscription"
                        };
                        out.push(json!({"identifier": id, "type": kind}).to_string());
                        Verdict::Fine
                    }
                    Some("message") if subscribed.contains(&id) => {
                        let Some(data) = m["data"].as_str().and_then(parse) else {
                            return close(1003, "data is not a JSON string");
                        };
                        h.publish(&id, &data.to_string());
                        Verdict::Fine
                    }
                    Some("message") => close(1008, "Unable to find subscription"),
                    _ => close(1003, "unknown command"),
                }
            }
        })
    })
}

#[test]
fn actioncable_preset_holds_and_echoes_through_the_channel() {
    let addr = fake_actioncable();
    let mut o = overrides(
        &format!("ws://{addr}/cable"),
        5,
        Duration::from_millis(1500),
    );
    o.protocol = Some("actioncable".into());
    o.subscribe = vec!["{\"channel\":\"EchoChannel\",\"room\":\"r{conn}\"}".into()];
    let out = hold_fake(o);
    let c = &out.totals.counters;
    assert!(c.other_messages_received >= 5 * 10, "pings accepted {c:?}");
    assert_eq!(c.server_pings_answered, 0);
}

#[test]
fn actioncable_fake_drops_a_message_before_the_subscription() {
    let addr = fake_actioncable();
    let mut o = overrides(
        &format!("ws://{addr}/cable"),
        2,
        Duration::from_millis(1000),
    );
    o.protocol = Some("actioncable".into());
    o.subscribe = vec!["{\"channel\":\"EchoChannel\"}".into()];
    o.message_rate = Some(5.0);
    o.message_text = Some(
        "{\"command\":\"message\",\"identifier\":\"{\\\"channel\\\":\\\"Other\\\"}\",\
         \"data\":\"{\\\"body\\\":\\\"{marker}\\\"}\"}"
            .into(),
    );
    let out = run(&plan_of(o));
    let c = &out.totals.counters;
    assert_eq!(c.established, 2, "{c:?}");
    assert_eq!(c.dropped, 2, "{c:?}");
}

/// Centrifugo's client protocol v2 over JSON, from the centrifuge library's client.proto
/// and the client protocol docs: at `/connection/websocket`, commands and replies one per
/// line. The first command must be `connect` (3501 otherwise) with token `secret-token`
/// (3500 otherwise), answered with `"ping":1,"pong":true`; then a ping `{}` every 100 ms,
/// and a client that sends no pong `{}` for 300 ms is closed (3012). A command id must be
/// positive (3501). `subscribe` is answered `{"id","subscribe":{}}`; `publish` to a channel
/// the client subscribed to is answered `{"id","publish":{}}` and pushed to the channel's
/// subscribers as `{"push":{"channel","pub":{"data"}}}`; to another channel error 103.
fn fake_centrifugo() -> SocketAddr {
    let hub = Hub::default();
    ws_server_checked("/connection/websocket", None, move |ws| {
        let h = hub.clone();
        let mut connected = false;
        let mut channels: HashSet<String> = HashSet::new();
        serve(
            ws,
            Some((3012, "no pong")),
            move |input, me, out| match input {
                In::Tick => {
                    if connected {
                        out.push("{}".into());
                    }
                    Verdict::Fine
                }
                In::Hub(ch, data) => {
                    let data: Value = serde_json::from_str(data).unwrap();
                    out.push(json!({"push": {"channel": ch, "pub": {"data": data}}}).to_string());
                    Verdict::Fine
                }
                In::Text(t) => {
                    let mut verdict = Verdict::Fine;
                    for line in t.split('\n').filter(|l| !l.is_empty()) {
                        let Some(m) = parse(line) else {
                            return close(3501, "bad request");
                        };
                        if m == json!({}) {
                            verdict = Verdict::Alive;
                            continue;
                        }
                        let id = m["id"].as_u64().unwrap_or(0);
                        if id == 0 {
                            return close(3501, "bad request");
                        }
                        if !connected {
                            if !m["connect"].is_object() {
                                return close(3501, "bad request");
                            }
                            if m["connect"]["token"] != "secret-token" {
                                return close(3500, "invalid token");
                            }
                            connected = true;
                            out.push(
                                json!({"id": id, "connect": {"client": "c1", "version": "6.0.0",
                                   "ping": 1, "pong": true}})
                                .to_string(),
                            );
                        } else if let Some(ch) = m["subscribe"]["channel"].as_str() {
                            channels.insert(ch.to_string());
                            h.join(ch, me);
                            out.push(json!({"id": id, "subscribe": {}}).to_string());
                        } else if let Some(ch) = m["publish"]["channel"].as_str() {
                            if channels.contains(ch) {
                                out.push(json!({"id": id, "publish": {}}).to_string());
                                h.publish(ch, &m["publish"]["data"].to_string());
                            } else {
                                out.push(
                                    json!({"id": id, "error": {"code": 103,
                                       "message": "permission denied"}})
                                    .to_string(),
                                );
                            }
                        } else {
                            return close(3501, "bad request");
                        }
                    }
                    verdict
                }
            },
        )
    })
}

#[test]
fn centrifugo_preset_holds_against_a_pinging_server() {
    let addr = fake_centrifugo();
    let mut o = overrides(&format!("ws://{addr}/"), 5, Duration::from_millis(1500));
    o.protocol = Some("centrifugo".into());
    o.token = Some(wsscale::plan::Secret("secret-token".into()));
    let plan = plan_of(o.clone());
    assert_eq!(plan.targets[0].path_and_query, "/connection/websocket");
    let out = hold_fake(o);
    let c = &out.totals.counters;
    assert!(c.server_pings_answered >= 5 * 10, "{c:?}");
}

#[test]
fn centrifugo_fake_drops_a_client_that_does_not_pong() {
    let addr = fake_centrifugo();
    silent_is_dropped(
        &format!("ws://{addr}/connection/websocket"),
        None,
        &[
            "{\"id\":1,\"connect\":{\"token\":\"secret-token\"}}",
            "*\"connect\":{",
        ],
    );
}

/// An Engine.IO 3 server: `0{…}` then `40` on open; the client must ping (`2`, answered `3`)
/// at least every 500 ms or it is dropped; events are echoed.
fn fake_socketio_eio3() -> std::net::SocketAddr {
    ws_server(|mut ws| {
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let _ = ws.send(Message::text(
            "0{\"sid\":\"s\",\"pingInterval\":100,\"pingTimeout\":400}",
        ));
        let _ = ws.send(Message::text("40"));
        let mut last_ping = Instant::now();
        loop {
            if last_ping.elapsed() > Duration::from_millis(500) {
                let _ = ws.close(None);
                return;
            }
            match ws.read() {
                Ok(Message::Text(t)) if t.as_str() == "2" => {
                    last_ping = Instant::now();
                    let _ = ws.send(Message::text("3"));
                }
                Ok(Message::Text(t)) if t.as_str().starts_with("42") => {
                    let _ = ws.send(Message::text(t.to_string()));
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
fn socketio_eio3_preset_pings_the_server_itself() {
    let addr = fake_socketio_eio3();
    let mut o = overrides(&format!("ws://{addr}/"), 4, Duration::from_millis(1500));
    o.protocol = Some("socketio-eio3".into());
    o.heartbeat_interval = Some(Duration::from_millis(100));
    o.message_rate = Some(5.0);
    let plan = plan_of(o);
    assert_eq!(
        plan.targets[0].path_and_query,
        "/socket.io/?EIO=3&transport=websocket"
    );
    let out = run(&plan);
    let c = &out.totals.counters;
    assert_eq!(c.established, 4, "{c:?}");
    assert_eq!(c.dropped, 0, "the client pinged in time {c:?}");
    assert!(c.heartbeat_replies >= 4 * 8, "pongs timed {c:?}");
    assert!(c.messages_received > 0 && c.messages_lost == 0, "{c:?}");
}
