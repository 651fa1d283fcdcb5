//! [`Aggregator`]: merges snapshots — of shards in a process, of processes and agents in a
//! coordinator — into run totals, an interval view for the time series, an outbox for an
//! agent's link, and peak / memory tracking. The same [`Snapshot::merge_deltas`] everywhere.

use std::time::Instant;

use super::{Gauges, Snapshot, SourceCounts, rss_bytes};

/// Merges shard snapshots: totals over the run, current gauges per shard, an interval view
/// for live output, and peak tracking. Cloned for a checkpoint's partial outcome.
#[derive(Clone)]
pub struct Aggregator {
    /// Counters and histograms summed over the run (gauges: see `current_gauges`).
    pub totals: Snapshot,
    /// Deltas since the last live line.
    pub interval: Snapshot,
    /// Deltas since the last `take_outbox` (what an agent forwards).
    outbox: Snapshot,
    /// False when nobody takes the outbox (see [`Aggregator::without_outbox`]).
    outbox_on: bool,
    /// Latest gauges per shard.
    gauges: Vec<Gauges>,
    pub peak_open: u64,
    /// Highest number of connections open or opening at once (with churn a slot between
    /// two sessions is opening, not lost: see `verdict::shortfall`).
    pub peak_in_use: u64,
    /// When `peak_open` was first reached.
    pub peak_at: Instant,
    pub rss_peak: u64,
    pub rss_at_peak_open: u64,
    pub sources_exhausted_seen: bool,
    /// Highest `Gauges::buffered_peak` of any snapshot so far (what `current_gauges` reports:
    /// a high-water mark over the run, not the latest shard value).
    buffered_peak: u64,
}

impl Aggregator {
    pub fn new(shards: usize, sources: usize, rss_before: u64) -> Self {
        let mut totals = Snapshot::default();
        totals.per_source.resize(sources, SourceCounts::default());
        Aggregator {
            totals,
            interval: Snapshot::default(),
            outbox: Snapshot::default(),
            outbox_on: true,
            gauges: vec![Default::default(); shards],
            peak_open: 0,
            peak_in_use: 0,
            peak_at: Instant::now(),
            rss_peak: rss_before,
            rss_at_peak_open: rss_before,
            sources_exhausted_seen: false,
            buffered_peak: 0,
        }
    }

    /// Keep no outbox: for an aggregator nobody calls [`Aggregator::take_outbox`] on (a
    /// standalone run, a coordinator). Each merge of a snapshot's histograms walks their
    /// whole counts arrays, so one merge fewer per snapshot is a third less of that work.
    pub fn without_outbox(mut self) -> Self {
        self.outbox_on = false;
        self
    }

    /// Merge one shard snapshot.
    pub fn add(&mut self, shard: usize, s: &Snapshot) {
        self.totals.merge_deltas(s);
        self.interval.merge_deltas(s);
        if self.outbox_on {
            self.outbox.merge_deltas(s);
        }
        if shard >= self.gauges.len() {
            self.gauges.resize(shard + 1, Default::default());
        }
        self.gauges[shard] = s.gauges.clone();
        self.buffered_peak = self.buffered_peak.max(s.gauges.buffered_peak);
        let g = self.current_gauges();
        self.sources_exhausted_seen |= g.sources_exhausted;
        // Snapshots forwarded by other processes (agents) carry their own RSS; shards don't,
        // and then this process is the one to measure.
        let rss = if g.rss_bytes > 0 {
            g.rss_bytes
        } else {
            rss_bytes().unwrap_or(0)
        };
        self.rss_peak = self.rss_peak.max(rss);
        self.peak_in_use = self.peak_in_use.max(g.open + g.pending);
        if g.open > self.peak_open {
            self.peak_open = g.open;
            self.peak_at = Instant::now();
            self.rss_at_peak_open = rss;
        }
    }

    /// Sum of the latest gauges of all shards (`buffered_peak`: the highest seen so far).
    pub fn current_gauges(&self) -> Gauges {
        let mut g = Gauges::default();
        for s in &self.gauges {
            g.merge(s);
        }
        g.buffered_peak = self.buffered_peak;
        g
    }

    /// Take the deltas since the previous call, with the current gauges (and this process's
    /// RSS in `gauges.rss_bytes`).
    pub fn take_outbox(&mut self) -> Snapshot {
        let mut s = std::mem::take(&mut self.outbox);
        s.gauges = self.current_gauges();
        // The receiver (a coordinator) needs this process's memory, not its own.
        s.gauges.rss_bytes = rss_bytes().unwrap_or(0);
        // And this process's peak, which its snapshots' open counts may not show.
        s.gauges.peak_open = self.peak_open;
        s
    }

    /// Take the interval view (resetting it).
    pub fn take_interval(&mut self) -> Snapshot {
        std::mem::take(&mut self.interval)
    }

    /// The totals with the current gauges.
    pub fn into_totals(mut self) -> Snapshot {
        self.totals.gauges = self.current_gauges();
        self.totals
    }
}
