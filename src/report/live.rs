//! Live progress: one plain line per interval when stderr is not a terminal (CI logs), a
//! self-updating line with a progress bar of the stage clock when it is (see
//! [`super::progress`]; the coordinator, which prints per-agent lines too, uses plain lines). [`LivePrinter`] is the [`IntervalSink`] the command line
//! hands to the engine or the coordinator.
//!
//! A line shows: elapsed time, the stage (ramp-up / hold / ramp-down, index of count), open
//! connections against the current target, the connect rate over the interval, pending
//! handshakes, failures by category over the run, and the interval's p50/p99 handshake time.
//! When every source address is out of ports, the line says so in capitals, with the number
//! of retries the engine has made so far (it retries full pairs with back-off).

use std::io::Write;
use std::sync::Arc;

use crate::metrics::quantile_ms;
use crate::metrics::timeseries::{IntervalSink, IntervalView};

use super::agents::nonzero_failures;

/// Where live progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMode {
    /// Nothing (library use, tests).
    Quiet,
    /// One line per interval on stderr.
    Lines,
    /// A self-updating line on stderr (a terminal).
    Tty,
}

impl LiveMode {
    /// `Tty` when stderr is a terminal, else `Lines`.
    pub fn detect() -> LiveMode {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            LiveMode::Tty
        } else {
            LiveMode::Lines
        }
    }

    /// The printer for this mode (`None` when quiet): on a terminal, the live line with a
    /// progress bar of the stage clock ([`super::progress::ProgressView`]); otherwise plain
    /// lines.
    pub fn sink(self) -> Option<Arc<dyn IntervalSink>> {
        match self {
            LiveMode::Quiet => None,
            LiveMode::Tty => Some(Arc::new(super::progress::ProgressView::new())),
            LiveMode::Lines => Some(Arc::new(LivePrinter(self))),
        }
    }
}

/// Prints each interval on stderr.
pub struct LivePrinter(pub LiveMode);

impl IntervalSink for LivePrinter {
    fn interval(&self, v: &IntervalView<'_>) {
        if self.0 == LiveMode::Quiet {
            return;
        }
        let line = render(v);
        let mut err = std::io::stderr().lock();
        // Progress output is best effort: a closed stderr must not stop the run.
        let _ = match self.0 {
            LiveMode::Tty if v.last => writeln!(err, "\r\x1b[2K{line}"),
            LiveMode::Tty => write!(err, "\r\x1b[2K{line}"),
            _ => writeln!(err, "{line}"),
        };
        let _ = err.flush();
    }
}

/// The live line of one interval.
pub fn render(v: &IntervalView<'_>) -> String {
    let g = &v.gauges;
    let iv = v.interval;
    let row = v.row;
    let mut line = format!(
        "[{:>7.1}s] {:<13} open {}/{} (peak plan {}) | +{:.0}/s | pending {}",
        v.elapsed.as_secs_f64(),
        v.stage,
        g.open,
        v.target,
        v.peak_plan,
        row.connect_rate,
        g.pending,
    );
    let t = v.totals;
    line.push_str(&format!(" | failed {}", t.failed));
    let cats = nonzero_failures(t);
    if !cats.is_empty() {
        let cats: Vec<String> = cats.iter().map(|(k, n)| format!("{k} {n}")).collect();
        line.push_str(&format!(" ({})", cats.join(", ")));
    }
    if t.dropped > 0 {
        line.push_str(&format!(" | dropped {}", t.dropped));
    }
    if let Some(part) = super::churn::live_part(t, row) {
        line.push_str(&format!(" | {part}"));
    }
    let mh = &iv.hist.message_rtt;
    if iv.counters.messages_sent > 0 || iv.counters.messages_received > 0 {
        line.push_str(&format!(
            " | msgs {:.0}/s out {:.0}/s in",
            row.msgs_sent_per_s, row.msgs_received_per_s
        ));
        if !mh.is_empty() {
            line.push_str(&format!(
                " rtt p50 {:.2}ms p99 {:.2}ms",
                row.message_p50_ms, row.message_p99_ms
            ));
        }
    }
    if let Some(part) = super::compression::live_part(&t.compression) {
        line.push_str(&format!(" | {part}"));
    }
    if t.messages_lost > 0 {
        line.push_str(&format!(" | lost {}", t.messages_lost));
    }
    let h = &iv.hist.ws_handshake;
    if !h.is_empty() {
        line.push_str(&format!(
            " | handshake p50 {:.2}ms p99 {:.2}ms",
            quantile_ms(h, 0.5),
            quantile_ms(h, 0.99)
        ));
    }
    if g.sources_exhausted {
        line.push_str(&format!(
            " | SOURCE PORTS EXHAUSTED (retrying, {} retries)",
            t.source_port_retries
        ));
    } else if t.source_port_retries > 0 {
        line.push_str(&format!(" | source port retries {}", t.source_port_retries));
    }
    line
}
