//! Churn and arrivals in a shard: the session deadline of each established connection (one
//! timer-wheel entry, no field in `Conn`), the churn close when it fires, and the arrival
//! process of rate stages (see `plan::churn`).
//!
//! A session ends with a normal close (1000) through the same path as a ramp-down close, so
//! it is counted in `closed` and in `churn_closes`, never as a drop; in a count stage the
//! freed slot is refilled by the main loop on its next turn. In a rate stage nothing refills
//! slots: arrivals come at the stage's rate (this shard's share of it), accumulated as
//! fractional credit every loop turn so pacing is smooth. An arrival that finds the shard's
//! share of `--max-open` taken is counted in `arrivals_skipped`; one held back by the
//! in-flight cap (`--max-pending`) or the per-turn open limit starts on a later turn.

use std::time::Instant;

use super::{OPENS_PER_TURN, Shard, TICK_US, TimerEntry, TimerKind};
use crate::metrics::record_us;

impl Shard {
    /// Draw this connection's session length and schedule its end (churn only).
    pub(super) fn schedule_session_end(&mut self, key: usize) {
        let Some(spec) = self.p.plan.churn else {
            return;
        };
        let len = spec.duration.sample(&mut self.session_rng).as_micros() as u64;
        let c = &self.conns[key];
        let at = (c.mark_us + len).div_ceil(TICK_US);
        let id = c.id;
        self.wheel.insert(
            at,
            TimerEntry {
                key: key as u32,
                id,
                kind: TimerKind::SessionEnd,
            },
        );
    }

    /// The session of an open connection is over: close it normally, counted as churn.
    pub(super) fn end_session(&mut self, key: usize) {
        let ms = self.now_us().saturating_sub(self.conns[key].mark_us) / 1000;
        record_us(&mut self.snap.hist.churn_session, ms);
        self.snap.counters.churn_closes += 1;
        self.start_close(key);
    }

    /// One loop turn of a rate stage: start this shard's share of `rate` arrivals per second
    /// since the previous turn, within its share of the cap.
    pub(super) fn arrive(&mut self, rate: f64, now: Instant, pending_cap: u64) {
        let dt = self
            .last_arrival
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.last_arrival = Some(now);
        let share = self.p.slice.hi - self.p.slice.lo;
        self.arrival_credit += rate * share * dt;
        // In the open model a failed arrival is just that: it does not hold a slot.
        self.dead = 0;
        let cap = self
            .p
            .plan
            .arrival
            .as_ref()
            .map_or(u64::MAX, |a| self.p.slice.count(a.max_open as f64));
        let mut opened = 0;
        while self.arrival_credit >= 1.0 {
            if self.slots() >= cap {
                let skipped = self.arrival_credit.floor();
                self.snap.counters.arrivals_skipped += skipped as u64;
                self.arrival_credit -= skipped;
                break;
            }
            if self.pending >= pending_cap || opened >= OPENS_PER_TURN {
                break;
            }
            self.arrival_credit -= 1.0;
            if self.open_one(0) {
                opened += 1;
            } else {
                // No (source, target) pair can be tried now: the arrival cannot start.
                self.snap.counters.arrivals_skipped += 1;
            }
        }
    }
}
