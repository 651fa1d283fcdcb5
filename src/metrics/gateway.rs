//! The gateway's side of a run: what `system::watch` sampled once per interval from the
//! watched gateway processes (`/proc`, `sock_diag`), its Prometheus endpoint and its health
//! URL ([`GatewaySample`], collected in a [`GatewayRecord`]), and what the report makes of
//! it ([`GatewaySummary`]).
//!
//! - **Bytes per held connection**: (gateway RSS − RSS before the first connection) ÷ the
//!   connections wsscale had open at that moment. "At peak open" is the first sample taken
//!   after wsscale's open count reached its peak while a later time-series row still shows
//!   the peak (so every connection was open at that instant); without such a sample, the
//!   first one whose nearest time-series row has the highest open count.
//! - **Connection count**: the gateway's own ESTABLISHED TCP sockets at that sample beside
//!   wsscale's open count; a difference is reported as a note (half-open connections, or
//!   connections the gateway lost track of — or other clients of the same gateway).
//! - **CPU**: per-interval share of one core (100 % = one core busy), mean and max over the
//!   samples that had a previous sample to compare with.
//! - Several watched processes (or scraped URLs) are summed: RSS, CPU, threads, fds and
//!   sockets of all of them.
//!
//! The same figures per interval go into the time-series rows ([`attach`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::drift::{HoldDrift, hold_drift};
use super::outcome::{IntervalRow, RunOutcome};

/// One health check (`--health-url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// HTTP status (`None`: no answer — refused, timed out, …).
    pub status: Option<u16>,
    pub latency_ms: f64,
    /// 2xx within the timeout.
    pub ok: bool,
}

/// One sample of the watched gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySample {
    /// When the sample was taken.
    pub at: SystemTime,
    /// Watched processes found (pids alive plus name matches).
    pub processes: u64,
    /// Sum of the processes' RSS (and of scraped `process_resident_memory_bytes`).
    pub rss_bytes: Option<u64>,
    /// CPU use since the previous sample, % of one core (user + system).
    pub cpu_percent: Option<f64>,
    pub threads: Option<u64>,
    /// Open file descriptors (and scraped `process_open_fds`).
    pub fds: Option<u64>,
    /// ESTABLISHED TCP sockets the watched processes hold.
    pub established: Option<u64>,
    /// `--gateway-metric` series: gauges as values, counters as rates per second.
    pub metrics: BTreeMap<String, f64>,
    /// Scrapes attempted / failed for this sample.
    pub scrapes: u64,
    pub scrape_failures: u64,
    pub health: Option<HealthCheck>,
    /// How long taking this sample took (the cost of watching), ms.
    pub took_ms: f64,
}

impl GatewaySample {
    /// An empty sample taken at `at`.
    pub fn new(at: SystemTime) -> Self {
        GatewaySample {
            at,
            processes: 0,
            rss_bytes: None,
            cpu_percent: None,
            threads: None,
            fds: None,
            established: None,
            metrics: BTreeMap::new(),
            scrapes: 0,
            scrape_failures: 0,
            health: None,
            took_ms: 0.0,
        }
    }
}

/// Everything the watcher recorded during a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayRecord {
    /// What was watched, as text (`pid 4242`, `process nats-server`, `metrics URL`,
    /// `health URL`).
    pub watched: Vec<String>,
    /// The first sample is the baseline, taken before the first connection.
    pub samples: Vec<GatewaySample>,
    /// The first error of each kind seen (a failed scrape, an unreadable `/proc` entry).
    pub errors: Vec<String>,
    /// CPU time the watcher thread used over the run, seconds.
    pub watcher_cpu_s: f64,
}

/// Mean and maximum of a figure over the samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanMax {
    pub mean: f64,
    pub max: f64,
}

impl MeanMax {
    fn of(values: impl Iterator<Item = f64>) -> Option<MeanMax> {
        let v: Vec<f64> = values.filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let max = v.iter().copied().fold(f64::MIN, f64::max);
        Some(MeanMax {
            mean: round3(v.iter().sum::<f64>() / v.len() as f64),
            max: round3(max),
        })
    }
}

/// Health checks over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSummary {
    pub checks: u64,
    /// Non-2xx answers, timeouts and refused connections.
    pub failures: u64,
    /// When the failures happened, seconds since the start of the first stage.
    pub failure_times_s: Vec<f64>,
    /// Latency of the checks that got an answer.
    pub latency_ms: Option<MeanMax>,
    /// Status of the last check (`null`: no answer).
    pub last_status: Option<u16>,
}

/// The JSON report's `gateway` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewaySummary {
    pub watched: Vec<String>,
    pub samples: u64,
    /// Most watched processes found in one sample.
    pub processes_max: u64,
    pub rss_before_bytes: Option<u64>,
    pub rss_peak_bytes: Option<u64>,
    pub rss_at_peak_open_bytes: Option<u64>,
    /// (RSS at peak open − RSS before) ÷ `open_at_peak`.
    pub bytes_per_connection: Option<f64>,
    /// wsscale's open connections at that sample.
    pub open_at_peak: u64,
    /// The gateway's ESTABLISHED TCP sockets at that sample.
    pub established_at_peak: Option<u64>,
    /// Why the two counts differ (`null` when they agree).
    pub connection_mismatch: Option<String>,
    pub cpu_percent: Option<MeanMax>,
    pub threads_max: Option<u64>,
    pub fds_max: Option<u64>,
    /// Highest gateway RSS slope over a hold stage (see `drift[]`), bytes per minute.
    pub rss_growth_bytes_per_min: Option<f64>,
    pub scrapes: u64,
    pub scrape_failures: u64,
    /// `--gateway-metric` series over the run.
    pub metrics: BTreeMap<String, MeanMax>,
    pub health: Option<HealthSummary>,
    /// The first error of each kind seen while sampling.
    pub errors: Vec<String>,
    /// Time one sample took (the cost of watching), ms.
    pub sample_ms: Option<MeanMax>,
    /// CPU time of the watcher thread over the run, seconds.
    pub watcher_cpu_s: f64,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Seconds from the run's start to `at` (negative before it).
fn t_of(o: &RunOutcome, at: SystemTime) -> f64 {
    match at.duration_since(o.started_at) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// wsscale's open count at `t_s`: the time-series row nearest in time (0 before the first).
fn open_at(rows: &[IntervalRow], t_s: f64) -> u64 {
    if t_s <= 0.0 {
        return 0;
    }
    rows.iter()
        .min_by(|a, b| (a.t_s - t_s).abs().total_cmp(&(b.t_s - t_s).abs()))
        .map_or(0, |r| r.open)
}

/// The summary of `o.gateway`, or `None` when nothing was watched.
pub fn summary(o: &RunOutcome) -> Option<GatewaySummary> {
    let Some(rec) = o.gateway.as_ref() else {
        return o.gateway_read_back.clone();
    };
    let s = &rec.samples;
    let before = s.first().and_then(|x| x.rss_bytes);
    let (peak, at_peak_index) = peak_sample(o, s);
    let at_peak = at_peak_index.map(|i| &s[i]);
    let rss_at_peak = at_peak.and_then(|x| x.rss_bytes);
    let bytes_per_connection = match (before, rss_at_peak) {
        (Some(b), Some(p)) if peak > 0 => Some(round3(p.saturating_sub(b) as f64 / peak as f64)),
        _ => None,
    };
    // The connection count is spaced out at scale (`system::watch`): the first sample that
    // has one while the peak is still held.
    let established_at_peak = at_peak.and_then(|x| x.established).or_else(|| {
        s[at_peak_index? + 1..]
            .iter()
            .filter(|x| open_at(&o.timeseries, t_of(o, x.at)) == peak)
            .find_map(|x| x.established)
    });
    let connection_mismatch = established_at_peak.and_then(|e| mismatch(e, peak));
    let mut metric_values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for x in s {
        for (k, v) in &x.metrics {
            metric_values.entry(k.clone()).or_default().push(*v);
        }
    }
    let checks: Vec<(f64, &HealthCheck)> = s
        .iter()
        .filter_map(|x| x.health.as_ref().map(|h| (t_of(o, x.at), h)))
        .collect();
    let health = (!checks.is_empty()).then(|| HealthSummary {
        checks: checks.len() as u64,
        failures: checks.iter().filter(|(_, h)| !h.ok).count() as u64,
        failure_times_s: checks
            .iter()
            .filter(|(_, h)| !h.ok)
            .map(|(t, _)| round3(*t))
            .collect(),
        latency_ms: MeanMax::of(
            checks
                .iter()
                .filter(|(_, h)| h.status.is_some())
                .map(|(_, h)| h.latency_ms),
        ),
        last_status: checks.last().and_then(|(_, h)| h.status),
    });
    let growth = drift(o)
        .iter()
        .filter_map(|d| d.gateway_rss_bytes_per_min)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    Some(GatewaySummary {
        watched: rec.watched.clone(),
        samples: s.len() as u64,
        processes_max: s.iter().map(|x| x.processes).max().unwrap_or(0),
        rss_before_bytes: before,
        rss_peak_bytes: s.iter().filter_map(|x| x.rss_bytes).max(),
        rss_at_peak_open_bytes: rss_at_peak,
        bytes_per_connection,
        open_at_peak: peak,
        established_at_peak,
        connection_mismatch,
        cpu_percent: MeanMax::of(s.iter().filter_map(|x| x.cpu_percent)),
        threads_max: s.iter().filter_map(|x| x.threads).max(),
        fds_max: s.iter().filter_map(|x| x.fds).max(),
        rss_growth_bytes_per_min: growth.map(round3),
        scrapes: s.iter().map(|x| x.scrapes).sum(),
        scrape_failures: s.iter().map(|x| x.scrape_failures).sum(),
        metrics: metric_values
            .into_iter()
            .filter_map(|(k, v)| MeanMax::of(v.into_iter()).map(|m| (k, m)))
            .collect(),
        health,
        errors: rec.errors.clone(),
        sample_ms: MeanMax::of(s.iter().map(|x| x.took_ms)),
        watcher_cpu_s: round3(rec.watcher_cpu_s),
    })
}

/// wsscale's open count at the gateway's "peak open" sample, and that sample: the first one
/// taken after `peak_open` was reached while a later time-series row still shows it (so the
/// connections were all open at that instant); failing that (no sample during a hold at the
/// peak), the first sample whose nearest time-series row has the highest open count.
fn peak_sample(o: &RunOutcome, s: &[GatewaySample]) -> (u64, Option<usize>) {
    let peak_t = o.peak_reached_after.as_secs_f64();
    if o.peak_open > 0 {
        let held_until = o
            .timeseries
            .iter()
            .filter(|r| r.open == o.peak_open)
            .map(|r| r.t_s)
            .fold(f64::MIN, f64::max);
        if let Some(i) = s.iter().position(|x| {
            let t = t_of(o, x.at);
            t >= peak_t && t <= held_until
        }) {
            return (o.peak_open, Some(i));
        }
    }
    let opens: Vec<u64> = s
        .iter()
        .map(|x| open_at(&o.timeseries, t_of(o, x.at)))
        .collect();
    let peak = opens.iter().copied().max().unwrap_or(0);
    let i = (peak > 0)
        .then(|| opens.iter().position(|&n| n == peak))
        .flatten();
    (peak, i)
}

/// A note when the gateway's ESTABLISHED count and wsscale's open count differ by more than
/// 1 % (and more than 2 connections).
fn mismatch(established: u64, open: u64) -> Option<String> {
    let diff = established.abs_diff(open);
    if diff <= 2 || (diff as f64) <= open as f64 * 0.01 {
        return None;
    }
    Some(if established < open {
        format!(
            "the gateway held {established} ESTABLISHED connections while wsscale had {open} open: \
             {diff} half-open or lost by the gateway"
        )
    } else {
        format!(
            "the gateway held {established} ESTABLISHED connections while wsscale had {open} open: \
             {diff} more (other clients, or connections wsscale closed that the gateway still holds)"
        )
    })
}

/// Drift over every hold stage (empty when the plan had none).
pub fn drift(o: &RunOutcome) -> Vec<HoldDrift> {
    if o.holds.is_empty() {
        return o.drift_read_back.clone();
    }
    let client: Vec<(f64, f64)> = o
        .timeseries
        .iter()
        .filter(|r| r.rss_bytes > 0)
        .map(|r| (r.t_s, r.rss_bytes as f64))
        .collect();
    let gateway: Vec<(f64, f64)> = o
        .gateway
        .iter()
        .flat_map(|g| &g.samples)
        .filter_map(|x| x.rss_bytes.map(|r| (t_of(o, x.at), r as f64)))
        .collect();
    o.holds
        .iter()
        .map(|h| hold_drift(h, &client, &gateway))
        .collect()
}

/// Fill the gateway columns of the time-series rows from `o.gateway`: each row takes the
/// sample nearest in time (within one interval); health failures are counted in the row
/// whose interval they fell in.
pub fn attach(o: &mut RunOutcome) {
    let Some(rec) = o.gateway.take() else {
        return;
    };
    let times: Vec<f64> = rec.samples.iter().map(|x| t_of(o, x.at)).collect();
    let mut prev_t = f64::MIN;
    let mut prev_row_t = 0.0f64;
    for row in &mut o.timeseries {
        let span = (row.t_s - prev_row_t).max(0.001);
        let nearest = times
            .iter()
            .enumerate()
            .filter(|(_, t)| (**t - row.t_s).abs() <= span)
            .min_by(|a, b| (a.1 - row.t_s).abs().total_cmp(&(b.1 - row.t_s).abs()))
            .map(|(i, _)| &rec.samples[i]);
        if let Some(x) = nearest {
            row.gateway_rss_bytes = x.rss_bytes;
            row.gateway_cpu_percent = x.cpu_percent.map(round3);
            row.gateway_fds = x.fds;
            row.gateway_established = x.established;
            row.gateway_bytes_per_connection = match (rec.samples[0].rss_bytes, x.rss_bytes) {
                (Some(b), Some(r)) if row.open > 0 => {
                    Some(round3(r.saturating_sub(b) as f64 / row.open as f64))
                }
                _ => None,
            };
        }
        let mut failures = 0;
        let mut latency = None;
        for (x, t) in rec.samples.iter().zip(&times) {
            if *t > prev_t
                && *t <= row.t_s
                && let Some(h) = &x.health
            {
                failures += u64::from(!h.ok);
                latency = Some(round3(h.latency_ms));
            }
        }
        row.health_failures = failures;
        row.health_latency_ms = latency;
        prev_t = row.t_s;
        prev_row_t = row.t_s;
    }
    o.gateway = Some(rec);
}

/// The value of a gateway / drift / health threshold metric (`None`: no data).
pub fn measure(metric: &str, o: &RunOutcome) -> Option<f64> {
    let max_of = |f: fn(&HoldDrift) -> Option<f64>| {
        drift(o)
            .iter()
            .filter_map(f)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let min_of = |f: fn(&HoldDrift) -> Option<f64>| {
        drift(o)
            .iter()
            .filter_map(f)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))
    };
    if let Some(rest) = metric.strip_prefix("drift.") {
        return match rest {
            "message_rtt_ms.p50" => max_of(|d| d.message_rtt_ms.map(|r| r.p50)),
            "message_rtt_ms.p99" => max_of(|d| d.message_rtt_ms.map(|r| r.p99)),
            "ping_rtt_ms.p50" => max_of(|d| d.ping_rtt_ms.map(|r| r.p50)),
            "ping_rtt_ms.p99" => max_of(|d| d.ping_rtt_ms.map(|r| r.p99)),
            "heartbeat_rtt_ms.p50" => max_of(|d| d.heartbeat_rtt_ms.map(|r| r.p50)),
            "heartbeat_rtt_ms.p99" => max_of(|d| d.heartbeat_rtt_ms.map(|r| r.p99)),
            "msgs_per_s" => min_of(|d| d.msgs_per_s),
            "client_rss_bytes_per_min" => max_of(|d| d.client_rss_bytes_per_min),
            _ => None,
        };
    }
    let g = summary(o)?;
    match metric {
        "health_failures" => g.health.map(|h| h.failures as f64),
        "gateway.bytes_per_connection" => g.bytes_per_connection,
        "gateway.rss_peak_bytes" => g.rss_peak_bytes.map(|v| v as f64),
        "gateway.cpu_percent.mean" => g.cpu_percent.map(|c| c.mean),
        "gateway.cpu_percent.max" => g.cpu_percent.map(|c| c.max),
        "gateway.rss_growth_bytes_per_min" => g.rss_growth_bytes_per_min,
        "gateway.fds_max" => g.fds_max.map(|v| v as f64),
        "gateway.established_at_peak" => g.established_at_peak.map(|v| v as f64),
        "gateway.scrape_failures" => Some(g.scrape_failures as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_needs_a_real_difference() {
        assert_eq!(mismatch(1000, 1000), None);
        assert_eq!(mismatch(995, 1000), None);
        assert!(mismatch(900, 1000).unwrap().contains("100 half-open"));
        assert!(mismatch(1100, 1000).unwrap().contains("100 more"));
    }

    #[test]
    fn mean_max_skips_nan() {
        let m = MeanMax::of([1.0, f64::NAN, 3.0].into_iter()).unwrap();
        assert_eq!((m.mean, m.max), (2.0, 3.0));
        assert_eq!(MeanMax::of(std::iter::empty()), None);
    }
}
