//! Phases and timers: the common start once every agent is ready, the periodic tick
//! (heartbeats, the join and ready timeouts, Ctrl-C), loss detection (silent, link lost, or
//! not finished long after the plan's end) and ramping every agent down.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::{ClusterError, Phase, State};
use crate::cluster::wire::{self, CoordMsg};
use crate::metrics::Aggregator;
use crate::metrics::outcome::RunOutcome;
use crate::metrics::timeseries::TimeSeries;

/// Agents must answer `assign` within this long.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time after the plan's end (or a stop) for agents to close and report.
const FINISH_GRACE: Duration = Duration::from_secs(30);

impl State<'_> {
    pub(super) fn mark_lost(&mut self, idx: usize, reason: String) {
        let slot = &mut self.slots[idx];
        if !slot.active() {
            return;
        }
        eprintln!(
            "agent {} LOST: {reason}; its last snapshot is kept",
            slot.label()
        );
        slot.lost = Some(reason.clone());
        slot.send(CoordMsg::Stop {
            reason: "declared lost by the coordinator".into(),
        });
        if self.cfg.abort_on_agent_loss && matches!(self.phase, Phase::Running) {
            self.interrupted = true;
            self.begin_stop(&format!(
                "agent {} was lost and --abort-on-agent-loss is set",
                self.slots[idx].label()
            ));
        }
    }

    /// Tell every agent to ramp down now.
    pub(super) fn begin_stop(&mut self, reason: &str) {
        if matches!(self.phase, Phase::Stopping(_)) {
            return;
        }
        self.broadcast_stop(reason);
        self.phase = Phase::Stopping(Instant::now());
    }

    pub(super) fn broadcast_stop(&self, reason: &str) {
        for s in &self.slots {
            s.send(CoordMsg::Stop {
                reason: reason.to_string(),
            });
        }
    }

    /// Everyone is ready: send the common start instant.
    pub(super) fn start(&mut self) {
        let lead = self.cfg.start_lead;
        let now_sys = SystemTime::now();
        let now = Instant::now();
        let at = now_sys + lead;
        self.start = now + lead;
        if let Some(c) = &self.cfg.checkpoint {
            self.next_checkpoint = self.start + c.every();
        }
        self.started_at = at;
        for s in &self.slots {
            s.send(CoordMsg::Start {
                at_unix_ns: wire::unix_ns(at),
            });
        }
        let rss_before: u64 = self.slots.iter().map(|s| s.rss_before).sum();
        self.agg = Some(Aggregator::new(self.slots.len(), 1, rss_before).without_outbox());
        self.series = Some(
            TimeSeries::new(self.plan.interval, self.start)
                .with_arrival(self.plan.arrival.as_ref()),
        );
        self.next_agent_lines = self.start + self.plan.interval;
        self.phase = Phase::Running;
        if self.cfg.verbose {
            eprintln!(
                "all {} agent(s) ready: starting at {}",
                self.slots.len(),
                humantime::format_rfc3339_millis(at)
            );
        }
    }

    /// Periodic work; returns the outcome when the run is over.
    pub(super) fn on_tick(&mut self) -> Result<Option<RunOutcome>, ClusterError> {
        let now = Instant::now();
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + Duration::from_secs(1);
            for s in &self.slots {
                s.send(CoordMsg::Heartbeat { ack: s.last_seq });
            }
        }
        let stop = self.stop.load(Ordering::Relaxed);
        match self.phase {
            Phase::Joining => {
                if stop {
                    self.broadcast_stop("the coordinator was interrupted");
                    return Err(ClusterError::Interrupted);
                }
                if now.duration_since(self.began) > self.cfg.join_timeout {
                    self.broadcast_stop("not enough agents joined");
                    return Err(ClusterError::NotEnoughAgents {
                        joined: self.slots.len(),
                        expected: self.cfg.agents,
                        waited: self.cfg.join_timeout,
                        url: self.url.clone(),
                    });
                }
                Ok(None)
            }
            Phase::Assigned => {
                if stop {
                    self.broadcast_stop("the coordinator was interrupted");
                    return Err(ClusterError::Interrupted);
                }
                let orphan = self.cfg.orphan_timeout;
                if let Some(s) = self.slots.iter().find(|s| {
                    (s.conn.is_none() && now.duration_since(s.last_heard) > orphan)
                        || (!s.ready && now.duration_since(self.assigned_at) > READY_TIMEOUT)
                }) {
                    let (agent, reason) = (
                        s.label(),
                        if s.conn.is_none() {
                            "link lost".to_string()
                        } else {
                            format!("no answer to its assignment within {READY_TIMEOUT:?}")
                        },
                    );
                    self.broadcast_stop(&format!("agent {agent} left"));
                    return Err(ClusterError::AgentLeft { agent, reason });
                }
                Ok(None)
            }
            Phase::Running | Phase::Stopping(_) => {
                if stop && !self.interrupted && !self.aborted_by_threshold {
                    self.interrupted = true;
                    self.begin_stop("interrupted on the coordinator");
                }
                self.check_losses(now);
                self.live_tick(false);
                self.checkpoint_tick(now);
                if self.slots.iter().all(|s| !s.active()) {
                    return Ok(Some(self.finish()));
                }
                Ok(None)
            }
        }
    }

    /// Declare agents lost: silent for longer than the orphan timeout, or not finished long
    /// after the plan's end (or after a stop).
    pub(super) fn check_losses(&mut self, now: Instant) {
        let orphan = self.cfg.orphan_timeout;
        let overdue = match self.phase {
            Phase::Stopping(since) => {
                now > since + self.plan.close_timeout + self.plan.handshake_timeout + FINISH_GRACE
            }
            _ => {
                now > self.start
                    + self.plan.duration()
                    + self.plan.close_timeout
                    + self.plan.handshake_timeout
                    + FINISH_GRACE
            }
        };
        for idx in 0..self.slots.len() {
            let s = &self.slots[idx];
            if !s.active() {
                continue;
            }
            let silent = now.duration_since(s.last_heard);
            if silent > orphan {
                let what = if s.conn.is_none() {
                    "link lost"
                } else {
                    "silent"
                };
                self.mark_lost(idx, format!("{what} for {:.1}s", silent.as_secs_f64()));
            } else if overdue {
                self.mark_lost(idx, "did not finish in time".to_string());
            }
        }
    }
}
