//! The data plane: mio shards holding the connections under test, and the controller that
//! starts them, merges their snapshots, prints live progress and builds the outcome.
//!
//! - [`shard`] — one OS thread per shard: mio `Poll`, slab of [`conn::Conn`], timer wheel,
//!   scratch buffers; it evaluates its slice of the stage clock on its own.
//! - [`conn`] — the compact per-connection struct and socket set-up (socket2,
//!   `IP_BIND_ADDRESS_NO_PORT`, `TCP_NODELAY`, `SO_LINGER(0)` for reset closes).
//! - [`ws`] — the client side of RFC 6455, sans I/O: request template, response check, frames.
//! - [`tls`] — client TLS for `wss://` (rustls, sans I/O; the memory design is in its docs).
//! - [`jwt`] — per-connection JWT minting.
//! - [`source`] — the source-address pool (its specs are parsed in `plan::source_spec`).
//! - [`precise`] — the `timerfd` that wakes a shard for sub-millisecond timers.
//! - [`timer`] — the coarse timer wheel.
//! - [`live`] — the interval line / self-updating view.
//!
//! No tokio here: the engine never awaits.

pub mod conn;
pub mod jwt;
pub mod live;
pub mod precise;
pub mod shard;
pub mod source;

pub mod timer;
pub mod tls;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::metrics::{Snapshot, rss_bytes};
use crate::plan::{Plan, Slice};
use crate::report::outcome::{RunOutcome, SourceOutcome};

pub use live::LiveMode;

/// Errors that stop the engine itself (not per-connection failures, which are counted).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot create the event loop (epoll): {0}")]
    Poll(std::io::Error),
    #[error(transparent)]
    JwtKey(#[from] jwt::JwtKeyError),
    #[error("cannot start engine thread: {0}")]
    Thread(std::io::Error),
    #[error("the plan has no target")]
    NoTarget,
    #[error(transparent)]
    Tls(#[from] crate::plan::tls::TlsSetupError),
    #[error("engine shard {0} panicked")]
    ShardPanicked(usize),
}

/// How to run a plan (beyond the plan itself).
#[derive(Clone)]
pub struct RunOptions {
    /// Set to stop the run early (Ctrl-C); shards then close everything and report.
    pub stop: Arc<AtomicBool>,
    pub live: LiveMode,
    /// The plan's targets are the in-process embedded gateway.
    pub embedded_gateway: bool,
    /// This process's part of the plan (the whole plan unless split over processes/agents).
    pub slice: Slice,
    /// How often shards hand over snapshots (peak and memory sampling granularity).
    pub snapshot_every: Duration,
    /// When the first stage starts (default: 20 ms after `run` is called). Agents of a
    /// distributed run get a common start instant from their coordinator.
    pub start_at: Option<Instant>,
    /// Receives this process's merged snapshot (deltas since the previous one, current
    /// gauges) every `snapshot_every`, and a final one with `true` — how an agent streams to
    /// its coordinator.
    pub observer: Option<mpsc::Sender<(Snapshot, bool)>>,
}

impl RunOptions {
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        RunOptions {
            stop,
            live: LiveMode::Quiet,
            embedded_gateway: false,
            slice: Slice::WHOLE,
            snapshot_every: Duration::from_millis(200),
            start_at: None,
            observer: None,
        }
    }
}

/// One TCP connect per target (timeout: the connect timeout, at most 5 s); returns a line per
/// target that did not answer (`url (addr): error`). Run before loading, so an unreachable
/// gateway is an error rather than a run full of `refused`.
pub fn unreachable_targets(plan: &Plan) -> Vec<String> {
    let timeout = plan.connect_timeout.min(Duration::from_secs(5));
    plan.targets
        .iter()
        .filter_map(|t| {
            std::net::TcpStream::connect_timeout(&t.addr, timeout)
                .err()
                .map(|e| format!("{} ({}): {e}", t.url, t.addr))
        })
        .collect()
}

/// Run `plan` to completion (or until `opts.stop`) and return what happened.
pub fn run(plan: &Plan, opts: &RunOptions) -> Result<RunOutcome, EngineError> {
    if plan.targets.is_empty() {
        return Err(EngineError::NoTarget);
    }
    let plan = Arc::new(plan.clone());
    let threads = plan.threads.max(1);
    // Before the RSS baseline: the shared TLS set-up (root store, config) is not a
    // per-connection cost.
    let tls = tls::ClientTls::new(&plan.tls, &plan.targets)?;
    let rss_before = rss_bytes().unwrap_or(0);
    let epoch = Instant::now();
    // A short lead so every shard thread is up before the first stage starts.
    let start = opts
        .start_at
        .unwrap_or(epoch + Duration::from_millis(20))
        .max(epoch);
    let started_at = SystemTime::now() + (start - epoch);
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let params = shard::ShardParams {
            index: i,
            plan: plan.clone(),
            slice: opts.slice.sub(i, threads),
            epoch,
            start,
            snapshot_every: opts.snapshot_every,
            stop: opts.stop.clone(),
            tx: tx.clone(),
            conn_stride: threads as u64,
            conn_offset: i as u64,
            tls: tls.clone(),
        };
        let h = std::thread::Builder::new()
            .name(format!("wsscale-shard-{i}"))
            .spawn(move || shard::run_shard(params))
            .map_err(EngineError::Thread)?;
        handles.push(h);
    }
    drop(tx);

    let mut agg = Aggregator::new(threads, plan.sources.len().max(1), rss_before);
    let mut live = live::Live::new(opts.live, plan.interval, start);
    let clock = crate::plan::StageClock::new(plan.stages.clone());
    let mut finished = 0;
    // Set when --abort-on-fail stopped the run (then it is not an interruption).
    let mut aborted = false;
    let planned_attempts = crate::report::thresholds::planned_attempts(&plan).unwrap_or(u64::MAX);
    let mut next_forward = Instant::now() + opts.snapshot_every;
    while finished < threads {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => {
                if r.last {
                    finished += 1;
                }
                agg.add(r.shard, &r.snapshot);
                if plan.abort_on_fail
                    && !aborted
                    && plan.thresholds.iter().any(|t| {
                        crate::report::thresholds::cannot_be_met(t, &agg.totals, planned_attempts)
                    })
                {
                    aborted = true;
                    opts.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Some(obs) = &opts.observer
            && Instant::now() >= next_forward
        {
            next_forward += opts.snapshot_every;
            // A gone observer (coordinator link down) is handled by its owner via `stop`.
            let _ = obs.send((agg.take_outbox(), false));
        }
        live.tick(&clock, &mut agg, plan.peak_connections(), false);
    }
    let duration = start.elapsed();
    live.tick(&clock, &mut agg, plan.peak_connections(), true);
    if let Some(obs) = &opts.observer {
        let _ = obs.send((agg.take_outbox(), true));
    }
    let mut first_err = None;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(EngineError::ShardPanicked(i));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let mut outcome = build_outcome(
        &plan,
        agg,
        live.into_rows(),
        OutcomeMeta {
            started_at,
            start,
            duration,
            embedded_gateway: opts.embedded_gateway,
            interrupted: !aborted && opts.stop.load(std::sync::atomic::Ordering::Relaxed),
            threads,
            rss_before_bytes: rss_before,
        },
    );
    outcome.aborted_by_threshold = aborted;
    Ok(outcome)
}

/// What `build_outcome` needs besides the plan and the aggregate.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeMeta {
    pub started_at: SystemTime,
    /// The monotonic instant the first stage started.
    pub start: Instant,
    pub duration: Duration,
    pub embedded_gateway: bool,
    pub interrupted: bool,
    pub threads: usize,
    pub rss_before_bytes: u64,
}

/// Turn an aggregate (of shards, processes or agents) into a [`RunOutcome`].
pub fn build_outcome(
    plan: &Plan,
    agg: Aggregator,
    timeseries: Vec<crate::report::outcome::IntervalRow>,
    meta: OutcomeMeta,
) -> RunOutcome {
    let labels = source::SourcePool::new(plan.sources.clone(), 1, 0).labels();
    let per_source = labels
        .into_iter()
        .zip(agg.totals.per_source.iter())
        .map(|(address, c)| SourceOutcome {
            address,
            established: c.established,
            failed: c.failed,
            addr_not_available: c.addr_not_available,
        })
        .collect();
    RunOutcome {
        started_at: meta.started_at,
        duration: meta.duration,
        stages: plan.stages.clone(),
        targets: plan.targets.iter().map(|t| t.url.clone()).collect(),
        embedded_gateway: meta.embedded_gateway,
        interrupted: meta.interrupted,
        sources_exhausted: agg.sources_exhausted_seen,
        tls_insecure: plan.tls.insecure && plan.targets.iter().any(|t| t.tls),
        threads: meta.threads,
        peak_open: agg.peak_open,
        peak_reached_after: agg.peak_at.saturating_duration_since(meta.start),
        rss_before_bytes: meta.rss_before_bytes,
        rss_peak_bytes: agg.rss_peak,
        rss_at_peak_open_bytes: agg.rss_at_peak_open,
        totals: agg.into_totals(),
        per_source,
        timeseries,
        thresholds: Vec::new(),
        aborted_by_threshold: false,
        agents: Vec::new(),
    }
}

/// Merges shard snapshots: totals over the run, current gauges per shard, an interval view
/// for live output, and peak tracking.
pub struct Aggregator {
    /// Counters and histograms summed over the run (gauges: see `current_gauges`).
    pub totals: Snapshot,
    /// Deltas since the last live line.
    pub interval: Snapshot,
    /// Deltas since the last `take_outbox` (what an agent forwards).
    outbox: Snapshot,
    /// Latest gauges per shard.
    gauges: Vec<crate::metrics::Gauges>,
    pub peak_open: u64,
    /// When `peak_open` was first reached.
    pub peak_at: Instant,
    pub rss_peak: u64,
    pub rss_at_peak_open: u64,
    pub sources_exhausted_seen: bool,
}

impl Aggregator {
    pub fn new(shards: usize, sources: usize, rss_before: u64) -> Self {
        let mut totals = Snapshot::default();
        totals
            .per_source
            .resize(sources, crate::metrics::SourceCounts::default());
        Aggregator {
            totals,
            interval: Snapshot::default(),
            outbox: Snapshot::default(),
            gauges: vec![Default::default(); shards],
            peak_open: 0,
            peak_at: Instant::now(),
            rss_peak: rss_before,
            rss_at_peak_open: rss_before,
            sources_exhausted_seen: false,
        }
    }

    /// Merge one shard snapshot.
    pub fn add(&mut self, shard: usize, s: &Snapshot) {
        self.totals.merge_deltas(s);
        self.interval.merge_deltas(s);
        self.outbox.merge_deltas(s);
        if shard >= self.gauges.len() {
            self.gauges.resize(shard + 1, Default::default());
        }
        self.gauges[shard] = s.gauges.clone();
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
        if g.open > self.peak_open {
            self.peak_open = g.open;
            self.peak_at = Instant::now();
            self.rss_at_peak_open = rss;
        }
    }

    /// Sum of the latest gauges of all shards.
    pub fn current_gauges(&self) -> crate::metrics::Gauges {
        let mut g = crate::metrics::Gauges::default();
        for s in &self.gauges {
            g.merge(s);
        }
        g
    }

    /// Take the deltas since the previous call, with the current gauges (and this process's
    /// RSS in `gauges.rss_bytes`).
    pub fn take_outbox(&mut self) -> Snapshot {
        let mut s = std::mem::take(&mut self.outbox);
        s.gauges = self.current_gauges();
        // The receiver (a coordinator) needs this process's memory, not its own.
        s.gauges.rss_bytes = rss_bytes().unwrap_or(0);
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
