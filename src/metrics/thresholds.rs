//! Threshold verdicts: [`evaluate`] checks each [`Threshold`] against a finished run, and
//! [`cannot_be_met`] tells the controller, during a run, that a threshold is already lost
//! (for `--abort-on-fail`).
//!
//! Measured values are the report's own figures (the same rounding as the JSON: latencies in
//! milliseconds with three decimals), so a verdict can always be checked by reading the
//! report. A metric without data — a percentile of an empty histogram, a success rate with
//! no attempt, a loss rate with no message sent, memory per connection with none open — is
//! `measured: None` and fails its threshold: a run that measured nothing proves nothing.
//!
//! [`cannot_be_met`] is deliberately conservative: it says "lost" only when no future can
//! rescue the threshold. Counters only grow, a histogram's `max` only grows and its `min`
//! only shrinks, so an upper bound on a counter or on `max` (and a lower bound on `min`) that
//! is already crossed stays crossed. `connect_success_rate` can only be rescued by more
//! successful attempts, of which the plan allows a bounded number (see [`cannot_be_met`]).
//! Percentiles, means and `messages.lost_rate` can still move either way: never lost early.

use super::Snapshot;
use super::outcome::{RunOutcome, ThresholdOutcome};
use super::percentiles::Percentiles;
use crate::plan::Plan;
use crate::plan::threshold::{Op, Threshold};

/// Verdicts for `ts` against the run `o`, in the given order.
pub fn evaluate(ts: &[Threshold], o: &RunOutcome) -> Vec<ThresholdOutcome> {
    ts.iter()
        .map(|t| {
            let measured = measure(&t.metric, o);
            ThresholdOutcome {
                expr: t.expr.clone(),
                metric: t.metric.clone(),
                measured,
                passed: measured.is_some_and(|v| t.op.holds(v, t.value)),
            }
        })
        .collect()
}

/// The value of a metric in a finished run (`None`: no data, or an unknown name).
pub fn measure(metric: &str, o: &RunOutcome) -> Option<f64> {
    let c = &o.totals.counters;
    let count = |n: u64| Some(n as f64);
    match metric {
        "connect_success_rate" => (c.attempted > 0).then(|| o.success_rate()),
        "attempted" => count(c.attempted),
        "established" => count(c.established),
        "failed" => count(c.failed),
        "dropped" => count(c.dropped),
        "reconnects" => count(c.reconnects),
        "peak_open" => count(o.peak_open),
        "messages.sent" => count(c.messages_sent),
        "messages.received" => count(c.messages_received),
        "messages.lost" => count(c.messages_lost),
        "messages.lost_rate" => {
            (c.messages_sent > 0).then(|| c.messages_lost as f64 / c.messages_sent as f64)
        }
        "memory.bytes_per_connection" => o.bytes_per_connection(),
        "pushes.received" => count(c.pushes_received),
        m if m.starts_with("churn.") => super::churn::measure(m, o),
        "misbehave.count" => (!c.misbehave.is_empty()).then(|| c.misbehave.count() as f64),
        "misbehave.flagged" => (!c.misbehave.is_empty()).then(|| c.misbehave.flagged() as f64),
        "disruptions" | "recovery_s.max" => super::disruption::measure(metric, &o.disruptions()),
        "burst_recovery_s.max" => super::bursts::measure(metric, &o.bursts()),
        m if m.starts_with("gateway.") || m.starts_with("drift.") || m == "health_failures" => {
            super::gateway::measure(m, o)
        }
        _ => {
            let (hist, stat) = metric.split_once('.')?;
            let p = Percentiles::from_hist(histogram(hist, &o.totals)?);
            if p.count == 0 {
                return None;
            }
            Some(match stat {
                "min" => p.min,
                "mean" => p.mean,
                "p50" => p.p50,
                "p90" => p.p90,
                "p95" => p.p95,
                "p99" => p.p99,
                "p999" => p.p999,
                "p9999" => p.p9999,
                "max" => p.max,
                _ => return None,
            })
        }
    }
}

/// The histogram behind a threshold's histogram name (`handshake_ms` → `ws_handshake`).
fn histogram<'a>(name: &str, s: &'a Snapshot) -> Option<&'a hdrhistogram::Histogram<u64>> {
    let h = &s.hist;
    Some(match name {
        "tcp_connect_ms" => &h.tcp_connect,
        "tls_handshake_ms" => &h.tls_handshake,
        "handshake_ms" => &h.ws_handshake,
        "message_rtt_ms" => &h.message_rtt,
        "ping_rtt_ms" => &h.ping_rtt,
        "heartbeat_rtt_ms" => &h.heartbeat_rtt,
        "schedule_lag_ms" => &h.schedule_lag,
        "fanout_latency_ms" => &h.fanout_latency,
        "push_latency_ms" => &h.push_latency,
        // Recorded in ms: its percentiles read as seconds.
        "session_duration_s" => &h.session_duration,
        _ => return None,
    })
}

/// The most connection attempts `plan` can make in total, or `None` when that is unbounded
/// (`--reconnect` re-opens failed connections without limit; churn and rate stages open
/// new connections for as long as they last). Otherwise every attempt is a step up of the
/// stage targets: the sum of the increases (a plain ramp/hold/ramp-down gives the peak).
pub fn planned_attempts(plan: &Plan) -> Option<u64> {
    if plan.reconnect.is_some() || plan.churn.is_some() || plan.arrival.is_some() {
        return None;
    }
    let mut level = 0u64;
    let mut total = 0u64;
    for s in &plan.stages {
        total = total.saturating_add(s.target.saturating_sub(level));
        level = s.target;
    }
    Some(total)
}

/// True when threshold `t` is already lost, whatever happens for the rest of the run, given
/// the run's totals so far (`totals`: counters summed since the start, histograms over the
/// run, gauges current).
///
/// `planned_peak` bounds the number of connection attempts the whole run can make; pass
/// [`planned_attempts`]`(plan).unwrap_or(u64::MAX)` (for a plain ramp/hold/ramp-down without
/// reconnects that is the peak). It only matters for `connect_success_rate`, which is lost
/// when even with every remaining attempt succeeding the rate stays below the bound:
/// `(failed + aborted) > (1 − X) × max(planned_peak, attempted)`.
///
/// Monotonic figures: counters (`attempted`, `established`, `failed`, `dropped`,
/// `reconnects`, `messages.sent/received/lost`, `pushes.received`) and `peak_open` only grow, so `<`, `<=` and
/// `==` are lost once crossed; a histogram's `max` only grows (same rule) and its `min` only
/// shrinks (`>`, `>=`, `==` lost once crossed). Everything else — percentiles, means,
/// `messages.lost_rate`, memory — can still move and is never lost early.
pub fn cannot_be_met(t: &Threshold, totals: &Snapshot, planned_peak: u64) -> bool {
    let c = &totals.counters;
    let grows = |now: u64| upper_bound_crossed(t.op, now as f64, t.value);
    match t.metric.as_str() {
        "attempted" => grows(c.attempted),
        "established" => grows(c.established),
        "failed" => grows(c.failed),
        "dropped" => grows(c.dropped),
        "reconnects" => grows(c.reconnects),
        // The peak is at least what is open now.
        "peak_open" => grows(totals.gauges.open),
        "messages.sent" => grows(c.messages_sent),
        "messages.received" => grows(c.messages_received),
        "messages.lost" => grows(c.messages_lost),
        "pushes.received" => grows(c.pushes_received),
        "churn.sessions_completed" => grows(c.churn_closes),
        "churn.arrivals_skipped" => grows(c.arrivals_skipped),
        "misbehave.count" => grows(c.misbehave.count()),
        "misbehave.flagged" => grows(c.misbehave.flagged()),
        "connect_success_rate" => {
            let cap = planned_peak.max(c.attempted);
            if cap == 0 {
                return false;
            }
            let never = c.failed.saturating_add(c.aborted).min(cap);
            let best = (cap - never) as f64 / cap as f64;
            match t.op {
                Op::Ge => best < t.value,
                Op::Gt => best <= t.value,
                Op::Eq => best < t.value,
                _ => false,
            }
        }
        m => {
            let Some((hist, stat)) = m.split_once('.') else {
                return false;
            };
            let Some(h) = histogram(hist, totals) else {
                return false;
            };
            if h.is_empty() {
                return false;
            }
            let p = Percentiles::from_hist(h);
            match stat {
                "max" => upper_bound_crossed(t.op, p.max, t.value),
                "min" => lower_bound_crossed(t.op, p.min, t.value),
                _ => false,
            }
        }
    }
}

/// For a figure that can only grow from `now`: is `figure OP limit` false forever?
fn upper_bound_crossed(op: Op, now: f64, limit: f64) -> bool {
    match op {
        Op::Lt => now >= limit,
        Op::Le | Op::Eq => now > limit,
        Op::Gt | Op::Ge | Op::Ne => false,
    }
}

/// For a figure that can only shrink from `now`: is `figure OP limit` false forever?
fn lower_bound_crossed(op: Op, now: f64, limit: f64) -> bool {
    match op {
        Op::Gt => now <= limit,
        Op::Ge | Op::Eq => now < limit,
        Op::Lt | Op::Le | Op::Ne => false,
    }
}

/// `--abort-on-fail`: the one rule every run mode (one process, `--processes`, coordinator)
/// uses to decide that a threshold is lost for good. Built from the plan, so the bound on
/// connection attempts is always [`planned_attempts`] — never the peak, which under
/// `--reconnect` or a plan that ramps twice is too small.
#[derive(Debug, Clone)]
pub struct AbortRule {
    thresholds: Vec<Threshold>,
    planned_attempts: u64,
}

impl AbortRule {
    /// The rule for `plan`, or `None` when the plan does not abort on failure.
    pub fn for_plan(plan: &Plan) -> Option<AbortRule> {
        (plan.abort_on_fail && !plan.thresholds.is_empty()).then(|| AbortRule {
            thresholds: plan.thresholds.clone(),
            planned_attempts: planned_attempts(plan).unwrap_or(u64::MAX),
        })
    }

    /// The first threshold already lost given the run's totals so far.
    pub fn lost(&self, totals: &Snapshot) -> Option<&Threshold> {
        self.thresholds
            .iter()
            .find(|t| cannot_be_met(t, totals, self.planned_attempts))
    }
}
