//! The coordinator's output: the per-agent live lines under the global line (and the
//! per-agent `--metrics-listen` series), the merged [`RunOutcome`] with `agents[]` and
//! per-source rows (at the end, and as `--checkpoint` partials while the run goes on), and
//! assignment warnings.

use std::sync::Arc;
use std::time::Instant;

use super::State;
use crate::cluster::wire::CoordMsg;
use crate::metrics::timeseries::{IntervalSink, TimeSeries};
use crate::metrics::{
    AgentOutcome, Aggregator, IntervalRow, OutcomeMeta, RunOutcome, SourceOutcome, build_outcome,
};
use crate::plan::StageClock;
use crate::report::{LiveMode, LivePrinter};

impl State<'_> {
    pub(super) fn live_tick(&mut self, final_: bool) {
        let (Some(series), Some(agg)) = (self.series.as_mut(), self.agg.as_mut()) else {
            return;
        };
        let clock = StageClock::new(self.plan.stages.clone());
        let printer: Arc<dyn IntervalSink> = Arc::new(LivePrinter(self.cfg.live));
        let sink = self.cfg.sinks.with(Some(printer));
        series.tick(
            &clock,
            agg,
            self.plan.peak_connections(),
            final_,
            sink.as_deref(),
        );
        if let Some(m) = &self.cfg.metrics {
            for s in &self.slots {
                m.record_agent(s.id, &s.info.name, &s.gauges, &s.totals.counters);
            }
        }
        let now = Instant::now();
        if self.cfg.live == LiveMode::Quiet || (!final_ && now < self.next_agent_lines) {
            return;
        }
        while self.next_agent_lines <= now {
            self.next_agent_lines += self.plan.interval;
        }
        let span = self.plan.interval.as_secs_f64().max(1e-3);
        let mut lines = String::new();
        for s in &mut self.slots {
            let state = match (&s.lost, s.finished) {
                (Some(_), _) => " LOST",
                (None, true) => " finished",
                _ if s.conn.is_none() => " (link down)",
                _ => "",
            };
            lines.push_str(&format!(
                "    agent {:<3} {:<24} open {:>7} | +{:.0}/s | failed {} | dropped {} | rss {:.1} MiB{state}\n",
                s.id,
                truncate(&s.info.name, 24),
                s.gauges.open,
                s.iv_established as f64 / span,
                s.totals.counters.failed,
                s.totals.counters.dropped,
                s.gauges.rss_bytes as f64 / (1 << 20) as f64,
            ));
            s.iv_established = 0;
        }
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(lines.as_bytes());
    }

    /// Build the merged outcome.
    pub(super) fn finish(&mut self) -> RunOutcome {
        self.live_tick(true);
        let agg = self.agg.take().expect("running implies an aggregator");
        let (rows, holds) = self
            .series
            .take()
            .map(TimeSeries::into_parts)
            .unwrap_or_default();
        let mut outcome = self.merged(agg, rows, self.interrupted);
        outcome.holds = holds;
        for s in &self.slots {
            s.send(CoordMsg::Bye);
        }
        outcome
    }

    /// Hand the checkpoint sink (`--checkpoint`) the merged outcome so far, when one is due.
    pub(super) fn checkpoint_tick(&mut self, now: Instant) {
        let (Some(sink), Some(agg), Some(series)) = (&self.cfg.checkpoint, &self.agg, &self.series)
        else {
            return;
        };
        if now < self.next_checkpoint {
            return;
        }
        self.next_checkpoint = now + sink.every();
        let mut partial = self.merged(agg.clone(), series.rows().to_vec(), false);
        partial.complete = false;
        sink.checkpoint(&partial);
    }

    /// The merged outcome of `agg` and `rows`, with every agent's entry.
    fn merged(&self, agg: Aggregator, rows: Vec<IntervalRow>, interrupted: bool) -> RunOutcome {
        let agents = self
            .slots
            .iter()
            .map(|s| {
                AgentOutcome::new(
                    s.id,
                    s.info.name.clone(),
                    s.info.host.clone(),
                    s.share
                        .as_ref()
                        .map(|sh| sh.sources.iter().map(|ip| ip.to_string()).collect())
                        .unwrap_or_default(),
                    s.share.as_ref().map_or(0, |sh| sh.connections),
                    s.peak_open,
                    s.lost.clone(),
                    &s.totals,
                    &s.gauges,
                )
            })
            .collect();
        let meta = OutcomeMeta {
            started_at: self.started_at,
            start: self.start,
            duration: self.start.elapsed(),
            embedded_gateway: false,
            interrupted,
            threads: self.slots.iter().map(|s| s.threads).sum(),
            rss_before_bytes: self.slots.iter().map(|s| s.rss_before).sum(),
            aborted_by_threshold: self.aborted_by_threshold,
            per_source: Some(SourceOutcome::rows(
                self.sources.iter().map(|(a, c)| (a.clone(), c)),
            )),
            agents,
        };
        build_outcome(self.plan, agg, rows, meta)
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
