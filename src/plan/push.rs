//! Server-originated latency: who publishes timed messages ([`Publishers`], `--publishers`)
//! and where a pushed frame carries its own creation time ([`PushTimestamp`],
//! `--push-timestamp`).
//!
//! - `--publishers N` makes the connections numbered below N (the `{conn}` number) the only
//!   ones that send timed messages; `--publishers P%` picks that fraction, spread evenly over
//!   the connection numbers (with `20%`: 0, 5, 10, …). Everyone else only receives. Split
//!   over processes or agents, a count is shared out like the stage targets
//!   ([`Publishers::share`]), so the whole run has N publishers.
//! - `--push-timestamp json:PATH[:UNIT]` reads a JSON number (or a numeric string) at a
//!   top-level key or a dotted path (`json:ts`, `json:meta.sent_at`, `json:items.0.ts`) of a
//!   frame that starts with `{`; `re:REGEX[:UNIT]` takes capture group 1 of a regex. `UNIT` is
//!   `s`, `ms`, `us` or `ns` of the Unix epoch; without it the magnitude decides (≈1.7e9 s,
//!   1.7e12 ms, 1.7e15 µs, 1.7e18 ns today). A trailing `:s`, `:ms`, `:us` or `:ns` is always
//!   read as the unit, so a regex that itself ends that way needs an explicit unit after it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Slice;
use super::units;

/// Which connections send timed messages (`--publishers`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Publishers {
    /// The connections numbered `0..N`.
    Count(u64),
    /// This fraction (0–1] of the connection numbers, spread evenly.
    Fraction(f64),
}

impl Publishers {
    /// `N` (a count: `10`, `1k`) or `P%` (`20%`, `0.5%`; above 0, at most 100).
    pub fn parse(s: &str) -> Result<Publishers, String> {
        let t = s.trim();
        if let Some(pct) = t.strip_suffix('%') {
            let p: f64 = pct.trim().parse().map_err(|_| {
                format!("{s:?} is not a percentage (expected e.g. \"10%\" or a count like \"10\")")
            })?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "{s:?}: a percentage of publishers must be above 0% and at most 100%"
                ));
            }
            return Ok(Publishers::Fraction(p / 100.0));
        }
        units::parse_count(t)
            .map(Publishers::Count)
            .map_err(|e| format!("{e}, or a percentage like \"10%\""))
    }

    /// This process's part of the setting when it runs `slice` of the plan: a count is
    /// shared out like the stage targets (the parts add up to N); a fraction stays.
    pub fn share(self, slice: Slice) -> Publishers {
        match self {
            Publishers::Count(n) => Publishers::Count(slice.count(n as f64)),
            f => f,
        }
    }

    /// True when connection number `n` publishes.
    pub fn includes(self, n: u64) -> bool {
        match self {
            Publishers::Count(limit) => n < limit,
            Publishers::Fraction(f) if f >= 1.0 => true,
            Publishers::Fraction(f) => {
                // n is a publisher when the running quota steps up at it: ceil((n+1)f) >
                // ceil(nf). The epsilon keeps 5 × 0.2 from rounding up past 1.
                let quota = |k: u64| (k as f64 * f - 1e-9).ceil();
                quota(n + 1) > quota(n)
            }
        }
    }
}

impl fmt::Display for Publishers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Publishers::Count(n) => write!(f, "{n}"),
            Publishers::Fraction(x) => write!(f, "{}%", x * 100.0),
        }
    }
}

/// The unit of a pushed timestamp (of the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    S,
    Ms,
    Us,
    Ns,
}

impl TimeUnit {
    /// The unit a value of this magnitude most likely has today: seconds up to 1e11,
    /// milliseconds up to 1e14, microseconds up to 1e17, nanoseconds above.
    pub fn by_magnitude(v: f64) -> TimeUnit {
        let v = v.abs();
        if v < 1e11 {
            TimeUnit::S
        } else if v < 1e14 {
            TimeUnit::Ms
        } else if v < 1e17 {
            TimeUnit::Us
        } else {
            TimeUnit::Ns
        }
    }

    /// `v` of this unit in microseconds.
    pub fn to_us(self, v: f64) -> f64 {
        match self {
            TimeUnit::S => v * 1e6,
            TimeUnit::Ms => v * 1e3,
            TimeUnit::Us => v,
            TimeUnit::Ns => v / 1e3,
        }
    }
}

/// Where a pushed frame carries its creation time.
#[derive(Debug, Clone)]
pub enum TimestampSource {
    /// The path of keys (or array indexes) to a JSON number or numeric string.
    Json(Vec<String>),
    /// Capture group 1 of this regex.
    Regex(regex::bytes::Regex),
}

/// `--push-timestamp`: how to read the creation time out of a server-originated frame.
#[derive(Debug, Clone)]
pub struct PushTimestamp {
    /// The setting as written (what travels to agents and compares).
    pub src: String,
    pub source: TimestampSource,
    /// `None`: by magnitude ([`TimeUnit::by_magnitude`]).
    pub unit: Option<TimeUnit>,
}

impl PartialEq for PushTimestamp {
    fn eq(&self, o: &PushTimestamp) -> bool {
        self.src == o.src
    }
}

impl PushTimestamp {
    /// Parse `json:PATH[:UNIT]` or `re:REGEX[:UNIT]` (see the module docs).
    pub fn parse(s: &str) -> Result<PushTimestamp, String> {
        // A unit suffix counts only when something is left before it (`json:s` is the key
        // `s`).
        let has_body = |b: &str| {
            b.strip_prefix("json:")
                .or_else(|| b.strip_prefix("re:"))
                .is_some_and(|rest| !rest.is_empty())
        };
        let (body, unit) = [
            (":ms", TimeUnit::Ms),
            (":us", TimeUnit::Us),
            (":ns", TimeUnit::Ns),
            (":s", TimeUnit::S),
        ]
        .into_iter()
        .find_map(|(suffix, u)| {
            s.strip_suffix(suffix)
                .filter(|b| has_body(b))
                .map(|b| (b, Some(u)))
        })
        .unwrap_or((s, None));
        let source = if let Some(path) = body.strip_prefix("json:") {
            let keys: Vec<String> = path.split('.').map(str::to_string).collect();
            if path.is_empty() || keys.iter().any(String::is_empty) {
                return Err(format!(
                    "{s:?}: the JSON path is empty or has an empty part; give a key like json:ts or a dotted path like json:meta.ts"
                ));
            }
            TimestampSource::Json(keys)
        } else if let Some(re) = body.strip_prefix("re:") {
            let regex = regex::bytes::Regex::new(re)
                .map_err(|e| format!("{s:?}: not a valid regex: {e}"))?;
            if regex.captures_len() < 2 {
                return Err(format!(
                    "{s:?}: the regex needs a capture group around the timestamp, e.g. re:\"ts\":([0-9.]+)"
                ));
            }
            TimestampSource::Regex(regex)
        } else {
            return Err(format!(
                "{s:?}: expected json:PATH or re:REGEX, optionally followed by :s, :ms, :us or :ns (e.g. json:ts, re:time=([0-9]+):ms)"
            ));
        };
        Ok(PushTimestamp {
            src: s.to_string(),
            source,
            unit,
        })
    }

    /// The creation time carried by `frame`, in Unix microseconds; `None` when the frame
    /// does not carry one (not JSON, no such key, no match, not a number).
    pub fn read_unix_us(&self, frame: &[u8]) -> Option<i64> {
        let v = match &self.source {
            TimestampSource::Json(keys) => json_number(frame, keys)?,
            TimestampSource::Regex(re) => {
                let caps = re.captures(frame)?;
                std::str::from_utf8(caps.get(1)?.as_bytes())
                    .ok()?
                    .trim()
                    .parse::<f64>()
                    .ok()?
            }
        };
        if !v.is_finite() {
            return None;
        }
        let unit = self.unit.unwrap_or_else(|| TimeUnit::by_magnitude(v));
        Some(unit.to_us(v).round() as i64)
    }
}

/// The number at `keys` of a frame that is a JSON object (leading whitespace allowed).
fn json_number(frame: &[u8], keys: &[String]) -> Option<f64> {
    let start = frame.iter().position(|b| !b.is_ascii_whitespace())?;
    if frame[start] != b'{' {
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&frame[start..]).ok()?;
    let mut at = &doc;
    for k in keys {
        at = match at {
            serde_json::Value::Object(m) => m.get(k)?,
            serde_json::Value::Array(a) => a.get(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match at {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Serialize for PushTimestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.src)
    }
}

impl<'de> Deserialize<'de> for PushTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PushTimestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_parse_and_pick() {
        assert_eq!(Publishers::parse("10").unwrap(), Publishers::Count(10));
        assert_eq!(Publishers::parse("1k").unwrap(), Publishers::Count(1000));
        assert_eq!(Publishers::parse("0").unwrap(), Publishers::Count(0));
        assert_eq!(
            Publishers::parse("25%").unwrap(),
            Publishers::Fraction(0.25)
        );
        assert!(Publishers::parse("0%").is_err());
        assert!(Publishers::parse("101%").is_err());
        assert!(Publishers::parse("ten").unwrap_err().contains("10%"));
        let c = Publishers::Count(2);
        assert!(c.includes(0) && c.includes(1) && !c.includes(2));
        let f = Publishers::Fraction(0.2);
        let picked: Vec<u64> = (0..20).filter(|n| f.includes(*n)).collect();
        assert_eq!(picked, [0, 5, 10, 15]);
        let third = Publishers::Fraction(1.0 / 3.0);
        assert_eq!((0..3000).filter(|n| third.includes(*n)).count(), 1000);
        assert!((0..50).all(|n| Publishers::Fraction(1.0).includes(n)));
        // A count is shared out over slices; the parts add up.
        let parts: u64 = (0..3)
            .map(|i| match Publishers::Count(10).share(Slice::nth(i, 3)) {
                Publishers::Count(n) => n,
                _ => unreachable!(),
            })
            .sum();
        assert_eq!(parts, 10);
        assert_eq!(Publishers::Fraction(0.5).to_string(), "50%");
    }

    #[test]
    fn json_timestamps_by_magnitude_and_unit() {
        let p = PushTimestamp::parse("json:ts").unwrap();
        let f = br#"{"ts":1733097600123.456,"seq":1,"pad":"xx"}"#;
        assert_eq!(p.read_unix_us(f), Some(1_733_097_600_123_456));
        assert_eq!(
            p.read_unix_us(br#"  {"ts":1733097600}"#),
            Some(1_733_097_600_000_000)
        );
        assert_eq!(
            p.read_unix_us(br#"{"ts":"1733097600123456"}"#),
            Some(1_733_097_600_123_456)
        );
        assert_eq!(
            p.read_unix_us(br#"{"ts":1733097600123456789}"#)
                .map(|v| v / 1000),
            Some(1_733_097_600_123)
        );
        assert_eq!(p.read_unix_us(b"[1,2]"), None);
        assert_eq!(p.read_unix_us(br#"{"other":1}"#), None);
        assert_eq!(p.read_unix_us(br#"{"ts":"soon"}"#), None);
        assert_eq!(p.read_unix_us(b"{not json"), None);
        let nested = PushTimestamp::parse("json:meta.times.1:ms").unwrap();
        assert_eq!(nested.unit, Some(TimeUnit::Ms));
        assert_eq!(
            nested.read_unix_us(br#"{"meta":{"times":[0,5.5]}}"#),
            Some(5500)
        );
        assert!(PushTimestamp::parse("json:").is_err());
        assert!(PushTimestamp::parse("json:a..b").is_err());
        assert!(PushTimestamp::parse("ts").is_err());
        // A key that looks like a unit is a key.
        let s = PushTimestamp::parse("json:s").unwrap();
        assert_eq!(s.unit, None);
        assert_eq!(
            s.read_unix_us(br#"{"s":1733097600}"#),
            Some(1_733_097_600_000_000)
        );
    }

    #[test]
    fn regex_timestamps() {
        let p = PushTimestamp::parse(r"re:t=(\d+):s").unwrap();
        assert_eq!(p.unit, Some(TimeUnit::S));
        assert_eq!(p.read_unix_us(b"tick t=12 x"), Some(12_000_000));
        assert_eq!(p.read_unix_us(b"nothing"), None);
        let p = PushTimestamp::parse(r"re:@(\d+\.\d+)").unwrap();
        assert_eq!(
            p.read_unix_us(b"price 5 @1733097600.5"),
            Some(1_733_097_600_500_000)
        );
        assert!(
            PushTimestamp::parse(r"re:\d+")
                .unwrap_err()
                .contains("capture group")
        );
        assert!(PushTimestamp::parse("re:(").is_err());
        // Travels as its text.
        let json = serde_json::to_string(&p).unwrap();
        let back: PushTimestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}
