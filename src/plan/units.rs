//! Human-unit parsers shared by the command line (as clap `value_parser`s) and profiles.
//!
//! | Kind     | Examples                         | Meaning                                             |
//! |----------|----------------------------------|-----------------------------------------------------|
//! | count    | `18000`, `18_000`, `18k`, `1.5k`, `1M` | `k`/`K` = 1 000, `M` = 1 000 000, `G` = 10⁹; a decimal is allowed when the result is whole |
//! | duration | `10s`, `1m30s`, `500ms`, `0`     | [humantime](https://docs.rs/humantime) syntax, plus a bare `0`                 |
//! | size     | `1024`, `64k`, `64KiB`, `16MiB`  | bytes; **`k`/`M`/`G` (and `kB`/`MB`/`GB`) are powers of 1000, `KiB`/`MiB`/`GiB` (or `Ki`/`Mi`/`Gi`) powers of 1024**; case-insensitive |
//! | stage    | `1m:10000`, `30s:10k`            | `DURATION:COUNT`, k6 style                           |
//! | rate     | `10/s`, `0.5/s`, `1/10s`, `600/m`| events per second (`N/DURATION`; a bare unit means 1 of it) |
//!
//! Every parser returns a [`UnitError`] whose message names the input, what is wrong with it
//! and an example of valid input, e.g.
//! `"ten" is not a duration: … (expected e.g. "10s", "1m30s", "500ms")`.
//! Parsers never go through `f64` for counts and sizes, so `1.5k` is exactly 1500 and
//! `1.2345k` is rejected rather than rounded.

use std::fmt;
use std::time::Duration;

use crate::plan::Stage;

/// A human-unit value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct UnitError {
    /// The input as given.
    pub input: String,
    /// What the input should have been, with an article: "a duration", "a count".
    pub expected: &'static str,
    /// Why it is not (optional detail).
    pub detail: Option<String>,
    /// Valid examples, already quoted: `"10s", "1m30s"`.
    pub examples: &'static str,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not {}", self.input, self.expected)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        write!(f, " (expected e.g. {})", self.examples)
    }
}

const COUNT: (&str, &str) = ("a count", r#""18000", "18k", "1.5k", "1M""#);
const DURATION: (&str, &str) = ("a duration", r#""10s", "1m30s", "500ms""#);
const SIZE: (&str, &str) = ("a size", r#""1024", "64k", "64KiB", "16MiB""#);
const STAGE: (&str, &str) = ("a stage", r#""1m:10000", "30s:10k""#);
const RATE: (&str, &str) = ("a rate", r#""10/s", "0.5/s", "1/10s", "600/m""#);

fn err(input: &str, kind: (&'static str, &'static str), detail: Option<String>) -> UnitError {
    UnitError {
        input: input.to_string(),
        expected: kind.0,
        detail,
        examples: kind.1,
    }
}

/// A non-negative decimal number held exactly: `digits / 10^scale`.
struct Decimal {
    digits: u128,
    scale: u32,
}

/// Parses `123`, `1_000`, `1.5` exactly. `None` on anything else (signs, exponents, empty).
fn parse_decimal(s: &str) -> Option<Decimal> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let int: String = int.chars().filter(|&c| c != '_').collect();
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = frac.unwrap_or("");
    if s.contains('.') && frac.is_empty() {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 18 {
        return None;
    }
    let mut digits: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        digits = digits.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    Some(Decimal {
        digits,
        scale: frac.len() as u32,
    })
}

/// `number * multiplier`, exactly; `Err(detail)` when it is not whole or too large.
fn scale_whole(num: &str, multiplier: u64) -> Result<u64, String> {
    let d = parse_decimal(num).ok_or_else(|| format!("{num:?} is not a number"))?;
    let div = 10u128.pow(d.scale);
    let product = d
        .digits
        .checked_mul(u128::from(multiplier))
        .ok_or("too large")?;
    if product % div != 0 {
        return Err("not a whole number".into());
    }
    u64::try_from(product / div).map_err(|_| "too large".into())
}

/// Splits `"1.5kB"` into `("1.5", "kB")`.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim_start())
}

/// A whole count: `18000`, `18_000`, `18k`, `1.5k` (=1500), `1M`, `2G`.
///
/// Suffixes: `k`/`K` = 1 000, `M` = 1 000 000, `G` = 1 000 000 000. A decimal is allowed only
/// when the result is a whole number (`1.2345k` is an error).
pub fn parse_count(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(err(
            s,
            COUNT,
            Some("must be positive (a count of connections, threads, …)".into()),
        ));
    }
    let (num, suffix) = split_number(t);
    if num.is_empty() {
        return Err(err(s, COUNT, None));
    }
    let mult = match suffix {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "m" => {
            return Err(err(
                s,
                COUNT,
                Some("use \"M\" for a million (\"m\" is ambiguous)".into()),
            ));
        }
        other => {
            return Err(err(
                s,
                COUNT,
                Some(format!("unknown suffix {other:?} (use k, M or G)")),
            ));
        }
    };
    scale_whole(num, mult).map_err(|d| err(s, COUNT, Some(d)))
}

/// A duration in humantime syntax (`10s`, `1m30s`, `500ms`, `2h`), or a bare `0`.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(err(s, DURATION, Some("empty".into())));
    }
    if t.bytes().all(|b| b == b'0') {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(t).map_err(|e| {
        let detail = if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            "a unit is missing".to_string()
        } else {
            e.to_string()
        };
        err(s, DURATION, Some(detail))
    })
}

/// A byte size: `1024`, `64k` (64 000), `64KiB` (65 536), `16MiB`, `1.5MB`.
///
/// `k`/`kB`, `M`/`MB`, `G`/`GB`, `T`/`TB` are powers of 1000; `Ki`/`KiB`, `Mi`/`MiB`,
/// `Gi`/`GiB`, `Ti`/`TiB` are powers of 1024; an optional `B` means bytes. Case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let (num, suffix) = split_number(t);
    if num.is_empty() {
        return Err(err(s, SIZE, None));
    }
    let lower = suffix.to_ascii_lowercase();
    let mult: u64 = match lower.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => {
            return Err(err(
                s,
                SIZE,
                Some(format!(
                    "unknown unit {suffix:?} (use k/M/G for powers of 1000, KiB/MiB/GiB for powers of 1024)"
                )),
            ));
        }
    };
    scale_whole(num, mult).map_err(|d| {
        let d = if d == "not a whole number" {
            "not a whole number of bytes".into()
        } else {
            d
        };
        err(s, SIZE, Some(d))
    })
}

/// A k6-style stage `DURATION:TARGET`: `1m:10000`, `30s:10k`, `0:100` (a jump).
pub fn parse_stage(s: &str) -> Result<Stage, UnitError> {
    let Some((d, n)) = s.trim().split_once(':') else {
        return Err(err(
            s,
            STAGE,
            Some("missing ':' between duration and target".into()),
        ));
    };
    let duration = parse_duration(d).map_err(|e| err(s, STAGE, Some(e.to_string())))?;
    let target = parse_count(n).map_err(|e| err(s, STAGE, Some(e.to_string())))?;
    Ok(Stage { duration, target })
}

/// A rate in events per second: `10/s`, `0.5/s`, `1/10s` (= 0.1), `600/m` (= 10), `2/1m30s`.
///
/// The part after `/` is a duration; a bare unit (`s`, `m`, `h`, `ms`) means one of it.
pub fn parse_rate(s: &str) -> Result<f64, UnitError> {
    let t = s.trim();
    let Some((num, per)) = t.split_once('/') else {
        return Err(err(s, RATE, Some("missing \"/\" and a time unit".into())));
    };
    let num = num.trim();
    let n: f64 = match num.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && !num.starts_with('+') => n,
        _ => {
            return Err(err(
                s,
                RATE,
                Some(format!("{num:?} is not a non-negative number")),
            ));
        }
    };
    let per = per.trim();
    let per_dur = if per.starts_with(|c: char| c.is_ascii_alphabetic()) {
        humantime::parse_duration(&format!("1{per}"))
    } else {
        humantime::parse_duration(per)
    }
    .map_err(|_| {
        err(
            s,
            RATE,
            Some(format!("{per:?} is not a time unit or duration")),
        )
    })?;
    if per_dur.is_zero() {
        return Err(err(s, RATE, Some("the period is zero".into())));
    }
    Ok(n / per_dur.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_shape() {
        let e = parse_duration("10 parsecs").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with(r#""10 parsecs" is not a duration"#), "{m}");
        assert!(
            m.ends_with(r#"(expected e.g. "10s", "1m30s", "500ms")"#),
            "{m}"
        );
    }
}
