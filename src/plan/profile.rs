//! [`Profile`]: a TOML scenario file, parsed but not yet merged or validated.
//!
//! Keys mirror the `wsscale run` flags in snake_case (see `profiles/*.toml` for examples).
//! Parsing has two layers:
//!
//! 1. A private `RawProfile` that serde fills (`deny_unknown_fields`), where every value
//!    that takes a human unit is kept as a `toml::Spanned<toml::Value>`. serde's own errors
//!    (syntax, unknown key, wrong type) are turned into `file:line:col:` messages, with a
//!    "did you mean" for misspelt keys.
//! 2. Conversion into [`Profile`], whose values are [`Located`]: each one remembers the
//!    [`Origin`] (`file:line:col` and key) it came from, so that later validation in
//!    [`build`](super::build) can still point at the line to fix.
//!
//! To add a key: add a field to `RawProfile` (as `Option<Spanned<…>>`), a field to
//! [`Profile`], and one line in [`Profile::parse`] using the `count`/`duration`/`size`/
//! `string` helpers (of `Ctx`, in the `convert` submodule); then merge it with its flag in
//! `build.rs`.
//!
//! Relative paths in a profile (`report_json`, `report_csv`, `report_html`, `jwt_key_file`,
//! `jwt_secret_file`, `first_message = "@file"`, `steps`) are resolved against the profile's
//! directory, so a profile can be run from anywhere.
//!
//! `${NAME}` is replaced by the environment variable before the text is parsed ([`env`]).
//!
//! The keys for traffic, thresholds and progressive steps (and their raw shapes) are in the
//! `traffic` submodule. A profile with `steps` is a *progressive* profile: it may only
//! have the keys in [`PROGRESSIVE_KEYS`], everything else belongs in the step profiles.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::{Spanned, Value};

mod convert;
pub mod env;
mod locate;
mod traffic;

use convert::Ctx;

pub use locate::line_col;
use locate::toml_error;
pub use traffic::{MessageSource, PROGRESSIVE_KEYS};
use traffic::{RawThresholds, foreign_key_error};

use super::churn::{SessionDuration, StageArg};
use super::error::{Origin, PlanError};
use super::threshold::Threshold;
use super::{CloseMode, JwtAlg, JwtPlacement, Reconnect, Secret};

/// A value together with where it was set.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Located<T> {
    pub fn new(value: T, origin: Origin) -> Self {
        Located { value, origin }
    }

    /// A value set by a command-line flag.
    pub fn flag(value: T, flag: &'static str) -> Self {
        Located {
            value,
            origin: Origin::Flag(flag),
        }
    }
}

/// A parsed profile. Every field is optional: flags and defaults fill the rest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// The file it was read from (as given).
    pub path: PathBuf,
    pub description: Option<String>,
    pub targets: Vec<Located<String>>,
    pub connections: Option<Located<u64>>,
    pub ramp: Option<Located<Duration>>,
    pub hold: Option<Located<Duration>>,
    pub ramp_down: Option<Located<Duration>>,
    pub stages: Option<Located<Vec<StageArg>>>,
    /// Churn and the arrival model (see `plan::churn`).
    pub session_duration: Option<Located<SessionDuration>>,
    pub session_seed: Option<Located<u64>>,
    pub arrival_rate: Option<Located<f64>>,
    pub max_open: Option<Located<u64>>,
    pub threads: Option<Located<u64>>,
    pub max_pending: Option<Located<u64>>,
    pub connect_timeout: Option<Located<Duration>>,
    pub handshake_timeout: Option<Located<Duration>>,
    pub close_timeout: Option<Located<Duration>>,
    pub close: Option<Located<CloseMode>>,
    pub source_ips: Vec<Located<String>>,
    pub origin: Option<Located<String>>,
    pub headers: Vec<Located<String>>,
    pub subprotocol: Option<Located<String>>,
    pub user_agent: Option<Located<String>>,
    pub compression: Option<Located<String>>,
    pub max_frame: Option<Located<u64>>,
    /// `Some(None)`: `reconnect = false`; `Some(Some(_))`: on, with defaults filled in.
    pub reconnect: Option<Located<Option<Reconnect>>>,
    pub interval: Option<Located<Duration>>,
    pub checkpoint: Option<Located<Duration>>,
    pub rcvbuf: Option<Located<u64>>,
    pub sndbuf: Option<Located<u64>>,
    /// Resolved against the profile's directory.
    pub report_json: Option<Located<PathBuf>>,
    /// Resolved against the profile's directory.
    pub report_csv: Option<Located<PathBuf>>,
    /// Resolved against the profile's directory.
    pub report_html: Option<Located<PathBuf>>,
    pub auth: ProfileAuth,
    /// `[embedded_gateway]` (see [`super::embedded`]).
    pub embedded_gateway: ProfileEmbedded,
    // ---- traffic on held connections ----
    pub ping_interval: Option<Located<Duration>>,
    pub ping_timeout: Option<Located<Duration>>,
    /// Escapes not yet resolved.
    pub heartbeat_text: Option<Located<String>>,
    pub heartbeat_interval: Option<Located<Duration>>,
    pub heartbeat_expect: Option<Located<String>>,
    pub heartbeat_timeout: Option<Located<Duration>>,
    /// `@file` resolved against the profile's directory.
    pub first_message: Option<Located<MessageSource>>,
    pub first_message_expect: Option<Located<String>>,
    /// Messages per second per connection (0: off).
    pub message_rate: Option<Located<f64>>,
    pub message_size: Option<Located<u64>>,
    pub message_text: Option<Located<String>>,
    pub message_timeout: Option<Located<Duration>>,
    /// `message_burst = "100@10s"` (parsed when the plan is built).
    pub message_burst: Option<Located<String>>,
    /// `disruption_threshold = 0.05` or `"5%"`, as text (parsed when the plan is built).
    pub disruption_threshold: Option<Located<String>>,
    /// Embedded gateway faults: `gateway_drop_all_after = "20s"`,
    /// `gateway_drop_every = "10s:20%"`, `gateway_stall_after = "10s:5s"` (the last two
    /// parsed when the plan is built).
    pub gateway_drop_all_after: Option<Located<Duration>>,
    pub gateway_drop_every: Option<Located<String>>,
    pub gateway_stall_after: Option<Located<String>>,
    /// `publishers = 10` or `"10%"`.
    pub publishers: Option<Located<super::push::Publishers>>,
    /// `push_timestamp = "json:ts"` (parsed when the plan is built).
    pub push_timestamp: Option<Located<String>>,
    /// `misbehave = ["bad-token:5%", …]` (parsed when the plan is built).
    pub misbehave: Vec<Located<String>>,
    /// `data = "users.csv"` (resolved against the profile's directory).
    pub data: Option<Located<PathBuf>>,
    /// `data_mode = "unique"` (parsed when the plan is built).
    pub data_mode: Option<Located<String>>,
    // ---- session protocol (see docs/protocols.md) ----
    pub protocol: Option<Located<String>>,
    pub subscribe: Vec<Located<String>>,
    pub publish_topic: Option<Located<String>>,
    pub namespace: Option<Located<String>>,
    pub event: Option<Located<String>>,
    /// `replies = ["2=>3", …]`.
    pub replies: Vec<Located<String>>,
    /// `open = ["send:…", "expect:…", …]`: the open sequence in order.
    pub open: Vec<Located<String>>,
    // ---- thresholds ----
    /// `[thresholds]`, in document order.
    pub thresholds: Vec<Located<Threshold>>,
    pub abort_on_fail: Option<Located<bool>>,
    pub allow_failures: Option<Located<bool>>,
    // ---- progressive profiles ----
    /// Step profiles (resolved against the profile's directory); a profile with steps has
    /// no other keys than [`PROGRESSIVE_KEYS`].
    pub steps: Option<Located<Vec<Located<PathBuf>>>>,
    pub cool_down: Option<Located<Duration>>,
    pub continue_on_fail: Option<Located<bool>>,
}

/// The `[auth]` table. Paths are resolved against the profile's directory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileAuth {
    pub token: Option<Located<Secret>>,
    pub jwt_secret: Option<Located<Secret>>,
    pub jwt_secret_file: Option<Located<PathBuf>>,
    pub jwt_key_file: Option<Located<PathBuf>>,
    pub jwt_alg: Option<Located<JwtAlg>>,
    pub jwt_claims: Option<Located<serde_json::Value>>,
    pub jwt_in: Option<Located<JwtPlacement>>,
}

/// The `[embedded_gateway]` table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileEmbedded {
    pub max_connections: Option<Located<u64>>,
    pub echo_delay: Option<Located<Duration>>,
}

impl ProfileAuth {
    /// Whether any auth key is set.
    pub fn is_empty(&self) -> bool {
        *self == ProfileAuth::default()
    }
}

// ---------------------------------------------------------------------------------------
// Raw serde layer.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: Option<Spanned<String>>,
    targets: Option<Vec<Spanned<String>>>,
    connections: Option<Spanned<Value>>,
    ramp: Option<Spanned<Value>>,
    hold: Option<Spanned<Value>>,
    ramp_down: Option<Spanned<Value>>,
    stages: Option<Spanned<Vec<RawStage>>>,
    session_duration: Option<Spanned<String>>,
    session_seed: Option<Spanned<Value>>,
    arrival_rate: Option<Spanned<Value>>,
    max_open: Option<Spanned<Value>>,
    threads: Option<Spanned<Value>>,
    max_pending: Option<Spanned<Value>>,
    connect_timeout: Option<Spanned<Value>>,
    handshake_timeout: Option<Spanned<Value>>,
    close_timeout: Option<Spanned<Value>>,
    close: Option<Spanned<String>>,
    source_ips: Option<Vec<Spanned<String>>>,
    origin: Option<Spanned<String>>,
    headers: Option<Vec<Spanned<String>>>,
    subprotocol: Option<Spanned<String>>,
    user_agent: Option<Spanned<String>>,
    compression: Option<Spanned<String>>,
    max_frame: Option<Spanned<Value>>,
    reconnect: Option<Spanned<RawReconnect>>,
    interval: Option<Spanned<Value>>,
    checkpoint: Option<Spanned<Value>>,
    rcvbuf: Option<Spanned<Value>>,
    sndbuf: Option<Spanned<Value>>,
    report_json: Option<Spanned<String>>,
    report_csv: Option<Spanned<String>>,
    report_html: Option<Spanned<String>>,
    auth: Option<RawAuth>,
    embedded_gateway: Option<RawEmbedded>,
    ping_interval: Option<Spanned<Value>>,
    ping_timeout: Option<Spanned<Value>>,
    heartbeat_text: Option<Spanned<String>>,
    heartbeat_interval: Option<Spanned<Value>>,
    heartbeat_expect: Option<Spanned<String>>,
    heartbeat_timeout: Option<Spanned<Value>>,
    first_message: Option<Spanned<String>>,
    first_message_expect: Option<Spanned<String>>,
    message_rate: Option<Spanned<Value>>,
    message_size: Option<Spanned<Value>>,
    message_text: Option<Spanned<String>>,
    message_timeout: Option<Spanned<Value>>,
    message_burst: Option<Spanned<String>>,
    disruption_threshold: Option<Spanned<Value>>,
    gateway_drop_all_after: Option<Spanned<Value>>,
    gateway_drop_every: Option<Spanned<String>>,
    gateway_stall_after: Option<Spanned<String>>,
    publishers: Option<Spanned<Value>>,
    push_timestamp: Option<Spanned<String>>,
    misbehave: Option<Vec<Spanned<String>>>,
    data: Option<Spanned<String>>,
    data_mode: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    subscribe: Option<Vec<Spanned<String>>>,
    publish_topic: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    event: Option<Spanned<String>>,
    replies: Option<Vec<Spanned<String>>>,
    open: Option<Vec<Spanned<String>>>,
    thresholds: Option<RawThresholds>,
    abort_on_fail: Option<Spanned<bool>>,
    allow_failures: Option<Spanned<bool>>,
    steps: Option<Spanned<Vec<Spanned<String>>>>,
    cool_down: Option<Spanned<Value>>,
    continue_on_fail: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    duration: Spanned<Value>,
    target: Spanned<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    token: Option<Spanned<String>>,
    jwt_secret: Option<Spanned<String>>,
    jwt_secret_file: Option<Spanned<String>>,
    jwt_key_file: Option<Spanned<String>>,
    jwt_alg: Option<Spanned<String>>,
    jwt_claims: Option<Spanned<Value>>,
    jwt_in: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmbedded {
    max_connections: Option<Spanned<Value>>,
    echo_delay: Option<Spanned<Value>>,
}

/// `reconnect = true|false` or `reconnect = { initial = "500ms", max = "30s" }`.
enum RawReconnect {
    Flag(bool),
    Table(RawReconnectTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReconnectTable {
    initial: Option<Spanned<Value>>,
    max: Option<Spanned<Value>>,
    jitter: Option<Spanned<Value>>,
}

impl<'de> Deserialize<'de> for RawReconnect {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawReconnect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "true, false, or a table like { initial = \"500ms\", max = \"30s\", jitter = \"off\" }",
                )
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<RawReconnect, E> {
                Ok(RawReconnect::Flag(b))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawReconnect, A::Error> {
                RawReconnectTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawReconnect::Table)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------
// Conversion (the helpers are in `convert`).

impl Profile {
    /// Reads and parses a profile file.
    pub fn load(path: &Path) -> Result<Profile, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|error| PlanError::Read {
            what: "profile",
            path: path.to_path_buf(),
            error,
        })?;
        Profile::parse(&text, path)
    }

    /// Parses profile text; `path` is used in messages and to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, PlanError> {
        let expanded = env::expand(text, path)?;
        let text: &str = &expanded;
        let raw: RawProfile = toml::from_str(text).map_err(|e| toml_error(&e, text, path))?;
        let cx = Ctx { path, text };

        let p = Profile {
            path: path.to_path_buf(),
            description: raw.description.map(|d| d.into_inner()),
            targets: cx.strings(&raw.targets, "targets"),
            connections: cx.count(&raw.connections, "connections")?,
            ramp: cx.duration(&raw.ramp, "ramp")?,
            hold: cx.duration(&raw.hold, "hold")?,
            ramp_down: cx.duration(&raw.ramp_down, "ramp_down")?,
            stages: cx.stages(&raw.stages)?,
            session_duration: cx.session_duration(&raw.session_duration)?,
            session_seed: cx.count(&raw.session_seed, "session_seed")?,
            arrival_rate: cx.arrival_rate(&raw.arrival_rate)?,
            max_open: cx.count(&raw.max_open, "max_open")?,
            threads: cx.count(&raw.threads, "threads")?,
            max_pending: cx.count(&raw.max_pending, "max_pending")?,
            connect_timeout: cx.duration(&raw.connect_timeout, "connect_timeout")?,
            handshake_timeout: cx.duration(&raw.handshake_timeout, "handshake_timeout")?,
            close_timeout: cx.duration(&raw.close_timeout, "close_timeout")?,
            close: cx.close(&raw.close)?,
            source_ips: cx.strings(&raw.source_ips, "source_ips"),
            origin: cx.string(&raw.origin, "origin"),
            headers: cx.strings(&raw.headers, "headers"),
            subprotocol: cx.string(&raw.subprotocol, "subprotocol"),
            user_agent: cx.string(&raw.user_agent, "user_agent"),
            compression: cx.string(&raw.compression, "compression"),
            max_frame: cx.size(&raw.max_frame, "max_frame")?,
            reconnect: cx.reconnect(&raw.reconnect)?,
            interval: cx.duration(&raw.interval, "interval")?,
            checkpoint: cx.duration(&raw.checkpoint, "checkpoint")?,
            rcvbuf: cx.size(&raw.rcvbuf, "rcvbuf")?,
            sndbuf: cx.size(&raw.sndbuf, "sndbuf")?,
            report_json: cx.path(&raw.report_json, "report_json"),
            report_csv: cx.path(&raw.report_csv, "report_csv"),
            report_html: cx.path(&raw.report_html, "report_html"),
            auth: cx.auth(&raw.auth)?,
            embedded_gateway: match &raw.embedded_gateway {
                None => ProfileEmbedded::default(),
                Some(e) => ProfileEmbedded {
                    max_connections: cx
                        .count(&e.max_connections, "embedded_gateway.max_connections")?,
                    echo_delay: cx.duration(&e.echo_delay, "embedded_gateway.echo_delay")?,
                },
            },
            ping_interval: cx.duration(&raw.ping_interval, "ping_interval")?,
            ping_timeout: cx.duration(&raw.ping_timeout, "ping_timeout")?,
            heartbeat_text: cx.string(&raw.heartbeat_text, "heartbeat_text"),
            heartbeat_interval: cx.duration(&raw.heartbeat_interval, "heartbeat_interval")?,
            heartbeat_expect: cx.string(&raw.heartbeat_expect, "heartbeat_expect"),
            heartbeat_timeout: cx.duration(&raw.heartbeat_timeout, "heartbeat_timeout")?,
            first_message: cx.message_source(&raw.first_message, "first_message"),
            first_message_expect: cx.string(&raw.first_message_expect, "first_message_expect"),
            message_rate: cx.rate(&raw.message_rate, "message_rate")?,
            message_size: cx.size(&raw.message_size, "message_size")?,
            message_text: cx.string(&raw.message_text, "message_text"),
            message_timeout: cx.duration(&raw.message_timeout, "message_timeout")?,
            message_burst: cx.string(&raw.message_burst, "message_burst"),
            disruption_threshold: cx.scalar(&raw.disruption_threshold, "disruption_threshold")?,
            gateway_drop_all_after: cx
                .duration(&raw.gateway_drop_all_after, "gateway_drop_all_after")?,
            gateway_drop_every: cx.string(&raw.gateway_drop_every, "gateway_drop_every"),
            gateway_stall_after: cx.string(&raw.gateway_stall_after, "gateway_stall_after"),
            publishers: cx.publishers(&raw.publishers)?,
            push_timestamp: cx.string(&raw.push_timestamp, "push_timestamp"),
            misbehave: cx.strings(&raw.misbehave, "misbehave"),
            data: cx.path(&raw.data, "data"),
            data_mode: cx.string(&raw.data_mode, "data_mode"),
            protocol: cx.string(&raw.protocol, "protocol"),
            subscribe: cx.strings(&raw.subscribe, "subscribe"),
            publish_topic: cx.string(&raw.publish_topic, "publish_topic"),
            namespace: cx.string(&raw.namespace, "namespace"),
            event: cx.string(&raw.event, "event"),
            replies: cx.strings(&raw.replies, "replies"),
            open: cx.strings(&raw.open, "open"),
            thresholds: cx.thresholds(&raw.thresholds)?,
            abort_on_fail: cx.boolean(&raw.abort_on_fail, "abort_on_fail"),
            allow_failures: cx.boolean(&raw.allow_failures, "allow_failures"),
            steps: cx.steps(&raw.steps)?,
            cool_down: cx.duration(&raw.cool_down, "cool_down")?,
            continue_on_fail: cx.boolean(&raw.continue_on_fail, "continue_on_fail"),
        };

        if p.steps.is_some() {
            if let Some(e) = foreign_key_error(path, text) {
                return Err(e);
            }
        } else if let Some(l) = &p.cool_down {
            return Err(l.origin.invalid(
                "'cool_down' only applies to a profile with 'steps' (a progressive profile); remove it or add steps",
            ));
        } else if let Some(l) = &p.continue_on_fail {
            return Err(l.origin.invalid(
                "'continue_on_fail' only applies to a profile with 'steps' (a progressive profile); remove it or add steps",
            ));
        }

        if let Some(stages) = &p.stages {
            let simple = [
                p.connections.as_ref().map(|l| &l.origin),
                p.ramp.as_ref().map(|l| &l.origin),
                p.hold.as_ref().map(|l| &l.origin),
                p.ramp_down.as_ref().map(|l| &l.origin),
            ];
            if let Some(first) = simple.into_iter().flatten().next() {
                return Err(PlanError::Conflict {
                    first: first.to_string(),
                    second: stages.origin.to_string(),
                    hint: "a profile gives either connections/ramp/hold/ramp_down or [[stages]]; \
                           remove one of them"
                        .into(),
                });
            }
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------------------------------
// Small parsers shared with the command line.

/// `graceful` or `reset`.
pub fn parse_close(s: &str) -> Result<CloseMode, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "graceful" => Ok(CloseMode::Graceful),
        "reset" => Ok(CloseMode::Reset),
        _ => Err(format!(
            "{s:?} is not a close mode (expected \"graceful\" or \"reset\")"
        )),
    }
}

/// `HS256`, `RS256` or `ES256` (case-insensitive).
pub fn parse_jwt_alg(s: &str) -> Result<JwtAlg, String> {
    match s.trim().to_ascii_uppercase().as_str() {
        "HS256" => Ok(JwtAlg::HS256),
        "RS256" => Ok(JwtAlg::RS256),
        "ES256" => Ok(JwtAlg::ES256),
        _ => Err(format!(
            "{s:?} is not a supported JWT algorithm (expected \"HS256\", \"RS256\" or \"ES256\")"
        )),
    }
}

/// `header` or `query:NAME`.
pub fn parse_jwt_in(s: &str) -> Result<JwtPlacement, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("header") {
        return Ok(JwtPlacement::Header);
    }
    if let Some(name) = t.strip_prefix("query:") {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if ok {
            return Ok(JwtPlacement::Query(name.to_string()));
        }
        return Err(format!(
            "{name:?} is not a usable query parameter name (use letters, digits, '-', '.', '_', '~'; e.g. \"query:token\")"
        ));
    }
    Err(format!(
        "{s:?} is not a JWT placement (expected \"header\" or \"query:NAME\", e.g. \"query:access_token\")"
    ))
}

/// A JSON object of claims.
pub fn parse_claims(s: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!(
            "{s:?} is JSON but not an object (expected e.g. '{{\"sub\":\"user-{{conn}}\",\"exp\":\"{{now+3600}}\"}}')"
        )),
        Err(e) => Err(format!(
            "{s:?} is not valid JSON: {e} (expected e.g. '{{\"sub\":\"user-{{conn}}\",\"exp\":\"{{now+3600}}\"}}')"
        )),
    }
}
