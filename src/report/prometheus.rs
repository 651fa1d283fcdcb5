//! Live Prometheus / OpenMetrics metrics (`--metrics-listen`): [`LiveMetrics`] is an
//! [`IntervalSink`] that the engine (or the coordinator) feeds with the per-interval view it
//! already builds for the live line, and that renders the OpenMetrics text exposition with
//! `prometheus-client` on each scrape.
//!
//! Nothing here runs on a shard thread or per message: counters are *set* from the run's
//! totals once per interval, gauges from the interval's gauges, and each latency histogram
//! adds the interval's HdrHistogram into fixed Prometheus buckets (ms-suited bounds, in
//! seconds as Prometheus wants). Serving the text over HTTP is the job of the layer that owns
//! the run (`gateway::metrics_http`).
//!
//! Metric names (all prefixed `wsscale_`) are listed in [`METRIC_NAMES`] and documented in
//! `docs/reports.md`; the Grafana dashboard in `deploy/grafana/` uses only those names (a test
//! checks it).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::metrics::timeseries::{IntervalSink, IntervalView};
use crate::metrics::{Counters, Gauges, Histograms};

use super::agents::nonzero_failures;

/// The `Content-Type` of [`LiveMetrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram buckets: 0.5 ms to 30 s, roughly 1-2.5-5
/// per decade, so a p99 of a few milliseconds and a stalled gateway's seconds both resolve.
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    f64::INFINITY,
];

/// Every metric family name the endpoint exports (histograms add `_bucket`, `_sum` and
/// `_count` series; counters end in `_total`).
pub const METRIC_NAMES: &[&str] = &[
    "wsscale_open_connections",
    "wsscale_target_connections",
    "wsscale_pending_connections",
    "wsscale_planned_peak_connections",
    "wsscale_elapsed_seconds",
    "wsscale_connections_attempted_total",
    "wsscale_connections_established_total",
    "wsscale_connections_failed_total",
    "wsscale_connections_dropped_total",
    "wsscale_connections_closed_total",
    "wsscale_messages_sent_total",
    "wsscale_messages_received_total",
    "wsscale_messages_lost_total",
    "wsscale_churn_closes_total",
    "wsscale_arrivals_skipped_total",
    "wsscale_latency_seconds",
    "wsscale_session_duration_seconds",
    "wsscale_agent_open_connections",
    "wsscale_agent_connections_established_total",
    "wsscale_agent_connections_failed_total",
    "wsscale_agent_connections_dropped_total",
    "wsscale_agent_rss_bytes",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabel {
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabel {
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    agent: String,
    agent_name: String,
}

/// Upper bounds (seconds) of the session-duration buckets: 1 s to 4 h.
pub const SESSION_BUCKETS_S: [f64; 12] = [
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    f64::INFINITY,
];

/// A Prometheus histogram fed from HdrHistograms a whole interval at a time.
#[derive(Clone, Debug)]
pub struct BucketHistogram {
    /// Upper bounds in seconds, the last one `+Inf`.
    bounds: &'static [f64],
    /// What one unit of the HdrHistogram is, in seconds (1e-6 for µs, 1e-3 for ms).
    unit_s: f64,
    state: Arc<Mutex<BucketState>>,
}

#[derive(Debug, Default)]
struct BucketState {
    sum_s: f64,
    count: u64,
    /// Per-bucket (not cumulative) counts, indexed like the bounds.
    buckets: Vec<u64>,
}

/// The latency form: [`LATENCY_BUCKETS_S`], histograms in µs.
impl Default for BucketHistogram {
    fn default() -> Self {
        BucketHistogram::new(&LATENCY_BUCKETS_S, 1e-6)
    }
}

impl BucketHistogram {
    /// Buckets `bounds` (seconds, ending with `+Inf`) for HdrHistograms whose unit is
    /// `unit_s` seconds.
    pub fn new(bounds: &'static [f64], unit_s: f64) -> Self {
        BucketHistogram {
            bounds,
            unit_s,
            state: Arc::new(Mutex::new(BucketState {
                buckets: vec![0; bounds.len()],
                ..BucketState::default()
            })),
        }
    }

    /// Add every sample of `h`.
    pub fn add_hdr(&self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        let mut st = self.state.lock().expect("bucket lock");
        for v in h.iter_recorded() {
            let n = v.count_at_value();
            let s = h.highest_equivalent(v.value_iterated_to()) as f64 * self.unit_s;
            let i = self
                .bounds
                .iter()
                .position(|b| s <= *b)
                .unwrap_or(self.bounds.len() - 1);
            st.buckets[i] += n;
            st.count += n;
            st.sum_s += s * n as f64;
        }
    }

    /// Samples added so far.
    pub fn count(&self) -> u64 {
        self.state.lock().expect("bucket lock").count
    }
}

impl TypedMetric for BucketHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for BucketHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let st = self.state.lock().expect("bucket lock");
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .zip(st.buckets.iter().copied())
            .collect();
        encoder.encode_histogram::<NoLabelSet>(st.sum_s, st.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The live metrics of one run (or one coordinator), rendered on each scrape.
pub struct LiveMetrics {
    registry: Registry,
    open: Gauge,
    target: Gauge,
    pending: Gauge,
    peak_plan: Gauge,
    elapsed: Gauge<f64, AtomicU64>,
    attempted: Counter,
    established: Counter,
    failed: Family<CategoryLabel, Counter>,
    dropped: Family<ReasonLabel, Counter>,
    closed: Counter,
    messages_sent: Counter,
    messages_received: Counter,
    messages_lost: Counter,
    churn_closes: Counter,
    arrivals_skipped: Counter,
    latency: Family<MetricLabel, BucketHistogram>,
    session: BucketHistogram,
    agent_open: Family<AgentLabel, Gauge>,
    agent_established: Family<AgentLabel, Counter>,
    agent_failed: Family<AgentLabel, Counter>,
    agent_dropped: Family<AgentLabel, Counter>,
    agent_rss: Family<AgentLabel, Gauge>,
}

impl std::fmt::Debug for LiveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveMetrics").finish_non_exhaustive()
    }
}

fn set_counter(c: &Counter, v: u64) {
    c.inner().store(v, Relaxed);
}

fn gauge_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl LiveMetrics {
    /// Metrics whose every series carries `role="ROLE"`: `run` (a `wsscale run`, also with
    /// `--processes`), `coordinator` (the merged view of a distributed run) or `agent` (one
    /// agent's share), so a dashboard can pick the merged view when it scrapes both.
    pub fn new(role: &'static str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "wsscale",
            [(Cow::Borrowed("role"), Cow::Borrowed(role))].into_iter(),
        );
        let m = LiveMetrics {
            open: Gauge::default(),
            target: Gauge::default(),
            pending: Gauge::default(),
            peak_plan: Gauge::default(),
            elapsed: Gauge::default(),
            attempted: Counter::default(),
            established: Counter::default(),
            failed: Family::default(),
            dropped: Family::default(),
            closed: Counter::default(),
            messages_sent: Counter::default(),
            messages_received: Counter::default(),
            messages_lost: Counter::default(),
            churn_closes: Counter::default(),
            arrivals_skipped: Counter::default(),
            latency: Family::default(),
            session: BucketHistogram::new(&SESSION_BUCKETS_S, 1e-3),
            agent_open: Family::default(),
            agent_established: Family::default(),
            agent_failed: Family::default(),
            agent_dropped: Family::default(),
            agent_rss: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "open_connections",
            "WebSocket connections established and not yet closed",
            m.open.clone(),
        );
        r.register(
            "target_connections",
            "The plan's target connection count at this point of the stage clock",
            m.target.clone(),
        );
        r.register(
            "pending_connections",
            "Connections connecting or handshaking",
            m.pending.clone(),
        );
        r.register(
            "planned_peak_connections",
            "The plan's peak connection count",
            m.peak_plan.clone(),
        );
        r.register(
            "elapsed_seconds",
            "Time since the start of the first stage",
            m.elapsed.clone(),
        );
        r.register(
            "connections_attempted",
            "Connection attempts started",
            m.attempted.clone(),
        );
        r.register(
            "connections_established",
            "WebSocket upgrades completed",
            m.established.clone(),
        );
        r.register(
            "connections_failed",
            "Attempts that never reached established, by failure category",
            m.failed.clone(),
        );
        r.register(
            "connections_dropped",
            "Established connections that ended without the client closing them, by reason",
            m.dropped.clone(),
        );
        r.register(
            "connections_closed",
            "Connections the client closed on purpose",
            m.closed.clone(),
        );
        r.register(
            "messages_sent",
            "Timed messages sent",
            m.messages_sent.clone(),
        );
        r.register(
            "messages_received",
            "Echoes of timed messages received",
            m.messages_received.clone(),
        );
        r.register(
            "messages_lost",
            "Timed messages whose echo did not arrive in time",
            m.messages_lost.clone(),
        );
        r.register(
            "churn_closes",
            "Connections closed because their session (--session-duration) ended; never drops or failures",
            m.churn_closes.clone(),
        );
        r.register(
            "arrivals_skipped",
            "Arrivals (--arrival-rate) not opened because --max-open connections were open or opening",
            m.arrivals_skipped.clone(),
        );
        r.register(
            "latency_seconds",
            "Latency histograms by metric (tcp_connect, ws_handshake, message_rtt, ...), as in the report's timings",
            m.latency.clone(),
        );
        r.register(
            "session_duration_seconds",
            "Session duration: established to closed or dropped, per connection",
            m.session.clone(),
        );
        r.register(
            "agent_open_connections",
            "Open connections per agent (coordinator only)",
            m.agent_open.clone(),
        );
        r.register(
            "agent_connections_established",
            "Upgrades completed per agent (coordinator only)",
            m.agent_established.clone(),
        );
        r.register(
            "agent_connections_failed",
            "Failed attempts per agent (coordinator only)",
            m.agent_failed.clone(),
        );
        r.register(
            "agent_connections_dropped",
            "Dropped connections per agent (coordinator only)",
            m.agent_dropped.clone(),
        );
        r.register(
            "agent_rss_bytes",
            "Resident set size each agent last reported, in bytes (coordinator only)",
            m.agent_rss.clone(),
        );
        LiveMetrics { registry, ..m }
    }

    /// Update from one interval: gauges from the view, counters from the run's totals,
    /// histograms by adding the interval's samples.
    pub fn record(&self, v: &IntervalView<'_>) {
        self.record_parts(
            &v.gauges,
            v.target,
            v.peak_plan,
            v.elapsed.as_secs_f64(),
            v.totals,
            &v.interval.hist,
        );
    }

    /// [`Self::record`] from its parts.
    pub fn record_parts(
        &self,
        gauges: &Gauges,
        target: u64,
        peak_plan: u64,
        elapsed_s: f64,
        totals: &Counters,
        interval_hist: &Histograms,
    ) {
        self.open.set(gauge_i64(gauges.open));
        self.pending.set(gauge_i64(gauges.pending));
        self.target.set(gauge_i64(target));
        self.peak_plan.set(gauge_i64(peak_plan));
        self.elapsed.set(elapsed_s);
        set_counter(&self.attempted, totals.attempted);
        set_counter(&self.established, totals.established);
        set_counter(&self.closed, totals.closed);
        set_counter(&self.messages_sent, totals.messages_sent);
        set_counter(&self.messages_received, totals.messages_received);
        set_counter(&self.messages_lost, totals.messages_lost);
        set_counter(&self.churn_closes, totals.churn_closes);
        set_counter(&self.arrivals_skipped, totals.arrivals_skipped);
        for (category, n) in nonzero_failures(totals) {
            set_counter(&self.failed.get_or_create(&CategoryLabel { category }), n);
        }
        for (reason, n) in &totals.drops {
            let l = ReasonLabel {
                reason: reason.label(),
            };
            set_counter(&self.dropped.get_or_create(&l), *n);
        }
        for (name, h) in interval_hist.named() {
            // A histogram appears once it has samples (no tls_handshake series on ws://).
            if !h.is_empty() {
                let l = MetricLabel {
                    metric: name.to_string(),
                };
                self.latency.get_or_create(&l).add_hdr(h);
            }
        }
        self.session.add_hdr(&interval_hist.session_duration);
    }

    /// Update one agent's series (the coordinator calls this for each agent every interval).
    pub fn record_agent(&self, id: usize, name: &str, gauges: &Gauges, totals: &Counters) {
        let l = AgentLabel {
            agent: id.to_string(),
            agent_name: name.to_string(),
        };
        self.agent_open
            .get_or_create(&l)
            .set(gauge_i64(gauges.open));
        self.agent_rss
            .get_or_create(&l)
            .set(gauge_i64(gauges.rss_bytes));
        set_counter(
            &self.agent_established.get_or_create(&l),
            totals.established,
        );
        set_counter(&self.agent_failed.get_or_create(&l), totals.failed);
        set_counter(&self.agent_dropped.get_or_create(&l), totals.dropped);
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing into a String cannot fail");
        out
    }
}

impl IntervalSink for LiveMetrics {
    fn interval(&self, v: &IntervalView<'_>) {
        self.record(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{DropReason, FailureKind, record_us};

    #[test]
    fn renders_counters_gauges_and_buckets() {
        let m = LiveMetrics::new("run");
        let mut totals = Counters {
            attempted: 12,
            established: 10,
            messages_sent: 7,
            ..Counters::default()
        };
        totals.fail(FailureKind::Refused);
        totals.drop_with(DropReason::CloseCode(1001));
        let mut hist = Histograms::default();
        record_us(&mut hist.ws_handshake, 700); // 0.7 ms → le=0.001
        record_us(&mut hist.ws_handshake, 20_000); // 20 ms → le=0.025
        let gauges = Gauges {
            open: 9,
            pending: 1,
            ..Gauges::default()
        };
        m.record_parts(&gauges, 10, 20, 1.5, &totals, &hist);
        m.record_parts(&gauges, 10, 20, 2.0, &totals, &hist);
        let text = m.render();
        for line in [
            "wsscale_open_connections{role=\"run\"} 9",
            "wsscale_target_connections{role=\"run\"} 10",
            "wsscale_connections_attempted_total{role=\"run\"} 12",
            "wsscale_connections_failed_total{role=\"run\",category=\"refused\"} 1",
            "wsscale_connections_dropped_total{role=\"run\",reason=\"close_1001\"} 1",
            "wsscale_messages_sent_total{role=\"run\"} 7",
            "wsscale_latency_seconds_count{role=\"run\",metric=\"ws_handshake\"} 4",
            "wsscale_latency_seconds_bucket{role=\"run\",le=\"0.0005\",metric=\"ws_handshake\"} 0",
            "wsscale_latency_seconds_bucket{role=\"run\",le=\"0.001\",metric=\"ws_handshake\"} 2",
            "wsscale_latency_seconds_bucket{role=\"run\",le=\"0.01\",metric=\"ws_handshake\"} 2",
            "wsscale_latency_seconds_bucket{role=\"run\",le=\"0.025\",metric=\"ws_handshake\"} 4",
            "wsscale_latency_seconds_bucket{role=\"run\",le=\"+Inf\",metric=\"ws_handshake\"} 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
        assert!(!text.contains("metric=\"message_rtt\""), "{text}");
    }
}
