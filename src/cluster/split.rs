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
//! list is laid out over the other agents *on the same host* (each host group gets the whole
//! list, since each host has its own addresses) by
//! [`crate::system::preflight::spread::spread`], which keeps the load of every (source,
//! destination) pair as low as the addresses allow: disjoint contiguous blocks (in proportion
//! to the agents' connections, at least one address each) when that is as even as it gets,
//! else groups of agents sharing a block, else every agent using every address. The kernel's
//! port space is per (source, destination) pair and host-wide, so agents that share an
//! address share its ports; what matters is that no pair carries more than half the port
//! range, and preflight's `source_split` check reports exactly this layout. For 6 agents and
//! 8 addresses, two groups of 3 agents share 4 addresses each: 12,500 of 100,000 connections
//! per pair, where disjoint blocks would put 16,667 on the 4 agents with a single address.

use std::net::IpAddr;

use crate::plan::Slice;
use crate::system::preflight::spread::spread;

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
        let weights: Vec<u64> = members.iter().map(|&i| connections[i]).collect();
        let layout = spread(plan_sources.len(), &weights);
        for (&i, range) in members.iter().zip(layout.ranges) {
            out[i] = plan_sources[range].to_vec();
        }
    }
    out
}
