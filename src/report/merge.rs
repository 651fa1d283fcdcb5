//! `wsscale report merge a.json b.json … -o total.json`: several JSON reports (shards run
//! with `--shard I/N --start-at T`, or any runs) → one report, exactly.
//!
//! Each report is read back into a [`Snapshot`] — counters from their documented fields,
//! histograms from the serialized `histograms` — and the snapshots are added with the same
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
//!   tick together): counts and rates add; the per-interval p50/p99 are the *highest* of the
//!   inputs' (an upper bound: intervals keep no histograms).
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

use super::outcome::{AgentOutcome, IntervalRow, RunOutcome, SourceOutcome};
use crate::engine::{Aggregator, OutcomeMeta, build_outcome};
use crate::metrics::wire::{decode_histograms, parse_drop_label, parse_failure_label};
use crate::metrics::{Counters, FailureKind, Snapshot, SourceCounts, tls_alert_name};
use crate::plan::{Plan, Stage};

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
    timeseries: Vec<IntervalRow>,
    thresholds: Vec<String>,
    agents: Vec<AgentOutcome>,
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

    let meta = OutcomeMeta {
        started_at: start,
        start: std::time::Instant::now(),
        duration: end,
        embedded_gateway: parsed.iter().any(|p| p.embedded_gateway),
        interrupted: parsed.iter().any(|p| p.interrupted),
        threads: parsed.iter().map(|p| p.threads).sum(),
        rss_before_bytes: parsed.iter().map(|p| p.rss_before).sum(),
    };
    let plan = Plan::with_defaults(Vec::new(), stages);
    let mut o = build_outcome(&plan, Aggregator::new(1, 1, 0), merge_rows(&parsed), meta);
    o.totals = totals;
    o.aborted_by_threshold = parsed.iter().any(|p| p.aborted_by_threshold);
    o.sources_exhausted = parsed.iter().any(|p| p.sources_exhausted);
    o.tls_insecure = parsed.iter().any(|p| p.tls_insecure);
    o.targets = Vec::new();
    for p in &parsed {
        for t in &p.targets {
            if !o.targets.contains(t) {
                o.targets.push(t.clone());
            }
        }
    }
    o.peak_open = parsed.iter().map(|p| p.peak_open).sum();
    o.peak_reached_after = parsed
        .iter()
        .map(|p| offset(p) + p.peak_reached_after)
        .max()
        .unwrap_or_default();
    o.rss_peak_bytes = parsed.iter().map(|p| p.rss_peak).sum();
    o.rss_at_peak_open_bytes = parsed.iter().map(|p| p.rss_at_peak_open).sum();
    o.per_source = merge_sources(&parsed);

    let mut id = 0;
    let mut agents = Vec::new();
    for p in &parsed {
        if p.agents.is_empty() {
            id += 1;
            agents.push(AgentOutcome {
                id,
                name: p.name.clone(),
                host: String::new(),
                sources: p.per_source.iter().map(|s| s.address.clone()).collect(),
                planned_connections: p.stages.iter().map(|s| s.target).max().unwrap_or(0),
                peak_open: p.peak_open,
                lost: None,
                totals: p.totals.clone(),
            });
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
    o.thresholds = super::thresholds::evaluate(&thresholds, &o);
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
    let mut out: Vec<SourceOutcome> = Vec::new();
    for p in parsed {
        for s in &p.per_source {
            match out.iter_mut().find(|o| o.address == s.address) {
                Some(o) => {
                    o.established += s.established;
                    o.failed += s.failed;
                    o.addr_not_available += s.addr_not_available;
                }
                None => out.push(s.clone()),
            }
        }
    }
    out
}

fn merge_rows(parsed: &[Parsed]) -> Vec<IntervalRow> {
    let n = parsed.iter().map(|p| p.timeseries.len()).max().unwrap_or(0);
    (0..n)
        .map(|k| {
            let mut row = IntervalRow {
                t_s: 0.0,
                open: 0,
                connect_rate: 0.0,
                failures: 0,
                dropped: 0,
                msgs_sent_per_s: 0.0,
                msgs_received_per_s: 0.0,
                message_p50_ms: 0.0,
                message_p99_ms: 0.0,
            };
            for r in parsed.iter().filter_map(|p| p.timeseries.get(k)) {
                row.t_s = row.t_s.max(r.t_s);
                row.open += r.open;
                row.connect_rate += r.connect_rate;
                row.failures += r.failures;
                row.dropped += r.dropped;
                row.msgs_sent_per_s += r.msgs_sent_per_s;
                row.msgs_received_per_s += r.msgs_received_per_s;
                row.message_p50_ms = row.message_p50_ms.max(r.message_p50_ms);
                row.message_p99_ms = row.message_p99_ms.max(r.message_p99_ms);
            }
            row
        })
        .collect()
}

fn u(v: &Value, path: &str) -> Result<u64, String> {
    at(v, path)?
        .as_u64()
        .ok_or_else(|| format!("`{path}` is not a whole number"))
}

fn f(v: &Value, path: &str) -> Result<f64, String> {
    at(v, path)?
        .as_f64()
        .ok_or_else(|| format!("`{path}` is not a number"))
}

fn b(v: &Value, path: &str) -> Result<bool, String> {
    at(v, path)?
        .as_bool()
        .ok_or_else(|| format!("`{path}` is not true/false"))
}

fn at<'v>(v: &'v Value, path: &str) -> Result<&'v Value, String> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur
            .get(part)
            .ok_or_else(|| format!("`{path}` is missing (is this a wsscale JSON report?)"))?;
    }
    Ok(cur)
}

fn secs(v: f64) -> Duration {
    Duration::try_from_secs_f64(v.max(0.0)).unwrap_or_default()
}

fn count_map(v: &Value, path: &str) -> Result<Vec<(String, u64)>, String> {
    let map = at(v, path)?
        .as_object()
        .ok_or_else(|| format!("`{path}` is not an object"))?;
    map.iter()
        .map(|(k, n)| {
            n.as_u64()
                .map(|n| (k.clone(), n))
                .ok_or_else(|| format!("`{path}.{k}` is not a whole number"))
        })
        .collect()
}

/// Failure labels (`refused`, `http_status_503`, `http_status_other`, `tls_alert_<name>`)
/// back into counters.
fn add_failures(c: &mut Counters, entries: Vec<(String, u64)>) -> Result<(), String> {
    for (label, n) in entries {
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
            let kind = parse_failure_label(&label).ok_or_else(|| {
                format!("unknown failure category `{label}` (report of a newer wsscale?)")
            })?;
            c.failures[kind as usize] += n;
        }
    }
    Ok(())
}

/// Counters, gauges and histograms of a report (or an agent entry of one).
fn counters(v: &Value) -> Result<Counters, String> {
    let mut c = Counters {
        attempted: u(v, "connections.attempted")?,
        established: u(v, "connections.established")?,
        failed: u(v, "connections.failed")?,
        dropped: u(v, "connections.dropped")?,
        closed: u(v, "connections.closed")?,
        reconnects: u(v, "connections.reconnects")?,
        messages_sent: u(v, "messages.sent")?,
        messages_received: u(v, "messages.received")?,
        messages_lost: u(v, "messages.lost")?,
        message_bytes_sent: u(v, "messages.bytes_sent")?,
        message_bytes_received: u(v, "messages.bytes_received")?,
        other_messages_received: u(v, "messages.other_received")?,
        pings_sent: u(v, "heartbeats.pings_sent")?,
        pongs_received: u(v, "heartbeats.pongs_received")?,
        heartbeats_sent: u(v, "heartbeats.heartbeats_sent")?,
        heartbeat_replies: u(v, "heartbeats.heartbeat_replies")?,
        bytes_sent: u(v, "traffic.bytes_sent")?,
        bytes_received: u(v, "traffic.bytes_received")?,
        frames_received: u(v, "traffic.frames_received")?,
        pings_answered: u(v, "traffic.pings_answered")?,
        ..Counters::default()
    };
    add_failures(&mut c, count_map(v, "connections.failures")?)?;
    for (label, n) in count_map(v, "connections.drops")? {
        if n == 0 {
            continue;
        }
        let r = parse_drop_label(&label).ok_or_else(|| format!("unknown drop reason `{label}`"))?;
        *c.drops.entry(r).or_default() += n;
    }
    if let Some(tls) = v.get("tls") {
        c.tls_handshakes = tls.get("handshakes").and_then(Value::as_u64).unwrap_or(0);
        c.tls_resumed = tls.get("resumed").and_then(Value::as_u64).unwrap_or(0);
    }
    Ok(c)
}

fn histograms(v: &Value, path: &str) -> Result<crate::metrics::Histograms, String> {
    let Some(h) = v.get(path) else {
        return Err(format!(
            "no `{path}`: this report was written by a wsscale without serialized histograms, \
             so its percentiles cannot be merged exactly; re-run it with this version"
        ));
    };
    let map: BTreeMap<String, String> =
        serde_json::from_value(h.clone()).map_err(|e| format!("`{path}`: {e}"))?;
    decode_histograms(&map).map_err(|e| e.to_string())
}

fn parse(input: &Input) -> Result<Parsed, String> {
    let v = &input.doc;
    if v.get("steps").is_some() {
        return Err(
            "a progressive run's report (with `steps`): merge its steps' reports instead".into(),
        );
    }
    let version = u(v, "schema_version")?;
    if version != u64::from(super::SCHEMA_VERSION) {
        return Err(format!(
            "schema_version {version}; this wsscale merges version {}",
            super::SCHEMA_VERSION
        ));
    }
    let started = at(v, "started_at")?
        .as_str()
        .ok_or("`started_at` is not a string")?;
    let started_at =
        humantime::parse_rfc3339(started).map_err(|e| format!("`started_at` {started:?}: {e}"))?;
    let mut totals = Snapshot {
        counters: counters(v)?,
        hist: histograms(v, "histograms")?,
        ..Snapshot::default()
    };
    totals.gauges.open = u(v, "connections.open_at_end")?;
    let per_source = at(v, "connections.per_source")?
        .as_array()
        .ok_or("`connections.per_source` is not a list")?
        .iter()
        .map(|s| {
            Ok(SourceOutcome {
                address: s
                    .get("address")
                    .and_then(Value::as_str)
                    .ok_or("a per_source row has no address")?
                    .to_string(),
                established: u(s, "established")?,
                failed: u(s, "failed")?,
                addr_not_available: u(s, "addr_not_available")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    totals.per_source = per_source
        .iter()
        .map(|s| SourceCounts {
            established: s.established,
            failed: s.failed,
            addr_not_available: s.addr_not_available,
        })
        .collect();
    let stages = at(v, "stages")?
        .as_array()
        .ok_or("`stages` is not a list")?
        .iter()
        .map(|s| {
            Ok(Stage {
                duration: secs(f(s, "duration_s")?),
                target: u(s, "target")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let timeseries = at(v, "timeseries")?
        .as_array()
        .ok_or("`timeseries` is not a list")?
        .iter()
        .map(|r| {
            Ok(IntervalRow {
                t_s: f(r, "t_s")?,
                open: u(r, "open")?,
                connect_rate: f(r, "connect_rate")?,
                failures: u(r, "failures")?,
                dropped: u(r, "dropped")?,
                msgs_sent_per_s: f(r, "msgs_sent_per_s")?,
                msgs_received_per_s: f(r, "msgs_received_per_s")?,
                message_p50_ms: f(r, "message_p50_ms")?,
                message_p99_ms: f(r, "message_p99_ms")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let thresholds = at(v, "thresholds")?
        .as_array()
        .ok_or("`thresholds` is not a list")?
        .iter()
        .filter_map(|t| t.get("expr").and_then(Value::as_str).map(str::to_string))
        .collect();
    let agents = match v.get("agents").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(parse_agent)
            .collect::<Result<Vec<_>, String>>()?,
        None => Vec::new(),
    };
    let name = Path::new(&input.name)
        .file_name()
        .map_or_else(|| input.name.clone(), |n| n.to_string_lossy().into_owned());
    Ok(Parsed {
        name,
        started_at,
        duration: secs(f(v, "duration_s")?),
        totals,
        interrupted: b(v, "interrupted")?,
        aborted_by_threshold: b(v, "aborted_by_threshold")?,
        embedded_gateway: b(v, "embedded_gateway")?,
        sources_exhausted: b(v, "sources_exhausted")?,
        tls_insecure: v
            .get("tls_insecure")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        threads: u(v, "threads")? as usize,
        targets: at(v, "targets")?
            .as_array()
            .ok_or("`targets` is not a list")?
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        stages,
        peak_open: u(v, "connections.peak_open")?,
        peak_reached_after: secs(f(v, "connections.peak_reached_after_s")?),
        rss_before: u(v, "memory.rss_before_bytes")?,
        rss_peak: u(v, "memory.rss_peak_bytes")?,
        rss_at_peak_open: u(v, "memory.rss_at_peak_open_bytes")?,
        per_source,
        timeseries,
        thresholds,
        agents,
    })
}

fn parse_agent(v: &Value) -> Result<AgentOutcome, String> {
    let s = |k: &str| -> Result<String, String> {
        Ok(at(v, k)?
            .as_str()
            .ok_or_else(|| format!("agent `{k}` is not a string"))?
            .to_string())
    };
    let mut c = Counters {
        attempted: u(v, "attempted")?,
        established: u(v, "established")?,
        failed: u(v, "failed")?,
        dropped: u(v, "dropped")?,
        closed: u(v, "closed")?,
        messages_sent: u(v, "messages_sent")?,
        messages_received: u(v, "messages_received")?,
        messages_lost: u(v, "messages_lost")?,
        ..Counters::default()
    };
    add_failures(&mut c, count_map(v, "failures")?)?;
    let mut totals = Snapshot {
        counters: c,
        hist: histograms(v, "histograms")?,
        ..Snapshot::default()
    };
    totals.gauges.open = u(v, "open_at_end")?;
    totals.gauges.rss_bytes = u(v, "rss_bytes")?;
    Ok(AgentOutcome {
        id: u(v, "id")? as usize,
        name: s("name")?,
        host: s("host")?,
        sources: at(v, "sources")?
            .as_array()
            .ok_or("agent `sources` is not a list")?
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        planned_connections: u(v, "planned_connections")?,
        peak_open: u(v, "peak_open")?,
        lost: v
            .get("lost_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        totals,
    })
}
