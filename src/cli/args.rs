//! clap definitions for the `wsscale` command line.
//!
//! `RunArgs` keeps every setting as an `Option` (or an empty `Vec`): `None` means "not given
//! on the command line", so that [`crate::plan::build::build_plan`] can tell a flag apart from
//! a profile value and a default (flags override the profile, the profile overrides
//! defaults). Defaults are therefore written into the help text rather than into clap.
//!
//! Values with human units are parsed here by the [`units`] parsers, so a bad
//! value is reported by clap with the flag name before anything else happens. Secrets are
//! held as [`Secret`] from the start, so `{:?}` of the arguments never shows them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::plan::build::parse_header;
use crate::plan::churn::{StageArg, parse_stage_arg};
use crate::plan::profile::{parse_claims, parse_close, parse_jwt_alg, parse_jwt_in};
use crate::plan::threshold::{self, Threshold, ThresholdError};
use crate::plan::units;
use crate::plan::{CloseMode, JwtAlg, JwtPlacement, Secret};

const ABOUT: &str = "How many WebSocket connections can your gateway hold, how fast can they \
arrive, and what happens to heartbeats and latency while they are held?";

const LONG_ABOUT: &str = "\
How many WebSocket connections can your gateway hold, how fast can they arrive, and what
happens to heartbeats and latency while they are held?

Examples:
  wsscale run profiles/quick.toml
      100 connections against the embedded gateway
  wsscale run -c 10k --ramp 1m --target ws://10.0.0.5:8080/ws
      ramp to 10,000 connections over a minute against your gateway
  wsscale search profiles/search.toml --vary connections=500..8k*2 --bisect 3
      step the connections up until a step fails, bisect, and report the knee
  wsscale serve --listen 0.0.0.0:8080
      run the reference gateway for other machines to load";

/// `wsscale`: WebSocket connection load tester.
#[derive(Debug, Parser)]
#[command(name = "wsscale", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const RUN_ABOUT: &str = "Ramp up to N connections, hold them, ramp down, and report";

const RUN_LONG: &str = "\
Ramp up to N connections, hold them, ramp down, and report connection success,
connect/handshake times and failures.

Settings come from an optional TOML profile (PROFILE); flags override it. Without --target,
the embedded reference gateway is started and loaded.

Units: counts 18000, 18k, 1.5k, 1M; durations 500ms, 10s, 1m30s; sizes 1024, 64k (=64000),
64KiB (=65536), 16MiB; rates 10/s, 0.5/s, 1/10s, 600/m.

Exit codes: 0 passed; 1 could not run (unreachable target, preflight refusal);
2 bad input; 98 completed with failures (no thresholds, but failed or dropped connections,
lost messages or a peak below the plan; --allow-failures gives 0); 99 a threshold failed;
130 interrupted (the report is still written).

Examples:
  wsscale run profiles/quick.toml
      100 connections, 10s ramp, 30s hold, against the embedded gateway
  wsscale run -c 18k --ramp 6s --source-ip 127.0.0.2-127.0.0.5 \\
      --target ws://127.0.0.1:8080/ws
      hold 18,000 connections from four loopback source addresses
  wsscale run --stage 1m:10k --stage 5m:10k --stage 30s:0 \\
      --target ws://10.0.0.5:8080/ws --jwt-secret-file ./secret
      k6-style stages, each connection with its own HS256 JWT
  wsscale run -c 1k --message-rate 1/5s --ping-interval 30s \\
      --threshold 'connect_success_rate>=0.99' --threshold 'message_rtt_ms.p99<200'
      timed echo messages and pings on every held connection; exit 99 if a threshold fails
  wsscale run -c 10k --hold 10m --target ws://127.0.0.1:8080/ws --watch-process node \
      --health-url http://127.0.0.1:8080/healthz --threshold 'gateway.bytes_per_connection<8192'
      the gateway's memory per held connection, CPU, connections, health and drift too
  wsscale run profiles/progressive.toml --report-json steps.json
      quick, then medium, then stress, with a cool-down between them
  wsscale run -c 10k --session-duration exp:2s --source-ip 127.0.0.2-127.0.0.9
      churn: every session lasts ~2 s, then its slot reopens (~5,000 opens/s)
  wsscale run --arrival-rate 500/s --session-duration exp:2s --max-open 2k --hold 1m
      open arrival model: 500 new connections/s, ~1,000 open by Little's law
  wsscale run -c 2k --hold 5m --metrics-listen 127.0.0.1:9464 --report-hdr run.hlog
      live Prometheus metrics at http://127.0.0.1:9464/metrics; latency HDR log per interval
  wsscale run -c 200 --jwt-secret s3cret --misbehave bad-token:5% --misbehave invalid-utf8:5% \\
      --threshold 'misbehave.flagged==0'
      10% misbehaving clients; exit 99 if the gateway answers one with 5xx or silence
  wsscale run -c 1k --data users.csv --target 'ws://10.0.0.5:8080/ws?user={user}' \\
      --jwt-secret-file ./secret --jwt-claims '{\"sub\":\"{user}\"}'
      each connection takes a row of users.csv (columns fill {name} placeholders)";

const SERVE_ABOUT: &str = "Run the embedded reference gateway (echo, optional JWT check)";

const SERVE_LONG: &str = "\
Run the embedded reference gateway: a WebSocket echo server built to hold tens of thousands
of connections with small buffers. It is what `wsscale run` targets when no --target is given.

Examples:
  wsscale serve
      listen on 127.0.0.1:8080 and echo every message
  wsscale serve --listen 0.0.0.0:9000 --jwt-secret-file ./secret --max-connections 50k
      require an HS256 JWT (Authorization header or ?token=), cap at 50,000 connections
  wsscale serve --echo-delay 20ms
      add 20 ms before each echo, to see it in the run's latency figures
  wsscale serve --listen 0.0.0.0:8080 --metrics-listen 0.0.0.0:9465
      the gateway's connection and message counters for Prometheus at :9465/metrics";

/// `RunArgs` is much larger than `ServeArgs`; the value is parsed once, so boxing it would
/// only make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(about = RUN_ABOUT, long_about = RUN_LONG)]
    Run(RunArgs),
    #[command(about = search::SEARCH_ABOUT, long_about = search::SEARCH_LONG)]
    Search(SearchArgs),
    #[command(about = SERVE_ABOUT, long_about = SERVE_LONG)]
    Serve(ServeArgs),
    #[command(about = PREFLIGHT_ABOUT, long_about = PREFLIGHT_LONG)]
    Preflight(PreflightArgs),
    #[command(about = TUNE_ABOUT, long_about = TUNE_LONG)]
    Tune(TuneArgs),
    #[command(about = crate::cli::cluster::COORDINATOR_ABOUT, long_about = crate::cli::cluster::COORDINATOR_LONG)]
    Coordinator(crate::cli::cluster::CoordinatorArgs),
    #[command(about = crate::cli::cluster::AGENT_ABOUT, long_about = crate::cli::cluster::AGENT_LONG)]
    Agent(crate::cli::cluster::AgentArgs),
    #[command(subcommand, about = crate::cli::cluster::REPORT_ABOUT)]
    Report(crate::cli::cluster::ReportCommand),
}

fn secret(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret(s.to_string()))
}

fn close_mode(s: &str) -> Result<CloseMode, String> {
    parse_close(s)
}

fn jwt_alg(s: &str) -> Result<JwtAlg, String> {
    parse_jwt_alg(s)
}

fn jwt_in(s: &str) -> Result<JwtPlacement, String> {
    parse_jwt_in(s)
}

fn claims(s: &str) -> Result<serde_json::Value, String> {
    parse_claims(s)
}

/// A rate (`10/s`, `1/10s`), or a bare `0` (off).
fn rate(s: &str) -> Result<f64, units::UnitError> {
    if s.trim().bytes().all(|b| b == b'0') && !s.trim().is_empty() {
        return Ok(0.0);
    }
    units::parse_rate(s)
}

fn threshold(s: &str) -> Result<Threshold, ThresholdError> {
    threshold::parse(s)
}

/// Arguments of `wsscale run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// TOML profile to start from (e.g. profiles/quick.toml); flags override its values.
    #[arg(value_name = "PROFILE")]
    pub profile: Option<PathBuf>,

    // ---- load shape ----
    /// WebSocket URL to load (ws://host[:port]/path?query, or wss:// for TLS, see --tls-*).
    /// Repeat for several targets, used round-robin. [default: start the embedded gateway and
    /// target it]
    #[arg(long = "target", value_name = "URL", help_heading = "Load")]
    pub targets: Vec<String>,

    /// Connections to hold (18000, 18k, 1.5k, 1M); shaped by --ramp/--hold/--ramp-down.
    /// Replaces the profile's load shape. [default: none; -c, --stage or a profile must give
    /// the load]
    #[arg(short = 'c', long, value_name = "N", value_parser = units::parse_count, allow_negative_numbers = true, help_heading = "Load")]
    pub connections: Option<u64>,

    /// Time to ramp from 0 to N connections (e.g. 10s, 1m) [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Load")]
    pub ramp: Option<Duration>,

    /// Time to hold N connections [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Load")]
    pub hold: Option<Duration>,

    /// Time to ramp from N back to 0 [default: 5s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Load")]
    pub ramp_down: Option<Duration>,

    /// k6-style stage DUR:TARGET, repeatable, e.g. --stage 1m:10k --stage 5m:10k --stage 30s:0.
    /// Each stage moves linearly from the previous target to its own. DUR:RATE is a rate
    /// stage (--stage 1m:500/s: 500 new connections per second, capped by --max-open; see
    /// docs/churn.md). Replaces the profile's load shape; cannot be combined with
    /// -c/--ramp/--hold/--ramp-down.
    #[arg(
        long = "stage",
        value_name = "DUR:TARGET|DUR:RATE",
        value_parser = parse_stage_arg,
        conflicts_with_all = ["connections", "ramp", "hold", "ramp_down"],
        help_heading = "Load"
    )]
    pub stages: Vec<StageArg>,

    #[command(flatten)]
    pub churn: churn::ChurnArgs,

    /// Pause between the steps of a progressive profile or of `wsscale search` [default: the
    /// profile's cool_down; none for a search]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Load")]
    pub cool_down: Option<Duration>,

    // ---- engine ----
    /// Engine threads (one shard each) [default: number of CPU cores]
    #[arg(long, value_name = "N", value_parser = units::parse_count, help_heading = "Engine")]
    pub threads: Option<u64>,

    /// Maximum connections in flight (connecting or handshaking), over all threads
    /// [default: 1024]
    #[arg(long, value_name = "N", value_parser = units::parse_count, help_heading = "Engine")]
    pub max_pending: Option<u64>,

    /// Source address(es) to bind client sockets to, repeatable: an address (127.0.0.2), a
    /// range (127.0.0.2-127.0.0.5), a CIDR (10.0.1.0/24) or an interface (iface:eth0). Each source IP gives about one
    /// port range of connections per target. [default: let the kernel choose]
    #[arg(long = "source-ip", value_name = "SPEC", help_heading = "Engine")]
    pub source_ips: Vec<String>,

    /// TCP connect timeout [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Engine")]
    pub connect_timeout: Option<Duration>,

    /// WebSocket upgrade (HTTP 101) timeout, from the end of the TCP connect [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Engine")]
    pub handshake_timeout: Option<Duration>,

    /// How long a graceful close waits for the server's close frame [default: 2s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Engine")]
    pub close_timeout: Option<Duration>,

    /// How connections are closed: graceful (close handshake) or reset (RST at once, no
    /// TIME_WAIT on the client) [default: graceful]
    #[arg(long, value_name = "reset|graceful", value_parser = close_mode, help_heading = "Engine")]
    pub close: Option<CloseMode>,

    /// Largest frame payload accepted from the server (1024, 64k, 16MiB; k/M = 1000,
    /// KiB/MiB = 1024) [default: 16MiB]
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, help_heading = "Engine")]
    pub max_frame: Option<u64>,

    /// Re-open connections that failed or were dropped, with exponential back-off
    #[arg(long, help_heading = "Engine")]
    pub reconnect: bool,

    /// Do not re-open connections (overrides `reconnect` in a profile)
    #[arg(long, conflicts_with_all = ["reconnect", "reconnect_initial", "reconnect_max"], help_heading = "Engine")]
    pub no_reconnect: bool,

    /// First reconnect back-off delay; implies --reconnect [default: 500ms]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Engine")]
    pub reconnect_initial: Option<Duration>,

    /// Cap of the reconnect back-off; implies --reconnect [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Engine")]
    pub reconnect_max: Option<Duration>,

    /// SO_RCVBUF for client sockets, bytes (e.g. 4KiB) [default: kernel default]
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, help_heading = "Engine")]
    pub rcvbuf: Option<u64>,

    /// SO_SNDBUF for client sockets, bytes (e.g. 4KiB) [default: kernel default]
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, help_heading = "Engine")]
    pub sndbuf: Option<u64>,

    // ---- handshake ----
    /// Origin header of the upgrade request [default: none]
    #[arg(long, value_name = "ORIGIN", help_heading = "Handshake")]
    pub origin: Option<String>,

    /// Extra request header 'Name: value', repeatable. 'Host: name' replaces the Host header
    /// of every target.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header, help_heading = "Handshake")]
    pub headers: Vec<(String, String)>,

    /// Sec-WebSocket-Protocol to request (e.g. chat, or "v2.chat, chat") [default: none]
    #[arg(long, value_name = "PROTOCOL", help_heading = "Handshake")]
    pub subprotocol: Option<String>,

    /// More request headers from a file: one 'Name: value' per line, '#' comments; sent
    /// before the -H headers (errors name FILE:LINE)
    #[arg(long, value_name = "FILE", help_heading = "Handshake")]
    pub header_file: Option<std::path::PathBuf>,

    /// User-Agent header [default: none; a current Chrome's with --compression browser]
    #[arg(long, value_name = "UA", help_heading = "Handshake")]
    pub user_agent: Option<String>,

    /// Offer permessage-deflate (RFC 7692): none, browser (what Chrome and Firefox send:
    /// 'permessage-deflate; client_max_window_bits', plus browser Origin and User-Agent
    /// defaults), or deflate[:PARAMS], e.g. deflate:server_no_context_takeover,
    /// client_max_window_bits=10. Negotiated messages are compressed and inflated; see
    /// docs/compression.md [default: none]
    #[arg(long, value_name = "MODE", value_parser = crate::plan::compression::parse_compression, help_heading = "Handshake")]
    pub compression: Option<crate::plan::compression::Compression>,

    /// Static bearer token: sends 'Authorization: Bearer TOKEN'.
    #[arg(
        long,
        value_name = "TOKEN",
        value_parser = secret,
        conflicts_with_all = ["jwt_secret", "jwt_secret_file", "jwt_key_file", "jwt_alg", "jwt_claims", "jwt_in"],
        help_heading = "Handshake"
    )]
    pub token: Option<Secret>,

    /// Mint an HS256 JWT per connection with this shared secret (visible in `ps`: prefer
    /// --jwt-secret-file on shared machines)
    #[arg(
        long,
        value_name = "SECRET",
        value_parser = secret,
        conflicts_with_all = ["jwt_secret_file", "jwt_key_file"],
        help_heading = "Handshake"
    )]
    pub jwt_secret: Option<Secret>,

    /// Like --jwt-secret, read from a file (a trailing newline is ignored)
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "jwt_key_file",
        help_heading = "Handshake"
    )]
    pub jwt_secret_file: Option<PathBuf>,

    /// Mint RS256/ES256 JWTs with this PEM private key (RSA: PKCS#1 or PKCS#8; EC P-256:
    /// PKCS#8)
    #[arg(long, value_name = "PEM", help_heading = "Handshake")]
    pub jwt_key_file: Option<PathBuf>,

    /// JWT signing algorithm: HS256, RS256 or ES256 [default: HS256 with a secret; with
    /// --jwt-key-file, detected from the key]
    #[arg(long, value_name = "ALG", value_parser = jwt_alg, help_heading = "Handshake")]
    pub jwt_alg: Option<JwtAlg>,

    /// JWT claims template, a JSON object. Strings may contain {conn} (connection number);
    /// "{now}" / "{now+N}" become Unix seconds [default: {"sub":"user-{conn}","exp":"{now+3600}"}]
    #[arg(long, value_name = "JSON", value_parser = claims, help_heading = "Handshake")]
    pub jwt_claims: Option<serde_json::Value>,

    /// Where the JWT goes: header (Authorization: Bearer) or query:NAME (?NAME=jwt)
    /// [default: header]
    #[arg(long, value_name = "header|query:NAME", value_parser = jwt_in, help_heading = "Handshake")]
    pub jwt_in: Option<JwtPlacement>,

    // ---- TLS (wss:// targets) ----
    /// Server name for SNI and certificate verification [default: the host of the URL]
    #[arg(long, value_name = "NAME", help_heading = "TLS (wss://)")]
    pub tls_sni: Option<String>,

    /// Also trust the CA certificate(s) in this PEM file (repeatable; added to the built-in
    /// Mozilla roots)
    #[arg(long = "tls-ca", value_name = "FILE", help_heading = "TLS (wss://)")]
    pub tls_ca: Vec<PathBuf>,

    /// Do not verify the server certificate (test gateways with self-signed certificates,
    /// e.g. `wsscale serve --tls-self-signed`). Flagged in the output and the report.
    #[arg(long, conflicts_with = "tls_ca", help_heading = "TLS (wss://)")]
    pub tls_insecure: bool,

    /// Client certificate chain (PEM) for gateways that require mTLS; needs --tls-client-key
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_client_key",
        help_heading = "TLS (wss://)"
    )]
    pub tls_client_cert: Option<PathBuf>,

    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-client-cert
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_client_cert",
        help_heading = "TLS (wss://)"
    )]
    pub tls_client_key: Option<PathBuf>,

    /// Resume TLS sessions (TLS 1.3 tickets) on reconnects and later connections of a ramp,
    /// instead of a full handshake for every connection [default: full handshakes]
    #[arg(long, help_heading = "TLS (wss://)")]
    pub tls_resume: bool,

    // ---- traffic on held connections ----
    /// Send a WebSocket ping every DUR on each connection (each with its own random phase);
    /// the pong's round trip goes into ping_rtt. 0 disables pings set by a profile
    /// [default: no pings]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Traffic")]
    pub ping_interval: Option<Duration>,

    /// A ping not answered within DUR closes the connection as ping_timeout (a drop)
    /// [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Traffic")]
    pub ping_timeout: Option<Duration>,

    /// Application heartbeat sent as a text frame every --heartbeat-interval, e.g.
    /// '{"type":"ping"}'. Escapes \r \n \t \\ are resolved [default: none]
    #[arg(long, value_name = "TEXT", help_heading = "Traffic")]
    pub heartbeat_text: Option<String>,

    /// Time between heartbeats of one connection [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Traffic")]
    pub heartbeat_interval: Option<Duration>,

    /// The reply that answers a heartbeat, matched as bytes anywhere in any data frame (text
    /// or binary); its round trip goes into heartbeat_rtt. Escapes as for --heartbeat-text
    /// [default: no reply expected]
    #[arg(long, value_name = "TEXT", help_heading = "Traffic")]
    pub heartbeat_expect: Option<String>,

    /// An expected heartbeat reply not seen within DUR closes the connection as
    /// ping_timeout [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Traffic")]
    pub heartbeat_timeout: Option<Duration>,

    /// Sent once right after the upgrade (a subscribe or login frame): TEXT (escapes \r \n
    /// \t \\ \@ resolved) or @FILE (sent as is) [default: none]
    #[arg(long, value_name = "TEXT|@FILE", help_heading = "Traffic")]
    pub first_message: Option<String>,

    /// Count a connection as established only once a data frame containing TEXT arrived
    /// (the reply to --first-message, or the server's greeting) [default: at the 101]
    #[arg(long, value_name = "TEXT", help_heading = "Traffic")]
    pub first_message_expect: Option<String>,

    // ---- session protocol ----
    /// Speak this session protocol over WebSocket: socketio, stomp, mqtt, nats, graphql-ws,
    /// graphql-ws-legacy, signalr, phoenix, actioncable, centrifugo. Sets the subprotocol,
    /// the URL path (Socket.IO, Phoenix, Centrifugo), the open sequence, keep-alives and their
    /// answers, and the envelope of timed messages (see docs/protocols.md) [default: raw
    /// WebSocket]
    #[arg(long, value_name = "NAME", help_heading = "Protocol")]
    pub protocol: Option<String>,

    /// Send MSG as a step of the open sequence, repeatable and ordered with --expect. MSG is
    /// payload notation: TEXT (escapes \r \n \t \0 \xNN \u{..}; {conn}), text:/binary:
    /// prefixes, hex:.., base64:.., @FILE. After a --protocol's own sequence.
    #[arg(long = "send", value_name = "MSG", help_heading = "Protocol")]
    pub send: Vec<String>,

    /// Wait for a server frame matching PATTERN as a step of the open sequence (exact TEXT,
    /// ^PREFIX, *CONTAINS, re:REGEX); the connection counts as established when the whole
    /// sequence completed
    #[arg(long = "expect", value_name = "PATTERN", help_heading = "Protocol")]
    pub expect: Vec<String>,

    /// Auto-reply 'PATTERN=>RESPONSE', repeatable: a server frame matching PATTERN is
    /// answered with RESPONSE (payload notation; {1}..{9} copy groups of a re: pattern).
    /// E.g. '2=>3' (Engine.IO ping), 're:"ref":"(\d+)"=>{"ref":"{1}"}'
    #[arg(
        long = "reply",
        value_name = "PATTERN=>RESPONSE",
        help_heading = "Protocol"
    )]
    pub replies: Vec<String>,

    /// Subscribe to this topic / destination / subject / channel ({conn} allowed), repeatable;
    /// graphql-ws: a subscription query; actioncable: a channel identifier (JSON)
    /// [default: a per-connection topic when --message-rate is set]
    #[arg(long = "subscribe", value_name = "TOPIC", help_heading = "Protocol")]
    pub subscribe: Vec<String>,

    /// Publish timed messages to this topic / channel [default: the first --subscribe];
    /// graphql-ws: the operation that carries them in its $marker variable
    #[arg(long, value_name = "TOPIC", help_heading = "Protocol")]
    pub publish_topic: Option<String>,

    /// Socket.IO namespace to connect (e.g. /chat) [default: /]
    #[arg(long, value_name = "NS", help_heading = "Protocol")]
    pub namespace: Option<String>,

    /// Socket.IO event that carries timed messages [default: message]
    #[arg(long, value_name = "NAME", help_heading = "Protocol")]
    pub event: Option<String>,

    /// STOMP login and passcode USER:PASS [default: guest:guest]
    #[arg(long, value_name = "USER:PASS", help_heading = "Protocol")]
    pub stomp_login: Option<String>,

    /// GraphQL connection_init payload, a JSON object (graphql-ws, graphql-ws-legacy)
    /// [default: {}]
    #[arg(long, value_name = "JSON", help_heading = "Protocol")]
    pub init_payload: Option<String>,

    /// SignalR hub method that timed messages invoke, with the marker as the argument
    /// [default: Echo]
    #[arg(long, value_name = "NAME", help_heading = "Protocol")]
    pub method: Option<String>,

    /// The order of --send and --expect on the command line (filled after parsing).
    #[arg(skip)]
    pub open: Vec<crate::plan::OpenArg>,

    /// Timed messages per connection: 10/s, 0.5/s, 1/10s, 600/m. Each is echoed by the
    /// gateway; round trip = echo received − intended send time (no coordinated omission).
    /// 0 disables messages set by a profile [default: no messages]
    #[arg(long, value_name = "RATE", value_parser = rate, help_heading = "Traffic")]
    pub message_rate: Option<f64>,

    /// Payload size of a timed message, at least 32 bytes (the latency marker) [default: 64]
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, help_heading = "Traffic")]
    pub message_size: Option<u64>,

    /// Text payload template with {conn}, {seq}, {ts} (Unix ms) and optionally {marker}
    /// (where the latency marker goes; appended otherwise), padded to --message-size
    /// [default: binary payloads]
    #[arg(long, value_name = "TEMPLATE", help_heading = "Traffic")]
    pub message_text: Option<String>,

    /// A message not echoed within DUR counts as lost [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Traffic")]
    pub message_timeout: Option<Duration>,

    /// Only these connections send timed messages: the first N by connection number, or P%
    /// of them spread evenly; the others only receive (a chat room's readers). A message
    /// that comes back to its sender is a message_rtt sample, one that reaches another
    /// connection a fanout_latency sample [default: every connection]
    #[arg(long, value_name = "N|P%", value_parser = crate::plan::push::Publishers::parse, help_heading = "Traffic")]
    pub publishers: Option<crate::plan::push::Publishers>,

    /// Server push latency: read the creation time of server-originated frames from a JSON
    /// key (json:ts, json:meta.ts) or capture group 1 of a regex (re:REGEX), optionally with
    /// the unit :s, :ms, :us or :ns (else by magnitude); receive time − that time goes into
    /// push_latency. Matches `wsscale serve --push-rate`'s feed with json:ts [default: off]
    #[arg(long, value_name = "json:PATH|re:REGEX[:UNIT]", value_parser = crate::plan::push::PushTimestamp::parse, help_heading = "Traffic")]
    pub push_timestamp: Option<crate::plan::push::PushTimestamp>,

    // ---- thresholds ----
    /// Pass/fail condition METRIC OP VALUE, repeatable, added to the profile's [thresholds]:
    /// e.g. 'connect_success_rate>=0.95', 'handshake_ms.p95<5000', 'message_rtt_ms.p99<200',
    /// 'dropped==0', 'messages.lost_rate<0.01'. A failed threshold makes the exit code 99
    #[arg(long = "threshold", value_name = "EXPR", value_parser = threshold, help_heading = "Thresholds")]
    pub thresholds: Vec<Threshold>,

    /// Stop the run as soon as a threshold can no longer be met (e.g. dropped==0 after the
    /// first drop); percentiles never stop a run early
    #[arg(long, help_heading = "Thresholds")]
    pub abort_on_fail: bool,

    /// Without thresholds, a run with failed or dropped connections, lost messages or a peak
    /// below the plan exits 98 ("completed with failures"); this flag makes it exit 0 (the
    /// summary still lists what went wrong). With thresholds, they alone decide.
    #[arg(long, help_heading = "Thresholds")]
    pub allow_failures: bool,

    // ---- output ----
    /// Live progress and snapshot interval [default: 5s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Output")]
    pub interval: Option<Duration>,

    /// Write the JSON report to FILE (atomically, also on Ctrl-C) [default: none]
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub report_json: Option<PathBuf>,

    /// Write the time series (one row per interval: open, connect rate, failures, msgs/s,
    /// message p50/p99) to FILE as CSV [default: none]
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub report_csv: Option<PathBuf>,

    /// With --report-json: rewrite the report this often while the run goes on, marked
    /// "complete": false, so a run killed by SIGKILL or the OOM killer leaves its figures up to
    /// the last checkpoint; 0 writes only at the end [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Output")]
    pub checkpoint: Option<Duration>,
    /// Serve live Prometheus/OpenMetrics metrics at http://ADDR/metrics while the run lasts:
    /// PORT (on 127.0.0.1), IP:PORT or HOST:PORT, e.g. 127.0.0.1:9464 or 0.0.0.0:9464; port 0
    /// picks a free port (the bound address is printed). Metric names: docs/reports.md
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, help_heading = "Output")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Write every latency histogram of every interval to FILE in HdrHistogram's interval-log
    /// format (tagged per metric, values in µs), for HdrHistogram's HistogramLogProcessor and
    /// plotters [default: none]
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub report_hdr: Option<PathBuf>,
    /// Write a self-contained HTML report with charts to FILE (open it in any browser, no
    /// network needed); `wsscale report html RUN.json -o FILE` makes one from a JSON report
    /// [default: none]
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub report_html: Option<PathBuf>,

    /// Run even when the preflight checks say the plan cannot work on this host (too few
    /// file descriptors, ephemeral ports, memory...). `wsscale preflight` shows the checks.
    #[arg(long, help_heading = "Output")]
    pub skip_preflight: bool,

    // ---- distribution (see `wsscale coordinator` for several hosts) ----
    /// Run the load in N local processes (a coordinator in this process, N agent processes
    /// over loopback): uses every core and goes past one process's descriptor limit. Without
    /// --target, N `wsscale serve` processes are the gateway.
    #[arg(long, value_name = "N", value_parser = units::parse_count, conflicts_with_all = ["shard", "start_at"], help_heading = "Distribution")]
    pub processes: Option<u64>,

    /// Run only shard I of N of the plan (1-based, e.g. 2/4), for your own orchestrator;
    /// merge the shards' JSON reports with `wsscale report merge`. Combine with --start-at.
    #[arg(long, value_name = "I/N", value_parser = crate::cli::cluster::parse_shard, help_heading = "Distribution")]
    pub shard: Option<crate::cli::cluster::ShardSpec>,

    /// Start the first stage at this UTC time (RFC 3339, e.g. 2025-06-01T12:00:00Z), so that
    /// shards on several hosts run together
    #[arg(long, value_name = "RFC3339", value_parser = crate::cli::cluster::parse_start_at, help_heading = "Distribution")]
    pub start_at: Option<std::time::SystemTime>,

    /// With --processes: how long the coordinator (this process) and each agent process wait
    /// to hear from the other before the agent closes its connections and the coordinator
    /// declares it lost (`wsscale coordinator`/`agent` call it --orphan-timeout). Raise it on
    /// a crowded host, e.g. --processes 51 --process-orphan-timeout 60s [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, requires = "processes", help_heading = "Distribution")]
    pub process_orphan_timeout: Option<Duration>,

    #[command(flatten)]
    pub watch: WatchArgs,

    #[command(flatten)]
    pub scenario: ScenarioArgs,

    #[command(flatten)]
    pub recovery: RecoveryArgs,
}

mod host;
pub use host::*;
mod churn;
mod overrides;
mod search;
pub use search::SearchArgs;
mod recovery;
mod scenario;
pub use recovery::{FaultArgs, RecoveryArgs};
mod watch;
pub use scenario::ScenarioArgs;
pub use watch::WatchArgs;
