//! Thresholds: `METRIC OP VALUE` conditions such as `message_rtt_ms.p99<200`.
//!
//! A threshold is written `metric OP value` with `OP` one of `<`, `<=`, `>`, `>=`, `==`,
//! `!=`; whitespace around the parts is allowed (`message_rtt_ms.p99 < 200`). The value is a
//! number (`0.95`, `200`, `1e3`), a count with a suffix (`10k`), or — for the rate metrics
//! (`connect_success_rate`, `messages.lost_rate`) — a percentage (`95%` = `0.95`).
//!
//! The metric names are a closed list, [`METRICS`]; each one is a figure of the report:
//!
//! | metric | report field |
//! |---|---|
//! | `connect_success_rate` | `connections.success_rate` (fraction 0–1; no data when nothing was attempted) |
//! | `attempted`, `established`, `failed`, `dropped`, `reconnects`, `peak_open` | `connections.*` |
//! | `tcp_connect_ms.STAT` | `timings.tcp_connect_ms.STAT` |
//! | `handshake_ms.STAT` | `timings.ws_handshake_ms.STAT` |
//! | `tls_handshake_ms.STAT` (wss:// only), `message_rtt_ms.STAT`, `ping_rtt_ms.STAT`, `heartbeat_rtt_ms.STAT`, `schedule_lag_ms.STAT` | `timings.*.STAT` |
//! | `messages.sent`, `messages.received`, `messages.lost`, `messages.lost_rate` | `messages.*` |
//! | `fanout_latency_ms.STAT`, `push_latency_ms.STAT` | `timings.*.STAT` |
//! | `pushes.received` | `pushes.received` |
//! | `misbehave.count`, `misbehave.flagged` | the sums of `misbehave[].count` / `misbehave[].flagged` (no data without misbehaving connections) |
//! | `session_duration_s.STAT` (seconds) | `connections.session_duration_s.STAT` |
//! | `memory.bytes_per_connection` | `memory.bytes_per_connection` |
//! | `gateway.bytes_per_connection`, `gateway.rss_peak_bytes`, `gateway.rss_growth_bytes_per_min`, `gateway.fds_max`, `gateway.established_at_peak`, `gateway.scrape_failures` | `gateway.*` (no data when nothing was watched) |
//! | `gateway.cpu_percent.mean`, `gateway.cpu_percent.max` | `gateway.cpu_percent.*` |
//! | `health_failures` | `gateway.health.failures` (no data without `--health-url`) |
//! | `drift.{message,ping,heartbeat}_rtt_ms.{p50,p99}`, `drift.client_rss_bytes_per_min` | the highest of `drift[].*` over the hold stages |
//! | `drift.msgs_per_s` | the lowest of `drift[].msgs_per_s` |
//! | `churn.sessions_completed`, `churn.arrivals_skipped`, `churn.opens_per_s.{mean,peak}`, `churn.closes_per_s.{mean,peak}`, `churn.session_s.mean` | `churn.*` (no data without churn or rate stages; see docs/churn.md) |
//! | `disruptions` | the number of `disruptions[]` (drop waves) |
//! | `recovery_s.max` | the longest `disruptions[].recovery_s` (0 without a disruption; no data when one never recovered) |
//! | `burst_recovery_s.max` | the longest `bursts[].recovery_s` (0 without a burst; no data when one did not recover) |
//!
//! with `STAT` one of `min`, `mean`, `p50`, `p90`, `p95`, `p99`, `p999`, `p9999`, `max`.
//! An unknown metric is an error that lists the valid names (grouped) and suggests the
//! closest one. Evaluation against a finished run is in `crate::metrics::thresholds`.

use std::fmt;

use crate::plan::suggest::edit_distance;

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    /// The operator as written (`<=`).
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// Whether `measured OP limit` holds.
    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
            Op::Eq => measured == limit,
            Op::Ne => measured != limit,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// One pass/fail condition on a report metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric name as written (`handshake_ms.p95`).
    pub metric: String,
    pub op: Op,
    pub value: f64,
    /// The expression as the user wrote it.
    pub expr: String,
}

/// Plain metrics (not histogram statistics).
const PLAIN: &[&str] = &[
    "connect_success_rate",
    "attempted",
    "established",
    "failed",
    "dropped",
    "peak_open",
    "reconnects",
    "messages.sent",
    "messages.received",
    "messages.lost",
    "messages.lost_rate",
    "memory.bytes_per_connection",
    "pushes.received",
    "misbehave.count",
    "misbehave.flagged",
    "gateway.bytes_per_connection",
    "gateway.rss_peak_bytes",
    "gateway.cpu_percent.mean",
    "gateway.cpu_percent.max",
    "gateway.rss_growth_bytes_per_min",
    "gateway.fds_max",
    "gateway.established_at_peak",
    "gateway.scrape_failures",
    "health_failures",
    "drift.message_rtt_ms.p50",
    "drift.message_rtt_ms.p99",
    "drift.ping_rtt_ms.p50",
    "drift.ping_rtt_ms.p99",
    "drift.heartbeat_rtt_ms.p50",
    "drift.heartbeat_rtt_ms.p99",
    "drift.msgs_per_s",
    "drift.client_rss_bytes_per_min",
    "churn.sessions_completed",
    "churn.arrivals_skipped",
    "churn.opens_per_s.mean",
    "churn.opens_per_s.peak",
    "churn.closes_per_s.mean",
    "churn.closes_per_s.peak",
    "churn.session_s.mean",
    "disruptions",
    "recovery_s.max",
    "burst_recovery_s.max",
];

/// Histograms, by threshold name: the latencies (ms) and `session_duration_s` (seconds).
pub const HISTOGRAMS: &[&str] = &[
    "tcp_connect_ms",
    "tls_handshake_ms",
    "handshake_ms",
    "message_rtt_ms",
    "ping_rtt_ms",
    "heartbeat_rtt_ms",
    "schedule_lag_ms",
    "fanout_latency_ms",
    "push_latency_ms",
    "session_duration_s",
];

/// Statistics of a latency histogram.
pub const STATS: &[&str] = &[
    "min", "mean", "p50", "p90", "p95", "p99", "p999", "p9999", "max",
];

/// Every valid metric name.
pub const METRICS: &[&str] = &[
    "connect_success_rate",
    "attempted",
    "established",
    "failed",
    "dropped",
    "peak_open",
    "reconnects",
    "tcp_connect_ms.min",
    "tcp_connect_ms.mean",
    "tcp_connect_ms.p50",
    "tcp_connect_ms.p90",
    "tcp_connect_ms.p95",
    "tcp_connect_ms.p99",
    "tcp_connect_ms.p999",
    "tcp_connect_ms.p9999",
    "tcp_connect_ms.max",
    "tls_handshake_ms.min",
    "tls_handshake_ms.mean",
    "tls_handshake_ms.p50",
    "tls_handshake_ms.p90",
    "tls_handshake_ms.p95",
    "tls_handshake_ms.p99",
    "tls_handshake_ms.p999",
    "tls_handshake_ms.p9999",
    "tls_handshake_ms.max",
    "handshake_ms.min",
    "handshake_ms.mean",
    "handshake_ms.p50",
    "handshake_ms.p90",
    "handshake_ms.p95",
    "handshake_ms.p99",
    "handshake_ms.p999",
    "handshake_ms.p9999",
    "handshake_ms.max",
    "message_rtt_ms.min",
    "message_rtt_ms.mean",
    "message_rtt_ms.p50",
    "message_rtt_ms.p90",
    "message_rtt_ms.p95",
    "message_rtt_ms.p99",
    "message_rtt_ms.p999",
    "message_rtt_ms.p9999",
    "message_rtt_ms.max",
    "ping_rtt_ms.min",
    "ping_rtt_ms.mean",
    "ping_rtt_ms.p50",
    "ping_rtt_ms.p90",
    "ping_rtt_ms.p95",
    "ping_rtt_ms.p99",
    "ping_rtt_ms.p999",
    "ping_rtt_ms.p9999",
    "ping_rtt_ms.max",
    "heartbeat_rtt_ms.min",
    "heartbeat_rtt_ms.mean",
    "heartbeat_rtt_ms.p50",
    "heartbeat_rtt_ms.p90",
    "heartbeat_rtt_ms.p95",
    "heartbeat_rtt_ms.p99",
    "heartbeat_rtt_ms.p999",
    "heartbeat_rtt_ms.p9999",
    "heartbeat_rtt_ms.max",
    "schedule_lag_ms.min",
    "schedule_lag_ms.mean",
    "schedule_lag_ms.p50",
    "schedule_lag_ms.p90",
    "schedule_lag_ms.p95",
    "schedule_lag_ms.p99",
    "schedule_lag_ms.p999",
    "schedule_lag_ms.p9999",
    "schedule_lag_ms.max",
    "fanout_latency_ms.min",
    "fanout_latency_ms.mean",
    "fanout_latency_ms.p50",
    "fanout_latency_ms.p90",
    "fanout_latency_ms.p95",
    "fanout_latency_ms.p99",
    "fanout_latency_ms.p999",
    "fanout_latency_ms.p9999",
    "fanout_latency_ms.max",
    "push_latency_ms.min",
    "push_latency_ms.mean",
    "push_latency_ms.p50",
    "push_latency_ms.p90",
    "push_latency_ms.p95",
    "push_latency_ms.p99",
    "push_latency_ms.p999",
    "push_latency_ms.p9999",
    "push_latency_ms.max",
    "session_duration_s.min",
    "session_duration_s.mean",
    "session_duration_s.p50",
    "session_duration_s.p90",
    "session_duration_s.p95",
    "session_duration_s.p99",
    "session_duration_s.p999",
    "session_duration_s.p9999",
    "session_duration_s.max",
    "messages.sent",
    "messages.received",
    "messages.lost",
    "messages.lost_rate",
    "memory.bytes_per_connection",
    "pushes.received",
    "misbehave.count",
    "misbehave.flagged",
    "gateway.bytes_per_connection",
    "gateway.rss_peak_bytes",
    "gateway.cpu_percent.mean",
    "gateway.cpu_percent.max",
    "gateway.rss_growth_bytes_per_min",
    "gateway.fds_max",
    "gateway.established_at_peak",
    "gateway.scrape_failures",
    "health_failures",
    "drift.message_rtt_ms.p50",
    "drift.message_rtt_ms.p99",
    "drift.ping_rtt_ms.p50",
    "drift.ping_rtt_ms.p99",
    "drift.heartbeat_rtt_ms.p50",
    "drift.heartbeat_rtt_ms.p99",
    "drift.msgs_per_s",
    "drift.client_rss_bytes_per_min",
    "churn.sessions_completed",
    "churn.arrivals_skipped",
    "churn.opens_per_s.mean",
    "churn.opens_per_s.peak",
    "churn.closes_per_s.mean",
    "churn.closes_per_s.peak",
    "churn.session_s.mean",
    "disruptions",
    "recovery_s.max",
    "burst_recovery_s.max",
];

/// Metrics that are fractions 0–1 and accept a percentage value (`95%`).
const RATES: &[&str] = &["connect_success_rate", "messages.lost_rate"];

/// Why a threshold expression was rejected. Every message quotes the expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// No operator, a lone `=`, an empty side.
    #[error(
        "{expr:?} is not a threshold: {reason} (expected METRIC OP VALUE, e.g. \"message_rtt_ms.p99<200\" or \"connect_success_rate>=0.95\"; OP is one of < <= > >= == !=)"
    )]
    Syntax { expr: String, reason: String },
    /// The metric is not one of [`METRICS`].
    #[error(
        "{expr:?}: unknown metric {metric:?}{suggestion}; valid metrics: {}",
        valid_metrics_text()
    )]
    UnknownMetric {
        expr: String,
        metric: String,
        /// `" (did you mean \"x\"?)"` or empty.
        suggestion: String,
    },
    /// The value is not a number.
    #[error("{expr:?}: {value:?} is not a number (expected e.g. 200, 0.95, 10k{})", if *rate { ", 95%" } else { "" })]
    Value {
        expr: String,
        value: String,
        /// The metric is a rate (a percentage is accepted).
        rate: bool,
    },
    /// A rate compared with a value outside 0–1: it could never pass (or never fail).
    #[error(
        "{expr:?}: a rate is a fraction from 0 to 1, so {value} can never be reached; did you mean {suggestion}?"
    )]
    RateOutOfRange {
        expr: String,
        value: f64,
        suggestion: String,
    },
}

/// The valid metric names, grouped for an error message:
/// `connect_success_rate, …, {tcp_connect_ms,…}.{min,…,max}, messages.sent, …`.
pub fn valid_metrics_text() -> String {
    let plain_counts: Vec<&str> = PLAIN.iter().copied().filter(|m| !m.contains('.')).collect();
    let dotted: Vec<&str> = PLAIN.iter().copied().filter(|m| m.contains('.')).collect();
    format!(
        "{}, {{{}}}.{{{}}}, {}",
        plain_counts.join(", "),
        HISTOGRAMS.join(","),
        STATS.join(","),
        dotted.join(", ")
    )
}

/// Parse `metric OP value` (see the module docs).
pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
    let syntax = |reason: &str| ThresholdError::Syntax {
        expr: expr.to_string(),
        reason: reason.to_string(),
    };
    let Some(at) = expr.find(['<', '>', '=', '!']) else {
        return Err(syntax("no comparison operator"));
    };
    let rest = &expr[at..];
    let (op, len) = if rest.starts_with("<=") {
        (Op::Le, 2)
    } else if rest.starts_with(">=") {
        (Op::Ge, 2)
    } else if rest.starts_with("==") {
        (Op::Eq, 2)
    } else if rest.starts_with("!=") {
        (Op::Ne, 2)
    } else if rest.starts_with('<') {
        (Op::Lt, 1)
    } else if rest.starts_with('>') {
        (Op::Gt, 1)
    } else if rest.starts_with('=') {
        return Err(syntax("'=' is not an operator, write '=='"));
    } else {
        return Err(syntax("'!' must be followed by '=' ('!=')"));
    };
    let written = expr[..at].trim();
    // The JSON report calls the upgrade histogram `ws_handshake_ms`; accept that name too.
    let alias = written
        .strip_prefix("ws_handshake_ms.")
        .map(|stat| format!("handshake_ms.{stat}"));
    let metric = alias.as_deref().unwrap_or(written);
    let value = expr[at + len..].trim();
    if metric.is_empty() {
        return Err(syntax("the metric name is missing"));
    }
    if value.is_empty() {
        return Err(syntax("the value is missing"));
    }
    if value.starts_with(['<', '>', '=', '!']) {
        return Err(syntax("more than one operator"));
    }
    if !METRICS.contains(&metric) {
        return Err(ThresholdError::UnknownMetric {
            expr: expr.to_string(),
            metric: metric.to_string(),
            suggestion: suggest(metric)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default(),
        });
    }
    let rate = RATES.contains(&metric);
    let value_text = value;
    let value = parse_value(value, rate).ok_or_else(|| ThresholdError::Value {
        expr: expr.to_string(),
        value: value.to_string(),
        rate,
    })?;
    if rate && !(0.0..=1.0).contains(&value) {
        let suggestion = if (1.0..=100.0).contains(&value) {
            let pct = value_text.trim_end_matches('%');
            format!("{} or {pct}%", value / 100.0)
        } else {
            "a value from 0 to 1 (e.g. 0.95, or 95%)".to_string()
        };
        return Err(ThresholdError::RateOutOfRange {
            expr: expr.trim().to_string(),
            value,
            suggestion,
        });
    }
    Ok(Threshold {
        metric: metric.to_string(),
        op,
        value,
        expr: expr.trim().to_string(),
    })
}

/// A finite number, a count with a suffix (`10k`), or for rates a percentage.
fn parse_value(s: &str, rate: bool) -> Option<f64> {
    if rate && let Some(pct) = s.strip_suffix('%') {
        let v: f64 = pct.trim().parse().ok()?;
        return v.is_finite().then_some(v / 100.0);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(v),
        Ok(_) => None,
        Err(_) => crate::plan::units::parse_count(s).ok().map(|n| n as f64),
    }
}

/// The closest valid metric name, when one is close enough to be a typo.
pub fn suggest(metric: &str) -> Option<&'static str> {
    METRICS
        .iter()
        .map(|m| (edit_distance(metric, m), *m))
        .filter(|(d, m)| *d <= 2.max(m.len() / 5))
        .min()
        .map(|(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_list_is_the_product() {
        let mut expected: Vec<String> = PLAIN
            .iter()
            .map(|s| s.to_string())
            .chain(
                HISTOGRAMS
                    .iter()
                    .flat_map(|h| STATS.iter().map(move |s| format!("{h}.{s}"))),
            )
            .collect();
        let mut got: Vec<String> = METRICS.iter().map(|s| s.to_string()).collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
    }
}
