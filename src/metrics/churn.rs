//! Churn figures of a run: what was planned ([`ChurnRecord`]: session lengths, arrival rates,
//! the cap), and the report's `churn` section ([`ChurnSummary`]: sessions completed, opens/s
//! and closes/s mean and peak, session length planned vs observed, skipped arrivals), plus
//! the `churn.*` threshold metrics.
//!
//! "Opens" are connection attempts started (new sessions, arrivals, slot refills) and
//! "closes" are sessions ended by churn. Their **mean** is taken over the steady part of the
//! run — the time-series intervals that lie wholly inside a hold stage (target equal to the
//! previous one) or a rate stage — so a ramp's initial opens do not inflate a churn figure;
//! without such an interval it is over the whole run. The **peak** is the highest interval.

use serde::{Deserialize, Serialize};

use super::outcome::{IntervalRow, RunOutcome};
use super::percentiles::Percentiles;
use crate::plan::{Plan, Stage};

/// Churn and arrivals as planned, and the peak of connections in use.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnRecord {
    /// `--session-duration` as written back (`exp:2s`); `None` without churn.
    pub session: Option<String>,
    /// Mean of the planned session length, seconds.
    pub session_mean_s: Option<f64>,
    /// Per stage: new connections per second (`None`: a count stage); empty without rate
    /// stages.
    pub rates_per_s: Vec<Option<f64>>,
    /// `--max-open` (the default cap when not given); `None` without rate stages.
    pub max_open: Option<u64>,
    /// Highest number of connections open or opening at once.
    pub peak_in_use: u64,
}

impl ChurnRecord {
    /// The record of a plan, `None` when it has neither churn nor rate stages.
    pub fn of(plan: &Plan, peak_in_use: u64) -> Option<ChurnRecord> {
        if plan.churn.is_none() && plan.arrival.is_none() {
            return None;
        }
        Some(ChurnRecord {
            session: plan.churn.map(|c| c.duration.to_string()),
            session_mean_s: plan.churn.map(|c| c.duration.mean().as_secs_f64()),
            rates_per_s: plan
                .arrival
                .as_ref()
                .map(|a| a.rates.clone())
                .unwrap_or_default(),
            max_open: plan.arrival.as_ref().map(|a| a.max_open),
            peak_in_use,
        })
    }

    /// True when a stage is a rate stage (the open arrival model).
    pub fn has_rate_stages(&self) -> bool {
        self.rates_per_s.iter().any(Option::is_some)
    }
}

/// Mean (over the steady part of the run) and peak (highest interval) of a per-second rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RateFigures {
    pub mean: f64,
    pub peak: f64,
}

/// The arrival model in the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArrivalSummary {
    /// Per stage, in order: new connections per second (`null`: a count stage).
    pub rates_per_s: Vec<Option<f64>>,
    /// The cap on open + opening connections during rate stages.
    pub max_open: u64,
    /// Arrivals not started because the cap was reached (or no source address could take one).
    pub skipped: u64,
}

/// The report's `churn` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChurnSummary {
    /// `--session-duration` as given (`exp:2s`, `uniform:10s..50s`, `30s`); `null` without churn.
    pub session_duration: Option<String>,
    /// Mean planned session length, seconds (`null` without churn).
    pub planned_mean_s: Option<f64>,
    /// Observed lengths of the sessions churn ended (established → close), seconds.
    pub observed_s: Percentiles,
    /// Sessions ended by churn (each one a normal close, also counted in `connections.closed`).
    pub sessions_completed: u64,
    /// Connection attempts started per second.
    pub opens_per_s: RateFigures,
    /// Sessions ended by churn per second.
    pub closes_per_s: RateFigures,
    /// Seconds of time series the means cover (the steady part; the whole run without one).
    pub steady_s: f64,
    /// Highest number of connections open or opening at once.
    pub peak_open_or_opening: u64,
    /// The arrival model; `null` without rate stages.
    pub arrival: Option<ArrivalSummary>,
}

/// The planned figures of one or more reports' `churn` sections, merged (`report merge`):
/// the parts of one run share its sessions and split its rates, caps and peaks, which add.
pub fn read_back<'a>(parts: impl IntoIterator<Item = &'a ChurnSummary>) -> Option<ChurnRecord> {
    let mut out: Option<ChurnRecord> = None;
    for s in parts {
        let r = out.get_or_insert_with(|| ChurnRecord {
            session: s.session_duration.clone(),
            session_mean_s: s.planned_mean_s,
            rates_per_s: Vec::new(),
            max_open: None,
            peak_in_use: 0,
        });
        r.peak_in_use += s.peak_open_or_opening;
        if let Some(a) = &s.arrival {
            r.max_open = Some(r.max_open.unwrap_or(0) + a.max_open);
            if r.rates_per_s.len() < a.rates_per_s.len() {
                r.rates_per_s.resize(a.rates_per_s.len(), None);
            }
            for (m, x) in r.rates_per_s.iter_mut().zip(&a.rates_per_s) {
                if let Some(x) = x {
                    *m = Some(m.unwrap_or(0.0) + x);
                }
            }
        }
    }
    out
}

/// The `churn` section of a run, `None` when the plan had neither churn nor rate stages.
pub fn summary(o: &RunOutcome) -> Option<ChurnSummary> {
    let r = o.churn.as_ref()?;
    let c = &o.totals.counters;
    let windows = steady_windows(&o.stages, &r.rates_per_s);
    let (opens, closes, steady_s) = steady_means(&o.timeseries, &windows);
    let peak = |f: fn(&IntervalRow) -> f64| steady_peak(&o.timeseries, f);
    Some(ChurnSummary {
        session_duration: r.session.clone(),
        planned_mean_s: r.session_mean_s,
        // Recorded in ms, so the µs → ms arithmetic of `from_hist` yields seconds.
        observed_s: Percentiles::from_hist(&o.totals.hist.churn_session),
        sessions_completed: c.churn_closes,
        opens_per_s: RateFigures {
            mean: round3(opens),
            peak: round3(peak(|row| row.opens_per_s)),
        },
        closes_per_s: RateFigures {
            mean: round3(closes),
            peak: round3(peak(|row| row.closes_per_s)),
        },
        steady_s: round3(steady_s),
        peak_open_or_opening: r.peak_in_use,
        arrival: r.max_open.map(|max_open| ArrivalSummary {
            rates_per_s: r.rates_per_s.clone(),
            max_open,
            skipped: c.arrivals_skipped,
        }),
    })
}

/// A `churn.*` threshold metric (see `plan::threshold`); `None`: no data (no churn planned).
pub fn measure(metric: &str, o: &RunOutcome) -> Option<f64> {
    let s = summary(o)?;
    Some(match metric {
        "churn.sessions_completed" => s.sessions_completed as f64,
        "churn.arrivals_skipped" => s.arrival?.skipped as f64,
        "churn.opens_per_s.mean" => s.opens_per_s.mean,
        "churn.opens_per_s.peak" => s.opens_per_s.peak,
        "churn.closes_per_s.mean" => s.closes_per_s.mean,
        "churn.closes_per_s.peak" => s.closes_per_s.peak,
        "churn.session_s.mean" if s.observed_s.count > 0 => s.observed_s.mean,
        _ => return None,
    })
}

/// `[start, end)` in seconds of every hold stage and rate stage.
fn steady_windows(stages: &[Stage], rates: &[Option<f64>]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut start = 0.0;
    let mut prev = 0;
    for (i, s) in stages.iter().enumerate() {
        let end = start + s.duration.as_secs_f64();
        let rate = rates.get(i).copied().flatten().is_some();
        if rate || (s.target == prev && s.target > 0) {
            out.push((start, end));
        }
        prev = s.target;
        start = end;
    }
    out
}

/// Time-weighted means of opens/s and closes/s over the rows wholly inside a window (all rows
/// when those cover less than half of the windows), and the seconds they cover.
fn steady_means(rows: &[IntervalRow], windows: &[(f64, f64)]) -> (f64, f64, f64) {
    // Allow a few ms of timer slack at the edges of a window.
    const SLACK: f64 = 0.05;
    let inside = |from: f64, to: f64| {
        windows
            .iter()
            .any(|&(a, b)| from >= a - SLACK && to <= b + SLACK)
    };
    let mean = |pick: &dyn Fn(f64, f64) -> bool| {
        let (mut o, mut c, mut t) = (0.0, 0.0, 0.0);
        for (from, r) in spans(rows) {
            let span = r.t_s - from;
            if span > 0.0 && pick(from, r.t_s) {
                o += r.opens_per_s * span;
                c += r.closes_per_s * span;
                t += span;
            }
        }
        (t > 0.0).then(|| (o / t, c / t, t))
    };
    // Rows wholly inside the windows, when they cover at least half of them: with long
    // intervals (a 5 s row spanning ramp and hold) only a run's short last row may be
    // inside, and a few ms of one close would read as thousands per second.
    let window_s: f64 = windows.iter().map(|(a, b)| b - a).sum();
    mean(&inside)
        .filter(|&(_, _, t)| t >= window_s / 2.0)
        .or_else(|| mean(&|_, _| true))
        .unwrap_or((0.0, 0.0, 0.0))
}

/// The highest per-row rate, over rows at least half as long as the longest (a run's last
/// row can be a few ms long: one close in it is no rate).
fn steady_peak(rows: &[IntervalRow], f: fn(&IntervalRow) -> f64) -> f64 {
    let longest = spans(rows)
        .map(|(from, r)| r.t_s - from)
        .fold(0.0, f64::max);
    spans(rows)
        .filter(|(from, r)| r.t_s - from >= longest / 2.0)
        .map(|(_, r)| f(r))
        .fold(0.0, f64::max)
}

/// Each row with the time its interval starts: a row covers (previous row's t_s, its t_s].
fn spans(rows: &[IntervalRow]) -> impl Iterator<Item = (f64, &IntervalRow)> {
    rows.iter().scan(0.0, |prev, r| {
        let from = *prev;
        *prev = r.t_s;
        Some((from, r))
    })
}

fn round3(v: f64) -> f64 {
    if v.is_finite() {
        (v * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn row(t_s: f64, opens: f64, closes: f64) -> IntervalRow {
        IntervalRow {
            t_s,
            opens_per_s: opens,
            closes_per_s: closes,
            ..Default::default()
        }
    }

    #[test]
    fn a_short_last_row_is_no_rate() {
        // 5 s interval: one row over ramp (0-1 s) and hold (1-5 s), then a 10 ms last row
        // with one close — 100/s over the row, not the rate of the run.
        let rows = [row(5.0, 200.0, 180.0), row(5.01, 0.0, 100.0)];
        let windows = [(1.0, 5.0)];
        let (o, c, t) = steady_means(&rows, &windows);
        assert!((t - 5.01).abs() < 1e-9, "all rows, not the 10 ms one: {t}");
        assert!((o - 200.0 * 5.0 / 5.01).abs() < 1e-6, "{o}");
        assert!((c - (180.0 * 5.0 + 1.0) / 5.01).abs() < 1e-6, "{c}");
        assert_eq!(steady_peak(&rows, |r| r.closes_per_s), 180.0);
    }

    #[test]
    fn means_cover_the_steady_part_only() {
        let st = |s, target| Stage {
            duration: Duration::from_secs(s),
            target,
        };
        // Ramp 2 s, hold 4 s, ramp down 2 s.
        let stages = [st(2, 100), st(4, 100), st(2, 0)];
        let w = steady_windows(&stages, &[]);
        assert_eq!(w, [(2.0, 6.0)]);
        let rows = [
            row(1.0, 50.0, 0.0),
            row(2.0, 50.0, 0.0),
            row(4.0, 10.0, 10.0),
            row(6.0, 20.0, 20.0),
            row(8.0, 0.0, 0.0),
        ];
        let (o, c, t) = steady_means(&rows, &w);
        assert_eq!((o, c, t), (15.0, 15.0, 4.0));
        // No steady part: the whole run.
        let (o, _, t) = steady_means(&rows, &[]);
        assert_eq!(t, 8.0);
        assert_eq!(o, (50.0 + 50.0 + 20.0 + 40.0) / 8.0);
        // A rate stage is steady whatever its target.
        let w = steady_windows(&[st(3, 500), st(1, 0)], &[Some(10.0), None]);
        assert_eq!(w, [(0.0, 3.0)]);
    }
}
