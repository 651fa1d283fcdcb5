//! The agent: dials out to a coordinator (agents never listen), authenticates, runs its slice
//! of the plan on the engine's own threads, and streams snapshots.
//!
//! The control loop is a small tokio state machine on a current-thread runtime; the engine
//! runs [`engine::run`] on a plain thread with an `observer` channel, bridged into the loop
//! by a forwarding thread. Snapshots are numbered and kept until the coordinator
//! acknowledges them (every heartbeat carries an `ack`), so a link that drops and comes back
//! within the orphan timeout loses nothing and counts nothing twice.
//!
//! **Orphan rule**: when nothing has been heard from the coordinator for `orphan_timeout`
//! (heartbeats come every second), the agent sets its stop flag — the engine closes every
//! connection — and exits with [`AgentError::Orphaned`]. It never keeps loading a gateway
//! unattended.
//!
//! Checking an assignment and starting the engine are in the `assign` submodule.
//!
//! [`engine::run`]: crate::engine::run

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;

use super::allow::AllowList;
use super::auth::{self, Role};
use super::link::next_text;
use super::link_tls::{LinkStream, LinkTrust};
use super::wire::{
    AgentInfo, AgentMsg, Assignment, CoordMsg, Hello, PROTOCOL_VERSION, peek_protocol,
};
use crate::engine::EngineError;
use crate::metrics::RunOutcome;
use crate::metrics::Snapshot;
use crate::metrics::timeseries::ExtraSinks;
use crate::metrics::wire::WireSnapshot;
use crate::plan::redact::redact_url;
use crate::plan::{Plan, Secret};
use crate::report::LiveMode;

mod assign;

/// How an agent behaves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `ws://HOST:PORT/` or `wss://HOST:PORT/` of the coordinator.
    pub coordinator: String,
    pub token: Secret,
    /// How a `wss://` coordinator's certificate is checked.
    pub trust: LinkTrust,
    /// Where this agent lets a plan send its connections (see [`AllowList`]).
    pub allow: AllowList,
    /// Shown in the coordinator's output and the report (default `HOSTNAME:PID`).
    pub name: Option<String>,
    /// Source addresses of this agent's own (empty: take the coordinator's split of the
    /// plan's list, or let the kernel choose).
    pub sources: Vec<IpAddr>,
    /// Engine threads (default: one per core).
    pub threads: Option<usize>,
    /// Stop the load and exit when the coordinator is silent for this long.
    pub orphan_timeout: Duration,
    /// Keep dialing an unreachable coordinator this long before giving up.
    pub join_timeout: Duration,
    /// The engine's live output (the coordinator shows the merged view anyway).
    pub live: LiveMode,
    /// Print what happens (joined, assignment, start, link loss) to stderr.
    pub verbose: bool,
    /// Run the preflight system checks on the assigned share before accepting it.
    pub preflight: bool,
    /// Sinks fed beside the live output (`--metrics-listen`).
    pub sinks: ExtraSinks,
}

impl AgentConfig {
    pub fn new(coordinator: impl Into<String>, token: Secret) -> Self {
        AgentConfig {
            coordinator: coordinator.into(),
            token,
            trust: LinkTrust::default(),
            allow: AllowList::default(),
            name: None,
            sources: Vec::new(),
            threads: None,
            orphan_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(60),
            live: LiveMode::Quiet,
            verbose: false,
            preflight: true,
            sinks: ExtraSinks::default(),
        }
    }
}

/// Why an agent stopped without completing its part.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot reach the coordinator at {url} within {waited:?}: {last}")]
    Unreachable {
        url: String,
        waited: Duration,
        last: String,
    },
    #[error("the coordinator refused this agent: {0}")]
    Refused(String),
    #[error("control protocol error: {0}")]
    Protocol(String),
    #[error("the coordinator called the run off before it started: {0}")]
    Cancelled(String),
    #[error(
        "no word from the coordinator for longer than {0:?}: closed every connection and stopped \
         (orphan timeout)"
    )]
    Orphaned(Duration),
    #[error("cannot run the assignment: {0}")]
    Assignment(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot start the control-plane runtime: {0}")]
    Runtime(io::Error),
    #[error("--coordinator {url}: {reason}")]
    Link { url: String, reason: String },
    #[error("cannot read or raise RLIMIT_NOFILE: {0}")]
    Limits(io::Error),
    #[error("interrupted before the run started")]
    Interrupted,
}

/// A completed agent run.
#[derive(Debug)]
pub struct AgentRun {
    pub agent_id: usize,
    /// This agent's own outcome (its slice only).
    pub outcome: RunOutcome,
}

type Ws = WebSocketStream<LinkStream>;

/// Longest a frame may take to go out on the control link.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);

/// Join the coordinator at `cfg.coordinator`, run the assigned slice, return its outcome.
/// `stop` (Ctrl-C) ends the load early; the final snapshot is still sent.
pub fn run_agent(cfg: &AgentConfig, stop: Arc<AtomicBool>) -> Result<AgentRun, AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    runtime.block_on(Agent::new(cfg, stop)?.run())
}

/// What this host offers: identity, cores, descriptors, sources.
pub fn agent_info(cfg: &AgentConfig) -> Result<AgentInfo, AgentError> {
    let limits = crate::system::raise_nofile_to_hard().map_err(AgentError::Limits)?;
    let host = super::hostname();
    let pid = std::process::id();
    Ok(AgentInfo {
        name: cfg.name.clone().unwrap_or_else(|| format!("{host}:{pid}")),
        host,
        pid,
        cores: crate::system::cores(),
        fd_soft: limits.soft,
        fd_hard: limits.hard,
        max_connections: crate::system::max_connections_for_fds(limits.soft),
        sources: cfg.sources.clone(),
        threads: cfg.threads,
        port_range: crate::system::local_port_range().ok(),
    })
}

enum DialError {
    Io(String),
    Refused(String),
}

/// Where and how to dial the coordinator (checked once, before the first dial).
#[derive(Clone)]
struct Dialer {
    url: String,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Dialer {
    fn new(cfg: &AgentConfig) -> Result<Dialer, AgentError> {
        let bad = |reason: String| AgentError::Link {
            url: redact_url(&cfg.coordinator),
            reason,
        };
        let url = url::Url::parse(&cfg.coordinator).map_err(|e| {
            bad(format!(
                "not a URL ({e}); give ws://HOST:PORT/ or wss://HOST:PORT/"
            ))
        })?;
        let tls = match url.scheme() {
            "ws" => {
                if cfg.trust != LinkTrust::WebRoots {
                    return Err(bad(
                        "--tls-ca and --tls-fingerprint check a TLS link: give a wss:// \
                         coordinator URL (the coordinator runs with --tls-self-signed or \
                         --tls-cert/--tls-key)"
                            .into(),
                    ));
                }
                None
            }
            "wss" => {
                Some(super::link_tls::client_config(&cfg.trust).map_err(|e| bad(e.to_string()))?)
            }
            other => {
                return Err(bad(format!(
                    "scheme `{other}` is not a WebSocket scheme; give ws://HOST:PORT/ or \
                     wss://HOST:PORT/"
                )));
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| bad("the URL has no host".into()))?
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| bad("the URL has no port".into()))?;
        Ok(Dialer {
            url: cfg.coordinator.clone(),
            host,
            port,
            tls,
        })
    }

    /// Connect, say hello, prove the token both ways, and read the answer (`welcome`:
    /// returns its `last_seq`).
    async fn dial(
        &self,
        token: &Secret,
        hello: &Hello,
    ) -> Result<(Ws, usize, String, u64), DialError> {
        let io = |e: String| DialError::Io(e);
        let connect = async {
            let stream = super::link_tls::connect(&self.host, self.port, self.tls.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            tokio_tungstenite::client_async(self.url.as_str(), stream)
                .await
                .map_err(|e| e.to_string())
        };
        let (mut ws, _) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| io("connect timed out".into()))?
            .map_err(io)?;
        let mut hello = hello.clone();
        hello.nonce = auth::nonce();
        ws.send(Message::text(AgentMsg::Hello(hello.clone()).to_text()))
            .await
            .map_err(|e| io(e.to_string()))?;
        let text = answer(&mut ws, "hello").await?;
        let (their_nonce, proof) = match CoordMsg::parse(&text) {
            Ok(CoordMsg::Challenge { nonce, proof, .. }) => (nonce, proof),
            Ok(CoordMsg::Refused { reason }) => return Err(DialError::Refused(reason)),
            Ok(other) => {
                return Err(DialError::Refused(format!(
                    "unexpected answer to hello: {}",
                    other.kind()
                )));
            }
            Err(e) => return Err(DialError::Refused(e.to_string())),
        };
        if !auth::verify(
            &token.0,
            Role::Coordinator,
            &hello.nonce,
            &their_nonce,
            &proof,
        ) {
            return Err(DialError::Refused(format!(
                "the peer at {} could not prove it holds the token: it is not your coordinator \
                 (a wrong address, or something else answering there) or its --token-file \
                 differs. Nothing derived from the token was sent to it.",
                redact_url(&self.url)
            )));
        }
        let proof = auth::prove(&token.0, Role::Agent, &their_nonce, &hello.nonce);
        ws.send(Message::text(AgentMsg::Proof { proof }.to_text()))
            .await
            .map_err(|e| io(e.to_string()))?;
        let text = answer(&mut ws, "the proof").await?;
        match CoordMsg::parse(&text) {
            Ok(CoordMsg::Welcome {
                agent_id,
                run_id,
                last_seq,
                ..
            }) => Ok((ws, agent_id, run_id, last_seq)),
            Ok(CoordMsg::Refused { reason }) => Err(DialError::Refused(reason)),
            Ok(other) => Err(DialError::Refused(format!(
                "unexpected answer to the proof: {}",
                other.kind()
            ))),
            Err(e) => Err(DialError::Refused(e.to_string())),
        }
    }
}

/// The coordinator's next text frame after `what`, with the version check.
async fn answer(ws: &mut Ws, what: &str) -> Result<String, DialError> {
    let text = tokio::time::timeout(super::coordinator::HELLO_TIMEOUT, next_text(ws))
        .await
        .map_err(|_| DialError::Io(format!("no answer to {what}")))?
        .ok_or_else(|| DialError::Io(format!("closed after {what}")))?;
    if let Some(v) = peek_protocol(&text)
        && v != u64::from(PROTOCOL_VERSION)
    {
        return Err(DialError::Refused(format!(
            "protocol version mismatch: the coordinator speaks control protocol {v}, this agent \
             (wsscale {}) speaks {PROTOCOL_VERSION}; run the same wsscale version everywhere",
            env!("CARGO_PKG_VERSION")
        )));
    }
    Ok(text)
}

async fn recv(ws: &mut Option<Ws>) -> Option<String> {
    match ws {
        Some(w) => next_text(w).await,
        None => std::future::pending().await,
    }
}

type EngineThread = std::thread::JoinHandle<Result<RunOutcome, EngineError>>;

struct Agent<'a> {
    cfg: &'a AgentConfig,
    stop: Arc<AtomicBool>,
    hello: Hello,
    dialer: Dialer,
    ws: Option<Ws>,
    agent_id: usize,
    run_id: String,
    last_contact: Instant,
    next_dial: Instant,
    assigned: Option<(Plan, Box<Assignment>)>,
    engine: Option<EngineThread>,
    snapshots: Option<mpsc::UnboundedReceiver<(Snapshot, bool)>>,
    seq: u64,
    unacked: VecDeque<(u64, String)>,
    final_sent: bool,
    bye: bool,
    orphaned: bool,
}

impl<'a> Agent<'a> {
    fn new(cfg: &'a AgentConfig, stop: Arc<AtomicBool>) -> Result<Self, AgentError> {
        let dialer = Dialer::new(cfg)?;
        let info = agent_info(cfg)?;
        let now = Instant::now();
        Ok(Agent {
            cfg,
            stop,
            dialer,
            hello: Hello {
                protocol: PROTOCOL_VERSION,
                nonce: String::new(),
                agent: info,
                resume: None,
            },
            ws: None,
            agent_id: 0,
            run_id: String::new(),
            last_contact: now,
            next_dial: now,
            assigned: None,
            engine: None,
            snapshots: None,
            seq: 0,
            unacked: VecDeque::new(),
            final_sent: false,
            bye: false,
            orphaned: false,
        })
    }

    fn say(&self, what: impl std::fmt::Display) {
        if self.cfg.verbose {
            eprintln!("agent {}: {what}", self.hello.agent.name);
        }
    }

    async fn run(mut self) -> Result<AgentRun, AgentError> {
        self.join().await?;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                inc = recv(&mut self.ws) => match inc {
                    Some(text) => {
                        self.last_contact = Instant::now();
                        self.on_message(&text).await?;
                    }
                    None => {
                        self.ws = None;
                        self.next_dial = Instant::now() + Duration::from_millis(200);
                        self.say("link to the coordinator lost; dialing again");
                    }
                },
                snap = recv_snapshot(&mut self.snapshots) => match snap {
                    Some((s, last)) => self.on_snapshot(&s, last).await,
                    None => {
                        // The engine ended without a final snapshot: it failed.
                        self.snapshots = None;
                        return Err(self.engine_failed().await);
                    }
                },
                _ = tick.tick() => {}
            }
            if let Some(done) = self.on_tick().await? {
                return Ok(done);
            }
        }
    }

    /// The first connection: retry until `join_timeout`.
    async fn join(&mut self) -> Result<(), AgentError> {
        let began = Instant::now();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(AgentError::Interrupted);
            }
            match self.dialer.dial(&self.cfg.token, &self.hello).await {
                Ok((ws, agent_id, run_id, _)) => {
                    self.ws = Some(ws);
                    self.agent_id = agent_id;
                    self.run_id = run_id;
                    self.last_contact = Instant::now();
                    self.say(format!(
                        "joined {} as agent {agent_id}",
                        redact_url(&self.cfg.coordinator)
                    ));
                    return Ok(());
                }
                Err(DialError::Refused(r)) => return Err(AgentError::Refused(r)),
                Err(DialError::Io(last)) if began.elapsed() > self.cfg.join_timeout => {
                    return Err(AgentError::Unreachable {
                        url: redact_url(&self.cfg.coordinator),
                        waited: self.cfg.join_timeout,
                        last,
                    });
                }
                Err(DialError::Io(_)) => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn send(&mut self, msg: &AgentMsg) {
        let text = msg.to_text();
        self.send_text(text).await;
    }

    /// Send on the link; a link that fails or cannot take a frame within [`SEND_TIMEOUT`]
    /// (a coordinator that stopped reading) is dropped, so the loop never stalls and the
    /// orphan rule keeps working.
    async fn send_text(&mut self, text: String) {
        if let Some(ws) = self.ws.as_mut() {
            let sent = tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::text(text))).await;
            if !matches!(sent, Ok(Ok(()))) {
                self.ws = None;
                self.next_dial = Instant::now() + Duration::from_millis(200);
            }
        }
    }

    async fn on_message(&mut self, text: &str) -> Result<(), AgentError> {
        let msg = CoordMsg::parse(text).map_err(|e| AgentError::Protocol(e.to_string()))?;
        match msg {
            // The handshake's messages, out of place after it: ignored.
            CoordMsg::Welcome { .. } | CoordMsg::Challenge { .. } => {}
            CoordMsg::Refused { reason } => {
                if self.engine.is_some() {
                    self.orphan(&format!("the coordinator refused us: {reason}"));
                } else {
                    return Err(AgentError::Refused(reason));
                }
            }
            CoordMsg::Heartbeat { ack } => self.acked(ack),
            CoordMsg::Assign(a) => self.on_assign(a).await?,
            CoordMsg::Start { at_unix_ns } => self.on_start(at_unix_ns)?,
            CoordMsg::Stop { reason } => {
                if self.engine.is_none() {
                    return Err(AgentError::Cancelled(reason));
                }
                self.say(format!("stop: {reason}; closing every connection"));
                self.stop.store(true, Ordering::Relaxed);
            }
            CoordMsg::Bye => {
                if self.engine.is_none() {
                    return Err(AgentError::Cancelled("the coordinator said bye".into()));
                }
                self.bye = true;
            }
        }
        Ok(())
    }

    fn acked(&mut self, ack: u64) {
        while self.unacked.front().is_some_and(|(seq, _)| *seq <= ack) {
            self.unacked.pop_front();
        }
    }

    async fn on_snapshot(&mut self, s: &Snapshot, last: bool) {
        self.seq += 1;
        let text = AgentMsg::Snapshot {
            seq: self.seq,
            last,
            snapshot: Box::new(WireSnapshot::encode(s)),
        }
        .to_text();
        self.unacked.push_back((self.seq, text.clone()));
        self.send_text(text).await;
        if last {
            self.final_sent = true;
            self.snapshots = None;
        }
    }

    async fn engine_failed(&mut self) -> AgentError {
        let err = match self.engine.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => AgentError::Engine(e),
            Some(Err(_)) => AgentError::Engine(EngineError::ShardPanicked(0)),
            _ => AgentError::Protocol("the engine ended without a final snapshot".into()),
        };
        self.send(&AgentMsg::Failed {
            reason: err.to_string(),
        })
        .await;
        err
    }

    fn orphan(&mut self, why: &str) {
        if self.orphaned {
            return;
        }
        self.orphaned = true;
        self.stop.store(true, Ordering::Relaxed);
        eprintln!(
            "agent {}: {why}: closing every connection and exiting",
            self.hello.agent.name
        );
    }

    /// Periodic work: re-dial, orphan check, completion.
    async fn on_tick(&mut self) -> Result<Option<AgentRun>, AgentError> {
        let now = Instant::now();
        if self.ws.is_none() && !self.orphaned && now >= self.next_dial {
            self.next_dial = now + Duration::from_secs(1);
            if self.engine.is_none() {
                self.hello.resume = None;
            }
            // Never dial for longer than the orphan rule allows: the check below must run.
            let budget = self
                .cfg
                .orphan_timeout
                .saturating_sub(now.duration_since(self.last_contact))
                .clamp(Duration::from_millis(100), Duration::from_secs(3));
            let dialed =
                tokio::time::timeout(budget, self.dialer.dial(&self.cfg.token, &self.hello))
                    .await
                    .unwrap_or_else(|_| Err(DialError::Io("timed out".into())));
            match dialed {
                Ok((ws, agent_id, _, last_seq)) => {
                    self.ws = Some(ws);
                    self.last_contact = Instant::now();
                    if self.engine.is_some() {
                        self.acked(last_seq);
                        let resend: Vec<String> =
                            self.unacked.iter().map(|(_, t)| t.clone()).collect();
                        self.say(format!(
                            "link restored; resending {} snapshot(s)",
                            resend.len()
                        ));
                        for text in resend {
                            self.send_text(text).await;
                        }
                    } else {
                        self.agent_id = agent_id;
                        self.say(format!("joined again as agent {agent_id}"));
                    }
                }
                Err(DialError::Refused(r)) => {
                    if self.engine.is_some() {
                        self.orphan(&format!("the coordinator no longer knows this agent ({r})"));
                    } else {
                        return Err(AgentError::Refused(r));
                    }
                }
                Err(DialError::Io(_)) => {}
            }
        }
        let now = Instant::now();
        if !self.orphaned && now.duration_since(self.last_contact) > self.cfg.orphan_timeout {
            self.orphan(&format!(
                "no word from the coordinator for {:.1}s",
                now.duration_since(self.last_contact).as_secs_f64()
            ));
            if self.engine.is_none() {
                return Err(AgentError::Orphaned(self.cfg.orphan_timeout));
            }
        }
        if self.engine.is_none() {
            if self.stop.load(Ordering::Relaxed) {
                return Err(AgentError::Interrupted);
            }
            return Ok(None);
        }
        if self.final_sent && (self.bye || self.unacked.is_empty() || self.orphaned) {
            let handle = self.engine.take().expect("engine running");
            let outcome = match handle.join() {
                Ok(r) => r?,
                Err(_) => return Err(AgentError::Engine(EngineError::ShardPanicked(0))),
            };
            if let Some(ws) = self.ws.as_mut() {
                let _ = ws.close(None).await;
            }
            if self.orphaned {
                return Err(AgentError::Orphaned(self.cfg.orphan_timeout));
            }
            self.say("done");
            return Ok(Some(AgentRun {
                agent_id: self.agent_id,
                outcome,
            }));
        }
        Ok(None)
    }
}

async fn recv_snapshot(
    rx: &mut Option<mpsc::UnboundedReceiver<(Snapshot, bool)>>,
) -> Option<(Snapshot, bool)> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
