//! [`WirePlan`]: the engine-relevant part of a [`Plan`] as it travels to agents (see the
//! parent module's docs for what is left out and why), its conversion both ways, and the
//! plan hash.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::WireError;
use crate::plan::{
    Auth, CloseMode, HandshakeSpec, HeartbeatSpec, JwtAlg, JwtPlacement, MessageSpec, PingSpec,
    Plan, Reconnect, Secret, Stage, Target, TlsSpec, Traffic,
};

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
    /// The reconnect back-off's random part (`--reconnect-jitter`); absent: the default.
    #[serde(default)]
    pub reconnect_jitter: Option<f64>,
    pub interval: Duration,
    pub socket_rcvbuf: Option<usize>,
    pub socket_sndbuf: Option<usize>,
    pub traffic: WireTraffic,
    pub tls: WireTls,
    /// `--session-duration` as written (`exp:2s`) and its seed; `None`: no churn.
    #[serde(default)]
    pub churn: Option<(String, u64)>,
    /// Rate per stage (`None`: a count stage) and `--max-open`; `None`: count stages only.
    #[serde(default)]
    pub arrival: Option<(Vec<Option<f64>>, u64)>,
    /// `--misbehave`: `(kind label, fraction)` pairs, in order.
    #[serde(default)]
    pub misbehave: Vec<(String, f64)>,
    /// `--data`: the rows travel with the plan (agents need no copy of the file).
    #[serde(default)]
    pub data: Option<super::scenario::WireData>,
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
    /// `--compression` in its canonical spelling (`none`, `browser`, `deflate:…`).
    #[serde(default)]
    pub compression: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
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
    /// The session table (patterns travel as their source text and compile again).
    #[serde(default)]
    pub session: crate::plan::session::Session,
    /// `--publishers` (a count is shared out by the agent's slice when it runs).
    #[serde(default)]
    pub publishers: Option<crate::plan::push::Publishers>,
    /// `--push-timestamp` (travels as its text and is parsed again).
    #[serde(default)]
    pub push_timestamp: Option<crate::plan::push::PushTimestamp>,
    /// `--message-burst` as `(count, every, spread)`.
    #[serde(default)]
    pub message_burst: Option<(u32, Duration, Duration)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireHeartbeat {
    pub text: Vec<u8>,
    #[serde(default)]
    pub binary: bool,
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

/// Fields of [`Plan`] that are deliberately not sent (coordinator-only or per agent).
pub const PLAN_FIELDS_NOT_SENT: &[&str] = &[
    "profile",
    "sources",
    "threads",
    "report_json",
    "report_csv",
    "checkpoint",
    "report_html",
    "thresholds",
    "abort_on_fail",
    "allow_failures",
    // Agents never start a gateway: the coordinator's process does.
    "embedded_gateway",
    // Set by each agent for itself (its name and index).
    "identity",
    // Disruptions are found in the coordinator's merged time series.
    "disruption_threshold",
    // The gateway processes are started next to the coordinator.
    "gateway_faults",
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
                compression: Some(h.compression.to_string()),
                user_agent: h.user_agent.clone(),
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
            reconnect_jitter: plan.reconnect.map(|r| r.jitter),
            interval: plan.interval,
            socket_rcvbuf: plan.socket_rcvbuf,
            socket_sndbuf: plan.socket_sndbuf,
            traffic: WireTraffic {
                ping: t.ping.as_ref().map(|p| (p.interval, p.timeout)),
                heartbeat: t.heartbeat.as_ref().map(|hb| WireHeartbeat {
                    text: hb.text.clone(),
                    binary: hb.binary,
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
                session: t.session.clone(),
                publishers: t.publishers,
                push_timestamp: t.push_timestamp.clone(),
                message_burst: t.message_burst.map(|b| (b.count, b.every, b.spread)),
            },
            tls: WireTls {
                sni: plan.tls.sni.clone(),
                ca_files: plan.tls.ca_files.clone(),
                insecure: plan.tls.insecure,
                client_cert: plan.tls.client_cert.clone(),
                client_key: plan.tls.client_key.clone(),
                resume: plan.tls.resume,
            },
            churn: plan.churn.map(|c| (c.duration.to_string(), c.seed)),
            arrival: plan.arrival.as_ref().map(|a| (a.rates.clone(), a.max_open)),
            misbehave: super::scenario::misbehave_to_wire(&plan.misbehave),
            data: plan
                .data
                .as_deref()
                .map(super::scenario::WireData::from_spec),
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
            compression: match &h.compression {
                None => Default::default(),
                Some(c) => crate::plan::compression::parse_compression(c).map_err(|_| {
                    WireError::Unknown {
                        what: "compression",
                        value: c.clone(),
                    }
                })?,
            },
            user_agent: h.user_agent.clone(),
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
        plan.reconnect = self.reconnect.map(|(initial, max)| Reconnect {
            initial,
            max,
            jitter: self
                .reconnect_jitter
                .unwrap_or(crate::plan::recovery::DEFAULT_JITTER),
        });
        plan.interval = self.interval;
        plan.socket_rcvbuf = self.socket_rcvbuf;
        plan.socket_sndbuf = self.socket_sndbuf;
        if let Some((text, seed)) = &self.churn {
            let duration = crate::plan::churn::parse_session_duration(text).map_err(|_| {
                WireError::Unknown {
                    what: "session duration",
                    value: text.clone(),
                }
            })?;
            plan.churn = Some(crate::plan::churn::SessionSpec {
                duration,
                seed: *seed,
            });
        }
        plan.arrival = self
            .arrival
            .as_ref()
            .map(|(rates, max_open)| crate::plan::churn::Arrival {
                rates: rates.clone(),
                max_open: *max_open,
            });
        let t = &self.traffic;
        plan.traffic = Traffic {
            ping: t
                .ping
                .map(|(interval, timeout)| PingSpec { interval, timeout }),
            heartbeat: t.heartbeat.as_ref().map(|hb| HeartbeatSpec {
                text: hb.text.clone(),
                binary: hb.binary,
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
            session: t.session.clone(),
            publishers: t.publishers,
            push_timestamp: t.push_timestamp.clone(),
            message_burst: t.message_burst.map(|(count, every, spread)| {
                crate::plan::recovery::MessageBurst {
                    count,
                    every,
                    spread,
                }
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
        plan.misbehave = super::scenario::misbehave_from_wire(&self.misbehave)?;
        plan.data = self
            .data
            .as_ref()
            .map(super::scenario::WireData::to_spec)
            .transpose()?
            .map(std::sync::Arc::new);
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
            compression: crate::plan::compression::parse_compression(
                "deflate:server_no_context_takeover,client_max_window_bits=10",
            )
            .unwrap(),
            user_agent: Some("ua/1".into()),
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
                binary: true,
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
            session: crate::plan::session::Session {
                protocol: Some("socketio".into()),
                open: vec![crate::plan::session::OpenStep::Expect(
                    crate::plan::payload::Pattern::parse("re:^0\\{").unwrap(),
                )],
                replies: vec![crate::plan::session::Reply::parse("2=>3").unwrap()],
                envelope: Default::default(),
            },
            publishers: Some(crate::plan::push::Publishers::Fraction(0.25)),
            push_timestamp: Some(
                crate::plan::push::PushTimestamp::parse("json:meta.ts:ms").unwrap(),
            ),
            message_burst: Some(crate::plan::recovery::MessageBurst::parse("20@5s~1s").unwrap()),
        };
        p.tls = TlsSpec {
            sni: Some("example.org".into()),
            ca_files: vec!["/ca.pem".into()],
            insecure: true,
            client_cert: Some("/c.pem".into()),
            client_key: Some("/k.pem".into()),
            resume: true,
        };
        p.data = Some(std::sync::Arc::new(crate::plan::data::DataSpec {
            path: "/users.csv".into(),
            mode: crate::plan::data::DataMode::Unique,
            columns: vec!["user".into()],
            rows: vec![vec!["alice".into()], vec!["bob".into()]],
        }));
        p.misbehave = vec![
            crate::plan::misbehave::parse_misbehave("bad-token:5%").unwrap(),
            crate::plan::misbehave::parse_misbehave("slow-reader:0.01").unwrap(),
        ];
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
                 PLAN_FIELDS_NOT_SENT: add it to src/cluster/wire/plan.rs"
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
                    "{name}::{field} is not carried to agents: add it to src/cluster/wire/plan.rs"
                );
            }
        }
    }
}
