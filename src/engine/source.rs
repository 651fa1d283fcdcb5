//! The source-address pool a shard opens connections from.
//!
//! Addresses come resolved from the plan (see [`crate::plan::source_spec`] for the parsing of
//! ranges, CIDRs and interfaces). Each shard keeps its own pool with its own round-robin
//! cursor (shard `i` starts at address `i`, so shards do not march in lockstep) and its own
//! record of which (source, target) pairs are full.
//!
//! With `IP_BIND_ADDRESS_NO_PORT` the kernel picks the local port at `connect()` time per
//! 4-tuple, so one source address serves a whole port range *per destination*. When
//! `connect()` returns `EADDRNOTAVAIL`, that (source, destination) pair is out of ports: the
//! pool marks it full ([`SourcePool::mark_full`]) and the next pick skips it.
//!
//! **Full is not forever.** Ports come free again: sockets of this or another process close,
//! and a socket in `TIME_WAIT` (60 s on Linux) that holds an explicitly bound port releases it
//! when it expires. So a full pair is retried with back-off: once every pair of a target is
//! full, [`SourcePool::pick`] hands out the pair whose retry is due ([`Pick::retry`]),
//! starting [`RETRY_FIRST_US`] after it filled and doubling up to [`RETRY_MAX_US`] while it
//! stays full. A retry whose `connect()` gets a port clears the pair
//! ([`SourcePool::mark_ok`]); one that gets `EADDRNOTAVAIL` again is marked full again with
//! the next back-off. A pair is only retried when its target has no free pair left, so
//! retries never take turns from pairs that still have ports.
//!
//! [`SourcePool::exhausted`] is true while every (source, target) pair is full; the shard
//! then opens nothing until a retry is due, and the live line says `SOURCE PORTS EXHAUSTED
//! (retrying, N retries)`. A pair that can never work (an IPv6 source for an IPv4 target) is
//! [`SourcePool::mark_unusable`]: full for good, never retried.
//!
//! With no source addresses the kernel chooses the source; the pool then has one virtual
//! entry, "kernel", which can also become full (ephemeral ports exhausted for a target).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;

/// First retry of a full pair, this long after it filled (µs).
pub const RETRY_FIRST_US: u64 = 200_000;
/// Longest wait between two retries of a pair that stays full (µs): a pair whose ports came
/// free is found within this long.
pub const RETRY_MAX_US: u64 = 5_000_000;

/// What the pool hands out: the index of the source (for accounting) and the address to bind
/// (`None`: let the kernel choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub index: usize,
    pub addr: Option<IpAddr>,
    /// The pair was full and this is a retry after its back-off: report the outcome with
    /// [`SourcePool::mark_ok`] or [`SourcePool::mark_full`].
    pub retry: bool,
}

/// Back-off state of one full pair.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    /// When the next retry is due (µs on the shard's clock).
    due_us: u64,
    /// The wait that led to `due_us` (µs); doubled on each failed retry.
    wait_us: u64,
    /// Full for good (never retried).
    permanent: bool,
}

/// Round-robin source addresses with per-(source, target) exhaustion and retry.
#[derive(Debug, Clone)]
pub struct SourcePool {
    addrs: Vec<IpAddr>,
    targets: usize,
    next: usize,
    /// `full[source * targets + target]`.
    full: Vec<bool>,
    /// Number of full sources per target.
    full_count: Vec<usize>,
    /// Back-off of each full pair, by `source * targets + target`.
    backoff: HashMap<usize, Backoff>,
    /// Per target: retries by due time (`(due_us, source)`); entries whose pair was cleared or
    /// re-armed since are stale and skipped.
    due: Vec<BinaryHeap<Reverse<(u64, usize)>>>,
}

impl SourcePool {
    /// A pool over `addrs` (empty: the kernel chooses) for `targets` destinations; the
    /// round-robin cursor starts at `start`.
    pub fn new(addrs: Vec<IpAddr>, targets: usize, start: usize) -> Self {
        let n = addrs.len().max(1);
        SourcePool {
            next: start % n,
            full: vec![false; n * targets],
            full_count: vec![0; targets],
            backoff: HashMap::new(),
            due: vec![BinaryHeap::new(); targets],
            addrs,
            targets,
        }
    }

    /// Number of sources (1 when the kernel chooses).
    pub fn len(&self) -> usize {
        self.addrs.len().max(1)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    fn pick_at(&self, index: usize, retry: bool) -> Pick {
        Pick {
            index,
            addr: self.addrs.get(index).copied(),
            retry,
        }
    }

    /// Next source for `target` at time `now_us`: round robin over the sources that still
    /// have ports; when all are full, the pair whose retry is due (`retry` set). `None` when
    /// nothing can be tried now.
    pub fn pick(&mut self, target: usize, now_us: u64) -> Option<Pick> {
        let n = self.len();
        if self.full_count[target] < n {
            for _ in 0..n {
                let i = self.next;
                self.next = (self.next + 1) % n;
                if !self.full[i * self.targets + target] {
                    return Some(self.pick_at(i, false));
                }
            }
        }
        self.due_retry(target, now_us)
    }

    /// Pops the retry of `target` that is due at `now_us`, skipping stale entries. The pair
    /// stays full; its next retry is armed at once (as if this one failed), so an attempt
    /// that ends neither in [`mark_ok`](Self::mark_ok) nor in [`mark_full`](Self::mark_full)
    /// is still retried later.
    fn due_retry(&mut self, target: usize, now_us: u64) -> Option<Pick> {
        while let Some(&Reverse((due_us, source))) = self.due[target].peek() {
            let cell = source * self.targets + target;
            let live = self
                .backoff
                .get(&cell)
                .is_some_and(|b| !b.permanent && b.due_us == due_us);
            if !live || !self.full[cell] {
                self.due[target].pop();
                continue;
            }
            if due_us > now_us {
                return None;
            }
            self.due[target].pop();
            self.arm(source, target, now_us);
            return Some(self.pick_at(source, true));
        }
        None
    }

    /// Schedules the next retry of a full pair: the first after [`RETRY_FIRST_US`], then
    /// twice the previous wait, at most [`RETRY_MAX_US`].
    fn arm(&mut self, source: usize, target: usize, now_us: u64) {
        let cell = source * self.targets + target;
        let b = self.backoff.entry(cell).or_insert(Backoff {
            due_us: 0,
            wait_us: 0,
            permanent: false,
        });
        if b.permanent {
            return;
        }
        b.wait_us = if b.wait_us == 0 {
            RETRY_FIRST_US
        } else {
            (b.wait_us * 2).min(RETRY_MAX_US)
        };
        b.due_us = now_us + b.wait_us;
        self.due[target].push(Reverse((b.due_us, source)));
    }

    fn set_full(&mut self, cell: usize, target: usize) {
        if !self.full[cell] {
            self.full[cell] = true;
            self.full_count[target] += 1;
        }
    }

    /// Record that `source` has no free port for `target` (`EADDRNOTAVAIL`) at `now_us`.
    /// Marking a pair that is already full changes nothing: a failed retry's next retry was
    /// armed, with the doubled wait, when the retry was picked.
    pub fn mark_full(&mut self, source: usize, target: usize, now_us: u64) {
        let cell = source * self.targets + target;
        if !self.full[cell] {
            self.backoff.remove(&cell);
            self.set_full(cell, target);
            self.arm(source, target, now_us);
        }
    }

    /// Record that `source` can never connect to `target` (address families differ): full
    /// for good, never retried.
    pub fn mark_unusable(&mut self, source: usize, target: usize) {
        let cell = source * self.targets + target;
        self.set_full(cell, target);
        self.backoff.insert(
            cell,
            Backoff {
                due_us: u64::MAX,
                wait_us: 0,
                permanent: true,
            },
        );
    }

    /// Record that a retried pair got a port: it is open for picks again, and its back-off
    /// starts over.
    pub fn mark_ok(&mut self, source: usize, target: usize) {
        let cell = source * self.targets + target;
        if self.backoff.get(&cell).is_some_and(|b| b.permanent) {
            return;
        }
        if self.full[cell] {
            self.full[cell] = false;
            self.full_count[target] -= 1;
        }
        self.backoff.remove(&cell);
    }

    /// True when `target` cannot take any more connections from any source right now.
    pub fn target_full(&self, target: usize) -> bool {
        self.full_count[target] >= self.len()
    }

    /// True when no (source, target) pair has ports left (retries may still find some).
    pub fn exhausted(&self) -> bool {
        (0..self.targets).all(|t| self.target_full(t))
    }

    /// The earliest time (µs) a retry of a full pair of `target` is due, if any.
    pub fn next_retry(&self, target: usize) -> Option<u64> {
        self.due[target]
            .iter()
            .filter(|Reverse((due, source))| {
                self.backoff
                    .get(&(source * self.targets + target))
                    .is_some_and(|b| !b.permanent && b.due_us == *due)
            })
            .map(|Reverse((due, _))| *due)
            .min()
    }

    /// Address labels for the report, in pool order.
    pub fn labels(&self) -> Vec<String> {
        if self.addrs.is_empty() {
            vec!["kernel".to_string()]
        } else {
            self.addrs.iter().map(|a| a.to_string()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn round_robin_skips_full_pairs() {
        let mut p = SourcePool::new(vec![ip("127.0.0.2"), ip("127.0.0.3")], 2, 0);
        assert_eq!(p.pick(0, 0).unwrap().index, 0);
        assert_eq!(p.pick(0, 0).unwrap().index, 1);
        p.mark_full(0, 0, 0);
        assert_eq!(p.pick(0, 0).unwrap().index, 1);
        assert_eq!(p.pick(0, 0).unwrap().index, 1);
        // Target 1 still has both.
        assert_eq!(p.pick(1, 0).unwrap().index, 0);
        p.mark_full(1, 0, 0);
        assert!(p.pick(0, 0).is_none(), "no retry is due yet");
        assert!(p.target_full(0));
        assert!(!p.exhausted());
        p.mark_full(0, 1, 0);
        p.mark_full(1, 1, 0);
        p.mark_full(1, 1, 0); // idempotent
        assert!(p.exhausted());
    }

    #[test]
    fn kernel_choice_is_one_virtual_source() {
        let mut p = SourcePool::new(vec![], 1, 3);
        assert_eq!(
            p.pick(0, 0),
            Some(Pick {
                index: 0,
                addr: None,
                retry: false
            })
        );
        p.mark_full(0, 0, 0);
        assert!(p.exhausted());
        assert_eq!(p.labels(), vec!["kernel"]);
    }

    #[test]
    fn a_full_pair_is_retried_with_back_off_until_it_gets_a_port() {
        let mut p = SourcePool::new(vec![ip("127.0.0.2")], 1, 0);
        p.mark_full(0, 0, 1_000);
        assert!(p.exhausted());
        assert_eq!(p.next_retry(0), Some(1_000 + RETRY_FIRST_US));
        assert!(p.pick(0, 1_000 + RETRY_FIRST_US - 1).is_none());
        // Due: handed out once as a retry, then nothing until the next back-off.
        let mut now = 1_000 + RETRY_FIRST_US;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let pick = p.pick(0, now).expect("retry due");
            assert!(pick.retry);
            assert!(p.pick(0, now).is_none(), "one retry per back-off");
            p.mark_full(0, 0, now); // still no port
            let next = p.next_retry(0).unwrap();
            waits.push(next - now);
            now = next;
        }
        assert_eq!(
            waits,
            vec![
                400_000, 800_000, 1_600_000, 3_200_000, 5_000_000, 5_000_000, 5_000_000, 5_000_000
            ]
        );
        assert!(p.exhausted());
        // The ports came free: the retry succeeds and the pair is ordinary again.
        let pick = p.pick(0, now).unwrap();
        assert!(pick.retry);
        p.mark_ok(0, 0);
        assert!(!p.exhausted());
        assert_eq!(p.next_retry(0), None);
        let pick = p.pick(0, now).unwrap();
        assert!(!pick.retry);
        // Full again later: the back-off starts over.
        p.mark_full(0, 0, now);
        assert_eq!(p.next_retry(0), Some(now + RETRY_FIRST_US));
    }

    #[test]
    fn a_retry_without_an_answer_is_retried_again() {
        let mut p = SourcePool::new(vec![ip("127.0.0.2")], 1, 0);
        p.mark_full(0, 0, 0);
        assert!(p.pick(0, RETRY_FIRST_US).unwrap().retry);
        // Neither mark_ok nor mark_full (the attempt failed for another reason).
        assert_eq!(p.next_retry(0), Some(RETRY_FIRST_US + 2 * RETRY_FIRST_US));
        assert!(p.pick(0, 3 * RETRY_FIRST_US).unwrap().retry);
    }

    #[test]
    fn retries_wait_while_another_source_has_ports() {
        let mut p = SourcePool::new(vec![ip("127.0.0.2"), ip("127.0.0.3")], 1, 0);
        p.mark_full(0, 0, 0);
        for _ in 0..4 {
            let pick = p.pick(0, 10 * RETRY_MAX_US).unwrap();
            assert_eq!((pick.index, pick.retry), (1, false));
        }
        p.mark_full(1, 0, 10 * RETRY_MAX_US);
        // Source 0's retry is long due; source 1's is not.
        let pick = p.pick(0, 10 * RETRY_MAX_US).unwrap();
        assert_eq!((pick.index, pick.retry), (0, true));
        assert!(p.pick(0, 10 * RETRY_MAX_US).is_none());
    }

    #[test]
    fn unusable_pairs_are_never_retried() {
        let mut p = SourcePool::new(vec![ip("::1")], 1, 0);
        p.mark_unusable(0, 0);
        assert!(p.exhausted());
        assert!(p.pick(0, u64::MAX / 2).is_none());
        assert_eq!(p.next_retry(0), None);
        p.mark_ok(0, 0);
        assert!(p.exhausted(), "mark_ok does not revive an unusable pair");
    }
}
