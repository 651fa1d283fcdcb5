//! The WebSocket client protocol, sans I/O: upgrade request, upgrade response, frames.
//!
//! - The upgrade request is a template built once per (target, plan): everything up to the
//!   `Sec-WebSocket-Key` value is a fixed byte string; per connection only the key (and a
//!   JWT, when one is minted per connection) is appended. The key is derived from the
//!   connection id and a per-shard seed, so it never has to be stored: the expected
//!   `Sec-WebSocket-Accept` is recomputed from the id when the response arrives.
//! - Responses are parsed with `httparse`; the accept key is checked with tungstenite's
//!   `derive_accept_key`.
//! - Frame headers are parsed and formatted with tungstenite's `FrameHeader`; this module
//!   adds the client-side rules (server frames must not be masked, no reserved bits, no
//!   reserved opcodes, control frames ≤ 125 bytes and unfragmented, a cap on frame size).

use std::io::Cursor;

use base64::Engine as _;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use crate::engine::deflate::{self, Negotiated};
use crate::plan::compression::DeflateOffer;
use crate::plan::{HandshakeSpec, Target};

/// A prepared upgrade request for one target.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// `GET <path> HTTP/1.1\r\n` … up to and including `Sec-WebSocket-Key: `.
    head: Vec<u8>,
    /// When a JWT goes in the query: the request-target prefix without it, split so the
    /// token can be spliced in. `None` when the JWT (if any) goes in a header.
    query_split: Option<(Vec<u8>, Vec<u8>)>,
}

/// The template for `target` with the auth of `plan` (static bearer token in the headers, or
/// the query parameter a per-connection JWT goes into).
pub fn template_for(plan: &crate::plan::Plan, target: &Target) -> RequestTemplate {
    use crate::plan::{Auth, JwtPlacement};
    let (bearer, jwt_query) = match &plan.handshake.auth {
        Auth::Bearer(t) => (Some(t.0.as_str()), None),
        Auth::Jwt {
            placement: JwtPlacement::Query(name),
            ..
        } => (None, Some(name.as_str())),
        _ => (None, None),
    };
    request_template(target, &plan.handshake, bearer, jwt_query)
}

/// Build the template for `target`. `jwt_query` is the query parameter name when a
/// per-connection JWT is to be placed in the URL.
pub fn request_template(
    target: &Target,
    spec: &HandshakeSpec,
    static_bearer: Option<&str>,
    jwt_query: Option<&str>,
) -> RequestTemplate {
    let mut head = Vec::with_capacity(256);
    let query_split = if let Some(name) = jwt_query {
        let sep = if target.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let before = format!("GET {}{}{}=", target.path_and_query, sep, name).into_bytes();
        let after = b" HTTP/1.1\r\n".to_vec();
        Some((before, after))
    } else {
        head.extend_from_slice(format!("GET {} HTTP/1.1\r\n", target.path_and_query).as_bytes());
        None
    };
    let mut fixed = Vec::with_capacity(256);
    fixed.extend_from_slice(format!("Host: {}\r\n", target.host_header).as_bytes());
    fixed.extend_from_slice(
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
    );
    // `--compression browser` sends what a page served by the target would: an Origin of
    // the target's own site and a browser User-Agent (unless given explicitly).
    let browser = spec.compression.is_browser();
    let origin = spec.origin.clone().or_else(|| {
        browser.then(|| {
            let scheme = if target.tls { "https" } else { "http" };
            format!("{scheme}://{}", target.host_header)
        })
    });
    if let Some(o) = origin {
        fixed.extend_from_slice(format!("Origin: {o}\r\n").as_bytes());
    }
    let ua = spec
        .user_agent
        .as_deref()
        .or(browser.then_some(crate::plan::compression::BROWSER_USER_AGENT));
    if let Some(ua) = ua {
        fixed.extend_from_slice(format!("User-Agent: {ua}\r\n").as_bytes());
    }
    if let Some(offer) = spec.compression.offer() {
        fixed.extend_from_slice(
            format!("Sec-WebSocket-Extensions: {}\r\n", offer.header_value()).as_bytes(),
        );
    }
    if let Some(p) = &spec.subprotocol {
        fixed.extend_from_slice(format!("Sec-WebSocket-Protocol: {p}\r\n").as_bytes());
    }
    for (k, v) in &spec.headers {
        fixed.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if let Some(t) = static_bearer {
        fixed.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
    }
    if query_split.is_some() {
        // The request line is spliced per connection; the fixed part follows it.
        head = fixed;
    } else {
        head.extend_from_slice(&fixed);
    }
    head.extend_from_slice(b"Sec-WebSocket-Key: ");
    RequestTemplate { head, query_split }
}

impl RequestTemplate {
    /// Append the request for a connection with `key` (24 base64 chars) and an optional
    /// per-connection JWT to `out`.
    pub fn write(&self, key: &[u8; 24], jwt: Option<&str>, out: &mut Vec<u8>) {
        if let Some((before, after)) = &self.query_split {
            out.extend_from_slice(before);
            out.extend_from_slice(jwt.unwrap_or("").as_bytes());
            out.extend_from_slice(after);
        }
        out.extend_from_slice(&self.head);
        out.extend_from_slice(key);
        out.extend_from_slice(b"\r\n");
        if self.query_split.is_none()
            && let Some(t) = jwt
        {
            out.extend_from_slice(b"Authorization: Bearer ");
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The `Sec-WebSocket-Key` for connection `id` of a shard with `seed`: 16 pseudo-random
/// bytes (splitmix64 of seed and id), base64-encoded.
pub fn connection_key(seed: u64, id: u64) -> [u8; 24] {
    let a = splitmix64(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let b = splitmix64(a ^ id);
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&a.to_le_bytes());
    raw[8..].copy_from_slice(&b.to_le_bytes());
    let mut out = [0u8; 24];
    base64::engine::general_purpose::STANDARD
        .encode_slice(raw, &mut out)
        .expect("16 bytes encode to 24");
    out
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Outcome of feeding bytes to the upgrade-response parser.
#[derive(Debug, PartialEq, Eq)]
pub enum UpgradeResponse {
    /// Not a complete response head yet.
    Partial,
    /// 101 with a valid accept key; `consumed` bytes belonged to the response head.
    /// `deflate`: the permessage-deflate parameters the server agreed to.
    Accepted {
        consumed: usize,
        deflate: Option<Negotiated>,
    },
    /// A complete response with another status code.
    Status(u16),
    /// Unparseable response, or 101 with a missing or wrong accept key / upgrade header.
    Invalid(&'static str),
    /// More than [`MAX_RESPONSE_HEAD`] bytes or 32 header lines without the end of a response
    /// head (an endless or absurd head): `handshake_too_large`, never buffered further.
    TooLarge,
}

/// Largest upgrade response head we accept (more is `handshake_too_large`).
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Parse an upgrade response from `buf`, checking it against `key` and the extension answer
/// against `offer` (what the request offered in `Sec-WebSocket-Extensions`).
pub fn parse_upgrade_response(
    buf: &[u8],
    key: &[u8; 24],
    offer: Option<&DeflateOffer>,
) -> UpgradeResponse {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let consumed = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_RESPONSE_HEAD {
                UpgradeResponse::TooLarge
            } else {
                UpgradeResponse::Partial
            };
        }
        // Past the 32 header lines we parse: as endless as a head past 16 KiB.
        Err(httparse::Error::TooManyHeaders) => return UpgradeResponse::TooLarge,
        Err(_) => return UpgradeResponse::Invalid("malformed HTTP response"),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return UpgradeResponse::Status(code);
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    match header("upgrade") {
        Some(v) if v.eq_ignore_ascii_case(b"websocket") => {}
        _ => return UpgradeResponse::Invalid("101 without Upgrade: websocket"),
    }
    let expected = tungstenite::handshake::derive_accept_key(key);
    match header("sec-websocket-accept") {
        Some(v) if v == expected.as_bytes() => {}
        Some(_) => return UpgradeResponse::Invalid("wrong Sec-WebSocket-Accept"),
        None => return UpgradeResponse::Invalid("101 without Sec-WebSocket-Accept"),
    }
    let mut ext = [&b""[..]; 4];
    let mut n = 0;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
            if n == ext.len() {
                return UpgradeResponse::Invalid("too many Sec-WebSocket-Extensions headers");
            }
            ext[n] = h.value;
            n += 1;
        }
    }
    match deflate::parse_answer(&ext[..n], offer) {
        Ok(deflate) => UpgradeResponse::Accepted { consumed, deflate },
        Err(why) => UpgradeResponse::Invalid(why),
    }
}

/// The kind of a frame received from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Text,
    Binary,
    Continuation,
    Ping,
    Pong,
    Close,
}

/// A parsed frame header, validated against the client-side rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFrame {
    pub kind: FrameKind,
    pub fin: bool,
    /// RSV1: the first frame of a permessage-deflate compressed message.
    pub compressed: bool,
    /// Bytes of header.
    pub header_len: usize,
    /// Bytes of payload.
    pub payload_len: usize,
}

/// Result of looking at the start of a buffer for a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameParse {
    /// Not enough bytes for the header.
    Partial,
    Frame(ServerFrame),
    /// Protocol violation (the connection must be closed and counted as `protocol`).
    Violation(&'static str),
}

/// Parse the frame header at the start of `buf`. The payload may not be complete yet
/// (compare `header_len + payload_len` with `buf.len()`). `deflate`: permessage-deflate
/// was negotiated, so RSV1 may mark the first frame of a data message.
pub fn parse_frame_header(buf: &[u8], max_frame: u64, deflate: bool) -> FrameParse {
    let mut cur = Cursor::new(buf);
    let (hdr, len) = match FrameHeader::parse(&mut cur) {
        Ok(Some(x)) => x,
        Ok(None) => return FrameParse::Partial,
        Err(_) => return FrameParse::Violation("malformed frame header"),
    };
    if hdr.mask.is_some() {
        return FrameParse::Violation("masked frame from server");
    }
    if (hdr.rsv1 && !deflate) || hdr.rsv2 || hdr.rsv3 {
        return FrameParse::Violation("reserved bits set");
    }
    if len > max_frame {
        return FrameParse::Violation("frame larger than --max-frame");
    }
    let kind = match hdr.opcode {
        OpCode::Data(Data::Text) => FrameKind::Text,
        OpCode::Data(Data::Binary) => FrameKind::Binary,
        OpCode::Data(Data::Continue) => FrameKind::Continuation,
        OpCode::Control(Control::Ping) => FrameKind::Ping,
        OpCode::Control(Control::Pong) => FrameKind::Pong,
        OpCode::Control(Control::Close) => FrameKind::Close,
        OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
            return FrameParse::Violation("reserved opcode");
        }
    };
    let control = matches!(kind, FrameKind::Ping | FrameKind::Pong | FrameKind::Close);
    if control && (len > 125 || !hdr.is_final) {
        return FrameParse::Violation("oversized or fragmented control frame");
    }
    if hdr.rsv1 && (control || kind == FrameKind::Continuation) {
        return FrameParse::Violation("RSV1 on a control or continuation frame");
    }
    FrameParse::Frame(ServerFrame {
        kind,
        fin: hdr.is_final,
        compressed: hdr.rsv1,
        header_len: cur.position() as usize,
        payload_len: len as usize,
    })
}

/// Opcode bytes for client frames.
pub mod opcode {
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// Append a masked, final client frame with `opcode` and `payload` to `out`.
pub fn write_client_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    write_frame(out, 0x80 | opcode, payload, mask);
}

/// Like [`write_client_frame`] for a permessage-deflate compressed data message (RSV1 set).
pub fn write_compressed_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    write_frame(out, 0xC0 | opcode, payload, mask);
}

fn write_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(first);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// XOR `data` with the repeating 4-byte `mask`, eight bytes at a time (the masking of every
/// sent frame is on the message path: byte by byte it was a tenth of the client's CPU).
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so at mask index 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The close code in a close frame's payload (1005 "no status" when it carries none).
pub fn close_code(payload: &[u8]) -> u16 {
    if payload.len() >= 2 {
        u16::from_be_bytes([payload[0], payload[1]])
    } else {
        1005
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn target() -> Target {
        Target {
            url: "ws://example.test:8080/ws?a=1".into(),
            host_header: "example.test:8080".into(),
            path_and_query: "/ws?a=1".into(),
            addr: "127.0.0.1:8080".parse::<SocketAddr>().unwrap(),
            tls: false,
        }
    }

    #[test]
    fn request_has_required_headers_and_key() {
        let spec = HandshakeSpec {
            origin: Some("https://app.test".into()),
            headers: vec![("X-Test".into(), "1".into())],
            subprotocol: Some("chat".into()),
            ..Default::default()
        };
        let t = request_template(&target(), &spec, Some("tok"), None);
        let key = connection_key(1, 2);
        let mut out = Vec::new();
        t.write(&key, None, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("GET /ws?a=1 HTTP/1.1\r\nHost: example.test:8080\r\n"));
        assert!(s.contains("Origin: https://app.test\r\n"));
        assert!(s.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(s.contains("X-Test: 1\r\n"));
        assert!(s.contains("Authorization: Bearer tok\r\n"));
        assert!(s.contains(&format!(
            "Sec-WebSocket-Key: {}\r\n",
            std::str::from_utf8(&key).unwrap()
        )));
        assert!(s.ends_with("\r\n\r\n"));
        // It parses as an HTTP request.
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut h);
        assert!(req.parse(s.as_bytes()).unwrap().is_complete());
    }

    #[test]
    fn jwt_in_query_and_header() {
        let t = request_template(&target(), &HandshakeSpec::default(), None, Some("token"));
        let mut out = Vec::new();
        t.write(&connection_key(1, 1), Some("JWT"), &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("GET /ws?a=1&token=JWT HTTP/1.1\r\nHost: "),
            "{s}"
        );
        let t = request_template(&target(), &HandshakeSpec::default(), None, None);
        let mut out = Vec::new();
        t.write(&connection_key(1, 1), Some("JWT"), &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Authorization: Bearer JWT\r\n"));
    }

    #[test]
    fn keys_differ_and_accept_verifies() {
        let k1 = connection_key(7, 1);
        let k2 = connection_key(7, 2);
        assert_ne!(k1, k2);
        let accept = tungstenite::handshake::derive_accept_key(&k1);
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n\x01\x00"
        );
        let head_len = resp.len() - 2;
        assert_eq!(
            parse_upgrade_response(resp.as_bytes(), &k1, None),
            UpgradeResponse::Accepted {
                consumed: head_len,
                deflate: None
            }
        );
        assert!(matches!(
            parse_upgrade_response(resp.as_bytes(), &k2, None),
            UpgradeResponse::Invalid(_)
        ));
        assert_eq!(
            parse_upgrade_response(&resp.as_bytes()[..20], &k1, None),
            UpgradeResponse::Partial
        );
        assert_eq!(
            parse_upgrade_response(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
                &k1,
                None
            ),
            UpgradeResponse::Status(401)
        );
    }

    #[test]
    fn frame_rules() {
        assert_eq!(
            parse_frame_header(&[0x81, 0x05, b'h'], 100, false),
            FrameParse::Frame(ServerFrame {
                kind: FrameKind::Text,
                fin: true,
                compressed: false,
                header_len: 2,
                payload_len: 5
            })
        );
        assert_eq!(parse_frame_header(&[0x81], 100, false), FrameParse::Partial);
        assert!(matches!(
            parse_frame_header(&[0x83, 0x00], 100, false),
            FrameParse::Violation(_)
        ));
        assert!(matches!(
            parse_frame_header(&[0xC1, 0x00], 100, false),
            FrameParse::Violation(_)
        ));
        assert!(matches!(
            parse_frame_header(&[0x81, 0x85, 1, 2, 3, 4], 100, false),
            FrameParse::Violation(_)
        ));
        assert!(matches!(
            parse_frame_header(&[0x82, 126, 0x01, 0x00], 100, false),
            FrameParse::Violation(_)
        ));
        assert!(matches!(
            parse_frame_header(&[0x09, 0x00], 100, false),
            FrameParse::Violation(_)
        ));
    }

    #[test]
    fn client_frames_are_masked_and_round_trip() {
        // Lengths around the 8-byte masking chunks and the header sizes; each frame written
        // after another one in the same buffer (how a batch of messages is built).
        for len in [0usize, 1, 5, 7, 8, 9, 64, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            write_client_frame(&mut out, opcode::TEXT, b"abc", [9, 8, 7, 6]);
            let first = out.len();
            write_client_frame(&mut out, opcode::BINARY, &payload, [1, 2, 3, 4]);
            let mut cur = Cursor::new(&out[first..]);
            let (hdr, l) = FrameHeader::parse(&mut cur).unwrap().unwrap();
            assert_eq!(l as usize, len);
            let mask = hdr.mask.expect("client frames are masked");
            let start = first + cur.position() as usize;
            let un: Vec<u8> = out[start..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i & 3])
                .collect();
            assert_eq!(un, payload);
        }
    }

    /// Random and mutated inputs never panic the parsers of untrusted bytes (a cheap stand-in
    /// for a fuzz target: cargo-fuzz needs a nightly toolchain this project does not use).
    #[test]
    fn parsers_survive_random_and_mutated_input() {
        let mut rng = fastrand::Rng::with_seed(42);
        let key = connection_key(3, 9);
        let accept = tungstenite::handshake::derive_accept_key(&key);
        let valid = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        let frames: Vec<u8> = vec![
            0x81, 0x05, b'h', b'e', b'l', b'l', b'o', 0x89, 0x00, 0x82, 126, 0x01, 0x00,
        ];
        for _ in 0..20_000 {
            let mut buf = if rng.bool() {
                valid.clone()
            } else {
                frames.clone()
            };
            for _ in 0..rng.usize(1..6) {
                match rng.u8(0..3) {
                    0 if !buf.is_empty() => {
                        let i = rng.usize(..buf.len());
                        buf[i] = rng.u8(..);
                    }
                    1 if !buf.is_empty() => {
                        buf.truncate(rng.usize(..buf.len()));
                    }
                    _ => buf.extend((0..rng.usize(0..32)).map(|_| rng.u8(..))),
                }
            }
            let _ = parse_upgrade_response(&buf, &key, Some(&DeflateOffer::browser()));
            let mut pos = 0;
            while pos < buf.len() {
                match parse_frame_header(&buf[pos..], 1 << 20, true) {
                    FrameParse::Frame(f) => pos += f.header_len + f.payload_len,
                    _ => break,
                }
            }
            let _ = close_code(&buf);
        }
    }
}
