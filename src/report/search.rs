//! The report of a capacity search (`wsscale search`): the `search` section of its JSON
//! document, the text table, and the closing finding.
//!
//! The document is the progressive runs' `steps` document with one more key:
//!
//! ```text
//! { "schema_version": 1, "search": { ... }, "steps": [ <report>, <report>, ... ] }
//! ```
//!
//! `steps` holds every step's complete run report in the order the steps ran (scan, then
//! bisection); `search` says what was varied, how each step was judged, one row per step
//! with the figures of the text table, and the finding (`schema/search-v1.json`, fields in
//! docs/reports.md). Each row is built from its step's report ([`SearchStep::from_report`]),
//! so a document read back renders the same table (`wsscale report html`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::json::{JsonReport, SCHEMA_VERSION};
use crate::metrics::Percentiles;

/// The `search` section (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSection {
    /// The varied field (`connections`).
    pub vary: String,
    /// The `--vary` spec as written (`connections=500..8k*2`).
    pub range: String,
    /// The values of the scan, in order (what runs when every step passes).
    pub scan: Vec<f64>,
    /// The `--until` thresholds each step was judged by (the profile's when none was given);
    /// empty: the default verdict judged (failures, drops, lost messages, a shortfall).
    pub until: Vec<String>,
    /// Most bisection steps after the scan (`--bisect`).
    pub bisect: u32,
    /// Pause between steps, seconds.
    pub cool_down_s: f64,
    /// `knee`, `all_passed`, `first_failed`, `not_run`, `interrupted` or `incomplete`.
    pub result: String,
    /// The largest value that passed.
    pub last_pass: Option<SearchPoint>,
    /// The smallest value that failed, and why.
    pub first_fail: Option<SearchPoint>,
    /// One row per step, in the order they ran.
    pub steps: Vec<SearchStep>,
}

/// One end of the knee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchPoint {
    pub value: f64,
    /// The value in the field's unit (`4000`, `2/s`).
    pub label: String,
    /// The 1-based step that ran it (index into `steps`).
    pub step: usize,
    /// Why that step failed (the verdict's reasons); empty for a pass.
    pub reasons: Vec<String>,
}

/// One step's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchStep {
    /// 1-based, in the order the steps ran.
    pub step: usize,
    pub value: f64,
    pub label: String,
    /// `scan` or `bisect`.
    pub phase: String,
    pub passed: bool,
    /// The step's `verdict.status`.
    pub status: String,
    pub peak_open: u64,
    pub planned_peak: u64,
    /// Connection attempts that failed.
    pub failed: u64,
    pub dropped: u64,
    pub messages_lost: u64,
    /// p99s in ms; null without samples.
    pub tcp_connect_p99_ms: Option<f64>,
    pub handshake_p99_ms: Option<f64>,
    pub message_rtt_p99_ms: Option<f64>,
    pub thresholds_passed: usize,
    pub thresholds_failed: usize,
    /// The verdict's reasons.
    pub reasons: Vec<String>,
}

fn p99(p: &Percentiles) -> Option<f64> {
    (p.count > 0).then_some(p.p99)
}

impl SearchStep {
    /// The row of step `step` (1-based) that ran `value` (`label`) in `phase`.
    pub fn from_report(
        step: usize,
        value: f64,
        label: String,
        phase: &str,
        r: &JsonReport,
    ) -> SearchStep {
        let (status, reasons) = r.verdict.as_ref().map_or_else(
            || ("passed".to_string(), Vec::new()),
            |v| (v.status.clone(), v.reasons.clone()),
        );
        let failed_t = r.thresholds.iter().filter(|t| !t.passed).count();
        SearchStep {
            step,
            value,
            label,
            phase: phase.to_string(),
            passed: status == "passed",
            status,
            peak_open: r.connections.peak_open,
            planned_peak: r.connections.planned_peak,
            failed: r.connections.failed,
            dropped: r.connections.dropped,
            messages_lost: r.messages.lost,
            tcp_connect_p99_ms: p99(&r.timings.tcp_connect_ms),
            handshake_p99_ms: p99(&r.timings.ws_handshake_ms),
            message_rtt_p99_ms: p99(&r.timings.message_rtt_ms),
            thresholds_passed: r.thresholds.len() - failed_t,
            thresholds_failed: failed_t,
            reasons,
        }
    }
}

impl SearchSection {
    /// The point of the row that ran `value` (the latest such row).
    pub fn point(&self, value: f64) -> Option<SearchPoint> {
        let s = self.steps.iter().rev().find(|s| s.value == value)?;
        Some(SearchPoint {
            value,
            label: s.label.clone(),
            step: s.step,
            reasons: if s.passed {
                Vec::new()
            } else {
                s.reasons.clone()
            },
        })
    }
}

/// The search document (see the module docs).
pub fn search_document(
    section: &SearchSection,
    reports: Vec<serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "search": section,
        "steps": reports,
    })
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"))
}

/// The step table and the finding, printed after the last step.
pub fn search_text(s: &SearchSection) -> String {
    let mut out = String::new();
    let judged = if s.until.is_empty() {
        "the default verdict (no failures, drops, lost messages or shortfall)".to_string()
    } else {
        s.until.join(", ")
    };
    let _ = writeln!(out, "Capacity search: {}", s.range);
    let _ = writeln!(out, "  each step judged by: {judged}");
    let w = s.vary.len().max(8);
    let _ = writeln!(
        out,
        "\n  {:>4}  {:>w$}  {:<6}  {:>9}  {:>8}  {:>7}  {:>11}  {:>13}  {:>10}  {:>13}  result",
        "step",
        s.vary,
        "phase",
        "peak open",
        "failed",
        "dropped",
        "connect p99",
        "handshake p99",
        "msg p99",
        "thresholds ok"
    );
    for r in &s.steps {
        let thresholds = if r.thresholds_passed + r.thresholds_failed == 0 {
            "—".to_string()
        } else {
            format!(
                "{}/{}",
                r.thresholds_passed,
                r.thresholds_passed + r.thresholds_failed
            )
        };
        let _ = writeln!(
            out,
            "  {:>4}  {:>w$}  {:<6}  {:>9}  {:>8}  {:>7}  {:>11}  {:>13}  {:>10}  {:>13}  {}",
            r.step,
            r.label,
            r.phase,
            r.peak_open,
            r.failed,
            r.dropped,
            ms(r.tcp_connect_p99_ms),
            ms(r.handshake_p99_ms),
            ms(r.message_rtt_p99_ms),
            thresholds,
            if r.passed {
                "✓ pass".to_string()
            } else {
                format!("✗ {}", r.status.replace('_', " "))
            }
        );
    }
    let _ = writeln!(out, "  (p99 latencies in ms)\n");
    out.push_str(&finding_text(s));
    out
}

/// The closing lines: the knee, or why there is none.
pub fn finding_text(s: &SearchSection) -> String {
    let why = |p: &SearchPoint| {
        if p.reasons.is_empty() {
            String::new()
        } else {
            format!("\n  why: {}", p.reasons.join("; "))
        }
    };
    let partial = match (&s.last_pass, &s.first_fail) {
        (Some(p), Some(f)) => format!(
            " So far: {} passed (step {}), {} failed (step {}).",
            p.label, p.step, f.label, f.step
        ),
        (Some(p), None) => format!(" So far: {} passed (step {}).", p.label, p.step),
        (None, Some(f)) => format!(" So far: {} failed (step {}).", f.label, f.step),
        (None, None) => String::new(),
    };
    match (s.result.as_str(), &s.last_pass, &s.first_fail) {
        ("knee", Some(p), Some(f)) => format!(
            "Knee found: {} = {} passed (step {}), {} failed (step {}).{}\n",
            s.vary,
            p.label,
            p.step,
            f.label,
            f.step,
            why(f)
        ),
        ("all_passed", Some(p), _) => format!(
            "No knee in the range: every step passed, up to {} = {} (step {}). The capacity is \
             above the range; search a larger one.\n",
            s.vary, p.label, p.step
        ),
        ("first_failed", _, Some(f)) => format!(
            "No passing value: even the first step, {} = {}, failed. The capacity is below the \
             range; start lower.{}\n",
            s.vary,
            f.label,
            why(f)
        ),
        ("interrupted", ..) => format!("The search was interrupted.{partial}\n"),
        ("incomplete", ..) => format!(
            "The search stopped: an agent was lost, so the last step's figures are incomplete \
             and say nothing about the gateway.{partial}\n"
        ),
        _ => "No step finished.\n".to_string(),
    }
}
