//! permessage-deflate (RFC 7692) for the client: the server's answer, and the codec.
//!
//! Memory is the point of this module (a capacity test must not be skewed by its own
//! client): an idle connection holds no deflate state at all, only the negotiated
//! parameters packed in two bytes ([`Negotiated::pack`]).
//!
//! - **Compress**: one compressor per shard (per client window size), reset before every
//!   message. That is valid even when the server allows context takeover: not referring to
//!   earlier messages is always allowed, and the server's inflater stays valid.
//! - **Inflate**: when the server agreed to `server_no_context_takeover`, every message is a
//!   fresh deflate stream, so one per-shard inflater reset per message serves all
//!   connections. Otherwise a message may refer back to earlier ones and the connection
//!   needs its own inflate window — allocated only when the server sends its first
//!   compressed message, sized by `server_max_window_bits`.
//! - **Bombs**: inflated output is capped at `--max-frame`; output grows in steps and never
//!   past the cap, and a message that would exceed it fails ([`InflateError::TooLarge`]).
//!
//! flate2 with the zlib-rs backend (raw deflate with a window size). zlib cannot compress with
//! an 8-bit window (raw deflate rejects it); when a server limits the client to 8 bits the
//! compressor emits stored blocks, which have no back-references and so fit any window.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::plan::compression::DeflateOffer;

/// The four bytes a sync flush ends with, which permessage-deflate strips from the wire.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The negotiated parameters of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Negotiated {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// Window of the server's compressor (our inflater): `None` = 15.
    pub server_max_window_bits: Option<u8>,
    /// Window our compressor may use: `None` = 15.
    pub client_max_window_bits: Option<u8>,
}

/// Set when permessage-deflate was negotiated (the other bits below 11 are its parameters).
pub const ON: u16 = 1;
const SNCT: u16 = 1 << 1;
const CNCT: u16 = 1 << 2;
const SBITS: u16 = 1 << 3;
const CBITS: u16 = 1 << 7;
/// Set while a compressed message is arriving in fragments.
pub const IN_MESSAGE: u16 = 1 << 11;
/// Message state kept in the same two bytes (`Conn::deflate`), whether or not compression
/// was negotiated: an uncompressed message is arriving in fragments…
pub const FRAGMENTED: u16 = 1 << 12;
/// …the fragmented message (compressed or not) is text…
pub const TEXT: u16 = 1 << 13;
/// …and how many continuation bytes (0–3) the last UTF-8 character of its previous
/// fragment still needs (two bits from here).
pub const UTF8_SHIFT: u16 = 14;

impl Negotiated {
    /// Two bytes for `Conn::deflate` (0: not negotiated).
    pub fn pack(&self) -> u16 {
        let bits = |b: Option<u8>| b.map_or(0, |b| (b - 7) as u16);
        let mut v = ON | (bits(self.server_max_window_bits) * SBITS);
        v |= bits(self.client_max_window_bits) * CBITS;
        if self.server_no_context_takeover {
            v |= SNCT;
        }
        if self.client_no_context_takeover {
            v |= CNCT;
        }
        v
    }

    /// The parameters packed by [`Self::pack`]; `None` if not negotiated.
    pub fn unpack(v: u16) -> Option<Negotiated> {
        if v & ON == 0 {
            return None;
        }
        let bits = |x: u16| match x & 0xf {
            0 => None,
            n => Some(n as u8 + 7),
        };
        Some(Negotiated {
            server_no_context_takeover: v & SNCT != 0,
            client_no_context_takeover: v & CNCT != 0,
            server_max_window_bits: bits(v / SBITS),
            client_max_window_bits: bits(v / CBITS),
        })
    }

    /// The answer in a canonical spelling, for `compression.params` in the report.
    pub fn label(&self) -> String {
        let mut s = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(n) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={n}"));
        }
        if let Some(n) = self.client_max_window_bits {
            s.push_str(&format!("; client_max_window_bits={n}"));
        }
        s
    }

    /// Window bits of the inflater for this connection's messages (zlib needs ≥ 9; a larger
    /// window than the sender's is always fine).
    pub fn inflate_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(15).max(9)
    }

    /// Window bits our compressor may use (8 means stored blocks, see the module docs).
    pub fn deflate_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(15)
    }
}

/// Check the server's `Sec-WebSocket-Extensions` values against what was offered (RFC 7692
/// §7.1). `Ok(None)`: no extension agreed. An extension or parameter that was not offered,
/// a duplicate, or a malformed value is an error (the connection fails as `protocol`).
pub fn parse_answer(
    values: &[&[u8]],
    offer: Option<&DeflateOffer>,
) -> Result<Option<Negotiated>, &'static str> {
    let mut agreed: Option<Negotiated> = None;
    for value in values {
        let value = std::str::from_utf8(value).map_err(|_| "non-UTF-8 extension header")?;
        for ext in value.split(',') {
            let mut parts = ext.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            if name.is_empty() {
                continue;
            }
            if !name.eq_ignore_ascii_case("permessage-deflate") {
                return Err("server accepted an extension that was not offered");
            }
            let Some(offer) = offer else {
                return Err("server accepted permessage-deflate, which was not offered");
            };
            if agreed.is_some() {
                return Err("server accepted permessage-deflate twice");
            }
            agreed = Some(parse_params(parts, offer)?);
        }
    }
    Ok(agreed)
}

fn parse_params<'a>(
    params: impl Iterator<Item = &'a str>,
    offer: &DeflateOffer,
) -> Result<Negotiated, &'static str> {
    let mut n = Negotiated::default();
    let mut seen = [false; 4];
    for p in params {
        let (name, value) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        };
        let i = match name {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return Err("unknown permessage-deflate parameter in the answer"),
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err("duplicate permessage-deflate parameter in the answer");
        }
        let bits = || -> Result<u8, &'static str> {
            let v = value.ok_or("window bits without a value in the answer")?;
            if v.starts_with('0') {
                return Err("malformed window bits in the answer");
            }
            match v.parse::<u8>() {
                Ok(b) if (8..=15).contains(&b) => Ok(b),
                _ => Err("window bits out of range (8..15) in the answer"),
            }
        };
        match i {
            0 | 1 if value.is_some() => return Err("no_context_takeover with a value"),
            0 => n.server_no_context_takeover = true,
            1 => n.client_no_context_takeover = true,
            2 => {
                let b = bits()?;
                // The server may limit its own window unasked (§7.1.2.1), never above the
                // limit the client asked for.
                if offer.server_max_window_bits.is_some_and(|o| b > o) {
                    return Err("server_max_window_bits above the offered limit");
                }
                n.server_max_window_bits = Some(b);
            }
            _ => {
                let b = bits()?;
                match offer.client_max_window_bits {
                    None => return Err("client_max_window_bits in the answer was not offered"),
                    Some(Some(o)) if b > o => {
                        return Err("client_max_window_bits above the offered limit");
                    }
                    Some(_) => n.client_max_window_bits = Some(b),
                }
            }
        }
    }
    Ok(n)
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message is larger than `--max-frame`.
    TooLarge,
    /// Not valid deflate data.
    Corrupt,
}

/// Inflate one message (`data` without the stripped [`TAIL`]) into `out` (cleared first),
/// never letting `out` hold more than `cap + 1` bytes. Returns whether the sender ended
/// its deflate stream (BFINAL): the inflater must then be reset before the next message.
pub fn inflate(
    d: &mut Decompress,
    data: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
) -> Result<bool, InflateError> {
    out.clear();
    for input in [data, &TAIL[..]] {
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                let room = (cap + 1 - out.len()).min(out.len().max(4096));
                if room == 0 {
                    return Err(InflateError::TooLarge);
                }
                out.reserve_exact(room);
            }
            let (in0, out0) = (d.total_in(), out.len());
            let status = d
                .decompress_vec(&input[pos..], out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            pos += (d.total_in() - in0) as usize;
            if out.len() > cap {
                return Err(InflateError::TooLarge);
            }
            match status {
                Status::StreamEnd => return Ok(true),
                // Input used up and the output not full: the data is drained.
                _ if pos == input.len() && out.len() < out.capacity() => break,
                // No progress with room to spare: the input is truncated.
                Status::BufError if out.len() == out0 && out.len() < out.capacity() => break,
                _ => {}
            }
        }
    }
    Ok(false)
}

/// A new inflater for messages whose sender uses `bits`.
pub fn inflater(bits: u8) -> Decompress {
    Decompress::new_with_window_bits(false, bits.clamp(9, 15))
}

/// The per-shard compressors, one per client window size, created on first use.
#[derive(Default)]
pub struct Compressors {
    by_bits: [Option<Box<Compress>>; 8],
}

impl std::fmt::Debug for Compressors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressors").finish_non_exhaustive()
    }
}

impl Compressors {
    /// Compress `payload` as one message for a peer that allows `bits` of window into `out`
    /// (cleared first), without the [`TAIL`].
    pub fn deflate(&mut self, bits: u8, payload: &[u8], out: &mut Vec<u8>) {
        let bits = bits.clamp(8, 15);
        let c = self.by_bits[(bits - 8) as usize].get_or_insert_with(|| {
            Box::new(if bits == 8 {
                // Stored blocks only: valid for an 8-bit window (see the module docs).
                Compress::new_with_window_bits(Compression::none(), false, 9)
            } else {
                Compress::new_with_window_bits(Compression::default(), false, bits)
            })
        });
        c.reset();
        out.clear();
        out.reserve(payload.len() / 2 + 64);
        let mut pos = 0;
        loop {
            let in0 = c.total_in();
            c.compress_vec(&payload[pos..], out, FlushCompress::Sync)
                .expect("deflate of an in-memory buffer cannot fail");
            pos += (c.total_in() - in0) as usize;
            // Done when all input is taken and the flush fit (room was left over).
            if pos == payload.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::compression::parse_compression;

    fn offer(s: &str) -> DeflateOffer {
        parse_compression(s).unwrap().offer().unwrap().clone()
    }

    #[test]
    fn answers_to_the_browser_offer() {
        let o = offer("browser");
        assert_eq!(parse_answer(&[], Some(&o)), Ok(None));
        let n = parse_answer(&[b"permessage-deflate"], Some(&o))
            .unwrap()
            .unwrap();
        assert_eq!(n, Negotiated::default());
        let n = parse_answer(
            &[b"permessage-deflate; client_max_window_bits=12; server_no_context_takeover"],
            Some(&o),
        )
        .unwrap()
        .unwrap();
        assert!(n.server_no_context_takeover);
        assert_eq!(n.client_max_window_bits, Some(12));
        assert_eq!(Negotiated::unpack(n.pack()), Some(n));
        assert_eq!(
            n.label(),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
        );
        // The server may limit its own window without being asked.
        let n = parse_answer(
            &[b"permessage-deflate; server_max_window_bits=\"10\""],
            Some(&o),
        )
        .unwrap()
        .unwrap();
        assert_eq!(n.inflate_bits(), 10);
        assert_eq!(Negotiated::unpack(0), None);
    }

    #[test]
    fn what_was_not_offered_or_is_malformed_fails() {
        let browser = offer("browser");
        let bare = offer("deflate");
        let limited = offer("deflate:server_max_window_bits=10,client_max_window_bits=10");
        for (answer, o) in [
            (&b"permessage-deflate"[..], None),
            (b"x-webkit-deflate-frame", Some(&browser)),
            (b"permessage-deflate, permessage-deflate", Some(&browser)),
            (
                b"permessage-deflate; client_max_window_bits=10",
                Some(&bare),
            ),
            (
                b"permessage-deflate; client_max_window_bits=11",
                Some(&limited),
            ),
            (
                b"permessage-deflate; server_max_window_bits=11",
                Some(&limited),
            ),
            (
                b"permessage-deflate; server_max_window_bits=7",
                Some(&browser),
            ),
            (
                b"permessage-deflate; server_max_window_bits=010",
                Some(&browser),
            ),
            (
                b"permessage-deflate; client_max_window_bits",
                Some(&browser),
            ),
            (
                b"permessage-deflate; server_no_context_takeover=1",
                Some(&browser),
            ),
            (
                b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                Some(&browser),
            ),
            (b"permessage-deflate; foo", Some(&browser)),
            (b"\xff", Some(&browser)),
        ] {
            assert!(
                parse_answer(&[answer], o).is_err(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    fn round_trip(bits: u8, msgs: &[&[u8]]) {
        let mut c = Compressors::default();
        let mut d = inflater(bits);
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        for m in msgs {
            c.deflate(bits, m, &mut wire);
            assert!(!wire.ends_with(&TAIL));
            // A context-takeover inflater (never reset) reads messages of a compressor
            // that resets per message.
            let end = inflate(&mut d, &wire, &mut back, 1 << 20).unwrap();
            assert!(!end);
            assert_eq!(&back, m);
        }
    }

    #[test]
    fn compress_and_inflate_round_trip() {
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for bits in [8, 9, 12, 15] {
            round_trip(bits, &[b"", b"hello hello hello hello", &big, b"x"]);
        }
        let mut c = Compressors::default();
        let mut wire = Vec::new();
        c.deflate(15, &[b'a'; 1024], &mut wire);
        assert!(wire.len() < 64, "{}", wire.len());
        c.deflate(15, b"", &mut wire);
        assert_eq!(wire, [0x00]);
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let mut c = Compressors::default();
        let mut wire = Vec::new();
        let payload = vec![0u8; 10 << 20];
        c.deflate(15, &payload, &mut wire);
        assert!(wire.len() < 20_000, "{}", wire.len());
        let mut out = Vec::new();
        let mut d = inflater(15);
        assert_eq!(
            inflate(&mut d, &wire, &mut out, 64 * 1024),
            Err(InflateError::TooLarge)
        );
        assert!(out.capacity() <= 64 * 1024 + 1 + 64, "{}", out.capacity());
        let mut d = inflater(15);
        assert_eq!(
            inflate(&mut d, b"\xff\xff\xff\xff", &mut out, 1024),
            Err(InflateError::Corrupt)
        );
    }
}
