//! `wsscale report merge a.json b.json … -o total.json`: several JSON reports (shards run
//! with `--shard I/N --start-at T`, or any runs) → one report, exactly.
//!
//! Each report is read back with the same Rust types that wrote it ([`JsonReport`], derived
//! `Deserialize`: a renamed field fails to compile or to parse, never silently) into a
//! [`Snapshot`] — counters from their fields, histograms from the serialized `histograms` — and the snapshots are added with the same
//! [`Snapshot::merge`] that merges engine shards and agents. So merged counts are the sums,
//! and merged percentiles are the percentiles of all samples (not an average of
//! percentiles). A report without `histograms` (written before it existed) is refused: its
//! percentiles cannot be merged exactly.
//!
//! Figures that are not sums:
//!
//! - `started_at` is the earliest start, `duration_s` reaches to the latest end.
//! - `peak_open` is the **sum** of the reports' peaks, and `peak_reached_after_s` the latest
//!   time (from the earliest start) at which one of them reached its peak — right for shards
//!   that ran together from one `--start-at`. Memory figures are sums too, so
//!   `bytes_per_connection` is total memory growth ÷ total peak connections.
//! - `timeseries` rows are aligned by index (shards with one `--start-at` and one interval
//!   tick together): counts and rates add (also per failure category and drop reason); the
//!   per-interval percentiles (`message_p50_ms`, …, `latency_ms`) are the *highest* of the
//!   inputs' (an upper bound: intervals keep no histograms).
//! - `fanout.expected` is recomputed from the merged figures (`messages.sent × peak_open`):
//!   right for shards that loaded one room together.
//! - `stages`: shards run their share of every stage (`--shard` turns the plan into the
//!   shard's own plan), so with one stage layout the merged targets are the sums — the
//!   global plan. Reports with different layouts keep the first one's stages.
//! - Thresholds are re-evaluated on the merged figures from their expressions.
//! - Every input becomes an entry of `agents[]` (named after its file), or contributes its
//!   own `agents[]` when it already has some (a merged or coordinated report).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::agents::JsonAgent;
use super::json::JsonReport;
use crate::metrics::outcome::{
    AgentOutcome, IntervalRow, PreflightNote, RunOutcome, SourceOutcome, TargetOutcome,
};
use crate::metrics::wire::{decode_histograms, parse_drop_label, parse_failure_label};
use crate::metrics::{Counters, FailureKind, Snapshot, SourceCounts, tls_alert_name};
use crate::plan::Stage;

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give at least one report")]
    Empty,
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
}

/// One input: a name (the file's) and its parsed JSON.
pub struct Input {
    pub name: String,
    pub doc: Value,
}

impl Input {
    /// Read and parse a report file.
    pub fn read(path: &Path) -> Result<Input, MergeError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MergeError::Invalid {
            file: file.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        let doc = serde_json::from_str(&text).map_err(|e| MergeError::Invalid {
            file: file.clone(),
            reason: format!("not JSON: {e}"),
        })?;
        Ok(Input { name: file, doc })
    }
}

/// What one report holds, read back.
struct Parsed {
    name: String,
    started_at: SystemTime,
    duration: Duration,
    totals: Snapshot,
    interrupted: bool,
    complete: bool,
    aborted_by_threshold: bool,
    embedded_gateway: bool,
    sources_exhausted: bool,
    tls_insecure: bool,
    threads: usize,
    targets: Vec<String>,
    stages: Vec<Stage>,
    peak_open: u64,
    peak_reached_after: Duration,
    rss_before: u64,
    rss_peak: u64,
    rss_at_peak_open: u64,
    per_source: Vec<SourceOutcome>,
    per_target: Vec<TargetOutcome>,
    protocol: Option<String>,
    reply_rules: Vec<String>,
    timeseries: Vec<IntervalRow>,
    thresholds: Vec<String>,
    agents: Vec<AgentOutcome>,
    preflight: Vec<PreflightNote>,
    gateway: Option<crate::metrics::gateway::GatewaySummary>,
    drift: Vec<crate::metrics::drift::HoldDrift>,
    churn: Option<crate::metrics::churn::ChurnSummary>,
    disruption_threshold: f64,
}

/// Merge reports into one outcome (write it with [`super::write_json`]).
pub fn merge(inputs: &[Input]) -> Result<RunOutcome, MergeError> {
    if inputs.is_empty() {
        return Err(MergeError::Empty);
    }
    let parsed = inputs
        .iter()
        .map(|i| {
            parse(i).map_err(|reason| MergeError::Invalid {
                file: i.name.clone(),
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let start = parsed
        .iter()
        .map(|p| p.started_at)
        .min()
        .expect("at least one");
    let offset = |p: &Parsed| p.started_at.duration_since(start).unwrap_or_default();
    let end = parsed
        .iter()
        .map(|p| offset(p) + p.duration)
        .max()
        .unwrap_or_default();

    let mut totals = Snapshot::default();
    for p in &parsed {
        totals.merge(&p.totals);
    }
    let stages = merge_stages(&parsed);

    let mut targets: Vec<String> = Vec::new();
    for t in parsed.iter().flat_map(|p| &p.targets) {
        if !targets.contains(t) {
            targets.push(t.clone());
        }
    }
    let mut o = RunOutcome {
        started_at: start,
        duration: end,
        stages,
        targets,
        embedded_gateway: parsed.iter().any(|p| p.embedded_gateway),
        interrupted: parsed.iter().any(|p| p.interrupted),
        complete: parsed.iter().all(|p| p.complete),
        sources_exhausted: parsed.iter().any(|p| p.sources_exhausted),
        tls_insecure: parsed.iter().any(|p| p.tls_insecure),
        threads: parsed.iter().map(|p| p.threads).sum(),
        totals,
        peak_open: parsed.iter().map(|p| p.peak_open).sum(),
        peak_reached_after: parsed
            .iter()
            .map(|p| offset(p) + p.peak_reached_after)
            .max()
            .unwrap_or_default(),
        rss_before_bytes: parsed.iter().map(|p| p.rss_before).sum(),
        rss_peak_bytes: parsed.iter().map(|p| p.rss_peak).sum(),
        rss_at_peak_open_bytes: parsed.iter().map(|p| p.rss_at_peak_open).sum(),
        per_source: merge_sources(&parsed),
        per_target: merge_targets(&parsed),
        timeseries: merge_rows(&parsed),
        thresholds: Vec::new(),
        aborted_by_threshold: parsed.iter().any(|p| p.aborted_by_threshold),
        agents: Vec::new(),
        protocol: parsed.iter().find_map(|p| p.protocol.clone()),
        reply_rules: parsed
            .first()
            .map(|p| p.reply_rules.clone())
            .unwrap_or_default(),
        verdict: None,
        // The gateway and drift figures as the first input that has them reported them
        // (shards of one run watch the same gateway; the samples themselves are not in a
        // report, so they cannot be merged).
        gateway: None,
        holds: Vec::new(),
        preflight: Vec::new(),
        gateway_read_back: parsed.iter().find_map(|p| p.gateway.clone()),
        drift_read_back: parsed
            .iter()
            .find(|p| !p.drift.is_empty())
            .map(|p| p.drift.clone())
            .unwrap_or_default(),
        churn: crate::metrics::churn::read_back(parsed.iter().filter_map(|p| p.churn.as_ref())),
        disruption_threshold: parsed
            .first()
            .map_or(crate::metrics::disruption::DEFAULT_THRESHOLD, |p| {
                p.disruption_threshold
            }),
    };
    for note in parsed.iter().flat_map(|p| &p.preflight) {
        if !o.preflight.contains(note) {
            o.preflight.push(note.clone());
        }
    }

    let mut id = 0;
    let mut agents = Vec::new();
    for p in &parsed {
        if p.agents.is_empty() {
            id += 1;
            agents.push(AgentOutcome::new(
                id,
                p.name.clone(),
                String::new(),
                p.per_source.iter().map(|s| s.address.clone()).collect(),
                p.stages.iter().map(|s| s.target).max().unwrap_or(0),
                p.peak_open,
                None,
                &p.totals,
                &p.totals.gauges,
            ));
        } else {
            for a in &p.agents {
                id += 1;
                let mut a = a.clone();
                a.id = id;
                a.name = format!("{}: {}", p.name, a.name);
                agents.push(a);
            }
        }
    }
    o.agents = agents;

    let mut exprs: Vec<String> = Vec::new();
    for p in &parsed {
        for e in &p.thresholds {
            if !exprs.contains(e) {
                exprs.push(e.clone());
            }
        }
    }
    let thresholds: Vec<_> = exprs
        .iter()
        .filter_map(|e| crate::plan::threshold::parse(e).ok())
        .collect();
    o.thresholds = crate::metrics::thresholds::evaluate(&thresholds, &o);
    Ok(o)
}

/// Shards run their share of each stage: with one stage layout everywhere, the merged stages
/// are the sums (the global plan). Otherwise the first report's stages are kept.
fn merge_stages(parsed: &[Parsed]) -> Vec<Stage> {
    let first = &parsed[0].stages;
    let same_layout = parsed.iter().all(|p| {
        p.stages.len() == first.len()
            && p.stages
                .iter()
                .zip(first)
                .all(|(a, b)| a.duration == b.duration)
    });
    if !same_layout {
        return first.clone();
    }
    first
        .iter()
        .enumerate()
        .map(|(i, s)| Stage {
            duration: s.duration,
            target: parsed.iter().map(|p| p.stages[i].target).sum(),
        })
        .collect()
}

fn merge_sources(parsed: &[Parsed]) -> Vec<SourceOutcome> {
    let mut rows: Vec<(String, SourceCounts)> = Vec::new();
    for p in parsed {
        for (s, c) in p.per_source.iter().zip(&p.totals.per_source) {
            match rows.iter_mut().find(|(a, _)| *a == s.address) {
                Some((_, row)) => row.merge(c),
                None => rows.push((s.address.clone(), c.clone())),
            }
        }
    }
    SourceOutcome::rows(rows.iter().map(|(a, c)| (a.clone(), c)))
}

fn merge_targets(parsed: &[Parsed]) -> Vec<TargetOutcome> {
    let mut out: Vec<TargetOutcome> = Vec::new();
    for t in parsed.iter().flat_map(|p| &p.per_target) {
        match out.iter_mut().find(|o| o.url == t.url) {
            Some(o) => {
                o.established += t.established;
                o.failed += t.failed;
            }
            None => out.push(t.clone()),
        }
    }
    out
}

fn merge_rows(parsed: &[Parsed]) -> Vec<IntervalRow> {
    let n = parsed.iter().map(|p| p.timeseries.len()).max().unwrap_or(0);
    (0..n)
        .map(|k| {
            let mut row = IntervalRow::default();
            let mut gateway_taken = false;
            for r in parsed.iter().filter_map(|p| p.timeseries.get(k)) {
                // The gateway columns of the first input that watched a gateway.
                if !gateway_taken
                    && (r.gateway_rss_bytes.is_some()
                        || r.gateway_cpu_percent.is_some()
                        || r.health_latency_ms.is_some())
                {
                    gateway_taken = true;
                    row.gateway_rss_bytes = r.gateway_rss_bytes;
                    row.gateway_cpu_percent = r.gateway_cpu_percent;
                    row.gateway_fds = r.gateway_fds;
                    row.gateway_established = r.gateway_established;
                    row.gateway_bytes_per_connection = r.gateway_bytes_per_connection;
                    row.health_failures = r.health_failures;
                    row.health_latency_ms = r.health_latency_ms;
                }
                row.t_s = row.t_s.max(r.t_s);
                row.open += r.open;
                row.connect_rate += r.connect_rate;
                row.failures += r.failures;
                row.dropped += r.dropped;
                row.reconnects += r.reconnects;
                row.burst = row.burst.max(r.burst);
                row.msgs_sent_per_s += r.msgs_sent_per_s;
                row.msgs_received_per_s += r.msgs_received_per_s;
                row.message_p50_ms = row.message_p50_ms.max(r.message_p50_ms);
                row.message_p99_ms = row.message_p99_ms.max(r.message_p99_ms);
                row.pushes_per_s += r.pushes_per_s;
                row.push_p50_ms = row.push_p50_ms.max(r.push_p50_ms);
                row.push_p99_ms = row.push_p99_ms.max(r.push_p99_ms);
                row.fanout_p50_ms = row.fanout_p50_ms.max(r.fanout_p50_ms);
                row.fanout_p99_ms = row.fanout_p99_ms.max(r.fanout_p99_ms);
                row.rss_bytes += r.rss_bytes;
                row.opens_per_s += r.opens_per_s;
                row.closes_per_s += r.closes_per_s;
                for (name, p) in &r.latency_ms {
                    let m = row.latency_ms.entry(name.clone()).or_default();
                    m.p50 = m.p50.max(p.p50);
                    m.p90 = m.p90.max(p.p90);
                    m.p99 = m.p99.max(p.p99);
                }
                for (label, n) in &r.failures_by_category {
                    *row.failures_by_category.entry(label.clone()).or_default() += n;
                }
                for (label, n) in &r.drops_by_reason {
                    *row.drops_by_reason.entry(label.clone()).or_default() += n;
                }
            }
            row
        })
        .collect()
}

fn secs(v: f64) -> Duration {
    Duration::try_from_secs_f64(v.max(0.0)).unwrap_or_default()
}

/// Failure labels (`refused`, `http_status_503`, `http_status_other`, `tls_alert_<name>`)
/// back into counters.
fn add_failures(c: &mut Counters, entries: &BTreeMap<String, u64>) -> Result<(), String> {
    for (label, &n) in entries {
        if n == 0 {
            continue;
        }
        if let Some(code) = label.strip_prefix("http_status_") {
            c.failures[FailureKind::HttpStatus as usize] += n;
            if code != "other" {
                let code: u16 = code
                    .parse()
                    .map_err(|_| format!("unknown failure category `{label}`"))?;
                *c.http_status.entry(code).or_default() += n;
            }
        } else if let Some(name) = label.strip_prefix("tls_alert_") {
            c.failures[FailureKind::TlsAlert as usize] += n;
            if name == "other" {
                continue;
            }
            let code = (0..=255u8)
                .find(|code| tls_alert_name(*code) == name)
                .ok_or_else(|| format!("unknown TLS alert `{name}`"))?;
            *c.tls_alerts.entry(code).or_default() += n;
        } else {
            let kind = parse_failure_label(label).ok_or_else(|| {
                format!("unknown failure category `{label}` (report of a newer wsscale?)")
            })?;
            c.failures[kind as usize] += n;
        }
    }
    Ok(())
}

/// The counters of a whole report.
fn counters(r: &JsonReport) -> Result<Counters, String> {
    let (cn, m, h, t) = (&r.connections, &r.messages, &r.heartbeats, &r.traffic);
    let mut c = Counters {
        attempted: cn.attempted,
        established: cn.established,
        failed: cn.failed,
        dropped: cn.dropped,
        closed: cn.closed,
        reconnects: cn.reconnects,
        source_port_retries: cn.source_port_retries,
        aborted: cn.aborted,
        examples: cn.failure_examples.clone(),
        messages_sent: m.sent,
        messages_received: m.received,
        messages_lost: m.lost,
        message_bytes_sent: m.bytes_sent,
        message_bytes_received: m.bytes_received,
        other_messages_received: m.other_received,
        pings_sent: h.pings_sent,
        pongs_received: h.pongs_received,
        heartbeats_sent: h.heartbeats_sent,
        heartbeat_replies: h.heartbeat_replies,
        bytes_sent: t.bytes_sent,
        bytes_received: t.bytes_received,
        frames_received: t.frames_received,
        pings_answered: t.pings_answered,
        server_pings_answered: t.server_pings_answered,
        pushes_received: r.pushes.received,
        // `fanout.delivered` = fan-out samples + own echoes.
        fanout_received: r.fanout.delivered.saturating_sub(m.received),
        replies: t.replies.iter().map(|x| x.sent).collect(),
        tls_handshakes: r.tls.handshakes,
        tls_resumed: r.tls.resumed,
        compression: r.compression.to_counters(),
        churn_closes: r.churn.as_ref().map_or(0, |ch| ch.sessions_completed),
        arrivals_skipped: r
            .churn
            .as_ref()
            .and_then(|ch| ch.arrival.as_ref())
            .map_or(0, |a| a.skipped),
        misbehave: super::misbehave::counters(&r.misbehave)?,
        ..Counters::default()
    };
    add_failures(&mut c, &cn.failures)?;
    for (label, &n) in &cn.drops {
        if n == 0 {
            continue;
        }
        let d = parse_drop_label(label).ok_or_else(|| format!("unknown drop reason `{label}`"))?;
        *c.drops.entry(d).or_default() += n;
    }
    Ok(c)
}

fn histograms(map: &BTreeMap<String, String>) -> Result<crate::metrics::Histograms, String> {
    decode_histograms(map).map_err(|e| e.to_string())
}

fn parse(input: &Input) -> Result<Parsed, String> {
    let v = &input.doc;
    if v.get("steps").is_some() {
        return Err(
            "a progressive run's report (with `steps`): merge its steps' reports instead".into(),
        );
    }
    let version = v.get("schema_version").and_then(Value::as_u64);
    if version != Some(u64::from(super::SCHEMA_VERSION)) {
        return Err(format!(
            "schema_version {}; this wsscale merges version {}",
            version.map_or_else(|| "missing".to_string(), |n| n.to_string()),
            super::SCHEMA_VERSION
        ));
    }
    if v.get("histograms").is_none() {
        return Err(
            "no `histograms`: this report was written by a wsscale without serialized \
             histograms, so its percentiles cannot be merged exactly; re-run it with this version"
                .into(),
        );
    }
    let r: JsonReport =
        serde_json::from_value(v.clone()).map_err(|e| format!("not a wsscale JSON report: {e}"))?;
    let started_at = humantime::parse_rfc3339(&r.started_at)
        .map_err(|e| format!("`started_at` {:?}: {e}", r.started_at))?;
    let per_source: Vec<SourceOutcome> = r
        .connections
        .per_source
        .iter()
        .map(|s| SourceOutcome {
            address: s.address.clone(),
            established: s.established,
            failed: s.failed,
            addr_not_available: s.addr_not_available,
        })
        .collect();
    let mut totals = Snapshot {
        counters: counters(&r)?,
        hist: histograms(&r.histograms)?,
        ..Snapshot::default()
    };
    totals.gauges.open = r.connections.open_at_end;
    totals.per_source = per_source
        .iter()
        .map(|s| SourceCounts {
            established: s.established,
            failed: s.failed,
            addr_not_available: s.addr_not_available,
        })
        .collect();
    let agents = r
        .agents
        .iter()
        .map(parse_agent)
        .collect::<Result<Vec<_>, String>>()?;
    let name = Path::new(&input.name)
        .file_name()
        .map_or_else(|| input.name.clone(), |n| n.to_string_lossy().into_owned());
    Ok(Parsed {
        name,
        started_at,
        duration: secs(r.duration_s),
        totals,
        interrupted: r.interrupted,
        complete: r.complete,
        aborted_by_threshold: r.aborted_by_threshold,
        embedded_gateway: r.embedded_gateway,
        sources_exhausted: r.sources_exhausted,
        tls_insecure: r.tls_insecure,
        threads: r.threads,
        targets: r.targets,
        stages: r
            .stages
            .iter()
            .map(|s| Stage {
                duration: secs(s.duration_s),
                target: s.target,
            })
            .collect(),
        peak_open: r.connections.peak_open,
        peak_reached_after: secs(r.connections.peak_reached_after_s),
        rss_before: r.memory.rss_before_bytes,
        rss_peak: r.memory.rss_peak_bytes,
        rss_at_peak_open: r.memory.rss_at_peak_open_bytes,
        per_source,
        per_target: r
            .connections
            .per_target
            .iter()
            .map(|t| TargetOutcome {
                url: t.url.clone(),
                established: t.established,
                failed: t.failed,
            })
            .collect(),
        protocol: r.protocol.clone(),
        reply_rules: r.traffic.replies.iter().map(|x| x.rule.clone()).collect(),
        timeseries: r.timeseries,
        disruption_threshold: r.disruption_threshold,
        thresholds: r.thresholds.into_iter().map(|t| t.expr).collect(),
        agents,
        preflight: r.preflight,
        gateway: r.gateway,
        drift: r.drift,
        churn: r.churn,
    })
}

fn parse_agent(a: &JsonAgent) -> Result<AgentOutcome, String> {
    let mut c = Counters {
        attempted: a.attempted,
        established: a.established,
        failed: a.failed,
        dropped: a.dropped,
        closed: a.closed,
        messages_sent: a.messages_sent,
        messages_received: a.messages_received,
        messages_lost: a.messages_lost,
        ..Counters::default()
    };
    add_failures(&mut c, &a.failures)?;
    let mut totals = Snapshot {
        counters: c,
        hist: histograms(&a.histograms)?,
        ..Snapshot::default()
    };
    totals.gauges.open = a.open_at_end;
    totals.gauges.rss_bytes = a.rss_bytes;
    Ok(AgentOutcome {
        id: a.id,
        name: a.name.clone(),
        host: a.host.clone(),
        sources: a.sources.clone(),
        planned_connections: a.planned_connections,
        peak_open: a.peak_open,
        lost: a.lost_reason.clone(),
        totals,
    })
}
