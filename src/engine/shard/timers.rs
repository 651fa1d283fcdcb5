//! The shard's two timer wheels and its wake-up coalescing: fewer wake-ups per held
//! connection when schedules are slow.
//!
//! With 100K held connections, a ping and a message every 30 s each, and each answered,
//! every send and every timeout check used to be its own wake-up of the shard (a precise
//! `timerfd` arm, `epoll_wait`, a context switch) — with the phases spread over the period,
//! thousands of wake-ups a second that each did one small thing. Two changes share them:
//!
//! - **Deadlines are lazy.** Timeouts (connect, handshake, close, ping, heartbeat, answer)
//!   only check that something did *not* happen; they live in their own wheel that never
//!   arms the precise timer and has 10 ms ticks ([`LAZY_TICKS`]); it is expired on
//!   whatever wake-up comes next — within the shard's longest sleep (50 ms, see
//!   `IDLE_WAIT`) plus a tick after the deadline, and within a tick during ramps, when the
//!   loop turns every millisecond.
//! - **Slow sends go out a little early, together.** Whatever wakes the shard, every
//!   send due within the next [`Timers::early_us`] goes out with it. The window is 1 % of
//!   the shortest send period, at most [`MAX_EARLY_US`] (10 ms at a 30 s ping or message
//!   period; nothing for schedules faster than one send per 10 ms per connection, which
//!   keep their µs precision). Latency stays honest: a send that goes out early is stamped
//!   with the time it actually went out (its ping payload, its message marker), never its
//!   later intended time, so a round trip is never measured short; late sends keep their
//!   intended time (coordinated omission). Application heartbeats with an expected reply
//!   measure from their intended time, so a plan with them gets no early window. Session
//!   ends and reconnects are neither: they keep their own exact wheel.

use super::TimerEntry;
use crate::engine::timer::TimerWheel;

/// The largest early window.
pub(super) const MAX_EARLY_US: u64 = 10_000;
/// Deadline wheel ticks are this many shard ticks (10 ms at 100 µs): a deadline fires at
/// most this much late (plus the wait for the next wake-up), and expiring the deadline wheel
/// visits a hundredth of the slots — each visit is a cache miss into a slot's `Vec`.
pub(super) const LAZY_TICKS: u64 = 100;

/// Send timers (precise, may fire `early_us` early), other precise timers (session ends,
/// reconnects: never early) and deadline timers (lazy).
pub(super) struct Timers {
    sends: TimerWheel<TimerEntry>,
    exact: TimerWheel<TimerEntry>,
    lazy: TimerWheel<TimerEntry>,
    /// How early a send may go out to share a wake-up (µs).
    pub early_us: u64,
    tick_us: u64,
}

/// The early window for these send periods (µs): 1 % of the shortest, at most
/// [`MAX_EARLY_US`]; 0 when `exact` (something measures from the intended time).
pub(super) fn early_window(periods: impl IntoIterator<Item = u64>, exact: bool) -> u64 {
    if exact {
        return 0;
    }
    periods
        .into_iter()
        .map(|p| p / 100)
        .min()
        .unwrap_or(MAX_EARLY_US)
        .min(MAX_EARLY_US)
}

impl Timers {
    pub fn new(slots: usize, tick_us: u64, early_us: u64) -> Timers {
        Timers {
            sends: TimerWheel::new(slots),
            exact: TimerWheel::new(slots),
            lazy: TimerWheel::new(slots),
            early_us,
            tick_us,
        }
    }

    /// Schedule `e` at wheel tick `tick`: deadlines lazy, sends early, the rest exact.
    pub fn insert(&mut self, tick: u64, e: TimerEntry) {
        if e.kind.is_deadline() {
            self.lazy.insert(tick.div_ceil(LAZY_TICKS), e);
        } else if e.kind.is_send() {
            self.sends.insert(tick, e);
        } else {
            self.exact.insert(tick, e);
        }
    }

    /// The earliest precise tick due within `window` ticks (what the shard wakes up for).
    pub fn next_due(&self, window: u64) -> Option<u64> {
        match (self.sends.next_due(window), self.exact.next_due(window)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Move what is due at tick `now` into `out`: deadlines up to `now`, sends up to the
    /// early window past it (whatever woke the shard — a send, a reply, a deadline — takes
    /// the sends due soon with it).
    pub fn expire(&mut self, now: u64, out: &mut Vec<TimerEntry>) {
        self.lazy.expire(now / LAZY_TICKS, out);
        self.exact.expire(now, out);
        self.sends.expire(now + self.early_us / self.tick_us, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::TimerKind;
    use super::*;

    fn entry(key: u32, kind: TimerKind) -> TimerEntry {
        TimerEntry { key, id: 0, kind }
    }

    #[test]
    fn sends_go_early_deadlines_late_the_rest_on_time() {
        // 100 µs ticks, a 1 ms (10-tick) early window.
        let mut t = Timers::new(1024, 100, 1_000);
        t.insert(15, entry(1, TimerKind::SendPing(0)));
        t.insert(15, entry(2, TimerKind::SessionEnd));
        t.insert(15, entry(3, TimerKind::PingTimeout(0)));
        let mut out = Vec::new();
        t.expire(4, &mut out);
        assert!(out.is_empty(), "nothing within the window yet: {out:?}");
        t.expire(5, &mut out);
        let keys: Vec<u32> = out.iter().map(|e| e.key).collect();
        assert_eq!(keys, vec![1], "only the send goes early");
        out.clear();
        t.expire(15, &mut out);
        let keys: Vec<u32> = out.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            vec![2],
            "the session end on time, the deadline not yet"
        );
        out.clear();
        t.expire(LAZY_TICKS - 1, &mut out);
        assert!(out.is_empty(), "{out:?}");
        t.expire(LAZY_TICKS, &mut out);
        let keys: Vec<u32> = out.iter().map(|e| e.key).collect();
        assert_eq!(keys, vec![3], "the deadline at the end of its lazy tick");
    }

    #[test]
    fn only_precise_timers_wake_the_shard() {
        let mut t = Timers::new(1024, 100, 0);
        t.insert(7, entry(1, TimerKind::PingTimeout(0)));
        assert_eq!(
            t.next_due(50),
            None,
            "a deadline never arms the precise timer"
        );
        t.insert(9, entry(2, TimerKind::Reconnect(1)));
        t.insert(8, entry(3, TimerKind::SendMessage));
        assert_eq!(t.next_due(50), Some(8));
    }

    #[test]
    fn early_window_is_one_percent_of_the_shortest_period_capped() {
        assert_eq!(early_window([30_000_000, 30_000_000], false), MAX_EARLY_US);
        assert_eq!(early_window([500_000, 30_000_000], false), 5_000);
        assert_eq!(early_window([500], false), 5);
        assert_eq!(early_window([], false), MAX_EARLY_US);
        assert_eq!(early_window([30_000_000], true), 0);
    }
}
