//! Drift over a hold: does the gateway get slower, or fatter, the longer it holds?
//!
//! For every hold stage (a stage whose target equals the previous one, with a non-zero
//! duration) the [`DriftRecorder`] — fed by the time series once per interval — merges the
//! interval histograms of the **first** and the **last quarter** of the hold: message, ping
//! and heartbeat round trips, and the timed messages received. An interval belongs to the
//! quarter its midpoint falls in. The histograms are merged, not averaged, so the quarter's
//! p99 is the exact p99 of every sample in that quarter (fixed memory: two sets of three
//! HdrHistograms per hold stage).
//!
//! [`hold_drift`] turns those quarters, the client RSS of the time series and the gateway's
//! RSS samples into one [`HoldDrift`] per hold: last ÷ first ratios (p50, p99, msgs/s) and RSS
//! slopes (least squares over the whole hold, bytes per minute, and per held connection).
//! A figure past its bound ([`P99_RATIO_BOUND`], [`RSS_SLOPE_BOUND`], …) adds a note the text
//! summary prints ("gateway RSS grew 14.0 MiB/min during hold 2/3: leak?").

use serde::{Deserialize, Serialize};

use super::{Hist, Snapshot, quantile_ms};
use crate::plan::Stage;

/// A latency ratio (last quarter ÷ first quarter) above this gets a note.
pub const P99_RATIO_BOUND: f64 = 1.1;
/// A msgs/s ratio below this gets a note.
pub const RATE_RATIO_BOUND: f64 = 0.9;
/// An RSS slope above this (bytes per minute) gets a note.
pub const RSS_SLOPE_BOUND: f64 = 1_000_000.0;

/// The figures of one quarter of a hold.
#[derive(Debug, Clone, Default)]
pub struct Quarter {
    pub message_rtt: Hist,
    pub ping_rtt: Hist,
    pub heartbeat_rtt: Hist,
    pub messages_received: u64,
    /// Seconds of intervals merged into this quarter.
    pub seconds: f64,
}

impl Quarter {
    fn add(&mut self, iv: &Snapshot, span_s: f64) {
        self.message_rtt.merge(&iv.hist.message_rtt);
        self.ping_rtt.merge(&iv.hist.ping_rtt);
        self.heartbeat_rtt.merge(&iv.hist.heartbeat_rtt);
        self.messages_received += iv.counters.messages_received;
        self.seconds += span_s;
    }

    fn msgs_per_s(&self) -> Option<f64> {
        (self.seconds > 0.0 && self.messages_received > 0)
            .then(|| self.messages_received as f64 / self.seconds)
    }
}

/// First and last quarter of one hold stage.
#[derive(Debug, Clone, Default)]
pub struct HoldQuarters {
    /// 1-based stage number.
    pub stage: usize,
    /// Stages in the plan (for "hold 2/3").
    pub stages: usize,
    /// Start and end of the hold, seconds since the start of the first stage.
    pub from_s: f64,
    pub to_s: f64,
    /// Connections the stage holds.
    pub target: u64,
    pub first: Quarter,
    pub last: Quarter,
}

/// Collects [`HoldQuarters`] for every hold stage, one interval at a time.
#[derive(Debug, Clone, Default)]
pub struct DriftRecorder {
    holds: Vec<HoldQuarters>,
}

impl DriftRecorder {
    /// A recorder for the hold stages of `stages`.
    pub fn new(stages: &[Stage]) -> Self {
        let mut holds = Vec::new();
        let mut t = 0.0;
        let mut prev = 0u64;
        for (i, s) in stages.iter().enumerate() {
            let d = s.duration.as_secs_f64();
            if i > 0 && s.target == prev && d > 0.0 {
                holds.push(HoldQuarters {
                    stage: i + 1,
                    stages: stages.len(),
                    from_s: t,
                    to_s: t + d,
                    target: s.target,
                    ..Default::default()
                });
            }
            t += d;
            prev = s.target;
        }
        DriftRecorder { holds }
    }

    /// Add the interval `[from_s, to_s]` (seconds since the start) with its deltas `iv`.
    pub fn add(&mut self, from_s: f64, to_s: f64, iv: &Snapshot) {
        let mid = (from_s + to_s) / 2.0;
        let span = (to_s - from_s).max(0.0);
        for h in &mut self.holds {
            let q = (h.to_s - h.from_s) / 4.0;
            if mid >= h.from_s && mid < h.from_s + q {
                h.first.add(iv, span);
            } else if mid >= h.to_s - q && mid < h.to_s {
                h.last.add(iv, span);
            }
        }
    }

    /// The quarters recorded.
    pub fn into_holds(self) -> Vec<HoldQuarters> {
        self.holds
    }
}

/// p50 and p99 ratios (last quarter ÷ first quarter) of one latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioPair {
    pub p50: f64,
    pub p99: f64,
}

/// Drift over one hold stage (the JSON report's `drift[]` element).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldDrift {
    /// 1-based stage number.
    pub stage: usize,
    /// Start and end of the hold, seconds since the start of the first stage.
    pub from_s: f64,
    pub to_s: f64,
    /// Last ÷ first quarter; `null` when either quarter had no sample.
    pub message_rtt_ms: Option<RatioPair>,
    pub ping_rtt_ms: Option<RatioPair>,
    pub heartbeat_rtt_ms: Option<RatioPair>,
    /// Timed messages received per second, last ÷ first quarter.
    pub msgs_per_s: Option<f64>,
    /// Client RSS slope over the hold (least squares), bytes per minute, and per held
    /// connection.
    pub client_rss_bytes_per_min: Option<f64>,
    pub client_rss_bytes_per_min_per_connection: Option<f64>,
    /// Gateway RSS slope over the hold (`null` when no gateway was watched).
    pub gateway_rss_bytes_per_min: Option<f64>,
    pub gateway_rss_bytes_per_min_per_connection: Option<f64>,
    /// One sentence per figure past its bound.
    pub notes: Vec<String>,
}

/// Least-squares slope of `(t_s, value)` points, per minute; `None` under 3 points or no
/// time spread.
pub fn slope_per_min(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mv = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var: f64 = points.iter().map(|p| (p.0 - mt).powi(2)).sum();
    if var <= 0.0 {
        return None;
    }
    let cov: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - mv)).sum();
    Some(cov / var * 60.0)
}

fn ratio_pair(first: &Hist, last: &Hist) -> Option<RatioPair> {
    if first.is_empty() || last.is_empty() {
        return None;
    }
    let r = |q: f64| {
        let a = quantile_ms(first, q).max(0.001);
        ratio(quantile_ms(last, q).max(0.001), a)
    };
    Some(RatioPair {
        p50: r(0.5),
        p99: r(0.99),
    })
}

/// `a ÷ b` rounded to three decimals.
fn ratio(a: f64, b: f64) -> f64 {
    ((a / b) * 1000.0).round() / 1000.0
}

/// Drift of one hold from its quarters, the client RSS points `(t_s, bytes)` and the
/// gateway RSS points (both over the whole run; only those inside the hold are used).
pub fn hold_drift(h: &HoldQuarters, client: &[(f64, f64)], gateway: &[(f64, f64)]) -> HoldDrift {
    let inside = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .copied()
            .filter(|p| p.0 >= h.from_s && p.0 <= h.to_s)
            .collect()
    };
    let client_slope = slope_per_min(&inside(client));
    let gateway_slope = slope_per_min(&inside(gateway));
    let per_conn = |v: Option<f64>| v.filter(|_| h.target > 0).map(|v| v / h.target as f64);
    let msgs = match (h.first.msgs_per_s(), h.last.msgs_per_s()) {
        (Some(a), Some(b)) => Some(ratio(b, a)),
        _ => None,
    };
    let mut d = HoldDrift {
        stage: h.stage,
        from_s: h.from_s,
        to_s: h.to_s,
        message_rtt_ms: ratio_pair(&h.first.message_rtt, &h.last.message_rtt),
        ping_rtt_ms: ratio_pair(&h.first.ping_rtt, &h.last.ping_rtt),
        heartbeat_rtt_ms: ratio_pair(&h.first.heartbeat_rtt, &h.last.heartbeat_rtt),
        msgs_per_s: msgs,
        client_rss_bytes_per_min: client_slope,
        client_rss_bytes_per_min_per_connection: per_conn(client_slope),
        gateway_rss_bytes_per_min: gateway_slope,
        gateway_rss_bytes_per_min_per_connection: per_conn(gateway_slope),
        notes: Vec::new(),
    };
    let hold = format!("hold {}/{}", h.stage, h.stages);
    for (name, r) in [
        ("message", d.message_rtt_ms),
        ("ping", d.ping_rtt_ms),
        ("heartbeat", d.heartbeat_rtt_ms),
    ] {
        if let Some(r) = r
            && r.p99 > P99_RATIO_BOUND
        {
            d.notes.push(format!(
                "{name} p99 rose {:.0}% from the first to the last quarter of {hold} (×{:.2}; p50 ×{:.2})",
                (r.p99 - 1.0) * 100.0,
                r.p99,
                r.p50
            ));
        }
    }
    if let Some(r) = d.msgs_per_s
        && r < RATE_RATIO_BOUND
    {
        d.notes.push(format!(
            "messages received per second fell {:.0}% from the first to the last quarter of {hold}",
            (1.0 - r) * 100.0
        ));
    }
    for (who, slope) in [("gateway", gateway_slope), ("client", client_slope)] {
        if let Some(s) = slope
            && s > RSS_SLOPE_BOUND
        {
            d.notes.push(format!(
                "{who} RSS grew {:.1} MiB/min during {hold}: leak?",
                s / (1024.0 * 1024.0)
            ));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stage(s: u64, target: u64) -> Stage {
        Stage {
            duration: Duration::from_secs(s),
            target,
        }
    }

    #[test]
    fn finds_hold_stages_and_their_quarters() {
        let r = DriftRecorder::new(&[stage(10, 100), stage(40, 100), stage(5, 0)]);
        let holds = r.into_holds();
        assert_eq!(holds.len(), 1);
        assert_eq!(
            (holds[0].stage, holds[0].from_s, holds[0].to_s),
            (2, 10.0, 50.0)
        );
    }

    #[test]
    fn slope_is_per_minute() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 1000.0 * i as f64)).collect();
        assert!((slope_per_min(&pts).unwrap() - 60_000.0).abs() < 1e-6);
        assert_eq!(slope_per_min(&pts[..2]), None);
    }

    #[test]
    fn latency_and_leak_notes() {
        let mut r = DriftRecorder::new(&[stage(1, 10), stage(8, 10)]);
        let mut early = Snapshot::default();
        early.hist.message_rtt.record(1000).unwrap();
        let mut late = Snapshot::default();
        late.hist.message_rtt.record(2000).unwrap();
        r.add(1.0, 2.0, &early);
        r.add(8.0, 9.0, &late);
        let h = &r.into_holds()[0];
        let gw: Vec<(f64, f64)> = (1..=9).map(|t| (t as f64, 1e7 * t as f64)).collect();
        let d = hold_drift(h, &[], &gw);
        assert_eq!(d.message_rtt_ms.unwrap().p99, 2.0);
        assert!(
            d.notes
                .iter()
                .any(|n| n.starts_with("message p99 rose 100%"))
        );
        assert!(
            d.notes.iter().any(|n| n.contains("gateway RSS grew")),
            "{:?}",
            d.notes
        );
    }
}
