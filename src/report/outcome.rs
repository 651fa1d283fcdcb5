//! [`RunOutcome`]: everything a finished (or interrupted) run hands to the report writers.
//!
//! The engine's controller fills this in; `report` turns it into the text summary and the
//! JSON document. Nothing here is formatted yet.

use std::time::{Duration, SystemTime};

use crate::metrics::Snapshot;
use crate::plan::Stage;

/// One source address and its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOutcome {
    /// The address as text (`127.0.0.2`), or `"kernel"` when the kernel chose.
    pub address: String,
    pub established: u64,
    pub failed: u64,
    pub addr_not_available: u64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Wall-clock start of the first stage.
    pub started_at: SystemTime,
    /// Time from the start of the first stage to the end of the run.
    pub duration: Duration,
    /// The stages that were planned.
    pub stages: Vec<Stage>,
    /// Target URLs as given (or the embedded gateway's URL).
    pub targets: Vec<String>,
    /// True when the run targeted the in-process embedded gateway (so the memory figure
    /// covers both client and server).
    pub embedded_gateway: bool,
    /// True when the run was cut short (Ctrl-C / SIGTERM).
    pub interrupted: bool,
    /// True when every source address ran out of ports for every destination.
    pub sources_exhausted: bool,
    /// Engine threads used.
    pub threads: usize,
    /// The merged totals of all shards (counters summed over the whole run; gauges as at
    /// the end; histograms over the whole run).
    pub totals: Snapshot,
    /// Highest number of simultaneously open connections seen.
    pub peak_open: u64,
    /// Time from the start of the first stage until `peak_open` was first reached
    /// (`peak_open ÷ this` is the achieved ramp rate when the ramp is faster than the engine).
    pub peak_reached_after: Duration,
    /// RSS before the first connection was opened.
    pub rss_before_bytes: u64,
    /// Highest RSS sampled during the run.
    pub rss_peak_bytes: u64,
    /// RSS sampled at the moment `peak_open` was reached (basis of bytes/connection).
    pub rss_at_peak_open_bytes: u64,
    /// Per source address; one `"kernel"` row when no source addresses were given.
    pub per_source: Vec<SourceOutcome>,
}

impl RunOutcome {
    /// User-space bytes per connection: (RSS at peak open − RSS before) ÷ peak open.
    pub fn bytes_per_connection(&self) -> Option<f64> {
        if self.peak_open == 0 {
            return None;
        }
        let grown = self
            .rss_at_peak_open_bytes
            .saturating_sub(self.rss_before_bytes);
        Some(grown as f64 / self.peak_open as f64)
    }

    /// established ÷ attempted (1.0 when nothing was attempted).
    pub fn success_rate(&self) -> f64 {
        let c = &self.totals.counters;
        if c.attempted == 0 {
            1.0
        } else {
            c.established as f64 / c.attempted as f64
        }
    }
}
