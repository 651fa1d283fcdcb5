//! Disruption detection: drop waves and how the run recovered from them.
//!
//! [`detect`] is a pure function of the interval time series (`timeseries[]`), the planned
//! stages and the threshold, so a single run, a `--processes` run, a coordinator and
//! `report merge` all find the same disruptions in the same rows — nothing is counted on the
//! side.
//!
//! A **drop wave** starts in an interval whose drops reach `threshold` (default 5 %,
//! `--disruption-threshold`) of the connections open at the end of the interval before it
//! (or in the interval before, when that one had drops too: a wave that straddles an
//! interval boundary).
//! From there the disruption lasts until open connections are back at ≥ 99 %
//! ([`RECOVERED_FRACTION`]) of the plan's target at the end of an interval; a further wave
//! before that is part of the same disruption. For each disruption:
//!
//! - `start_s`: the start of the interval the wave fell in (seconds since the first stage);
//! - `dropped` and `drops_by_reason`: drops from the wave to the recovery;
//! - `reconnect_attempts` and `peak_reconnect_rate_per_s`: re-open attempts
//!   (`--reconnect`) over the same rows, and the highest per-interval rate — the thundering
//!   herd;
//! - `failures_during_recovery` and `failures_by_category`: attempts that failed meanwhile
//!   (refused while the gateway restarts, timeouts, 503s);
//! - `recovery_s`: end of the first interval at which open is back at ≥ 99 % of the target,
//!   minus `start_s`; `None` with a `note` when that never happened (no `--reconnect`, the
//!   gateway never came back, or the plan ramped down first).
//!
//! The resolution is the interval (`--interval`): the wave is placed at the start of its
//! interval (of the one before, when that had drops too) and the recovery at the end of one,
//! so `recovery_s` is an upper bound, one interval too long at most (two when a stray drop
//! just before the wave pulls its start back). Use `--interval 1s` for recovery tests.

use std::collections::BTreeMap;
use std::time::Duration;

use super::outcome::IntervalRow;
use crate::plan::{Stage, StageClock};

/// The default `--disruption-threshold`: 5 % of open connections dropped in one interval.
pub const DEFAULT_THRESHOLD: f64 = crate::plan::recovery::DEFAULT_DISRUPTION_THRESHOLD;
/// Recovered: open connections at or above this fraction of the target.
pub const RECOVERED_FRACTION: f64 = 0.99;

/// One drop wave and its recovery (the JSON report's `disruptions[]`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Disruption {
    /// Start of the interval the wave fell in, seconds since the start of the first stage.
    pub start_s: f64,
    /// Connections open at `start_s` (the end of the interval before the wave).
    pub open_before: u64,
    /// Drops from the wave until the recovery (or the end of the run).
    pub dropped: u64,
    /// Those drops by reason (`eof`, `reset`, `close_1012`, `ping_timeout`, …).
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Re-open attempts (`--reconnect`) from the wave until the recovery.
    pub reconnect_attempts: u64,
    /// Highest per-interval rate of re-open attempts meanwhile (attempts per second).
    pub peak_reconnect_rate_per_s: f64,
    /// Connection attempts that failed from the wave until the recovery.
    pub failures_during_recovery: u64,
    /// Those failures by category (`refused`, `http_status_503`, …).
    pub failures_by_category: BTreeMap<String, u64>,
    /// Seconds from `start_s` until open was back at ≥ 99 % of the target (`None`: never).
    pub recovery_s: Option<f64>,
    /// Why `recovery_s` is missing (`None` when it is there).
    pub note: Option<String>,
}

/// The disruptions in `rows` (in time order) of a run planned as `stages`: waves of drops of
/// at least `threshold` (a fraction, `0.05` = 5 %) of the open connections in one interval.
pub fn detect(rows: &[IntervalRow], stages: &[Stage], threshold: f64) -> Vec<Disruption> {
    let clock = StageClock::new(stages.to_vec());
    let target = |t_s: f64| clock.count_at(Duration::from_secs_f64(t_s.max(0.0)));
    let mut out = Vec::new();
    let mut i = 0;
    // The first row not yet part of a disruption.
    let mut floor = 0;
    while i < rows.len() {
        let open_at = |k: usize| if k == 0 { 0 } else { rows[k - 1].open };
        if !is_wave(&rows[i], open_at(i), threshold) {
            i += 1;
            continue;
        }
        // A wave that straddles an interval boundary starts with the drops just before it
        // (recovery is looked for from the wave's own interval on).
        let wave_row = i;
        while i > floor && rows[i - 1].dropped > 0 && open_at(i - 1) > 0 {
            i -= 1;
        }
        let (prev_t, prev_open) = match i {
            0 => (0.0, 0),
            _ => (rows[i - 1].t_s, rows[i - 1].open),
        };
        let wave_target = target(prev_t);
        let mut d = Disruption {
            start_s: round3(prev_t),
            open_before: prev_open,
            ..Default::default()
        };
        let mut j = i;
        let mut last_t = prev_t;
        let mut last_target = wave_target;
        while j < rows.len() {
            let r = &rows[j];
            d.dropped += r.dropped;
            add(&mut d.drops_by_reason, &r.drops_by_reason);
            d.reconnect_attempts += r.reconnects;
            let span = (r.t_s - last_t).max(1e-3);
            d.peak_reconnect_rate_per_s =
                d.peak_reconnect_rate_per_s.max(r.reconnects as f64 / span);
            d.failures_during_recovery += r.failures;
            add(&mut d.failures_by_category, &r.failures_by_category);
            last_t = r.t_s;
            last_target = target(r.t_s);
            // Recovered: back near the target, while the plan still wants what it had.
            if j >= wave_row
                && last_target >= wave_target
                && r.open as f64 >= RECOVERED_FRACTION * last_target
            {
                d.recovery_s = Some(round3(r.t_s - prev_t));
                break;
            }
            j += 1;
        }
        d.peak_reconnect_rate_per_s = round3(d.peak_reconnect_rate_per_s);
        if d.recovery_s.is_none() {
            let end_open = rows.last().map_or(0, |r| r.open);
            d.note = Some(if last_target < wave_target {
                format!(
                    "not recovered before the plan ramped down ({end_open} open at the end, \
                     {} targeted when the wave hit)",
                    wave_target as u64
                )
            } else {
                format!(
                    "never recovered: {end_open} open at the end of the run, target {} \
                     (without --reconnect dropped connections stay closed)",
                    last_target as u64
                )
            });
        }
        out.push(d);
        i = j + 1;
        floor = i;
    }
    out
}

/// True when row `r` drops at least `threshold` of the `open_before` connections.
fn is_wave(r: &IntervalRow, open_before: u64, threshold: f64) -> bool {
    open_before > 0 && r.dropped > 0 && r.dropped as f64 >= threshold * open_before as f64
}

fn add(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The threshold figures: `disruptions` (how many) and `recovery_s.max` (the longest
/// recovery; 0 when there was no disruption, `None` when one never recovered).
pub fn measure(metric: &str, found: &[Disruption]) -> Option<f64> {
    match metric {
        "disruptions" => Some(found.len() as f64),
        "recovery_s.max" => found
            .iter()
            .try_fold(0.0f64, |m, d| d.recovery_s.map(|r| m.max(r))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(hold_s: u64, n: u64) -> Vec<Stage> {
        vec![
            Stage {
                duration: Duration::from_secs(1),
                target: n,
            },
            Stage {
                duration: Duration::from_secs(hold_s),
                target: n,
            },
        ]
    }

    /// One-second rows: (open at the end, dropped, reconnects, failures).
    fn rows(spec: &[(u64, u64, u64, u64)]) -> Vec<IntervalRow> {
        spec.iter()
            .enumerate()
            .map(|(k, &(open, dropped, reconnects, failures))| {
                let mut r = IntervalRow {
                    t_s: (k + 1) as f64,
                    open,
                    dropped,
                    reconnects,
                    failures,
                    ..Default::default()
                };
                if dropped > 0 {
                    r.drops_by_reason.insert("reset".into(), dropped);
                }
                if failures > 0 {
                    r.failures_by_category.insert("refused".into(), failures);
                }
                r
            })
            .collect()
    }

    #[test]
    fn drops_below_the_threshold_are_no_disruption() {
        // 4 of 100 dropped (4 % < 5 %), then back.
        let r = rows(&[
            (100, 0, 0, 0),
            (96, 4, 0, 0),
            (100, 0, 4, 0),
            (100, 0, 0, 0),
        ]);
        assert!(detect(&r, &stages(10, 100), DEFAULT_THRESHOLD).is_empty());
        // The same rows with a 3 % threshold are one.
        assert_eq!(detect(&r, &stages(10, 100), 0.03).len(), 1);
    }

    #[test]
    fn a_wave_and_its_recovery() {
        let r = rows(&[
            (100, 0, 0, 0),
            (100, 0, 0, 0),
            (0, 100, 0, 0),  // t 2→3: everything dropped
            (40, 0, 90, 50), // t 3→4: reconnect storm, half refused
            (99, 0, 60, 1),  // t 4→5: 99 % back
            (100, 0, 1, 0),
        ]);
        let d = detect(&r, &stages(10, 100), DEFAULT_THRESHOLD);
        assert_eq!(d.len(), 1, "{d:?}");
        let d = &d[0];
        assert_eq!(d.start_s, 2.0);
        assert_eq!(d.open_before, 100);
        assert_eq!(d.dropped, 100);
        assert_eq!(d.drops_by_reason["reset"], 100);
        assert_eq!(d.reconnect_attempts, 150);
        assert_eq!(d.peak_reconnect_rate_per_s, 90.0);
        assert_eq!(d.failures_during_recovery, 51);
        assert_eq!(d.failures_by_category["refused"], 51);
        assert_eq!(d.recovery_s, Some(3.0));
        assert_eq!(d.note, None);
        assert_eq!(measure("disruptions", std::slice::from_ref(d)), Some(1.0));
        assert_eq!(
            measure("recovery_s.max", std::slice::from_ref(d)),
            Some(3.0)
        );
    }

    #[test]
    fn never_recovering_gives_null_and_a_note() {
        let r = rows(&[(100, 0, 0, 0), (0, 100, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)]);
        let d = detect(&r, &stages(10, 100), DEFAULT_THRESHOLD);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].recovery_s, None);
        assert!(
            d[0].note.as_deref().unwrap().contains("never recovered"),
            "{d:?}"
        );
        assert_eq!(measure("recovery_s.max", &d), None);
    }

    #[test]
    fn repeated_waves_are_separate_disruptions_once_recovered() {
        let r = rows(&[
            (100, 0, 0, 0),
            (70, 30, 0, 0),
            (100, 0, 30, 0),
            (100, 0, 0, 0),
            (70, 30, 0, 0),
            (100, 0, 30, 0),
        ]);
        let d = detect(&r, &stages(10, 100), DEFAULT_THRESHOLD);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!((d[0].start_s, d[1].start_s), (1.0, 4.0));
        assert!(d.iter().all(|d| d.recovery_s == Some(2.0)));
    }

    #[test]
    fn a_second_wave_before_recovery_belongs_to_the_first() {
        let r = rows(&[
            (100, 0, 0, 0),
            (50, 50, 0, 0),
            (20, 40, 10, 0),
            (100, 0, 80, 0),
        ]);
        let d = detect(&r, &stages(10, 100), DEFAULT_THRESHOLD);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].dropped, 90);
        assert_eq!(d[0].recovery_s, Some(3.0));
    }

    #[test]
    fn a_wave_across_an_interval_boundary_starts_with_its_first_drops() {
        // 1 of 100 drops just before the boundary (99 open: "recovered" on its own), 99
        // after it.
        let r = rows(&[
            (100, 0, 0, 0),
            (99, 1, 0, 0),
            (0, 99, 0, 0),
            (100, 0, 100, 0),
        ]);
        let d = detect(&r, &stages(10, 100), DEFAULT_THRESHOLD);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            (d[0].start_s, d[0].open_before, d[0].dropped),
            (1.0, 100, 100)
        );
        assert_eq!(d[0].recovery_s, Some(3.0));
    }

    #[test]
    fn no_disruption_measures_zero() {
        assert_eq!(measure("disruptions", &[]), Some(0.0));
        assert_eq!(measure("recovery_s.max", &[]), Some(0.0));
    }
}
