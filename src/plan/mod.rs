//! The validated run plan: the only thing the engine sees.
//!
//! A [`Plan`] is built from a profile (TOML, see [`profile`]) and command-line flags
//! (see `crate::cli`); every human unit ("100k", "30s", "10/s") is resolved by then. The
//! engine never parses strings: it reads durations, counts and pre-resolved addresses.
//!
//! [`stages`] holds the stage model (k6-style `DUR:TARGET` list, linear ramps) and the
//! arithmetic that turns "time since start" into "connections that should exist now",
//! including the slice a shard, process or agent is responsible for.

pub mod build;
pub mod churn;
pub mod compression;
pub mod data;
pub mod embedded;
pub mod error;
pub mod misbehave;
pub mod overrides;
pub mod payload;
pub mod presets;
pub mod profile;
pub mod push;
pub mod recovery;
pub mod redact;
pub mod search;
pub mod session;
pub mod source_spec;
pub mod stages;
pub mod suggest;
pub mod threshold;
pub mod tls;
pub mod units;

pub use error::PlanError;
pub use overrides::{OpenArg, Overrides};

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use stages::{Slice, Stage, StageClock};

use std::net::IpAddr;

/// A secret string (token, JWT key). Its `Debug` and `Display` never show the value, so
/// secrets cannot leak into logs, live output or reports.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One WebSocket endpoint to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as the user wrote it (for the report).
    pub url: String,
    /// `Host` header value (`host[:port]`, port omitted when it is the scheme default).
    pub host_header: String,
    /// Request target: path plus `?query`, at least `/`.
    pub path_and_query: String,
    /// Resolved socket address the engine connects to.
    pub addr: SocketAddr,
    /// `wss://`: TLS between TCP connect and the upgrade (settings in [`Plan::tls`]).
    pub tls: bool,
}

/// Signing algorithm for per-connection JWTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    HS256,
    RS256,
    ES256,
}

/// Where a minted JWT goes in the upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtPlacement {
    /// `Authorization: Bearer <jwt>`.
    Header,
    /// `?NAME=<jwt>` appended to the request target.
    Query(String),
}

/// How the client authenticates its upgrade requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    #[default]
    None,
    /// Static `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// A JWT minted per connection.
    Jwt {
        alg: JwtAlg,
        /// HS256: the shared secret; RS256/ES256: the PEM private key.
        key: Secret,
        /// Claims template (JSON object). Strings may contain `{conn}`; a string that is
        /// exactly `"{now}"` or `"{now+N}"`/`"{now-N}"` becomes a number (Unix seconds).
        claims: serde_json::Value,
        placement: JwtPlacement,
    },
}

/// How connections are closed at ramp-down and at the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloseMode {
    /// WebSocket close handshake (close frame, wait for the server's close, then FIN).
    #[default]
    Graceful,
    /// `SO_LINGER(0)`: the kernel sends RST at once, no TIME_WAIT on the client.
    Reset,
}

/// Re-open policy for connections that failed or were dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reconnect {
    /// First back-off delay.
    pub initial: Duration,
    /// Cap of the exponential back-off.
    pub max: Duration,
    /// The part of each delay that is random (`--reconnect-jitter`, 0..=1): 0.5 is half
    /// fixed, half random; 0 retries every dropped connection at the same instant.
    pub jitter: f64,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: recovery::DEFAULT_JITTER,
        }
    }
}

/// Everything about the upgrade request that is the same for all connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeSpec {
    pub origin: Option<String>,
    /// Extra headers, `(name, value)`, in the order given.
    pub headers: Vec<(String, String)>,
    pub subprotocol: Option<String>,
    pub auth: Auth,
    /// `--compression`: the permessage-deflate offer (also: browser `Origin`/`User-Agent`
    /// defaults when it is `browser`).
    pub compression: compression::Compression,
    /// `--user-agent` (or a `User-Agent` header).
    pub user_agent: Option<String>,
}

/// The validated run plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where the plan came from (profile path), for the report.
    pub profile: Option<PathBuf>,
    /// Targets, in round-robin order. Empty means "start the embedded gateway and target it";
    /// the CLI fills that in before the engine starts.
    pub targets: Vec<Target>,
    /// The stage list (at least one stage; validated).
    pub stages: Vec<Stage>,
    /// Source addresses, resolved (ranges, CIDRs and interfaces expanded); empty means
    /// "let the kernel choose".
    pub sources: Vec<IpAddr>,
    pub handshake: HandshakeSpec,
    /// Engine threads (shards). Default: number of cores.
    pub threads: usize,
    /// Cap on connections in flight (connecting or handshaking), over all shards.
    pub max_pending: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// How long a graceful close waits for the server's close frame before dropping.
    pub close_timeout: Duration,
    pub close_mode: CloseMode,
    /// Largest frame payload accepted from the server.
    pub max_frame: u64,
    pub reconnect: Option<Reconnect>,
    /// Live-output and snapshot interval.
    pub interval: Duration,
    /// Optional `SO_RCVBUF` / `SO_SNDBUF` for client sockets.
    pub socket_rcvbuf: Option<usize>,
    pub socket_sndbuf: Option<usize>,
    /// JSON report path.
    pub report_json: Option<PathBuf>,
    /// CSV time-series path.
    pub report_csv: Option<PathBuf>,
    /// Write the JSON report (marked `complete: false`) this often while the run goes on;
    /// zero: only at the end. Only with `report_json`.
    pub checkpoint: Duration,
    /// HTML report path.
    pub report_html: Option<PathBuf>,
    /// What every held connection sends and expects (heartbeats, messages).
    pub traffic: Traffic,
    /// Pass/fail conditions evaluated against the final report.
    pub thresholds: Vec<threshold::Threshold>,
    /// Stop the run as soon as a threshold can no longer be met.
    pub abort_on_fail: bool,
    /// Without thresholds, a run with failures, drops, lost messages or a shortfall still
    /// passes (exit 0 instead of 98; see `metrics::verdict`).
    pub allow_failures: bool,
    /// TLS settings for `wss://` targets (unused when every target is `ws://`).
    pub tls: TlsSpec,
    /// Churn (`--session-duration`): connections close themselves after a session.
    pub churn: Option<churn::SessionSpec>,
    /// The arrival model (`--arrival-rate`, rate stages); `None`: count stages only.
    pub arrival: Option<churn::Arrival>,
    /// `[embedded_gateway]`: how the gateway started when no target is given behaves.
    pub embedded_gateway: embedded::EmbeddedGateway,
    /// Misbehaving clients (`--misbehave`), validated; empty: every connection is normal.
    pub misbehave: Vec<misbehave::Misbehave>,
    /// Per-connection rows (`--data`); `None`: no data file.
    pub data: Option<std::sync::Arc<data::DataSpec>>,
    /// `{agent}` and `{process}` of this process (the host name and 0 unless an agent).
    pub identity: data::Identity,
    /// `--disruption-threshold`: drops of this fraction of the open connections within one
    /// interval make a drop wave (see `metrics::disruption`).
    pub disruption_threshold: f64,
    /// Faults for the embedded gateway to inject (a run without a target only).
    pub gateway_faults: recovery::GatewayFaults,
}

/// TLS client settings (`--tls-*` flags, `[tls]` in a profile).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSpec {
    /// Server name sent as SNI and verified against the certificate; default: the URL host.
    pub sni: Option<String>,
    /// PEM files of extra trusted CA certificates (added to the built-in Mozilla roots).
    pub ca_files: Vec<PathBuf>,
    /// Do not verify the server certificate at all (test gateways with self-signed
    /// certificates). Loudly flagged in the output and the report.
    pub insecure: bool,
    /// PEM client certificate chain and private key for mTLS gateways (both or neither).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Resume TLS sessions (tickets) on reconnects and later connections of a ramp.
    pub resume: bool,
}

/// WebSocket ping heartbeats.
#[derive(Debug, Clone, PartialEq)]
pub struct PingSpec {
    /// Time between pings of one connection (each connection gets a random phase).
    pub interval: Duration,
    /// A ping not answered within this closes the connection as `ping_timeout`.
    pub timeout: Duration,
}

/// Application-level heartbeats: a message sent on a schedule, optionally with an expected
/// reply.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatSpec {
    /// Payload (escapes already resolved).
    pub text: Vec<u8>,
    /// Sent as a binary frame (MQTT PINGREQ) instead of a text frame.
    pub binary: bool,
    pub interval: Duration,
    /// The reply that answers a heartbeat: matched as a byte substring of any data frame.
    pub expect: Option<Vec<u8>>,
    /// An expected reply not seen within this closes the connection as `ping_timeout`.
    pub timeout: Duration,
}

/// Timed messages with echo latency.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSpec {
    /// Messages per second per connection (`10/s` → 10.0, `1/10s` → 0.1).
    pub rate: f64,
    /// Payload size in bytes (the template is padded or the binary payload filled to it; it
    /// is never smaller than the latency marker).
    pub size: usize,
    /// Text template with `{conn}`, `{seq}`, `{ts}`; `None` sends binary payloads.
    pub text: Option<String>,
    /// An echo not received within this counts the message as lost.
    pub timeout: Duration,
}

/// Traffic on held connections. All `None`: connections are held silently.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Traffic {
    pub ping: Option<PingSpec>,
    pub heartbeat: Option<HeartbeatSpec>,
    /// Sent once right after the upgrade.
    pub first_message: Option<Vec<u8>>,
    /// The connection counts as established only when a data frame containing these bytes
    /// arrives (after `first_message`).
    pub first_message_expect: Option<Vec<u8>>,
    pub message: Option<MessageSpec>,
    /// The session protocol: open sequence, auto-replies, envelope (empty: raw WebSocket).
    pub session: session::Session,
    /// Which connections send the timed messages (`--publishers`); `None`: all of them.
    pub publishers: Option<push::Publishers>,
    /// Where server-originated frames carry their creation time (`--push-timestamp`).
    pub push_timestamp: Option<push::PushTimestamp>,
    /// `--message-burst`: bursts of timed messages on top of `message` (which it needs).
    pub message_burst: Option<recovery::MessageBurst>,
}

impl Plan {
    /// Labels of the source pool in order: the addresses, or one `"kernel"` when the kernel
    /// chooses the source.
    pub fn source_labels(&self) -> Vec<String> {
        if self.sources.is_empty() {
            vec!["kernel".to_string()]
        } else {
            self.sources.iter().map(|a| a.to_string()).collect()
        }
    }

    /// The largest number of connections any stage asks for.
    pub fn peak_connections(&self) -> u64 {
        self.stages.iter().map(|s| s.target).max().unwrap_or(0)
    }

    /// Total planned duration of all stages.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }
}

/// Defaults shared by the CLI and profiles.
pub mod defaults {
    use std::time::Duration;
    pub const RAMP: Duration = Duration::from_secs(10);
    pub const HOLD: Duration = Duration::from_secs(30);
    pub const RAMP_DOWN: Duration = Duration::from_secs(5);
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
    pub const MAX_PENDING: usize = 1024;
    pub const MAX_FRAME: u64 = 16 << 20;
    pub const INTERVAL: Duration = Duration::from_secs(5);
    /// `--checkpoint`: the JSON report is rewritten this often during a run.
    pub const CHECKPOINT: Duration = Duration::from_secs(30);
}

impl Target {
    /// A `ws://` target for a known socket address (tests, the embedded gateway).
    pub fn ws(addr: SocketAddr, path_and_query: &str) -> Target {
        let host_header = match addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        Target {
            url: format!("ws://{host_header}{path_and_query}"),
            host_header,
            path_and_query: path_and_query.to_string(),
            addr,
            tls: false,
        }
    }
}

impl Plan {
    /// A plan with every setting at its default, for `targets` and `stages`.
    pub fn with_defaults(targets: Vec<Target>, stages: Vec<Stage>) -> Plan {
        Plan {
            profile: None,
            targets,
            stages,
            sources: Vec::new(),
            handshake: HandshakeSpec::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_pending: defaults::MAX_PENDING,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            close_timeout: defaults::CLOSE_TIMEOUT,
            close_mode: CloseMode::Graceful,
            max_frame: defaults::MAX_FRAME,
            reconnect: None,
            interval: defaults::INTERVAL,
            socket_rcvbuf: None,
            socket_sndbuf: None,
            report_json: None,
            report_csv: None,
            checkpoint: defaults::CHECKPOINT,
            report_html: None,
            traffic: Traffic::default(),
            thresholds: Vec::new(),
            abort_on_fail: false,
            allow_failures: false,
            tls: TlsSpec::default(),
            churn: None,
            arrival: None,
            embedded_gateway: embedded::EmbeddedGateway::default(),
            misbehave: Vec::new(),
            data: None,
            identity: data::Identity::default(),
            disruption_threshold: recovery::DEFAULT_DISRUPTION_THRESHOLD,
            gateway_faults: recovery::GatewayFaults::default(),
        }
    }
}
