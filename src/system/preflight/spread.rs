//! How processes on one host share the `--source-ip` addresses (`--processes N`, or agents
//! on one host): the arithmetic that [`crate::cluster::split`] uses to hand out addresses and
//! that preflight's `source_split` check reports. No I/O.
//!
//! The kernel's port space is per (source address, destination) pair and host-wide: two
//! processes that use the same address share its ports. Each process spreads its
//! connections evenly over its addresses (round robin), so the load of an address is the sum,
//! over the processes that use it, of their connections divided by their address count. A
//! pair that holds more than half the port range makes `connect()` slow (it scans used
//! ports), so the split minimizes the largest load:
//!
//! 1. **Disjoint blocks** (at least as many addresses as processes): contiguous blocks in
//!    proportion to the processes' connections, at least one address each.
//! 2. **Groups**: with `g = gcd(addresses, processes)`, `g` groups of `processes/g` processes
//!    each share `addresses/g` addresses. With equal shares every address then carries the
//!    same load: connections ÷ addresses.
//! 3. **Shared**: every process uses every address (the same even load for any shares).
//!
//! The first layout whose largest load is the smallest wins, so sharing happens only when it
//! spreads the load better. For 6 processes and 8 addresses with 100,000 connections, disjoint
//! blocks leave four processes with one address each (16,667 connections on one pair); two
//! groups of 3 processes sharing 4 addresses give every pair 12,500.

use std::ops::Range;

/// How the addresses were laid out over the processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Each process has a block of its own.
    Disjoint,
    /// `groups` groups of processes, each sharing a block of addresses.
    Groups { groups: usize },
    /// Every process uses every address.
    Shared,
}

/// The addresses of each process, as index ranges into the address list, with the layout
/// and the largest load of an address (connections).
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub layout: Layout,
    pub ranges: Vec<Range<usize>>,
    /// The most connections one address carries (over all destinations).
    pub max_load: f64,
}

impl Spread {
    /// `"2 groups of 3 processes sharing 4 each"`, `"2 per process"`, `"all shared by 6
    /// processes"`.
    pub fn describe(&self, addresses: usize) -> String {
        let k = self.ranges.len();
        match self.layout {
            Layout::Disjoint => {
                let lens: Vec<usize> = self.ranges.iter().map(Range::len).collect();
                let (lo, hi) = (
                    lens.iter().min().copied().unwrap_or(0),
                    lens.iter().max().copied().unwrap_or(0),
                );
                if lo == hi {
                    format!("{lo} per process")
                } else {
                    format!("{lo} to {hi} per process")
                }
            }
            Layout::Groups { groups } => format!(
                "{groups} groups of {} processes sharing {} each",
                k / groups,
                addresses / groups
            ),
            Layout::Shared => format!("all shared by {k} processes"),
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The largest load of an address when process `i` with `weights[i]` connections uses
/// `ranges[i]`.
pub fn max_load(addresses: usize, weights: &[u64], ranges: &[Range<usize>]) -> f64 {
    let mut load = vec![0f64; addresses];
    for (w, r) in weights.iter().zip(ranges) {
        if r.is_empty() {
            continue;
        }
        let each = *w as f64 / r.len() as f64;
        for l in &mut load[r.clone()] {
            *l += each;
        }
    }
    // Rounded to a millionth, so that 100,000 / 5 is 20,000 and not 20,000.000000004.
    (load.into_iter().fold(0.0, f64::max) * 1e6).round() / 1e6
}

/// Disjoint contiguous blocks in proportion to `weights`, at least one address each (needs
/// `addresses >= weights.len()`).
fn disjoint(addresses: usize, weights: &[u64]) -> Vec<Range<usize>> {
    let mut counts = apportion(addresses, weights);
    while let Some(zero) = counts.iter().position(|&c| c == 0) {
        // Take one from the process with the most (ties: the later one).
        let most = (0..counts.len())
            .max_by_key(|&i| counts[i])
            .expect("at least one process");
        counts[most] -= 1;
        counts[zero] += 1;
    }
    let mut at = 0;
    counts
        .into_iter()
        .map(|c| {
            let r = at..at + c;
            at = r.end;
            r
        })
        .collect()
}

/// `groups` groups of consecutive processes, group `j` sharing the `j`-th block of addresses.
fn grouped(addresses: usize, processes: usize, groups: usize) -> Vec<Range<usize>> {
    let (per_group, block) = (processes / groups, addresses / groups);
    (0..processes)
        .map(|i| {
            let j = i / per_group;
            j * block..(j + 1) * block
        })
        .collect()
}

/// Lays `addresses` out over processes with `weights` connections each (see the module
/// docs). Empty when there are no processes; with no addresses every range is empty.
pub fn spread(addresses: usize, weights: &[u64]) -> Spread {
    let k = weights.len();
    if k == 0 || addresses == 0 {
        return Spread {
            layout: Layout::Shared,
            ranges: vec![0..0; k],
            max_load: 0.0,
        };
    }
    let mut candidates = Vec::new();
    if addresses >= k {
        candidates.push((Layout::Disjoint, disjoint(addresses, weights)));
    }
    let g = gcd(addresses, k);
    // g == k (k divides the addresses) is the disjoint layout; g == 1 is the shared one.
    if g > 1 && g < k {
        candidates.push((Layout::Groups { groups: g }, grouped(addresses, k, g)));
    }
    candidates.push((Layout::Shared, vec![0..addresses; k]));
    let mut best: Option<Spread> = None;
    for (layout, ranges) in candidates {
        let load = max_load(addresses, weights, &ranges);
        // A later (more shared) layout must be better by more than the rounding of whole
        // connections (equal shares differ by one): at least one connection and 0.1 %.
        if best
            .as_ref()
            .is_none_or(|b| load < b.max_load - (0.001 * b.max_load).max(1.0))
        {
            best = Some(Spread {
                layout,
                ranges,
                max_load: load,
            });
        }
    }
    best.expect("the shared layout is always a candidate")
}

/// Largest-remainder apportionment of `n` items by `weights` (equal when all are 0).
pub fn apportion(n: usize, weights: &[u64]) -> Vec<usize> {
    let k = weights.len();
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let weights: Vec<u128> = if total == 0 {
        vec![1; k]
    } else {
        weights.iter().map(|&w| u128::from(w)).collect()
    };
    let total: u128 = weights.iter().sum();
    let mut out: Vec<usize> = weights
        .iter()
        .map(|w| (n as u128 * w / total) as usize)
        .collect();
    let mut rest = n - out.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..k).collect();
    // Largest remainder first; ties to the earlier process.
    order.sort_by_key(|&j| std::cmp::Reverse(n as u128 * weights[j] % total));
    for j in order {
        if rest == 0 {
            break;
        }
        out[j] += 1;
        rest -= 1;
    }
    out
}

/// Connections of each of `processes` equal processes holding `connections` together (the
/// shares `wsscale run --processes` gives its agents: whole connections, boundaries rounded
/// down).
pub fn equal_shares(connections: u64, processes: usize) -> Vec<u64> {
    let k = processes.max(1) as u128;
    let n = u128::from(connections);
    (0..k)
        .map(|i| ((n * (i + 1) / k) - (n * i / k)) as u64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_sums() {
        assert_eq!(apportion(5, &[1, 1, 1]), vec![2, 2, 1]);
        assert_eq!(apportion(0, &[3, 4]), vec![0, 0]);
        assert_eq!(apportion(4, &[0, 0]), vec![2, 2]);
        assert_eq!(apportion(10, &[1, 3]).iter().sum::<usize>(), 10);
    }

    #[test]
    fn equal_shares_sum_to_the_whole() {
        assert_eq!(equal_shares(100_000, 6).iter().sum::<u64>(), 100_000);
        assert_eq!(equal_shares(5, 3), vec![1, 2, 2]);
        assert_eq!(equal_shares(0, 2), vec![0, 0]);
    }
}
