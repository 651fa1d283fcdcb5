//! Fault injection, for recovery tests and demos: drop connections, or stall the gateway.
//!
//! - [`Faults::drop_all_after`] (`--drop-all-after DUR`): once, `DUR` after the gateway
//!   started, every open connection is dropped.
//! - [`Faults::drop_every`] (`--drop-every DUR:FRACTION`): every `DUR`, that fraction of the
//!   open connections is dropped (each wave picks its own pseudo-random subset).
//! - [`Faults::stall_after`] (`--stall-after DUR:FOR`): `DUR` after the start the gateway
//!   stops reading, answering and accepting for `FOR` — pings go unanswered, so clients with
//!   a ping timeout shorter than `FOR` time out — then carries on where it stopped.
//! - [`FaultSwitch::drop_all`]: drop every open connection now (`wsscale serve` calls it on
//!   SIGUSR1).
//!
//! **A drop is a TCP reset**: the connection's socket gets `SO_LINGER(0)` and is closed, so
//! the kernel sends RST at once — what a crashed gateway behind a load balancer, or a pod
//! killed with its connections, looks like from the client (counted there as the drop reason
//! `reset`, or `eof` when the reset races a read). No close frame is sent: a gateway that
//! says goodbye is a deploy, not a failure.
//!
//! Every connection task holds a [`watch::Receiver`] of the switch and `select!`s on it next
//! to its socket; a connection decides by itself whether a drop wave takes it (a hash of its
//! file descriptor and the wave number against the fraction), so a wave costs no list of
//! connections and no lock. A stalled connection simply stops polling its socket and pushes
//! until the stall ends (nothing is lost or reordered); the accept loop stops accepting too.
//! Not available with permessage-deflate (`--compression deflate`), whose connection loop is
//! separate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What every connection is told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Nothing (the initial value).
    None,
    /// Drop wave number `wave`: connections picked with probability `fraction` are reset.
    Drop { wave: u64, fraction: f64 },
    /// Stop reading, answering and accepting until `until`.
    Stall { until: Instant },
}

/// The channel every connection listens to, and the count of what it did. Cloning shares it.
#[derive(Debug, Clone)]
pub struct FaultSwitch(Arc<SwitchInner>);

#[derive(Debug)]
struct SwitchInner {
    tx: watch::Sender<Fault>,
    waves: AtomicU64,
    dropped: AtomicU64,
    stalls: AtomicU64,
}

impl Default for FaultSwitch {
    fn default() -> Self {
        FaultSwitch(Arc::new(SwitchInner {
            tx: watch::Sender::new(Fault::None),
            waves: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
        }))
    }
}

impl FaultSwitch {
    /// Drop every open connection now.
    pub fn drop_all(&self) {
        self.drop_fraction(1.0);
    }

    /// Drop about `fraction` (0..=1) of the open connections now.
    pub fn drop_fraction(&self, fraction: f64) {
        let wave = self.0.waves.fetch_add(1, Relaxed) + 1;
        self.0.tx.send_replace(Fault::Drop {
            wave,
            fraction: fraction.clamp(0.0, 1.0),
        });
    }

    /// Stop reading, answering and accepting for `d`.
    pub fn stall(&self, d: Duration) {
        self.0.stalls.fetch_add(1, Relaxed);
        self.0.tx.send_replace(Fault::Stall {
            until: Instant::now() + d,
        });
    }

    /// A receiver that has seen the current value (for a new connection).
    pub(super) fn subscribe(&self) -> watch::Receiver<Fault> {
        self.0.tx.subscribe()
    }

    /// Connections dropped by faults so far.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Relaxed)
    }

    /// Drop waves and stalls so far.
    pub fn waves(&self) -> (u64, u64) {
        (self.0.waves.load(Relaxed), self.0.stalls.load(Relaxed))
    }

    pub(super) fn count_drop(&self) {
        self.0.dropped.fetch_add(1, Relaxed);
    }
}

/// The faults a gateway injects on its own schedule (all `None`: none), and the switch that
/// injects them (also reachable from outside, e.g. on SIGUSR1).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Drop every connection once, this long after the start.
    pub drop_all_after: Option<Duration>,
    /// Every `.0`, drop the fraction `.1` of the connections.
    pub drop_every: Option<(Duration, f64)>,
    /// `.0` after the start, stall for `.1`.
    pub stall_after: Option<(Duration, Duration)>,
    /// The switch the schedule (and anyone holding a clone) flips.
    pub switch: FaultSwitch,
}

impl Faults {
    /// True when a fault is scheduled.
    pub fn scheduled(&self) -> bool {
        self.drop_all_after.is_some() || self.drop_every.is_some() || self.stall_after.is_some()
    }

    /// Start the scheduled faults as tasks (aborted when the returned guard drops). Must be
    /// called inside a tokio runtime.
    pub(super) fn start(&self) -> ScheduleGuard {
        let mut tasks = Vec::new();
        let start = Instant::now();
        if let Some(after) = self.drop_all_after {
            let s = self.switch.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(start + after).await;
                eprintln!("fault: dropping every connection ({after:?} after the start)");
                s.drop_all();
            }));
        }
        if let Some((every, fraction)) = self.drop_every {
            let s = self.switch.clone();
            tasks.push(tokio::spawn(async move {
                let mut k = 1u32;
                loop {
                    tokio::time::sleep_until(start + every * k).await;
                    s.drop_fraction(fraction);
                    k += 1;
                }
            }));
        }
        if let Some((after, stall_for)) = self.stall_after {
            let s = self.switch.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(start + after).await;
                eprintln!("fault: stalling for {stall_for:?} ({after:?} after the start)");
                s.stall(stall_for);
            }));
        }
        ScheduleGuard(tasks)
    }
}

/// Aborts the schedule's tasks when dropped.
pub(super) struct ScheduleGuard(Vec<JoinHandle<()>>);

impl Drop for ScheduleGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Whether drop wave `wave` of `fraction` takes the connection on file descriptor `fd`.
pub(super) fn picked(fd: i32, wave: u64, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    let mut x = (fd as u64) ^ wave.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x as f64) < fraction * u64::MAX as f64
}

/// Make closing `fd` send RST (`SO_LINGER` 0). The caller owns the socket and closes it next.
pub(super) fn reset_on_close(fd: i32) {
    // SAFETY: `fd` is the open socket of the calling connection task, which still owns it.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = socket2::SockRef::from(&borrowed).set_linger(Some(Duration::ZERO));
}

/// What a connection does about a fault it was just told of.
pub(super) enum Action {
    /// Nothing (not picked, or no fault).
    Carry,
    /// Reset the connection.
    Drop,
    /// Stop polling until then.
    Stall(Instant),
}

/// Read the newest fault and decide for the connection on `fd`.
pub(super) fn decide(rx: &mut watch::Receiver<Fault>, fd: i32) -> Action {
    match *rx.borrow_and_update() {
        Fault::None => Action::Carry,
        Fault::Drop { wave, fraction } if picked(fd, wave, fraction) => Action::Drop,
        Fault::Drop { .. } => Action::Carry,
        Fault::Stall { until } => Action::Stall(until),
    }
}

/// Wait for the next fault that concerns the connection on `fd` (never, once the gateway
/// dropped its switch).
pub(super) async fn next_action(rx: &mut watch::Receiver<Fault>, fd: i32) -> Action {
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        match decide(rx, fd) {
            Action::Carry => continue,
            action => return action,
        }
    }
}

pub use crate::plan::recovery::{parse_drop_every, parse_stall_after};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wave_picks_about_its_fraction() {
        let picked_of = |wave| (0..10_000).filter(|&fd| picked(fd, wave, 0.2)).count();
        for wave in 1..4 {
            let n = picked_of(wave);
            assert!((1_700..2_300).contains(&n), "wave {wave}: {n} of 10000");
        }
        // Each wave picks its own subset.
        let a: Vec<i32> = (0..1000).filter(|&fd| picked(fd, 1, 0.5)).collect();
        let b: Vec<i32> = (0..1000).filter(|&fd| picked(fd, 2, 0.5)).collect();
        assert_ne!(a, b);
        assert!((0..100).all(|fd| picked(fd, 7, 1.0)));
        assert!((0..100).all(|fd| !picked(fd, 7, 0.0)));
    }

    #[tokio::test]
    async fn a_new_receiver_does_not_see_an_old_wave() {
        let s = FaultSwitch::default();
        s.drop_all();
        let mut rx = s.subscribe();
        assert!(!rx.has_changed().unwrap());
        s.drop_fraction(0.5);
        assert!(rx.has_changed().unwrap());
        assert!(matches!(decide(&mut rx, 3), Action::Drop | Action::Carry));
        assert_eq!(s.waves(), (2, 0));
    }
}
