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
//! Every interval the shard sends a [`Snapshot`] of deltas (counters, histograms) and
//! current gauges to the controller, then resets its delta state: swap, don't copy.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::EngineError;
use super::precise::PreciseTimer;

mod traffic;
use super::conn::{Conn, OpenError, SocketOpts, State, set_reset_on_close, start_connect};
use super::jwt::JwtMinter;
use super::source::SourcePool;
use super::timer::TimerWheel;
use super::tls::{self, ClientTls};
use super::ws::{self, FrameKind, FrameParse, RequestTemplate, UpgradeResponse};
use crate::metrics::{DropReason, FailureKind, Snapshot, SourceCounts, record_us};
use crate::plan::{CloseMode, Plan, Slice, StageClock};

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
    wheel: TimerWheel<TimerEntry>,
    expired: Vec<TimerEntry>,
    scratch: Vec<u8>,
    /// Plaintext to send (upgrade request, frames): what `send_out` writes.
    out: Vec<u8>,
    /// TLS records to send (`wss://`): `out` encrypted, or handshake messages.
    wire: Vec<u8>,
    /// Plaintext decrypted from one read (`wss://`).
    plain: Vec<u8>,
    /// Message payload scratch.
    payload: Vec<u8>,
    /// Parsed `--message-text` (empty: binary payloads).
    msg_template: Vec<traffic::Part>,
    templates: Vec<RequestTemplate>,
    minter: Option<JwtMinter>,
    sources: SourcePool,
    next_target: usize,
    next_id: u32,
    seed: u64,
    rng: fastrand::Rng,
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
        let minter = JwtMinter::from_auth(&plan.handshake.auth)?;
        let capacity = p.slice.count(plan.peak_connections() as f64) as usize
            + plan.max_pending / plan.threads.max(1)
            + 16;
        let seed = fastrand::u64(..);
        let sources = SourcePool::new(plan.sources.clone(), plan.targets.len(), p.index);
        let per_source = vec![SourceCounts::default(); sources.len()];
        Ok(Shard {
            clock: StageClock::new(plan.stages.clone()),
            poll: Poll::new().map_err(EngineError::Poll)?,
            conns: Slab::with_capacity(capacity),
            wheel: TimerWheel::new(16 * 1024),
            expired: Vec::new(),
            scratch: vec![0; SCRATCH],
            out: Vec::with_capacity(4096),
            wire: Vec::new(),
            plain: Vec::new(),
            payload: Vec::with_capacity(1024),
            msg_template: plan
                .traffic
                .message
                .as_ref()
                .and_then(|m| m.text.as_deref())
                .map(traffic::parse_template)
                .unwrap_or_default(),
            templates,
            minter,
            next_target: p.index % plan.targets.len().max(1),
            sources,
            next_id: 0,
            seed,
            rng: fastrand::Rng::with_seed(seed),
            snap: Snapshot {
                per_source,
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
        // Ticks in one epoll timeout: entries due sooner than that arm the precise timer.
        let window = 1000 / TICK_US;
        let mut next_snapshot = Instant::now() + self.p.snapshot_every;
        let total = self.clock.total();
        let pending_cap = (self.p.plan.max_pending / self.p.plan.threads.max(1)).max(1) as u64;
        let mut finishing = false;
        let mut last_global = 0.0f64;
        loop {
            let now = Instant::now();
            let stopped = self.p.stop.load(Ordering::Relaxed);
            if !finishing {
                if now >= self.p.start {
                    let elapsed = now - self.p.start;
                    if stopped || elapsed >= total {
                        finishing = true;
                        self.release(u64::MAX);
                    } else {
                        let global = self.clock.target_at(elapsed);
                        let desired = self.p.slice.count(global);
                        let slots = self.slots();
                        // A slice's share of a rising target can dip by one for a moment
                        // (its lower boundary steps before its upper one): open only while
                        // the global target is not falling, release only while it is not
                        // rising, so a ramp never churns connections.
                        if desired > slots && global >= last_global {
                            self.open_more(desired - slots, pending_cap);
                        } else if desired < slots && global <= last_global {
                            self.release(slots - desired);
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
            if let Some(tick) = self.wheel.next_due(window) {
                let due = Duration::from_micros((tick * TICK_US).saturating_sub(self.now_us()));
                precise.arm(due).map_err(EngineError::Poll)?;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_millis(1)))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(EngineError::Poll(e));
            }
            for ev in events.iter() {
                if ev.token() == PRECISE_TOKEN {
                    precise.clear();
                    continue;
                }
                let key = ev.token().0;
                self.on_event(
                    key,
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                );
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

    // ---- opening -------------------------------------------------------------------------

    fn open_more(&mut self, want: u64, pending_cap: u64) {
        let mut opened = 0;
        while (opened as u64) < want && opened < OPENS_PER_TURN && self.pending < pending_cap {
            if !self.open_one(0) {
                break;
            }
            opened += 1;
        }
    }

    /// Start one connection attempt. Returns false when no (source, target) pair has ports
    /// left, in which case nothing was counted.
    fn open_one(&mut self, attempt: u8) -> bool {
        loop {
            let Some(target) = self.next_open_target() else {
                return false;
            };
            let Some(pick) = self.sources.pick(target) else {
                continue;
            };
            let dest = self.p.plan.targets[target].addr;
            let src = pick.addr;
            if src.is_some_and(|s| s.is_ipv4() != dest.is_ipv4()) {
                self.sources.mark_full(pick.index, target);
                continue;
            }
            match start_connect(dest, src, self.opts) {
                Ok(mut sock) => {
                    let now = self.now_us();
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut sock,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.count_attempt(attempt);
                        self.fail_slot(FailureKind::from_io(&e), pick.index, attempt);
                        return true;
                    }
                    let id = self.next_id;
                    self.next_id = self.next_id.wrapping_add(1);
                    entry.insert(Conn {
                        sock,
                        bufs: None,
                        tls: None,
                        mark_us: now,
                        id,
                        source: pick.index as u32,
                        target: target as u16,
                        state: State::Connecting,
                        attempt,
                        seq_next: 0,
                        seq_acked: 0,
                        pong_ms: 0,
                        hb_pending: 0,
                    });
                    self.count_attempt(attempt);
                    self.pending += 1;
                    self.wheel.insert(
                        now / TICK_US + self.connect_timeout_ticks,
                        TimerEntry {
                            key: key as u32,
                            id,
                            kind: TimerKind::ConnectTimeout,
                        },
                    );
                    return true;
                }
                Err(OpenError::PortsExhausted) => {
                    self.snap.per_source[pick.index].addr_not_available += 1;
                    self.sources.mark_full(pick.index, target);
                }
                Err(OpenError::Bind(e)) => {
                    // The address is not usable here (or out of ports entirely): every
                    // target is full for it.
                    self.snap.per_source[pick.index].addr_not_available += 1;
                    for t in 0..self.p.plan.targets.len() {
                        self.sources.mark_full(pick.index, t);
                    }
                    if e.raw_os_error() != Some(libc::EADDRNOTAVAIL)
                        && e.raw_os_error() != Some(libc::EADDRINUSE)
                    {
                        self.count_attempt(attempt);
                        self.fail_slot(FailureKind::from_io(&e), pick.index, attempt);
                        return true;
                    }
                }
                Err(OpenError::Other(e)) => {
                    self.count_attempt(attempt);
                    self.fail_slot(FailureKind::from_io(&e), pick.index, attempt);
                    return true;
                }
            }
        }
    }

    fn count_attempt(&mut self, attempt: u8) {
        self.snap.counters.attempted += 1;
        if attempt > 0 {
            self.snap.counters.reconnects += 1;
        }
    }

    /// Round-robin target that still has a source with free ports.
    fn next_open_target(&mut self) -> Option<usize> {
        let n = self.p.plan.targets.len();
        for _ in 0..n {
            let t = self.next_target;
            self.next_target = (self.next_target + 1) % n;
            if !self.sources.target_full(t) {
                return Some(t);
            }
        }
        None
    }

    /// A slot whose attempt failed before a connection existed.
    fn fail_slot(&mut self, kind: FailureKind, source: usize, attempt: u8) {
        self.snap.counters.fail(kind);
        self.snap.per_source[source].failed += 1;
        self.retire_slot(attempt);
    }

    /// A failed or dropped slot: schedule a reconnect or keep it dead.
    fn retire_slot(&mut self, attempt: u8) {
        match self.p.plan.reconnect {
            Some(rc) => {
                let base = rc.initial.as_micros() as u64;
                let cap = rc.max.as_micros() as u64;
                let exp = base.saturating_mul(1u64 << attempt.min(30)).min(cap).max(1);
                // Half fixed, half jitter: spreads a reconnect storm without losing the back-off.
                let delay = exp / 2 + self.rng.u64(0..=exp / 2);
                self.waiting += 1;
                let at = (self.now_us() + delay) / TICK_US;
                self.wheel.insert(
                    at,
                    TimerEntry {
                        key: 0,
                        id: 0,
                        kind: TimerKind::Reconnect(attempt.saturating_add(1)),
                    },
                );
            }
            None => self.dead += 1,
        }
    }

    // ---- closing -------------------------------------------------------------------------

    /// Release `n` slots: waiting, then dead, then open connections (close), then pending
    /// ones (abort). `u64::MAX` releases everything.
    fn release(&mut self, mut n: u64) {
        let w = n.min(self.waiting);
        self.waiting -= w;
        n -= w;
        let d = n.min(self.dead);
        self.dead -= d;
        n -= d;
        if n == 0 || self.conns.is_empty() {
            return;
        }
        for want_open in [true, false] {
            let cap = self.conns.capacity();
            let mut scanned = 0;
            while n > 0 && scanned < cap {
                let key = self.close_cursor % cap;
                self.close_cursor = (self.close_cursor + 1) % cap;
                scanned += 1;
                let Some(c) = self.conns.get(key) else {
                    continue;
                };
                match (c.state, want_open) {
                    (State::Open, true) => {
                        self.start_close(key);
                        n -= 1;
                    }
                    (
                        State::Connecting
                        | State::TlsHandshaking
                        | State::Handshaking
                        | State::AwaitingReply,
                        false,
                    ) => {
                        self.pending -= 1;
                        self.end(key, End::Aborted);
                        n -= 1;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Client-initiated close of an open connection.
    fn start_close(&mut self, key: usize) {
        self.open -= 1;
        match self.p.plan.close_mode {
            CloseMode::Reset => {
                // If SO_LINGER cannot be set the close is a FIN instead; still a close.
                let _ = set_reset_on_close(&self.conns[key].sock);
                self.end(key, End::Closed);
            }
            CloseMode::Graceful => {
                self.closing += 1;
                let mask = self.rng.u32(..).to_ne_bytes();
                self.out.clear();
                ws::write_client_frame(
                    &mut self.out,
                    ws::opcode::CLOSE,
                    &1000u16.to_be_bytes(),
                    mask,
                );
                let c = &mut self.conns[key];
                c.state = State::Closing;
                let id = c.id;
                if self.send_out(key) {
                    let at = self.now_us() / TICK_US + self.close_timeout_ticks;
                    self.wheel.insert(
                        at,
                        TimerEntry {
                            key: key as u32,
                            id,
                            kind: TimerKind::CloseTimeout,
                        },
                    );
                }
            }
        }
    }

    /// Remove a connection and account for how it ended. The caller has already adjusted
    /// `open`/`pending` where a slot was released on purpose (Closed from Open via
    /// `start_close`, Aborted); for failures and drops this does the gauge work.
    fn end(&mut self, key: usize, how: End) {
        if matches!(how, End::Dropped(_)) {
            self.count_outstanding_lost(key);
        }
        let mut conn = self.conns.remove(key);
        if matches!(how, End::Closed) && self.p.plan.close_mode == CloseMode::Graceful {
            self.send_close_notify(&mut conn);
        }
        match how {
            End::Failed(kind) => {
                self.pending -= 1;
                self.fail_slot(kind, conn.source as usize, conn.attempt);
            }
            End::Dropped(reason) => {
                self.open -= 1;
                self.snap.counters.drop_with(reason);
                self.retire_slot(conn.attempt);
            }
            End::Closed => {
                if conn.state == State::Closing {
                    self.closing -= 1;
                }
                self.snap.counters.closed += 1;
            }
            End::Aborted => self.snap.counters.aborted += 1,
        }
        // Dropping `conn` closes the fd, which also removes it from the epoll set.
    }

    /// Best effort `close_notify` before a `wss://` connection's socket is closed on purpose
    /// (skipped when output is still queued: it would jump the queue).
    fn send_close_notify(&mut self, conn: &mut Conn) {
        if let Some(session) = conn.tls.as_deref_mut()
            && conn.bufs.as_ref().is_none_or(|b| b.output.is_empty())
        {
            session.send_close_notify();
            self.wire.clear();
            tls::take_output(session, &mut self.wire);
            let _ = (&conn.sock).write(&self.wire);
        }
    }

    /// End a connection because of an error or EOF seen in `state`.
    fn end_by_peer(&mut self, key: usize, err: Option<&io::Error>) {
        let state = self.conns[key].state;
        let how = match state {
            State::Connecting => {
                End::Failed(err.map_or(FailureKind::Refused, FailureKind::from_io))
            }
            // The server gave up on the TLS handshake without an alert.
            State::TlsHandshaking => {
                End::Failed(err.map_or(FailureKind::Tls, FailureKind::from_io))
            }
            State::Handshaking | State::AwaitingReply => End::Failed(match err {
                None => FailureKind::ClosedByServer,
                Some(e) => FailureKind::from_io(e),
            }),
            State::Open => End::Dropped(match err {
                None => DropReason::Eof,
                Some(e) if FailureKind::from_io(e) == FailureKind::Reset => DropReason::Reset,
                Some(_) => DropReason::Io,
            }),
            State::Closing => End::Closed,
        };
        self.end(key, how);
    }

    // ---- events --------------------------------------------------------------------------

    fn on_event(&mut self, key: usize, readable: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.state == State::Connecting {
            self.on_connect_event(key);
            return;
        }
        if !conn.idle_buffers() && !self.flush(key) {
            return;
        }
        if readable {
            self.read_ready(key);
        }
    }

    fn on_connect_event(&mut self, key: usize) {
        let conn = &self.conns[key];
        match conn.sock.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.end_by_peer(key, Some(&e)),
        }
        match conn.sock.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // not yet
            Err(e) => return self.end_by_peer(key, Some(&e)),
        }
        let now = self.now_us();
        let conn = &mut self.conns[key];
        record_us(
            &mut self.snap.hist.tcp_connect,
            now.saturating_sub(conn.mark_us),
        );
        conn.mark_us = now;
        let (id, target) = (conn.id, conn.target as usize);
        // One deadline for the TLS handshake and the upgrade together.
        self.wheel.insert(
            now / TICK_US + self.handshake_timeout_ticks,
            TimerEntry {
                key: key as u32,
                id,
                kind: TimerKind::HandshakeTimeout,
            },
        );
        match self.p.tls.as_ref().filter(|t| t.is_tls(target)) {
            Some(tls) => match tls.connect(target) {
                Ok(session) => {
                    let conn = &mut self.conns[key];
                    conn.tls = Some(session);
                    conn.state = State::TlsHandshaking;
                    // The ClientHello.
                    self.send_tls_output(key);
                }
                Err(e) => self.end_by_tls(key, &e),
            },
            None => {
                self.conns[key].state = State::Handshaking;
                self.send_upgrade(key);
            }
        }
    }

    /// The TLS handshake of a `wss://` connection completed: record it and send the upgrade.
    fn on_tls_established(&mut self, key: usize) -> bool {
        let now = self.now_us();
        let conn = &mut self.conns[key];
        record_us(
            &mut self.snap.hist.tls_handshake,
            now.saturating_sub(conn.mark_us),
        );
        self.snap.counters.tls_handshakes += 1;
        if conn
            .tls
            .as_ref()
            .and_then(|t| t.handshake_kind())
            .is_some_and(|k| k == rustls::HandshakeKind::Resumed)
        {
            self.snap.counters.tls_resumed += 1;
        }
        conn.mark_us = now;
        conn.state = State::Handshaking;
        self.send_upgrade(key)
    }

    /// Write the upgrade request (state `Handshaking`). Returns false if the connection ended.
    fn send_upgrade(&mut self, key: usize) -> bool {
        let conn = &self.conns[key];
        let (id, target) = (conn.id, conn.target as usize);
        let wskey = ws::connection_key(self.seed, id as u64);
        let jwt = match &self.minter {
            Some(m) => {
                let number = id as u64 * self.p.conn_stride + self.p.conn_offset;
                let unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                match m.mint(number, unix) {
                    Ok(t) => Some(t),
                    // The key was validated when the minter was built; a failure here is a
                    // per-connection protocol failure rather than a crash.
                    Err(_) => {
                        self.end(key, End::Failed(FailureKind::Protocol));
                        return false;
                    }
                }
            }
            None => None,
        };
        self.out.clear();
        self.templates[target].write(&wskey, jwt.as_deref(), &mut self.out);
        self.send_out(key)
    }

    /// Send the plaintext in `self.out` (encrypted first on `wss://` connections), queueing
    /// what the kernel does not take. Returns false if the connection ended.
    fn send_out(&mut self, key: usize) -> bool {
        let conn = &mut self.conns[key];
        let result = match conn.tls.as_deref_mut() {
            None => {
                self.snap.counters.bytes_sent += self.out.len() as u64;
                write_wire(conn, &self.out)
            }
            Some(session) => {
                self.wire.clear();
                if let Err(e) = tls::encrypt(session, &self.out, &mut self.wire) {
                    self.end_by_tls(key, &e);
                    return false;
                }
                self.snap.counters.bytes_sent += self.wire.len() as u64;
                write_wire(conn, &self.wire)
            }
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                self.end_by_peer(key, Some(&e));
                false
            }
        }
    }

    /// Send the TLS records rustls has queued (handshake messages, alerts, key-update
    /// replies). Returns false if the connection ended.
    fn send_tls_output(&mut self, key: usize) -> bool {
        let conn = &mut self.conns[key];
        let Some(session) = conn.tls.as_deref_mut() else {
            return true;
        };
        if !session.wants_write() {
            return true;
        }
        self.wire.clear();
        tls::take_output(session, &mut self.wire);
        self.snap.counters.bytes_sent += self.wire.len() as u64;
        match write_wire(conn, &self.wire) {
            Ok(()) => true,
            Err(e) => {
                self.end_by_peer(key, Some(&e));
                false
            }
        }
    }

    /// End a connection because of a TLS error: send the alert rustls queued (best effort,
    /// so the server learns why), count the failure by category.
    fn end_by_tls(&mut self, key: usize, e: &rustls::Error) {
        let (kind, alert) = tls::classify(e);
        let conn = &mut self.conns[key];
        if let Some(session) = conn.tls.as_deref_mut() {
            self.wire.clear();
            tls::take_output(session, &mut self.wire);
            let _ = write_wire(conn, &self.wire);
        }
        let how = match conn.state {
            State::Open => End::Dropped(DropReason::Protocol),
            State::Closing => End::Closed,
            _ => {
                if let Some(code) = alert {
                    *self.snap.counters.tls_alerts.entry(code).or_default() += 1;
                }
                End::Failed(kind)
            }
        };
        self.end(key, how);
    }

    /// Write queued output. Returns false if the connection ended.
    fn flush(&mut self, key: usize) -> bool {
        let conn = &mut self.conns[key];
        let Some(bufs) = conn.bufs.as_mut() else {
            return true;
        };
        while !bufs.output.is_empty() {
            match (&conn.sock).write(&bufs.output) {
                Ok(0) => break,
                Ok(n) => {
                    bufs.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.end_by_peer(key, Some(&e));
                    return false;
                }
            }
        }
        conn.release_buffers();
        true
    }

    fn read_ready(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(conn) = self.conns.get_mut(key) {
            match (&conn.sock).read(&mut scratch) {
                Ok(0) => {
                    self.end_by_peer(key, None);
                    break;
                }
                Ok(n) => {
                    self.snap.counters.bytes_received += n as u64;
                    let alive = if conn.tls.is_some() {
                        self.ingest_tls(key, &scratch[..n])
                    } else {
                        self.ingest(key, &scratch[..n])
                    };
                    if !alive {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.end_by_peer(key, Some(&e));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Feed received TLS records to a `wss://` connection: decrypt into the shard's plaintext
    /// scratch, send what rustls answers, move on from the TLS handshake, then hand the
    /// plaintext to [`Self::ingest`]. Returns false if the connection ended.
    fn ingest_tls(&mut self, key: usize, data: &[u8]) -> bool {
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        let alive = self.ingest_tls_with(key, data, &mut plain);
        // Keep the scratch, but not a huge one left by a burst of large frames.
        if plain.capacity() > SCRATCH {
            plain = Vec::new();
        }
        self.plain = plain;
        alive
    }

    fn ingest_tls_with(&mut self, key: usize, data: &[u8], plain: &mut Vec<u8>) -> bool {
        let Some(session) = self.conns[key].tls.as_deref_mut() else {
            return self.ingest(key, data);
        };
        let result = tls::decrypt(session, data, plain);
        let handshake_done = !session.is_handshaking();
        if let Err(e) = result {
            self.end_by_tls(key, &e);
            return false;
        }
        if !self.send_tls_output(key) {
            return false;
        }
        if self.conns[key].state == State::TlsHandshaking
            && handshake_done
            && !self.on_tls_established(key)
        {
            return false;
        }
        plain.is_empty() || self.ingest(key, plain)
    }

    /// Feed received bytes to a connection. Returns false if it ended.
    fn ingest(&mut self, key: usize, data: &[u8]) -> bool {
        let conn = &mut self.conns[key];
        let buffered = conn.bufs.as_ref().is_some_and(|b| !b.input.is_empty());
        if buffered {
            let mut input = std::mem::take(&mut conn.bufs_mut().input);
            input.extend_from_slice(data);
            let (used, alive) = self.process(key, &input);
            if alive {
                input.drain(..used);
                let conn = &mut self.conns[key];
                if input.is_empty() {
                    conn.release_buffers();
                } else {
                    conn.bufs_mut().input = input;
                }
            }
            alive
        } else {
            let (used, alive) = self.process(key, data);
            if alive && used < data.len() {
                self.conns[key]
                    .bufs_mut()
                    .input
                    .extend_from_slice(&data[used..]);
            }
            alive
        }
    }

    /// Parse as much of `buf` as forms complete units. Returns (bytes used, still alive).
    fn process(&mut self, key: usize, buf: &[u8]) -> (usize, bool) {
        let mut pos = 0;
        if self.conns[key].state == State::Handshaking {
            let conn = &self.conns[key];
            let wskey = ws::connection_key(self.seed, conn.id as u64);
            match ws::parse_upgrade_response(buf, &wskey) {
                UpgradeResponse::Partial => return (0, true),
                UpgradeResponse::Accepted { consumed } => {
                    let now = self.now_us();
                    let conn = &mut self.conns[key];
                    record_us(
                        &mut self.snap.hist.ws_handshake,
                        now.saturating_sub(conn.mark_us),
                    );
                    pos = consumed;
                    if !self.after_upgrade(key) {
                        return (pos, false);
                    }
                }
                UpgradeResponse::Status(code) => {
                    *self.snap.counters.http_status.entry(code).or_default() += 1;
                    self.end(key, End::Failed(FailureKind::HttpStatus));
                    return (0, false);
                }
                UpgradeResponse::Invalid(_) => {
                    self.end(key, End::Failed(FailureKind::Protocol));
                    return (0, false);
                }
            }
        }
        let max_frame = self.p.plan.max_frame;
        while pos < buf.len() {
            let frame = match ws::parse_frame_header(&buf[pos..], max_frame) {
                FrameParse::Partial => break,
                FrameParse::Violation(_) => {
                    let how = match self.conns[key].state {
                        State::Closing => End::Closed,
                        State::Open => End::Dropped(DropReason::Protocol),
                        _ => End::Failed(FailureKind::Protocol),
                    };
                    self.end(key, how);
                    return (pos, false);
                }
                FrameParse::Frame(f) => f,
            };
            let total = frame.header_len + frame.payload_len;
            if buf.len() - pos < total {
                break;
            }
            let payload = &buf[pos + frame.header_len..pos + total];
            pos += total;
            self.snap.counters.frames_received += 1;
            if !self.on_frame(key, frame.kind, payload) {
                return (pos, false);
            }
        }
        (pos, true)
    }

    /// Handle one complete server frame. Returns false if the connection ended.
    fn on_frame(&mut self, key: usize, kind: FrameKind, payload: &[u8]) -> bool {
        match kind {
            FrameKind::Text | FrameKind::Binary | FrameKind::Continuation => {
                self.on_data(key, payload)
            }
            FrameKind::Pong => {
                self.on_pong(key, payload);
                true
            }
            FrameKind::Ping => {
                if !matches!(self.conns[key].state, State::Open | State::AwaitingReply) {
                    return true;
                }
                let mask = self.rng.u32(..).to_ne_bytes();
                self.out.clear();
                ws::write_client_frame(&mut self.out, ws::opcode::PONG, payload, mask);
                self.snap.counters.pings_answered += 1;
                self.send_out(key)
            }
            FrameKind::Close => {
                match self.conns[key].state {
                    State::Closing => {
                        self.end(key, End::Closed);
                        return false;
                    }
                    State::AwaitingReply => {
                        self.end(key, End::Failed(FailureKind::ClosedByServer));
                        return false;
                    }
                    _ => {}
                }
                let code = ws::close_code(payload);
                // Echo the close (RFC 6455 §5.5.1); the connection ends either way.
                let mask = self.rng.u32(..).to_ne_bytes();
                self.out.clear();
                let echo: &[u8] = if payload.len() >= 2 {
                    &payload[..2]
                } else {
                    &[]
                };
                ws::write_client_frame(&mut self.out, ws::opcode::CLOSE, echo, mask);
                if self.send_out(key) {
                    self.end(key, End::Dropped(DropReason::CloseCode(code)));
                }
                false
            }
        }
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
            match (t.kind, c.state) {
                (TimerKind::ConnectTimeout, State::Connecting) => {
                    self.end(key, End::Failed(FailureKind::ConnectTimeout))
                }
                (TimerKind::HandshakeTimeout, State::TlsHandshaking) => {
                    self.end(key, End::Failed(FailureKind::TlsHandshakeTimeout))
                }
                (TimerKind::HandshakeTimeout, State::Handshaking | State::AwaitingReply) => {
                    self.end(key, End::Failed(FailureKind::HandshakeTimeout))
                }
                (TimerKind::CloseTimeout, State::Closing) => self.end(key, End::Closed),
                (
                    kind @ (TimerKind::SendMessage
                    | TimerKind::SendPing(_)
                    | TimerKind::SendHeartbeat(_)
                    | TimerKind::PingTimeout(_)
                    | TimerKind::HeartbeatTimeout(_)),
                    State::Open,
                ) => {
                    self.on_traffic_timer(key, kind);
                }
                _ => {}
            }
        }
        self.expired = expired;
    }
}

/// Write `data` to the connection's socket, queueing in `Conn::bufs` what the kernel does not
/// take (and everything while older output is still queued, to keep the order).
fn write_wire(conn: &mut Conn, data: &[u8]) -> io::Result<()> {
    if conn.bufs.as_ref().is_some_and(|b| !b.output.is_empty()) {
        conn.bufs_mut().output.extend_from_slice(data);
        return Ok(());
    }
    let mut written = 0;
    while written < data.len() {
        match (&conn.sock).write(&data[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if written < data.len() {
        conn.bufs_mut().output.extend_from_slice(&data[written..]);
    }
    Ok(())
}
