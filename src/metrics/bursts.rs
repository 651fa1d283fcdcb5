//! Message bursts (`--message-burst N@DUR`) in the time series: [`mark`] numbers the
//! intervals a burst fell in (`timeseries[].burst`), and [`summarize`] — a pure function of
//! the rows, so merged and coordinated reports get the same figures — gives one
//! [`BurstOutcome`] per burst: the message round-trip p99 before, during and after it, and
//! how long latency took to come back.
//!
//! Burst `k` (k ≥ 1) is due `k × DUR` after the start of the first stage and its sends are
//! spread over `SPREAD` (see [`MessageBurst`]). A row is marked with `k` when its interval
//! overlaps `[k × DUR, k × DUR + SPREAD + 250 ms]` ([`REPORTING_LAG`]: counts reach the time
//! series up to one engine snapshot after they happened).
//!
//! Per burst:
//! - `baseline_p99_ms`: the p99 of the last unmarked interval with echoes before the burst;
//! - `p99_ms`: the highest interval p99 from the burst's first interval until recovery (an
//!   upper bound: intervals keep percentiles, not histograms);
//! - `recovery_s`: from the start of the burst's first interval to the end of the first
//!   interval, from its last one on, whose p99 is back within [`RECOVERY_TOLERANCE`] (10 %)
//!   or [`RECOVERY_SLACK_MS`] (1 ms, whichever is larger) of the baseline. `None` with a note
//!   when there was no baseline, or the next burst (or the end) came first.
//!
//! The resolution is the interval: use an `--interval` well below `DUR` (e.g. `1s` for bursts
//! every 10 s).

use std::time::Duration;

use super::outcome::IntervalRow;
use crate::plan::recovery::MessageBurst;

/// How much later than sent a burst's messages may show up in the time series: engine
/// shards hand their counts over every 200 ms (`RunOptions::snapshot_every`), agents
/// forward theirs on the same beat.
pub const REPORTING_LAG: Duration = Duration::from_millis(250);

/// Latency is back when the interval p99 is at most this much above the baseline …
pub const RECOVERY_TOLERANCE: f64 = 0.10;
/// … or at most this many milliseconds above it, whichever is larger.
pub const RECOVERY_SLACK_MS: f64 = 1.0;

/// One burst's figures (the JSON report's `bursts[]`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BurstOutcome {
    /// The burst's number (1 = the first, due `DUR` after the start).
    pub burst: u64,
    /// Start of the first interval the burst fell in (seconds since the first stage).
    pub start_s: f64,
    /// Message round-trip p99 of the last interval before the burst (`None`: no echo then).
    pub baseline_p99_ms: Option<f64>,
    /// Highest interval p99 from the burst until recovery.
    pub p99_ms: f64,
    /// Highest timed-message send rate of the burst's intervals (messages/s, all
    /// connections).
    pub peak_msgs_sent_per_s: f64,
    /// Seconds from `start_s` until the p99 was back near the baseline (`None`: not seen).
    pub recovery_s: Option<f64>,
    /// Why `recovery_s` is missing.
    pub note: Option<String>,
}

/// Number the rows a burst of `spec` fell in (the rest keep 0).
pub fn mark(rows: &mut [IntervalRow], spec: &MessageBurst) {
    let every = spec.every.as_secs_f64();
    let spread = (spec.spread + REPORTING_LAG).as_secs_f64();
    let mut from = 0.0;
    for r in rows.iter_mut() {
        let to = r.t_s;
        // The latest burst that started before the end of this interval …
        let k = (to / every).ceil() - 1.0;
        // … counts when its sends reach into the interval.
        if k >= 1.0 && k * every + spread > from {
            r.burst = k as u64;
        }
        from = to;
    }
}

/// The figures of every burst marked in `rows`.
pub fn summarize(rows: &[IntervalRow]) -> Vec<BurstOutcome> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let k = rows[i].burst;
        if k == 0 {
            i += 1;
            continue;
        }
        let first = i;
        let mut last = i;
        while last + 1 < rows.len() && rows[last + 1].burst == k {
            last += 1;
        }
        let start_s = if first == 0 { 0.0 } else { rows[first - 1].t_s };
        let baseline = rows[..first]
            .iter()
            .rev()
            .find(|r| r.burst == 0 && r.msgs_received_per_s > 0.0)
            .map(|r| r.message_p99_ms);
        let mut b = BurstOutcome {
            burst: k,
            start_s: round3(start_s),
            baseline_p99_ms: baseline,
            ..Default::default()
        };
        for r in &rows[first..=last] {
            b.p99_ms = b.p99_ms.max(r.message_p99_ms);
            b.peak_msgs_sent_per_s = b.peak_msgs_sent_per_s.max(r.msgs_sent_per_s);
        }
        match baseline {
            None => b.note = Some("no echo in the interval before the burst: no baseline".into()),
            Some(base) => {
                let bound = (base * (1.0 + RECOVERY_TOLERANCE)).max(base + RECOVERY_SLACK_MS);
                let mut j = last;
                while j < rows.len() && (rows[j].burst == 0 || rows[j].burst == k) {
                    let r = &rows[j];
                    b.p99_ms = b.p99_ms.max(r.message_p99_ms);
                    if r.msgs_received_per_s > 0.0 && r.message_p99_ms <= bound {
                        b.recovery_s = Some(round3(r.t_s - start_s));
                        break;
                    }
                    j += 1;
                }
                if b.recovery_s.is_none() {
                    b.note = Some(if j < rows.len() {
                        format!("latency not back before burst {}", rows[j].burst)
                    } else {
                        "latency not back by the end of the run".into()
                    });
                }
            }
        }
        out.push(b);
        i = last + 1;
    }
    out
}

/// The threshold figure `burst_recovery_s.max`: the longest recovery (0 without a burst,
/// `None` when one did not recover).
pub fn measure(metric: &str, found: &[BurstOutcome]) -> Option<f64> {
    match metric {
        "burst_recovery_s.max" => found
            .iter()
            .try_fold(0.0f64, |m, b| b.recovery_s.map(|r| m.max(r))),
        _ => None,
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(p99: &[f64]) -> Vec<IntervalRow> {
        p99.iter()
            .enumerate()
            .map(|(k, &p)| IntervalRow {
                t_s: (k + 1) as f64,
                message_p99_ms: p,
                msgs_received_per_s: if p > 0.0 { 10.0 } else { 0.0 },
                msgs_sent_per_s: 10.0,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn rows_overlapping_a_burst_are_marked() {
        let mut r = rows(&[1.0; 12]);
        let spec = MessageBurst {
            count: 10,
            every: Duration::from_secs(5),
            spread: Duration::from_millis(500),
        };
        mark(&mut r, &spec);
        let marked: Vec<u64> = r.iter().map(|r| r.burst).collect();
        // Burst 1 (5 s to 5.75 s with the lag) falls in (5, 6], burst 2 in (10, 11].
        assert_eq!(marked, [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0]);
        // A spread over two intervals marks both.
        let mut r = rows(&[1.0; 4]);
        mark(
            &mut r,
            &MessageBurst {
                count: 1,
                every: Duration::from_millis(1500),
                spread: Duration::from_millis(750),
            },
        );
        let marked: Vec<u64> = r.iter().map(|r| r.burst).collect();
        assert_eq!(marked, [0, 1, 1, 2]);
    }

    #[test]
    fn recovery_is_measured_against_the_baseline() {
        let mut r = rows(&[2.0, 2.0, 40.0, 30.0, 2.5, 2.0]);
        r[2].burst = 1;
        r[2].msgs_sent_per_s = 1000.0;
        let b = summarize(&r);
        assert_eq!(b.len(), 1);
        let b = &b[0];
        assert_eq!(b.start_s, 2.0);
        assert_eq!(b.baseline_p99_ms, Some(2.0));
        assert_eq!(b.p99_ms, 40.0);
        assert_eq!(b.peak_msgs_sent_per_s, 1000.0);
        // 2.5 ms is within 1 ms of 2 ms: back at the end of (4, 5].
        assert_eq!(b.recovery_s, Some(3.0));
        assert_eq!(
            measure("burst_recovery_s.max", std::slice::from_ref(b)),
            Some(3.0)
        );
    }

    #[test]
    fn no_recovery_before_the_next_burst() {
        let mut r = rows(&[2.0, 50.0, 50.0, 50.0]);
        r[1].burst = 1;
        r[3].burst = 2;
        let b = summarize(&r);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].recovery_s, None);
        assert!(b[0].note.as_deref().unwrap().contains("burst 2"));
        assert_eq!(measure("burst_recovery_s.max", &b), None);
        assert_eq!(measure("burst_recovery_s.max", &[]), Some(0.0));
    }
}
