//! The assignment and the start: an assignment is checked against this host (plan hash,
//! descriptor capacity, bindable source addresses, preflight) before the agent answers
//! `ready`; at `start` the engine runs the slice on its own thread from the common instant,
//! its observer channel bridged into the control loop by a forwarding thread.

use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::{Agent, AgentError};
use crate::cluster::wire::{AgentMsg, Assignment, Resume, from_unix_ns};
use crate::engine::{self, EngineError, RunOptions};
use crate::plan::{Plan, Slice};
use crate::system::preflight;

impl Agent<'_> {
    /// Check and accept an assignment: plan hash, capacity, source addresses.
    pub(super) async fn on_assign(&mut self, a: Box<Assignment>) -> Result<(), AgentError> {
        self.agent_id = a.agent_id;
        let threads = self.cfg.threads.unwrap_or_else(crate::system::cores).max(1);
        let check = || -> Result<(Plan, Vec<String>), String> {
            if a.plan.hash() != a.plan_hash {
                return Err(format!(
                    "plan hash mismatch: received {}, computed {}",
                    a.plan_hash,
                    a.plan.hash()
                ));
            }
            for t in &a.plan.targets {
                self.cfg.allow.check(&t.url, t.addr)?;
            }
            let cap = self.hello.agent.max_connections;
            if a.connections > cap {
                return Err(format!(
                    "assigned {} connections but this host may hold {cap} (RLIMIT_NOFILE {})",
                    a.connections, self.hello.agent.fd_soft
                ));
            }
            for src in &a.sources {
                crate::plan::source_spec::check_bindable(*src).map_err(|e| {
                    format!(
                        "source address {src} cannot be bound on host {}: {e}; give this agent \
                         its own --source-ip, or leave --source-ip out on the coordinator",
                        self.hello.agent.host
                    )
                })?;
            }
            // The agent runs its share as a plan of its own (see `slice_view`).
            let mut plan = crate::cluster::slice_view(
                &a.plan
                    .to_plan(a.sources.clone(), threads)
                    .map_err(|e| e.to_string())?,
                Slice {
                    lo: a.slice_lo,
                    hi: a.slice_hi,
                },
            );
            // `{agent}` and `{process}` of this agent (ids count from 1, `{process}` from 0).
            plan.identity = crate::plan::data::Identity {
                agent: self.hello.agent.name.clone(),
                process: a.agent_id.saturating_sub(1) as u64,
            };
            let mut warnings = Vec::new();
            if self.cfg.preflight {
                warnings = preflight::gate(&plan, crate::system::Role::Loadgen).map_err(|r| {
                    format!(
                        "preflight checks on host {} failed:\n{r}",
                        self.hello.agent.host
                    )
                })?;
            }
            Ok((plan, warnings))
        };
        match check() {
            Ok((plan, warnings)) => {
                self.say(format!(
                    "assigned {} connection(s) at the peak (slice {:.4}..{:.4}){}",
                    a.connections,
                    a.slice_lo,
                    a.slice_hi,
                    if a.sources.is_empty() {
                        String::new()
                    } else {
                        format!(", {} source address(es)", a.sources.len())
                    }
                ));
                let ready = AgentMsg::Ready {
                    plan_hash: a.plan_hash.clone(),
                    threads,
                    rss_before_bytes: crate::metrics::rss_bytes().unwrap_or(0),
                    warnings,
                };
                self.assigned = Some((plan, a));
                self.send(&ready).await;
                Ok(())
            }
            Err(reason) => {
                self.send(&AgentMsg::Failed {
                    reason: reason.clone(),
                })
                .await;
                Err(AgentError::Assignment(reason))
            }
        }
    }

    /// Start the engine at the common instant.
    pub(super) fn on_start(&mut self, at_unix_ns: u64) -> Result<(), AgentError> {
        let Some((plan, a)) = self.assigned.take() else {
            return Err(AgentError::Protocol("start before assign".into()));
        };
        let at = from_unix_ns(at_unix_ns);
        let now = Instant::now();
        let start = match at.duration_since(SystemTime::now()) {
            Ok(ahead) => now + ahead,
            Err(_) => now, // our clock is ahead: start at once
        };
        let (obs_tx, obs_rx) = std::sync::mpsc::channel();
        let (fwd_tx, fwd_rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("wsscale-agent-fwd".into())
            .spawn(move || {
                for item in obs_rx {
                    if fwd_tx.send(item).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| AgentError::Engine(EngineError::Thread(e)))?;
        let mut opts = RunOptions::new(self.stop.clone());
        opts.live = self.cfg.sinks.with(self.cfg.live.sink());
        opts.snapshot_every = a.snapshot_every;
        opts.start_at = Some(start);
        opts.observer = Some(obs_tx);
        let handle = std::thread::Builder::new()
            .name("wsscale-agent-engine".into())
            .spawn(move || engine::run(&plan, &opts))
            .map_err(|e| AgentError::Engine(EngineError::Thread(e)))?;
        self.engine = Some(handle);
        self.snapshots = Some(fwd_rx);
        self.hello.resume = Some(Resume {
            run_id: self.run_id.clone(),
            agent_id: self.agent_id,
        });
        self.say("started");
        Ok(())
    }
}
