//! Conversion of the raw serde values into located ones: [`Ctx`] turns spans into
//! [`Origin`]s (`file:line:col` and key) and raw values into typed ones — counts, sizes and
//! durations with their units, paths resolved against the profile's directory, stages,
//! `reconnect`, `close` and the `[auth]` table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Spanned, Value};

use super::{
    Located, ProfileAuth, RawAuth, RawReconnect, RawStage, line_col, parse_claims, parse_close,
    parse_jwt_alg, parse_jwt_in,
};
use crate::plan::churn::{
    SessionDuration, StageArg, StageLoad, parse_arrival_rate, parse_session_duration,
};
use crate::plan::error::{Origin, PlanError};
use crate::plan::units::{self, UnitError};
use crate::plan::{CloseMode, Reconnect, Secret};

/// Converts spans to origins and raw values to typed ones, for one file.
pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
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

    pub(super) fn at<T>(&self, v: &Spanned<T>, key: &str) -> Origin {
        self.origin(v.span(), key)
    }

    pub(super) fn string(&self, v: &Option<Spanned<String>>, key: &str) -> Option<Located<String>> {
        v.as_ref()
            .map(|s| Located::new(s.get_ref().clone(), self.at(s, key)))
    }

    pub(super) fn strings(
        &self,
        v: &Option<Vec<Spanned<String>>>,
        key: &str,
    ) -> Vec<Located<String>> {
        v.iter()
            .flatten()
            .map(|s| Located::new(s.get_ref().clone(), self.at(s, key)))
            .collect()
    }

    pub(super) fn path(&self, v: &Option<Spanned<String>>, key: &str) -> Option<Located<PathBuf>> {
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

    pub(super) fn count(
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

    pub(super) fn size(
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

    pub(super) fn duration(
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

    /// A number, boolean or string, as text (parsed later by the setting's own parser).
    pub(super) fn scalar(
        &self,
        v: &Option<Spanned<Value>>,
        key: &str,
    ) -> Result<Option<Located<String>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, key);
        let text = match v.get_ref() {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Boolean(true) => "on".into(),
            Value::Boolean(false) => "off".into(),
            other => {
                return Err(origin.invalid(format!(
                    "expected a number or a string, found {}",
                    other.type_str()
                )));
            }
        };
        Ok(Some(Located::new(text, origin)))
    }

    pub(super) fn stages(
        &self,
        v: &Option<Spanned<Vec<RawStage>>>,
    ) -> Result<Option<Located<Vec<StageArg>>>, PlanError> {
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
            let key = format!("stages[{i}].target");
            let load = match s.target.get_ref() {
                // `target = "500/s"`: a rate stage (see `plan::churn`).
                Value::String(t) if t.contains('/') => StageLoad::Rate(
                    parse_arrival_rate(t)
                        .map_err(|e| self.at(&s.target, &key).invalid(e.to_string()))?,
                ),
                _ => StageLoad::Count(
                    self.count(&Some(s.target.clone()), &key)?
                        .map(|l| l.value)
                        .unwrap_or_default(),
                ),
            };
            out.push(StageArg { duration, load });
        }
        Ok(Some(Located::new(out, origin)))
    }

    /// `session_duration = "exp:2s"`.
    pub(super) fn session_duration(
        &self,
        v: &Option<Spanned<String>>,
    ) -> Result<Option<Located<SessionDuration>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, "session_duration");
        let d = parse_session_duration(v.get_ref()).map_err(|e| origin.invalid(e.to_string()))?;
        Ok(Some(Located::new(d, origin)))
    }

    /// `arrival_rate = "500/s"` (or a number of connections per second).
    pub(super) fn arrival_rate(
        &self,
        v: &Option<Spanned<Value>>,
    ) -> Result<Option<Located<f64>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, "arrival_rate");
        let rate = match v.get_ref() {
            Value::String(t) => parse_arrival_rate(t).map_err(|e| origin.invalid(e.to_string()))?,
            Value::Integer(i) if *i >= 0 => *i as f64,
            Value::Float(f) if f.is_finite() && *f >= 0.0 => *f,
            other => {
                return Err(origin.invalid(format!(
                    "expected a rate like \"500/s\" or \"30k/m\", found {other}"
                )));
            }
        };
        Ok(Some(Located::new(rate, origin)))
    }

    pub(super) fn reconnect(
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
                if let Some(j) = self.scalar(&t.jitter, "reconnect.jitter")? {
                    r.jitter = crate::plan::recovery::parse_jitter(&j.value)
                        .map_err(|e| j.origin.invalid(e))?;
                }
                Some(r)
            }
        };
        Ok(Some(Located::new(value, origin)))
    }

    pub(super) fn close(
        &self,
        v: &Option<Spanned<String>>,
    ) -> Result<Option<Located<CloseMode>>, PlanError> {
        let Some(s) = self.string(v, "close") else {
            return Ok(None);
        };
        let mode = parse_close(&s.value).map_err(|m| s.origin.invalid(m))?;
        Ok(Some(Located::new(mode, s.origin)))
    }

    pub(super) fn auth(&self, raw: &Option<RawAuth>) -> Result<ProfileAuth, PlanError> {
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
