//! The control channel's messages: a typed, versioned serde enum in each direction, sent as
//! JSON text frames over a WebSocket.
//!
//! # Conversation
//!
//! ```text
//! agent                                   coordinator
//!   ── hello {protocol, token, agent}  ──►   check protocol, then token
//!   ◄── welcome {protocol, agent_id, run_id, plan_hash}   (or refused {reason}, then close)
//!         … waits until every agent has joined; heartbeats {ack} every second …
//!   ◄── assign {plan, plan_hash, slice, sources, snapshot_every, connections}
//!   ── ready {plan_hash, threads, rss_before}  ──►   (or failed {reason})
//!   ◄── start {at_unix_ns}                    a wall-clock instant, common to all agents
//!   ── snapshot {seq, last, snapshot} ──►     every snapshot_every, deltas; last = final
//!   ◄── stop {reason}                          Ctrl-C / abort: ramp down now, then report
//!   ◄── bye                                    final snapshot received; the agent exits
//! ```
//!
//! An agent that lost its link dials again with `hello {resume: {run_id, agent_id}}`; the
//! coordinator's `welcome` then carries the last snapshot `seq` it holds, and the agent
//! re-sends the snapshots after it (they are deltas: none may be lost or counted twice).
//!
//! # Versioning
//!
//! [`PROTOCOL_VERSION`] changes whenever a message changes shape. The first field of
//! `hello` and `welcome` is `protocol`, and a `refused {reason}` never changes shape, so two
//! versions can always tell each other what is wrong: the coordinator reads `protocol` from
//! the raw JSON before parsing the rest ([`peek_protocol`]). The plan hash (SHA-1 of the
//! plan's canonical JSON) goes out in `welcome` and `assign` and comes back in `ready`, so
//! every agent provably runs the same plan.
//!
//! # The plan on the wire
//!
//! [`WirePlan`] carries what the engine needs from a [`Plan`] — targets (as resolved by the
//! coordinator), stages, handshake and auth (secrets included: run the control channel on a
//! private network), timeouts, traffic, TLS settings (file paths: agents need the same files
//! at the same paths). It leaves out what is the coordinator's business (report paths,
//! thresholds, `--abort-on-fail`, the profile path) and what each agent decides for itself
//! (source addresses — given per agent in `assign` —, engine threads). A unit test fails when
//! a field is added to [`Plan`] (or its parts) without being classified here.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::metrics::wire::WireSnapshot;
use crate::plan::{
    Auth, CloseMode, HandshakeSpec, HeartbeatSpec, JwtAlg, JwtPlacement, MessageSpec, PingSpec,
    Plan, Reconnect, Secret, Stage, Target, TlsSpec, Traffic,
};

/// Version of the control protocol. Bump on any change to a message's shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// Agent → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    Hello(Hello),
    Ready {
        plan_hash: String,
        /// Engine threads the agent runs.
        threads: usize,
        /// The agent's RSS before its first connection (basis of bytes per connection).
        rss_before_bytes: u64,
        /// Preflight warnings for its share on its host (`name: found …, needed …`).
        #[serde(default)]
        warnings: Vec<String>,
    },
    /// The agent cannot run its assignment (address not on this host, not enough
    /// descriptors, engine error); the coordinator aborts the run with this message.
    Failed {
        reason: String,
    },
    Snapshot {
        /// 1, 2, 3, … per agent; resent snapshots keep their number.
        seq: u64,
        /// The agent's final snapshot: its engine has finished.
        last: bool,
        snapshot: Box<WireSnapshot>,
    },
}

/// The agent's first message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The shared token (compared in constant time).
    pub token: String,
    pub agent: AgentInfo,
    /// Set when re-joining a run after a lost link.
    #[serde(default)]
    pub resume: Option<Resume>,
}

/// Identifies a run and an agent in it, for re-joining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub run_id: String,
    pub agent_id: usize,
}

/// What an agent tells about itself: who it is and how much it can hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// `--name`, default `HOSTNAME:PID`.
    pub name: String,
    /// Host name (agents with the same host split the plan's source addresses disjointly).
    pub host: String,
    pub pid: u32,
    pub cores: usize,
    /// Soft and hard `RLIMIT_NOFILE` after raising the soft limit to the hard one.
    pub fd_soft: u64,
    pub fd_hard: u64,
    /// Connections this agent can hold (descriptors minus headroom).
    pub max_connections: u64,
    /// `--source-ip` given to the agent itself (empty: use the plan's, or the kernel's).
    pub sources: Vec<IpAddr>,
    /// `--threads` given to the agent (None: one per core).
    pub threads: Option<usize>,
    /// The ephemeral port range (`net.ipv4.ip_local_port_range`), when readable.
    pub port_range: Option<(u16, u16)>,
}

/// Coordinator → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoordMsg {
    Welcome {
        protocol: u32,
        /// 1-based position of the agent in the run.
        agent_id: usize,
        run_id: String,
        plan_hash: String,
        /// On a resume: the last snapshot `seq` the coordinator holds from this agent.
        last_seq: u64,
    },
    /// Not admitted: wrong token, wrong protocol version, run full. Never changes shape.
    Refused {
        reason: String,
    },
    Assign(Box<Assignment>),
    Start {
        /// The first stage starts at this wall-clock time (ns since the Unix epoch).
        at_unix_ns: u64,
    },
    /// Sent every second; also acknowledges snapshots up to `ack` (inclusive).
    Heartbeat {
        ack: u64,
    },
    /// Ramp down now (close everything), send the final snapshot, then wait for `bye`.
    Stop {
        reason: String,
    },
    /// The final snapshot arrived; the agent may exit.
    Bye,
}

/// One agent's part of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The agent's id in this run (what it quotes when it resumes).
    pub agent_id: usize,
    pub plan: WirePlan,
    pub plan_hash: String,
    /// The agent's slice of every stage target, `[lo, hi)` of the whole.
    pub slice_lo: f64,
    pub slice_hi: f64,
    /// Connections this agent holds at the plan's peak (for its own capacity check).
    pub connections: u64,
    /// Source addresses to bind (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
    /// How often to send a snapshot.
    pub snapshot_every: Duration,
}

/// The engine-relevant part of a [`Plan`] (see the module docs for what is left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WirePlan {
    pub targets: Vec<WireTarget>,
    pub stages: Vec<WireStage>,
    pub handshake: WireHandshake,
    pub max_pending: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub close_timeout: Duration,
    /// `graceful` or `reset`.
    pub close_mode: String,
    pub max_frame: u64,
    /// `(initial, max)` back-off.
    pub reconnect: Option<(Duration, Duration)>,
    pub interval: Duration,
    pub socket_rcvbuf: Option<usize>,
    pub socket_sndbuf: Option<usize>,
    pub traffic: WireTraffic,
    pub tls: WireTls,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTarget {
    pub url: String,
    pub host_header: String,
    pub path_and_query: String,
    pub addr: SocketAddr,
    pub tls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStage {
    pub duration: Duration,
    pub target: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireHandshake {
    pub origin: Option<String>,
    pub headers: Vec<(String, String)>,
    pub subprotocol: Option<String>,
    pub auth: WireAuth,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireAuth {
    None,
    Bearer {
        token: String,
    },
    Jwt {
        /// `HS256`, `RS256` or `ES256`.
        alg: String,
        key: String,
        claims: serde_json::Value,
        /// `None`: Authorization header; `Some(name)`: `?name=` query parameter.
        query: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireTraffic {
    /// `(interval, timeout)`.
    pub ping: Option<(Duration, Duration)>,
    pub heartbeat: Option<WireHeartbeat>,
    pub first_message: Option<Vec<u8>>,
    pub first_message_expect: Option<Vec<u8>>,
    pub message: Option<WireMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireHeartbeat {
    pub text: Vec<u8>,
    pub interval: Duration,
    pub expect: Option<Vec<u8>>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    pub rate: f64,
    pub size: usize,
    pub text: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTls {
    pub sni: Option<String>,
    pub ca_files: Vec<std::path::PathBuf>,
    pub insecure: bool,
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
    pub resume: bool,
}

/// A message the peer sent that does not parse, or a plan field with an unknown value.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed control message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown {what} `{value}` in the plan")]
    Unknown { what: &'static str, value: String },
}

/// Fields of [`Plan`] that are deliberately not sent (coordinator-only or per agent).
pub const PLAN_FIELDS_NOT_SENT: &[&str] = &[
    "profile",
    "sources",
    "threads",
    "report_json",
    "report_csv",
    "thresholds",
    "abort_on_fail",
];

impl WirePlan {
    /// The engine-relevant part of `plan`.
    pub fn from_plan(plan: &Plan) -> WirePlan {
        let h = &plan.handshake;
        let t = &plan.traffic;
        WirePlan {
            targets: plan
                .targets
                .iter()
                .map(|t| WireTarget {
                    url: t.url.clone(),
                    host_header: t.host_header.clone(),
                    path_and_query: t.path_and_query.clone(),
                    addr: t.addr,
                    tls: t.tls,
                })
                .collect(),
            stages: plan
                .stages
                .iter()
                .map(|s| WireStage {
                    duration: s.duration,
                    target: s.target,
                })
                .collect(),
            handshake: WireHandshake {
                origin: h.origin.clone(),
                headers: h.headers.clone(),
                subprotocol: h.subprotocol.clone(),
                auth: match &h.auth {
                    Auth::None => WireAuth::None,
                    Auth::Bearer(s) => WireAuth::Bearer { token: s.0.clone() },
                    Auth::Jwt {
                        alg,
                        key,
                        claims,
                        placement,
                    } => WireAuth::Jwt {
                        alg: format!("{alg:?}"),
                        key: key.0.clone(),
                        claims: claims.clone(),
                        query: match placement {
                            JwtPlacement::Header => None,
                            JwtPlacement::Query(n) => Some(n.clone()),
                        },
                    },
                },
            },
            max_pending: plan.max_pending,
            connect_timeout: plan.connect_timeout,
            handshake_timeout: plan.handshake_timeout,
            close_timeout: plan.close_timeout,
            close_mode: match plan.close_mode {
                CloseMode::Graceful => "graceful",
                CloseMode::Reset => "reset",
            }
            .to_string(),
            max_frame: plan.max_frame,
            reconnect: plan.reconnect.map(|r| (r.initial, r.max)),
            interval: plan.interval,
            socket_rcvbuf: plan.socket_rcvbuf,
            socket_sndbuf: plan.socket_sndbuf,
            traffic: WireTraffic {
                ping: t.ping.as_ref().map(|p| (p.interval, p.timeout)),
                heartbeat: t.heartbeat.as_ref().map(|hb| WireHeartbeat {
                    text: hb.text.clone(),
                    interval: hb.interval,
                    expect: hb.expect.clone(),
                    timeout: hb.timeout,
                }),
                first_message: t.first_message.clone(),
                first_message_expect: t.first_message_expect.clone(),
                message: t.message.as_ref().map(|m| WireMessage {
                    rate: m.rate,
                    size: m.size,
                    text: m.text.clone(),
                    timeout: m.timeout,
                }),
            },
            tls: WireTls {
                sni: plan.tls.sni.clone(),
                ca_files: plan.tls.ca_files.clone(),
                insecure: plan.tls.insecure,
                client_cert: plan.tls.client_cert.clone(),
                client_key: plan.tls.client_key.clone(),
                resume: plan.tls.resume,
            },
        }
    }

    /// A [`Plan`] for an agent: this wire plan plus the agent's sources and threads. Fields
    /// that are not sent keep their defaults.
    pub fn to_plan(&self, sources: Vec<IpAddr>, threads: usize) -> Result<Plan, WireError> {
        let targets = self
            .targets
            .iter()
            .map(|t| Target {
                url: t.url.clone(),
                host_header: t.host_header.clone(),
                path_and_query: t.path_and_query.clone(),
                addr: t.addr,
                tls: t.tls,
            })
            .collect();
        let stages = self
            .stages
            .iter()
            .map(|s| Stage {
                duration: s.duration,
                target: s.target,
            })
            .collect();
        let mut plan = Plan::with_defaults(targets, stages);
        plan.sources = sources;
        plan.threads = threads.max(1);
        let h = &self.handshake;
        plan.handshake = HandshakeSpec {
            origin: h.origin.clone(),
            headers: h.headers.clone(),
            subprotocol: h.subprotocol.clone(),
            auth: match &h.auth {
                WireAuth::None => Auth::None,
                WireAuth::Bearer { token } => Auth::Bearer(Secret(token.clone())),
                WireAuth::Jwt {
                    alg,
                    key,
                    claims,
                    query,
                } => Auth::Jwt {
                    alg: match alg.as_str() {
                        "HS256" => JwtAlg::HS256,
                        "RS256" => JwtAlg::RS256,
                        "ES256" => JwtAlg::ES256,
                        other => {
                            return Err(WireError::Unknown {
                                what: "JWT algorithm",
                                value: other.to_string(),
                            });
                        }
                    },
                    key: Secret(key.clone()),
                    claims: claims.clone(),
                    placement: match query {
                        None => JwtPlacement::Header,
                        Some(n) => JwtPlacement::Query(n.clone()),
                    },
                },
            },
        };
        plan.max_pending = self.max_pending.max(1);
        plan.connect_timeout = self.connect_timeout;
        plan.handshake_timeout = self.handshake_timeout;
        plan.close_timeout = self.close_timeout;
        plan.close_mode = match self.close_mode.as_str() {
            "graceful" => CloseMode::Graceful,
            "reset" => CloseMode::Reset,
            other => {
                return Err(WireError::Unknown {
                    what: "close mode",
                    value: other.to_string(),
                });
            }
        };
        plan.max_frame = self.max_frame;
        plan.reconnect = self
            .reconnect
            .map(|(initial, max)| Reconnect { initial, max });
        plan.interval = self.interval;
        plan.socket_rcvbuf = self.socket_rcvbuf;
        plan.socket_sndbuf = self.socket_sndbuf;
        let t = &self.traffic;
        plan.traffic = Traffic {
            ping: t
                .ping
                .map(|(interval, timeout)| PingSpec { interval, timeout }),
            heartbeat: t.heartbeat.as_ref().map(|hb| HeartbeatSpec {
                text: hb.text.clone(),
                interval: hb.interval,
                expect: hb.expect.clone(),
                timeout: hb.timeout,
            }),
            first_message: t.first_message.clone(),
            first_message_expect: t.first_message_expect.clone(),
            message: t.message.as_ref().map(|m| MessageSpec {
                rate: m.rate,
                size: m.size,
                text: m.text.clone(),
                timeout: m.timeout,
            }),
        };
        plan.tls = TlsSpec {
            sni: self.tls.sni.clone(),
            ca_files: self.tls.ca_files.clone(),
            insecure: self.tls.insecure,
            client_cert: self.tls.client_cert.clone(),
            client_key: self.tls.client_key.clone(),
            resume: self.tls.resume,
        };
        Ok(plan)
    }

    /// SHA-1 (hex) of the plan's canonical JSON: the same plan gives the same hash on every
    /// host.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("wire plans serialize");
        let digest = Sha1::digest(&json);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl AgentMsg {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("control messages serialize")
    }

    pub fn parse(text: &str) -> Result<AgentMsg, WireError> {
        Ok(serde_json::from_str(text)?)
    }
}

impl CoordMsg {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("control messages serialize")
    }

    pub fn parse(text: &str) -> Result<CoordMsg, WireError> {
        Ok(serde_json::from_str(text)?)
    }
}

/// The `protocol` field of a raw `hello` or `welcome`, read before the message is parsed as
/// a whole (another version's message may not parse). `None` when there is none.
pub fn peek_protocol(text: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("protocol")?.as_u64()
}

/// Compare two tokens in time independent of where they differ.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Wall-clock time as ns since the Unix epoch (0 before 1970).
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The inverse of [`unix_ns`].
pub fn from_unix_ns(ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-level field names in a `{:#?}` rendering of a struct.
    fn debug_fields(pretty: &str) -> Vec<String> {
        pretty
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("    ")?;
                if rest.starts_with(' ') || rest.starts_with('}') || rest.starts_with(']') {
                    return None;
                }
                let name = rest.split(':').next()?.trim();
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                    .then(|| name.to_string())
            })
            .collect()
    }

    fn full_plan() -> Plan {
        let target = Target::ws("127.0.0.1:9000".parse().unwrap(), "/ws?x=1");
        let mut p = Plan::with_defaults(
            vec![target],
            vec![
                Stage {
                    duration: Duration::from_millis(1500),
                    target: 100,
                },
                Stage {
                    duration: Duration::from_secs(3),
                    target: 100,
                },
            ],
        );
        p.handshake = HandshakeSpec {
            origin: Some("https://o".into()),
            headers: vec![("X-A".into(), "b".into())],
            subprotocol: Some("chat".into()),
            auth: Auth::Jwt {
                alg: JwtAlg::HS256,
                key: Secret("k".into()),
                claims: serde_json::json!({"sub": "user-{conn}"}),
                placement: JwtPlacement::Query("token".into()),
            },
        };
        p.max_pending = 77;
        p.connect_timeout = Duration::from_millis(1234);
        p.handshake_timeout = Duration::from_millis(2345);
        p.close_timeout = Duration::from_millis(345);
        p.close_mode = CloseMode::Reset;
        p.max_frame = 4096;
        p.reconnect = Some(Reconnect::default());
        p.interval = Duration::from_secs(1);
        p.socket_rcvbuf = Some(4096);
        p.socket_sndbuf = Some(8192);
        p.traffic = Traffic {
            ping: Some(PingSpec {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
            }),
            heartbeat: Some(HeartbeatSpec {
                text: b"hb".to_vec(),
                interval: Duration::from_secs(3),
                expect: Some(b"ok".to_vec()),
                timeout: Duration::from_secs(2),
            }),
            first_message: Some(b"hi".to_vec()),
            first_message_expect: Some(b"welcome".to_vec()),
            message: Some(MessageSpec {
                rate: 0.5,
                size: 64,
                text: Some("{seq}".into()),
                timeout: Duration::from_secs(4),
            }),
        };
        p.tls = TlsSpec {
            sni: Some("example.org".into()),
            ca_files: vec!["/ca.pem".into()],
            insecure: true,
            client_cert: Some("/c.pem".into()),
            client_key: Some("/k.pem".into()),
            resume: true,
        };
        p.threads = 3;
        p
    }

    #[test]
    fn plan_round_trips_through_the_wire() {
        let plan = full_plan();
        let wire = WirePlan::from_plan(&plan);
        let json = serde_json::to_string(&wire).unwrap();
        let back: WirePlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, wire);
        assert_eq!(back.hash(), wire.hash());
        let rebuilt = back.to_plan(Vec::new(), 3).unwrap();
        assert_eq!(rebuilt, plan);
    }

    #[test]
    fn every_plan_field_is_classified() {
        let plan = full_plan();
        let wire = WirePlan::from_plan(&plan);
        let sent = debug_fields(&format!("{wire:#?}"));
        for field in debug_fields(&format!("{plan:#?}")) {
            let known = sent.contains(&field) || PLAN_FIELDS_NOT_SENT.contains(&field.as_str());
            assert!(
                known,
                "Plan::{field} is neither sent to agents (WirePlan) nor listed in \
                 PLAN_FIELDS_NOT_SENT: add it to src/cluster/wire.rs"
            );
        }
        for (name, pretty, wire_pretty) in [
            (
                "Target",
                format!("{:#?}", plan.targets[0]),
                format!("{:#?}", wire.targets[0]),
            ),
            (
                "Traffic",
                format!("{:#?}", plan.traffic),
                format!("{:#?}", wire.traffic),
            ),
            (
                "HandshakeSpec",
                format!("{:#?}", plan.handshake),
                format!("{:#?}", wire.handshake),
            ),
            (
                "TlsSpec",
                format!("{:#?}", plan.tls),
                format!("{:#?}", wire.tls),
            ),
            (
                "MessageSpec",
                format!("{:#?}", plan.traffic.message.as_ref().unwrap()),
                format!("{:#?}", wire.traffic.message.as_ref().unwrap()),
            ),
            (
                "HeartbeatSpec",
                format!("{:#?}", plan.traffic.heartbeat.as_ref().unwrap()),
                format!("{:#?}", wire.traffic.heartbeat.as_ref().unwrap()),
            ),
        ] {
            let wire_fields = debug_fields(&wire_pretty);
            for field in debug_fields(&pretty) {
                assert!(
                    wire_fields.contains(&field),
                    "{name}::{field} is not carried to agents: add it to src/cluster/wire.rs"
                );
            }
        }
    }

    #[test]
    fn messages_round_trip() {
        let hello = AgentMsg::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            token: "t".into(),
            agent: AgentInfo {
                name: "a:1".into(),
                host: "a".into(),
                pid: 1,
                cores: 2,
                fd_soft: 20000,
                fd_hard: 20000,
                max_connections: 19936,
                sources: vec!["127.0.0.2".parse().unwrap()],
                threads: None,
                port_range: Some((32768, 60999)),
            },
            resume: None,
        });
        let text = hello.to_text();
        assert_eq!(peek_protocol(&text), Some(u64::from(PROTOCOL_VERSION)));
        assert_eq!(AgentMsg::parse(&text).unwrap(), hello);
        let assign = CoordMsg::Assign(Box::new(Assignment {
            agent_id: 2,
            plan: WirePlan::from_plan(&full_plan()),
            plan_hash: "h".into(),
            slice_lo: 0.25,
            slice_hi: 0.5,
            connections: 25,
            sources: vec![],
            snapshot_every: Duration::from_secs(1),
        }));
        assert_eq!(CoordMsg::parse(&assign.to_text()).unwrap(), assign);
        assert!(CoordMsg::parse("{\"type\":\"nope\"}").is_err());
    }

    #[test]
    fn tokens_compare() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "ab"));
        assert!(!token_matches("", "a"));
    }
}
