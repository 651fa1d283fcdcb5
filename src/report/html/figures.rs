//! The charts of one run, built from its typed JSON report ([`JsonReport`]): what is plotted
//! and from which fields. A chart whose data is absent (no messages, no failures, no
//! histograms) is not built at all, so the page never shows an empty chart.

use std::collections::{BTreeMap, BTreeSet};

use super::charts::{Chart, Series, XAxis, nines_of_quantile};
use crate::metrics::wire::decode_histograms;
use crate::report::json::JsonReport;

/// One chart of the page with its identity and caption.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable id (`connections`, `latency-message_rtt_ms`, …): the page's `data-chart`.
    pub id: String,
    pub title: String,
    /// What the chart shows and how it was computed, under the chart.
    pub note: String,
    pub chart: Chart,
}

/// Human names of the latency histograms, by `timings` name.
pub const LATENCIES: [(&str, &str); 9] = [
    ("tcp_connect_ms", "TCP connect"),
    ("tls_handshake_ms", "TLS handshake"),
    ("ws_handshake_ms", "WebSocket handshake"),
    ("message_rtt_ms", "Message round trip"),
    ("ping_rtt_ms", "Ping round trip"),
    ("heartbeat_rtt_ms", "Heartbeat round trip"),
    ("schedule_lag_ms", "Schedule lag"),
    ("fanout_latency_ms", "Fan-out latency"),
    ("push_latency_ms", "Push latency"),
];

/// The human name of a `timings` histogram.
pub fn latency_name(key: &str) -> &str {
    LATENCIES
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, n)| n)
}

/// Every chart of a run, in page order.
pub fn figures(r: &JsonReport) -> Vec<Figure> {
    let mut out = Vec::new();
    out.extend(connections(r));
    out.extend(connect_rate(r));
    out.extend(failures(r));
    out.extend(messages(r));
    out.extend(interval_latencies(r));
    out.extend(nines(r));
    out
}

/// The end of the time axis: the run's duration, the plan's, or the last interval's.
fn run_end(r: &JsonReport) -> f64 {
    let planned: f64 = r.stages.iter().map(|s| s.duration_s).sum();
    let last = r.timeseries.last().map_or(0.0, |row| row.t_s);
    r.duration_s.max(planned).max(last)
}

/// The planned target as a line: linear ramps between the stage ends.
pub fn target_line(r: &JsonReport) -> Vec<(f64, f64)> {
    let mut t = 0.0;
    let mut points = vec![(0.0, 0.0)];
    for s in &r.stages {
        t += s.duration_s;
        points.push((t, s.target as f64));
    }
    points
}

fn connections(r: &JsonReport) -> Option<Figure> {
    if r.timeseries.is_empty() {
        return None;
    }
    let open = r
        .timeseries
        .iter()
        .map(|row| (row.t_s, row.open as f64))
        .collect();
    Some(Figure {
        id: "connections".into(),
        title: "Open connections vs target".into(),
        note: "Open connections at the end of each interval; the target is the plan's stages \
               (linear ramps)."
            .into(),
        chart: Chart {
            x: XAxis::Time,
            x_end: Some(run_end(r)),
            y_desc: "connections".into(),
            log_y: false,
            series: vec![
                Series::new("open", open),
                Series::new("target", target_line(r)),
            ],
        },
    })
}

fn connect_rate(r: &JsonReport) -> Option<Figure> {
    if r.timeseries.is_empty() {
        return None;
    }
    let rate = r
        .timeseries
        .iter()
        .map(|row| (row.t_s, row.connect_rate))
        .collect();
    Some(Figure {
        id: "connect-rate".into(),
        title: "Connect rate".into(),
        note: "Connections established per second in each interval.".into(),
        chart: Chart {
            x: XAxis::Time,
            x_end: Some(run_end(r)),
            y_desc: "connections/s".into(),
            log_y: false,
            series: vec![Series::new("established/s", rate)],
        },
    })
}

/// One line per failure category and drop reason that occurred; reports written before the
/// per-interval breakdown existed fall back to the `failures` and `dropped` totals.
fn failures(r: &JsonReport) -> Option<Figure> {
    let rows = &r.timeseries;
    if rows.iter().all(|row| row.failures == 0 && row.dropped == 0) {
        return None;
    }
    let detailed = rows
        .iter()
        .any(|row| !row.failures_by_category.is_empty() || !row.drops_by_reason.is_empty());
    let mut series = Vec::new();
    if detailed {
        let failure_keys: BTreeSet<&String> = rows
            .iter()
            .flat_map(|row| row.failures_by_category.keys())
            .collect();
        for key in failure_keys {
            let points = rows
                .iter()
                .map(|row| {
                    let n = row.failures_by_category.get(key).copied().unwrap_or(0);
                    (row.t_s, n as f64)
                })
                .collect();
            series.push(Series::new(format!("failed: {key}"), points));
        }
        let drop_keys: BTreeSet<&String> = rows
            .iter()
            .flat_map(|row| row.drops_by_reason.keys())
            .collect();
        for key in drop_keys {
            let points = rows
                .iter()
                .map(|row| {
                    let n = row.drops_by_reason.get(key).copied().unwrap_or(0);
                    (row.t_s, n as f64)
                })
                .collect();
            series.push(Series::new(format!("dropped: {key}"), points));
        }
    } else {
        let failed = rows.iter().map(|row| (row.t_s, row.failures as f64));
        let dropped = rows.iter().map(|row| (row.t_s, row.dropped as f64));
        series.push(Series::new("failed", failed.collect()));
        series.push(Series::new("dropped", dropped.collect()));
    }
    Some(Figure {
        id: "failures".into(),
        title: "Failures and drops per interval".into(),
        note: "Failed connection attempts by category and drops of established connections by \
               reason, counted per interval (labels as in connections.failures and \
               connections.drops)."
            .into(),
        chart: Chart {
            x: XAxis::Time,
            x_end: Some(run_end(r)),
            y_desc: "per interval".into(),
            log_y: false,
            series,
        },
    })
}

fn messages(r: &JsonReport) -> Option<Figure> {
    let rows = &r.timeseries;
    let sent: Vec<_> = rows.iter().map(|r| (r.t_s, r.msgs_sent_per_s)).collect();
    let recv: Vec<_> = rows
        .iter()
        .map(|r| (r.t_s, r.msgs_received_per_s))
        .collect();
    let pushes: Vec<_> = rows.iter().map(|r| (r.t_s, r.pushes_per_s)).collect();
    let any = |v: &[(f64, f64)]| v.iter().any(|p| p.1 > 0.0);
    let mut series = Vec::new();
    if any(&sent) || any(&recv) {
        series.push(Series::new("messages sent/s", sent));
        series.push(Series::new("echoes received/s", recv));
    }
    if any(&pushes) {
        series.push(Series::new("pushes received/s", pushes));
    }
    if series.is_empty() {
        return None;
    }
    Some(Figure {
        id: "messages".into(),
        title: "Message rates".into(),
        note: "Timed messages sent, their echoes and server pushes received, per second.".into(),
        chart: Chart {
            x: XAxis::Time,
            x_end: Some(run_end(r)),
            y_desc: "messages/s".into(),
            log_y: false,
            series,
        },
    })
}

/// p50/p90/p99 per interval of every latency histogram present. Reports written before
/// `latency_ms` existed fall back to the message, push and fan-out p50/p99 columns.
fn interval_latencies(r: &JsonReport) -> Vec<Figure> {
    let rows = &r.timeseries;
    let mut per_metric: BTreeMap<&str, [Vec<(f64, f64)>; 3]> = BTreeMap::new();
    for row in rows {
        for (key, p) in &row.latency_ms {
            let [p50, p90, p99] = per_metric.entry(key.as_str()).or_default();
            p50.push((row.t_s, p.p50));
            p90.push((row.t_s, p.p90));
            p99.push((row.t_s, p.p99));
        }
    }
    let mut out = Vec::new();
    if per_metric.is_empty() {
        for (key, p50, p99) in [
            (
                "message_rtt_ms",
                rows.iter()
                    .map(|r| (r.t_s, r.message_p50_ms))
                    .collect::<Vec<_>>(),
                rows.iter()
                    .map(|r| (r.t_s, r.message_p99_ms))
                    .collect::<Vec<_>>(),
            ),
            (
                "push_latency_ms",
                rows.iter().map(|r| (r.t_s, r.push_p50_ms)).collect(),
                rows.iter().map(|r| (r.t_s, r.push_p99_ms)).collect(),
            ),
            (
                "fanout_latency_ms",
                rows.iter().map(|r| (r.t_s, r.fanout_p50_ms)).collect(),
                rows.iter().map(|r| (r.t_s, r.fanout_p99_ms)).collect(),
            ),
        ] {
            if p99.iter().any(|p| p.1 > 0.0) {
                out.push(latency_figure(
                    r,
                    key,
                    vec![Series::new("p50", p50), Series::new("p99", p99)],
                ));
            }
        }
        return out;
    }
    // In the order of the report's `timings`.
    for (key, _) in LATENCIES {
        if let Some([p50, p90, p99]) = per_metric.remove(key) {
            out.push(latency_figure(
                r,
                key,
                vec![
                    Series::new("p50", p50),
                    Series::new("p90", p90),
                    Series::new("p99", p99),
                ],
            ));
        }
    }
    out
}

fn latency_figure(r: &JsonReport, key: &str, series: Vec<Series>) -> Figure {
    Figure {
        id: format!("latency-{key}"),
        title: format!("{} per interval ({key})", latency_name(key)),
        note: "Percentiles of the samples recorded in each interval; intervals without a \
               sample have no point. In a merged report each point is the highest of the \
               inputs' (an upper bound)."
            .into(),
        chart: Chart {
            x: XAxis::Time,
            x_end: Some(run_end(r)),
            y_desc: "ms".into(),
            log_y: false,
            series,
        },
    }
}

/// The percentile distribution of every histogram in `histograms` over the whole run, on
/// HdrHistogram's "nines" axis. Histograms that do not decode are left out (a report from a
/// newer wsscale); the tables still show their percentiles.
fn nines(r: &JsonReport) -> Option<Figure> {
    let hists = decode_histograms(&r.histograms).ok()?;
    let mut series = Vec::new();
    for (name, h) in hists.named() {
        if h.is_empty() {
            continue;
        }
        let key = format!("{name}_ms");
        // With n samples the highest quantile that means anything is 1 − 1/n: the last
        // points (up to the max) sit at that position, as in HdrHistogram's plotter.
        let top = 1.0 - 1.0 / h.len().max(2) as f64;
        let points: Vec<(f64, f64)> = h
            .iter_quantiles(2)
            .map(|v| {
                let q = v.quantile_iterated_to().min(top);
                (nines_of_quantile(q), v.value_iterated_to() as f64 / 1000.0)
            })
            .collect();
        if !points.is_empty() {
            series.push(Series::new(
                format!("{} ({key})", latency_name(&key)),
                points,
            ));
        }
    }
    if series.is_empty() {
        return None;
    }
    Some(Figure {
        id: "percentiles".into(),
        title: "Latency percentile distribution".into(),
        note: "Every sample of the run (merged histograms), on HdrHistogram's \"nines\" axis: \
               90% is one tenth of the samples above it, 99.9% one thousandth. Log scale."
            .into(),
        chart: Chart {
            x: XAxis::Nines,
            x_end: None,
            y_desc: "ms".into(),
            log_y: true,
            series,
        },
    })
}
