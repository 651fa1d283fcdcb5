//! The JSON report, `schema_version` 1.
//!
//! The document is built from plain serde structs ([`JsonReport`] and friends) so that every
//! field name is checked by the compiler, then turned into a [`serde_json::Value`] by
//! [`to_json`]. The committed schema `schema/report-v1.json` describes exactly these fields
//! (with `additionalProperties: false`), and `tests/report.rs` validates a report against it:
//! adding, renaming or removing a field here fails that test until the schema, the field table
//! in the README (“JSON report fields”) and — for an incompatible change — [`SCHEMA_VERSION`] are
//! updated too. Reports are a contract.
//!
//! Units are in the field names: `_s` seconds, `_ms` milliseconds, `_bytes` bytes. Latencies
//! come from HdrHistograms in microseconds and are given in milliseconds rounded to three
//! decimals (so no precision is lost).
//!
//! Failure and drop maps always contain every fixed category (with 0 when it did not occur),
//! so consumers can read `connections.failures.refused` without checking for its presence.
//! The `http_status` failure category is refined into one `http_status_<code>` entry per code
//! seen; HTTP-status failures not attributed to a code (should not happen) appear as
//! `http_status_other`, so the categories always sum to `connections.failed`. Likewise the
//! `tls_alert` category is refined into one `tls_alert_<name>` entry per alert received
//! (`tls_alert_certificate_required`, `tls_alert_unknown_ca`, …; `tls_alert_other` if one
//! could not be attributed). Drops carry one `close_<code>` entry per close code seen.
//!
//! Values that can be missing are `null`, never a made-up zero: `messages.lost_rate` when
//! nothing was sent, `thresholds[].measured` when the metric had no data. A progressive run
//! wraps one report per step in [`steps_document`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::metrics::Percentiles;
use crate::metrics::drift::HoldDrift;
use crate::metrics::gateway::GatewaySummary;
use crate::metrics::outcome::{IntervalRow, PreflightNote, RunOutcome};
use crate::plan::redact::redact_url;

/// Version of the JSON layout. Bump it (and add `schema/report-v<N>.json`) on any change that
/// could break a consumer: a removed or renamed field, a changed type or unit.
pub const SCHEMA_VERSION: u32 = 1;

fn complete_default() -> bool {
    true
}

fn disruption_threshold_default() -> f64 {
    crate::metrics::disruption::DEFAULT_THRESHOLD
}

/// The whole report document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonReport {
    pub schema_version: u32,
    /// `wsscale` version that wrote the report.
    pub version: String,
    /// RFC 3339, UTC, millisecond precision.
    pub started_at: String,
    pub duration_s: f64,
    pub interrupted: bool,
    /// False for a checkpoint written while the run went on (`--checkpoint`); reports of
    /// older versions lack it and read as complete.
    #[serde(default = "complete_default")]
    pub complete: bool,
    /// True when `--abort-on-fail` stopped the run because a threshold could no longer be met.
    pub aborted_by_threshold: bool,
    pub embedded_gateway: bool,
    pub sources_exhausted: bool,
    /// True when `wss://` server certificates were NOT verified (`--tls-insecure`).
    pub tls_insecure: bool,
    pub threads: usize,
    /// The session protocol preset (`--protocol`), `null` for raw WebSocket.
    pub protocol: Option<String>,
    pub targets: Vec<String>,
    pub stages: Vec<JsonStage>,
    pub connections: JsonConnections,
    pub tls: JsonTls,
    pub timings: JsonTimings,
    pub messages: JsonMessages,
    /// Server pushes whose creation time was read (`--push-timestamp`). Added within schema
    /// version 1: absent from older reports, which read back as zeros.
    #[serde(default)]
    pub pushes: JsonPushes,
    /// Timed messages delivered to other connections (a chat room, `--publishers`).
    #[serde(default)]
    pub fanout: JsonFanout,
    pub heartbeats: JsonHeartbeats,
    /// permessage-deflate (`--compression`). Added within schema version 1.
    #[serde(default)]
    pub compression: super::compression::JsonCompression,
    pub traffic: JsonTraffic,
    pub memory: JsonMemory,
    /// The watched gateway's side (`--watch-pid`, `--watch-process`, `--gateway-metrics`,
    /// `--health-url`, or the embedded gateway's process); `null` when nothing was watched.
    #[serde(default)]
    pub gateway: Option<GatewaySummary>,
    /// Drift over every hold stage: first vs last quarter (empty without a hold stage).
    #[serde(default)]
    pub drift: Vec<HoldDrift>,
    /// Churn and the arrival model (`--session-duration`, rate stages); `null` without
    /// either. Added within schema version 1.
    #[serde(default)]
    pub churn: Option<crate::metrics::churn::ChurnSummary>,
    /// One row per live-output interval.
    pub timeseries: Vec<IntervalRow>,
    /// `--disruption-threshold` (added within schema version 1: older reports read 0.05).
    #[serde(default = "disruption_threshold_default")]
    pub disruption_threshold: f64,
    /// Drop waves and their recovery, found in `timeseries` (see `metrics::disruption`).
    #[serde(default)]
    pub disruptions: Vec<crate::metrics::disruption::Disruption>,
    /// One entry per `--message-burst` burst (see `metrics::bursts`).
    #[serde(default)]
    pub bursts: Vec<crate::metrics::bursts::BurstOutcome>,
    /// Threshold verdicts, in the order given (profile first, then `--threshold`).
    pub thresholds: Vec<JsonThreshold>,
    /// Every non-empty histogram, serialized (HdrHistogram V2 + DEFLATE, base64, µs), so
    /// reports can be merged exactly (`wsscale report merge`).
    pub histograms: BTreeMap<String, String>,
    /// One entry per agent of a distributed run; empty otherwise.
    pub agents: Vec<super::agents::JsonAgent>,
    /// The run's verdict and exit code (`null` for a report written before the run was
    /// judged).
    pub verdict: Option<JsonVerdict>,
    /// Preflight checks that warned before the run (added within schema version 1: absent
    /// from older reports, which read back empty).
    #[serde(default)]
    pub preflight: Vec<PreflightNote>,
    /// Misbehaving clients (`--misbehave`) and the gateway's answers, one entry per kind
    /// (added within schema version 1: absent from older reports, which read back empty).
    #[serde(default)]
    pub misbehave: Vec<super::misbehave::JsonMisbehave>,
}

/// The verdict: what the exit code says, in words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonVerdict {
    /// `passed`, `thresholds_failed`, `completed_with_failures` or `interrupted`.
    pub status: String,
    pub exit_code: i32,
    pub reasons: Vec<String>,
}

/// One planned stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonStage {
    pub duration_s: f64,
    pub target: u64,
}

/// Connection counts, failures, drops and per-source accounting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonConnections {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub dropped: u64,
    pub closed: u64,
    /// Of `closed`: close handshakes the server never answered (0 in older reports).
    #[serde(default)]
    pub close_timeouts: u64,
    pub reconnects: u64,
    pub peak_open: u64,
    /// The highest stage target: the peak the plan asked for.
    pub planned_peak: u64,
    /// Why `peak_open` stayed below `planned_peak` (`null` when it did not).
    pub shortfall: Option<String>,
    /// Seconds from the start of the first stage until `peak_open` was first reached.
    pub peak_reached_after_s: f64,
    /// `peak_open ÷ peak_reached_after_s`: the achieved ramp rate (connections per second);
    /// `None` (null) when no connection was open.
    pub peak_ramp_rate_per_s: Option<f64>,
    pub open_at_end: u64,
    /// established ÷ attempted, 0.0..=1.0 (1.0 when nothing was attempted).
    pub success_rate: f64,
    pub failures: BTreeMap<String, u64>,
    /// The first detail seen per failure category (`tls_cert` → the certificate error).
    pub failure_examples: BTreeMap<String, String>,
    /// Attempts the client cancelled before they were established.
    pub aborted: u64,
    /// Retries of (source, destination) pairs that had run out of local ports (0 in reports
    /// written before the engine retried).
    #[serde(default)]
    pub source_port_retries: u64,
    pub drops: BTreeMap<String, u64>,
    /// Session duration in **seconds**: established → closed or dropped, per connection
    /// (connections still open at the end are closed then, and count). Absent from older
    /// reports, which read back as zeros.
    #[serde(default)]
    pub session_duration_s: Percentiles,
    pub per_source: Vec<JsonSource>,
    pub per_target: Vec<JsonTarget>,
}

/// One target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonTarget {
    /// The URL, password redacted.
    pub url: String,
    pub established: u64,
    pub failed: u64,
}

/// One source address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonSource {
    pub address: String,
    pub established: u64,
    pub failed: u64,
    pub addr_not_available: u64,
}

/// TLS handshakes of `wss://` connections (all 0 for `ws://` runs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonTls {
    /// TLS handshakes completed.
    pub handshakes: u64,
    /// Of those, handshakes that resumed an earlier session (`--tls-resume`).
    pub resumed: u64,
}

/// Latencies: connection set-up, and traffic on held connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonTimings {
    pub tcp_connect_ms: Percentiles,
    /// TCP connected to TLS handshake complete (`wss://` only).
    pub tls_handshake_ms: Percentiles,
    pub ws_handshake_ms: Percentiles,
    /// Echo receive time − intended send time of timed messages.
    pub message_rtt_ms: Percentiles,
    /// Pong receive time − intended ping time.
    pub ping_rtt_ms: Percentiles,
    /// Expected heartbeat reply time − intended heartbeat time.
    pub heartbeat_rtt_ms: Percentiles,
    /// Actual − intended send time of every scheduled send (message, ping, heartbeat).
    pub schedule_lag_ms: Percentiles,
    /// Receive wall clock − intended send time (wall clock, from the marker) of timed
    /// messages another connection published; across hosts it needs synchronized clocks.
    #[serde(default)]
    pub fanout_latency_ms: Percentiles,
    /// Receive wall clock − the creation time a server push carries (`--push-timestamp`);
    /// across hosts it needs synchronized clocks.
    #[serde(default)]
    pub push_latency_ms: Percentiles,
}

/// Server pushes (`--push-timestamp`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JsonPushes {
    /// Frames whose creation time was read (each one a `push_latency_ms` sample); they are
    /// not in `messages.other_received`.
    pub received: u64,
}

/// Fan-out of timed messages: how many deliveries came back, and how many a room should
/// have made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JsonFanout {
    /// Deliveries of timed messages seen: `fanout_latency_ms` samples (another
    /// connection's message) + `messages.received` (a publisher's own echo).
    pub delivered: u64,
    /// `messages.sent × connections.peak_open` — every message reaching every connection,
    /// the sender included (`wsscale serve --broadcast`) — when the run saw fan-out (a
    /// `fanout_latency_ms` sample); `None` (null) otherwise.
    pub expected: Option<u64>,
}

/// Timed messages (`--message-rate`) and other data frames received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonMessages {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// lost ÷ sent; `None` (null) when nothing was sent.
    pub lost_rate: Option<f64>,
    /// Payload bytes of timed messages sent.
    pub bytes_sent: u64,
    /// Payload bytes of data frames received.
    pub bytes_received: u64,
    /// Data frames received that were not echoes of timed messages.
    pub other_received: u64,
}

/// WebSocket pings and application heartbeats sent by the client, and their answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonHeartbeats {
    pub pings_sent: u64,
    pub pongs_received: u64,
    pub heartbeats_sent: u64,
    pub heartbeat_replies: u64,
}

/// One threshold and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonThreshold {
    pub expr: String,
    pub metric: String,
    /// `None` (null) when the metric had no data (the threshold then failed).
    pub measured: Option<f64>,
    pub passed: bool,
}

/// Byte and frame counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonTraffic {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_received: u64,
    pub pings_answered: u64,
    /// Server keep-alives (Engine.IO `2`, NATS `PING`, …) answered by an auto-reply.
    pub server_pings_answered: u64,
    /// Auto-reply rules and how many replies each sent.
    pub replies: Vec<JsonReply>,
}

/// One auto-reply rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonReply {
    pub rule: String,
    pub sent: u64,
}

/// Process memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonMemory {
    pub rss_before_bytes: u64,
    pub rss_peak_bytes: u64,
    pub rss_at_peak_open_bytes: u64,
    /// `null` when no connection was ever open.
    pub bytes_per_connection: Option<f64>,
    /// True when the gateway ran in this process, so the RSS figures include it (never for
    /// `wsscale run` without `--target`: its embedded gateway is a child process now).
    pub includes_gateway: bool,
}

impl JsonReport {
    /// Build the report document from a run's outcome.
    pub fn from_outcome(o: &RunOutcome) -> JsonReport {
        let c = &o.totals.counters;
        JsonReport {
            schema_version: SCHEMA_VERSION,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: rfc3339_utc(o.started_at),
            duration_s: o.duration.as_secs_f64(),
            interrupted: o.interrupted,
            complete: o.complete,
            aborted_by_threshold: o.aborted_by_threshold,
            embedded_gateway: o.embedded_gateway,
            sources_exhausted: o.sources_exhausted,
            tls_insecure: o.tls_insecure,
            threads: o.threads,
            protocol: o.protocol.clone(),
            targets: o.targets.iter().map(|t| redact_url(t)).collect(),
            stages: o
                .stages
                .iter()
                .map(|s| JsonStage {
                    duration_s: s.duration.as_secs_f64(),
                    target: s.target,
                })
                .collect(),
            connections: JsonConnections {
                attempted: c.attempted,
                established: c.established,
                failed: c.failed,
                dropped: c.dropped,
                closed: c.closed,
                close_timeouts: c.close_timeouts,
                reconnects: c.reconnects,
                peak_open: o.peak_open,
                planned_peak: crate::metrics::verdict::planned_peak(o),
                shortfall: crate::metrics::verdict::shortfall(o),
                peak_reached_after_s: o.peak_reached_after.as_secs_f64(),
                peak_ramp_rate_per_s: peak_ramp_rate(o),
                open_at_end: o.totals.gauges.open,
                success_rate: o.success_rate(),
                failures: failure_counts(o).into_iter().collect(),
                failure_examples: c.examples.clone(),
                aborted: c.aborted,
                source_port_retries: c.source_port_retries,
                drops: drop_counts(o).into_iter().collect(),
                // Recorded in ms, so `from_hist`'s µs → ms arithmetic yields seconds.
                session_duration_s: Percentiles::from_hist(&o.totals.hist.session_duration),
                per_target: o
                    .per_target
                    .iter()
                    .map(|t| JsonTarget {
                        url: redact_url(&t.url),
                        established: t.established,
                        failed: t.failed,
                    })
                    .collect(),
                per_source: o
                    .per_source
                    .iter()
                    .map(|s| JsonSource {
                        address: s.address.clone(),
                        established: s.established,
                        failed: s.failed,
                        addr_not_available: s.addr_not_available,
                    })
                    .collect(),
            },
            tls: JsonTls {
                handshakes: c.tls_handshakes,
                resumed: c.tls_resumed,
            },
            timings: JsonTimings {
                tcp_connect_ms: Percentiles::from_hist(&o.totals.hist.tcp_connect),
                tls_handshake_ms: Percentiles::from_hist(&o.totals.hist.tls_handshake),
                ws_handshake_ms: Percentiles::from_hist(&o.totals.hist.ws_handshake),
                message_rtt_ms: Percentiles::from_hist(&o.totals.hist.message_rtt),
                ping_rtt_ms: Percentiles::from_hist(&o.totals.hist.ping_rtt),
                heartbeat_rtt_ms: Percentiles::from_hist(&o.totals.hist.heartbeat_rtt),
                schedule_lag_ms: Percentiles::from_hist(&o.totals.hist.schedule_lag),
                fanout_latency_ms: Percentiles::from_hist(&o.totals.hist.fanout_latency),
                push_latency_ms: Percentiles::from_hist(&o.totals.hist.push_latency),
            },
            messages: JsonMessages {
                sent: c.messages_sent,
                received: c.messages_received,
                lost: c.messages_lost,
                lost_rate: lost_rate(o),
                bytes_sent: c.message_bytes_sent,
                bytes_received: c.message_bytes_received,
                other_received: c.other_messages_received,
            },
            pushes: JsonPushes {
                received: c.pushes_received,
            },
            fanout: JsonFanout {
                delivered: fanout_delivered(o),
                expected: fanout_expected(o),
            },
            heartbeats: JsonHeartbeats {
                pings_sent: c.pings_sent,
                pongs_received: c.pongs_received,
                heartbeats_sent: c.heartbeats_sent,
                heartbeat_replies: c.heartbeat_replies,
            },
            compression: super::compression::JsonCompression::from_counters(&c.compression),
            traffic: JsonTraffic {
                bytes_sent: c.bytes_sent,
                bytes_received: c.bytes_received,
                frames_received: c.frames_received,
                pings_answered: c.pings_answered,
                server_pings_answered: c.server_pings_answered,
                replies: o
                    .reply_rules
                    .iter()
                    .enumerate()
                    .map(|(i, rule)| JsonReply {
                        rule: rule.clone(),
                        sent: c.replies.get(i).copied().unwrap_or(0),
                    })
                    .collect(),
            },
            memory: JsonMemory {
                rss_before_bytes: o.rss_before_bytes,
                rss_peak_bytes: o.rss_peak_bytes,
                rss_at_peak_open_bytes: o.rss_at_peak_open_bytes,
                bytes_per_connection: o.bytes_per_connection(),
                includes_gateway: o.embedded_gateway,
            },
            gateway: crate::metrics::gateway::summary(o),
            drift: crate::metrics::gateway::drift(o),
            churn: crate::metrics::churn::summary(o),
            timeseries: o
                .timeseries
                .iter()
                .map(|r| IntervalRow {
                    t_s: finite(r.t_s),
                    open: r.open,
                    connect_rate: finite(r.connect_rate),
                    failures: r.failures,
                    dropped: r.dropped,
                    msgs_sent_per_s: finite(r.msgs_sent_per_s),
                    msgs_received_per_s: finite(r.msgs_received_per_s),
                    message_p50_ms: finite(r.message_p50_ms),
                    message_p99_ms: finite(r.message_p99_ms),
                    pushes_per_s: finite(r.pushes_per_s),
                    push_p50_ms: finite(r.push_p50_ms),
                    push_p99_ms: finite(r.push_p99_ms),
                    fanout_p50_ms: finite(r.fanout_p50_ms),
                    fanout_p99_ms: finite(r.fanout_p99_ms),
                    latency_ms: r.latency_ms.clone(),
                    failures_by_category: r.failures_by_category.clone(),
                    drops_by_reason: r.drops_by_reason.clone(),
                    gateway_cpu_percent: r.gateway_cpu_percent.filter(|v| v.is_finite()),
                    gateway_bytes_per_connection: r
                        .gateway_bytes_per_connection
                        .filter(|v| v.is_finite()),
                    health_latency_ms: r.health_latency_ms.filter(|v| v.is_finite()),
                    ..r.clone()
                })
                .collect(),
            disruption_threshold: o.disruption_threshold,
            disruptions: o.disruptions(),
            bursts: o.bursts(),
            thresholds: o
                .thresholds
                .iter()
                .map(|t| JsonThreshold {
                    expr: t.expr.clone(),
                    metric: t.metric.clone(),
                    measured: t.measured.filter(|v| v.is_finite()),
                    passed: t.passed,
                })
                .collect(),
            histograms: super::agents::json_histograms(o),
            agents: super::agents::json_agents(o),
            verdict: o.verdict.as_ref().map(|v| JsonVerdict {
                status: v.status.label().to_string(),
                exit_code: v.exit_code(),
                reasons: v.reasons.clone(),
            }),
            preflight: o.preflight.clone(),
            misbehave: super::misbehave::json(o),
        }
    }
}

/// The JSON report (schema version 1) of a run.
pub fn to_json(o: &RunOutcome) -> serde_json::Value {
    serde_json::to_value(JsonReport::from_outcome(o)).expect("report structs serialize")
}

/// The JSON document of a progressive run: `{ "schema_version": 1, "steps": [...] }`, each
/// element a complete run report ([`to_json`]) in the order the steps ran.
pub fn steps_document(reports: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({ "schema_version": SCHEMA_VERSION, "steps": reports })
}

/// `messages_lost ÷ messages_sent`; `None` when nothing was sent.
pub(crate) fn lost_rate(o: &RunOutcome) -> Option<f64> {
    let c = &o.totals.counters;
    (c.messages_sent > 0).then(|| c.messages_lost as f64 / c.messages_sent as f64)
}

/// Deliveries of timed messages: fan-out samples + the publishers' own echoes.
pub(crate) fn fanout_delivered(o: &RunOutcome) -> u64 {
    let c = &o.totals.counters;
    c.fanout_received + c.messages_received
}

/// `messages_sent × peak_open` when the run saw fan-out (one room: every message to every
/// connection, the sender included); `None` otherwise.
pub(crate) fn fanout_expected(o: &RunOutcome) -> Option<u64> {
    let c = &o.totals.counters;
    (c.fanout_received > 0).then(|| c.messages_sent.saturating_mul(o.peak_open))
}

/// JSON has no NaN or infinity: such a value (never expected) becomes 0.
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// Connections per second achieved up to the peak: `peak_open ÷ peak_reached_after`.
pub(crate) fn peak_ramp_rate(o: &RunOutcome) -> Option<f64> {
    let secs = o.peak_reached_after.as_secs_f64();
    (o.peak_open > 0 && secs > 0.0).then(|| o.peak_open as f64 / secs)
}

/// The run's failure categories with their counts ([`crate::metrics::labels::failure_counts`]).
pub(crate) fn failure_counts(o: &RunOutcome) -> Vec<(String, u64)> {
    crate::metrics::labels::failure_counts(&o.totals.counters)
}

/// The run's drop reasons with their counts ([`crate::metrics::labels::drop_counts`]).
pub(crate) fn drop_counts(o: &RunOutcome) -> Vec<(String, u64)> {
    crate::metrics::labels::drop_counts(&o.totals.counters)
}

/// `started_at` as RFC 3339 in UTC with millisecond precision (`2025-01-31T12:00:00.123Z`).
pub(crate) fn rfc3339_utc(t: std::time::SystemTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(t)
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_millis() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_utc(t), "2023-11-14T22:13:20.123Z");
    }
}
