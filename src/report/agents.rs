//! The parts of a report that make it mergeable and show who did what in a distributed run:
//! `histograms` (every non-empty histogram in serialized form) and `agents[]` (one entry per
//! agent, with its own counts, percentiles and histograms), plus their text summary lines.
//!
//! `histograms` values are HdrHistogram V2 + DEFLATE serializations in base64 (the
//! `HISTFAA…` form any HdrHistogram library decodes), of histograms recorded in microseconds
//! — see [`crate::metrics::wire`]. They are what lets `wsscale report merge` compute exact
//! percentiles of several runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::metrics::Percentiles;
use crate::metrics::outcome::{AgentOutcome, RunOutcome};
use crate::metrics::wire::encode_histograms;
use crate::metrics::{Counters, FailureKind, Histograms};

/// One agent in the JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonAgent {
    pub id: usize,
    pub name: String,
    pub host: String,
    pub sources: Vec<String>,
    /// True when the agent was lost mid-run (its figures are what it sent until then).
    pub lost: bool,
    /// Why it was lost (`null` when it was not).
    pub lost_reason: Option<String>,
    pub planned_connections: u64,
    pub peak_open: u64,
    pub open_at_end: u64,
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub dropped: u64,
    pub closed: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub messages_lost: u64,
    /// Non-zero failure categories (`refused`, `http_status_503`, …).
    pub failures: BTreeMap<String, u64>,
    /// Percentiles of every histogram with samples, keyed `<name>_ms` like `timings`.
    pub timings: BTreeMap<String, Percentiles>,
    /// Serialized histograms, like the report's top-level `histograms`.
    pub histograms: BTreeMap<String, String>,
    /// RSS the agent last reported.
    pub rss_bytes: u64,
}

/// The report's top-level `histograms`.
pub fn json_histograms(o: &RunOutcome) -> BTreeMap<String, String> {
    encode_histograms(&o.totals.hist)
}

/// The report's `agents[]`.
pub fn json_agents(o: &RunOutcome) -> Vec<JsonAgent> {
    o.agents.iter().map(json_agent).collect()
}

fn json_agent(a: &AgentOutcome) -> JsonAgent {
    let c = &a.totals.counters;
    JsonAgent {
        id: a.id,
        name: a.name.clone(),
        host: a.host.clone(),
        sources: a.sources.clone(),
        lost: a.lost.is_some(),
        lost_reason: a.lost.clone(),
        planned_connections: a.planned_connections,
        peak_open: a.peak_open,
        open_at_end: a.totals.gauges.open,
        attempted: c.attempted,
        established: c.established,
        failed: c.failed,
        dropped: c.dropped,
        closed: c.closed,
        messages_sent: c.messages_sent,
        messages_received: c.messages_received,
        messages_lost: c.messages_lost,
        failures: nonzero_failures(c),
        timings: timings(&a.totals.hist),
        histograms: encode_histograms(&a.totals.hist),
        rss_bytes: a.totals.gauges.rss_bytes,
    }
}

/// Failure categories with a non-zero count; `http_status` refined per code.
pub fn nonzero_failures(c: &Counters) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for kind in FailureKind::ALL {
        let n = c.failures_of(kind);
        if n == 0 {
            continue;
        }
        if kind == FailureKind::HttpStatus {
            let mut by_code = 0;
            for (code, m) in &c.http_status {
                out.insert(format!("http_status_{code}"), *m);
                by_code += m;
            }
            if n > by_code {
                out.insert("http_status_other".into(), n - by_code);
            }
        } else {
            out.insert(kind.label().to_string(), n);
        }
    }
    out
}

fn timings(h: &Histograms) -> BTreeMap<String, Percentiles> {
    h.named()
        .into_iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| (format!("{name}_ms"), Percentiles::from_hist(h)))
        .collect()
}

/// The summary's agents section (empty for a single-process run).
pub fn agents_text(o: &RunOutcome) -> String {
    if o.agents.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let _ = writeln!(s, "Agents ({})", o.agents.len());
    for a in &o.agents {
        let c = &a.totals.counters;
        let hs = &a.totals.hist.ws_handshake;
        let p = |q: f64| {
            if hs.is_empty() {
                0.0
            } else {
                hs.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let _ = write!(
            s,
            "  {:>3} {:<22} peak {:>7}/{:<7} established {:>7}  failed {:>5}  dropped {:>5}  handshake p50 {:.2} ms p99 {:.2} ms",
            a.id,
            a.name,
            a.peak_open,
            a.planned_connections,
            c.established,
            c.failed,
            c.dropped,
            p(0.5),
            p(0.99),
        );
        if !a.sources.is_empty() {
            let _ = write!(s, "  from {}", a.sources.join(","));
        }
        if let Some(r) = &a.lost {
            let _ = write!(s, "  LOST: {r}");
        }
        s.push('\n');
    }
    s.push('\n');
    s
}
