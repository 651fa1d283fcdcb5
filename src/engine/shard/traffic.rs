//! Traffic on held connections: WebSocket pings, application heartbeats, the first message,
//! and timed messages with echo latency — without coordinated omission.
//!
//! Every periodic send has an *intended* time derived from its schedule, never from when it
//! happened to go out: `intended(k) = open_time + phase + k × period`, where `phase` is a
//! per-connection pseudo-random offset in `[0, period)` (so 100K connections do not fire on the
//! same tick). Nothing about the schedule is stored per connection except counters:
//!
//! - messages: `seq_next` (next sequence to send) and `seq_acked` (oldest sequence not yet
//!   echoed). The payload carries the 32-byte [`marker`](crate::engine::marker): intended
//!   send time as wall-clock Unix µs, this run's nonce, the connection number and the
//!   sequence. A marker the connection sent itself is its echo: latency is `receive time −
//!   intended time` (on the monotonic clock, converted back exactly), so a stalled gateway or
//!   a generator that fell behind shows up as latency, not as fewer samples, and
//!   `schedule_lag` records how late each send actually went out. Echoes arrive in order on a
//!   connection, so a sequence skipped by a later echo is lost; a sequence outstanding past
//!   `--message-timeout` is lost; sequences outstanding when the server drops the
//!   connection are lost (not when the client closes it on purpose). A marker of any other
//!   sender (another connection, another process) is fan-out — a chat room delivering a
//!   message it published: `fanout_latency` = receive wall clock − the marker's wall clock.
//!   Only `--publishers` send; every connection receives.
//! - server push (`--push-timestamp`): a frame that is none of the above and carries a
//!   creation time gives `push_latency` = receive wall clock − that time.
//! - pings: the payload is the intended send time (8 bytes, µs); the pong carries it back.
//!   `pong_ms` remembers the newest answered ping so a timeout entry can tell whether its
//!   ping was answered.
//! - heartbeats: `hb_pending` is `k + 1` of the outstanding heartbeat (0: none); the expected
//!   reply is matched as a byte substring of any data frame, text or binary.
//!
//! ## Why the write path batches
//!
//! On loopback a `write` of one small frame costs a few µs of system time — the TCP send
//! and, inline, the receiving side's processing — against well under 1 µs of user time to
//! build and mask the frame: the message path is syscall-bound (≈ 88 % system time when
//! every message was its own `write`). So every message a connection has due when its
//! timer fires is framed into one buffer and written with one call: the catch-up burst of
//! a generator that fell behind, and, for schedules faster than one message per
//! [`SEND_TICK_US`] per connection, everything that fell due during the last send tick
//! (tcpkali paces the same way, with a 1 ms minimum sleep). Latency stays honest: each
//! message still carries its own intended time, so the wait for the batch (≤ one send
//! tick) is in `schedule_lag` and in the round trip. What the kernel does not take stays
//! queued in the connection's output buffer and goes first on the next writable event.

use std::io::Write as _;

use memchr::memmem;

use super::{End, Shard, TICK_US, TimerEntry, TimerKind};
use crate::engine::conn::State;
use crate::engine::marker::Marker;
use crate::engine::ws;
use crate::metrics::{DropReason, record_us};
use crate::plan::session::Envelope;

/// Most overdue messages sent in one burst when the generator fell behind.
const CATCH_UP_BURST: u32 = 64;

/// The send tick of fast schedules: a connection whose messages are due more often than
/// once per this many µs sends them in batches, at most one write per tick, each message at
/// most one tick after its intended time. Slower schedules send every message at its own
/// intended time (µs precision through the precise timer). See "Why the write path
/// batches" in the module docs.
pub(super) const SEND_TICK_US: u64 = 1000;

pub use crate::plan::payload::{Part, message_template as parse_template};

/// Per-connection phase in `[0, period_us)` from the connection id and a salt.
fn phase(seed: u64, id: u32, salt: u64, period_us: u64) -> u64 {
    let mut x = seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) % period_us.max(1)
}

const SALT_MSG: u64 = 1;
/// Pings share the messages' phase: with equal periods (`--ping-interval 30s
/// --message-rate 1/30s`) a connection's ping and message fall due together and go out in
/// one write (see `Shard::flush_dirty`), and the gateway answers both in one wake-up.
const SALT_PING: u64 = SALT_MSG;
const SALT_HB: u64 = 3;
const SALT_BURST: u64 = 4;

/// The message schedule with `--message-burst`, on the shard's clock (µs): cycles of
/// `every` starting at `zero` (the run start plus this connection's spread offset); each
/// cycle opens with `count` messages due at its start (back to back) followed by the steady
/// messages (`rate × every`, rounded) evenly spaced inside it. Message `g` (counted from
/// `zero`) has one intended time, so latency stays `receive − intended` and a connection
/// opened mid-cycle simply starts at the first message due after it opened.
struct BurstSchedule {
    zero: u64,
    every: u64,
    count: u64,
    steady: u64,
}

impl BurstSchedule {
    fn new(b: &crate::plan::recovery::MessageBurst, rate: f64, zero: u64) -> Self {
        let every = (b.every.as_micros() as u64).max(1);
        BurstSchedule {
            zero,
            every,
            count: b.count as u64,
            steady: (rate * b.every.as_secs_f64()).round() as u64,
        }
    }

    /// Intended time of message `g`.
    fn intended(&self, g: u64) -> u64 {
        let per = self.count + self.steady;
        let (cycle, j) = (g / per, g % per);
        let offset = if j < self.count {
            0
        } else {
            (j - self.count + 1) * self.every / (self.steady + 1)
        };
        self.zero + cycle * self.every + offset
    }

    /// The first message due at or after `t`.
    fn first_at_or_after(&self, t: u64) -> u64 {
        let per = self.count + self.steady;
        let rel = t.saturating_sub(self.zero);
        let cycle = rel / self.every;
        let into = rel % self.every;
        if into == 0 {
            return cycle * per;
        }
        // Steady message i (1-based) is due at i × every / (steady + 1) into the cycle.
        let i = (into * (self.steady + 1)).div_ceil(self.every);
        if i <= self.steady {
            cycle * per + self.count + i - 1
        } else {
            (cycle + 1) * per
        }
    }
}

impl Shard {
    fn msg_period_us(&self) -> Option<u64> {
        self.p
            .plan
            .traffic
            .message
            .as_ref()
            .map(|m| ((1e6 / m.rate) as u64).max(1))
    }

    /// Intended send time of message `seq` of connection `key`.
    fn msg_intended(&self, key: usize, seq: u32) -> u64 {
        let c = &self.conns[key];
        if let (Some(b), Some(m)) = (
            &self.p.plan.traffic.message_burst,
            &self.p.plan.traffic.message,
        ) {
            let start_us = self
                .p
                .start
                .saturating_duration_since(self.p.epoch)
                .as_micros() as u64;
            let spread = b.spread.as_micros() as u64;
            let schedule = BurstSchedule::new(
                b,
                m.rate,
                start_us + phase(self.seed, c.id, SALT_BURST, spread),
            );
            return schedule.intended(schedule.first_at_or_after(c.mark_us) + seq as u64);
        }
        let period = self.msg_period_us().unwrap_or(1);
        c.mark_us + phase(self.seed, c.id, SALT_MSG, period) + seq as u64 * period
    }

    fn schedule(&mut self, key: usize, at_us: u64, kind: TimerKind) {
        let id = self.conns[key].id;
        self.wheel.insert(
            at_us.div_ceil(TICK_US),
            TimerEntry {
                key: key as u32,
                id,
                kind,
            },
        );
    }

    /// The upgrade succeeded: run the open sequence (or start the held-connection schedules
    /// at once when there is none). Returns false if the connection ended.
    pub(super) fn after_upgrade(&mut self, key: usize) -> bool {
        self.advance_open(key, 0)
    }

    /// The connection number of `key` (what `{conn}` renders to).
    pub(super) fn conn_no(&self, key: usize) -> u64 {
        self.conns[key].id as u64 * self.p.conn_stride + self.p.conn_offset
    }

    /// Run the open sequence from step `from`: send until the next expectation (then wait
    /// in `AwaitingReply`, the step index kept in `hb_pending`, which heartbeats do not use
    /// before the connection is established) or the end (then it is established).
    fn advance_open(&mut self, key: usize, from: usize) -> bool {
        let conn = self.conn_no(key);
        for i in from..self.open_steps.len() {
            let mut buf = std::mem::take(&mut self.payload);
            let binary = self.open_steps[i].render(conn, &mut buf);
            let sent = match binary {
                None => {
                    self.payload = buf;
                    let c = &mut self.conns[key];
                    c.state = State::AwaitingReply;
                    c.hb_pending = i as u32;
                    return true;
                }
                Some(binary) => {
                    let op = if binary {
                        ws::opcode::BINARY
                    } else {
                        ws::opcode::TEXT
                    };
                    self.frame_out(key, op, &buf);
                    self.payload = buf;
                    self.send_out(key)
                }
            };
            if !sent {
                return false;
            }
        }
        self.conns[key].hb_pending = 0;
        self.established(key);
        true
    }

    /// Answer `payload` with the first auto-reply rule that matches it. Returns false if the
    /// connection ended.
    fn auto_reply(&mut self, key: usize, payload: &[u8]) -> bool {
        let plan = self.p.plan.clone();
        let rules = &plan.traffic.session.replies;
        let mut groups: Vec<&[u8]> = Vec::new();
        let Some(i) = rules
            .iter()
            .position(|r| r.pattern.captures(payload, &mut groups))
        else {
            return true;
        };
        let rule = &rules[i];
        let mut buf = std::mem::take(&mut self.payload);
        buf.clear();
        rule.response.render(self.conn_no(key), &groups, &mut buf);
        let op = if rule.response.frame == crate::plan::payload::FrameType::Binary {
            ws::opcode::BINARY
        } else {
            ws::opcode::TEXT
        };
        self.frame_out(key, op, &buf);
        self.payload = buf;
        let counters = &mut self.snap.counters;
        if counters.replies.len() < rules.len() {
            counters.replies.resize(rules.len(), 0);
        }
        counters.replies[i] += 1;
        if rule.server_ping {
            counters.server_pings_answered += 1;
        }
        self.send_out(key)
    }

    /// Count the connection as established and start its schedules.
    pub(super) fn established(&mut self, key: usize) {
        let now = self.now_us();
        let c = &mut self.conns[key];
        c.state = State::Open;
        c.mark_us = now;
        let (id, source, target) = (c.id, c.source as usize, c.target as usize);
        self.pending -= 1;
        self.open += 1;
        self.snap.counters.established += 1;
        self.snap.per_source[source].established += 1;
        self.snap.per_target[target].established += 1;
        self.schedule_session_end(key);
        let plan = self.p.plan.clone();
        let t = &plan.traffic;
        if let Some(period) = self.msg_period_us()
            && self
                .p
                .publishers
                .is_none_or(|p| p.includes(self.conn_no(key)))
        {
            let at = match t.message_burst {
                None => now + phase(self.seed, id, SALT_MSG, period),
                Some(_) => self.msg_intended(key, 0),
            };
            self.schedule(key, at, TimerKind::SendMessage);
        }
        if let Some(p) = &t.ping {
            let period = p.interval.as_micros() as u64;
            let at = now + phase(self.seed, id, SALT_PING, period);
            self.schedule(key, at, TimerKind::SendPing(0));
        }
        if let Some(h) = &t.heartbeat {
            let period = h.interval.as_micros() as u64;
            let at = now + phase(self.seed, id, SALT_HB, period);
            self.schedule(key, at, TimerKind::SendHeartbeat(0));
        }
    }

    /// A traffic timer fired for an open connection. Returns false if it ended.
    pub(super) fn on_traffic_timer(&mut self, key: usize, kind: TimerKind) -> bool {
        match kind {
            TimerKind::SendMessage => self.send_due_messages(key),
            TimerKind::SendPing(k) => self.send_ping(key, k),
            TimerKind::SendHeartbeat(k) => self.send_heartbeat(key, k),
            TimerKind::PingTimeout(intended_ms) => {
                if self.conns[key].pong_ms < intended_ms {
                    self.count_timeout_drop(key);
                    return false;
                }
                true
            }
            TimerKind::HeartbeatTimeout(k) => {
                if self.conns[key].hb_pending == k + 1 {
                    self.count_timeout_drop(key);
                    return false;
                }
                true
            }
            _ => true,
        }
    }

    fn count_timeout_drop(&mut self, key: usize) {
        self.end(key, End::Dropped(DropReason::PingTimeout));
    }

    fn send_due_messages(&mut self, key: usize) -> bool {
        let plan = self.p.plan.clone();
        let Some(spec) = &plan.traffic.message else {
            return true;
        };
        let now = self.now_us();
        let timeout = spec.timeout.as_micros() as u64;
        // Expire what is overdue: outstanding past the timeout is lost.
        loop {
            let c = &self.conns[key];
            if c.seq_acked >= c.seq_next {
                break;
            }
            let seq = c.seq_acked;
            if self.msg_intended(key, seq) + timeout > now {
                break;
            }
            self.conns[key].seq_acked += 1;
            self.snap.counters.messages_lost += 1;
        }
        // Every message due now is framed into `self.out` and goes out in one write.
        let opcode = match &plan.traffic.session.envelope {
            Envelope::MqttPublish { .. } => ws::opcode::BINARY,
            Envelope::NatsPub { .. } => ws::opcode::TEXT,
            Envelope::Raw if spec.text.is_some() => ws::opcode::TEXT,
            Envelope::Raw => ws::opcode::BINARY,
        };
        self.out.clear();
        let mut burst = 0;
        loop {
            let seq = self.conns[key].seq_next;
            let intended = self.msg_intended(key, seq);
            // Due within the early window: it goes out with this wake-up (see `timers`).
            if intended > now + self.wheel.early_us || burst >= CATCH_UP_BURST {
                // Batched: the next write carries what falls due during the next send tick.
                let earliest = if self.msg_period_us().unwrap_or(u64::MAX) < SEND_TICK_US {
                    now + SEND_TICK_US
                } else {
                    now + TICK_US
                };
                self.schedule(key, intended.max(earliest), TimerKind::SendMessage);
                break;
            }
            // Early: stamped with when it actually goes out, so the round trip is never short.
            self.build_message(key, seq, intended.min(now), spec);
            let payload = std::mem::take(&mut self.payload);
            self.frame_append(key, opcode, &payload);
            let len = payload.len() as u64;
            self.payload = payload;
            record_us(
                &mut self.snap.hist.schedule_lag,
                now.saturating_sub(intended),
            );
            self.snap.counters.messages_sent += 1;
            self.snap.counters.message_bytes_sent += len;
            self.conns[key].seq_next += 1;
            burst += 1;
        }
        burst == 0 || self.send_out(key)
    }

    /// Render message `seq` into `self.payload`.
    fn build_message(
        &mut self,
        key: usize,
        seq: u32,
        intended: u64,
        spec: &crate::plan::MessageSpec,
    ) {
        let conn_no = self.conn_no(key);
        let marker = Marker {
            wall_us: (self.wall_base_us + intended as i64) as u64,
            nonce: self.nonce,
            conn: conn_no,
            seq,
        };
        let mut p = std::mem::take(&mut self.payload);
        p.clear();
        if let Envelope::MqttPublish { topic } | Envelope::NatsPub { subject: topic } =
            &self.p.plan.traffic.session.envelope
        {
            let mut t = Vec::new();
            topic.render(self.conn_no(key), &[], &mut t);
            let mut body = Vec::with_capacity(spec.size);
            marker.write(&mut body);
            let fill = spec.size.saturating_sub(body.len());
            body.extend(std::iter::repeat_n(b'x', fill));
            match &self.p.plan.traffic.session.envelope {
                Envelope::NatsPub { .. } => {
                    p.extend_from_slice(b"PUB ");
                    p.extend_from_slice(&t);
                    drop(write!(p, " {}\r\n", body.len()));
                    p.extend_from_slice(&body);
                    p.extend_from_slice(b"\r\n");
                }
                _ => crate::plan::session::mqtt::publish(&t, &body, &mut p),
            }
        } else if self.msg_template.is_empty() {
            marker.write(&mut p);
            p.resize(spec.size.max(p.len()), b'x');
        } else {
            let unix_ms = marker.wall_us / 1000;
            let mut pad_at = None;
            for part in &self.msg_template {
                match part {
                    Part::Lit(b) => p.extend_from_slice(b),
                    // Writing into a Vec cannot fail.
                    Part::Conn => drop(write!(p, "{conn_no}")),
                    Part::Seq => drop(write!(p, "{seq}")),
                    Part::Ts => drop(write!(p, "{unix_ms}")),
                    Part::Marker => marker.write(&mut p),
                    Part::Pad => pad_at = Some(p.len()),
                    Part::Group(_) => {}
                }
            }
            let fill = spec.size.saturating_sub(p.len());
            match pad_at {
                // Inside a string of the envelope (JSON, a STOMP body): filler letters.
                Some(at) => {
                    p.splice(at..at, std::iter::repeat_n(b'x', fill));
                }
                None => p.extend(std::iter::repeat_n(b' ', fill)),
            }
        }
        self.payload = p;
    }

    fn send_ping(&mut self, key: usize, k: u32) -> bool {
        let plan = self.p.plan.clone();
        let Some(spec) = &plan.traffic.ping else {
            return true;
        };
        let now = self.now_us();
        let c = &self.conns[key];
        let period = spec.interval.as_micros() as u64;
        let intended = c.mark_us + phase(self.seed, c.id, SALT_PING, period) + k as u64 * period;
        // Late: the intended time (coordinated omission); early (see `timers`): now, so the
        // round trip is never measured short.
        let stamp = intended.min(now);
        self.frame_out(key, ws::opcode::PING, &stamp.to_be_bytes());
        record_us(
            &mut self.snap.hist.schedule_lag,
            now.saturating_sub(intended),
        );
        self.snap.counters.pings_sent += 1;
        if !self.send_out(key) {
            return false;
        }
        let timeout = spec.timeout.as_micros() as u64;
        let stamp_ms = (stamp / 1000) as u32;
        self.schedule(key, intended + timeout, TimerKind::PingTimeout(stamp_ms));
        // Next ping: the next scheduled slot after now (skipped slots are not sent late in a
        // burst; a late ping's lag is in schedule_lag and its RTT).
        let mut next = k + 1;
        while c_intended(self, key, SALT_PING, period, next) <= now {
            next += 1;
        }
        let at = c_intended(self, key, SALT_PING, period, next);
        self.schedule(key, at, TimerKind::SendPing(next));
        true
    }

    fn send_heartbeat(&mut self, key: usize, k: u32) -> bool {
        let plan = self.p.plan.clone();
        let Some(spec) = &plan.traffic.heartbeat else {
            return true;
        };
        let now = self.now_us();
        let period = spec.interval.as_micros() as u64;
        let intended = c_intended(self, key, SALT_HB, period, k);
        let op = if spec.binary {
            ws::opcode::BINARY
        } else {
            ws::opcode::TEXT
        };
        self.frame_out(key, op, &spec.text);
        record_us(
            &mut self.snap.hist.schedule_lag,
            now.saturating_sub(intended),
        );
        self.snap.counters.heartbeats_sent += 1;
        if !self.send_out(key) {
            return false;
        }
        if spec.expect.is_some() {
            self.conns[key].hb_pending = k + 1;
            let timeout = spec.timeout.as_micros() as u64;
            self.schedule(key, intended + timeout, TimerKind::HeartbeatTimeout(k));
        }
        let mut next = k + 1;
        while c_intended(self, key, SALT_HB, period, next) <= now {
            next += 1;
        }
        let at = c_intended(self, key, SALT_HB, period, next);
        self.schedule(key, at, TimerKind::SendHeartbeat(next));
        true
    }

    /// A pong arrived. One that cannot answer a ping of ours (not 8 bytes, or a time before
    /// the connection was established or in the future: unsolicited, RFC 6455 §5.5.3) is
    /// ignored.
    pub(super) fn on_pong(&mut self, key: usize, payload: &[u8]) {
        let Ok(bytes) = <[u8; 8]>::try_from(payload) else {
            return;
        };
        let intended = u64::from_be_bytes(bytes);
        let now = self.now_us();
        if intended > now || intended < self.conns[key].mark_us {
            return; // not one of ours
        }
        record_us(&mut self.snap.hist.ping_rtt, now - intended);
        self.snap.counters.pongs_received += 1;
        let c = &mut self.conns[key];
        c.pong_ms = c.pong_ms.max((intended / 1000) as u32);
    }

    /// A complete text or binary frame arrived. Returns false if the connection ended.
    pub(super) fn on_data(&mut self, key: usize, payload: &[u8]) -> bool {
        let now = self.now_us();
        self.snap.counters.message_bytes_received += payload.len() as u64;
        if !self.p.plan.traffic.session.replies.is_empty() && !self.auto_reply(key, payload) {
            return false;
        }
        let state = self.conns[key].state;
        if state == State::AwaitingReply {
            self.snap.counters.other_messages_received += 1;
            let step = self.conns[key].hb_pending as usize;
            if let Some(crate::plan::session::OpenStep::Expect(p)) = self.open_steps.get(step)
                && p.matches(payload)
            {
                return self.advance_open(key, step + 1);
            }
            return true;
        }
        let mut ours = false;
        if let Some(m) = Marker::find(payload) {
            if m.is_from(self.nonce, self.conn_no(key)) {
                let c = &mut self.conns[key];
                if m.seq < c.seq_next && m.seq >= c.seq_acked {
                    // Sequences before this one that never came back are lost (echoes are
                    // ordered).
                    self.snap.counters.messages_lost += (m.seq - c.seq_acked) as u64;
                    c.seq_acked = m.seq + 1;
                    // Our own wall clock converts back to the monotonic intended time exactly.
                    let intended = (m.wall_us as i64 - self.wall_base_us).max(0) as u64;
                    record_us(
                        &mut self.snap.hist.message_rtt,
                        now.saturating_sub(intended),
                    );
                    self.snap.counters.messages_received += 1;
                    ours = true;
                }
            } else {
                // Another connection's message (fan-out): wall clock against wall clock. A
                // sender whose clock is ahead gives a negative age, recorded as the minimum.
                let age = self.wall_base_us + now as i64 - m.wall_us as i64;
                record_us(&mut self.snap.hist.fanout_latency, age.max(0) as u64);
                self.snap.counters.fanout_received += 1;
                ours = true;
            }
        }
        // A frame that carried a timed message is not a heartbeat reply, even if it happens
        // to contain the reply's bytes (Engine.IO 3's pong is just `3`).
        if !ours
            && let Some(h) = &self.p.plan.traffic.heartbeat
            && let Some(expect) = &h.expect
        {
            let pending = self.conns[key].hb_pending;
            if pending > 0 && memmem::find(payload, expect).is_some() {
                let period = h.interval.as_micros() as u64;
                let intended = c_intended(self, key, SALT_HB, period, pending - 1);
                record_us(
                    &mut self.snap.hist.heartbeat_rtt,
                    now.saturating_sub(intended),
                );
                self.snap.counters.heartbeat_replies += 1;
                self.conns[key].hb_pending = 0;
                ours = true;
            }
        }
        if !ours
            && let Some(pt) = &self.p.plan.traffic.push_timestamp
            && let Some(created) = pt.read_unix_us(payload)
        {
            let age = self.wall_base_us + now as i64 - created;
            record_us(&mut self.snap.hist.push_latency, age.max(0) as u64);
            self.snap.counters.pushes_received += 1;
            ours = true;
        }
        if !ours {
            self.snap.counters.other_messages_received += 1;
        }
        true
    }

    /// Messages still outstanding on a connection the server dropped are lost.
    pub(super) fn count_outstanding_lost(&mut self, key: usize) {
        let c = &self.conns[key];
        self.snap.counters.messages_lost += (c.seq_next - c.seq_acked) as u64;
    }
}

/// Intended time of slot `k` of a periodic schedule of connection `key`.
fn c_intended(s: &Shard, key: usize, salt: u64, period: u64, k: u32) -> u64 {
    let c = &s.conns[key];
    c.mark_us + phase(s.seed, c.id, salt, period) + k as u64 * period
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parts() {
        let parts = parse_template("{\"c\":{conn},\"s\":{seq},\"t\":{ts}}");
        assert!(matches!(parts.last(), Some(Part::Marker)));
        assert_eq!(parts.iter().filter(|p| matches!(p, Part::Conn)).count(), 1);
        let parts = parse_template("a{marker}b");
        assert_eq!(
            parts.iter().filter(|p| matches!(p, Part::Marker)).count(),
            1
        );
    }

    #[test]
    fn burst_schedule_is_monotonic_and_starts_after_open() {
        let b = crate::plan::recovery::MessageBurst::parse("3@1s~0s").unwrap();
        // 3 back to back + 1/s × 1 s = 1 steady message per cycle, at half the cycle.
        let s = BurstSchedule::new(&b, 1.0, 1_000);
        let times: Vec<u64> = (0..8).map(|g| s.intended(g)).collect();
        assert_eq!(
            times,
            [
                1_000, 1_000, 1_000, 501_000, 1_001_000, 1_001_000, 1_001_000, 1_501_000
            ]
        );
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        for t in [
            0, 1_000, 1_001, 501_000, 501_001, 1_000_999, 1_001_000, 7_777_777,
        ] {
            let g = s.first_at_or_after(t);
            assert!(s.intended(g) >= t, "t {t}: g {g}");
            assert!(
                g == 0 || s.intended(g - 1) < t,
                "t {t}: g {g} is not the first"
            );
        }
    }

    #[test]
    fn phases_spread_over_the_period() {
        let period = 1_000_000;
        let mut buckets = [0u32; 10];
        for id in 0..10_000u32 {
            let ph = phase(7, id, SALT_MSG, period);
            assert!(ph < period);
            buckets[(ph * 10 / period) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
    }
}
