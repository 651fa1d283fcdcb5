//! Protocol presets (`--protocol NAME`): each is a table of the generic session primitives
//! ([`super::session`]) — subprotocol, URL default, open sequence, auto-replies, keep-alive,
//! the envelope of timed messages — built from a few options. No preset has an engine path
//! of its own.
//!
//! To add a protocol: add its name to [`NAMES`], a function that fills a [`Preset`] from
//! [`PresetOptions`], a row in `docs/protocols.md`, and a test against a real server or a
//! fake written from its spec.

use std::time::Duration;

use super::HeartbeatSpec;
use super::payload::{Pattern, Payload};
use super::session::{Envelope, OpenStep, Reply, Session};

/// The presets, as `--protocol` takes them.
pub const NAMES: &[&str] = &[
    "socketio",
    "socketio-eio3",
    "stomp",
    "mqtt",
    "nats",
    "graphql-ws",
    "graphql-ws-legacy",
    "signalr",
    "phoenix",
    "actioncable",
    "centrifugo",
];

/// What the user gave besides the preset name.
#[derive(Debug, Clone, Default)]
pub struct PresetOptions {
    /// Socket.IO namespace (`/chat`); default `/`.
    pub namespace: Option<String>,
    /// Socket.IO event for timed messages; default `message`.
    pub event: Option<String>,
    /// Topics / destinations / subjects to subscribe to (templates: `{conn}`).
    pub subscribe: Vec<String>,
    /// Where timed messages are published; default the first subscription.
    pub publish_topic: Option<String>,
    /// The keep-alive interval (`--heartbeat-interval`), when given.
    pub heartbeat: Option<Duration>,
    /// Timed messages are on (a default subscription is made so they come back).
    pub messages: bool,
    /// STOMP login and passcode (`--stomp-login USER:PASS`); default guest/guest.
    pub login: Option<(String, String)>,
    /// The user wrote the timed-message frame (`--message-text`): the preset's template is
    /// not used, so a preset that has no default for it does not need one.
    pub own_message_text: bool,
    /// GraphQL `connection_init` payload (`--init-payload JSON`); default `{}`.
    pub init_payload: Option<String>,
    /// SignalR hub method that timed messages invoke (`--method`); default `Echo`.
    pub method: Option<String>,
    /// The static bearer token (`--token`), for protocols that carry it in their own connect
    /// frame (Centrifugo).
    pub token: Option<String>,
}

/// A preset's contribution to a plan.
#[derive(Debug, Clone, Default)]
pub struct Preset {
    pub session: Session,
    /// `Sec-WebSocket-Protocol` to request (unless `--subprotocol` is given).
    pub subprotocol: Option<String>,
    /// Request target when the URL's is `/` (Socket.IO's path).
    pub default_path: Option<String>,
    /// Client keep-alive (its timeout is the default; `--heartbeat-timeout` changes it).
    pub heartbeat: Option<HeartbeatSpec>,
    /// The template of timed messages (with `{marker}`), for text envelopes.
    pub message_text: Option<String>,
}

/// Build preset `name`.
pub fn preset(name: &str, o: &PresetOptions) -> Result<Preset, String> {
    let is_graphql = name.starts_with("graphql-ws");
    for (given, flag, owner) in [
        (
            o.init_payload.is_some() && !is_graphql,
            "--init-payload",
            "graphql-ws",
        ),
        (
            o.method.is_some() && name != "signalr",
            "--method",
            "signalr",
        ),
    ] {
        if given && NAMES.contains(&name) {
            return Err(format!("{flag} belongs to --protocol {owner}, not {name}"));
        }
    }
    let mut p = match name {
        "socketio" => socketio(o),
        "socketio-eio3" => socketio_eio3(o),
        "stomp" => stomp(o),
        "mqtt" => mqtt(o),
        "nats" => nats(o),
        "graphql-ws" => graphql(o, false),
        "graphql-ws-legacy" => graphql(o, true),
        "signalr" => signalr(o),
        "phoenix" => phoenix(o),
        "actioncable" => actioncable(o),
        "centrifugo" => centrifugo(o),
        other => {
            return Err(format!(
                "unknown protocol {other:?}; the presets are {} (or use --send/--expect/--reply \
                 for any other protocol)",
                NAMES.join(", ")
            ));
        }
    }?;
    p.session.protocol = Some(name.to_string());
    Ok(p)
}

fn pattern(s: &str) -> Pattern {
    Pattern::parse(s).expect("preset patterns are valid")
}

fn send(s: &str) -> OpenStep {
    OpenStep::Send(super::payload::parse_payload(s, false).expect("preset payloads are valid"))
}

fn reply(p: &str, r: &str, server_ping: bool) -> Reply {
    Reply {
        pattern: pattern(p),
        response: super::payload::parse_payload(r, true).expect("preset replies are valid"),
        server_ping,
    }
}

fn keepalive(
    text: &[u8],
    binary: bool,
    expect: Option<&[u8]>,
    interval: Duration,
) -> HeartbeatSpec {
    HeartbeatSpec {
        text: text.to_vec(),
        binary,
        interval,
        expect: expect.map(<[u8]>::to_vec),
        timeout: super::build::TRAFFIC_TIMEOUT,
    }
}

fn template(s: &str) -> Result<Payload, String> {
    super::payload::parse_payload(s, false)
}

/// Subscriptions, with a per-connection default when messages need one to come back.
fn subscriptions(o: &PresetOptions, default: &str) -> Vec<String> {
    if o.subscribe.is_empty() && o.messages {
        vec![default.to_string()]
    } else {
        o.subscribe.clone()
    }
}

/// Engine.IO 4 / Socket.IO 5: the server opens with `0{…}`, the client connects its
/// namespace with `40`, the server pings `2` and expects `3`; events are `42["ev",…]`.
fn socketio(o: &PresetOptions) -> Result<Preset, String> {
    let ns = match o.namespace.as_deref() {
        None | Some("/") | Some("") => String::new(),
        Some(n) if n.starts_with('/') => format!("{n},"),
        Some(n) => {
            return Err(format!(
                "--namespace {n:?}: a namespace starts with /, e.g. /chat"
            ));
        }
    };
    let event = o.event.as_deref().unwrap_or("message");
    if event.contains('"') || event.contains('\\') {
        return Err(format!(
            "--event {event:?}: quotes and backslashes are not allowed"
        ));
    }
    Ok(Preset {
        session: Session {
            open: vec![
                OpenStep::Expect(pattern("^0{")),
                send(&format!("40{ns}")),
                OpenStep::Expect(pattern(&format!("^40{ns}{{"))),
            ],
            replies: vec![reply("2", "3", true)],
            ..Default::default()
        },
        default_path: Some("/socket.io/?EIO=4&transport=websocket".into()),
        message_text: Some(format!("42{ns}[\"{event}\",\"{{marker}}{{pad}}\"]")),
        ..Default::default()
    })
}

/// Engine.IO 3 / Socket.IO 2: the server opens with `0{…}` and connects the default
/// namespace itself (`40`); another namespace is joined with `40/ns,`; the **client** pings
/// `2` every ping interval (default 25 s, `--heartbeat-interval`) and the server's `3` is timed
/// as the heartbeat round trip.
fn socketio_eio3(o: &PresetOptions) -> Result<Preset, String> {
    let mut p = socketio(o)?;
    let mut open = vec![
        OpenStep::Expect(pattern("^0{")),
        OpenStep::Expect(pattern("40")),
    ];
    if let Some(ns) = o
        .namespace
        .as_deref()
        .filter(|n| *n != "/" && !n.is_empty())
    {
        open.push(send(&format!("40{ns},")));
        open.push(OpenStep::Expect(pattern(&format!("^40{ns}"))));
    }
    p.session.open = open;
    p.session.replies.clear();
    p.default_path = Some("/socket.io/?EIO=3&transport=websocket".into());
    p.heartbeat = Some(keepalive(
        b"2",
        false,
        Some(b"3"),
        o.heartbeat.unwrap_or(Duration::from_secs(25)),
    ));
    Ok(p)
}

/// STOMP 1.2: CONNECT/CONNECTED with heart-beat negotiation, SUBSCRIBE per destination,
/// timed messages SENT to the publish destination (they come back as MESSAGE frames through
/// the subscription). Client heart-beats are a newline every interval.
fn stomp(o: &PresetOptions) -> Result<Preset, String> {
    let hb = o.heartbeat.unwrap_or(Duration::from_secs(10));
    let ms = hb.as_millis();
    let (login, pass) = o
        .login
        .clone()
        .unwrap_or_else(|| ("guest".into(), "guest".into()));
    for (what, v) in [("login", &login), ("passcode", &pass)] {
        if v.contains(['\n', '\r', ':', '\0']) {
            return Err(format!(
                "the STOMP {what} cannot contain newlines, ':' or NUL"
            ));
        }
    }
    let mut open = vec![
        OpenStep::Send(template(&format!(
            "CONNECT\naccept-version:1.2\nhost:/\nlogin:{login}\npasscode:{pass}\nheart-beat:{ms},{ms}\n\n\\0"
        ))?),
        OpenStep::Expect(pattern("^CONNECTED\n")),
    ];
    let subs = subscriptions(o, "/topic/wsscale.{conn}");
    for (i, dest) in subs.iter().enumerate() {
        open.push(OpenStep::Send(template(&format!(
            "SUBSCRIBE\nid:sub-{i}\ndestination:{dest}\nack:auto\n\n\\0"
        ))?));
    }
    let publish = o.publish_topic.clone().or_else(|| subs.first().cloned());
    Ok(Preset {
        session: Session {
            open,
            ..Default::default()
        },
        subprotocol: Some("v12.stomp".into()),
        heartbeat: Some(keepalive(b"\n", false, None, hb)),
        message_text: publish.map(|d| {
            format!("SEND\ndestination:{d}\ncontent-type:text/plain\n\n{{marker}}{{pad}}\0")
        }),
        ..Default::default()
    })
}

/// MQTT 3.1.1 over WebSocket (subprotocol `mqtt`, binary frames): CONNECT with client id
/// `wsscale-{conn}` and keep-alive = the heartbeat interval, CONNACK, SUBSCRIBE/SUBACK per
/// topic, PINGREQ/PINGRESP timed as heartbeats, timed messages PUBLISHed (QoS 0).
fn mqtt(o: &PresetOptions) -> Result<Preset, String> {
    let hb = o.heartbeat.unwrap_or(Duration::from_secs(30));
    let keepalive_s = u16::try_from(hb.as_secs().max(1))
        .map_err(|_| "the MQTT keep-alive (--heartbeat-interval) is at most 65535 s".to_string())?;
    let mut open = vec![
        OpenStep::MqttConnect {
            client_id: template("wsscale-{conn}")?,
            keepalive_s,
        },
        OpenStep::Expect(pattern("^\\x20\\x02\\x00\\x00")),
    ];
    let subs = subscriptions(o, "wsscale/{conn}");
    for t in &subs {
        open.push(OpenStep::MqttSubscribe {
            topic: template(t)?,
            qos: 0,
        });
        open.push(OpenStep::Expect(pattern("^\\x90")));
    }
    let publish = o.publish_topic.clone().or_else(|| subs.first().cloned());
    Ok(Preset {
        session: Session {
            open,
            envelope: match publish {
                Some(t) => Envelope::MqttPublish {
                    topic: template(&t)?,
                },
                None => Envelope::Raw,
            },
            ..Default::default()
        },
        subprotocol: Some("mqtt".into()),
        heartbeat: Some(keepalive(
            &super::session::mqtt::PINGREQ,
            true,
            Some(&super::session::mqtt::PINGRESP),
            hb,
        )),
        ..Default::default()
    })
}

/// NATS over WebSocket: the server opens with `INFO`, the client sends CONNECT and a PING and
/// waits for the PONG; server `PING`s are answered `PONG`; SUB per subject; timed messages
/// are `PUB subject 32` carrying the marker and come back as `MSG` through the subscription.
fn nats(o: &PresetOptions) -> Result<Preset, String> {
    let mut open = vec![
        OpenStep::Expect(pattern("^INFO ")),
        send(
            "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"name\":\"wsscale\"}\\r\\nPING\\r\\n",
        ),
        OpenStep::Expect(pattern("*PONG\\r\\n")),
    ];
    let subs = subscriptions(o, "wsscale.{conn}");
    for (i, s) in subs.iter().enumerate() {
        if s.contains(char::is_whitespace) {
            return Err(format!("--subscribe {s:?}: a NATS subject has no spaces"));
        }
        open.push(OpenStep::Send(template(&format!(
            "SUB {s} {}\\r\\n",
            i + 1
        ))?));
    }
    let publish = o.publish_topic.clone().or_else(|| subs.first().cloned());
    Ok(Preset {
        session: Session {
            open,
            replies: vec![reply("re:(^|\\n)PING\\r\\n", "PONG\\r\\n", true)],
            envelope: match publish {
                Some(s) => Envelope::NatsPub {
                    subject: template(&s)?,
                },
                None => Envelope::Raw,
            },
            ..Default::default()
        },
        ..Default::default()
    })
}

/// `s` as a JSON string literal (quoted and escaped). `{conn}` and the other placeholders
/// pass through unchanged.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A `Send` step of text that is already JSON as it goes on the wire: its backslashes (JSON
/// escapes such as `\"` and `\n`) are doubled so the payload notation keeps them; `{conn}`
/// stays a placeholder.
fn send_json(s: &str) -> Result<OpenStep, String> {
    Ok(OpenStep::Send(template(&s.replace('\\', "\\\\"))?))
}

/// `s` parsed as JSON, with `{conn}` filled in first (it is a placeholder).
fn json_of(what: &str, s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(&s.replace("{conn}", "0"))
        .map_err(|e| format!("{what} {s:?} is not valid JSON ({e})"))
}

/// GraphQL over WebSocket.
///
/// `graphql-ws` is the graphql-transport-ws protocol (subprotocol `graphql-transport-ws`):
/// `connection_init` with `--init-payload` (default `{}`), wait for `connection_ack`; a server
/// `ping` is answered `pong`, and with `--heartbeat-interval` the client pings too and times
/// the `pong`; each `--subscribe QUERY` is a `subscribe` operation (ids `1`, `2`, …) whose
/// `next` results are pushes.
///
/// `graphql-ws-legacy` is subscriptions-transport-ws (subprotocol `graphql-ws`): the same
/// init and ack, `ka` keep-alives need no answer, operations are `start`.
///
/// Timed messages are an operation (`--publish-topic DOCUMENT`, id `m{seq}`) with the marker
/// in its `$marker` variable: whatever result carries the marker back closes the sample (the
/// operation's own, or a subscription's push when the operation publishes it).
fn graphql(o: &PresetOptions, legacy: bool) -> Result<Preset, String> {
    let init = o.init_payload.as_deref().unwrap_or("{}");
    if !matches!(
        json_of("--init-payload", init)?,
        serde_json::Value::Object(_) | serde_json::Value::Null
    ) {
        return Err(format!(
            "--init-payload {init:?}: the connection_init payload is a JSON object, e.g. \
             '{{\"authToken\":\"…\"}}'"
        ));
    }
    let op = if legacy { "start" } else { "subscribe" };
    let mut open = vec![
        send_json(&format!(
            "{{\"type\":\"connection_init\",\"payload\":{init}}}"
        ))?,
        OpenStep::Expect(pattern(r#"re:"type"\s*:\s*"connection_ack""#)),
    ];
    for (i, query) in o.subscribe.iter().enumerate() {
        open.push(send_json(&format!(
            "{{\"id\":\"{}\",\"type\":\"{op}\",\"payload\":{{\"query\":{}}}}}",
            i + 1,
            json_str(query)
        ))?);
    }
    if o.messages && !o.own_message_text && o.publish_topic.is_none() {
        return Err(
            "graphql-ws has no echo of its own: timed messages are a GraphQL operation that \
             returns or publishes its $marker variable; give it with --publish-topic, e.g. \
             'mutation($marker: String!) { send(text: $marker) }' (or write the whole frame \
             with --message-text)"
                .into(),
        );
    }
    let message_text = o.publish_topic.as_deref().map(|doc| {
        format!(
            "{{\"id\":\"m{{seq}}\",\"type\":\"{op}\",\"payload\":{{\"query\":{},\
             \"variables\":{{\"marker\":\"{{marker}}{{pad}}\"}}}}}}",
            json_str(doc)
        )
    });
    let (subprotocol, replies, heartbeat) = if legacy {
        ("graphql-ws", Vec::new(), None)
    } else {
        (
            "graphql-transport-ws",
            vec![reply(
                r#"re:"type"\s*:\s*"ping""#,
                "{\"type\":\"pong\"}",
                true,
            )],
            o.heartbeat.map(|hb| {
                keepalive(
                    b"{\"type\":\"ping\"}",
                    false,
                    Some(b"\"type\":\"pong\""),
                    hb,
                )
            }),
        )
    };
    Ok(Preset {
        session: Session {
            open,
            replies,
            ..Default::default()
        },
        subprotocol: Some(subprotocol.into()),
        heartbeat,
        message_text,
        ..Default::default()
    })
}

/// ASP.NET Core SignalR, JSON hub protocol, connecting straight to the hub's WebSocket (the
/// clients' `skipNegotiation`; no `/negotiate` request): the handshake
/// `{"protocol":"json","version":1}␞`, wait for `{}␞`; server pings `{"type":6}␞` answered in
/// kind; a client ping every `--heartbeat-interval` (default 15 s, the servers' keep-alive;
/// a server drops a client silent for its client timeout, 30 s); timed messages invoke
/// `--method` (default `Echo`) with the marker as the one argument, and the call back that
/// carries it closes the sample.
fn signalr(o: &PresetOptions) -> Result<Preset, String> {
    let hb = o.heartbeat.unwrap_or(Duration::from_secs(15));
    let method = o.method.as_deref().unwrap_or("Echo");
    if method.is_empty() {
        return Err("--method: give the hub method that timed messages invoke, e.g. Echo".into());
    }
    Ok(Preset {
        session: Session {
            open: vec![
                send("{\"protocol\":\"json\",\"version\":1}\\x1e"),
                OpenStep::Expect(pattern("^{}\\x1e")),
            ],
            replies: vec![reply(
                r#"re:(^|\x1e)\{"type":6\}\x1e"#,
                "{\"type\":6}\\x1e",
                true,
            )],
            ..Default::default()
        },
        heartbeat: Some(keepalive(b"{\"type\":6}\x1e", false, None, hb)),
        message_text: Some(format!(
            "{{\"type\":1,\"target\":{},\"arguments\":[\"{{marker}}{{pad}}\"]}}\u{1e}",
            json_str(method)
        )),
        ..Default::default()
    })
}

/// Phoenix channels, serializer v2 (`[join_ref, ref, topic, event, payload]`; the URL path
/// becomes `/socket/websocket?vsn=2.0.0` when it is `/`): `phx_join` per `--subscribe TOPIC`
/// (join refs `1`, `2`, …), each waiting for its `phx_reply` with status ok; a heartbeat
/// every `--heartbeat-interval` (default 30 s; the server closes an idle socket after 60 s)
/// whose reply is timed; timed messages are `--event` (default `message`) pushes to
/// `--publish-topic` (default the first topic; joined too when it is not one), and the
/// broadcast that carries the marker back closes the sample.
fn phoenix(o: &PresetOptions) -> Result<Preset, String> {
    let hb = o.heartbeat.unwrap_or(Duration::from_secs(30));
    let mut topics = subscriptions(o, "wsscale:{conn}");
    let publish = o.publish_topic.clone().or_else(|| topics.first().cloned());
    if let Some(p) = &publish
        && !topics.contains(p)
    {
        topics.push(p.clone());
    }
    let event = o.event.as_deref().unwrap_or("message");
    let mut open = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        let r = i + 1;
        open.push(send_json(&format!(
            "[\"{r}\",\"{r}\",{},\"phx_join\",{{}}]",
            json_str(topic)
        ))?);
        open.push(OpenStep::Expect(pattern(&format!(
            r#"re:^\["{r}","{r}",.*"phx_reply",\{{.*"status":"ok""#
        ))));
    }
    let message_text = publish.map(|p| {
        let r = topics.iter().position(|t| *t == p).unwrap_or(0) + 1;
        format!(
            "[\"{r}\",\"m\",{},{},{{\"body\":\"{{marker}}{{pad}}\"}}]",
            json_str(&p),
            json_str(event)
        )
    });
    Ok(Preset {
        session: Session {
            open,
            ..Default::default()
        },
        default_path: Some("/socket/websocket?vsn=2.0.0".into()),
        heartbeat: Some(keepalive(
            b"[null,\"hb\",\"phoenix\",\"heartbeat\",{}]",
            false,
            Some(b"\"hb\",\"phoenix\",\"phx_reply\""),
            hb,
        )),
        message_text,
        ..Default::default()
    })
}

/// Rails Action Cable (subprotocol `actioncable-v1-json`): wait for the `welcome`; per
/// `--subscribe IDENTIFIER` (a JSON object naming the channel, e.g.
/// `{"channel":"ChatChannel","room":"1"}`) a `subscribe` command, waiting for its
/// `confirm_subscription`; the server's `ping`s every 3 s need no answer. Timed messages are
/// `message` commands to `--publish-topic` (default the first identifier; subscribed too when
/// it is not one) with data `{"body":"<marker>"}`, received by the channel; the broadcast that
/// carries the marker back closes the sample.
fn actioncable(o: &PresetOptions) -> Result<Preset, String> {
    let mut ids = o.subscribe.clone();
    let publish = o.publish_topic.clone().or_else(|| ids.first().cloned());
    if let Some(p) = &publish
        && !ids.contains(p)
    {
        ids.push(p.clone());
    }
    if o.messages && !o.own_message_text && publish.is_none() {
        return Err(
            "Action Cable timed messages go to a channel: give its identifier with \
             --subscribe, e.g. --subscribe '{\"channel\":\"EchoChannel\"}'"
                .into(),
        );
    }
    let mut open = vec![OpenStep::Expect(pattern("*\"welcome\""))];
    for id in &ids {
        match json_of("--subscribe", id) {
            Ok(serde_json::Value::Object(m)) if m.contains_key("channel") => {}
            _ => {
                return Err(format!(
                    "--subscribe {id:?}: an Action Cable identifier is a JSON object naming the \
                     channel, e.g. '{{\"channel\":\"ChatChannel\",\"room\":\"1\"}}'"
                ));
            }
        }
        open.push(send_json(&format!(
            "{{\"command\":\"subscribe\",\"identifier\":{}}}",
            json_str(id)
        ))?);
        open.push(OpenStep::Expect(pattern("*\"confirm_subscription\"")));
    }
    let message_text = publish.map(|id| {
        format!(
            "{{\"command\":\"message\",\"identifier\":{},\"data\":{}}}",
            json_str(&id),
            json_str("{\"body\":\"{marker}{pad}\"}")
        )
    });
    Ok(Preset {
        session: Session {
            open,
            ..Default::default()
        },
        subprotocol: Some("actioncable-v1-json".into()),
        message_text,
        ..Default::default()
    })
}

/// Centrifugo v4+ (client protocol v2, JSON; the URL path becomes `/connection/websocket`
/// when it is `/`): `connect` with `--token` as the connection token (empty without one),
/// wait for the connect result; server pings `{}` answered `{}`; `subscribe` per `--subscribe`
/// channel (ids 2, 3, …), each waiting for its result; timed messages are `publish` commands
/// (ids `1{seq}`: 10, 11, …) to `--publish-topic` (default the first channel) with data
/// `{"m":"<marker>"}`, and the publication pushed back closes the sample.
fn centrifugo(o: &PresetOptions) -> Result<Preset, String> {
    let token = o.token.as_deref().unwrap_or("");
    let mut open = vec![
        send_json(&format!(
            "{{\"id\":1,\"connect\":{{\"token\":{}}}}}",
            json_str(token)
        ))?,
        OpenStep::Expect(pattern("*\"connect\":{")),
    ];
    let subs = subscriptions(o, "wsscale-{conn}");
    for (i, channel) in subs.iter().enumerate() {
        let id = i + 2;
        open.push(send_json(&format!(
            "{{\"id\":{id},\"subscribe\":{{\"channel\":{}}}}}",
            json_str(channel)
        ))?);
        open.push(OpenStep::Expect(pattern(&format!(
            r#"re:"id":\s*{id}\s*,\s*"subscribe""#
        ))));
    }
    let publish = o.publish_topic.clone().or_else(|| subs.first().cloned());
    Ok(Preset {
        session: Session {
            open,
            // Replies may be batched one per line in a frame.
            replies: vec![reply(r"re:(^|\n)\{\}(\n|$)", "{}", true)],
            ..Default::default()
        },
        default_path: Some("/connection/websocket".into()),
        message_text: publish.map(|ch| {
            format!(
                "{{\"id\":1{{seq}},\"publish\":{{\"channel\":{},\"data\":{{\"m\":\"{{marker}}{{pad}}\"}}}}}}",
                json_str(&ch)
            )
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> PresetOptions {
        PresetOptions {
            messages: true,
            ..Default::default()
        }
    }

    #[test]
    fn socketio_table() {
        let p = preset("socketio", &opts()).unwrap();
        assert_eq!(p.session.protocol.as_deref(), Some("socketio"));
        assert!(
            matches!(&p.session.open[0], OpenStep::Expect(x) if x.matches(b"0{\"sid\":\"a\"}"))
        );
        assert!(p.session.replies[0].pattern.matches(b"2"));
        assert_eq!(
            p.message_text.as_deref(),
            Some("42[\"message\",\"{marker}{pad}\"]")
        );
        let mut o = opts();
        o.namespace = Some("/chat".into());
        o.event = Some("tick".into());
        let p = preset("socketio", &o).unwrap();
        assert_eq!(
            p.message_text.as_deref(),
            Some("42/chat,[\"tick\",\"{marker}{pad}\"]")
        );
        assert!(
            preset(
                "socketio",
                &PresetOptions {
                    namespace: Some("chat".into()),
                    ..opts()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn mqtt_table() {
        let p = preset("mqtt", &opts()).unwrap();
        let mut buf = Vec::new();
        assert_eq!(p.session.open[0].render(7, &mut buf), Some(true));
        assert!(buf.windows(9).any(|w| w == b"wsscale-7"));
        assert!(matches!(&p.session.open[1], OpenStep::Expect(x) if x.matches(&[0x20, 2, 0, 0])));
        assert!(matches!(p.session.envelope, Envelope::MqttPublish { .. }));
        assert_eq!(p.subprotocol.as_deref(), Some("mqtt"));
    }

    #[test]
    fn stomp_and_nats_tables() {
        let p = preset("stomp", &opts()).unwrap();
        let mut buf = Vec::new();
        p.session.open[0].render(1, &mut buf);
        assert!(buf.starts_with(b"CONNECT\n") && buf.ends_with(b"\n\n\0"));
        assert!(
            p.message_text
                .unwrap()
                .contains("destination:/topic/wsscale.{conn}")
        );
        let p = preset("nats", &opts()).unwrap();
        assert!(p.session.replies[0].pattern.matches(b"PING\r\n"));
        assert!(p.session.replies[0].pattern.matches(b"+OK\r\nPING\r\n"));
        assert!(
            !p.session.replies[0]
                .pattern
                .matches(b"MSG a 1 4\r\nxPING\r\n")
        );
        assert!(preset("nope", &opts()).unwrap_err().contains("socketio"));
    }

    /// The frame open step `i` sends for connection 7, as text.
    fn sent(p: &Preset, i: usize) -> String {
        let mut buf = Vec::new();
        assert_eq!(
            p.session.open[i].render(7, &mut buf),
            Some(false),
            "step {i}"
        );
        String::from_utf8(buf).unwrap()
    }

    fn expects(p: &Preset, i: usize, frame: &str) -> bool {
        matches!(&p.session.open[i], OpenStep::Expect(x) if x.matches(frame.as_bytes()))
    }

    /// The reply the preset's rules give to `frame` (None: no rule matches).
    fn answer(p: &Preset, frame: &str) -> Option<(String, bool)> {
        let mut g = Vec::new();
        let r = p
            .session
            .replies
            .iter()
            .find(|r| r.pattern.captures(frame.as_bytes(), &mut g))?;
        let mut out = Vec::new();
        r.response.render(7, &g, &mut out);
        Some((String::from_utf8(out).unwrap(), r.server_ping))
    }

    fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn graphql_ws_table() {
        let mut o = opts();
        o.init_payload = Some("{\"authToken\":\"t-{conn}\"}".into());
        o.subscribe = vec!["subscription {\n  messages(room: \"a\\\\b\")\n}".into()];
        o.publish_topic = Some("mutation($marker: String!) { send(text: $marker) }".into());
        o.heartbeat = Some(Duration::from_secs(5));
        let p = preset("graphql-ws", &o).unwrap();
        assert_eq!(p.subprotocol.as_deref(), Some("graphql-transport-ws"));
        assert_eq!(
            json(&sent(&p, 0)),
            json("{\"type\":\"connection_init\",\"payload\":{\"authToken\":\"t-7\"}}")
        );
        assert!(expects(&p, 1, "{\"type\":\"connection_ack\"}"));
        assert!(expects(
            &p,
            1,
            "{\"type\": \"connection_ack\", \"payload\": {}}"
        ));
        let sub = json(&sent(&p, 2));
        assert_eq!(sub["id"], "1");
        assert_eq!(sub["type"], "subscribe");
        assert_eq!(sub["payload"]["query"], o.subscribe[0].as_str(), "escaped");
        assert_eq!(
            answer(&p, "{\"type\":\"ping\"}"),
            Some(("{\"type\":\"pong\"}".into(), true))
        );
        assert_eq!(answer(&p, "{\"id\":\"1\",\"type\":\"next\"}"), None);
        let hb = p.heartbeat.as_ref().unwrap();
        assert_eq!(hb.text, b"{\"type\":\"ping\"}");
        assert!(hb.expect.is_some());
        let m = p.message_text.unwrap();
        let m = json(&m.replace("{marker}{pad}", "~x~").replace("{seq}", "3"));
        assert_eq!(m["id"], "m3");
        assert_eq!(m["type"], "subscribe");
        assert_eq!(m["payload"]["variables"]["marker"], "~x~");
        // Timed messages need an operation; --init-payload must be an object.
        assert!(
            preset("graphql-ws", &opts())
                .unwrap_err()
                .contains("--publish-topic")
        );
        let own = PresetOptions {
            own_message_text: true,
            ..opts()
        };
        assert!(preset("graphql-ws", &own).is_ok());
        o.init_payload = Some("[1]".into());
        assert!(preset("graphql-ws", &o).unwrap_err().contains("object"));
        o.init_payload = Some("{".into());
        assert!(
            preset("graphql-ws", &o)
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn graphql_ws_legacy_table() {
        let o = PresetOptions {
            subscribe: vec!["subscription { ticks }".into()],
            publish_topic: Some("query($marker: String!) { echo(m: $marker) }".into()),
            heartbeat: Some(Duration::from_secs(5)),
            ..opts()
        };
        let p = preset("graphql-ws-legacy", &o).unwrap();
        assert_eq!(p.subprotocol.as_deref(), Some("graphql-ws"));
        assert_eq!(json(&sent(&p, 0))["payload"], json("{}"));
        assert_eq!(json(&sent(&p, 2))["type"], "start");
        assert!(p.session.replies.is_empty(), "ka needs no answer");
        assert!(
            p.heartbeat.is_none(),
            "the legacy protocol has no client ping"
        );
        assert!(p.message_text.unwrap().contains("\"type\":\"start\""));
    }

    #[test]
    fn signalr_table() {
        let p = preset("signalr", &opts()).unwrap();
        assert_eq!(sent(&p, 0), "{\"protocol\":\"json\",\"version\":1}\u{1e}");
        assert!(expects(&p, 1, "{}\u{1e}"));
        assert!(!expects(&p, 1, "{\"error\":\"nope\"}\u{1e}"));
        let pong = Some(("{\"type\":6}\u{1e}".to_string(), true));
        assert_eq!(answer(&p, "{\"type\":6}\u{1e}"), pong);
        assert_eq!(
            answer(
                &p,
                "{\"type\":1,\"target\":\"x\",\"arguments\":[]}\u{1e}{\"type\":6}\u{1e}"
            ),
            pong,
            "a ping batched after another record"
        );
        assert_eq!(
            answer(
                &p,
                "{\"type\":1,\"arguments\":[\"{\\\"type\\\":6}\"]}\u{1e}"
            ),
            None
        );
        let hb = p.heartbeat.as_ref().unwrap();
        assert_eq!(
            (hb.text.as_slice(), hb.interval),
            (&b"{\"type\":6}\x1e"[..], Duration::from_secs(15))
        );
        assert_eq!(
            p.message_text.as_deref(),
            Some("{\"type\":1,\"target\":\"Echo\",\"arguments\":[\"{marker}{pad}\"]}\u{1e}")
        );
        let p = preset(
            "signalr",
            &PresetOptions {
                method: Some("Send\"It".into()),
                heartbeat: Some(Duration::from_secs(2)),
                ..opts()
            },
        )
        .unwrap();
        assert!(
            p.message_text
                .unwrap()
                .contains("\"target\":\"Send\\\"It\"")
        );
        assert_eq!(p.heartbeat.unwrap().interval, Duration::from_secs(2));
        // --method is SignalR's only.
        let o = PresetOptions {
            method: Some("Echo".into()),
            ..opts()
        };
        assert!(preset("phoenix", &o).unwrap_err().contains("signalr"));
    }

    #[test]
    fn phoenix_table() {
        let o = PresetOptions {
            subscribe: vec!["room:lobby".into(), "user:{conn}".into()],
            publish_topic: Some("room:echo".into()),
            ..opts()
        };
        let p = preset("phoenix", &o).unwrap();
        assert_eq!(
            p.default_path.as_deref(),
            Some("/socket/websocket?vsn=2.0.0")
        );
        assert_eq!(sent(&p, 0), "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]");
        assert!(expects(
            &p,
            1,
            "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]"
        ));
        assert!(!expects(
            &p,
            1,
            "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{\"reason\":\"unmatched topic\"},\"status\":\"error\"}]"
        ));
        assert!(!expects(
            &p,
            3,
            "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]"
        ));
        assert_eq!(sent(&p, 2), "[\"2\",\"2\",\"user:7\",\"phx_join\",{}]");
        // The publish topic is joined too, and messages carry its join ref.
        assert_eq!(sent(&p, 4), "[\"3\",\"3\",\"room:echo\",\"phx_join\",{}]");
        assert_eq!(
            p.message_text.as_deref(),
            Some("[\"3\",\"m\",\"room:echo\",\"message\",{\"body\":\"{marker}{pad}\"}]")
        );
        let hb = p.heartbeat.unwrap();
        assert_eq!(hb.text, b"[null,\"hb\",\"phoenix\",\"heartbeat\",{}]");
        assert_eq!(hb.interval, Duration::from_secs(30));
        let reply = b"[null,\"hb\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]";
        let e = hb.expect.unwrap();
        assert!(reply.windows(e.len()).any(|w| w == e));
        // Default: a topic per connection, timed messages to it.
        let p = preset("phoenix", &opts()).unwrap();
        assert_eq!(sent(&p, 0), "[\"1\",\"1\",\"wsscale:7\",\"phx_join\",{}]");
        assert!(
            p.message_text
                .unwrap()
                .starts_with("[\"1\",\"m\",\"wsscale:{conn}\"")
        );
    }

    #[test]
    fn actioncable_table() {
        let id = "{\"channel\":\"EchoChannel\",\"room\":\"r{conn}\"}";
        let o = PresetOptions {
            subscribe: vec![id.into()],
            ..opts()
        };
        let p = preset("actioncable", &o).unwrap();
        assert_eq!(p.subprotocol.as_deref(), Some("actioncable-v1-json"));
        assert!(expects(&p, 0, "{\"type\":\"welcome\"}"));
        let sub = json(&sent(&p, 1));
        assert_eq!(sub["command"], "subscribe");
        assert_eq!(
            sub["identifier"],
            "{\"channel\":\"EchoChannel\",\"room\":\"r7\"}"
        );
        assert!(expects(
            &p,
            2,
            "{\"identifier\":\"{\\\"channel\\\":\\\"EchoChannel\\\"}\",\"type\":\"confirm_subscription\"}"
        ));
        assert!(p.session.replies.is_empty() && p.heartbeat.is_none());
        // Nested escaping: the data is a JSON string holding a JSON object.
        let m = p.message_text.unwrap().replace("{marker}{pad}", "~x~");
        let m = json(&m);
        assert_eq!(m["command"], "message");
        assert_eq!(m["identifier"], id);
        assert_eq!(json(m["data"].as_str().unwrap())["body"], "~x~");
        // Timed messages need a channel; identifiers are JSON objects naming one.
        assert!(
            preset("actioncable", &opts())
                .unwrap_err()
                .contains("--subscribe")
        );
        let bad = PresetOptions {
            subscribe: vec!["ChatChannel".into()],
            ..opts()
        };
        assert!(preset("actioncable", &bad).is_err());
        let bad = PresetOptions {
            subscribe: vec!["{\"room\":1}".into()],
            ..opts()
        };
        assert!(preset("actioncable", &bad).unwrap_err().contains("channel"));
    }

    #[test]
    fn centrifugo_table() {
        let o = PresetOptions {
            token: Some("tok\"en".into()),
            subscribe: vec!["news".into(), "chat:{conn}".into()],
            ..opts()
        };
        let p = preset("centrifugo", &o).unwrap();
        assert_eq!(p.default_path.as_deref(), Some("/connection/websocket"));
        assert_eq!(p.subprotocol, None);
        assert_eq!(
            json(&sent(&p, 0)),
            json("{\"id\":1,\"connect\":{\"token\":\"tok\\\"en\"}}")
        );
        assert!(expects(
            &p,
            1,
            "{\"id\":1,\"connect\":{\"client\":\"c\",\"version\":\"6.0.0\",\"ping\":25,\"pong\":true}}"
        ));
        assert!(!expects(&p, 1, "{\"id\":1,\"error\":{\"code\":101}}"));
        assert_eq!(
            sent(&p, 2),
            "{\"id\":2,\"subscribe\":{\"channel\":\"news\"}}"
        );
        assert!(expects(&p, 3, "{\"id\":2,\"subscribe\":{}}"));
        assert!(!expects(&p, 3, "{\"id\":2,\"error\":{\"code\":103}}"));
        assert_eq!(
            sent(&p, 4),
            "{\"id\":3,\"subscribe\":{\"channel\":\"chat:7\"}}"
        );
        assert!(expects(&p, 5, "{\"id\":3,\"subscribe\":{}}"));
        assert_eq!(answer(&p, "{}"), Some(("{}".into(), true)));
        assert_eq!(answer(&p, "{\"push\":{}}\n{}"), Some(("{}".into(), true)));
        assert_eq!(answer(&p, "{\"id\":2,\"subscribe\":{}}"), None);
        let m = p.message_text.unwrap();
        let m = json(&m.replace("{marker}{pad}", "~x~").replace("{seq}", "0"));
        assert_eq!(m["id"], 10);
        assert_eq!(m["publish"]["channel"], "news");
        assert_eq!(m["publish"]["data"]["m"], "~x~");
        // No token: an empty one (anonymous or insecure mode).
        let p = preset("centrifugo", &opts()).unwrap();
        assert_eq!(sent(&p, 0), "{\"id\":1,\"connect\":{\"token\":\"\"}}");
        assert_eq!(
            sent(&p, 2),
            "{\"id\":2,\"subscribe\":{\"channel\":\"wsscale-7\"}}"
        );
    }

    #[test]
    fn names_are_the_presets() {
        for name in NAMES {
            let o = PresetOptions {
                subscribe: vec!["{\"channel\":\"C\"}".into()],
                publish_topic: Some("{\"channel\":\"C\"}".into()),
                ..opts()
            };
            let p = preset(name, &o).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.session.protocol.as_deref(), Some(*name));
        }
        let e = preset("nope", &opts()).unwrap_err();
        assert!(
            e.contains("centrifugo") && e.contains("graphql-ws-legacy"),
            "{e}"
        );
        let o = PresetOptions {
            init_payload: Some("{}".into()),
            ..opts()
        };
        assert!(preset("signalr", &o).unwrap_err().contains("graphql-ws"));
    }
}
