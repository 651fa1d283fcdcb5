//! The session protocol a connection speaks over WebSocket, as a table of generic primitives:
//! an ordered open sequence of sends and expectations, auto-reply rules, and the envelope of
//! timed messages. `--send/--expect/--reply` fill it directly; a preset (`--protocol`, see
//! [`super::presets`]) fills it for a known protocol. The engine interprets the table; no
//! protocol has an engine path of its own.
//!
//! Per connection the engine keeps only the index of the open step it waits on; rules and
//! templates live once per shard.

use serde::{Deserialize, Serialize};

use super::payload::{Part, Pattern, Payload};

/// One step of the open sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenStep {
    /// Send this frame.
    Send(Payload),
    /// Wait for a server frame matching this (other frames are counted and ignored; auto
    /// replies still apply).
    Expect(Pattern),
    /// Send an MQTT CONNECT (binary) with this client id (a template: `wsscale-{conn}`).
    MqttConnect {
        client_id: Payload,
        keepalive_s: u16,
    },
    /// Send an MQTT SUBSCRIBE (binary) to this topic (a template).
    MqttSubscribe { topic: Payload, qos: u8 },
}

impl OpenStep {
    /// The frame this step sends for connection `conn` (`None` for an expectation):
    /// (binary?, bytes).
    pub fn render(&self, conn: u64, out: &mut Vec<u8>) -> Option<bool> {
        out.clear();
        match self {
            OpenStep::Send(p) => {
                p.render(conn, &[], out);
                Some(p.frame == super::payload::FrameType::Binary)
            }
            OpenStep::Expect(_) => None,
            OpenStep::MqttConnect {
                client_id,
                keepalive_s,
            } => {
                let mut id = Vec::new();
                client_id.render(conn, &[], &mut id);
                out.extend(mqtt::connect(&id, *keepalive_s, None));
                Some(true)
            }
            OpenStep::MqttSubscribe { topic, qos } => {
                let mut t = Vec::new();
                topic.render(conn, &[], &mut t);
                out.extend(mqtt::subscribe(1, &t, *qos));
                Some(true)
            }
        }
    }
}

/// An auto-reply rule: a server frame matching `pattern` is answered with `response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub pattern: Pattern,
    pub response: Payload,
    /// The rule answers a server keep-alive (Engine.IO ping, STOMP/NATS heart-beats…): its
    /// matches also count as `server_pings_answered`.
    pub server_ping: bool,
}

impl Reply {
    /// `PATTERN=>RESPONSE` (the `--reply` syntax; the first `=>` splits).
    pub fn parse(s: &str) -> Result<Reply, String> {
        let (p, r) = s.split_once("=>").ok_or_else(|| {
            format!("{s:?}: write PATTERN=>RESPONSE, e.g. '2=>3' or 're:^ping (\\d+)=>pong {{1}}'")
        })?;
        Ok(Reply {
            pattern: Pattern::parse(p)?,
            response: super::payload::parse_payload(r, true)?,
            server_ping: false,
        })
    }

    /// The rule as the user reads it in the report (`2=>3`).
    pub fn label(&self) -> String {
        let mut r = String::new();
        for p in &self.response.parts {
            match p {
                Part::Lit(b) => r.push_str(&String::from_utf8_lossy(b).escape_debug().to_string()),
                other => r.push_str(&other.placeholder().unwrap_or_default()),
            }
        }
        format!("{}=>{r}", self.pattern.src.escape_debug())
    }
}

/// How timed messages are framed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// The message template (`--message-text`, or the marker padded to `--message-size`).
    #[default]
    Raw,
    /// An MQTT PUBLISH (QoS 0) to `topic`, the marker padded to the size as its payload.
    MqttPublish { topic: Payload },
    /// A NATS `PUB subject len` with the marker padded to the size as its payload.
    NatsPub { subject: Payload },
}

/// The session table of a plan. Empty: a raw WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Session {
    /// The preset's name (`socketio`, `mqtt`, …), for the summary and the report.
    pub protocol: Option<String>,
    pub open: Vec<OpenStep>,
    pub replies: Vec<Reply>,
    pub envelope: Envelope,
}

impl Session {
    /// The open sequence: `open`, or else the one-step case of `--first-message` /
    /// `--first-message-expect`.
    pub fn open_sequence(
        &self,
        first_message: Option<&[u8]>,
        first_expect: Option<&[u8]>,
    ) -> Vec<OpenStep> {
        if !self.open.is_empty() {
            return self.open.clone();
        }
        let mut steps = Vec::new();
        if let Some(m) = first_message {
            steps.push(OpenStep::Send(Payload::text(m)));
            if let Some(e) = first_expect {
                steps.push(OpenStep::Expect(Pattern::contains(e)));
            }
        }
        steps
    }
}

/// MQTT 3.1.1 packet encoders (the preset's envelope; big-endian lengths, variable-length
/// remaining length).
pub mod mqtt {
    /// Append the variable-length "remaining length".
    pub fn remaining_length(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                break;
            }
        }
    }

    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    }

    /// CONNECT, clean session, with a client id and a keep-alive in seconds.
    pub fn connect(client_id: &[u8], keepalive_s: u16, user: Option<(&[u8], &[u8])>) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, b"MQTT");
        body.push(4); // protocol level 3.1.1
        let mut flags = 0x02; // clean session
        if user.is_some() {
            flags |= 0xC0;
        }
        body.push(flags);
        body.extend_from_slice(&keepalive_s.to_be_bytes());
        string(&mut body, client_id);
        if let Some((u, p)) = user {
            string(&mut body, u);
            string(&mut body, p);
        }
        packet(0x10, &body)
    }

    /// SUBSCRIBE with packet id `id` to one topic at `qos`.
    pub fn subscribe(id: u16, topic: &[u8], qos: u8) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        string(&mut body, topic);
        body.push(qos);
        packet(0x82, &body)
    }

    /// PUBLISH at QoS 0.
    pub fn publish(topic: &[u8], payload: &[u8], out: &mut Vec<u8>) {
        out.push(0x30);
        remaining_length(out, 2 + topic.len() + payload.len());
        string(out, topic);
        out.extend_from_slice(payload);
    }

    fn packet(header: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![header];
        remaining_length(&mut out, body.len());
        out.extend_from_slice(body);
        out
    }

    /// PINGREQ / PINGRESP.
    pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
    pub const PINGRESP: [u8; 2] = [0xD0, 0x00];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_and_label() {
        let r = Reply::parse("2=>3").unwrap();
        assert!(r.pattern.matches(b"2"));
        assert_eq!(r.response.literal(), Some(&b"3"[..]));
        assert_eq!(r.label(), "2=>3");
        let r = Reply::parse("re:\"ref\":\"(\\d+)\"=>{\"ref\":\"{1}\"}").unwrap();
        let mut out = Vec::new();
        let mut g = Vec::new();
        assert!(r.pattern.captures(b"{\"ref\":\"42\"}", &mut g));
        r.response.render(7, &g, &mut out);
        assert_eq!(out, b"{\"ref\":\"42\"}");
        assert!(
            Reply::parse("no arrow")
                .unwrap_err()
                .contains("PATTERN=>RESPONSE")
        );
    }

    #[test]
    fn mqtt_packets() {
        let c = mqtt::connect(b"wsscale-1", 30, None);
        assert_eq!(&c[..2], &[0x10, 21]);
        assert_eq!(&c[2..8], b"\x00\x04MQTT");
        assert_eq!(c[8..12], [4, 2, 0, 30]);
        let s = mqtt::subscribe(1, b"a/b", 0);
        assert_eq!(s, [0x82, 8, 0, 1, 0, 3, b'a', b'/', b'b', 0]);
        let mut p = Vec::new();
        mqtt::publish(b"t", &[b'x'; 200], &mut p);
        assert_eq!(&p[..3], &[0x30, 0xCB, 0x01]); // 203 = 0x4B | 0x80, 1
    }

    #[test]
    fn first_message_is_the_one_step_sequence() {
        let s = Session::default();
        let steps = s.open_sequence(Some(b"hi"), Some(b"ok"));
        assert_eq!(steps.len(), 2);
        assert!(matches!(&steps[1], OpenStep::Expect(p) if p.matches(b"all ok")));
        assert!(s.open_sequence(None, None).is_empty());
    }
}
