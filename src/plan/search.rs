//! Capacity search (`wsscale search --vary FIELD=START..END*FACTOR`): which plan field is
//! varied, over which values, and the search's course through them.
//!
//! - [`Vary`] is a parsed `--vary` spec. The settable fields are a table, [`FIELDS`]: each
//!   entry names the field, its unit (a count such as `connections`, or a rate such as
//!   `message_rate`) and how a value is set on [`Overrides`]. A new varied field is one
//!   more row, not a new branch anywhere else.
//! - The values: `START..END*FACTOR` multiplies (`1k..64k*2` → 1k, 2k, 4k, … 64k), and
//!   `START..END+STEP` adds (`1k..10k+1k` → 1k, 2k, … 10k). END is always the last value,
//!   also when the steps overshoot it (`500..8k*3` → 500, 1.5k, 4.5k, 8k); counts are whole.
//! - [`Search`] is the course of a search, free of any I/O: it hands out the next value,
//!   takes each step's pass/fail, stops the scan at the first failing step, then bisects
//!   up to `bisect` more steps between the last passing and the first failing value.
//!
//! The values are in the field's own human units on the command line (`1k`, `1/s`,
//! `1/10s`); [`Vary::label`] writes a value back the same way for the report.

use std::fmt;

use super::Overrides;
use super::suggest::edit_distance;
use super::units;

/// Most values a scan may have (a typo such as `1..1M+1` should not plan a million runs).
pub const MAX_STEPS: usize = 64;

/// The unit of a varied field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A whole count (`1k`, `18000`).
    Count,
    /// Events per second (`10/s`, `1/10s`).
    Rate,
}

/// One settable plan field (a row of [`FIELDS`]).
#[derive(Debug)]
pub struct Field {
    /// The name after `--vary` (the profile key and flag it stands for).
    pub name: &'static str,
    /// The flag the value replaces, for messages (`-c/--connections`).
    pub flag: &'static str,
    pub unit: Unit,
    /// What the field means in the report (axis titles): `connections held`.
    pub what: &'static str,
    /// Set `value` (in the field's unit: a count or events per second) on `args`.
    pub set: fn(&mut Overrides, f64),
    /// The flag in `args` that would win over [`Field::set`], if one was given (then the
    /// varied value would change nothing, and the search is refused).
    pub overridden_by: fn(&Overrides) -> Option<&'static str>,
}

/// The fields `--vary` can set.
pub const FIELDS: &[Field] = &[
    Field {
        name: "connections",
        flag: "-c/--connections",
        unit: Unit::Count,
        what: "connections held",
        set: |a, v| a.connections = Some(v.round() as u64),
        overridden_by: |a| (!a.stages.is_empty()).then_some("--stage"),
    },
    Field {
        name: "message_rate",
        flag: "--message-rate",
        unit: Unit::Rate,
        what: "timed messages per second per connection",
        set: |a, v| a.message_rate = Some(v),
        overridden_by: |_| None,
    },
    Field {
        name: "arrival_rate",
        flag: "--arrival-rate",
        unit: Unit::Rate,
        what: "new connections per second",
        set: |a, v| a.arrival_rate = Some(v),
        overridden_by: |a| (!a.stages.is_empty()).then_some("--stage"),
    },
];

/// The row of [`FIELDS`] named `name`.
pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// How the values grow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Growth {
    /// `*FACTOR`: each value is the previous times FACTOR (> 1).
    Times(f64),
    /// `+STEP`: each value is the previous plus STEP (> 0, in the field's unit).
    Plus(f64),
}

/// A parsed `--vary FIELD=START..END*FACTOR` (or `+STEP`).
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    pub field: &'static Field,
    pub start: f64,
    pub end: f64,
    pub growth: Growth,
    /// The spec as written (for the report).
    pub spec: String,
}

impl PartialEq for Field {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// A `--vary` spec that cannot be used; the message says what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{spec:?}: {reason} (expected e.g. \"connections=1k..64k*2\", \"connections=1k..10k+1k\" or \"message_rate=1/s..64/s*2\")"
)]
pub struct VaryError {
    pub spec: String,
    pub reason: String,
}

/// Parse a `--vary` spec (see the module docs).
pub fn parse_vary(spec: &str) -> Result<Vary, VaryError> {
    let bad = |reason: String| VaryError {
        spec: spec.to_string(),
        reason,
    };
    let Some((name, range)) = spec.split_once('=') else {
        return Err(bad(format!(
            "missing '=': write FIELD=START..END*FACTOR with FIELD one of {}",
            names()
        )));
    };
    let name = name.trim();
    let field = field(name).ok_or_else(|| {
        let hint = FIELDS
            .iter()
            .filter(|f| edit_distance(name, f.name) <= 3)
            .min_by_key(|f| edit_distance(name, f.name))
            .map_or(String::new(), |f| format!("did you mean {:?}? ", f.name));
        bad(format!(
            "{name:?} cannot be varied; {hint}the fields are {}",
            names()
        ))
    })?;
    let Some((start_s, rest)) = range.split_once("..") else {
        return Err(bad(
            "missing '..' between START and END (e.g. 1k..64k*2)".into()
        ));
    };
    let (end_s, growth_s, times) = match rest.rfind(['*', '+']) {
        Some(i) => (&rest[..i], &rest[i + 1..], rest.as_bytes()[i] == b'*'),
        None => {
            return Err(bad(
                "missing the step after END: *FACTOR to multiply (e.g. *2) or +STEP to add (e.g. +1k)"
                    .into(),
            ));
        }
    };
    let value = |s: &str, what: &str| -> Result<f64, VaryError> {
        let v = match field.unit {
            Unit::Count => units::parse_count(s).map(|n| n as f64),
            Unit::Rate => units::parse_rate(s),
        };
        v.map_err(|e| bad(format!("{what}: {e}")))
    };
    let start = value(start_s, "START")?;
    let end = value(end_s, "END")?;
    let growth = if times {
        let f: f64 = growth_s
            .trim()
            .parse()
            .ok()
            .filter(|f: &f64| f.is_finite())
            .ok_or_else(|| {
                bad(format!(
                    "the factor {growth_s:?} is not a number (e.g. *2 or *1.5)"
                ))
            })?;
        if f <= 1.0 {
            return Err(bad(format!(
                "the factor {growth_s} must be above 1 (e.g. *2 doubles each step)"
            )));
        }
        Growth::Times(f)
    } else {
        let s = value(growth_s, "STEP")?;
        if s <= 0.0 {
            return Err(bad("the step after '+' must be above 0".into()));
        }
        Growth::Plus(s)
    };
    if start <= 0.0 {
        return Err(bad(
            "START must be above 0 (a step of no load measures nothing)".into(),
        ));
    }
    if start >= end {
        return Err(bad(format!(
            "START ({}) must be below END ({})",
            label(field, start),
            label(field, end)
        )));
    }
    let v = Vary {
        field,
        start,
        end,
        growth,
        spec: spec.trim().to_string(),
    };
    let values = v.values();
    let n = values.len();
    if n > MAX_STEPS || values.last() != Some(&v.end) {
        return Err(bad(format!(
            "that is more than {MAX_STEPS} steps; take a larger step or a narrower range"
        )));
    }
    Ok(v)
}

fn names() -> String {
    FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

impl Vary {
    /// The scan's values, START first, END last (see the module docs). Stops counting past
    /// [`MAX_STEPS`] + 1, which [`parse_vary`] refuses.
    pub fn values(&self) -> Vec<f64> {
        let mut out = vec![self.start];
        let mut x = self.start;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        // Bounded also when rounding keeps values equal for a while (a factor of 1.0001).
        for _ in 0..1_000_000 {
            if out.len() > MAX_STEPS {
                break;
            }
            x = match self.growth {
                Growth::Times(f) => x * f,
                Growth::Plus(s) => x + s,
            };
            let v = self.round(x);
            if v > self.end || close(v, self.end) {
                out.push(self.end);
                break;
            }
            if v > *out.last().expect("not empty") {
                out.push(v);
            }
        }
        out
    }

    /// The value between `pass` and `fail` to try next, or `None` when there is none (two
    /// neighbouring counts, or rates within 1 % of each other).
    pub fn midpoint(&self, pass: f64, fail: f64) -> Option<f64> {
        let m = self.round((pass + fail) / 2.0);
        let room = match self.field.unit {
            Unit::Count => m > pass && m < fail,
            Unit::Rate => (fail - pass) > 0.01 * fail,
        };
        room.then_some(m)
    }

    /// A value in the field's unit: counts whole, rates to 4 significant digits.
    fn round(&self, v: f64) -> f64 {
        match self.field.unit {
            Unit::Count => v.round(),
            // The f64 nearest to the value's 4-significant-digit decimal (0.1 + 0.2 → 0.3).
            Unit::Rate => format!("{v:.3e}").parse().unwrap_or(v),
        }
    }

    /// `value` written in the field's unit (`4000`, `2/s`).
    pub fn label(&self, value: f64) -> String {
        label(self.field, value)
    }
}

/// `value` of `field` written in its unit.
pub fn label(field: &Field, value: f64) -> String {
    match field.unit {
        Unit::Count => format!("{}", value.round() as u64),
        Unit::Rate => {
            let s = format!("{value:.4}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            format!("{s}/s")
        }
    }
}

impl fmt::Display for Vary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

/// Whether a step was part of the scan or of the bisection after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Scan,
    Bisect,
}

impl Phase {
    /// The stable label in the report (`scan`, `bisect`).
    pub fn label(self) -> &'static str {
        match self {
            Phase::Scan => "scan",
            Phase::Bisect => "bisect",
        }
    }
}

/// Where a search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Finding {
    /// A value passed and a larger one failed: the capacity lies between them.
    Knee { last_pass: f64, first_fail: f64 },
    /// Every value of the scan passed, END included: the capacity is above the range.
    AllPassed { last_pass: f64 },
    /// Even START failed: the capacity is below the range.
    FirstFailed { first_fail: f64 },
    /// No step finished (interrupted before the first one ended).
    NotRun,
}

impl Finding {
    /// The stable label in the report (`knee`, `all_passed`, `first_failed`, `not_run`).
    pub fn label(self) -> &'static str {
        match self {
            Finding::Knee { .. } => "knee",
            Finding::AllPassed { .. } => "all_passed",
            Finding::FirstFailed { .. } => "first_failed",
            Finding::NotRun => "not_run",
        }
    }
}

/// The course of a search (see the module docs): `next`, run it, `record`, until `next`
/// says `None`.
#[derive(Debug, Clone)]
pub struct Search {
    pub vary: Vary,
    /// Most bisection steps after the scan.
    pub bisect: u32,
    scan: Vec<f64>,
    scanned: usize,
    bisected: u32,
    last_pass: Option<f64>,
    first_fail: Option<f64>,
}

impl Search {
    pub fn new(vary: Vary, bisect: u32) -> Search {
        let scan = vary.values();
        Search {
            vary,
            bisect,
            scan,
            scanned: 0,
            bisected: 0,
            last_pass: None,
            first_fail: None,
        }
    }

    /// The scan's values (what runs when every step passes).
    pub fn scan(&self) -> &[f64] {
        &self.scan
    }

    /// The next value to run, or `None` when the search is over.
    pub fn next(&self) -> Option<(f64, Phase)> {
        match (self.last_pass, self.first_fail) {
            (_, None) => self.scan.get(self.scanned).map(|v| (*v, Phase::Scan)),
            (Some(p), Some(f)) if self.bisected < self.bisect => {
                self.vary.midpoint(p, f).map(|m| (m, Phase::Bisect))
            }
            _ => None,
        }
    }

    /// The outcome of the step that ran `value` (the value [`Search::next`] gave).
    pub fn record(&mut self, value: f64, passed: bool) {
        if self.first_fail.is_none() {
            self.scanned += 1;
        } else {
            self.bisected += 1;
        }
        if passed {
            self.last_pass = Some(self.last_pass.map_or(value, |p| p.max(value)));
        } else {
            self.first_fail = Some(self.first_fail.map_or(value, |f| f.min(value)));
        }
    }

    /// Where the search stands (the final finding once `next` is `None`).
    pub fn finding(&self) -> Finding {
        match (self.last_pass, self.first_fail) {
            (Some(last_pass), Some(first_fail)) => Finding::Knee {
                last_pass,
                first_fail,
            },
            (Some(last_pass), None) => Finding::AllPassed { last_pass },
            (None, Some(first_fail)) => Finding::FirstFailed { first_fail },
            (None, None) => Finding::NotRun,
        }
    }
}
