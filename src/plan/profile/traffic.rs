//! Profile keys for traffic on held connections, thresholds and progressive steps: the raw
//! serde shapes that need custom handling and their conversion into located values.
//!
//! - `message_rate` is a rate string (`"10/s"`, `"1/10s"`) or a number of messages per
//!   second (`0.5`); `0` turns messages off.
//! - `first_message = "@file"` names a file relative to the profile's directory; any other
//!   string is the text itself (see [`MessageSource`]).
//! - `[thresholds]` maps a metric to `"OP VALUE"` or to a list of them, in document order:
//!   `"message_rtt_ms.p99" = "<200"`, `dropped = ["==0"]`.
//! - `steps = ["quick.toml", …]` (paths relative to the profile's directory) makes a
//!   progressive profile; see `crate::plan::build::progressive`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::{Spanned, Value};

use super::{Ctx, Located};
use crate::plan::error::PlanError;
use crate::plan::threshold::{self, Threshold};
use crate::plan::units;

/// Where the first message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageSource {
    /// Text as written; escapes (`\r`, `\n`, `\t`, `\\`, `\@`) not yet resolved.
    Text(String),
    /// `@FILE`: the file's bytes, sent as they are (path already resolved).
    File(PathBuf),
}

impl MessageSource {
    /// `@path` is a file (relative paths resolved against `base`, when given); anything
    /// else is text.
    pub fn parse(s: &str, base: Option<&Path>) -> MessageSource {
        match s.strip_prefix('@') {
            Some(p) => {
                let p = Path::new(p);
                MessageSource::File(match base {
                    Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
                    _ => p.to_path_buf(),
                })
            }
            None => MessageSource::Text(s.to_string()),
        }
    }
}

/// `[thresholds]`: entries in document order.
pub(super) struct RawThresholds(pub Vec<(String, Spanned<Value>)>);

impl<'de> Deserialize<'de> for RawThresholds {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawThresholds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table like { connect_success_rate = \">=0.95\" }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawThresholds, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Spanned<Value>>()? {
                    out.push((k, v));
                }
                // The deserializer hands keys over sorted; restore the document order.
                out.sort_by_key(|(_, v)| v.span().start);
                Ok(RawThresholds(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Ctx<'_> {
    /// A rate: string (`"10/s"`, `"0"`) or number (per second).
    pub(super) fn rate(
        &self,
        v: &Option<Spanned<Value>>,
        key: &str,
    ) -> Result<Option<Located<f64>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, key);
        let value = match v.get_ref() {
            Value::String(s) if s.trim() == "0" => 0.0,
            Value::String(s) => units::parse_rate(s).map_err(|e| origin.invalid(e.to_string()))?,
            Value::Integer(i) if *i >= 0 => *i as f64,
            Value::Float(f) if f.is_finite() && *f >= 0.0 => *f,
            Value::Integer(_) | Value::Float(_) => {
                return Err(origin.invalid(
                    "a rate must be a non-negative number of messages per second, e.g. 0.5 or \"1/10s\"",
                ));
            }
            other => {
                return Err(origin.invalid(format!(
                    "expected a rate like \"10/s\" or \"1/10s\" (or a number per second), found {}",
                    other.type_str()
                )));
            }
        };
        Ok(Some(Located::new(value, origin)))
    }

    /// `publishers`: a count (integer or string, `"1k"`) or a percentage string (`"10%"`).
    pub(super) fn publishers(
        &self,
        v: &Option<Spanned<Value>>,
    ) -> Result<Option<Located<crate::plan::push::Publishers>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, "publishers");
        let value = match v.get_ref() {
            Value::String(s) => crate::plan::push::Publishers::parse(s),
            Value::Integer(i) if *i >= 0 => Ok(crate::plan::push::Publishers::Count(*i as u64)),
            _ => Err("expected a count like 10 or a percentage like \"10%\"".to_string()),
        }
        .map_err(|m| origin.invalid(m))?;
        Ok(Some(Located::new(value, origin)))
    }

    pub(super) fn boolean(&self, v: &Option<Spanned<bool>>, key: &str) -> Option<Located<bool>> {
        v.as_ref()
            .map(|b| Located::new(*b.get_ref(), self.at(b, key)))
    }

    /// `first_message`: `@file` relative to the profile's directory, or text.
    pub(super) fn message_source(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
    ) -> Option<Located<MessageSource>> {
        self.string(v, key)
            .map(|l| Located::new(MessageSource::parse(&l.value, self.path.parent()), l.origin))
    }

    /// The `[thresholds]` table, in document order.
    pub(super) fn thresholds(
        &self,
        raw: &Option<RawThresholds>,
    ) -> Result<Vec<Located<Threshold>>, PlanError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (metric, v) in &raw.0 {
            let key = format!("thresholds.{metric}");
            let origin = self.at(v, &key);
            let conditions: Vec<&str> = match v.get_ref() {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| i.as_str())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        origin.invalid("every entry of the list must be a string like \"<200\"")
                    })?,
                _ => {
                    return Err(origin.invalid(format!(
                        "expected a condition string like \"<200\" or \">=0.95\" (or a list of them), found {}",
                        v.get_ref().type_str()
                    )));
                }
            };
            for cond in conditions {
                let cond = cond.trim();
                if !cond.starts_with(['<', '>', '=', '!']) {
                    return Err(origin.invalid(format!(
                        "{cond:?} does not start with an operator; write the condition as \"OP VALUE\", e.g. \"<200\" or \">=0.95\" (OP is one of < <= > >= == !=)"
                    )));
                }
                let t = threshold::parse(&format!("{metric}{cond}"))
                    .map_err(|e| origin.invalid(e.to_string()))?;
                out.push(Located::new(t, origin.clone()));
            }
        }
        Ok(out)
    }

    /// `steps = [...]`: step profile paths, resolved against the profile's directory.
    pub(super) fn steps(
        &self,
        v: &Option<Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Option<Located<Vec<Located<PathBuf>>>>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let origin = self.at(v, "steps");
        if v.get_ref().is_empty() {
            return Err(origin.invalid(
                "the step list is empty; name the step profiles, e.g. steps = [\"quick.toml\", \"medium.toml\"]",
            ));
        }
        let steps = v
            .get_ref()
            .iter()
            .map(|s| {
                self.path(&Some(s.clone()), "steps")
                    .expect("a value was given")
            })
            .collect();
        Ok(Some(Located::new(steps, origin)))
    }
}

/// Keys a progressive profile (one with `steps`) may have; everything else belongs in the
/// step profiles.
pub const PROGRESSIVE_KEYS: &[&str] = &[
    "description",
    "steps",
    "cool_down",
    "continue_on_fail",
    "report_json",
    "report_csv",
    "report_html",
];

/// The first top-level key or table of `text` that a progressive profile may not have, with
/// its 1-based line and column.
pub(super) fn first_foreign_key(text: &str) -> Option<(String, usize, usize)> {
    let mut in_table: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let col = line.len() - t.len() + 1;
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches(['"', '\''])
                .to_string();
            let top = name.split('.').next().unwrap_or_default().to_string();
            if !PROGRESSIVE_KEYS.contains(&top.as_str()) {
                return Some((top, i + 1, col));
            }
            in_table = Some(top);
            continue;
        }
        if in_table.is_some() {
            continue;
        }
        let Some((key, _)) = t.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        let top = key.split('.').next().unwrap_or_default();
        if !key.is_empty() && !PROGRESSIVE_KEYS.contains(&top) {
            return Some((top.to_string(), i + 1, col));
        }
    }
    None
}

/// The error for a key a progressive profile may not have.
pub(super) fn foreign_key_error(path: &Path, text: &str) -> Option<PlanError> {
    let (key, line, col) = first_foreign_key(text)?;
    Some(PlanError::Profile {
        at: format!("{}:{line}:{col}", path.display()),
        message: format!(
            "'{key}' cannot be set in a profile with 'steps'; a progressive profile only takes {} — \
             put '{key}' in the step profiles, or pass it as a flag (flags apply to every step)",
            PROGRESSIVE_KEYS.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_keys_are_found() {
        assert_eq!(first_foreign_key("steps = []\ncool_down = \"1s\"\n"), None);
        assert_eq!(
            first_foreign_key("steps = []\n  connections = 5\n"),
            Some(("connections".into(), 2, 3))
        );
        assert_eq!(
            first_foreign_key("steps = []\n[thresholds]\ndropped = \"==0\"\n"),
            Some(("thresholds".into(), 2, 1))
        );
    }

    #[test]
    fn message_source() {
        assert_eq!(
            MessageSource::parse("@login.json", Some(Path::new("profiles"))),
            MessageSource::File(PathBuf::from("profiles/login.json"))
        );
        assert_eq!(
            MessageSource::parse("@/abs", Some(Path::new("profiles"))),
            MessageSource::File(PathBuf::from("/abs"))
        );
        assert_eq!(
            MessageSource::parse("hi", None),
            MessageSource::Text("hi".into())
        );
    }
}
