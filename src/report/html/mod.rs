//! The HTML report: one self-contained file (inline CSS, inline SVG charts, one small inline
//! script; nothing fetched from the network) rendered from the typed JSON report.
//!
//! Both ways to get one go through [`render`]: `--report-html FILE` at the end of a run
//! (`run`, `--processes`, `--shard`, `coordinator`, progressive runs) builds the
//! [`JsonReport`] the JSON report would hold, and `wsscale report html RUN.json -o FILE` reads
//! it back ([`Document`]); a progressive run's `steps` document gives one section per step,
//! and a capacity search's document ([`crate::report::search`]) adds the search's finding,
//! step table and charts over the varied value on top ([`search`]).
//!
//! Modules: [`charts`] draws a line chart to SVG (plotters), [`figures`] decides which charts
//! a run has and from which fields, [`sections`] writes the tables. A section or chart whose
//! data is absent is left out.
//!
//! Every chart is a `<figure class="chart" data-chart="ID" data-series="S" data-points="N">`.
//! The inline script runs once the page has loaded: it counts, per chart, the data lines
//! (stroke width [`charts::DATA_STROKE`]) the browser laid out with a non-empty bounding box
//! (`data-drawn`, which should equal `data-series`), and records on `<html>` how many charts were drawn
//! (`data-charts`, `data-charts-drawn`), the script errors seen (`data-errors`) and the load
//! time (`data-load-ms`). The browser test and the render benchmark read those attributes from
//! Chromium's `--dump-dom`; a reader never sees them.

pub mod charts;
pub mod figures;
pub mod search;
pub mod sections;

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::document::{Document, DocumentRun};
use super::json::JsonReport;
use super::write::write_atomic;
use crate::metrics::RunOutcome;

pub use charts::ChartError;

/// The page's style: screen and print.
const CSS: &str = r#"
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --pass:#137333; --fail:#b3261e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  margin: 0 auto; max-width: 1040px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 130px; }
.card .k { color: var(--muted); font-size: 12px; } .card .v { font-size: 18px; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { color: var(--muted); font-weight: 600; }
table.kv th { color: var(--muted); font-weight: 500; width: 140px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.pass .mark, .verdict.pass { color: var(--pass); } tr.fail .mark, .verdict.fail { color: var(--fail); }
td.mark { font-weight: 700; font-size: 15px; }
.verdict { font-weight: 600; font-size: 15px; }
figure.chart { margin: 12px 0 20px; } figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { font-weight: 600; margin-bottom: 4px; } .note { color: var(--muted); font-size: 12px; margin: 2px 0 0; }
nav.steps a { margin-right: 12px; }
code { font-size: 12px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  nav.steps { display: none; }
  h2 { break-after: avoid; } figure.chart, table, .cards { break-inside: avoid; }
  section.step { break-before: page; } section.step:first-of-type { break-before: auto; }
}
"#;

/// The self-check described in the module docs. No network, no data: it only reads the page.
const SCRIPT: &str = r#"
(function () {
  var errors = 0;
  window.addEventListener("error", function () { errors += 1; });
  window.addEventListener("load", function () {
    var figs = document.querySelectorAll("figure.chart");
    var drawn = 0;
    figs.forEach(function (f) {
      var n = 0;
      f.querySelectorAll('svg polyline[stroke-width="2"]').forEach(function (l) {
        var b = l.getBBox();
        if (l.points.length > 0 && (b.width > 0 || b.height > 0)) { n += 1; }
      });
      f.dataset.drawn = String(n);
      if (n > 0) { drawn += 1; }
    });
    var root = document.documentElement.dataset;
    root.charts = String(figs.length);
    root.chartsDrawn = String(drawn);
    root.errors = String(errors);
    root.loadMs = String(Math.round(performance.now()));
  });
})();
"#;

/// Why an HTML report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error("cannot write {file}: {source}")]
    Write { file: String, source: io::Error },
}

/// The page of a document (one run, or the steps of a progressive run).
pub fn render(doc: &Document) -> Result<String, HtmlError> {
    let title = if let Some(s) = &doc.search {
        format!(
            "wsscale capacity search — {} ({} steps)",
            s.range,
            doc.runs.len()
        )
    } else if doc.progressive {
        format!("wsscale progressive run — {} steps", doc.runs.len())
    } else {
        "wsscale run report".to_string()
    };
    let mut body = String::new();
    if let Some(s) = &doc.search {
        body.push_str(&search::search_section(s)?);
    }
    if doc.progressive {
        body.push_str(&steps_overview(&doc.runs));
        for (i, run) in doc.runs.iter().enumerate() {
            let _ = write!(
                body,
                "<section class=\"step\" id=\"step-{}\"><h2>{}</h2>",
                i + 1,
                escape(&capitalize(&run.label))
            );
            run_body(&mut body, &run.report, &format!("step{}-", i + 1), 3)?;
            body.push_str("</section>");
        }
    } else if let Some(run) = doc.runs.first() {
        run_body(&mut body, &run.report, "", 2)?;
    }
    Ok(page(&title, &doc.file, &body))
}

/// The page of one finished run (`--report-html`).
pub fn render_outcome(o: &RunOutcome) -> Result<String, HtmlError> {
    let report = JsonReport::from_outcome(o);
    let value = serde_json::to_value(&report).expect("report structs serialize");
    render(&Document {
        file: String::new(),
        progressive: false,
        search: None,
        runs: vec![DocumentRun {
            label: "run".into(),
            value,
            report,
        }],
    })
}

/// Write a page atomically (temp file + rename).
pub fn write_html(path: &Path, html: &str) -> Result<(), HtmlError> {
    write_atomic(path, html.as_bytes()).map_err(|source| HtmlError::Write {
        file: path.display().to_string(),
        source,
    })
}

/// The whole page around `body`.
fn page(title: &str, source: &str, body: &str) -> String {
    let from = if source.is_empty() {
        String::new()
    } else {
        format!(" · from <code>{}</code>", escape(source))
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{CSS}</style>\n<script>{SCRIPT}</script>\n</head>\n<body>\n\
         <h1>{t}</h1>\n<p class=\"sub\">wsscale {v}{from}</p>\n{body}\n</body>\n</html>\n",
        t = escape(title),
        v = env!("CARGO_PKG_VERSION"),
    )
}

/// One line per step of a progressive run, linking to its section.
fn steps_overview(runs: &[DocumentRun]) -> String {
    let mut s = String::from("<nav class=\"steps\">");
    for (i, run) in runs.iter().enumerate() {
        let _ = write!(s, "<a href=\"#step-{}\">{}</a>", i + 1, escape(&run.label));
    }
    s.push_str(
        "</nav><table><thead><tr><th>step</th><th>peak open</th><th>planned</th>\
                <th>failed</th><th>dropped</th><th>handshake p99 (ms)</th>\
                <th>verdict</th></tr></thead><tbody>",
    );
    for run in runs {
        let r = &run.report;
        let verdict = r.verdict.as_ref().map_or("—", |v| v.status.as_str());
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&run.label),
            sections::group(r.connections.peak_open),
            sections::group(r.connections.planned_peak),
            sections::group(r.connections.failed),
            sections::group(r.connections.dropped),
            sections::ms(r.timings.ws_handshake_ms.p99),
            escape(&verdict.replace('_', " "))
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// The sections of one run; `id_prefix` keeps chart ids unique across steps, `level` is
/// the heading level of its sections.
fn run_body(out: &mut String, r: &JsonReport, id_prefix: &str, level: u8) -> Result<(), HtmlError> {
    out.push_str(&sections::verdict(r));
    out.push_str(&sections::headline(r));
    let mut section = |title: &str, html: String| {
        if !html.is_empty() {
            let _ = write!(out, "<h{level}>{}</h{level}>{html}", escape(title));
        }
    };
    section("Thresholds", sections::thresholds(r));
    section("Parameters", sections::parameters(r));
    section("Preflight warnings", sections::preflight(r));
    let mut charts = String::new();
    for f in figures::figures(r) {
        let svg = f.chart.svg()?;
        let _ = write!(
            charts,
            "<figure class=\"chart\" data-chart=\"{id}\" data-series=\"{series}\" data-points=\"{n}\">\
             <figcaption>{title}</figcaption>{svg}<p class=\"note\">{note}</p></figure>",
            id = escape(&format!("{id_prefix}{}", f.id)),
            series = f.chart.series.len(),
            n = f.chart.points(),
            title = escape(&f.title),
            note = escape(&f.note),
        );
    }
    section("Charts", charts);
    section("Latencies", sections::latencies(r));
    section("Connections", sections::connections(r));
    section("Targets", sections::per_target(r));
    section("Source addresses", sections::per_source(r));
    section("Agents", sections::per_agent(r));
    Ok(())
}

/// `step 1/3` → `Step 1/3`.
fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
