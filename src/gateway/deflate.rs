//! permessage-deflate (RFC 7692) for the embedded gateway (`wsscale serve --compression
//! deflate`).
//!
//! tungstenite 0.30 has no permessage-deflate and refuses frames with RSV1 set, so a
//! gateway with compression on runs this module's connection instead of tungstenite's: the
//! upgrade request is parsed with tungstenite's own request parser and answered with its
//! `create_response` (after the same auth / capacity / subprotocol callback as the plain
//! path), then a small frame loop echoes messages, answers pings and completes the close
//! handshake. It serves the echo only (no `--echo-delay`, push or broadcast: the CLI
//! refuses those together with `--compression`).
//!
//! Negotiation, like most servers: the first permessage-deflate offer whose parameters are
//! valid is accepted; `server_no_context_takeover`, `client_no_context_takeover` and
//! `client_max_window_bits=N` are granted when asked for, `server_max_window_bits=N` is
//! honoured. Context takeover is left on otherwise, so a browser-like client keeps its
//! context and the gateway pays for an inflate window per connection — allocated when the
//! client's first compressed message arrives, not at the upgrade. Outgoing messages use one
//! compressor per runtime thread, reset per message (valid with or without context
//! takeover), so an idle connection holds no deflate state (see [`crate::engine::deflate`]
//! for the codec both sides share).

use std::cell::RefCell;
use std::io::Cursor;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use flate2::Decompress;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::timeout;
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{Request, create_response, write_response};
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::connection::{CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT, OpenGuard};
use super::stats::GatewayStats;
use super::{MAX_FRAME_SIZE, READ_BUFFER_SIZE, Shared};
use crate::engine::deflate::{self, Compressors, Negotiated};

/// Largest upgrade request head accepted.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

thread_local! {
    /// One compressor set per runtime thread, reset per message.
    static COMPRESSORS: RefCell<Compressors> = RefCell::new(Compressors::default());
}

/// The answer to a client's `Sec-WebSocket-Extensions`, if one of its offers is acceptable.
pub fn negotiate(offers: &str) -> Option<Negotiated> {
    'offer: for offer in offers.split(',') {
        let mut parts = offer.split(';').map(str::trim);
        if !parts
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate"))
        {
            continue;
        }
        let mut n = Negotiated::default();
        let mut seen = [false; 4];
        for p in parts {
            let (name, value) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (p, None),
            };
            let bits = value
                .map(|v| v.parse::<u8>().ok().filter(|b| (8..=15).contains(b)))
                .map(|b| b.ok_or(()));
            let i = match (name, bits) {
                ("server_no_context_takeover", None) => 0,
                ("client_no_context_takeover", None) => 1,
                ("server_max_window_bits", Some(Ok(_))) => 2,
                ("client_max_window_bits", None | Some(Ok(_))) => 3,
                _ => continue 'offer,
            };
            if std::mem::replace(&mut seen[i], true) {
                continue 'offer;
            }
            let bits = bits.and_then(Result::ok);
            match i {
                0 => n.server_no_context_takeover = true,
                1 => n.client_no_context_takeover = true,
                2 => n.server_max_window_bits = bits,
                _ => n.client_max_window_bits = bits,
            }
        }
        return Some(n);
    }
    None
}

/// Serve one connection with permessage-deflate available: handshake, then echo.
pub(super) async fn serve<S>(mut stream: S, shared: &Shared, stop: &mut watch::Receiver<()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stats = &*shared.stats;
    let mut buf = Vec::with_capacity(READ_BUFFER_SIZE);
    let slot = AtomicU8::new(Slot::NotDecided as u8);
    let upgraded = tokio::select! {
        r = timeout(HANDSHAKE_TIMEOUT, Box::pin(upgrade(&mut stream, shared, &mut buf, &slot))) => r.ok().flatten(),
        _ = stop.changed() => None,
    };
    let Some(deflate) = upgraded else {
        match slot.load(Relaxed) {
            s if s == Slot::Rejected as u8 => {}
            s if s == Slot::Taken as u8 => {
                // 101 could not be delivered: give the slot back.
                stats.release_open();
                GatewayStats::incr(&stats.handshake_failed);
            }
            _ => GatewayStats::incr(&stats.handshake_failed),
        }
        return;
    };
    GatewayStats::incr(&stats.upgraded);
    let _open = OpenGuard(stats);
    let mut conn = Conn {
        deflate,
        inflate: None,
        message: Vec::new(),
        opcode: 0,
        compressed: false,
    };
    let stopping = tokio::select! {
        () = conn.echo(&mut stream, &mut buf, stats) => false,
        _ = stop.changed() => true,
    };
    if stopping {
        let mut close = Vec::new();
        server_frame(&mut close, 0x88, &1001u16.to_be_bytes());
        let _ = timeout(CLOSE_TIMEOUT, stream.write_all(&close)).await;
    }
}

/// What the upgrade decided, read after it ended (or timed out) to keep the counters exact.
#[repr(u8)]
#[derive(Clone, Copy)]
enum Slot {
    /// Not decided (bad request, timeout, reset before the request was read).
    NotDecided,
    /// Answered 401 or 503 (already counted).
    Rejected,
    /// An `open` slot was taken and 101 is being sent.
    Taken,
}

/// Read and answer the upgrade request. `Some`: upgraded (with permessage-deflate or not);
/// `None`: failed or rejected (`slot` says which). Bytes after the request head stay in
/// `buf`.
async fn upgrade<S>(
    stream: &mut S,
    shared: &Shared,
    buf: &mut Vec<u8>,
    slot: &AtomicU8,
) -> Option<Option<Negotiated>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (consumed, request) = loop {
        match Request::try_parse(buf) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) if buf.len() < MAX_REQUEST_HEAD => {}
            _ => return None,
        }
        buf.reserve(1024);
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    };
    buf.drain(..consumed);
    let Ok(response) = create_response(&request) else {
        let _ = stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            )
            .await;
        return None;
    };
    let mut response = match shared.on_upgrade(&request, response) {
        Ok(r) => {
            slot.store(Slot::Taken as u8, Relaxed);
            r
        }
        Err(rejection) => {
            slot.store(Slot::Rejected as u8, Relaxed);
            let mut out = Vec::new();
            let _ = write_response(&mut out, &rejection);
            out.extend_from_slice(rejection.body().as_deref().unwrap_or("").as_bytes());
            let _ = stream.write_all(&out).await;
            return None;
        }
    };
    let deflate = request
        .headers()
        .get_all("sec-websocket-extensions")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(negotiate);
    if let Some(n) = &deflate
        && let Ok(v) = HeaderValue::from_str(&n.label())
    {
        response.headers_mut().insert("sec-websocket-extensions", v);
        GatewayStats::incr(&shared.stats.deflate_accepted);
    }
    let mut out = Vec::with_capacity(256);
    write_response(&mut out, &response).ok()?;
    stream.write_all(&out).await.ok()?;
    Some(deflate)
}

/// One upgraded connection's state.
struct Conn {
    deflate: Option<Negotiated>,
    /// The inflate window for a client with context takeover (after its first compressed
    /// message).
    inflate: Option<Box<Decompress>>,
    /// Fragments of the message being received (empty between messages).
    message: Vec<u8>,
    opcode: u8,
    compressed: bool,
}

/// What to do after a frame.
enum Next {
    Continue,
    Stop,
}

impl Conn {
    /// Read frames and echo messages until the connection ends.
    async fn echo<S>(&mut self, stream: &mut S, buf: &mut Vec<u8>, stats: &GatewayStats)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut out = Vec::new();
        loop {
            loop {
                out.clear();
                let (next, used) = match self.frame(buf, &mut out, stats) {
                    Some(x) => x,
                    None => break,
                };
                buf.drain(..used);
                if !out.is_empty() && stream.write_all(&out).await.is_err() {
                    return;
                }
                if let Next::Stop = next {
                    return;
                }
            }
            if out.capacity() > READ_BUFFER_SIZE {
                out = Vec::new();
            }
            if buf.capacity() > READ_BUFFER_SIZE && buf.len() <= READ_BUFFER_SIZE {
                buf.shrink_to(READ_BUFFER_SIZE);
            }
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(READ_BUFFER_SIZE);
            }
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Handle the frame at the start of `buf`, writing any answer into `out`. `None`: not a
    /// complete frame yet. A protocol error answers with close 1002 (1009 for a frame or
    /// message above the cap, 1007 for text that is not UTF-8) and stops.
    fn frame(
        &mut self,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        stats: &GatewayStats,
    ) -> Option<(Next, usize)> {
        let mut cur = Cursor::new(&*buf);
        let (hdr, len) = match FrameHeader::parse(&mut cur) {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            Err(_) => return Some(self.fail(out, buf.len())),
        };
        let head = cur.position() as usize;
        if len > MAX_FRAME_SIZE as u64 {
            return Some(self.fail_with(out, buf.len(), 1009));
        }
        let total = head + len as usize;
        if buf.len() < total {
            return None;
        }
        let Some(mask) = hdr.mask else {
            return Some(self.fail(out, total));
        };
        let payload = &mut buf[head..total];
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i & 3];
        }
        let payload = &*payload;
        if hdr.rsv2 || hdr.rsv3 || (hdr.rsv1 && self.deflate.is_none()) {
            return Some(self.fail(out, total));
        }
        let next = match hdr.opcode {
            OpCode::Control(c) => {
                if hdr.rsv1 || !hdr.is_final || len > 125 {
                    return Some(self.fail(out, total));
                }
                match c {
                    Control::Ping => {
                        server_frame(out, 0x8A, payload);
                        Next::Continue
                    }
                    Control::Pong => Next::Continue,
                    Control::Close => {
                        server_frame(out, 0x88, &payload[..payload.len().min(2)]);
                        Next::Stop
                    }
                    Control::Reserved(_) => return Some(self.fail(out, total)),
                }
            }
            OpCode::Data(d) => {
                match d {
                    Data::Text | Data::Binary if self.opcode == 0 => {
                        self.opcode = if d == Data::Text { 1 } else { 2 };
                        self.compressed = hdr.rsv1;
                    }
                    Data::Continue if self.opcode != 0 && !hdr.rsv1 => {}
                    _ => return Some(self.fail(out, total)),
                }
                if self.message.len() + payload.len() > MAX_FRAME_SIZE {
                    return Some(self.fail_with(out, total, 1009));
                }
                self.message.extend_from_slice(payload);
                if hdr.is_final
                    && let Err(code) = self.echo_message(out, stats)
                {
                    return Some(self.fail_with(out, total, code));
                }
                Next::Continue
            }
        };
        Some((next, total))
    }

    /// A complete message is in `self.message`: inflate it if needed and frame the echo into
    /// `out`. `Err(close code)`: 1002 for invalid compressed data, 1007 for a text message
    /// that is not UTF-8.
    fn echo_message(&mut self, out: &mut Vec<u8>, stats: &GatewayStats) -> Result<(), u16> {
        let opcode = std::mem::take(&mut self.opcode);
        let mut message = std::mem::take(&mut self.message);
        if std::mem::take(&mut self.compressed) {
            let n = self.deflate.unwrap_or_default();
            let mut plain = Vec::new();
            let ok = if n.client_no_context_takeover {
                let mut d = deflate::inflater(n.client_max_window_bits.unwrap_or(15));
                deflate::inflate(&mut d, &message, &mut plain, MAX_FRAME_SIZE).is_ok()
            } else {
                let d = self.inflate.get_or_insert_with(|| {
                    GatewayStats::incr(&stats.deflate_windows);
                    Box::new(deflate::inflater(n.client_max_window_bits.unwrap_or(15)))
                });
                match deflate::inflate(d, &message, &mut plain, MAX_FRAME_SIZE) {
                    Ok(ended) => {
                        if ended {
                            d.reset(false);
                        }
                        true
                    }
                    Err(_) => false,
                }
            };
            if !ok {
                return Err(1002);
            }
            message = plain;
        }
        if opcode == 1 && std::str::from_utf8(&message).is_err() {
            return Err(1007);
        }
        GatewayStats::incr(&stats.messages_echoed);
        match self.deflate {
            Some(n) => {
                let mut packed = Vec::new();
                let bits = n.server_max_window_bits.unwrap_or(15);
                COMPRESSORS.with_borrow_mut(|c| c.deflate(bits, &message, &mut packed));
                server_frame(out, 0xC0 | opcode, &packed);
            }
            None => server_frame(out, 0x80 | opcode, &message),
        }
        Ok(())
    }

    /// A protocol error: close 1002 (after any answer already framed) and stop.
    fn fail(&mut self, out: &mut Vec<u8>, used: usize) -> (Next, usize) {
        self.fail_with(out, used, 1002)
    }

    /// Close with `code` (1002 protocol error, 1007 invalid payload, 1009 too big) after any
    /// answer already framed, and stop.
    fn fail_with(&mut self, out: &mut Vec<u8>, used: usize, code: u16) -> (Next, usize) {
        server_frame(out, 0x88, &code.to_be_bytes());
        (Next::Stop, used)
    }
}

/// Append an unmasked server frame with first byte `first` (FIN, RSV1, opcode).
fn server_frame(out: &mut Vec<u8>, first: u8, payload: &[u8]) {
    out.push(first);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_valid_offer_is_taken() {
        assert_eq!(negotiate("x-webkit-deflate-frame"), None);
        let n = negotiate("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(n, Negotiated::default());
        let n = negotiate(
            "permessage-deflate; server_max_window_bits=99, permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
        )
        .unwrap();
        assert!(n.server_no_context_takeover);
        assert_eq!(n.client_max_window_bits, Some(10));
        assert_eq!(
            n.label(),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
        );
        assert_eq!(negotiate("permessage-deflate; foo"), None);
    }
}
