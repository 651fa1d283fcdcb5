//! `wsscale report html` and `wsscale report compare`: working with JSON reports after the
//! run (`wsscale report merge` is in [`super::cluster`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::usage;
use crate::report::compare::{self, Bound};
use crate::report::document::{Document, DocumentError};
use crate::report::html;

/// `report html` help.
pub const HTML_LONG: &str = "\
Render a JSON report (one run, a progressive run's steps, or a merged cluster report) as one
self-contained HTML file: charts of open connections vs target, connect rate, failures and
drops per interval, per-interval latency percentiles, the latency percentile distribution;
tables of thresholds, parameters, sources and agents. No network access is needed to view it.

Examples:
  wsscale report html run.json -o run.html
  wsscale report merge a.json b.json -o total.json && wsscale report html total.json -o total.html";

/// Arguments of `wsscale report html`.
#[derive(Debug, Clone, Args)]
pub struct HtmlArgs {
    /// The JSON report (--report-json, or `wsscale report merge` output)
    #[arg(value_name = "REPORT")]
    pub report: PathBuf,

    /// Where to write the HTML file
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `report compare` help.
pub const COMPARE_LONG: &str = "\
Compare two JSON reports: each headline figure base → new, its delta and %, and exit 99 when
NEW is worse than BASE by more than a --max-regression bound (for CI). Merged cluster reports
compare like single runs; progressive reports compare step by step.

A bound is METRIC=+N% (NEW at most N % worse than BASE) or METRIC=+N / METRIC=+Nms (at most
N worse, in the metric's unit). Worse means higher for latencies, failures, drops and losses,
lower for connect_success_rate, established and peak_open. METRIC is a threshold metric name
(see `wsscale run --help`, --threshold). A bound on a metric without data in either report
counts as exceeded.

Exit codes: 0 no bound exceeded; 99 a bound was exceeded; 2 bad input (unreadable report,
unknown metric, single vs progressive); 1 the reports cannot be read back (e.g. no histograms).

Examples:
  wsscale report compare base.json new.json
  wsscale report compare base.json new.json \\
      --max-regression 'message_rtt_ms.p99=+10%' --max-regression 'handshake_ms.p99=+5ms' \\
      --max-regression 'dropped=+0' --max-regression 'connect_success_rate=+0.001'";

/// Arguments of `wsscale report compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline JSON report
    #[arg(value_name = "BASE")]
    pub base: PathBuf,

    /// The JSON report to check against it
    #[arg(value_name = "NEW")]
    pub new: PathBuf,

    /// How much worse NEW may be, repeatable: 'message_rtt_ms.p99=+10%', 'handshake_ms.p99=+5ms',
    /// 'dropped=+0'
    #[arg(long = "max-regression", value_name = "METRIC=+N[%|ms]")]
    pub max_regression: Vec<String>,
}

/// Read a report; a file that is missing or not a report is bad input (exit 2).
fn read(path: &std::path::Path) -> anyhow::Result<Document> {
    Document::read(path).map_err(|e: DocumentError| usage(e.to_string()))
}

/// `wsscale report html`.
pub fn html_command(a: &HtmlArgs) -> anyhow::Result<i32> {
    let doc = read(&a.report)?;
    let page = html::render(&doc)?;
    html::write_html(&a.output, &page)?;
    eprintln!(
        "HTML report ({} KiB) written to {}",
        page.len().div_ceil(1024),
        a.output.display()
    );
    Ok(0)
}

/// `wsscale report compare`.
pub fn compare_command(a: &CompareArgs) -> anyhow::Result<i32> {
    let bounds = a
        .max_regression
        .iter()
        .map(|b| compare::parse_bound(b).map_err(|e| usage(e.to_string())))
        .collect::<anyhow::Result<Vec<Bound>>>()?;
    let base = read(&a.base)?;
    let new = read(&a.new)?;
    let c = match compare::compare(&base, &new, &bounds) {
        Ok(c) => c,
        Err(e @ compare::CompareError::Mismatch { .. }) => return Err(usage(e.to_string())),
        Err(e) => return Err(e).context("cannot compare the reports"),
    };
    print!("{}", compare::table_text(&c));
    Ok(c.exit_code())
}
