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
//! pool marks it full and the next pick skips it. When every source is full for every target,
//! [`SourcePool::exhausted`] is true and the shard stops opening — the report says so
//! plainly rather than spinning on a failing syscall.
//!
//! With no source addresses the kernel chooses the source; the pool then has one virtual
//! entry, "kernel", which can also become full (ephemeral ports exhausted for a target).

use std::net::IpAddr;

/// What the pool hands out: the index of the source (for accounting) and the address to bind
/// (`None`: let the kernel choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub index: usize,
    pub addr: Option<IpAddr>,
}

/// Round-robin source addresses with per-(source, target) exhaustion.
#[derive(Debug, Clone)]
pub struct SourcePool {
    addrs: Vec<IpAddr>,
    targets: usize,
    next: usize,
    /// `full[source * targets + target]`.
    full: Vec<bool>,
    /// Number of full sources per target.
    full_count: Vec<usize>,
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

    /// Next source that still has ports for `target`, round robin. `None` if all are full.
    pub fn pick(&mut self, target: usize) -> Option<Pick> {
        let n = self.len();
        if self.full_count[target] >= n {
            return None;
        }
        for _ in 0..n {
            let i = self.next;
            self.next = (self.next + 1) % n;
            if !self.full[i * self.targets + target] {
                return Some(Pick {
                    index: i,
                    addr: self.addrs.get(i).copied(),
                });
            }
        }
        None
    }

    /// Record that `source` has no free port for `target`.
    pub fn mark_full(&mut self, source: usize, target: usize) {
        let cell = &mut self.full[source * self.targets + target];
        if !*cell {
            *cell = true;
            self.full_count[target] += 1;
        }
    }

    /// True when `target` cannot take any more connections from any source.
    pub fn target_full(&self, target: usize) -> bool {
        self.full_count[target] >= self.len()
    }

    /// True when no (source, target) pair has ports left.
    pub fn exhausted(&self) -> bool {
        (0..self.targets).all(|t| self.target_full(t))
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
        assert_eq!(p.pick(0).unwrap().index, 0);
        assert_eq!(p.pick(0).unwrap().index, 1);
        p.mark_full(0, 0);
        assert_eq!(p.pick(0).unwrap().index, 1);
        assert_eq!(p.pick(0).unwrap().index, 1);
        // Target 1 still has both.
        assert_eq!(p.pick(1).unwrap().index, 0);
        p.mark_full(1, 0);
        assert!(p.pick(0).is_none());
        assert!(p.target_full(0));
        assert!(!p.exhausted());
        p.mark_full(0, 1);
        p.mark_full(1, 1);
        p.mark_full(1, 1); // idempotent
        assert!(p.exhausted());
    }

    #[test]
    fn kernel_choice_is_one_virtual_source() {
        let mut p = SourcePool::new(vec![], 1, 3);
        assert_eq!(
            p.pick(0),
            Some(Pick {
                index: 0,
                addr: None
            })
        );
        p.mark_full(0, 0);
        assert!(p.exhausted());
        assert_eq!(p.labels(), vec!["kernel"]);
    }
}
