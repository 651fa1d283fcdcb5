//! The capacity search's part of the HTML page: the finding, one row per step, and two small
//! charts over the varied value (p99 latencies; failed and dropped connections), drawn from
//! the document's `search` section ([`SearchSection`]).

use std::fmt::Write as _;

use super::charts::{Chart, Series, XAxis};
use super::{HtmlError, escape};
use crate::plan::search::field;
use crate::report::search::{SearchSection, SearchStep, finding_text};

/// The search section (finding, step table, charts).
pub fn search_section(s: &SearchSection) -> Result<String, HtmlError> {
    let mut out = String::new();
    let class = if s.result == "knee" || s.result == "all_passed" {
        "pass"
    } else {
        "fail"
    };
    let judged = if s.until.is_empty() {
        "the default verdict (no failures, drops, lost messages or shortfall)".to_string()
    } else {
        s.until.join(", ")
    };
    let _ = write!(
        out,
        "<section class=\"search\"><h2>Capacity search: <code>{}</code></h2>\
         <p class=\"verdict {class}\">{}</p>\
         <p class=\"sub\">Each step judged by {}; bisection steps: up to {}; cool-down {} s.</p>",
        escape(&s.range),
        escape(finding_text(s).trim()).replace('\n', "<br>"),
        escape(&judged),
        s.bisect,
        s.cool_down_s,
    );
    out.push_str(&table(s));
    for (id, title, y, note, series) in charts(s) {
        let chart = Chart {
            x: XAxis::Varied(field(&s.vary).map_or("varied value", |f| f.what)),
            x_end: None,
            y_desc: y.to_string(),
            log_y: false,
            series,
        };
        let svg = chart.svg()?;
        let _ = write!(
            out,
            "<figure class=\"chart\" data-chart=\"{id}\" data-series=\"{series}\" data-points=\"{n}\">\
             <figcaption>{title}</figcaption>{svg}<p class=\"note\">{note}</p></figure>",
            series = chart.series.len(),
            n = chart.points(),
            title = escape(title),
            note = escape(note),
        );
    }
    out.push_str("</section>");
    Ok(out)
}

/// One row per step, linking to the step's own section.
fn table(s: &SearchSection) -> String {
    let mut t = format!(
        "<table><thead><tr><th>step</th><th>{}</th><th>phase</th><th>peak open</th>\
         <th>failed</th><th>dropped</th><th>connect p99 (ms)</th><th>handshake p99 (ms)</th>\
         <th>message p99 (ms)</th><th>thresholds</th><th></th><th>result</th></tr></thead><tbody>",
        escape(&s.vary)
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"));
    for r in &s.steps {
        let _ = write!(
            t,
            "<tr class=\"{cls}\"><td><a href=\"#step-{step}\">{step}</a></td><td class=\"n\">{}</td>\
             <td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}/{}</td><td class=\"mark\">{mark}</td><td>{}</td></tr>",
            escape(&r.label),
            escape(&r.phase),
            r.peak_open,
            r.failed,
            r.dropped,
            ms(r.tcp_connect_p99_ms),
            ms(r.handshake_p99_ms),
            ms(r.message_rtt_p99_ms),
            r.thresholds_passed,
            r.thresholds_passed + r.thresholds_failed,
            escape(&r.status.replace('_', " ")),
            cls = if r.passed { "pass" } else { "fail" },
            step = r.step,
            mark = if r.passed { "✓" } else { "✗" },
        );
    }
    t.push_str("</tbody></table>");
    t
}

type ChartSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Vec<Series>,
);

/// The charts with data: p99 latencies and failures against the varied value (steps sorted
/// by value, since bisection steps run out of order).
fn charts(s: &SearchSection) -> Vec<ChartSpec> {
    let mut rows: Vec<&SearchStep> = s.steps.iter().collect();
    rows.sort_by(|a, b| a.value.total_cmp(&b.value));
    let line = |name: &str, f: &dyn Fn(&SearchStep) -> Option<f64>| {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| f(r).map(|y| (r.value, y)))
            .collect();
        (!points.is_empty()).then(|| Series::new(name, points))
    };
    let mut out = Vec::new();
    let latency: Vec<Series> = [
        line("connect p99", &|r| r.tcp_connect_p99_ms),
        line("handshake p99", &|r| r.handshake_p99_ms),
        line("message RTT p99", &|r| r.message_rtt_p99_ms),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !latency.is_empty() {
        out.push((
            "search-p99",
            "p99 latency by step",
            "ms",
            "One point per step, by the value it ran.",
            latency,
        ));
    }
    let failures: Vec<Series> = [
        line("failed connections", &|r| Some(r.failed as f64)),
        line("dropped connections", &|r| Some(r.dropped as f64)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !rows.is_empty() {
        out.push((
            "search-failures",
            "Failures by step",
            "connections",
            "Failed attempts and dropped connections of each step, by the value it ran.",
            failures,
        ));
    }
    out
}
