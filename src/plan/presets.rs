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

mod apps;
use apps::{actioncable, centrifugo, graphql, phoenix, signalr};

#[cfg(test)]
mod tests;
