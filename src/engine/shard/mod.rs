//! One engine shard: an OS thread with a mio `Poll`, a slab of [`Conn`]s, a timer wheel,
//! scratch buffers, and its slice of the stage plan.
//!
//! Each shard evaluates the stage clock itself: "how many connections should my slice hold
//! now?" ([`Slice::count`] of [`StageClock::target_at`]). Shards therefore need no commands
//! from the controller, only the shared start instant and a stop flag, and the same split
//! works for shards, processes and agents. Pacing is smooth because the clock is evaluated
//! every loop turn (≤ 1 ms): a 5,000/s ramp opens ~5 connections per millisecond, not 5,000 at
//! each second boundary.
//!
//! A *slot* is a virtual user. Slots in use = pending + open + dead (failed or dropped and not
//! retried) + waiting (scheduled to reconnect). Failed connections keep their slot so a
//! failing target is not hammered at the loop rate; `--reconnect` turns dead slots into
//! waiting ones with capped exponential back-off and jitter. Ramp-down releases waiting and
//! dead slots first, then closes open connections at the planned rate, then aborts pending
//! ones.
//!
//! Submodules split the `impl Shard`: [`lifecycle`] (opening, slots, closing, how a
//! connection ended), [`events`] (socket events, TLS, upgrade, frames) and [`traffic`]
//! (pings, heartbeats, timed messages).
//!
//! Every interval the shard sends a [`Snapshot`] of deltas (counters, histograms) and
//! current gauges to the controller, then resets its delta state: swap, don't copy.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::EngineError;
use super::precise::PreciseTimer;

mod churn;
mod compress;
mod events;
mod lifecycle;
mod misbehave;
mod timers;
mod traffic;
use super::conn::{Conn, SocketOpts, State};
use super::jwt::JwtMinter;
use super::source::SourcePool;
use super::tls::ClientTls;
use super::ws::{self, RequestTemplate};
use crate::metrics::{DropReason, FailureKind, Snapshot, SourceCounts};
use crate::plan::{Plan, Slice, StageClock};

/// Timer wheel tick.
const TICK_US: u64 = 100;
/// Token of the precise timer in the poll set (slab keys never reach it).
const PRECISE_TOKEN: Token = Token(usize::MAX);
/// Largest number of connections opened in one loop turn (keeps event handling responsive).
const OPENS_PER_TURN: usize = 256;
/// Per-shard read scratch buffer.
const SCRATCH: usize = 64 * 1024;

/// What a shard sends to the controller.
#[derive(Debug)]
pub struct ShardReport {
    pub shard: usize,
    pub snapshot: Snapshot,
    /// True for the shard's final report (it has closed everything and is exiting).
    pub last: bool,
}

/// Everything a shard needs to run.
pub struct ShardParams {
    pub index: usize,
    pub plan: Arc<Plan>,
    pub slice: Slice,
    /// Common time origin of all shards (µs offsets are relative to it).
    pub epoch: Instant,
    /// When the first stage starts.
    pub start: Instant,
    pub snapshot_every: Duration,
    pub stop: Arc<AtomicBool>,
    pub tx: Sender<ShardReport>,
    /// Global connection numbers (`{conn}` in JWT claims) are `id * conn_stride + conn_offset`.
    pub conn_stride: u64,
    pub conn_offset: u64,
    /// Shared TLS client set-up; `Some` when a target is `wss://`.
    pub tls: Option<Arc<ClientTls>>,
    /// Which connection numbers send timed messages (this process's share of
    /// `--publishers`); `None`: all.
    pub publishers: Option<crate::plan::push::Publishers>,
    /// This run's marker nonce (see `engine::marker`).
    pub nonce: u64,
}

#[derive(Debug, Clone, Copy)]
enum TimerKind {
    ConnectTimeout,
    HandshakeTimeout,
    CloseTimeout,
    Reconnect(u8),
    /// Send the timed messages that are due.
    SendMessage,
    /// Send ping number `k`.
    SendPing(u32),
    /// Send heartbeat number `k`.
    SendHeartbeat(u32),
    /// The ping intended at this ms (since the epoch) must have been answered by now.
    PingTimeout(u32),
    /// Heartbeat `k` must have been answered by now.
    HeartbeatTimeout(u32),
    /// The connection's session is over (`--session-duration`): close it as churn.
    SessionEnd,
    /// A misbehaving connection's answer is overdue (see `misbehave`).
    AnswerTimeout,
}

impl TimerKind {
    /// A deadline: it checks that something did *not* happen in time, so it may fire a
    /// little late and never needs a wake-up of its own (see `timers`).
    fn is_deadline(self) -> bool {
        matches!(
            self,
            TimerKind::ConnectTimeout
                | TimerKind::HandshakeTimeout
                | TimerKind::CloseTimeout
                | TimerKind::PingTimeout(_)
                | TimerKind::HeartbeatTimeout(_)
                | TimerKind::AnswerTimeout
        )
    }

    /// A scheduled send: it may go out a little early to share a wake-up (see `timers`).
    fn is_send(self) -> bool {
        matches!(
            self,
            TimerKind::SendMessage | TimerKind::SendPing(_) | TimerKind::SendHeartbeat(_)
        )
    }
}

/// How early a send may go out to share a wake-up (see `timers`): from the plan's send
/// periods; none when heartbeat replies are timed from their intended time.
fn early_us(plan: &Plan) -> u64 {
    let t = &plan.traffic;
    let periods = [
        t.message.as_ref().map(|m| (1e6 / m.rate) as u64),
        t.ping.as_ref().map(|p| p.interval.as_micros() as u64),
        t.heartbeat.as_ref().map(|h| h.interval.as_micros() as u64),
    ];
    let exact = t.heartbeat.as_ref().is_some_and(|h| h.expect.is_some());
    timers::early_window(periods.into_iter().flatten(), exact)
}

#[derive(Debug, Clone, Copy)]
struct TimerEntry {
    key: u32,
    id: u32,
    kind: TimerKind,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Never established.
    Failed(FailureKind),
    /// Established, ended by the server or the network.
    Dropped(DropReason),
    /// Closed by the client on purpose (its slot was already released).
    Closed,
    /// A pending connection cancelled by the client (slot already released).
    Aborted,
}

struct Shard {
    p: ShardParams,
    clock: StageClock,
    poll: Poll,
    conns: Slab<Conn>,
    /// Send and deadline timers (see `timers`).
    wheel: timers::Timers,
    expired: Vec<TimerEntry>,
    /// While true (the scheduled sends of one timer batch), `send_out` queues a
    /// connection's frames instead of writing them, and `dirty` lists the connections to
    /// flush after the batch: a ping and a message due together go out in one write.
    defer_writes: bool,
    dirty: Vec<usize>,
    /// More than one kind of scheduled send (ping, message, heartbeat): only then can two
    /// sends of one connection fall in one batch, and only then are writes deferred.
    coalesce_sends: bool,
    scratch: Vec<u8>,
    /// Plaintext to send (upgrade request, frames): what `send_out` writes.
    out: Vec<u8>,
    /// TLS records to send (`wss://`): `out` encrypted, or handshake messages.
    wire: Vec<u8>,
    /// Plaintext decrypted from one read (`wss://`).
    plain: Vec<u8>,
    /// Message payload scratch.
    payload: Vec<u8>,
    /// permessage-deflate: the offer (`--compression`), the per-shard compressors and
    /// inflater, and scratch for compressed / inflated messages (see `engine::deflate`).
    offer: Option<crate::plan::compression::DeflateOffer>,
    compressors: super::deflate::Compressors,
    inflater: Option<flate2::Decompress>,
    deflated: Vec<u8>,
    inflated: Vec<u8>,
    /// Parsed `--message-text` (empty: binary payloads).
    msg_template: Vec<traffic::Part>,
    /// The open sequence (session table or `--first-message`), once per shard.
    open_steps: Vec<crate::plan::session::OpenStep>,
    templates: Vec<RequestTemplate>,
    /// Upgrade requests of `bad-token` / `no-auth` connections, per target (empty without
    /// them).
    auth_templates: Vec<crate::engine::misbehave::AuthTemplates>,
    /// Fills `{column}`, `{agent}`, `{process}` in what is sent (`--data`, see
    /// `plan::data`); `None` when the plan uses none of them.
    fill: Option<crate::plan::data::Fill>,
    /// Scratch for filled bytes.
    filled: Vec<u8>,
    minter: Option<JwtMinter>,
    sources: SourcePool,
    next_target: usize,
    next_id: u32,
    seed: u64,
    /// Unix µs at the shard epoch: wall clock = `wall_base_us + now_us()` (see `marker`).
    wall_base_us: i64,
    /// This run's marker nonce (a copy of `p.nonce`, read on every frame).
    nonce: u64,
    rng: fastrand::Rng,
    /// Session lengths (`--session-duration`): seeded from the plan, so runs repeat.
    session_rng: fastrand::Rng,
    /// Arrivals owed but not started yet (rate stages), and the previous turn's instant.
    arrival_credit: f64,
    last_arrival: Option<Instant>,
    snap: Snapshot,
    open: u64,
    pending: u64,
    closing: u64,
    dead: u64,
    waiting: u64,
    close_cursor: usize,
    opts: SocketOpts,
    connect_timeout_ticks: u64,
    handshake_timeout_ticks: u64,
    close_timeout_ticks: u64,
}

/// Run one shard to completion on the current thread.
pub fn run_shard(p: ShardParams) -> Result<(), EngineError> {
    let mut shard = Shard::new(p)?;
    shard.run()
}

/// The longest the loop sleeps when nothing is due: how soon a stop (Ctrl-C) is noticed.
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// How often the stage clock is evaluated while it may ask for work (ramps, connections
/// still to open or close): smooth pacing (≤ 1 ms, see the module docs).
const BUSY_WAIT: Duration = Duration::from_millis(1);

/// Until when the loop may sleep (socket events and due timers wake it earlier): the next
/// snapshot, and while the stage clock can ask for something, `BUSY_WAIT`. A shard that
/// holds its share through a hold stage (`quiet_until`: the stage's end) sleeps up to
/// `IDLE_WAIT` instead of waking every millisecond — with 100K held connections over a few
/// processes, those idle turns were a visible share of the client's CPU.
fn wait_until(
    now: Instant,
    quiet_until: Option<Instant>,
    next_snapshot: Instant,
    finishing: bool,
) -> Instant {
    let clock = match quiet_until {
        Some(end) if !finishing => end.min(now + IDLE_WAIT),
        _ => now + BUSY_WAIT,
    };
    clock.min(next_snapshot).max(now)
}

fn ticks(d: Duration) -> u64 {
    (d.as_micros() as u64).div_ceil(TICK_US).max(1)
}

impl Shard {
    fn new(p: ShardParams) -> Result<Shard, EngineError> {
        let plan = p.plan.clone();
        let templates = plan
            .targets
            .iter()
            .map(|t| ws::template_for(&plan, t))
            .collect();
        let auth_templates = if plan.misbehave.iter().any(|m| m.kind.is_auth()) {
            plan.targets
                .iter()
                .map(|t| crate::engine::misbehave::AuthTemplates::for_target(&plan, t))
                .collect()
        } else {
            Vec::new()
        };
        let minter = JwtMinter::from_auth(&plan.handshake.auth)?;
        // Pre-sized for the peak, but never beyond 1M slots: a rate stage's default cap
        // (every arrival) can be far above what will ever be open; the slab grows if needed.
        let capacity = (p.slice.count(plan.peak_connections() as f64) as usize).min(1 << 20)
            + plan.max_pending / plan.threads.max(1)
            + 16;
        let seed = fastrand::u64(..);
        let sources = SourcePool::new(plan.sources.clone(), plan.targets.len(), p.index);
        let per_source = vec![SourceCounts::default(); sources.len()];
        Ok(Shard {
            clock: StageClock::new(plan.stages.clone()),
            poll: Poll::new().map_err(EngineError::Poll)?,
            conns: Slab::with_capacity(capacity),
            wheel: timers::Timers::new(16 * 1024, TICK_US, early_us(&plan)),
            expired: Vec::new(),
            defer_writes: false,
            dirty: Vec::new(),
            coalesce_sends: {
                let t = &plan.traffic;
                [t.message.is_some(), t.ping.is_some(), t.heartbeat.is_some()]
                    .iter()
                    .filter(|&&on| on)
                    .count()
                    > 1
            },
            scratch: vec![0; SCRATCH],
            out: Vec::with_capacity(4096),
            wire: Vec::new(),
            plain: Vec::new(),
            payload: Vec::with_capacity(1024),
            offer: plan.handshake.compression.offer().cloned(),
            compressors: Default::default(),
            inflater: None,
            deflated: Vec::new(),
            inflated: Vec::new(),
            open_steps: plan.traffic.session.open_sequence(
                plan.traffic.first_message.as_deref(),
                plan.traffic.first_message_expect.as_deref(),
            ),
            msg_template: plan
                .traffic
                .message
                .as_ref()
                .and_then(|m| m.text.as_deref())
                .map(traffic::parse_template)
                .unwrap_or_default(),
            templates,
            auth_templates,
            fill: (plan.data.is_some() || crate::plan::build::uses_identity(&plan))
                .then(|| crate::plan::data::Fill::new(plan.data.clone(), &plan.identity)),
            filled: Vec::new(),
            minter,
            next_target: p.index % plan.targets.len().max(1),
            sources,
            next_id: 0,
            seed,
            wall_base_us: super::marker::wall_us_at(p.epoch),
            nonce: p.nonce,
            rng: fastrand::Rng::with_seed(seed),
            // Each shard gets its own stream of the plan's seed (each process or agent has
            // its own seed already: see `cluster::slice_view`).
            session_rng: fastrand::Rng::with_seed(
                plan.churn.map_or(0, |c| c.seed)
                    ^ (p.index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            arrival_credit: 0.0,
            last_arrival: None,
            snap: Snapshot {
                per_source,
                per_target: vec![SourceCounts::default(); plan.targets.len()],
                ..Default::default()
            },
            open: 0,
            pending: 0,
            closing: 0,
            dead: 0,
            waiting: 0,
            close_cursor: 0,
            opts: SocketOpts {
                rcvbuf: plan.socket_rcvbuf,
                sndbuf: plan.socket_sndbuf,
            },
            connect_timeout_ticks: ticks(plan.connect_timeout),
            handshake_timeout_ticks: ticks(plan.handshake_timeout),
            close_timeout_ticks: ticks(plan.close_timeout),
            p,
        })
    }

    fn now_us(&self) -> u64 {
        self.p.epoch.elapsed().as_micros() as u64
    }

    fn slots(&self) -> u64 {
        self.pending + self.open + self.dead + self.waiting
    }

    fn run(&mut self) -> Result<(), EngineError> {
        let mut events = Events::with_capacity(1024);
        let precise = PreciseTimer::new().map_err(EngineError::Poll)?;
        self.poll
            .registry()
            .register(
                &mut mio::unix::SourceFd(&precise.raw_fd()),
                PRECISE_TOKEN,
                Interest::READABLE,
            )
            .map_err(EngineError::Poll)?;
        let mut next_snapshot = Instant::now() + self.p.snapshot_every;
        let total = self.clock.total();
        let pending_cap = (self.p.plan.max_pending / self.p.plan.threads.max(1)).max(1) as u64;
        let mut finishing = false;
        let mut last_global = 0.0f64;
        // The wheel tick the precise timer is armed for (`None`: not armed or fired).
        let mut armed: Option<u64> = None;
        loop {
            let now = Instant::now();
            let stopped = self.p.stop.load(Ordering::Relaxed);
            // Until when the stage clock has nothing for this shard to do (see `wait_until`).
            let mut quiet_until = None;
            if !finishing {
                if now >= self.p.start {
                    let elapsed = now - self.p.start;
                    if stopped || elapsed >= total {
                        finishing = true;
                        self.release(u64::MAX);
                        if !self.p.plan.misbehave.is_empty() {
                            self.abort_misbehaving();
                        }
                    } else if let Some(rate) = self
                        .clock
                        .stage_index(elapsed)
                        .and_then(|i| self.p.plan.arrival.as_ref()?.rate(i))
                    {
                        self.arrive(rate, now, pending_cap);
                        last_global = self.clock.target_at(elapsed);
                    } else {
                        self.last_arrival = None;
                        // The whole count (rounded up: every stage target is reached)
                        // decides how many; the fractional target decides the direction.
                        let global = self.clock.target_at(elapsed);
                        let desired = self.p.slice.count(self.clock.count_at(elapsed));
                        let slots = self.slots();
                        // A slice's share of a rising target can dip by one for a moment
                        // (its lower boundary steps before its upper one): open only while
                        // the global target is not falling, release only while it is not
                        // rising, so a ramp never churns connections.
                        if desired > slots && global >= last_global {
                            self.open_more(desired - slots, pending_cap);
                        } else if desired < slots && global <= last_global {
                            self.release(slots - desired);
                        } else if desired == slots {
                            quiet_until =
                                self.clock.steady_until(elapsed).map(|e| self.p.start + e);
                        }
                        last_global = global;
                    }
                } else if stopped {
                    finishing = true;
                }
            }
            if finishing && self.conns.is_empty() {
                break;
            }
            let wake = wait_until(now, quiet_until, next_snapshot, finishing);
            let now_us = self.now_us();
            let ticks_ahead =
                (wake.saturating_duration_since(now).as_micros() as u64).div_ceil(TICK_US);
            let mut timeout = wake.saturating_duration_since(Instant::now());
            if let Some(tick) = self.wheel.next_due(ticks_ahead) {
                let due_us = tick * TICK_US;
                if due_us <= now_us {
                    timeout = Duration::ZERO;
                } else if armed != Some(tick) {
                    // Re-arming the same instant again would be one syscall per loop turn
                    // for nothing.
                    precise
                        .arm(Duration::from_micros(due_us - now_us))
                        .map_err(EngineError::Poll)?;
                    armed = Some(tick);
                }
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(EngineError::Poll(e));
            }
            for ev in events.iter() {
                if ev.token() == PRECISE_TOKEN {
                    precise.clear();
                    armed = None;
                    continue;
                }
                let key = ev.token().0;
                let closed = ev.is_read_closed() || ev.is_error();
                self.on_event(key, ev.is_readable() || closed, closed);
            }
            self.expire_timers();
            if Instant::now() >= next_snapshot {
                next_snapshot += self.p.snapshot_every;
                self.send_snapshot(false);
            }
        }
        self.send_snapshot(true);
        Ok(())
    }

    fn send_snapshot(&mut self, last: bool) {
        let g = &mut self.snap.gauges;
        g.open = self.open;
        g.pending = self.pending;
        g.closing = self.closing;
        g.sources_exhausted = self.sources.exhausted();
        let fresh = Snapshot {
            per_source: vec![SourceCounts::default(); self.sources.len()],
            per_target: vec![SourceCounts::default(); self.p.plan.targets.len()],
            ..Default::default()
        };
        let snapshot = std::mem::replace(&mut self.snap, fresh);
        // The controller going away means the run is over; nothing to do about it here.
        let _ = self.p.tx.send(ShardReport {
            shard: self.p.index,
            snapshot,
            last,
        });
    }

    // ---- timers --------------------------------------------------------------------------

    fn expire_timers(&mut self) {
        let now_tick = self.now_us() / TICK_US;
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.expire(now_tick, &mut expired);
        for t in expired.drain(..) {
            if let TimerKind::Reconnect(attempt) = t.kind {
                if self.waiting > 0 {
                    self.waiting -= 1;
                    if !self.open_one(attempt) {
                        self.dead += 1;
                    }
                }
                continue;
            }
            let key = t.key as usize;
            let Some(c) = self.conns.get(key) else {
                continue;
            };
            if c.id != t.id {
                continue;
            }
            if c.misbehave != 0 {
                self.on_misbehave_timer(key, t.kind);
                continue;
            }
            match (t.kind, c.state) {
                (TimerKind::ConnectTimeout, State::Connecting) => {
                    self.end(key, End::Failed(FailureKind::ConnectTimeout))
                }
                (TimerKind::HandshakeTimeout, State::TlsHandshaking) => {
                    self.end(key, End::Failed(FailureKind::TlsHandshakeTimeout))
                }
                (
                    TimerKind::HandshakeTimeout,
                    state @ (State::Handshaking | State::AwaitingReply),
                ) => {
                    let timeout = self.p.plan.handshake_timeout;
                    if state == State::AwaitingReply {
                        let step = self.conns[key].hb_pending as usize;
                        let what = match self.open_steps.get(step) {
                            Some(crate::plan::session::OpenStep::Expect(p)) => p.src.clone(),
                            _ => String::new(),
                        };
                        self.snap.counters.example(
                            FailureKind::OpenSequenceTimeout.label(),
                            || {
                                format!(
                                    "upgraded (101), but step {} of the open sequence (expect \
                                     {what:?}) saw no matching frame within the handshake \
                                     timeout ({timeout:?})",
                                    step + 1
                                )
                            },
                        );
                        self.end(key, End::Failed(FailureKind::OpenSequenceTimeout))
                    } else {
                        self.snap
                            .counters
                            .example(FailureKind::HandshakeTimeout.label(), || {
                                format!(
                                    "no HTTP 101 response within the handshake timeout ({timeout:?})"
                                )
                            });
                        self.end(key, End::Failed(FailureKind::HandshakeTimeout))
                    }
                }
                (TimerKind::SessionEnd, State::Open) => self.end_session(key),
                (TimerKind::CloseTimeout, State::Closing) => {
                    self.snap.counters.close_timeouts += 1;
                    self.end(key, End::Closed);
                }
                (
                    kind @ (TimerKind::SendMessage
                    | TimerKind::SendPing(_)
                    | TimerKind::SendHeartbeat(_)),
                    State::Open,
                ) => {
                    // Queued, written once per connection after the batch.
                    self.defer_writes = self.coalesce_sends;
                    self.on_traffic_timer(key, kind);
                    self.defer_writes = false;
                }
                (
                    kind @ (TimerKind::PingTimeout(_) | TimerKind::HeartbeatTimeout(_)),
                    State::Open,
                ) => {
                    self.on_traffic_timer(key, kind);
                }
                _ => {}
            }
        }
        self.expired = expired;
        self.flush_dirty();
    }

    /// Write what the sends of a timer batch queued: one write per connection, whatever
    /// number of frames (a ping and a message due together) it holds.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for key in dirty.drain(..) {
            if self.conns.contains(key) {
                self.flush(key);
            }
        }
        self.dirty = dirty;
    }
}
