//! Splitting a plan over agents: who holds how many connections, from which addresses.
//!
//! **Connections** go in proportion to each agent's capacity (the connections its
//! descriptor limit allows, see [`crate::system::max_connections_for_fds`]). Every agent gets
//! a [`Slice`] of every stage target; the slices partition `[0, 1)`, so at any instant the
//! agents' counts sum to exactly the global target. The slice boundaries are placed on whole
//! connections *at the peak* (`lo = floor(peak · before / total) / peak`), so at the peak an
//! agent never gets more than its capacity. More agents than connections is fine: some
//! agents then hold nothing (and report zeros).
//!
//! **Source addresses**: an agent that brought its own `--source-ip` keeps it. The plan's
//! list is split *disjointly* among the other agents *on the same host* (each host group
//! gets the whole list, since each host has its own addresses): contiguous blocks, at least
//! one address each, the rest in proportion to the agents' connections (largest remainder).
//! With fewer addresses than agents on a host, neighbouring agents share an address (the
//! kernel still picks distinct ports per 4-tuple; only the per-address port budget is
//! shared).

use std::net::IpAddr;

use crate::plan::Slice;

/// What the splitter needs to know about one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCapacity {
    pub host: String,
    /// Connections the agent can hold.
    pub max_connections: u64,
    /// Source addresses the agent brought itself (empty: give it some of the plan's).
    pub own_sources: Vec<IpAddr>,
}

/// One agent's part.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub slice: Slice,
    /// Connections held at the plan's peak.
    pub connections: u64,
    pub sources: Vec<IpAddr>,
}

/// Why a plan cannot be split over the agents at hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("no agents to run the plan on")]
    NoAgents,
    #[error(
        "the plan needs {needed} connections at its peak, but the {agents} agent(s) can hold \
         {available} together (each agent: descriptor limit minus {headroom} for itself). Add \
         agents — about {more} more of the largest size ({largest} connections) — or raise \
         their RLIMIT_NOFILE (`wsscale tune` shows how)",
        headroom = crate::system::FD_HEADROOM
    )]
    NotEnoughCapacity {
        needed: u64,
        available: u64,
        agents: usize,
        largest: u64,
        more: u64,
    },
}

/// Split a plan whose peak is `peak` connections over `agents`.
pub fn split(
    peak: u64,
    plan_sources: &[IpAddr],
    agents: &[AgentCapacity],
) -> Result<Vec<Share>, SplitError> {
    if agents.is_empty() {
        return Err(SplitError::NoAgents);
    }
    let total: u64 = agents.iter().map(|a| a.max_connections).sum();
    if peak > total {
        let largest = agents.iter().map(|a| a.max_connections).max().unwrap_or(0);
        return Err(SplitError::NotEnoughCapacity {
            needed: peak,
            available: total,
            agents: agents.len(),
            largest,
            more: (peak - total).div_ceil(largest.max(1)),
        });
    }
    let slices = slices(peak, agents.iter().map(|a| a.max_connections), total);
    let connections: Vec<u64> = slices.iter().map(|s| s.count(peak as f64)).collect();
    let sources = assign_sources(plan_sources, agents, &connections);
    Ok(slices
        .into_iter()
        .zip(connections)
        .zip(sources)
        .map(|((slice, connections), sources)| Share {
            slice,
            connections,
            sources,
        })
        .collect())
}

/// Slices in proportion to `weights`, with boundaries on whole connections at `peak`.
fn slices(peak: u64, weights: impl Iterator<Item = u64>, total: u64) -> Vec<Slice> {
    let weights: Vec<u64> = weights.collect();
    let n = weights.len();
    if peak == 0 || total == 0 {
        return (0..n).map(|i| Slice::nth(i, n)).collect();
    }
    let mut out = Vec::with_capacity(n);
    let mut cum: u128 = 0;
    let mut lo = 0.0;
    for (i, w) in weights.iter().enumerate() {
        cum += u128::from(*w);
        let hi = if i + 1 == n {
            1.0
        } else {
            let boundary = (u128::from(peak) * cum / u128::from(total)) as u64;
            boundary as f64 / peak as f64
        };
        out.push(Slice { lo, hi });
        lo = hi;
    }
    out
}

/// Each agent's source addresses (see the module docs).
fn assign_sources(
    plan_sources: &[IpAddr],
    agents: &[AgentCapacity],
    connections: &[u64],
) -> Vec<Vec<IpAddr>> {
    let mut out: Vec<Vec<IpAddr>> = agents.iter().map(|a| a.own_sources.clone()).collect();
    if plan_sources.is_empty() {
        return out;
    }
    // Host groups, in order of first appearance.
    let mut hosts: Vec<&str> = Vec::new();
    for a in agents {
        if !hosts.contains(&a.host.as_str()) {
            hosts.push(&a.host);
        }
    }
    for host in hosts {
        let members: Vec<usize> = (0..agents.len())
            .filter(|&i| agents[i].host == host && agents[i].own_sources.is_empty())
            .collect();
        let k = members.len();
        if k == 0 {
            continue;
        }
        let m = plan_sources.len();
        if m < k {
            for (j, &i) in members.iter().enumerate() {
                out[i] = vec![plan_sources[j * m / k]];
            }
            continue;
        }
        let weights: Vec<u64> = members.iter().map(|&i| connections[i]).collect();
        let extra = apportion(m - k, &weights);
        let mut at = 0;
        for (j, &i) in members.iter().enumerate() {
            let len = 1 + extra[j];
            out[i] = plan_sources[at..at + len].to_vec();
            at += len;
        }
    }
    out
}

/// Largest-remainder apportionment of `n` items by `weights` (equal when all are 0).
fn apportion(n: usize, weights: &[u64]) -> Vec<usize> {
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
    // Largest remainder first; ties to the earlier agent.
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
}
