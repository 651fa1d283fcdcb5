//! The control channel's messages: a typed, versioned serde enum in each direction, sent as
//! JSON text frames over a WebSocket.
//!
//! # Conversation
//!
//! ```text
//! agent                                   coordinator
//!   ── hello {protocol, nonce, agent}  ──►   check protocol
//!   ◄── challenge {protocol, nonce, proof}    the coordinator proves it holds the token
//!   ── proof {proof}                   ──►   the agent proves it (module `auth`)
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
//! [`WirePlan`] carries what the engine needs from a [`Plan`](crate::plan::Plan) — targets (as resolved by the
//! coordinator), stages, handshake and auth (secrets included: run the link over TLS,
//! module `link_tls`, whenever it leaves the host), timeouts, traffic, TLS settings (file paths: agents need the same files
//! at the same paths). It leaves out what is the coordinator's business (report paths,
//! thresholds, `--abort-on-fail`, the profile path) and what each agent decides for itself
//! (source addresses — given per agent in `assign` —, engine threads). A unit test fails when
//! a field is added to `Plan` (or its parts) without being classified here.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::metrics::wire::WireSnapshot;

mod plan;
mod scenario;

pub use plan::{
    PLAN_FIELDS_NOT_SENT, WireAuth, WireHandshake, WireHeartbeat, WireMessage, WirePlan, WireStage,
    WireTarget, WireTls, WireTraffic,
};

/// Version of the control protocol. Bump on any change to a message's shape.
/// 2: the token is proven by HMAC challenge–response, never sent (1 sent it in `hello`).
pub const PROTOCOL_VERSION: u32 = 2;

/// Agent → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    Hello(Hello),
    /// The answer to `challenge`: HMAC of the token over both nonces (module `auth`).
    Proof {
        proof: String,
    },
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
    /// The agent's fresh nonce for the mutual proof (the token itself never crosses).
    pub nonce: String,
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
    /// The coordinator's proof that it holds the token, and its own nonce for the agent's.
    Challenge {
        protocol: u32,
        nonce: String,
        proof: String,
    },
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

/// A message the peer sent that does not parse, or a plan field with an unknown value.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed control message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown {what} `{value}` in the plan")]
    Unknown { what: &'static str, value: String },
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
    /// The message's type tag (for messages about a message: never its contents, which
    /// may carry the plan's secrets).
    pub fn kind(&self) -> &'static str {
        match self {
            CoordMsg::Challenge { .. } => "challenge",
            CoordMsg::Welcome { .. } => "welcome",
            CoordMsg::Refused { .. } => "refused",
            CoordMsg::Assign(_) => "assign",
            CoordMsg::Start { .. } => "start",
            CoordMsg::Heartbeat { .. } => "heartbeat",
            CoordMsg::Stop { .. } => "stop",
            CoordMsg::Bye => "bye",
        }
    }

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
    use crate::plan::{Plan, Stage, Target};

    #[test]
    fn snapshots_with_status_codes_and_tls_alerts_cross_the_link() {
        // Integer-keyed maps inside the internally tagged message used to fail to parse
        // ("invalid type: string \"503\", expected u16"), losing every agent snapshot of a
        // run where a gateway answered 503 or sent a TLS alert.
        let mut s = crate::metrics::Snapshot::default();
        s.counters.http_status.insert(503, 7);
        s.counters.tls_alerts.insert(116, 2);
        s.counters.failed = 9;
        let msg = AgentMsg::Snapshot {
            seq: 1,
            last: false,
            snapshot: Box::new(crate::metrics::wire::WireSnapshot::encode(&s)),
        };
        let back = AgentMsg::parse(&msg.to_text()).expect("snapshot parses");
        assert_eq!(back, msg);
        let AgentMsg::Snapshot { snapshot, .. } = back else {
            panic!("not a snapshot")
        };
        let counters = snapshot.decode().unwrap().counters;
        assert_eq!(counters.http_status.get(&503), Some(&7));
        assert_eq!(counters.tls_alerts.get(&116), Some(&2));
    }

    #[test]
    fn messages_round_trip() {
        let hello = AgentMsg::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            nonce: "n".into(),
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
            plan: WirePlan::from_plan(&Plan::with_defaults(
                vec![Target::ws("127.0.0.1:9".parse().unwrap(), "/")],
                vec![Stage {
                    duration: Duration::from_secs(1),
                    target: 1,
                }],
            )),
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
}
