//! Opening and ending connections: socket set-up over the source pool and targets, slot
//! accounting (failed and dropped slots stay dead or wait for a reconnect), ramp-down
//! release, client-initiated closes, and the bookkeeping of how each connection ended.

use std::io::{self, Write};

use mio::{Interest, Token};

use super::{End, OPENS_PER_TURN, Shard, TICK_US, TimerEntry, TimerKind};
use crate::engine::conn::{Conn, OpenError, State, set_reset_on_close, start_connect};
use crate::engine::source::{Pick, RETRY_MAX_US};
use crate::engine::tls::{self};
use crate::engine::ws::{self};
use crate::metrics::{DropReason, FailureKind, record_us};
use crate::plan::CloseMode;

impl Shard {
    // ---- opening -------------------------------------------------------------------------

    pub(super) fn open_more(&mut self, want: u64, pending_cap: u64) {
        let mut opened = 0;
        while (opened as u64) < want && opened < OPENS_PER_TURN && self.pending < pending_cap {
            if !self.open_one(0) {
                break;
            }
            opened += 1;
        }
    }

    /// Start one connection attempt. Returns false when no (source, target) pair can be
    /// tried now (all full, no retry due), in which case nothing was counted. A reconnect
    /// (`attempt > 0`) that finds no pair waits for the source pool's next retry instead and
    /// counts as handled (true): the slot stays waiting, not dead.
    pub(super) fn open_one(&mut self, attempt: u8) -> bool {
        loop {
            let now = self.now_us();
            let Some((target, pick)) = self.next_pick(now) else {
                if attempt > 0 {
                    self.reconnect_after_retry(attempt, now);
                    return true;
                }
                return false;
            };
            if pick.retry {
                self.snap.counters.source_port_retries += 1;
            }
            let dest = self.p.plan.targets[target].addr;
            let src = pick.addr;
            if src.is_some_and(|s| s.is_ipv4() != dest.is_ipv4()) {
                self.sources.mark_unusable(pick.index, target);
                continue;
            }
            match start_connect(dest, src, self.opts) {
                Ok(mut sock) => {
                    // connect() got a local port: the pair is not full (any more).
                    if pick.retry {
                        self.sources.mark_ok(pick.index, target);
                    }
                    let misbehave = self.misbehave_code(self.next_id);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut sock,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.count_attempt(attempt);
                        self.fail_slot(FailureKind::from_io(&e), pick.index, target, attempt);
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
                        deflate: 0,
                        misbehave,
                    });
                    if let Some(kind) = crate::plan::misbehave::MisbehaveKind::from_code(misbehave)
                    {
                        // Beside the slot, not in it: on to a normal connection for the slot.
                        self.snap.counters.misbehave.opened(kind);
                        self.arm_connect_timeout(key, id, now);
                        continue;
                    }
                    self.count_attempt(attempt);
                    self.pending += 1;
                    self.arm_connect_timeout(key, id, now);
                    return true;
                }
                Err(OpenError::PortsExhausted) => {
                    // Full for now: retried with back-off once the target has no other pair.
                    self.snap.per_source[pick.index].addr_not_available += 1;
                    self.sources.mark_full(pick.index, target, now);
                }
                Err(OpenError::Bind(e)) => {
                    // The address is not usable here (or out of ports entirely): every
                    // target is full for it.
                    self.snap.per_source[pick.index].addr_not_available += 1;
                    for t in 0..self.p.plan.targets.len() {
                        self.sources.mark_full(pick.index, t, now);
                    }
                    if e.raw_os_error() != Some(libc::EADDRNOTAVAIL)
                        && e.raw_os_error() != Some(libc::EADDRINUSE)
                    {
                        self.count_attempt(attempt);
                        self.fail_slot(FailureKind::from_io(&e), pick.index, target, attempt);
                        return true;
                    }
                }
                Err(OpenError::Other(e)) => {
                    self.count_attempt(attempt);
                    self.fail_slot(FailureKind::from_io(&e), pick.index, target, attempt);
                    return true;
                }
            }
        }
    }

    fn arm_connect_timeout(&mut self, key: usize, id: u32, now: u64) {
        self.wheel.insert(
            now / TICK_US + self.connect_timeout_ticks,
            TimerEntry {
                key: key as u32,
                id,
                kind: TimerKind::ConnectTimeout,
            },
        );
    }

    /// A reconnect that found every pair full: wait (still counted in `waiting`) until the
    /// earliest retry of the source pool is due, then try again with the same attempt number.
    fn reconnect_after_retry(&mut self, attempt: u8, now: u64) {
        let due = (0..self.p.plan.targets.len())
            .filter_map(|t| self.sources.next_retry(t))
            .min()
            .unwrap_or(now + RETRY_MAX_US)
            .max(now + TICK_US);
        self.waiting += 1;
        self.wheel.insert(
            due / TICK_US,
            TimerEntry {
                key: 0,
                id: 0,
                kind: TimerKind::Reconnect(attempt),
            },
        );
    }

    pub(super) fn count_attempt(&mut self, attempt: u8) {
        self.snap.counters.attempted += 1;
        if attempt > 0 {
            self.snap.counters.reconnects += 1;
        }
    }

    /// Round-robin target with a source that can be tried now (free ports, or a full pair
    /// whose retry is due), and that source.
    pub(super) fn next_pick(&mut self, now_us: u64) -> Option<(usize, Pick)> {
        let n = self.p.plan.targets.len();
        for _ in 0..n {
            let t = self.next_target;
            self.next_target = (self.next_target + 1) % n;
            if let Some(pick) = self.sources.pick(t, now_us) {
                return Some((t, pick));
            }
        }
        None
    }

    /// A slot whose attempt failed before a connection existed.
    pub(super) fn fail_slot(
        &mut self,
        kind: FailureKind,
        source: usize,
        target: usize,
        attempt: u8,
    ) {
        self.snap.counters.fail(kind);
        self.snap.per_source[source].failed += 1;
        self.snap.per_target[target].failed += 1;
        self.retire_slot(attempt);
    }

    /// A failed or dropped slot: schedule a reconnect or keep it dead.
    pub(super) fn retire_slot(&mut self, attempt: u8) {
        match self.p.plan.reconnect {
            Some(rc) => {
                let base = rc.initial.as_micros() as u64;
                let cap = rc.max.as_micros() as u64;
                let exp = base.saturating_mul(1u64 << attempt.min(30)).min(cap).max(1);
                // Part fixed, part random (`--reconnect-jitter`, half and half by default):
                // spreads a reconnect storm without losing the back-off; 0 keeps the storm.
                let random = (exp as f64 * rc.jitter.clamp(0.0, 1.0)) as u64;
                let delay = exp - random + self.rng.u64(0..=random);
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
    pub(super) fn release(&mut self, mut n: u64) {
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
                if c.misbehave != 0 {
                    // Not a slot: it ends on its own (or `unfinished` at the end of the run).
                    continue;
                }
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
    pub(super) fn start_close(&mut self, key: usize) {
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
    pub(super) fn end(&mut self, key: usize, how: End) {
        let c = &self.conns[key];
        if c.misbehave != 0 {
            let answer = Self::answer_of(c.state, how);
            return self.end_misbehaving(key, answer);
        }
        if matches!(how, End::Dropped(_)) {
            self.count_outstanding_lost(key);
        }
        let mut conn = self.conns.remove(key);
        if matches!(how, End::Closed | End::Dropped(_)) {
            // Established → closed or dropped: `mark_us` holds the time the connection was
            // established from then on (the schedules count from it), so no extra field.
            let ms = self.now_us().saturating_sub(conn.mark_us) / 1000;
            record_us(&mut self.snap.hist.session_duration, ms);
        }
        if matches!(how, End::Closed) && self.p.plan.close_mode == CloseMode::Graceful {
            self.send_close_notify(&mut conn);
        }
        match how {
            End::Failed(kind) => {
                self.pending -= 1;
                self.fail_slot(
                    kind,
                    conn.source as usize,
                    conn.target as usize,
                    conn.attempt,
                );
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
    pub(super) fn send_close_notify(&mut self, conn: &mut Conn) {
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
    pub(super) fn end_by_peer(&mut self, key: usize, err: Option<&io::Error>) {
        let state = self.conns[key].state;
        let how = match state {
            State::Connecting => {
                End::Failed(err.map_or(FailureKind::Refused, FailureKind::from_io))
            }
            // The server gave up on the TLS handshake without an alert.
            State::TlsHandshaking => {
                End::Failed(err.map_or(FailureKind::Tls, FailureKind::from_io))
            }
            State::Handshaking => End::Failed(match err {
                None => FailureKind::ClosedByServer,
                Some(e) => FailureKind::from_io(e),
            }),
            State::AwaitingReply => End::Failed(match err {
                None => FailureKind::OpenSequenceClosed,
                Some(e) => FailureKind::from_io(e),
            }),
            State::Open | State::Misbehaving => End::Dropped(match err {
                None => DropReason::Eof,
                Some(e) if FailureKind::from_io(e) == FailureKind::Reset => DropReason::Reset,
                Some(_) => DropReason::Io,
            }),
            State::Closing => End::Closed,
        };
        self.end(key, how);
    }
}
