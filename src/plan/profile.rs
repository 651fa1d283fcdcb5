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
//! `string` helpers; then merge it with its flag in `build.rs`.
//!
//! Relative paths in a profile (`report_json`, `report_csv`, `jwt_key_file`,
//! `jwt_secret_file`, `first_message = "@file"`, `steps`) are resolved against the profile's
//! directory, so a profile can be run from anywhere.
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

mod locate;
mod traffic;

pub use locate::line_col;
use locate::toml_error;
pub use traffic::{MessageSource, PROGRESSIVE_KEYS};
use traffic::{RawThresholds, foreign_key_error};

use super::error::{Origin, PlanError};
use super::threshold::Threshold;
use super::{CloseMode, JwtAlg, JwtPlacement, Reconnect, Secret, Stage};
use crate::plan::units::{self, UnitError};

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
    pub stages: Option<Located<Vec<Stage>>>,
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
    pub max_frame: Option<Located<u64>>,
    /// `Some(None)`: `reconnect = false`; `Some(Some(_))`: on, with defaults filled in.
    pub reconnect: Option<Located<Option<Reconnect>>>,
    pub interval: Option<Located<Duration>>,
    pub rcvbuf: Option<Located<u64>>,
    pub sndbuf: Option<Located<u64>>,
    /// Resolved against the profile's directory.
    pub report_json: Option<Located<PathBuf>>,
    /// Resolved against the profile's directory.
    pub report_csv: Option<Located<PathBuf>>,
    pub auth: ProfileAuth,
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
    max_frame: Option<Spanned<Value>>,
    reconnect: Option<Spanned<RawReconnect>>,
    interval: Option<Spanned<Value>>,
    rcvbuf: Option<Spanned<Value>>,
    sndbuf: Option<Spanned<Value>>,
    report_json: Option<Spanned<String>>,
    report_csv: Option<Spanned<String>>,
    auth: Option<RawAuth>,
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
}

impl<'de> Deserialize<'de> for RawReconnect {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawReconnect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, or a table like { initial = \"500ms\", max = \"30s\" }")
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
// Conversion.

/// Converts spans to origins and raw values to typed ones, for one file.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn origin(&self, span: std::ops::Range<usize>, key: &str) -> Origin {
        let (line, col) = line_col(self.text, span.start);
        Origin::Profile {
            path: self.path.to_path_buf(),
            line,
            col,
            key: key.to_string(),
        }
    }

    fn at<T>(&self, v: &Spanned<T>, key: &str) -> Origin {
        self.origin(v.span(), key)
    }

    fn string(&self, v: &Option<Spanned<String>>, key: &str) -> Option<Located<String>> {
        v.as_ref()
            .map(|s| Located::new(s.get_ref().clone(), self.at(s, key)))
    }

    fn strings(&self, v: &Option<Vec<Spanned<String>>>, key: &str) -> Vec<Located<String>> {
        v.iter()
            .flatten()
            .map(|s| Located::new(s.get_ref().clone(), self.at(s, key)))
            .collect()
    }

    fn path(&self, v: &Option<Spanned<String>>, key: &str) -> Option<Located<PathBuf>> {
        v.as_ref().map(|s| {
            let p = Path::new(s.get_ref());
            let resolved = match self.path.parent() {
                Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
                _ => p.to_path_buf(),
            };
            Located::new(resolved, self.at(s, key))
        })
    }

    /// Integer, or a string parsed by `parse`.
    fn unit<T>(
        &self,
        v: &Option<Spanned<Value>>,
        key: &str,
        what: &str,
        parse: fn(&str) -> Result<T, UnitError>,
        from_int: fn(i64) -> Result<T, String>,
    ) -> Result<Option<Located<T>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, key);
        let value = match v.get_ref() {
            Value::String(s) => parse(s).map_err(|e| origin.invalid(e.to_string()))?,
            Value::Integer(i) => from_int(*i).map_err(|m| origin.invalid(m))?,
            other => {
                return Err(origin.invalid(format!("expected {what}, found {}", other.type_str())));
            }
        };
        Ok(Some(Located::new(value, origin)))
    }

    fn count(
        &self,
        v: &Option<Spanned<Value>>,
        key: &str,
    ) -> Result<Option<Located<u64>>, PlanError> {
        self.unit(
            v,
            key,
            "an integer or a string like \"18k\"",
            units::parse_count,
            non_negative,
        )
    }

    fn size(
        &self,
        v: &Option<Spanned<Value>>,
        key: &str,
    ) -> Result<Option<Located<u64>>, PlanError> {
        self.unit(
            v,
            key,
            "a byte count or a string like \"64KiB\", \"16MiB\"",
            units::parse_size,
            non_negative,
        )
    }

    fn duration(
        &self,
        v: &Option<Spanned<Value>>,
        key: &str,
    ) -> Result<Option<Located<Duration>>, PlanError> {
        self.unit(
            v,
            key,
            "a duration string like \"10s\"",
            units::parse_duration,
            |i| {
                if i == 0 {
                    Ok(Duration::ZERO)
                } else {
                    Err(format!(
                        "{i} has no unit; write durations as strings, e.g. \"{i}s\" or \"{i}ms\""
                    ))
                }
            },
        )
    }

    fn stages(
        &self,
        v: &Option<Spanned<Vec<RawStage>>>,
    ) -> Result<Option<Located<Vec<Stage>>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, "stages");
        if v.get_ref().is_empty() {
            return Err(origin.invalid(
                "the stage list is empty; add [[stages]] tables with duration and target, or use connections",
            ));
        }
        let mut out = Vec::new();
        for (i, s) in v.get_ref().iter().enumerate() {
            let duration = self
                .duration(&Some(s.duration.clone()), &format!("stages[{i}].duration"))?
                .map(|l| l.value)
                .unwrap_or_default();
            let target = self
                .count(&Some(s.target.clone()), &format!("stages[{i}].target"))?
                .map(|l| l.value)
                .unwrap_or_default();
            out.push(Stage { duration, target });
        }
        Ok(Some(Located::new(out, origin)))
    }

    fn reconnect(
        &self,
        v: &Option<Spanned<RawReconnect>>,
    ) -> Result<Option<Located<Option<Reconnect>>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, "reconnect");
        let value = match v.get_ref() {
            RawReconnect::Flag(false) => None,
            RawReconnect::Flag(true) => Some(Reconnect::default()),
            RawReconnect::Table(t) => {
                let mut r = Reconnect::default();
                if let Some(d) = self.duration(&t.initial, "reconnect.initial")? {
                    r.initial = d.value;
                }
                if let Some(d) = self.duration(&t.max, "reconnect.max")? {
                    r.max = d.value;
                }
                Some(r)
            }
        };
        Ok(Some(Located::new(value, origin)))
    }

    fn close(&self, v: &Option<Spanned<String>>) -> Result<Option<Located<CloseMode>>, PlanError> {
        let Some(s) = self.string(v, "close") else {
            return Ok(None);
        };
        let mode = parse_close(&s.value).map_err(|m| s.origin.invalid(m))?;
        Ok(Some(Located::new(mode, s.origin)))
    }

    fn auth(&self, raw: &Option<RawAuth>) -> Result<ProfileAuth, PlanError> {
        let Some(a) = raw else {
            return Ok(ProfileAuth::default());
        };
        let secret = |v: &Option<Spanned<String>>, key: &str| {
            self.string(v, key)
                .map(|l| Located::new(Secret(l.value), l.origin))
        };
        let jwt_alg = match self.string(&a.jwt_alg, "auth.jwt_alg") {
            None => None,
            Some(l) => {
                let alg = parse_jwt_alg(&l.value).map_err(|m| l.origin.invalid(m))?;
                Some(Located::new(alg, l.origin))
            }
        };
        let jwt_in = match self.string(&a.jwt_in, "auth.jwt_in") {
            None => None,
            Some(l) => {
                let p = parse_jwt_in(&l.value).map_err(|m| l.origin.invalid(m))?;
                Some(Located::new(p, l.origin))
            }
        };
        let jwt_claims = match &a.jwt_claims {
            None => None,
            Some(v) => {
                let origin = self.at(v, "auth.jwt_claims");
                let json = match v.get_ref() {
                    Value::Table(_) => toml_to_json(v.get_ref()),
                    Value::String(s) => parse_claims(s).map_err(|m| origin.invalid(m))?,
                    other => {
                        return Err(origin.invalid(format!(
                            "expected a table like {{ sub = \"user-{{conn}}\", exp = \"{{now+3600}}\" }}, found {}",
                            other.type_str()
                        )));
                    }
                };
                Some(Located::new(json, origin))
            }
        };
        Ok(ProfileAuth {
            token: secret(&a.token, "auth.token"),
            jwt_secret: secret(&a.jwt_secret, "auth.jwt_secret"),
            jwt_secret_file: self.path(&a.jwt_secret_file, "auth.jwt_secret_file"),
            jwt_key_file: self.path(&a.jwt_key_file, "auth.jwt_key_file"),
            jwt_alg,
            jwt_claims,
            jwt_in,
        })
    }
}

fn non_negative(i: i64) -> Result<u64, String> {
    u64::try_from(i).map_err(|_| format!("{i} is negative"))
}

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
            max_frame: cx.size(&raw.max_frame, "max_frame")?,
            reconnect: cx.reconnect(&raw.reconnect)?,
            interval: cx.duration(&raw.interval, "interval")?,
            rcvbuf: cx.size(&raw.rcvbuf, "rcvbuf")?,
            sndbuf: cx.size(&raw.sndbuf, "sndbuf")?,
            report_json: cx.path(&raw.report_json, "report_json"),
            report_csv: cx.path(&raw.report_csv, "report_csv"),
            auth: cx.auth(&raw.auth)?,
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

fn toml_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::String(s) => J::String(s.clone()),
        Value::Integer(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Boolean(b) => J::Bool(*b),
        Value::Datetime(d) => J::String(d.to_string()),
        Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
