//! Churn and arrival settings of a plan: `--session-duration`/`--session-seed` into a
//! [`SessionSpec`], and a stage list that may hold rate stages (`--arrival-rate`,
//! `--stage DUR:R/s`, `arrival_rate`, `[[stages]] target = "500/s"`) into the plan's
//! [`Stage`]s plus its [`Arrival`] model (see `plan::churn` for the semantics).
//!
//! Refused, with the fix in the message: `--max-open` (or `--session-seed`) with nothing it
//! could apply to, a rate stage of zero length, a cap of 0, and a stage list where nothing
//! would ever open.

use super::super::churn::{Arrival, DEFAULT_SEED, SessionSpec, StageArg, StageLoad};
use super::super::error::{Origin, PlanError};
use super::super::profile::Profile;
use super::super::{Overrides, Stage};
use super::MAX_CONNECTIONS;

/// `--session-duration` / `session_duration` and its seed.
pub(super) fn session(args: &Overrides, p: &Profile) -> Result<Option<SessionSpec>, PlanError> {
    let duration = args
        .session_duration
        .or_else(|| p.session_duration.as_ref().map(|l| l.value));
    let seed = args
        .session_seed
        .map(|s| (s, Origin::Flag("--session-seed")))
        .or_else(|| p.session_seed.as_ref().map(|l| (l.value, l.origin.clone())));
    match (duration, seed) {
        (Some(duration), seed) => Ok(Some(SessionSpec {
            duration,
            seed: seed.map_or(DEFAULT_SEED, |s| s.0),
        })),
        (None, Some((_, origin))) => Err(origin.invalid(
            "a session seed without a session duration does nothing; add --session-duration \
             (e.g. exp:2s) or drop the seed",
        )),
        (None, None) => Ok(None),
    }
}

/// The stage list of `--arrival-rate R`: one rate stage as long as `--hold` (the run closes
/// what is open when it ends).
pub(super) fn rate_shape(rate: f64, args: &Overrides, p: &Profile) -> Vec<StageArg> {
    let hold = args
        .hold
        .or_else(|| p.hold.as_ref().map(|l| l.value))
        .unwrap_or(super::defaults::HOLD);
    vec![StageArg {
        duration: hold,
        load: StageLoad::Rate(rate),
    }]
}

/// Turn the given stages into the plan's stages and arrival model. `origin` is where the
/// stage list came from; `session` is the churn (it sizes the default cap).
pub(super) fn resolve(
    list: Vec<StageArg>,
    origin: &Origin,
    args: &Overrides,
    p: &Profile,
    session: Option<&SessionSpec>,
) -> Result<(Vec<Stage>, Option<Arrival>), PlanError> {
    let max_open = args
        .max_open
        .map(|n| (n, Origin::Flag("--max-open")))
        .or_else(|| p.max_open.as_ref().map(|l| (l.value, l.origin.clone())));
    let rates: Vec<Option<f64>> = list
        .iter()
        .map(|s| match s.load {
            StageLoad::Rate(r) => Some(r),
            StageLoad::Count(_) => None,
        })
        .collect();
    if rates.iter().all(Option::is_none) {
        if let Some((_, o)) = max_open {
            return Err(o.invalid(
                "--max-open caps the arrival model and there is no rate stage; add \
                 --arrival-rate R (e.g. 500/s) or a rate stage such as --stage 1m:500/s, or \
                 drop --max-open",
            ));
        }
        let stages = list
            .iter()
            .map(|s| Stage {
                duration: s.duration,
                target: match s.load {
                    StageLoad::Count(n) => n,
                    StageLoad::Rate(_) => unreachable!("no rate stage"),
                },
            })
            .collect();
        return Ok((stages, None));
    }
    if let Some(s) = list
        .iter()
        .find(|s| matches!(s.load, StageLoad::Rate(_)) && s.duration.is_zero())
    {
        let StageLoad::Rate(r) = s.load else {
            unreachable!()
        };
        return Err(origin.invalid(format!(
            "a rate stage of 0s ({r}/s) opens nothing; give it a duration, e.g. 1m:{r}/s"
        )));
    }
    if let Some(r) = rates.iter().flatten().find(|r| !r.is_finite() || **r > 1e7) {
        return Err(origin.invalid(format!(
            "{r} new connections per second is beyond any load generator; give at most \
             10M/s, e.g. 500/s"
        )));
    }
    let opens_nothing = list.iter().all(|s| match s.load {
        StageLoad::Count(n) => n == 0,
        StageLoad::Rate(r) => r * s.duration.as_secs_f64() < 1.0,
    });
    if opens_nothing {
        return Err(origin.invalid(
            "no stage would open a connection (every target is 0 and every rate too low to \
             start one); give a rate above 0, e.g. --arrival-rate 100/s",
        ));
    }
    let cap = match max_open {
        Some((0, o)) => {
            return Err(o.invalid(
                "a cap of 0 open connections lets nothing in; give at least 1, e.g. 10k",
            ));
        }
        Some((n, o)) if n > MAX_CONNECTIONS => {
            return Err(o.invalid(format!(
                "{n} is more than one run can address ({MAX_CONNECTIONS}); split the load over \
                 processes or agents"
            )));
        }
        Some((n, _)) => n,
        None => default_cap(&list, session),
    };
    let stages = list
        .iter()
        .map(|s| Stage {
            duration: s.duration,
            target: match s.load {
                StageLoad::Count(n) => n,
                StageLoad::Rate(_) => cap,
            },
        })
        .collect();
    Ok((
        stages,
        Some(Arrival {
            rates,
            max_open: cap,
        }),
    ))
}

/// The cap when `--max-open` is not given: what the arrivals could open at most (every
/// arrival of every rate stage, plus the largest count target), and with churn at most
/// twice what Little's law says is open (rate × mean session) at the highest rate.
fn default_cap(list: &[StageArg], session: Option<&SessionSpec>) -> u64 {
    let mut arrivals = 0.0f64;
    let mut counts = 0u64;
    let mut top_rate = 0.0f64;
    for s in list {
        match s.load {
            StageLoad::Count(n) => counts = counts.max(n),
            StageLoad::Rate(r) => {
                arrivals += r * s.duration.as_secs_f64();
                top_rate = top_rate.max(r);
            }
        }
    }
    let mut cap = arrivals.ceil() as u64 + counts;
    if let Some(sp) = session {
        let little = (2.0 * top_rate * sp.duration.mean().as_secs_f64()).ceil() as u64 + 16;
        cap = cap.min(little + counts);
    }
    cap.clamp(1, MAX_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::churn::SessionDuration;
    use std::time::Duration;

    fn rate(secs: u64, r: f64) -> StageArg {
        StageArg {
            duration: Duration::from_secs(secs),
            load: StageLoad::Rate(r),
        }
    }

    fn count(secs: u64, n: u64) -> StageArg {
        StageArg {
            duration: Duration::from_secs(secs),
            load: StageLoad::Count(n),
        }
    }

    fn resolve_with(
        list: Vec<StageArg>,
        max_open: Option<u64>,
        session: Option<SessionSpec>,
    ) -> Result<(Vec<Stage>, Option<Arrival>), PlanError> {
        let args = Overrides {
            max_open,
            ..Default::default()
        };
        resolve(
            list,
            &Origin::Flag("--stage"),
            &args,
            &Profile::default(),
            session.as_ref(),
        )
    }

    #[test]
    fn rate_stages_carry_the_cap_as_their_target() {
        let (stages, arrival) = resolve_with(
            vec![count(5, 100), rate(60, 500.0), count(5, 0)],
            Some(10_000),
            None,
        )
        .unwrap();
        let targets: Vec<u64> = stages.iter().map(|s| s.target).collect();
        assert_eq!(targets, [100, 10_000, 0]);
        let a = arrival.unwrap();
        assert_eq!(a.rates, [None, Some(500.0), None]);
        assert_eq!(a.max_open, 10_000);
        assert_eq!(a.rate(1), Some(500.0));
        assert_eq!(a.rate(2), None);
    }

    #[test]
    fn default_cap_follows_littles_law_with_churn() {
        let session = SessionSpec {
            duration: SessionDuration::Exp(Duration::from_secs(2)),
            seed: 1,
        };
        let (_, a) = resolve_with(vec![rate(60, 500.0)], None, Some(session)).unwrap();
        assert_eq!(a.unwrap().max_open, 2 * 500 * 2 + 16);
        // Without churn every arrival may stay open.
        let (_, a) = resolve_with(vec![rate(10, 50.0)], None, None).unwrap();
        assert_eq!(a.unwrap().max_open, 500);
    }

    #[test]
    fn count_stages_stay_as_they_were() {
        let (stages, arrival) = resolve_with(vec![count(10, 7), count(5, 0)], None, None).unwrap();
        assert_eq!(stages.len(), 2);
        assert!(arrival.is_none());
    }

    #[test]
    fn nonsense_is_refused_with_the_fix() {
        let cases: Vec<(Vec<StageArg>, Option<u64>, &str)> = vec![
            (vec![count(10, 5)], Some(100), "no rate stage"),
            (vec![rate(0, 100.0)], None, "give it a duration"),
            (vec![rate(10, 0.0)], None, "--arrival-rate 100/s"),
            (vec![rate(10, 100.0)], Some(0), "at least 1"),
            (vec![rate(10, 1e9)], None, "at most"),
        ];
        for (list, cap, needle) in cases {
            let m = resolve_with(list.clone(), cap, None)
                .expect_err(needle)
                .to_string();
            assert!(m.contains(needle), "{list:?}: {m}");
        }
    }

    #[test]
    fn a_seed_alone_is_refused() {
        let args = Overrides {
            session_seed: Some(3),
            ..Default::default()
        };
        let m = session(&args, &Profile::default()).unwrap_err().to_string();
        assert!(m.contains("--session-duration"), "{m}");
        let args = Overrides {
            session_duration: Some(SessionDuration::Fixed(Duration::from_secs(1))),
            ..Default::default()
        };
        let s = session(&args, &Profile::default()).unwrap().unwrap();
        assert_eq!(s.seed, DEFAULT_SEED);
    }
}
