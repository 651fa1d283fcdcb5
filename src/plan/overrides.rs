//! [`Overrides`]: the settings a caller gives on top of a profile — what `wsscale run`'s
//! flags become once clap has parsed them (ripgrep's low-args → high-args split).
//!
//! Every setting is an `Option` (or an empty `Vec`): `None` means "not given", so that
//! [`build_plan`](super::build::build_plan) can tell it apart from a profile value and a
//! default (given > profile > default). The plan layer never sees clap: `cli` fills this
//! struct, and programs and tests can fill it directly.

use std::path::PathBuf;
use std::time::Duration;

use super::churn::{SessionDuration, StageArg};
use super::threshold::Threshold;
use super::{CloseMode, JwtAlg, JwtPlacement, Secret};

/// One `--send` or `--expect`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenArg {
    Send(String),
    Expect(String),
}

/// Settings given on top of a profile; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// TOML profile to start from (e.g. profiles/quick.toml); flags override its values.
    pub profile: Option<PathBuf>,
    /// WebSocket URL to load (ws://host[:port]/path?query, or wss:// for TLS, see --tls-*).
    pub targets: Vec<String>,
    /// Connections to hold (18000, 18k, 1.5k, 1M); shaped by --ramp/--hold/--ramp-down.
    pub connections: Option<u64>,
    /// Time to ramp from 0 to N connections (e.g. 10s, 1m) [default: 10s]
    pub ramp: Option<Duration>,
    /// Time to hold N connections [default: 30s]
    pub hold: Option<Duration>,
    /// Time to ramp from N back to 0 [default: 5s]
    pub ramp_down: Option<Duration>,
    /// k6-style stage DUR:TARGET or DUR:RATE, repeatable, e.g. --stage 1m:10k --stage 30s:0,
    /// --stage 1m:500/s (see `plan::churn`).
    pub stages: Vec<StageArg>,
    /// `--session-duration DUR|uniform:A..B|exp:MEAN`: churn (see `plan::churn`).
    pub session_duration: Option<SessionDuration>,
    /// `--session-seed N`: seed of the session-length RNG.
    pub session_seed: Option<u64>,
    /// `--arrival-rate R`: new connections per second (one rate stage of --hold).
    pub arrival_rate: Option<f64>,
    /// `--max-open N`: cap on open connections during rate stages.
    pub max_open: Option<u64>,
    /// Pause between the steps of a progressive profile [default: the profile's cool_down]
    pub cool_down: Option<Duration>,
    /// Engine threads (one shard each) [default: number of CPU cores]
    pub threads: Option<u64>,
    /// Maximum connections in flight (connecting or handshaking) [default: 1024]
    pub max_pending: Option<u64>,
    /// Source-address specs (`127.0.0.2`, `127.0.0.2-127.0.0.5`, `10.0.1.0/24`, `iface:eth0`).
    pub source_ips: Vec<String>,
    /// TCP connect timeout [default: 10s]
    pub connect_timeout: Option<Duration>,
    /// WebSocket upgrade (HTTP 101) timeout, from the end of the TCP connect [default: 10s]
    pub handshake_timeout: Option<Duration>,
    /// How long a graceful close waits for the server's close frame [default: 2s]
    pub close_timeout: Option<Duration>,
    /// How connections are closed: graceful (close handshake) or reset (RST at once).
    pub close: Option<CloseMode>,
    /// Largest frame payload accepted from the server, bytes [default: 16MiB]
    pub max_frame: Option<u64>,
    /// `--reconnect` (see `wsscale run --help`).
    pub reconnect: bool,
    /// Do not re-open connections (overrides `reconnect` in a profile)
    pub no_reconnect: bool,
    /// First reconnect back-off delay; implies --reconnect [default: 500ms]
    pub reconnect_initial: Option<Duration>,
    /// Cap of the reconnect back-off; implies --reconnect [default: 30s]
    pub reconnect_max: Option<Duration>,
    /// `--reconnect-jitter`: random part of each back-off delay (0..=1); implies --reconnect.
    pub reconnect_jitter: Option<f64>,
    /// `--disruption-threshold`: fraction of open connections dropped in one interval that
    /// makes a drop wave [default: 0.05].
    pub disruption_threshold: Option<f64>,
    /// `--message-burst N@DUR[~SPREAD]` (needs `--message-rate`).
    pub message_burst: Option<super::recovery::MessageBurst>,
    /// `--gateway-drop-all-after`, `--gateway-drop-every`, `--gateway-stall-after` (each
    /// replaces the profile's key of the same name).
    pub gateway_faults: super::recovery::GatewayFaults,
    /// SO_RCVBUF for client sockets, bytes (e.g. 4KiB) [default: kernel default]
    pub rcvbuf: Option<u64>,
    /// SO_SNDBUF for client sockets, bytes (e.g. 4KiB) [default: kernel default]
    pub sndbuf: Option<u64>,
    /// Origin header of the upgrade request [default: none]
    pub origin: Option<String>,
    /// `-H/--header` (see `wsscale run --help`).
    pub headers: Vec<(String, String)>,
    /// `--header-file`: one 'Name: value' per line.
    pub header_file: Option<PathBuf>,
    /// `--user-agent`.
    pub user_agent: Option<String>,
    /// `--compression` (see `wsscale run --help`).
    pub compression: Option<crate::plan::compression::Compression>,
    /// Sec-WebSocket-Protocol to request (e.g. chat, or "v2.chat, chat") [default: none]
    pub subprotocol: Option<String>,
    /// Static bearer token: sends 'Authorization: Bearer TOKEN'.
    pub token: Option<Secret>,
    /// `--jwt-secret` (see `wsscale run --help`).
    pub jwt_secret: Option<Secret>,
    /// Like --jwt-secret, read from a file (a trailing newline is ignored)
    pub jwt_secret_file: Option<PathBuf>,
    /// `--jwt-key-file` (see `wsscale run --help`).
    pub jwt_key_file: Option<PathBuf>,
    /// `--jwt-alg` (see `wsscale run --help`).
    pub jwt_alg: Option<JwtAlg>,
    /// `--jwt-claims` (see `wsscale run --help`).
    pub jwt_claims: Option<serde_json::Value>,
    /// Where the JWT goes: header (Authorization: Bearer) or query:NAME (?NAME=jwt)
    pub jwt_in: Option<JwtPlacement>,
    /// Server name for SNI and certificate verification [default: the host of the URL]
    pub tls_sni: Option<String>,
    /// `--tls-ca` (see `wsscale run --help`).
    pub tls_ca: Vec<PathBuf>,
    /// `--tls-insecure` (see `wsscale run --help`).
    pub tls_insecure: bool,
    /// `--tls-client-cert` (see `wsscale run --help`).
    pub tls_client_cert: Option<PathBuf>,
    /// `--tls-client-key` (see `wsscale run --help`).
    pub tls_client_key: Option<PathBuf>,
    /// `--tls-resume` (see `wsscale run --help`).
    pub tls_resume: bool,
    /// `--ping-interval` (see `wsscale run --help`).
    pub ping_interval: Option<Duration>,
    /// A ping not answered within DUR closes the connection as ping_timeout (a drop)
    pub ping_timeout: Option<Duration>,
    /// Application heartbeat sent as a text frame every --heartbeat-interval, e.g.
    pub heartbeat_text: Option<String>,
    /// Time between heartbeats of one connection [default: 30s]
    pub heartbeat_interval: Option<Duration>,
    /// `--heartbeat-expect` (see `wsscale run --help`).
    pub heartbeat_expect: Option<String>,
    /// `--heartbeat-timeout` (see `wsscale run --help`).
    pub heartbeat_timeout: Option<Duration>,
    /// `--first-message` (see `wsscale run --help`).
    pub first_message: Option<String>,
    /// `--first-message-expect` (see `wsscale run --help`).
    pub first_message_expect: Option<String>,
    /// `--protocol`: a session preset.
    pub protocol: Option<String>,
    /// `--send` / `--expect` in command-line order.
    pub open: Vec<OpenArg>,
    /// `--reply PATTERN=>RESPONSE`.
    pub replies: Vec<String>,
    /// `--subscribe`.
    pub subscribe: Vec<String>,
    /// `--publish-topic`.
    pub publish_topic: Option<String>,
    /// `--namespace` (Socket.IO).
    pub namespace: Option<String>,
    /// `--event` (Socket.IO).
    pub event: Option<String>,
    /// `--stomp-login USER:PASS`.
    pub stomp_login: Option<String>,
    /// `--init-payload JSON` (graphql-ws).
    pub init_payload: Option<String>,
    /// `--method NAME` (SignalR).
    pub method: Option<String>,
    /// `--message-rate` (see `wsscale run --help`).
    pub message_rate: Option<f64>,
    /// Payload size of a timed message, at least 32 bytes (the latency marker) [default: 64]
    pub message_size: Option<u64>,
    /// `--message-text` (see `wsscale run --help`).
    pub message_text: Option<String>,
    /// A message not echoed within DUR counts as lost [default: 10s]
    pub message_timeout: Option<Duration>,
    /// `--data FILE.csv`: one row per connection, columns as `{name}` placeholders.
    pub data: Option<PathBuf>,
    /// `--data-mode round-robin|unique`.
    pub data_mode: Option<super::data::DataMode>,
    /// `--misbehave KIND:FRACTION`, repeatable (replaces the profile's `misbehave`).
    pub misbehave: Vec<super::misbehave::Misbehave>,
    /// `--publishers N|P%`: only these connections send timed messages [default: all].
    pub publishers: Option<super::push::Publishers>,
    /// `--push-timestamp json:PATH|re:REGEX[:UNIT]`: creation time of server pushes.
    pub push_timestamp: Option<super::push::PushTimestamp>,
    /// `--threshold` (see `wsscale run --help`).
    pub thresholds: Vec<Threshold>,
    /// `--abort-on-fail` (see `wsscale run --help`).
    pub abort_on_fail: bool,
    /// `--allow-failures`: without thresholds, failures do not fail the run.
    pub allow_failures: bool,
    /// Live progress and snapshot interval [default: 5s]
    pub interval: Option<Duration>,
    /// Write the JSON report to FILE (atomically, also on Ctrl-C) [default: none]
    pub report_json: Option<PathBuf>,
    /// `--report-csv` (see `wsscale run --help`).
    pub report_csv: Option<PathBuf>,
    /// `--checkpoint DUR` (see `wsscale run --help`; 0 turns it off).
    pub checkpoint: Option<Duration>,
    /// `--report-html` (see `wsscale run --help`).
    pub report_html: Option<PathBuf>,
}
