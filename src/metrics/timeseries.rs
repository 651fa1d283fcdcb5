//! The interval time series: [`TimeSeries`] cuts the aggregate into one [`IntervalRow`] per
//! `--interval` (what the JSON `timeseries[]` and `--report-csv` carry) and hands each
//! interval, as an [`IntervalView`], to an [`IntervalSink`] — the live printer in
//! `report::live`, or nothing.
//!
//! This is the seam between measuring and showing: the engine and the coordinator record
//! here and never render; `report` renders and never touches a socket.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::aggregate::Aggregator;
use super::drift::{DriftRecorder, HoldQuarters};
use super::outcome::{IntervalPercentiles, IntervalRow};
use super::percentiles::quantile_ms;
use super::{Counters, Gauges, Snapshot};
use crate::plan::StageClock;

/// One interval, as the live output shows it.
pub struct IntervalView<'a> {
    /// Time since the start of the first stage.
    pub elapsed: Duration,
    /// "ramp-up 1/3", "hold 2/3", "ramp-down 3/3" or "done".
    pub stage: String,
    /// The plan's target at `elapsed`.
    pub target: u64,
    /// The plan's peak.
    pub peak_plan: u64,
    /// Length of the whole stage clock (the progress bar's end).
    pub total: Duration,
    /// Current gauges (open, pending, …).
    pub gauges: Gauges,
    /// Deltas of this interval.
    pub interval: &'a Snapshot,
    /// Counters over the run so far.
    pub totals: &'a Counters,
    /// The time-series row of this interval.
    pub row: &'a IntervalRow,
    /// True for the closing call at the end of the run.
    pub last: bool,
}

/// Receives every interval (the live printer). Shared between threads, so `&self`.
pub trait IntervalSink: Send + Sync {
    fn interval(&self, view: &IntervalView<'_>);
}

/// Hands each interval to several sinks in turn (the live printer, the Prometheus metrics,
/// the HDR log).
pub struct Tee(pub Vec<std::sync::Arc<dyn IntervalSink>>);

impl IntervalSink for Tee {
    fn interval(&self, view: &IntervalView<'_>) {
        for s in &self.0 {
            s.interval(view);
        }
    }
}

/// Sinks a caller adds beside the live printer (`--metrics-listen`, `--report-hdr`), in a
/// form that configuration structs can hold (`Clone`, `Debug`).
#[derive(Clone, Default)]
pub struct ExtraSinks(pub Vec<std::sync::Arc<dyn IntervalSink>>);

impl std::fmt::Debug for ExtraSinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExtraSinks({})", self.0.len())
    }
}

impl ExtraSinks {
    /// One sink for `first` (the live printer) followed by these; `None` when there is none.
    pub fn with(
        &self,
        first: Option<std::sync::Arc<dyn IntervalSink>>,
    ) -> Option<std::sync::Arc<dyn IntervalSink>> {
        let mut v: Vec<_> = first.into_iter().chain(self.0.iter().cloned()).collect();
        match v.len() {
            0 => None,
            1 => v.pop(),
            _ => Some(std::sync::Arc::new(Tee(v))),
        }
    }
}

/// The time-series recorder.
pub struct TimeSeries {
    interval: Duration,
    start: Instant,
    next: Instant,
    last: Instant,
    rows: Vec<IntervalRow>,
    /// Hold-stage quarters for the drift figures (made on the first tick, from its clock).
    drift: Option<DriftRecorder>,
    /// Arrival rate per stage (`None`: a count stage); empty without rate stages.
    rates: Vec<Option<f64>>,
}

impl TimeSeries {
    pub fn new(interval: Duration, start: Instant) -> Self {
        TimeSeries {
            interval,
            start,
            next: start + interval,
            last: start,
            rows: Vec::new(),
            drift: None,
            rates: Vec::new(),
        }
    }

    /// The plan's arrival rates per stage: a rate stage shows as `arrival i/n R/s` with its
    /// cap as the target, not as a ramp to the cap.
    pub fn with_arrival(mut self, arrival: Option<&crate::plan::churn::Arrival>) -> Self {
        self.rates = arrival.map(|a| a.rates.clone()).unwrap_or_default();
        self
    }

    /// The rows recorded so far (a checkpoint copies them).
    pub fn rows(&self) -> &[IntervalRow] {
        &self.rows
    }

    /// The rows recorded so far.
    pub fn into_rows(self) -> Vec<IntervalRow> {
        self.rows
    }

    /// The rows and the hold-stage quarters recorded so far.
    pub fn into_parts(self) -> (Vec<IntervalRow>, Vec<HoldQuarters>) {
        let holds = self
            .drift
            .map(DriftRecorder::into_holds)
            .unwrap_or_default();
        (self.rows, holds)
    }

    /// Close an interval if one has passed (or `last`): record its row and show it to `sink`.
    pub fn tick(
        &mut self,
        clock: &StageClock,
        agg: &mut Aggregator,
        peak_plan: u64,
        last: bool,
        sink: Option<&dyn IntervalSink>,
    ) {
        let now = Instant::now();
        if !last && now < self.next {
            return;
        }
        // The closing call right after an interval line would repeat it — unless something
        // happened since, which the sinks (Prometheus, HDR log) and the rows must still see.
        if last
            && !self.rows.is_empty()
            && now - self.last < Duration::from_millis(100)
            && agg.interval.counters == Counters::default()
            && agg.interval.hist.named().iter().all(|(_, h)| h.is_empty())
        {
            return;
        }
        while self.next <= now {
            self.next += self.interval;
        }
        let span = now
            .saturating_duration_since(self.last)
            .as_secs_f64()
            .max(1e-3);
        let from = self.last.saturating_duration_since(self.start);
        self.last = now;
        let elapsed = now.saturating_duration_since(self.start);
        let iv = agg.take_interval();
        let gauges = agg.current_gauges();
        self.drift
            .get_or_insert_with(|| DriftRecorder::new(clock.stages()))
            .add(from.as_secs_f64(), elapsed.as_secs_f64(), &iv);
        // Forwarded snapshots (agents) carry their RSS; shards don't: then measure here.
        let rss = if gauges.rss_bytes > 0 {
            gauges.rss_bytes
        } else {
            super::rss_bytes().unwrap_or(0)
        };
        let mh = &iv.hist.message_rtt;
        self.rows.push(IntervalRow {
            t_s: elapsed.as_secs_f64(),
            open: gauges.open,
            connect_rate: iv.counters.established as f64 / span,
            failures: iv.counters.failed,
            dropped: iv.counters.dropped,
            msgs_sent_per_s: iv.counters.messages_sent as f64 / span,
            msgs_received_per_s: iv.counters.messages_received as f64 / span,
            message_p50_ms: quantile_ms(mh, 0.5),
            message_p99_ms: quantile_ms(mh, 0.99),
            pushes_per_s: iv.counters.pushes_received as f64 / span,
            push_p50_ms: quantile_ms(&iv.hist.push_latency, 0.5),
            push_p99_ms: quantile_ms(&iv.hist.push_latency, 0.99),
            fanout_p50_ms: quantile_ms(&iv.hist.fanout_latency, 0.5),
            fanout_p99_ms: quantile_ms(&iv.hist.fanout_latency, 0.99),
            latency_ms: interval_latencies(&iv.hist),
            failures_by_category: non_zero(super::labels::failure_counts(&iv.counters)),
            drops_by_reason: non_zero(super::labels::drop_counts(&iv.counters)),
            rss_bytes: rss,
            opens_per_s: iv.counters.attempted as f64 / span,
            closes_per_s: iv.counters.churn_closes as f64 / span,
            reconnects: iv.counters.reconnects,
            ..Default::default()
        });
        let rate_stage = clock.stage_index(elapsed).and_then(|i| {
            let r = self.rates.get(i).copied().flatten()?;
            Some((i, (r * 10.0).round() / 10.0))
        });
        if let Some(sink) = sink {
            sink.interval(&IntervalView {
                elapsed,
                stage: rate_stage
                    .map(|(i, r)| format!("arrival {}/{} {r}/s", i + 1, clock.stages().len()))
                    .unwrap_or_else(|| stage_label(clock, elapsed)),
                target: rate_stage.map_or(clock.count_at(elapsed) as u64, |(i, _)| {
                    clock.stages()[i].target
                }),
                peak_plan,
                total: clock.total(),
                gauges,
                interval: &iv,
                totals: &agg.totals.counters,
                row: self.rows.last().expect("just pushed"),
                last,
            });
        }
    }
}

/// Stage label at `elapsed`: "ramp-up 1/3", "hold 2/3", "ramp-down 3/3" or "done".
pub fn stage_label(clock: &StageClock, elapsed: Duration) -> String {
    let stages = clock.stages();
    match clock.stage_index(elapsed) {
        None => "done".into(),
        Some(i) => {
            let prev = if i == 0 { 0 } else { stages[i - 1].target };
            let kind = match stages[i].target.cmp(&prev) {
                std::cmp::Ordering::Greater => "ramp-up",
                std::cmp::Ordering::Equal => "hold",
                std::cmp::Ordering::Less => "ramp-down",
            };
            format!("{kind} {}/{}", i + 1, stages.len())
        }
    }
}

/// p50/p90/p99 of every histogram of the interval that has samples, by `timings` name.
fn interval_latencies(h: &super::Histograms) -> BTreeMap<String, IntervalPercentiles> {
    h.named()
        .into_iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| {
            let p = IntervalPercentiles {
                p50: quantile_ms(h, 0.5),
                p90: quantile_ms(h, 0.9),
                p99: quantile_ms(h, 0.99),
            };
            (format!("{name}_ms"), p)
        })
        .collect()
}

/// The labelled counts that are not zero.
fn non_zero(counts: Vec<(String, u64)>) -> BTreeMap<String, u64> {
    counts.into_iter().filter(|(_, n)| *n > 0).collect()
}
