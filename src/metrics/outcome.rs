//! [`RunOutcome`]: everything a finished (or interrupted) run hands to the report writers,
//! and [`build_outcome`], the one way to make it from an [`Aggregator`] — used by the
//! engine's controller, the coordinator and `report merge` alike.
//!
//! `report` turns an outcome into the text summary and the JSON document. Nothing here is
//! formatted yet.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::aggregate::Aggregator;
use super::{Snapshot, SourceCounts};
use crate::plan::{Plan, Stage};

/// One source address and its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOutcome {
    /// The address as text (`127.0.0.2`), or `"kernel"` when the kernel chose.
    pub address: String,
    pub established: u64,
    pub failed: u64,
    pub addr_not_available: u64,
}

impl SourceOutcome {
    /// Report rows from (address label, counts) pairs — the one place source counts become rows.
    pub fn rows<'a>(pairs: impl IntoIterator<Item = (String, &'a SourceCounts)>) -> Vec<Self> {
        pairs
            .into_iter()
            .map(|(address, c)| SourceOutcome {
                address,
                established: c.established,
                failed: c.failed,
                addr_not_available: c.addr_not_available,
            })
            .collect()
    }
}

/// One target and its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOutcome {
    /// The target URL as given.
    pub url: String,
    pub established: u64,
    pub failed: u64,
}

impl TargetOutcome {
    /// True when every attempt to this target failed (it was down or refused everything).
    pub fn all_failed(&self) -> bool {
        self.established == 0 && self.failed > 0
    }
}

/// One row of the time series: what happened during one live-output interval (also the
/// JSON report's `timeseries[]` row and the CSV line).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntervalRow {
    /// End of the interval, seconds since the start of the first stage.
    pub t_s: f64,
    /// Open connections at the end of the interval.
    pub open: u64,
    /// Connections established per second during the interval.
    pub connect_rate: f64,
    /// Failures during the interval.
    pub failures: u64,
    /// Drops during the interval.
    pub dropped: u64,
    /// Timed messages sent / echoes received per second during the interval.
    pub msgs_sent_per_s: f64,
    pub msgs_received_per_s: f64,
    /// Message round trip p50 / p99 during the interval (ms; 0 when no samples).
    pub message_p50_ms: f64,
    pub message_p99_ms: f64,
    /// Server pushes whose timestamp was read, per second during the interval (added later
    /// in schema version 1: absent from older reports, hence the defaults).
    #[serde(default)]
    pub pushes_per_s: f64,
    /// Push latency p50 / p99 during the interval (ms; 0 when no samples).
    #[serde(default)]
    pub push_p50_ms: f64,
    #[serde(default)]
    pub push_p99_ms: f64,
    /// Fan-out latency p50 / p99 during the interval (ms; 0 when no samples).
    #[serde(default)]
    pub fanout_p50_ms: f64,
    #[serde(default)]
    pub fanout_p99_ms: f64,
    /// Client (this process's, or the agents' summed) RSS at the end of the interval.
    #[serde(default)]
    pub rss_bytes: u64,
    /// The watched gateway (`--watch-pid`, `--watch-process`, `--gateway-metrics`, or the
    /// embedded gateway process) at the sample nearest to the end of the interval; `None`
    /// (null) when nothing was watched. See [`super::gateway`].
    #[serde(default)]
    pub gateway_rss_bytes: Option<u64>,
    #[serde(default)]
    pub gateway_cpu_percent: Option<f64>,
    #[serde(default)]
    pub gateway_fds: Option<u64>,
    #[serde(default)]
    pub gateway_established: Option<u64>,
    /// (gateway RSS − its RSS before the run) ÷ `open`.
    #[serde(default)]
    pub gateway_bytes_per_connection: Option<f64>,
    /// Health checks (`--health-url`) that failed during the interval, and the latency of
    /// the last one (`None` when none was made).
    #[serde(default)]
    pub health_failures: u64,
    #[serde(default)]
    pub health_latency_ms: Option<f64>,
    /// p50/p90/p99 during the interval of every latency histogram that had samples in it, by
    /// its `timings` name (`message_rtt_ms`, `ws_handshake_ms`, …). Added within schema
    /// version 1: absent from older reports, which read back empty.
    #[serde(default)]
    pub latency_ms: BTreeMap<String, IntervalPercentiles>,
    /// Connection attempts started per second during the interval: new sessions, arrivals
    /// and slot refills (churn; `connect_rate` counts those established). Added within
    /// schema version 1.
    #[serde(default)]
    pub opens_per_s: f64,
    /// Sessions ended by churn (`--session-duration`) per second during the interval.
    #[serde(default)]
    pub closes_per_s: f64,
    /// Failures during the interval by category (the `connections.failures` labels),
    /// non-zero categories only.
    #[serde(default)]
    pub failures_by_category: BTreeMap<String, u64>,
    /// Drops during the interval by reason (the `connections.drops` labels), non-zero only.
    #[serde(default)]
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Re-open attempts (`--reconnect`) started during the interval (0 in older reports).
    #[serde(default)]
    pub reconnects: u64,
    /// The message burst (`--message-burst`, numbered from 1) that fell in this interval;
    /// 0: none (see [`super::bursts`]).
    #[serde(default)]
    pub burst: u64,
}

/// Three quantiles of one latency histogram over one interval (ms, three decimals).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntervalPercentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// A preflight check that did not pass, as the run's report keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreflightNote {
    /// The check's stable identifier (`nofile`, `ephemeral_ports`, …).
    pub check: String,
    /// Its label for people.
    pub name: String,
    /// `warn` (a failed check refuses the run, unless `--skip-preflight`).
    pub status: String,
    pub found: String,
    pub needed: String,
}

/// A threshold with its measured value and verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdOutcome {
    /// The expression as written (`message_rtt_ms.p99<200`).
    pub expr: String,
    pub metric: String,
    /// The measured value (`None` when the metric had no data, which fails the threshold).
    pub measured: Option<f64>,
    pub passed: bool,
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
    /// True when `wss://` server certificates were not verified (`--tls-insecure`).
    pub tls_insecure: bool,
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
    /// Per target, in the plan's order: connections established and attempts failed.
    pub per_target: Vec<TargetOutcome>,
    /// One row per live-output interval.
    pub timeseries: Vec<IntervalRow>,
    /// Threshold verdicts (filled in after the run; empty when none were given).
    pub thresholds: Vec<ThresholdOutcome>,
    /// True when the run was stopped early because a threshold could no longer be met.
    pub aborted_by_threshold: bool,
    /// One entry per agent of a distributed run (`wsscale coordinator`, `run --processes`,
    /// `report merge`); empty for a single-process run.
    pub agents: Vec<AgentOutcome>,
    /// The session protocol preset (`--protocol`), if any.
    pub protocol: Option<String>,
    /// The auto-reply rules (`PATTERN=>RESPONSE`), in order: `totals.counters.replies[i]`
    /// counts rule `i`.
    pub reply_rules: Vec<String>,
    /// The verdict (set when the run is finished: thresholds evaluated, see
    /// [`super::verdict::judge`]); `None` before.
    pub verdict: Option<super::verdict::Verdict>,
    /// False for a checkpoint written while the run goes on (`--checkpoint`): what a run
    /// killed at that moment leaves behind.
    pub complete: bool,
    /// What `system::watch` sampled on the gateway's side (`None`: nothing was watched).
    pub gateway: Option<super::gateway::GatewayRecord>,
    /// First and last quarter of every hold stage (see [`super::drift`]).
    pub holds: Vec<super::drift::HoldQuarters>,
    /// Preflight checks that warned before the run (empty when they all passed, were
    /// skipped, or ran elsewhere — on agents).
    pub preflight: Vec<PreflightNote>,
    /// The `gateway` section as read back from a report (`report merge`), used when there is
    /// no `gateway` record.
    pub gateway_read_back: Option<super::gateway::GatewaySummary>,
    /// The `drift[]` section as read back from a report, used when there are no `holds`.
    pub drift_read_back: Vec<super::drift::HoldDrift>,
    /// Churn and the arrival model as planned, and the peak of open + opening connections;
    /// `None` when the plan had neither (see [`super::churn`]).
    pub churn: Option<super::churn::ChurnRecord>,
    /// `--disruption-threshold`: the fraction of open connections dropped within one
    /// interval that makes a drop wave (see [`super::disruption`]).
    pub disruption_threshold: f64,
}

/// Receives partial outcomes while a run goes on (`--checkpoint`), so that a run killed by
/// SIGKILL or the OOM killer still leaves its figures up to the last checkpoint.
pub trait CheckpointSink: Send + Sync {
    /// How often to be called.
    fn every(&self) -> Duration;
    /// A partial outcome (`complete == false`, no verdict).
    fn checkpoint(&self, partial: &RunOutcome);
}

/// One agent of a distributed run: who it was and what it did. The global figures are the
/// exact merge of these.
#[derive(Debug, Clone)]
pub struct AgentOutcome {
    /// 1-based position in the run.
    pub id: usize,
    /// `--name` (default `HOSTNAME:PID`; `process-N` for `--processes`; the file name for
    /// `report merge`).
    pub name: String,
    pub host: String,
    /// Source addresses it was given (empty: the kernel chose).
    pub sources: Vec<String>,
    /// Connections it was to hold at the plan's peak.
    pub planned_connections: u64,
    /// Highest number of connections it had open at once.
    pub peak_open: u64,
    /// `Some(reason)` when it was lost mid-run (its last snapshot is kept).
    pub lost: Option<String>,
    /// Its own counters and histograms over the run; gauges as last reported.
    pub totals: Snapshot,
}

impl AgentOutcome {
    /// An agent's entry from its totals (counters and histograms over the run) and its last
    /// gauges — the one way agents of a coordinator, `--processes` and `report merge` are built.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        name: String,
        host: String,
        sources: Vec<String>,
        planned_connections: u64,
        peak_open: u64,
        lost: Option<String>,
        totals: &Snapshot,
        gauges: &super::Gauges,
    ) -> AgentOutcome {
        let mut totals = totals.clone();
        totals.gauges = gauges.clone();
        AgentOutcome {
            id,
            name,
            host,
            sources,
            planned_connections,
            peak_open,
            lost,
            totals,
        }
    }
}

impl RunOutcome {
    /// The drop waves in the time series and their recovery (see [`super::disruption`]).
    pub fn disruptions(&self) -> Vec<super::disruption::Disruption> {
        super::disruption::detect(&self.timeseries, &self.stages, self.disruption_threshold)
    }

    /// The message bursts marked in the time series (see [`super::bursts`]).
    pub fn bursts(&self) -> Vec<super::bursts::BurstOutcome> {
        super::bursts::summarize(&self.timeseries)
    }

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

/// What `build_outcome` needs besides the plan and the aggregate.
#[derive(Debug, Clone)]
pub struct OutcomeMeta {
    pub started_at: SystemTime,
    /// The monotonic instant the first stage started.
    pub start: Instant,
    pub duration: Duration,
    pub embedded_gateway: bool,
    pub interrupted: bool,
    pub threads: usize,
    pub rss_before_bytes: u64,
    /// True when `--abort-on-fail` stopped the run.
    pub aborted_by_threshold: bool,
    /// Per-source rows when they are not the plan's pool in order (a coordinator's agents
    /// each bring their own sources); `None`: the plan's sources with the aggregate's counts.
    pub per_source: Option<Vec<SourceOutcome>>,
    /// One entry per agent of a distributed run (empty for one process).
    pub agents: Vec<AgentOutcome>,
}

/// Turn an aggregate (of shards, processes or agents) into a [`RunOutcome`].
pub fn build_outcome(
    plan: &Plan,
    agg: Aggregator,
    timeseries: Vec<IntervalRow>,
    meta: OutcomeMeta,
) -> RunOutcome {
    // Shards and processes count per source in the plan's pool order; a coordinator whose
    // agents bring their own sources hands its rows in `meta.per_source`.
    let per_source = meta.per_source.unwrap_or_else(|| {
        SourceOutcome::rows(plan.source_labels().into_iter().zip(&agg.totals.per_source))
    });
    let none = SourceCounts::default();
    let per_target = plan
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let c = agg.totals.per_target.get(i).unwrap_or(&none);
            TargetOutcome {
                url: t.url.clone(),
                established: c.established,
                failed: c.failed,
            }
        })
        .collect();
    let agg_peak_in_use = agg.peak_in_use;
    let mut timeseries = timeseries;
    if let Some(b) = &plan.traffic.message_burst {
        super::bursts::mark(&mut timeseries, b);
    }
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
        per_target,
        timeseries,
        thresholds: Vec::new(),
        aborted_by_threshold: meta.aborted_by_threshold,
        agents: meta.agents,
        protocol: plan.traffic.session.protocol.clone(),
        reply_rules: plan
            .traffic
            .session
            .replies
            .iter()
            .map(|r| r.label())
            .collect(),
        verdict: None,
        complete: true,
        gateway: None,
        holds: Vec::new(),
        preflight: Vec::new(),
        gateway_read_back: None,
        drift_read_back: Vec::new(),
        churn: super::churn::ChurnRecord::of(plan, agg_peak_in_use),
        disruption_threshold: plan.disruption_threshold,
    }
}
