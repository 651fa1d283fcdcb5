//! permessage-deflate on the shard's read and write paths: compress outgoing data messages,
//! collect and inflate incoming compressed ones (with `--max-frame` capping the inflated
//! size), and count payload vs wire bytes. Which state lives where (per shard, per
//! connection) is explained in [`crate::engine::deflate`].

use super::{SCRATCH, Shard};
use crate::engine::deflate::{
    self, FRAGMENTED, IN_MESSAGE, InflateError, Negotiated, TEXT, UTF8_SHIFT,
};
use crate::engine::validate;
use crate::engine::ws::{self, FrameKind, ServerFrame};

impl Shard {
    /// Frame `payload` as a masked client frame into `self.out` (replacing what it held),
    /// compressed when it is a data message and the connection negotiated
    /// permessage-deflate.
    pub(super) fn frame_out(&mut self, key: usize, opcode: u8, payload: &[u8]) {
        self.out.clear();
        self.frame_append(key, opcode, payload);
    }

    /// Like [`Self::frame_out`], appending to `self.out`: several frames of one connection
    /// then go out in one `send_out` (one `write`). Text frames get their `--data`
    /// placeholders filled first.
    pub(super) fn frame_append(&mut self, key: usize, opcode: u8, payload: &[u8]) {
        if opcode == ws::opcode::TEXT
            && let Some(fill) = &self.fill
        {
            let mut filled = std::mem::take(&mut self.filled);
            filled.clear();
            fill.apply(payload, self.conn_no(key), &mut filled);
            self.frame_append_as_is(key, opcode, &filled);
            self.filled = filled;
            return;
        }
        self.frame_append_as_is(key, opcode, payload);
    }

    /// [`Self::frame_append`] without filling placeholders.
    fn frame_append_as_is(&mut self, key: usize, opcode: u8, payload: &[u8]) {
        let mask = self.rng.u32(..).to_ne_bytes();
        let data = opcode == ws::opcode::TEXT || opcode == ws::opcode::BINARY;
        if !data {
            ws::write_client_frame(&mut self.out, opcode, payload, mask);
            return;
        }
        let c = &mut self.snap.counters.compression;
        c.payload_bytes_sent += payload.len() as u64;
        match Negotiated::unpack(self.conns[key].deflate) {
            None => {
                c.wire_bytes_sent += payload.len() as u64;
                ws::write_client_frame(&mut self.out, opcode, payload, mask);
            }
            Some(n) => {
                let mut buf = std::mem::take(&mut self.deflated);
                self.compressors
                    .deflate(n.deflate_bits(), payload, &mut buf);
                let c = &mut self.snap.counters.compression;
                c.wire_bytes_sent += buf.len() as u64;
                c.messages_compressed_sent += 1;
                ws::write_compressed_frame(&mut self.out, opcode, &buf, mask);
                if buf.capacity() > SCRATCH {
                    buf = Vec::new();
                }
                self.deflated = buf;
            }
        }
    }

    /// A text, binary or continuation frame arrived. Plain frames go to `on_data` as they
    /// are; the fragments of a compressed message are collected (in `Bufs::message`) and the
    /// message is inflated when its last fragment arrives. RFC 6455 is enforced on the way:
    /// no new data message while a fragmented one is open, no continuation outside one, and
    /// text must be UTF-8 (checked per fragment with the state in `Conn::deflate`, so no
    /// per-connection buffer). Returns false if the connection ended.
    pub(super) fn on_data_frame(&mut self, key: usize, f: ServerFrame, payload: &[u8]) -> bool {
        let state = self.conns[key].deflate;
        let collecting = state & IN_MESSAGE != 0;
        let open = state & (IN_MESSAGE | FRAGMENTED) != 0;
        let first = f.kind != FrameKind::Continuation;
        if first == open {
            let why = if first {
                "new data message inside a fragmented one"
            } else {
                "continuation frame outside a fragmented message"
            };
            self.end_protocol(key, why);
            return false;
        }
        let text = if first {
            f.kind == FrameKind::Text
        } else {
            state & TEXT != 0
        };
        let c = &mut self.snap.counters.compression;
        c.wire_bytes_received += payload.len() as u64;
        if !collecting && !f.compressed {
            c.payload_bytes_received += payload.len() as u64;
            if first && f.fin {
                // The common case: a whole message in one frame.
                if text && std::str::from_utf8(payload).is_err() {
                    self.end_protocol(key, "text message is not valid UTF-8");
                    return false;
                }
                return self.on_data(key, payload);
            }
            let mut pending = 0;
            if text {
                let before = (state >> UTF8_SHIFT) as u8 & 3;
                match validate::utf8_fragment(before, payload, f.fin) {
                    Some(p) => pending = p,
                    None => {
                        self.end_protocol(key, "text message is not valid UTF-8");
                        return false;
                    }
                }
            }
            let conn = &mut self.conns[key];
            conn.deflate &= !(FRAGMENTED | TEXT | (3 << UTF8_SHIFT));
            if !f.fin {
                conn.deflate |= FRAGMENTED | ((pending as u16) << UTF8_SHIFT);
                if text {
                    conn.deflate |= TEXT;
                }
            }
            return self.on_data(key, payload);
        }
        let max = self.p.plan.max_frame as usize;
        let conn = &mut self.conns[key];
        if !f.fin {
            let b = conn.bufs_mut();
            if b.message.len() + payload.len() > max {
                self.end_protocol(key, "compressed message larger than --max-frame");
                return false;
            }
            b.message.extend_from_slice(payload);
            let held = b.message.len() as u64;
            conn.deflate |= IN_MESSAGE;
            if text {
                conn.deflate |= TEXT;
            }
            let peak = &mut self.snap.gauges.buffered_peak;
            *peak = (*peak).max(held);
            return true;
        }
        conn.deflate &= !(IN_MESSAGE | TEXT);
        let mut collected = match conn.bufs.as_mut() {
            Some(b) if collecting => std::mem::take(&mut b.message),
            _ => Vec::new(),
        };
        let data: &[u8] = if collecting {
            if collected.len() + payload.len() > max {
                self.end_protocol(key, "compressed message larger than --max-frame");
                return false;
            }
            collected.extend_from_slice(payload);
            &collected
        } else {
            payload
        };
        let mut out = std::mem::take(&mut self.inflated);
        let result = self.inflate_message(key, data, &mut out, max);
        let alive = match result {
            Ok(()) if text && std::str::from_utf8(&out).is_err() => {
                self.end_protocol(key, "text message is not valid UTF-8");
                false
            }
            Ok(()) => {
                let c = &mut self.snap.counters.compression;
                c.payload_bytes_received += out.len() as u64;
                c.messages_compressed_received += 1;
                self.conns[key].release_buffers();
                self.on_data(key, &out)
            }
            Err(InflateError::TooLarge) => {
                self.end_protocol(key, "compressed message inflates past --max-frame");
                false
            }
            Err(InflateError::Corrupt) => {
                self.end_protocol(key, "compressed message is not valid deflate data");
                false
            }
        };
        // Keep the scratch, but not a large one left by a big message.
        if out.capacity() > SCRATCH {
            out = Vec::new();
        }
        self.inflated = out;
        alive
    }

    /// Inflate one complete message with the right inflater: the shard's (reset first) when
    /// the server resets its context per message, else the connection's own window
    /// (allocated now if this is its first compressed message).
    fn inflate_message(
        &mut self,
        key: usize,
        data: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        let n = Negotiated::unpack(self.conns[key].deflate).unwrap_or_default();
        if n.server_no_context_takeover {
            let d = self.inflater.get_or_insert_with(|| deflate::inflater(15));
            d.reset(false);
            deflate::inflate(d, data, out, max).map(drop)
        } else {
            let b = self.conns[key].bufs_mut();
            if b.inflate.is_none() {
                b.inflate = Some(Box::new(deflate::inflater(n.inflate_bits())));
                self.snap.counters.compression.inflate_windows += 1;
            }
            let d = b.inflate.as_deref_mut().expect("set above");
            if deflate::inflate(d, data, out, max)? {
                // The server ended its stream (BFINAL): the next message starts afresh.
                d.reset(false);
            }
            Ok(())
        }
    }
}
