//! Misbehaving connections (`--misbehave`): opened beside the normal ones, they break one
//! rule each and wait for the gateway's answer, which is counted per kind
//! ([`crate::metrics::misbehave`]) and nowhere else.
//!
//! A normal connection pays nothing for this: the kind is one byte of [`Conn`] that fits in
//! its padding (`Conn::misbehave`, 0 for a normal connection), and the auth templates exist
//! only when `bad-token` or `no-auth` is asked for. Misbehaving connections are not slots of
//! the stage plan: they never touch `pending`, `open`, the failure and drop counters or the
//! latency histograms.
//!
//! Life of one: connect (TLS) → upgrade request (without or with a bad token for the auth
//! kinds) → the 101 → the misbehaviour ([`crate::engine::misbehave::write_misbehaviour`]) →
//! state `Misbehaving` until the answer: a close frame, EOF, a reset, or the bound (the
//! handshake timeout) — `timeout`, or `held` for a `slow-reader`, which never reads until
//! then. Every misbehaving connection ends with a reset (`SO_LINGER` 0), so none lingers in
//! `TIME_WAIT`.

use std::io::{self, Read};

use super::{End, Shard, TICK_US, TimerEntry, TimerKind};
use crate::engine::conn::{Conn, State, set_reset_on_close};
use crate::engine::misbehave::write_misbehaviour;
use crate::engine::ws::{self, FrameKind, FrameParse, UpgradeResponse};
use crate::metrics::misbehave::Answer;
use crate::metrics::{DropReason, FailureKind};
use crate::plan::misbehave::{MisbehaveKind, pick};

impl Shard {
    /// The misbehaviour code of connection `id` (0: a normal connection).
    pub(super) fn misbehave_code(&self, id: u32) -> u8 {
        let list = &self.p.plan.misbehave;
        if list.is_empty() {
            return 0;
        }
        pick(list, id as u64 * self.p.conn_stride + self.p.conn_offset)
    }

    /// The upgrade request of an auth kind into `self.out`; false for the other kinds (they
    /// send the normal request).
    pub(super) fn write_misbehaving_upgrade(
        &mut self,
        conn_key: &[u8; 24],
        code: u8,
        target: usize,
    ) -> bool {
        let Some(kind) = MisbehaveKind::from_code(code).filter(|k| k.is_auth()) else {
            return false;
        };
        self.out.clear();
        self.auth_templates[target].write(kind, conn_key, &mut self.out);
        true
    }

    /// Bytes from a misbehaving connection: its upgrade response, then the frames that
    /// answer its misbehaviour. Returns (bytes used, still alive).
    pub(super) fn process_misbehaving(&mut self, key: usize, buf: &[u8]) -> (usize, bool) {
        let conn = &self.conns[key];
        let kind = MisbehaveKind::from_code(conn.misbehave).expect("a misbehaving connection");
        let mut pos = 0;
        if conn.state == State::Handshaking {
            let wskey = ws::connection_key(self.seed, conn.id as u64);
            match ws::parse_upgrade_response(buf, &wskey, self.offer.as_ref()) {
                UpgradeResponse::Partial => return (0, true),
                UpgradeResponse::Status(code) => {
                    self.end_misbehaving(key, Answer::Http(code));
                    return (0, false);
                }
                UpgradeResponse::TooLarge | UpgradeResponse::Invalid(_) => {
                    self.end_misbehaving(key, Answer::BadResponse);
                    return (0, false);
                }
                UpgradeResponse::Accepted { consumed, .. } => {
                    if kind.is_auth() {
                        self.end_misbehaving(key, Answer::Upgraded);
                        return (consumed, false);
                    }
                    if !self.misbehave_now(key, kind) {
                        return (consumed, false);
                    }
                    pos = consumed;
                }
            }
        }
        // Waiting for the answer: skip data frames (echoes), stop at a close frame.
        while pos < buf.len() {
            let frame = match ws::parse_frame_header(&buf[pos..], self.p.plan.max_frame, true) {
                FrameParse::Partial => break,
                FrameParse::Violation(_) => {
                    self.end_misbehaving(key, Answer::BadResponse);
                    return (pos, false);
                }
                FrameParse::Frame(f) => f,
            };
            let Some(total) = frame.header_len.checked_add(frame.payload_len) else {
                self.end_misbehaving(key, Answer::BadResponse);
                return (pos, false);
            };
            if buf.len() - pos < total {
                break;
            }
            let payload = &buf[pos + frame.header_len..pos + total];
            pos += total;
            if frame.kind == FrameKind::Close {
                self.end_misbehaving(key, Answer::Close(ws::close_code(payload)));
                return (pos, false);
            }
        }
        (pos, true)
    }

    /// Upgraded: send the misbehaviour and wait for the answer. Returns false if the
    /// connection ended.
    fn misbehave_now(&mut self, key: usize, kind: MisbehaveKind) -> bool {
        let mask = self.rng.u32(..).to_ne_bytes();
        self.out.clear();
        write_misbehaviour(kind, mask, &mut self.out);
        let c = &mut self.conns[key];
        c.state = State::Misbehaving;
        let id = c.id;
        if !self.send_out(key) {
            return false;
        }
        if kind == MisbehaveKind::AbruptClose {
            self.end_misbehaving(key, Answer::ClientReset);
            return false;
        }
        self.wheel.insert(
            self.now_us() / TICK_US + self.handshake_timeout_ticks,
            TimerEntry {
                key: key as u32,
                id,
                kind: TimerKind::AnswerTimeout,
            },
        );
        true
    }

    /// True when events of this connection must not read (a `slow-reader` never reads until
    /// its bound runs out).
    pub(super) fn never_reads(c: &Conn) -> bool {
        c.state == State::Misbehaving && c.misbehave == MisbehaveKind::SlowReader.code()
    }

    /// A timer of a misbehaving connection fired.
    pub(super) fn on_misbehave_timer(&mut self, key: usize, timer: TimerKind) {
        let c = &self.conns[key];
        let answer = match (timer, c.state) {
            (TimerKind::ConnectTimeout, State::Connecting)
            | (TimerKind::HandshakeTimeout, State::TlsHandshaking) => Answer::ConnectFailed,
            (TimerKind::HandshakeTimeout, State::Handshaking) => Answer::Timeout,
            (TimerKind::AnswerTimeout, State::Misbehaving) if Self::never_reads(c) => {
                self.probe_slow_reader(key)
            }
            (TimerKind::AnswerTimeout, State::Misbehaving) => Answer::Timeout,
            _ => return,
        };
        self.end_misbehaving(key, answer);
    }

    /// The bound of a `slow-reader` ran out: read (and discard) what is waiting, to learn
    /// whether the gateway still holds the connection.
    fn probe_slow_reader(&mut self, key: usize) -> Answer {
        let mut scratch = std::mem::take(&mut self.scratch);
        let conn = &self.conns[key];
        let answer = loop {
            match (&conn.sock).read(&mut scratch) {
                Ok(0) => break Answer::Eof,
                Ok(n) => self.snap.counters.bytes_received += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Answer::Held,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break Answer::Reset,
            }
        };
        self.scratch = scratch;
        answer
    }

    /// How a misbehaving connection that ended through the normal paths (`end`) was answered.
    pub(super) fn answer_of(state: State, how: End) -> Answer {
        if matches!(how, End::Closed | End::Aborted) {
            return Answer::Unfinished;
        }
        if matches!(state, State::Connecting | State::TlsHandshaking) {
            return Answer::ConnectFailed;
        }
        match how {
            End::Dropped(DropReason::CloseCode(c)) => Answer::Close(c),
            End::Dropped(DropReason::Reset | DropReason::Io)
            | End::Failed(FailureKind::Reset | FailureKind::Io) => Answer::Reset,
            End::Dropped(DropReason::Eof)
            | End::Failed(FailureKind::ClosedByServer | FailureKind::OpenSequenceClosed) => {
                Answer::Eof
            }
            End::Dropped(DropReason::PingTimeout)
            | End::Failed(
                FailureKind::HandshakeTimeout
                | FailureKind::OpenSequenceTimeout
                | FailureKind::PingTimeout
                | FailureKind::TlsHandshakeTimeout
                | FailureKind::ConnectTimeout,
            ) => Answer::Timeout,
            _ => Answer::BadResponse,
        }
    }

    /// Remove a misbehaving connection (with a reset) and count its answer.
    pub(super) fn end_misbehaving(&mut self, key: usize, answer: Answer) {
        let conn = self.conns.remove(key);
        // Without SO_LINGER the close is a FIN: still an end.
        let _ = set_reset_on_close(&conn.sock);
        if let Some(kind) = MisbehaveKind::from_code(conn.misbehave) {
            self.snap.counters.misbehave.answered(kind, answer);
        }
    }

    /// The run is over: misbehaving connections still waiting end `unfinished`.
    pub(super) fn abort_misbehaving(&mut self) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.misbehave != 0)
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.end_misbehaving(key, Answer::Unfinished);
        }
    }
}
