//! The 32-byte latency marker every timed message carries, and the process's wall clock.
//!
//! A marker is `~` + 30 base64url digits + `~` (JSON-safe, no `~` inside):
//!
//! | digits | bits | field |
//! |---|---|---|
//! | 9 | 54 | intended send time, **Unix µs** (wall clock, see below) |
//! | 6 | 36 | nonce: random per engine run ([`new_nonce`]) — per process in normal use |
//! | 6 | 36 | connection number (`id × conn_stride + conn_offset`, the `{conn}` number) |
//! | 6 | 36 | sequence number of the message on its connection |
//! | 3 | 18 | check digits over the 27 before them |
//!
//! Nonce and connection number identify the sender across processes and hosts, so a
//! connection can tell its own echo (→ `message_rtt`) from a message another connection
//! published (→ `fanout_latency`). The nonce is drawn per engine run rather than once per
//! process because connection numbers restart at 0 in every run: two runs in one process
//! (in-process agents in tests) must not take each other's messages for their own. The check digits make a random run of 30 letters between
//! two `~` (a chat text, base64 data) a very unlikely false marker.
//!
//! **Wall clock.** The intended time is taken on the monotonic clock and turned into Unix time
//! through one process-wide anchor: `wall = anchor_wall + (mono − anchor_mono)`, read once
//! ([`wall_us_at`]). Within a process it is therefore as monotonic and as precise as
//! `Instant`, and the sender's own round trip converts back exactly; between two processes it
//! is as good as their clocks agree (the anchors read the system clock; on one host they
//! agree to a few µs, across hosts only as well as NTP/PTP keeps them).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Length of the marker in a message payload.
pub const MARKER_LEN: usize = 32;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Digits per field: time, nonce, connection, sequence, check.
const WIDTHS: [usize; 5] = [9, 6, 6, 6, 3];
const FIELDS: usize = 27;

/// What a marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Intended send time, Unix µs (54 bits).
    pub wall_us: u64,
    /// The sending process's nonce (36 bits).
    pub nonce: u64,
    /// The sending connection's number (36 bits kept).
    pub conn: u64,
    /// Sequence number on the sending connection.
    pub seq: u32,
}

fn mask(bits: usize) -> u64 {
    (1u64 << bits) - 1
}

/// The value of each byte as a digit of [`ALPHABET`]; 0xFF: not a digit.
const DIGITS: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn digit(c: u8) -> Option<u64> {
    match DIGITS[c as usize] {
        0xFF => None,
        d => Some(d as u64),
    }
}

/// 18 check bits over the field digits (FNV-1a, folded).
fn check(digits: &[u8]) -> u64 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in digits {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h ^ (h >> 18)) as u64) & mask(18)
}

impl Marker {
    /// True when the marker was sent by connection `conn` of the process with `nonce`.
    pub fn is_from(&self, nonce: u64, conn: u64) -> bool {
        self.nonce == nonce & mask(36) && self.conn == conn & mask(36)
    }

    /// Append the 32-byte marker to `out` (built on the stack, appended in one copy: this
    /// runs once per timed message).
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut m = [b'~'; MARKER_LEN];
        let values = [
            self.wall_us & mask(54),
            self.nonce & mask(36),
            self.conn & mask(36),
            self.seq as u64,
        ];
        let mut pos = 1;
        for (v, w) in values.into_iter().zip(WIDTHS) {
            for i in (0..w).rev() {
                m[pos] = ALPHABET[((v >> (6 * i)) & 63) as usize];
                pos += 1;
            }
        }
        let c = check(&m[1..pos]);
        for i in (0..3).rev() {
            m[pos] = ALPHABET[((c >> (6 * i)) & 63) as usize];
            pos += 1;
        }
        out.extend_from_slice(&m);
    }

    /// The first valid marker in `payload`.
    pub fn find(payload: &[u8]) -> Option<Marker> {
        let mut from = 0;
        while let Some(i) = memchr::memchr(b'~', &payload[from..]) {
            let at = from + i;
            if let Some(m) = payload.get(at..at + MARKER_LEN)
                && m[MARKER_LEN - 1] == b'~'
                && let Some(v) = Marker::decode(&m[1..MARKER_LEN - 1])
            {
                return Some(v);
            }
            from = at + 1;
        }
        None
    }

    /// The 30 digits between the tildes.
    fn decode(digits: &[u8]) -> Option<Marker> {
        let mut values = [0u64; 5];
        let mut pos = 0;
        for (slot, w) in values.iter_mut().zip(WIDTHS) {
            for &c in &digits[pos..pos + w] {
                *slot = (*slot << 6) | digit(c)?;
            }
            pos += w;
        }
        if values[4] != check(&digits[..FIELDS]) || values[3] > u32::MAX as u64 {
            return None;
        }
        Some(Marker {
            wall_us: values[0],
            nonce: values[1],
            conn: values[2],
            seq: values[3] as u32,
        })
    }
}

/// A fresh marker nonce (36 random bits) for one engine run.
pub fn new_nonce() -> u64 {
    // fastrand's generators are seeded from the OS hasher keys; mix in the pid and the time
    // so two processes started together still differ.
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = fastrand::u64(..) ^ t ^ (u64::from(std::process::id()) << 40);
    x = (x ^ (x >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x ^ (x >> 29)) & mask(36)
}

/// The process-wide (monotonic, wall) anchor, read once.
fn anchor() -> (Instant, i64) {
    static ANCHOR: OnceLock<(Instant, i64)> = OnceLock::new();
    *ANCHOR.get_or_init(|| {
        let mono = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        (mono, wall)
    })
}

/// Unix µs of the monotonic instant `t`: `anchor_wall + (t − anchor_mono)`.
pub fn wall_us_at(t: Instant) -> i64 {
    let (mono, wall) = anchor();
    if t >= mono {
        wall + (t - mono).as_micros() as i64
    } else {
        wall - (mono - t).as_micros() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(wall_us: u64, nonce: u64, conn: u64, seq: u32) -> Marker {
        Marker {
            wall_us,
            nonce,
            conn,
            seq,
        }
    }

    #[test]
    fn round_trips_inside_json_and_other_bytes() {
        let sent = m(1_733_097_600_123_456, 0xa_bcde_f012, 123_456, 42);
        let mut p = b"{\"x\":\"~~\",\"m\":\"".to_vec();
        sent.write(&mut p);
        p.extend_from_slice(b"\"}");
        assert_eq!(Marker::find(&p), Some(sent));
        let text = std::str::from_utf8(&p).unwrap();
        let v: serde_json::Value = serde_json::from_str(text).expect("JSON-safe");
        assert_eq!(v["m"].as_str().unwrap().len(), MARKER_LEN);
        let mut only = Vec::new();
        m(u64::MAX, u64::MAX, u64::MAX, u32::MAX).write(&mut only);
        assert_eq!(only.len(), MARKER_LEN);
        assert_eq!(only.iter().filter(|b| **b == b'~').count(), 2);
        assert_eq!(
            Marker::find(&only),
            Some(m(mask(54), mask(36), mask(36), u32::MAX))
        );
        assert_eq!(Marker::find(b"no marker ~ here"), None);
    }

    #[test]
    fn random_text_between_tildes_is_not_a_marker() {
        let mut fake = b"~".to_vec();
        fake.extend_from_slice(b"abcdefghijklmnopqrstuvwxyzABCD");
        fake.push(b'~');
        assert_eq!(fake.len(), MARKER_LEN);
        assert_eq!(Marker::find(&fake), None);
        // One changed digit fails the check.
        let mut p = Vec::new();
        m(5, 6, 7, 8).write(&mut p);
        p[3] = if p[3] == b'B' { b'C' } else { b'B' };
        assert_eq!(Marker::find(&p), None);
    }

    #[test]
    fn own_versus_foreign() {
        let nonce = new_nonce();
        assert_ne!(nonce, new_nonce(), "a fresh nonce per run");
        let mut p = Vec::new();
        m(1, nonce, 7, 0).write(&mut p);
        let got = Marker::find(&p).unwrap();
        assert!(got.is_from(nonce, 7));
        assert!(!got.is_from(nonce, 8), "another connection of this process");
        assert!(!got.is_from(nonce ^ 1, 7), "the same number in another run");
    }

    #[test]
    fn wall_clock_follows_the_monotonic_clock() {
        let a = Instant::now();
        let b = a + std::time::Duration::from_millis(1500);
        // Each conversion truncates to whole µs: the difference is exact to 1 µs.
        assert!((wall_us_at(b) - wall_us_at(a) - 1_500_000).abs() <= 1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        assert!((wall_us_at(Instant::now()) - now).abs() < 1_000_000);
        let earlier = a - std::time::Duration::from_millis(10);
        assert!((wall_us_at(a) - wall_us_at(earlier) - 10_000).abs() <= 1);
    }
}
