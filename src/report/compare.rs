//! `wsscale report compare BASE.json NEW.json [--max-regression BOUND …]`: the headline
//! figures of two reports side by side (base → new, delta, %), and bounds on how much worse
//! the new run may be — a CI guard against regressions.
//!
//! Figures are the threshold metrics (`crate::plan::threshold::METRICS`, same names, same
//! values): each report is read back into a [`RunOutcome`] with [`super::merge`] (so merged
//! cluster reports work, and percentiles come from the exact histograms) and measured with
//! [`crate::metrics::thresholds::measure`]. A progressive run's report is compared step by
//! step (step 1 with step 1, …).
//!
//! A bound is `METRIC=+N%` (NEW may be at most N % worse than BASE) or `METRIC=+N` /
//! `METRIC=+Nms` (at most N worse, in the metric's own unit; `ms` only for `_ms` metrics).
//! "Worse" follows the metric: higher for latencies, failures, drops, losses and memory,
//! lower for `connect_success_rate`, `established`, `peak_open`, the received/sent counts and
//! the churn rates and completed sessions.
//! A bound on a metric with no data in one of the reports counts as exceeded (fail closed),
//! and so does a step of BASE that NEW does not have.

use std::fmt::Write as _;

use super::document::Document;
use super::merge::{Input, MergeError, merge};
use crate::metrics::RunOutcome;
use crate::metrics::thresholds::measure;
use crate::plan::threshold::{METRICS, suggest, valid_metrics_text};

/// Exit code when a bound is exceeded (the same as a failed threshold).
pub const EXIT_REGRESSION: i32 = 99;

/// The figures the table shows, in order (plus any metric a bound names).
pub const HEADLINE: &[&str] = &[
    "connect_success_rate",
    "peak_open",
    "established",
    "failed",
    "dropped",
    "reconnects",
    "tcp_connect_ms.p50",
    "tcp_connect_ms.p99",
    "tls_handshake_ms.p99",
    "handshake_ms.p50",
    "handshake_ms.p99",
    "message_rtt_ms.p50",
    "message_rtt_ms.p99",
    "message_rtt_ms.p999",
    "ping_rtt_ms.p99",
    "heartbeat_rtt_ms.p99",
    "schedule_lag_ms.p99",
    "fanout_latency_ms.p99",
    "push_latency_ms.p99",
    "messages.sent",
    "messages.received",
    "messages.lost_rate",
    "memory.bytes_per_connection",
    "churn.opens_per_s.mean",
    "churn.sessions_completed",
    "churn.arrivals_skipped",
];

/// Metrics where a higher value is better.
const HIGHER_IS_BETTER: &[&str] = &[
    "connect_success_rate",
    "attempted",
    "established",
    "peak_open",
    "messages.sent",
    "messages.received",
    "pushes.received",
    "churn.opens_per_s.mean",
    "churn.opens_per_s.peak",
    "churn.closes_per_s.mean",
    "churn.closes_per_s.peak",
    "churn.sessions_completed",
];

/// Bad input: a bound that does not parse, reports that cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(
        "--max-regression {expr:?}: {reason} (expected METRIC=+N% or METRIC=+N, e.g. \
         'message_rtt_ms.p99=+10%', 'handshake_ms.p99=+5ms', 'dropped=+0')"
    )]
    Syntax { expr: String, reason: String },
    #[error(
        "--max-regression {expr:?}: unknown metric {metric:?}{suggestion}; valid metrics: {}",
        valid_metrics_text()
    )]
    UnknownMetric {
        expr: String,
        metric: String,
        suggestion: String,
    },
    #[error(
        "{base} is {} but {new} is {}: compare two single-run reports or two progressive reports",
        kind(*base_progressive),
        kind(!*base_progressive)
    )]
    Mismatch {
        base: String,
        new: String,
        base_progressive: bool,
    },
    #[error(transparent)]
    Merge(#[from] MergeError),
}

fn kind(progressive: bool) -> &'static str {
    if progressive {
        "a progressive report (steps)"
    } else {
        "a single-run report"
    }
}

/// How much worse NEW may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Allowance {
    /// A fraction of BASE (`+10%` → 0.10).
    Relative(f64),
    /// An amount in the metric's unit (`+5ms` → 5.0).
    Absolute(f64),
}

/// One `--max-regression` bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub metric: String,
    pub allowance: Allowance,
    /// As written.
    pub expr: String,
}

/// Parse `METRIC=+N%`, `METRIC=+N` or `METRIC=+Nms`.
pub fn parse_bound(expr: &str) -> Result<Bound, CompareError> {
    let syntax = |reason: &str| CompareError::Syntax {
        expr: expr.to_string(),
        reason: reason.to_string(),
    };
    let (metric, value) = expr.split_once('=').ok_or_else(|| syntax("no `=`"))?;
    let metric = metric.trim();
    if !METRICS.contains(&metric) {
        return Err(CompareError::UnknownMetric {
            expr: expr.to_string(),
            metric: metric.to_string(),
            suggestion: suggest(metric)
                .map(|m| format!(" (did you mean {m:?}?)"))
                .unwrap_or_default(),
        });
    }
    let value = value.trim();
    let Some(amount) = value.strip_prefix('+') else {
        return Err(syntax(
            "the allowance starts with + (how much worse NEW may be than BASE)",
        ));
    };
    let number = |s: &str| -> Result<f64, CompareError> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| syntax(&format!("{s:?} is not a non-negative number")))
    };
    let allowance = if let Some(pct) = amount.strip_suffix('%') {
        Allowance::Relative(number(pct)? / 100.0)
    } else if let Some(ms) = amount.strip_suffix("ms") {
        if !metric.contains("_ms.") {
            return Err(syntax(&format!(
                "`ms` is the unit of latency metrics, not of {metric}; give a plain number or a %"
            )));
        }
        Allowance::Absolute(number(ms)?)
    } else {
        Allowance::Absolute(number(amount)?)
    };
    Ok(Bound {
        metric: metric.to_string(),
        allowance,
        expr: expr.to_string(),
    })
}

/// Whether a higher value of `metric` is better.
pub fn higher_is_better(metric: &str) -> bool {
    HIGHER_IS_BETTER.contains(&metric)
}

/// One metric of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// The bound on this metric and whether it held.
    pub bound: Option<(String, bool)>,
}

impl Row {
    /// new − base.
    pub fn delta(&self) -> Option<f64> {
        Some(self.new? - self.base?)
    }

    /// (new − base) ÷ base in percent; `None` when base is 0 or missing.
    pub fn percent(&self) -> Option<f64> {
        let base = self.base?;
        (base != 0.0).then(|| self.delta().map(|d| d / base * 100.0))?
    }
}

/// The comparison of one step (or the single run).
#[derive(Debug, Clone)]
pub struct StepComparison {
    /// `run`, or `step 2/3`.
    pub label: String,
    pub rows: Vec<Row>,
}

/// The whole comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub base: String,
    pub new: String,
    pub steps: Vec<StepComparison>,
    /// Steps of BASE that NEW lacks (their bounds count as exceeded), or extra steps of NEW.
    pub notes: Vec<String>,
    /// Bounds exceeded, one line each.
    pub exceeded: Vec<String>,
}

impl Comparison {
    /// [`EXIT_REGRESSION`] when a bound was exceeded, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.exceeded.is_empty() {
            0
        } else {
            EXIT_REGRESSION
        }
    }
}

/// Compare two report documents under `bounds`.
pub fn compare(
    base: &Document,
    new: &Document,
    bounds: &[Bound],
) -> Result<Comparison, CompareError> {
    if base.progressive != new.progressive {
        return Err(CompareError::Mismatch {
            base: base.file.clone(),
            new: new.file.clone(),
            base_progressive: base.progressive,
        });
    }
    let outcome = |doc: &Document, i: usize| -> Result<RunOutcome, CompareError> {
        let run = &doc.runs[i];
        Ok(merge(&[Input {
            name: format!("{} ({})", doc.file, run.label),
            doc: run.value.clone(),
        }])?)
    };
    let mut out = Comparison {
        base: base.file.clone(),
        new: new.file.clone(),
        steps: Vec::new(),
        notes: Vec::new(),
        exceeded: Vec::new(),
    };
    let common = base.runs.len().min(new.runs.len());
    for i in 0..common {
        let (b, n) = (outcome(base, i)?, outcome(new, i)?);
        let label = base.runs[i].label.clone();
        let mut metrics: Vec<&str> = HEADLINE.to_vec();
        for bound in bounds {
            if !metrics.contains(&bound.metric.as_str()) {
                metrics.push(&bound.metric);
            }
        }
        let mut rows = Vec::new();
        for metric in metrics {
            let mut row = Row {
                metric: metric.to_string(),
                base: measure(metric, &b),
                new: measure(metric, &n),
                bound: None,
            };
            let row_bounds: Vec<&Bound> = bounds.iter().filter(|b| b.metric == metric).collect();
            if row.base.is_none() && row.new.is_none() && row_bounds.is_empty() {
                continue;
            }
            for bound in row_bounds {
                let held = holds(&row, bound);
                if !held {
                    let what = match (row.base, row.new) {
                        (Some(_), Some(_)) => format!(
                            "{} → {} ({})",
                            figure(row.base),
                            figure(row.new),
                            signed_percent(row.percent())
                        ),
                        _ => format!(
                            "no data in {}",
                            if row.base.is_none() { "BASE" } else { "NEW" }
                        ),
                    };
                    let at = if base.progressive {
                        format!(" ({label})")
                    } else {
                        String::new()
                    };
                    out.exceeded.push(format!("{}{at}: {what}", bound.expr));
                }
                row.bound = Some((bound.expr.clone(), held));
            }
            rows.push(row);
        }
        out.steps.push(StepComparison { label, rows });
    }
    if base.runs.len() > common {
        let missing = base.runs.len() - common;
        out.notes.push(format!(
            "NEW has {} step(s), BASE {}: the last {missing} step(s) of BASE did not run in NEW",
            new.runs.len(),
            base.runs.len()
        ));
        if !bounds.is_empty() {
            out.exceeded
                .push(format!("{missing} step(s) of BASE missing from NEW"));
        }
    } else if new.runs.len() > common {
        out.notes.push(format!(
            "NEW has {} step(s), BASE {}: the extra steps are not compared",
            new.runs.len(),
            base.runs.len()
        ));
    }
    Ok(out)
}

/// Whether NEW is within the bound's allowance of BASE (fails when either has no data).
pub fn holds(row: &Row, bound: &Bound) -> bool {
    let (Some(base), Some(new)) = (row.base, row.new) else {
        return false;
    };
    let worse_by = if higher_is_better(&bound.metric) {
        base - new
    } else {
        new - base
    };
    let allowed = match bound.allowance {
        Allowance::Relative(f) => base.abs() * f,
        Allowance::Absolute(a) => a,
    };
    // A relative epsilon keeps float noise (0.1 + 0.2) from failing an exact allowance.
    worse_by <= allowed + 1e-9 * base.abs().max(1.0)
}

/// The comparison as an aligned text table.
pub fn table_text(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "wsscale report compare: {} → {}", c.base, c.new);
    for step in &c.steps {
        let _ = writeln!(s);
        if c.steps.len() > 1 || step.label != "run" {
            let _ = writeln!(s, "{}", step.label);
        }
        let _ = writeln!(
            s,
            "  {:<30} {:>14} {:>14} {:>14} {:>9}  bound",
            "metric", "base", "new", "delta", "%"
        );
        for row in &step.rows {
            let bound = match &row.bound {
                None => String::new(),
                Some((expr, true)) => format!("✓ {}", expr.split_once('=').map_or("", |x| x.1)),
                Some((expr, false)) => format!("✗ {}", expr.split_once('=').map_or("", |x| x.1)),
            };
            let delta = row.delta().map_or("—".to_string(), |d| {
                format!("{}{}", if d >= 0.0 { "+" } else { "" }, figure(Some(d)))
            });
            let _ = writeln!(
                s,
                "  {:<30} {:>14} {:>14} {:>14} {:>9}  {bound}",
                row.metric,
                figure(row.base),
                figure(row.new),
                delta,
                signed_percent(row.percent())
            );
        }
    }
    for note in &c.notes {
        let _ = writeln!(s, "\nnote: {note}");
    }
    if c.exceeded.is_empty() {
        let _ = writeln!(s, "\nno bound exceeded");
    } else {
        let _ = writeln!(s, "\n{} bound(s) exceeded:", c.exceeded.len());
        for e in &c.exceeded {
            let _ = writeln!(s, "  ✗ {e}");
        }
    }
    s
}

/// A figure for the table: `—` for no data, integers as such, others with up to 4 decimals.
fn figure(v: Option<f64>) -> String {
    match v {
        None => "—".to_string(),
        Some(v) if v == v.trunc() && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => {
            let s = format!("{v:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

fn signed_percent(p: Option<f64>) -> String {
    p.map_or("—".to_string(), |p| format!("{p:+.1}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(metric: &str, base: f64, new: f64) -> Row {
        Row {
            metric: metric.into(),
            base: Some(base),
            new: Some(new),
            bound: None,
        }
    }

    #[test]
    fn parses_relative_and_absolute_bounds() {
        let b = parse_bound("message_rtt_ms.p99=+10%").unwrap();
        assert_eq!(b.allowance, Allowance::Relative(0.10));
        let b = parse_bound("handshake_ms.p99 = +5ms").unwrap();
        assert_eq!(b.allowance, Allowance::Absolute(5.0));
        assert_eq!(b.metric, "handshake_ms.p99");
        assert_eq!(
            parse_bound("dropped=+0").unwrap().allowance,
            Allowance::Absolute(0.0)
        );
        assert!(matches!(
            parse_bound("dropped=+5ms"),
            Err(CompareError::Syntax { .. })
        ));
        assert!(matches!(
            parse_bound("dropped=5"),
            Err(CompareError::Syntax { .. })
        ));
        assert!(matches!(
            parse_bound("dropped"),
            Err(CompareError::Syntax { .. })
        ));
        assert!(matches!(
            parse_bound("dropped=+-1"),
            Err(CompareError::Syntax { .. })
        ));
        let e = parse_bound("message_rtt.p99=+10%").unwrap_err().to_string();
        assert!(e.contains("did you mean \"message_rtt_ms.p99\""), "{e}");
        assert!(
            e.contains("connect_success_rate"),
            "lists the valid metrics: {e}"
        );
    }

    #[test]
    fn worse_follows_the_metric_direction() {
        let b = parse_bound("message_rtt_ms.p99=+10%").unwrap();
        assert!(holds(&row("message_rtt_ms.p99", 10.0, 11.0), &b));
        assert!(!holds(&row("message_rtt_ms.p99", 10.0, 11.5), &b));
        assert!(
            holds(&row("message_rtt_ms.p99", 10.0, 2.0), &b),
            "faster is fine"
        );
        let b = parse_bound("connect_success_rate=+0.01").unwrap();
        assert!(holds(&row("connect_success_rate", 1.0, 0.995), &b));
        assert!(!holds(&row("connect_success_rate", 1.0, 0.98), &b));
        assert!(
            holds(&row("connect_success_rate", 0.9, 1.0), &b),
            "better is fine"
        );
        let b = parse_bound("dropped=+0").unwrap();
        assert!(holds(&row("dropped", 3.0, 3.0), &b));
        assert!(!holds(&row("dropped", 0.0, 1.0), &b));
        let missing = Row {
            new: None,
            ..row("dropped", 0.0, 0.0)
        };
        assert!(!holds(&missing, &b), "no data fails closed");
    }

    #[test]
    fn churn_rates_are_worse_when_lower_and_skipped_arrivals_when_higher() {
        let b = parse_bound("churn.opens_per_s.mean=+10%").unwrap();
        assert!(holds(&row("churn.opens_per_s.mean", 5000.0, 4600.0), &b));
        assert!(!holds(&row("churn.opens_per_s.mean", 5000.0, 4000.0), &b));
        assert!(holds(&row("churn.opens_per_s.mean", 5000.0, 6000.0), &b));
        let b = parse_bound("churn.arrivals_skipped=+0").unwrap();
        assert!(!holds(&row("churn.arrivals_skipped", 0.0, 5.0), &b));
        assert!(holds(&row("churn.arrivals_skipped", 5.0, 0.0), &b));
    }

    #[test]
    fn percent_and_delta() {
        let r = row("message_rtt_ms.p99", 2.0, 3.0);
        assert_eq!(r.delta(), Some(1.0));
        assert_eq!(r.percent(), Some(50.0));
        assert_eq!(row("dropped", 0.0, 3.0).percent(), None);
        assert_eq!(signed_percent(Some(12.345)), "+12.3%");
        assert_eq!(figure(Some(0.12345)), "0.1235");
        assert_eq!(figure(Some(42.0)), "42");
    }
}
