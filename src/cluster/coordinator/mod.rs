//! The coordinator: admits N agents, splits the plan, starts them at one wall-clock instant,
//! merges their snapshots, and builds one [`RunOutcome`] with `agents[]`.
//!
//! One tokio task per agent connection (module `link`) turns frames into events; a single
//! loop owns all state (no locks): admission, the split, the start,
//! merging, heartbeats (with snapshot acknowledgements) every second, loss detection,
//! Ctrl-C and `--abort-on-fail`. Snapshots are merged into an engine
//! [`Aggregator`] indexed by agent — the same merge that adds up shards — so merged counts
//! are the sum of the agents' counts and merged histograms the histogram of all samples.
//! Memory figures are the sum of the agents' RSS (each snapshot carries its sender's).
//!
//! `admit` handles hellos and the split; `phase` the start, the periodic tick, loss
//! detection and stopping; `output` prints the per-agent live lines and assembles the merged
//! outcome.
//!
//! Per-source accounting is re-keyed by address: each agent counts per position in its own
//! pool, the coordinator adds those counts under the address they belong to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::link::{self, Event};

mod admit;
mod output;
mod phase;
use super::split::{Share, SplitError};
use super::wire::{AgentInfo, AgentMsg, CoordMsg, WirePlan};
use crate::metrics::Aggregator;
use crate::metrics::outcome::RunOutcome;
use crate::metrics::thresholds::AbortRule;
use crate::metrics::timeseries::ExtraSinks;
use crate::metrics::timeseries::TimeSeries;
use crate::metrics::{Gauges, Snapshot, SourceCounts};
use crate::plan::{Plan, Secret};
use crate::report::LiveMode;
use crate::report::prometheus::LiveMetrics;

/// How a coordinator behaves (the plan comes separately).
#[derive(Clone)]
pub struct CoordinatorConfig {
    /// Agents to wait for before starting.
    pub agents: usize,
    pub token: Secret,
    /// How long to wait for all agents to join.
    pub join_timeout: Duration,
    /// An agent not heard from for this long (link lost and not back) is declared lost.
    pub orphan_timeout: Duration,
    /// Stop the whole run when an agent is lost (default: carry on without it).
    pub abort_on_agent_loss: bool,
    /// Live output (a terminal gets plain lines too: one global line plus one per agent).
    pub live: LiveMode,
    /// How often agents send snapshots (default: the plan's interval, at most 1 s).
    pub snapshot_every: Option<Duration>,
    /// Time between the start message and the first stage.
    pub start_lead: Duration,
    /// Print agent admissions and the split to stderr.
    pub verbose: bool,
    /// TLS on the control link (`wss://`); `None`: plain `ws://`.
    pub tls: Option<crate::gateway::tls::ServerTls>,
    /// Receives the merged outcome so far every `every()` while the run goes on.
    pub checkpoint: Option<Arc<dyn crate::metrics::outcome::CheckpointSink>>,
    /// Sinks fed the merged view beside the live output (`--metrics-listen`, `--report-hdr`).
    pub sinks: ExtraSinks,
    /// The `--metrics-listen` metrics, for the per-agent series (also one of `sinks`).
    pub metrics: Option<Arc<LiveMetrics>>,
}

impl CoordinatorConfig {
    pub fn new(agents: usize, token: Secret) -> Self {
        CoordinatorConfig {
            agents,
            token,
            join_timeout: Duration::from_secs(300),
            orphan_timeout: Duration::from_secs(10),
            abort_on_agent_loss: false,
            live: LiveMode::Quiet,
            snapshot_every: None,
            start_lead: Duration::from_millis(500),
            verbose: false,
            tls: None,
            checkpoint: None,
            sinks: ExtraSinks::default(),
            metrics: None,
        }
    }
}

/// Why a distributed run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the control-plane runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "only {joined} of {expected} agents joined within {waited:?}; start the missing agents \
         with `wsscale agent --coordinator {url} --token-file FILE`, or lower --agents"
    )]
    NotEnoughAgents {
        joined: usize,
        expected: usize,
        waited: Duration,
        url: String,
    },
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error("agent {agent} cannot run its part: {reason}")]
    AgentFailed { agent: String, reason: String },
    #[error("agent {agent} left before the run started ({reason})")]
    AgentLeft { agent: String, reason: String },
    #[error("interrupted before the run started")]
    Interrupted,
    #[error("the plan has no target")]
    NoTarget,
    #[error("cannot start agent processes: {0}")]
    Spawn(std::io::Error),
    #[error("{0}")]
    Local(String),
}

/// A bound coordinator, ready to [`run`](Coordinator::run).
pub struct Coordinator {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    cfg: CoordinatorConfig,
}

impl Coordinator {
    /// Bind the control listener (port 0 allowed).
    pub fn bind(addr: SocketAddr, cfg: CoordinatorConfig) -> Result<Coordinator, ClusterError> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| ClusterError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ClusterError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ClusterError::Bind { addr, source })?;
        Ok(Coordinator {
            listener,
            local_addr,
            cfg,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL agents dial (`ws://ADDR/`, or `wss://ADDR/` with TLS on the link).
    pub fn url(&self) -> String {
        let scheme = if self.cfg.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/", self.local_addr)
    }

    /// Admit the agents, run `plan` on them, and return the merged outcome. `stop` (Ctrl-C)
    /// before the start cancels the run; after the start it ramps every agent down and
    /// still returns the merged outcome (marked interrupted).
    pub fn run(self, plan: &Plan, stop: Arc<AtomicBool>) -> Result<RunOutcome, ClusterError> {
        if plan.targets.is_empty() {
            return Err(ClusterError::NoTarget);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)?;
        let url = self.url();
        runtime.block_on(async move {
            let listener =
                tokio::net::TcpListener::from_std(self.listener).map_err(ClusterError::Runtime)?;
            let (events_tx, events_rx) = mpsc::unbounded_channel();
            let accept = tokio::spawn(link::accept_loop(
                listener,
                events_tx,
                self.cfg.token.clone(),
                self.cfg
                    .tls
                    .as_ref()
                    .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone())),
            ));
            let mut state = State::new(plan, self.cfg, url, stop, events_rx);
            let result = state.drive().await;
            accept.abort();
            state.flush().await;
            result
        })
    }
}

/// One admitted agent.
struct Slot {
    id: usize,
    conn: Option<u64>,
    out: Option<mpsc::UnboundedSender<CoordMsg>>,
    info: AgentInfo,
    share: Option<Share>,
    assigned_at: Option<Instant>,
    ready: bool,
    threads: usize,
    rss_before: u64,
    last_seq: u64,
    /// Counters and histograms over the run; gauges as last reported.
    totals: Snapshot,
    gauges: Gauges,
    peak_open: u64,
    /// Established / failed since the last per-agent live line.
    iv_established: u64,
    finished: bool,
    lost: Option<String>,
    last_heard: Instant,
    /// Global per-source index of each of the agent's pool positions.
    source_index: Vec<usize>,
}

impl Slot {
    fn label(&self) -> String {
        format!("{} ({})", self.id, self.info.name)
    }

    fn send(&self, msg: CoordMsg) {
        if let Some(out) = &self.out {
            let _ = out.send(msg);
        }
    }

    fn active(&self) -> bool {
        !self.finished && self.lost.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Joining,
    Assigned,
    Running,
    Stopping(Instant),
}

/// The coordinator's state, owned by one loop.
struct State<'a> {
    plan: &'a Plan,
    wire: WirePlan,
    plan_hash: String,
    cfg: CoordinatorConfig,
    url: String,
    stop: Arc<AtomicBool>,
    events: mpsc::UnboundedReceiver<Event>,
    run_id: String,
    slots: Vec<Slot>,
    phase: Phase,
    began: Instant,
    assigned_at: Instant,
    snapshot_every: Duration,
    next_heartbeat: Instant,
    // Running:
    start: Instant,
    started_at: SystemTime,
    agg: Option<Aggregator>,
    series: Option<TimeSeries>,
    next_agent_lines: Instant,
    next_checkpoint: Instant,
    sources: Vec<(String, SourceCounts)>,
    interrupted: bool,
    aborted_by_threshold: bool,
    abort_rule: Option<AbortRule>,
}

/// No hello within this long after the TCP connect: the connection is dropped.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

impl<'a> State<'a> {
    fn new(
        plan: &'a Plan,
        mut cfg: CoordinatorConfig,
        url: String,
        stop: Arc<AtomicBool>,
        events: mpsc::UnboundedReceiver<Event>,
    ) -> Self {
        let wire = WirePlan::from_plan(plan);
        let plan_hash = wire.hash();
        if cfg.live == LiveMode::Tty {
            // Several lines per interval: a self-updating single line does not fit.
            cfg.live = LiveMode::Lines;
        }
        let snapshot_every = cfg
            .snapshot_every
            .unwrap_or_else(|| plan.interval.min(Duration::from_secs(1)))
            .max(Duration::from_millis(10));
        let now = Instant::now();
        State {
            plan,
            wire,
            plan_hash,
            cfg,
            url,
            stop,
            events,
            run_id: super::random_token(),
            slots: Vec::new(),
            phase: Phase::Joining,
            began: now,
            assigned_at: now,
            snapshot_every,
            next_heartbeat: now + Duration::from_secs(1),
            start: now,
            started_at: SystemTime::now(),
            agg: None,
            series: None,
            next_agent_lines: now,
            next_checkpoint: now,
            sources: Vec::new(),
            interrupted: false,
            abort_rule: AbortRule::for_plan(plan),
            aborted_by_threshold: false,
        }
    }

    /// The main loop: until every agent finished or was lost.
    async fn drive(&mut self) -> Result<RunOutcome, ClusterError> {
        if self.cfg.verbose {
            eprintln!(
                "coordinator listening on {} — waiting for {} agent(s) (plan {})",
                self.url,
                self.cfg.agents,
                &self.plan_hash[..12]
            );
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_event(ev)?,
                    None => return Err(ClusterError::Runtime(std::io::Error::other("the accept loop ended"))),
                },
                _ = tick.tick() => {}
            }
            if let Some(done) = self.on_tick()? {
                return Ok(done);
            }
        }
    }

    /// Give links a moment to deliver their last messages (`bye`, `stop`).
    async fn flush(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.slots.iter().any(|s| s.conn.is_some()) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Event::Gone { conn, .. })) => {
                    if let Some(s) = self.slots.iter_mut().find(|s| s.conn == Some(conn)) {
                        s.conn = None;
                        s.out = None;
                    }
                }
                Ok(Some(Event::Joined { out, .. })) => {
                    let _ = out.send(CoordMsg::Refused {
                        reason: "the run is over".into(),
                    });
                }
                Ok(Some(Event::Msg { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    fn on_event(&mut self, ev: Event) -> Result<(), ClusterError> {
        match ev {
            Event::Joined {
                conn,
                peer,
                hello,
                out,
            } => self.on_hello(conn, peer, *hello, out),
            Event::Msg { conn, msg } => self.on_msg(conn, msg),
            Event::Gone { conn, reason } => {
                self.on_gone(conn, reason);
                Ok(())
            }
        }
    }

    fn on_msg(&mut self, conn: u64, msg: AgentMsg) -> Result<(), ClusterError> {
        let phase = self.phase;
        let Some(idx) = self.slots.iter().position(|s| s.conn == Some(conn)) else {
            return Ok(());
        };
        self.slots[idx].last_heard = Instant::now();
        match msg {
            // The handshake's messages, out of place after it: ignored.
            AgentMsg::Hello(_) | AgentMsg::Proof { .. } => {}
            AgentMsg::Ready {
                plan_hash,
                threads,
                rss_before_bytes,
                warnings,
            } => {
                let slot = &mut self.slots[idx];
                for w in &warnings {
                    eprintln!("agent {}: preflight warning: {w}", slot.label());
                }
                if plan_hash != self.plan_hash {
                    let agent = slot.label();
                    self.broadcast_stop("an agent got a different plan");
                    return Err(ClusterError::AgentFailed {
                        agent,
                        reason: format!(
                            "plan hash mismatch: it runs {plan_hash}, the coordinator sent {}",
                            self.plan_hash
                        ),
                    });
                }
                slot.ready = true;
                slot.threads = threads;
                slot.rss_before = rss_before_bytes;
                if phase == Phase::Assigned && self.slots.iter().all(|s| s.ready) {
                    self.start();
                }
            }
            AgentMsg::Failed { reason } => {
                let agent = self.slots[idx].label();
                if matches!(phase, Phase::Joining | Phase::Assigned) {
                    self.broadcast_stop(&format!("agent {agent} cannot run: {reason}"));
                    return Err(ClusterError::AgentFailed { agent, reason });
                }
                self.mark_lost(idx, format!("failed: {reason}"));
            }
            AgentMsg::Snapshot {
                seq,
                last,
                snapshot,
            } => {
                if seq <= self.slots[idx].last_seq {
                    return Ok(()); // a resent snapshot we already hold
                }
                let snapshot = match snapshot.decode() {
                    Ok(s) => s,
                    Err(e) => {
                        self.mark_lost(idx, format!("sent an unreadable snapshot: {e}"));
                        return Ok(());
                    }
                };
                self.slots[idx].last_seq = seq;
                self.apply(idx, snapshot);
                if last {
                    let slot = &mut self.slots[idx];
                    slot.finished = true;
                    slot.send(CoordMsg::Heartbeat { ack: seq });
                    slot.send(CoordMsg::Bye);
                }
            }
        }
        Ok(())
    }

    /// Merge one agent snapshot (deltas + current gauges).
    fn apply(&mut self, idx: usize, mut s: Snapshot) {
        let slot = &mut self.slots[idx];
        for (i, c) in s.per_source.iter().enumerate() {
            if let Some(&g) = slot.source_index.get(i)
                && let Some((_, row)) = self.sources.get_mut(g)
            {
                row.merge(c);
            }
        }
        s.per_source.clear();
        let mut delta = s.clone();
        delta.gauges = Gauges::default();
        slot.totals.merge(&delta);
        slot.iv_established += s.counters.established;
        slot.gauges = s.gauges.clone();
        slot.peak_open = slot.peak_open.max(s.gauges.open).max(s.gauges.peak_open);
        let Some(agg) = self.agg.as_mut() else {
            return;
        };
        agg.add(idx, &s);
        if !self.aborted_by_threshold
            && let Some(rule) = &self.abort_rule
            && let Some(t) = rule.lost(&agg.totals)
        {
            let reason = format!("threshold {} can no longer be met", t.expr);
            self.aborted_by_threshold = true;
            self.begin_stop(&reason);
        }
    }

    fn on_gone(&mut self, conn: u64, reason: String) {
        let phase = self.phase;
        let orphan = self.cfg.orphan_timeout;
        let Some(idx) = self.slots.iter().position(|s| s.conn == Some(conn)) else {
            return;
        };
        let slot = &mut self.slots[idx];
        slot.conn = None;
        slot.out = None;
        if phase == Phase::Joining {
            if self.cfg.verbose {
                eprintln!("agent {} left before the start ({reason})", slot.label());
            }
            self.slots.remove(idx);
            for (i, s) in self.slots.iter_mut().enumerate() {
                s.id = i + 1;
            }
            return;
        }
        if slot.active() && self.cfg.verbose {
            eprintln!(
                "agent {}: link lost ({reason}); waiting up to {orphan:?} for it to come back",
                slot.label()
            );
        }
    }
}
