//! Admission and assignment: hellos (new agents and agents resuming after a lost link),
//! the split of the plan once N agents are in, and a warning when an agent's share exceeds
//! its source addresses' port budget.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{ClusterError, Phase, Slot, State};
use crate::cluster::split::{self, AgentCapacity, Share};
use crate::cluster::wire::{Assignment, CoordMsg, Hello, PROTOCOL_VERSION};
use crate::metrics::{Gauges, Snapshot, SourceCounts};

impl State<'_> {
    pub(super) fn on_hello(
        &mut self,
        conn: u64,
        peer: SocketAddr,
        hello: Hello,
        out: mpsc::UnboundedSender<CoordMsg>,
    ) -> Result<(), ClusterError> {
        let refuse = |reason: String| {
            let _ = out.send(CoordMsg::Refused { reason });
        };
        if let Some(r) = &hello.resume {
            let run_id = self.run_id.clone();
            let Some(slot) = self
                .slots
                .iter_mut()
                .find(|s| s.id == r.agent_id && r.run_id == run_id && s.lost.is_none())
            else {
                refuse(format!(
                    "cannot resume: this coordinator does not know agent {} of run {} (it runs {})",
                    r.agent_id, r.run_id, run_id
                ));
                return Ok(());
            };
            slot.conn = Some(conn);
            slot.out = Some(out);
            slot.last_heard = Instant::now();
            slot.send(CoordMsg::Welcome {
                protocol: PROTOCOL_VERSION,
                agent_id: slot.id,
                run_id,
                plan_hash: self.plan_hash.clone(),
                last_seq: slot.last_seq,
            });
            if self.cfg.verbose {
                eprintln!("agent {} is back (from {peer})", slot.label());
            }
            return Ok(());
        }
        if self.phase != Phase::Joining || self.slots.len() >= self.cfg.agents {
            refuse(format!(
                "this run already has its {} agent(s) and {}",
                self.cfg.agents,
                if self.phase == Phase::Joining {
                    "is about to start"
                } else {
                    "has started"
                }
            ));
            return Ok(());
        }
        let id = self.slots.len() + 1;
        let slot = Slot {
            id,
            conn: Some(conn),
            out: Some(out),
            info: hello.agent,
            share: None,
            assigned_at: None,
            ready: false,
            threads: 0,
            rss_before: 0,
            last_seq: 0,
            totals: Snapshot::default(),
            gauges: Gauges::default(),
            peak_open: 0,
            iv_established: 0,
            finished: false,
            lost: None,
            last_heard: Instant::now(),
            source_index: Vec::new(),
        };
        slot.send(CoordMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            agent_id: id,
            run_id: self.run_id.clone(),
            plan_hash: self.plan_hash.clone(),
            last_seq: 0,
        });
        if self.cfg.verbose {
            let i = &slot.info;
            eprintln!(
                "agent {} joined from {peer}: host {}, {} core(s), RLIMIT_NOFILE {} → up to {} connections{}",
                slot.label(),
                i.host,
                i.cores,
                i.fd_soft,
                i.max_connections,
                if i.sources.is_empty() {
                    String::new()
                } else {
                    format!(", own sources {}", join_ips(&i.sources))
                }
            );
        }
        self.slots.push(slot);
        if self.slots.len() == self.cfg.agents {
            self.assign()?;
        }
        Ok(())
    }

    /// Split the plan and send every agent its assignment.
    pub(super) fn assign(&mut self) -> Result<(), ClusterError> {
        let caps: Vec<AgentCapacity> = self
            .slots
            .iter()
            .map(|s| AgentCapacity {
                host: s.info.host.clone(),
                max_connections: s.info.max_connections,
                own_sources: s.info.sources.clone(),
            })
            .collect();
        let shares = match split::split(self.plan.peak_connections(), &self.plan.sources, &caps) {
            Ok(s) => s,
            Err(e) => {
                self.broadcast_stop(&e.to_string());
                return Err(e.into());
            }
        };
        let now = Instant::now();
        self.assigned_at = now;
        // Global per-source rows: the plan's addresses first, then agents' own.
        let mut labels: Vec<String> = Vec::new();
        for (slot, share) in self.slots.iter_mut().zip(shares) {
            let pool = crate::engine::source::SourcePool::new(share.sources.clone(), 1, 0);
            slot.source_index = pool
                .labels()
                .into_iter()
                .map(|l| match labels.iter().position(|x| *x == l) {
                    Some(i) => i,
                    None => {
                        labels.push(l);
                        labels.len() - 1
                    }
                })
                .collect();
            let msg = CoordMsg::Assign(Box::new(Assignment {
                agent_id: slot.id,
                plan: self.wire.clone(),
                plan_hash: self.plan_hash.clone(),
                slice_lo: share.slice.lo,
                slice_hi: share.slice.hi,
                connections: share.connections,
                sources: share.sources.clone(),
                snapshot_every: self.snapshot_every,
            }));
            slot.send(msg);
            if self.cfg.verbose {
                eprintln!(
                    "agent {}: {} connection(s) at the peak{}",
                    slot.label(),
                    share.connections,
                    if share.sources.is_empty() {
                        String::new()
                    } else {
                        format!(" from {}", join_ips(&share.sources))
                    }
                );
            }
            warn_port_budget(slot, &share, self.plan.targets.len());
            slot.share = Some(share);
            slot.assigned_at = Some(now);
        }
        self.sources = labels
            .into_iter()
            .map(|l| (l, SourceCounts::default()))
            .collect();
        self.phase = Phase::Assigned;
        Ok(())
    }
}

/// Warn when an agent's connections exceed its source addresses' port budget.
fn warn_port_budget(slot: &Slot, share: &Share, targets: usize) {
    let Some((lo, hi)) = slot.info.port_range else {
        return;
    };
    let ports = u64::from(hi.saturating_sub(lo)) + 1;
    let addrs = share.sources.len().max(1) as u64;
    let budget = ports * addrs * targets.max(1) as u64;
    if share.connections > budget {
        eprintln!(
            "warning: agent {} gets {} connections but {} source address(es) × {} target(s) × {} \
             ephemeral ports allow about {}; give it more source addresses (--source-ip) or widen \
             net.ipv4.ip_local_port_range",
            slot.label(),
            share.connections,
            addrs,
            targets,
            ports,
            budget
        );
    }
}

fn join_ips(ips: &[std::net::IpAddr]) -> String {
    let v: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    v.join(",")
}
