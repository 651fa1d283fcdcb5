//! Churn and the open arrival model: session lengths (`--session-duration`), arrival-rate
//! stages (`--arrival-rate`, `--stage DUR:R/s`) and their cap (`--max-open`).
//!
//! - **Churn** ([`SessionSpec`]): every established connection closes itself (close code
//!   1000) after a session drawn from a [`SessionDuration`] — fixed, uniform or exponential
//!   — sampled with a seeded RNG so a run is repeatable. In a count stage its slot reopens at
//!   once (the stage target is still what should be open).
//! - **Arrival rate** ([`Arrival`]): in a rate stage new connections start at `R` per second
//!   whatever is open; nothing reopens a slot. `--max-open` caps what may be open (or
//!   opening) at once: an arrival beyond the cap is counted as skipped, never silently lost.
//!   With churn this is the open-system model: by Little's law the number open settles at
//!   about `R × mean session`.
//!
//! Stages mix like this (see docs/churn.md): a rate stage's [`Stage::target`] is its cap,
//! so everything that reads stage targets (peak, preflight, slab sizing, the split over
//! processes) sees the cap; a count stage after a rate stage ramps from that cap; a rate
//! stage after a count stage keeps the connections the count stage opened (they churn out
//! when sessions are set, and are not replaced). A rate stage holds its rate for its whole
//! duration (a step, not a ramp: give several stages to ramp a rate).

use std::fmt;
use std::time::Duration;

use super::Stage;
use super::units::{UnitError, parse_count, parse_duration, parse_rate};

/// How long one session (established → client close) lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SessionDuration {
    /// Every session lasts exactly this long.
    Fixed(Duration),
    /// Uniformly distributed between the two bounds (inclusive).
    Uniform(Duration, Duration),
    /// Exponentially distributed with this mean (memoryless: a Poisson departure process).
    Exp(Duration),
}

const SESSION_EXAMPLES: &str = r#""30s", "uniform:10s..50s", "exp:2s""#;

fn session_err(s: &str, detail: impl Into<String>) -> UnitError {
    UnitError {
        input: s.to_string(),
        expected: "a session duration",
        detail: Some(detail.into()),
        examples: SESSION_EXAMPLES,
    }
}

/// Parse `DUR`, `uniform:A..B` or `exp:MEAN`.
pub fn parse_session_duration(s: &str) -> Result<SessionDuration, UnitError> {
    let t = s.trim();
    let dur = |d: &str| parse_duration(d).map_err(|e| session_err(s, e.to_string()));
    let sd = if let Some(rest) = t.strip_prefix("uniform:") {
        let Some((a, b)) = rest.split_once("..") else {
            return Err(session_err(
                s,
                "a uniform range is written A..B, e.g. uniform:10s..50s",
            ));
        };
        let (a, b) = (dur(a)?, dur(b)?);
        if a > b {
            return Err(session_err(
                s,
                "the lower bound is above the upper one; write the shorter duration first",
            ));
        }
        SessionDuration::Uniform(a, b)
    } else if let Some(rest) = t.strip_prefix("exp:") {
        SessionDuration::Exp(dur(rest)?)
    } else if t.contains(':') {
        return Err(session_err(
            s,
            "unknown distribution; use uniform:A..B or exp:MEAN (or a plain duration)",
        ));
    } else {
        SessionDuration::Fixed(dur(t)?)
    };
    if sd.mean().is_zero() {
        return Err(session_err(
            s,
            "a session must last longer than 0 (a connection that closes at once tests nothing)",
        ));
    }
    Ok(sd)
}

impl SessionDuration {
    /// The mean session length.
    pub fn mean(&self) -> Duration {
        match *self {
            SessionDuration::Fixed(d) | SessionDuration::Exp(d) => d,
            SessionDuration::Uniform(a, b) => (a + b) / 2,
        }
    }

    /// One session length, drawn with `rng`.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            SessionDuration::Fixed(d) => d,
            SessionDuration::Uniform(a, b) => {
                let (lo, hi) = (a.as_micros() as u64, b.as_micros() as u64);
                Duration::from_micros(rng.u64(lo..=hi))
            }
            SessionDuration::Exp(mean) => {
                // Inverse transform: −ln(U) × mean, U in (0, 1]; capped at 50 × the mean so
                // one unlucky draw cannot outlive the run by hours.
                let u = 1.0 - rng.f64();
                let x = (-u.ln()).min(50.0);
                Duration::from_secs_f64(mean.as_secs_f64() * x)
            }
        }
    }
}

/// The spelling `parse_session_duration` reads back (`exp:2s`, `uniform:10s..50s`, `30s`).
impl fmt::Display for SessionDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = humantime::format_duration;
        match *self {
            SessionDuration::Fixed(d) => write!(f, "{}", h(d)),
            SessionDuration::Uniform(a, b) => write!(f, "uniform:{}..{}", h(a), h(b)),
            SessionDuration::Exp(d) => write!(f, "exp:{}", h(d)),
        }
    }
}

/// Churn: connections end themselves after a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionSpec {
    pub duration: SessionDuration,
    /// Seed of the session-length RNG (each shard mixes in its own number).
    pub seed: u64,
}

/// The default `--session-seed`: runs are repeatable unless a seed is given.
pub const DEFAULT_SEED: u64 = 0x5eed;

/// The arrival model of a plan with rate stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// Per stage of the plan, in order: new connections per second during it (`None`: a count
    /// stage). A rate stage's `Stage::target` is `max_open`.
    pub rates: Vec<Option<f64>>,
    /// Most connections open or opening at once during rate stages (`--max-open`).
    pub max_open: u64,
}

impl Arrival {
    /// The rate of stage `i`, if it is a rate stage.
    pub fn rate(&self, i: usize) -> Option<f64> {
        self.rates.get(i).copied().flatten()
    }

    /// This arrival model with every rate multiplied by `share` (a process's or agent's part
    /// of the whole; its cap is divided with the stage targets).
    pub fn scaled(&self, share: f64, max_open: u64) -> Arrival {
        Arrival {
            rates: self.rates.iter().map(|r| r.map(|r| r * share)).collect(),
            max_open,
        }
    }
}

/// What one `--stage` (or `[[stages]]` entry) asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StageLoad {
    /// Reach this many connections (linearly).
    Count(u64),
    /// Start this many new connections per second.
    Rate(f64),
}

/// One stage as given: `DUR:COUNT` or `DUR:RATE`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageArg {
    pub duration: Duration,
    pub load: StageLoad,
}

impl From<Stage> for StageArg {
    fn from(s: Stage) -> StageArg {
        StageArg {
            duration: s.duration,
            load: StageLoad::Count(s.target),
        }
    }
}

const STAGE_EXAMPLES: &str = r#""1m:10000", "30s:10k", "1m:500/s", "5m:30k/m""#;

/// A stage `DUR:COUNT` (`1m:10k`) or `DUR:RATE` (`1m:500/s`, `5m:30k/m`).
pub fn parse_stage_arg(s: &str) -> Result<StageArg, UnitError> {
    let bad = |detail: String| UnitError {
        input: s.to_string(),
        expected: "a stage",
        detail: Some(detail),
        examples: STAGE_EXAMPLES,
    };
    let Some((d, load)) = s.trim().split_once(':') else {
        return Err(bad(
            "missing ':' between duration and target (or rate)".into()
        ));
    };
    let duration = parse_duration(d).map_err(|e| bad(e.to_string()))?;
    let load = if load.contains('/') {
        StageLoad::Rate(parse_arrival_rate(load).map_err(|e| bad(e.to_string()))?)
    } else {
        StageLoad::Count(parse_count(load).map_err(|e| bad(e.to_string()))?)
    };
    Ok(StageArg { duration, load })
}

/// An arrival rate: a rate whose count may carry a `k`/`M` suffix (`500/s`, `30k/m`, `1.5k/s`).
pub fn parse_arrival_rate(s: &str) -> Result<f64, UnitError> {
    let t = s.trim();
    let Some((num, per)) = t.split_once('/') else {
        return parse_rate(t);
    };
    match parse_count(num) {
        // `parse_count` is exact for suffixed counts; the period is parse_rate's business.
        Ok(n) => Ok(n as f64 * parse_rate(&format!("1/{per}"))?),
        Err(_) => parse_rate(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn session_durations_parse_and_print_back() {
        for (text, want) in [
            ("30s", SessionDuration::Fixed(s(30))),
            ("uniform:10s..50s", SessionDuration::Uniform(s(10), s(50))),
            ("exp:2s", SessionDuration::Exp(s(2))),
            (" exp:1m ", SessionDuration::Exp(s(60))),
        ] {
            let got = parse_session_duration(text).unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(parse_session_duration(&got.to_string()).unwrap(), want);
        }
        assert_eq!(
            parse_session_duration("uniform:1s..3s").unwrap().mean(),
            s(2)
        );
    }

    #[test]
    fn bad_session_durations_say_how_to_fix_them() {
        for (text, needle) in [
            ("exp:", "not a duration"),
            ("uniform:5s", "A..B"),
            ("uniform:5s..1s", "shorter duration first"),
            ("normal:2s", "unknown distribution"),
            ("0", "longer than 0"),
            ("exp:0s", "longer than 0"),
            ("ten", "not a duration"),
        ] {
            let m = parse_session_duration(text).expect_err(text).to_string();
            assert!(m.contains(needle), "{text}: {m}");
            assert!(m.contains("exp:2s"), "{text}: examples missing: {m}");
        }
    }

    #[test]
    fn samples_follow_their_distribution() {
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 20_000;
        let exp = SessionDuration::Exp(s(2));
        let mean = (0..n)
            .map(|_| exp.sample(&mut rng).as_secs_f64())
            .sum::<f64>()
            / n as f64;
        assert!((1.9..2.1).contains(&mean), "exp:2s sampled mean {mean}");
        let uni = SessionDuration::Uniform(s(1), s(3));
        for _ in 0..n {
            let d = uni.sample(&mut rng);
            assert!(d >= s(1) && d <= s(3), "{d:?}");
        }
        assert_eq!(SessionDuration::Fixed(s(5)).sample(&mut rng), s(5));
        // Same seed, same sessions.
        let (mut a, mut b) = (fastrand::Rng::with_seed(1), fastrand::Rng::with_seed(1));
        assert_eq!(exp.sample(&mut a), exp.sample(&mut b));
    }

    #[test]
    fn stages_parse_counts_and_rates() {
        let st = |d, load| StageArg { duration: d, load };
        assert_eq!(
            parse_stage_arg("1m:10k").unwrap(),
            st(s(60), StageLoad::Count(10_000))
        );
        assert_eq!(
            parse_stage_arg("1s:500/s").unwrap(),
            st(s(1), StageLoad::Rate(500.0))
        );
        assert_eq!(
            parse_stage_arg("5m:30k/m").unwrap(),
            st(s(300), StageLoad::Rate(500.0))
        );
        assert_eq!(
            parse_stage_arg("10s:1.5k/s").unwrap(),
            st(s(10), StageLoad::Rate(1500.0))
        );
        assert_eq!(
            parse_stage_arg("10s:1/10s").unwrap(),
            st(s(10), StageLoad::Rate(0.1))
        );
        for (text, needle) in [
            ("1m", "missing ':'"),
            ("1m:fast", "not a count"),
            ("1m:500/parsec", "not a time unit"),
            ("1m:-5/s", "non-negative"),
            ("soon:5/s", "not a duration"),
        ] {
            let m = parse_stage_arg(text).expect_err(text).to_string();
            assert!(m.contains(needle), "{text}: {m}");
            assert!(m.contains("1m:500/s"), "{text}: examples missing: {m}");
        }
    }
}
