//! Live progress: one plain line per interval when stdout is not a terminal (CI logs), a
//! self-updating line when it is.
//!
//! A line shows: elapsed time, the stage (ramp-up / hold / ramp-down, index of count), open
//! connections against the current target, the connect rate over the interval, pending
//! handshakes, failures by category over the run, and the interval's p50/p99 handshake time.
//! When every source address is out of ports, the line says so in capitals.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::metrics::FailureKind;
use crate::plan::StageClock;
use crate::report::outcome::IntervalRow;

use super::Aggregator;

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
}

/// Live-output state.
pub struct Live {
    mode: LiveMode,
    interval: Duration,
    start: Instant,
    next: Instant,
    last: Instant,
    rows: Vec<IntervalRow>,
}

impl Live {
    pub fn new(mode: LiveMode, interval: Duration, start: Instant) -> Self {
        Live {
            mode,
            interval,
            start,
            next: start + interval,
            last: start,
            rows: Vec::new(),
        }
    }

    /// The time series collected so far.
    pub fn into_rows(self) -> Vec<IntervalRow> {
        self.rows
    }

    /// Print a line if an interval has passed (or `final_`).
    pub fn tick(&mut self, clock: &StageClock, agg: &mut Aggregator, peak: u64, final_: bool) {
        let now = Instant::now();
        if !final_ && now < self.next {
            return;
        }
        // The closing call right after an interval line would repeat it.
        if final_ && !self.rows.is_empty() && now - self.last < Duration::from_millis(100) {
            return;
        }
        while self.next <= now {
            self.next += self.interval;
        }
        let span = now
            .saturating_duration_since(self.last)
            .as_secs_f64()
            .max(1e-3);
        self.last = now;
        let (line, row) = render(
            clock,
            agg,
            now.saturating_duration_since(self.start),
            span,
            peak,
        );
        self.rows.push(row);
        if self.mode == LiveMode::Quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        // Progress output is best effort: a closed stderr must not stop the run.
        let _ = match self.mode {
            LiveMode::Tty if final_ => writeln!(err, "\r\x1b[2K{line}"),
            LiveMode::Tty => write!(err, "\r\x1b[2K{line}"),
            _ => writeln!(err, "{line}"),
        };
        let _ = err.flush();
    }
}

/// Stage label at `elapsed`: "ramp-up 1/3", "hold 2/3", "ramp-down 3/3" or "done".
pub fn stage_label(clock: &StageClock, elapsed: Duration) -> String {
    let stages = clock.stages();
    match clock.stage_index(elapsed) {
        None => "done".into(),
        Some(i) => {
            let prev = if i == 0 { 0 } else { stages[i - 1].target };
            let kind = match stages[i].target.cmp(&prev) {
                std::cmp::Ordering::Greater => "ramp-up",
                std::cmp::Ordering::Equal => "hold",
                std::cmp::Ordering::Less => "ramp-down",
            };
            format!("{kind} {}/{}", i + 1, stages.len())
        }
    }
}

fn render(
    clock: &StageClock,
    agg: &mut Aggregator,
    elapsed: Duration,
    span: f64,
    peak: u64,
) -> (String, IntervalRow) {
    let iv = agg.take_interval();
    let q = |h: &hdrhistogram::Histogram<u64>, p: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(p) as f64 / 1000.0
        }
    };
    let mh = &iv.hist.message_rtt;
    let row = IntervalRow {
        t_s: elapsed.as_secs_f64(),
        open: agg.current_gauges().open,
        connect_rate: iv.counters.established as f64 / span,
        failures: iv.counters.failed,
        dropped: iv.counters.dropped,
        msgs_sent_per_s: iv.counters.messages_sent as f64 / span,
        msgs_received_per_s: iv.counters.messages_received as f64 / span,
        message_p50_ms: q(mh, 0.5),
        message_p99_ms: q(mh, 0.99),
    };
    let g = agg.current_gauges();
    let target = clock.target_at(elapsed).floor() as u64;
    let rate = iv.counters.established as f64 / span;
    let mut line = format!(
        "[{:>7.1}s] {:<13} open {}/{} (peak plan {}) | +{:.0}/s | pending {}",
        elapsed.as_secs_f64(),
        stage_label(clock, elapsed),
        g.open,
        target,
        peak,
        rate,
        g.pending,
    );
    let t = &agg.totals.counters;
    line.push_str(&format!(" | failed {}", t.failed));
    let mut cats: Vec<String> = FailureKind::ALL
        .iter()
        .filter(|k| t.failures_of(**k) > 0 && **k != FailureKind::HttpStatus)
        .map(|k| format!("{} {}", k.label(), t.failures_of(*k)))
        .collect();
    cats.extend(
        t.http_status
            .iter()
            .map(|(c, n)| format!("http_status_{c} {n}")),
    );
    if !cats.is_empty() {
        line.push_str(&format!(" ({})", cats.join(", ")));
    }
    if t.dropped > 0 {
        line.push_str(&format!(" | dropped {}", t.dropped));
    }
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
    if t.messages_lost > 0 {
        line.push_str(&format!(" | lost {}", t.messages_lost));
    }
    let h = &iv.hist.ws_handshake;
    if !h.is_empty() {
        line.push_str(&format!(
            " | handshake p50 {:.2}ms p99 {:.2}ms",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0
        ));
    }
    if g.sources_exhausted {
        line.push_str(" | SOURCE PORTS EXHAUSTED: no more connections can be opened");
    }
    (line, row)
}
