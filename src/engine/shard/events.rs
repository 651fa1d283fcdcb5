//! Socket events: the connect check, TLS, the upgrade request, queued writes, reads into the
//! shard's scratch buffer, and parsing of the upgrade response and frames. Plaintext goes
//! through `send_out` (encrypted there for `wss://`) and `ingest` (after decryption), so the
//! WebSocket code never sees TLS.

use std::io::{self, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{End, SCRATCH, Shard, TICK_US, TimerEntry, TimerKind};
use crate::engine::conn::{Conn, State};
use crate::engine::ws::{self, FrameKind, FrameParse, UpgradeResponse};
use crate::engine::{tls, validate};
use crate::metrics::{DropReason, FailureKind, record_us};

impl Shard {
    // ---- events --------------------------------------------------------------------------

    /// A readiness event for connection `key`. `closed`: the event also reported the peer's
    /// FIN or an error, so reading must go on until the kernel says so (see
    /// [`Self::read_ready`]).
    pub(super) fn on_event(&mut self, key: usize, readable: bool, closed: bool) {
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
        if readable && !Self::never_reads(&self.conns[key]) {
            self.read_ready(key, closed);
        }
    }

    pub(super) fn on_connect_event(&mut self, key: usize) {
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
        if conn.misbehave == 0 {
            record_us(
                &mut self.snap.hist.tcp_connect,
                now.saturating_sub(conn.mark_us),
            );
        }
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
    pub(super) fn on_tls_established(&mut self, key: usize) -> bool {
        let now = self.now_us();
        let conn = &mut self.conns[key];
        if conn.misbehave == 0 {
            record_us(
                &mut self.snap.hist.tls_handshake,
                now.saturating_sub(conn.mark_us),
            );
            self.snap.counters.tls_handshakes += 1;
        }
        if conn.misbehave == 0
            && conn
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
    pub(super) fn send_upgrade(&mut self, key: usize) -> bool {
        let conn = &self.conns[key];
        let (id, target) = (conn.id, conn.target as usize);
        let wskey = ws::connection_key(self.seed, id as u64);
        if conn.misbehave != 0 && self.write_misbehaving_upgrade(&wskey, conn.misbehave, target) {
            self.fill_out(key);
            return self.send_out(key);
        }
        let jwt = match &self.minter {
            Some(m) => {
                let number = id as u64 * self.p.conn_stride + self.p.conn_offset;
                let unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                match m.mint_filled(number, unix, self.fill.as_ref()) {
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
        self.fill_out(key);
        if self.offer.is_some() {
            self.snap.counters.compression.offered += 1;
        }
        self.send_out(key)
    }

    /// Fill the placeholders of connection `key` in `self.out` (the upgrade request), when
    /// the plan has any (`--data`, `{agent}`, `{process}`).
    fn fill_out(&mut self, key: usize) {
        if let Some(fill) = &self.fill {
            let mut filled = std::mem::take(&mut self.filled);
            filled.clear();
            fill.apply(&self.out, self.conn_no(key), &mut filled);
            std::mem::swap(&mut self.out, &mut filled);
            self.filled = filled;
        }
    }

    /// Send the plaintext in `self.out` (encrypted first on `wss://` connections), queueing
    /// what the kernel does not take. Returns false if the connection ended.
    pub(super) fn send_out(&mut self, key: usize) -> bool {
        let conn = &mut self.conns[key];
        let data: &[u8] = match conn.tls.as_deref_mut() {
            None => &self.out,
            Some(session) => {
                self.wire.clear();
                if let Err(e) = tls::encrypt(session, &self.out, &mut self.wire) {
                    self.end_by_tls(key, &e);
                    return false;
                }
                &self.wire
            }
        };
        self.snap.counters.bytes_sent += data.len() as u64;
        if self.defer_writes {
            // Written once per connection after the timer batch (see `flush_dirty`).
            queue_wire(conn, data, key, &mut self.dirty);
            return true;
        }
        match write_wire(conn, data) {
            Ok(()) => true,
            Err(e) => {
                self.end_by_peer(key, Some(&e));
                false
            }
        }
    }

    /// Send the TLS records rustls has queued (handshake messages, alerts, key-update
    /// replies). Returns false if the connection ended.
    pub(super) fn send_tls_output(&mut self, key: usize) -> bool {
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
    pub(super) fn end_by_tls(&mut self, key: usize, e: &rustls::Error) {
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
                self.snap.counters.example(kind.label(), || e.to_string());
                End::Failed(kind)
            }
        };
        self.end(key, how);
    }

    /// Write queued output. Returns false if the connection ended.
    pub(super) fn flush(&mut self, key: usize) -> bool {
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

    /// Read until the socket is drained. Sockets are edge-triggered: a read that returns
    /// less than the scratch buffer has emptied the receive queue, and data arriving after
    /// it raises a new event — so the loop stops there instead of paying one more `read`
    /// for the `EAGAIN` (one of the syscalls per echoed message). Only when the event
    /// carried the peer's FIN or an error (`drain`) is the socket read until EOF/error,
    /// since that news would not be announced again.
    pub(super) fn read_ready(&mut self, key: usize, drain: bool) {
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
                    if !alive || (n < scratch.len() && !drain) {
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
    pub(super) fn ingest_tls(&mut self, key: usize, data: &[u8]) -> bool {
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

    pub(super) fn ingest_tls_with(&mut self, key: usize, data: &[u8], plain: &mut Vec<u8>) -> bool {
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
    pub(super) fn ingest(&mut self, key: usize, data: &[u8]) -> bool {
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
                    let peak = &mut self.snap.gauges.buffered_peak;
                    *peak = (*peak).max(input.len() as u64);
                    conn.bufs_mut().input = input;
                }
            }
            alive
        } else {
            let (used, alive) = self.process(key, data);
            if alive && used < data.len() {
                let rest = &data[used..];
                self.conns[key].bufs_mut().input.extend_from_slice(rest);
                let peak = &mut self.snap.gauges.buffered_peak;
                *peak = (*peak).max(rest.len() as u64);
            }
            alive
        }
    }

    /// Parse as much of `buf` as forms complete units. Returns (bytes used, still alive).
    pub(super) fn process(&mut self, key: usize, buf: &[u8]) -> (usize, bool) {
        if self.conns[key].misbehave != 0 {
            return self.process_misbehaving(key, buf);
        }
        let mut pos = 0;
        if self.conns[key].state == State::Handshaking {
            let conn = &self.conns[key];
            let wskey = ws::connection_key(self.seed, conn.id as u64);
            match ws::parse_upgrade_response(buf, &wskey, self.offer.as_ref()) {
                UpgradeResponse::Partial => return (0, true),
                UpgradeResponse::Accepted { consumed, deflate } => {
                    if let Some(n) = deflate {
                        self.conns[key].deflate = n.pack();
                        self.snap.counters.compression.accept(&n.label());
                    }
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
                UpgradeResponse::TooLarge => {
                    self.snap
                        .counters
                        .example("handshake_too_large", || {
                            format!(
                                "no end of the response head in {} bytes (cap: 16 KiB or 32 header lines)",
                                buf.len()
                            )
                        });
                    self.end(key, End::Failed(FailureKind::HandshakeTooLarge));
                    return (0, false);
                }
                UpgradeResponse::Invalid(why) => {
                    self.snap.counters.example("protocol", || why.to_string());
                    self.end(key, End::Failed(FailureKind::Protocol));
                    return (0, false);
                }
            }
        }
        let max_frame = self.p.plan.max_frame;
        let deflate = self.conns[key].deflate & crate::engine::deflate::ON != 0;
        while pos < buf.len() {
            let frame = match ws::parse_frame_header(&buf[pos..], max_frame, deflate) {
                FrameParse::Partial => break,
                FrameParse::Violation(why) => {
                    self.end_protocol(key, why);
                    return (pos, false);
                }
                FrameParse::Frame(f) => f,
            };
            // Checked: `payload_len` is bounded by `--max-frame` (≤ MAX_MAX_FRAME), but the
            // sum must never wrap whatever a server sends.
            let Some(total) = frame.header_len.checked_add(frame.payload_len) else {
                self.end(key, End::Dropped(DropReason::Protocol));
                return (pos, false);
            };
            if buf.len() - pos < total {
                break;
            }
            let payload = &buf[pos + frame.header_len..pos + total];
            pos += total;
            self.snap.counters.frames_received += 1;
            if !self.on_frame(key, frame, payload) {
                return (pos, false);
            }
        }
        (pos, true)
    }

    /// Handle one complete server frame. Returns false if the connection ended.
    pub(super) fn on_frame(&mut self, key: usize, frame: ws::ServerFrame, payload: &[u8]) -> bool {
        match frame.kind {
            FrameKind::Text | FrameKind::Binary | FrameKind::Continuation => {
                self.on_data_frame(key, frame, payload)
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
                        self.end(key, End::Failed(FailureKind::OpenSequenceClosed));
                        return false;
                    }
                    _ => {}
                }
                if let Some(why) = validate::close_payload_violation(payload) {
                    self.end_protocol(key, why);
                    return false;
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
}

impl Shard {
    /// End a connection for a protocol violation (`why` kept as the `protocol` example).
    pub(super) fn end_protocol(&mut self, key: usize, why: &'static str) {
        let how = match self.conns[key].state {
            State::Closing => End::Closed,
            State::Open | State::Misbehaving => End::Dropped(DropReason::Protocol),
            _ => End::Failed(FailureKind::Protocol),
        };
        self.snap.counters.example("protocol", || why.to_string());
        self.end(key, how);
    }
}

/// Write `data` to the connection's socket, queueing in `Conn::bufs` what the kernel does not
/// take (and everything while older output is still queued, to keep the order).
/// Queue `data` behind what `conn` already has to write; list `key` in `dirty` when its
/// queue was empty (a non-empty queue is already waiting for the socket to be writable).
fn queue_wire(conn: &mut Conn, data: &[u8], key: usize, dirty: &mut Vec<usize>) {
    let output = &mut conn.bufs_mut().output;
    if output.is_empty() {
        dirty.push(key);
    }
    output.extend_from_slice(data);
}

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
