//! The data plane: mio shards holding the connections under test, and the controller that
//! starts them, merges their snapshots (a [`metrics::Aggregator`](crate::metrics::Aggregator)),
//! records the time series, hands each interval to the caller's sink and builds the outcome.
//! The engine never renders: live output is an [`IntervalSink`] given by the caller.
//!
//! - [`shard`] — one OS thread per shard: mio `Poll`, slab of [`conn::Conn`], timer wheel,
//!   scratch buffers; it evaluates its slice of the stage clock on its own. Its write path
//!   batches: everything a connection has due goes out in one `write` (why, and what that
//!   does to latency: "Why the write path batches" in `shard::traffic`).
//! - [`conn`] — the compact per-connection struct and socket set-up (socket2,
//!   `IP_BIND_ADDRESS_NO_PORT`, `TCP_NODELAY`, `SO_LINGER(0)` for reset closes).
//! - [`ws`] — the client side of RFC 6455, sans I/O: request template, response check, frames.
//! - [`tls`] — client TLS for `wss://` (rustls, sans I/O; the memory design is in its docs).
//! - [`jwt`] — per-connection JWT minting.
//! - [`misbehave`] — what misbehaving clients (`--misbehave`) send.
//! - [`marker`] — the latency marker of timed messages and the process's wall clock.
//! - [`source`] — the source-address pool (its specs are parsed in `plan::source_spec`).
//! - [`precise`] — the `timerfd` that wakes a shard for sub-millisecond timers.
//! - [`timer`] — the coarse timer wheel.
//!
//! No tokio here: the engine never awaits.

pub mod conn;
pub mod deflate;
pub mod jwt;
pub mod marker;
pub mod misbehave;
pub mod precise;
pub mod shard;
pub mod source;

pub mod timer;
pub mod tls;
pub mod validate;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::metrics::outcome::CheckpointSink;
use crate::metrics::thresholds::AbortRule;
use crate::metrics::timeseries::{IntervalSink, TimeSeries};
use crate::metrics::{Aggregator, OutcomeMeta, RunOutcome, Snapshot, build_outcome, rss_bytes};
use crate::plan::redact::redact_url;
use crate::plan::{Plan, Slice};

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
    /// Receives every interval (the live printer); `None`: nothing is shown.
    pub live: Option<Arc<dyn IntervalSink>>,
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
    /// Receives a partial outcome every `every()` while the run goes on (`--checkpoint`).
    pub checkpoint: Option<Arc<dyn CheckpointSink>>,
}

impl RunOptions {
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        RunOptions {
            stop,
            live: None,
            embedded_gateway: false,
            slice: Slice::WHOLE,
            snapshot_every: Duration::from_millis(200),
            start_at: None,
            observer: None,
            checkpoint: None,
        }
    }
}

/// No target of the plan answered a TCP connect.
#[derive(Debug, thiserror::Error)]
#[error(
    "no target is reachable:\n  {}\nCheck that the gateway is running and listening on that \
     address (for a local test: `wsscale serve --listen 127.0.0.1:8080`), or omit --target to \
     use the embedded gateway.",
    .0.join("\n  ")
)]
pub struct Unreachable(pub Vec<String>);

/// One TCP connect per target (timeout: the connect timeout, at most 5 s), before loading,
/// so an unreachable gateway is an error rather than a run full of `refused`. `Err` when no
/// target answers; otherwise the targets that did not, one line each (`url (addr): error`).
pub fn probe_targets(plan: &Plan) -> Result<Vec<String>, Unreachable> {
    let timeout = plan.connect_timeout.min(Duration::from_secs(5));
    let failures: Vec<String> = plan
        .targets
        .iter()
        .filter_map(|t| {
            std::net::TcpStream::connect_timeout(&t.addr, timeout)
                .err()
                .map(|e| format!("{} ({}): {e}", redact_url(&t.url), t.addr))
        })
        .collect();
    if !plan.targets.is_empty() && failures.len() == plan.targets.len() {
        return Err(Unreachable(failures));
    }
    Ok(failures)
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
    // Read the wall-clock anchor now, not on the first message.
    marker::wall_us_at(Instant::now());
    // Connection numbers restart with every run: so does the marker's sender identity.
    let nonce = marker::new_nonce();
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
            // Connection numbers are per process: its share of a publisher count.
            publishers: plan.traffic.publishers.map(|p| p.share(opts.slice)),
            nonce,
        };
        let h = std::thread::Builder::new()
            .name(format!("wsscale-shard-{i}"))
            .spawn(move || shard::run_shard(params))
            .map_err(EngineError::Thread)?;
        handles.push(h);
    }
    drop(tx);

    let mut agg = Aggregator::new(threads, plan.sources.len().max(1), rss_before);
    if opts.observer.is_none() {
        agg = agg.without_outbox();
    }
    let mut series = TimeSeries::new(plan.interval, start).with_arrival(plan.arrival.as_ref());
    let clock = crate::plan::StageClock::new(plan.stages.clone());
    let mut finished = 0;
    // Set when --abort-on-fail stopped the run (then it is not an interruption).
    let mut aborted = false;
    let abort_rule = AbortRule::for_plan(&plan);
    let mut next_forward = Instant::now() + opts.snapshot_every;
    let mut next_checkpoint = opts.checkpoint.as_ref().map(|c| start + c.every());
    while finished < threads {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => {
                if r.last {
                    finished += 1;
                }
                agg.add(r.shard, &r.snapshot);
                if !aborted
                    && let Some(rule) = &abort_rule
                    && rule.lost(&agg.totals).is_some()
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
        series.tick(
            &clock,
            &mut agg,
            plan.peak_connections(),
            false,
            opts.live.as_deref(),
        );
        if let (Some(sink), Some(at)) = (&opts.checkpoint, next_checkpoint.as_mut())
            && Instant::now() >= *at
        {
            *at = Instant::now() + sink.every();
            let mut partial = build_outcome(
                &plan,
                agg.clone(),
                series.rows().to_vec(),
                OutcomeMeta {
                    started_at,
                    start,
                    duration: start.elapsed(),
                    embedded_gateway: opts.embedded_gateway,
                    interrupted: false,
                    threads,
                    rss_before_bytes: rss_before,
                    aborted_by_threshold: false,
                    per_source: None,
                    agents: Vec::new(),
                },
            );
            partial.complete = false;
            sink.checkpoint(&partial);
        }
    }
    let duration = start.elapsed();
    series.tick(
        &clock,
        &mut agg,
        plan.peak_connections(),
        true,
        opts.live.as_deref(),
    );
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
    let (rows, holds) = series.into_parts();
    let mut outcome = build_outcome(
        &plan,
        agg,
        rows,
        OutcomeMeta {
            started_at,
            start,
            duration,
            embedded_gateway: opts.embedded_gateway,
            interrupted: !aborted && opts.stop.load(std::sync::atomic::Ordering::Relaxed),
            threads,
            rss_before_bytes: rss_before,
            aborted_by_threshold: aborted,
            per_source: None,
            agents: Vec::new(),
        },
    );
    outcome.holds = holds;
    Ok(outcome)
}
