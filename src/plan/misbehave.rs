//! Misbehaving clients: `--misbehave KIND:FRACTION` (repeatable; `misbehave = [...]` in a
//! profile).
//!
//! A fraction of the connections breaks the rules on purpose, to see how the gateway answers
//! bad clients: it should say 4xx (bad or missing credentials) or close with the right code
//! (1002 protocol error, 1007 invalid payload, 1009 too big) — never 5xx, never silence. The
//! engine does the misbehaving (`engine::shard::misbehave`); this module only names the kinds
//! and decides, deterministically, which connection numbers misbehave how.
//!
//! # Selection
//!
//! Connection number `n` (the `{conn}` number) takes the position `u = frac(n × 0.618…)` (the
//! golden-ratio sequence: any run of consecutive numbers is spread evenly over `[0, 1)`), and
//! the kinds, in the order given, own consecutive intervals of `[0, 1)` as wide as their
//! fractions. So the same numbers misbehave in every run, and every prefix of a ramp has close
//! to the requested share of each kind. The fractions must add up to at most
//! [`MAX_TOTAL_FRACTION`]: the rest of the connections are the normal population.
//!
//! Misbehaving connections do not take a slot of the stage plan: a slot whose number is
//! selected is filled by the next number, and the misbehaving connection runs beside it. The
//! normal population therefore reaches the planned count, and its figures (failures, drops,
//! verdict) never include a misbehaving connection.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest total fraction of misbehaving connections.
pub const MAX_TOTAL_FRACTION: f64 = 0.9;

/// How a connection misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MisbehaveKind {
    /// The upgrade request carries a token that does not validate (a JWT with a wrong
    /// signature, in the header or query parameter the plan's auth uses).
    BadToken,
    /// The upgrade request carries no credentials at all (no `Authorization` header, no
    /// token query parameter).
    NoAuth,
    /// After the upgrade: a frame header announcing a 1 GiB payload, then 1 KiB of it.
    OversizeFrame,
    /// After the upgrade: a frame with the reserved bits set and a reserved opcode (0x3).
    MalformedFrame,
    /// After the upgrade: a text frame without the mask a client must apply.
    UnmaskedFrame,
    /// After the upgrade: a text frame whose payload is not UTF-8.
    InvalidUtf8,
    /// After the upgrade: sends 256 KiB of messages to be echoed and never reads.
    SlowReader,
    /// After the upgrade: half a frame, then a TCP reset (RST).
    AbruptClose,
}

impl MisbehaveKind {
    pub const ALL: [MisbehaveKind; 8] = [
        MisbehaveKind::BadToken,
        MisbehaveKind::NoAuth,
        MisbehaveKind::OversizeFrame,
        MisbehaveKind::MalformedFrame,
        MisbehaveKind::UnmaskedFrame,
        MisbehaveKind::InvalidUtf8,
        MisbehaveKind::SlowReader,
        MisbehaveKind::AbruptClose,
    ];

    /// The kind as written on the command line and in reports (`bad-token`).
    pub fn label(self) -> &'static str {
        match self {
            MisbehaveKind::BadToken => "bad-token",
            MisbehaveKind::NoAuth => "no-auth",
            MisbehaveKind::OversizeFrame => "oversize-frame",
            MisbehaveKind::MalformedFrame => "malformed-frame",
            MisbehaveKind::UnmaskedFrame => "unmasked-frame",
            MisbehaveKind::InvalidUtf8 => "invalid-utf8",
            MisbehaveKind::SlowReader => "slow-reader",
            MisbehaveKind::AbruptClose => "abrupt-close",
        }
    }

    /// The inverse of [`MisbehaveKind::label`].
    pub fn from_label(s: &str) -> Option<MisbehaveKind> {
        Self::ALL.into_iter().find(|k| k.label() == s)
    }

    /// True for the kinds whose misbehaviour is the upgrade request itself.
    pub fn is_auth(self) -> bool {
        matches!(self, MisbehaveKind::BadToken | MisbehaveKind::NoAuth)
    }

    /// The engine's compact code for this kind (`index + 1`; 0 is a normal connection).
    pub fn code(self) -> u8 {
        Self::ALL.iter().position(|k| *k == self).expect("in ALL") as u8 + 1
    }

    /// The inverse of [`MisbehaveKind::code`] (`None` for 0 and unknown codes).
    pub fn from_code(code: u8) -> Option<MisbehaveKind> {
        Self::ALL.get((code as usize).checked_sub(1)?).copied()
    }
}

impl fmt::Display for MisbehaveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One `KIND:FRACTION`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Misbehave {
    pub kind: MisbehaveKind,
    /// Share of all connections, `(0, 1)`.
    pub fraction: f64,
}

impl fmt::Display for Misbehave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.fraction)
    }
}

/// Parse `KIND:FRACTION`: `bad-token:0.05` or `bad-token:5%`.
pub fn parse_misbehave(s: &str) -> Result<Misbehave, String> {
    let kinds = || {
        MisbehaveKind::ALL
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((kind, fraction)) = s.trim().split_once(':') else {
        return Err(format!(
            "{s:?} is not KIND:FRACTION (e.g. bad-token:5% or oversize-frame:0.01); KIND is one of {}",
            kinds()
        ));
    };
    let kind = MisbehaveKind::from_label(kind.trim()).ok_or_else(|| {
        format!(
            "{s:?}: unknown misbehaviour {:?}; valid kinds: {}",
            kind.trim(),
            kinds()
        )
    })?;
    let f = fraction.trim();
    let value = match f.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => f.parse::<f64>(),
    }
    .ok()
    .filter(|v| v.is_finite() && *v > 0.0 && *v < 1.0)
    .ok_or_else(|| {
        format!(
            "{s:?}: the fraction must be above 0 and below 1, as a number or a percentage \
             (0.05 or 5%), not {f:?}"
        )
    })?;
    Ok(Misbehave {
        kind,
        fraction: value,
    })
}

/// Check a whole list: each kind at most once, fractions adding up to at most
/// [`MAX_TOTAL_FRACTION`].
pub fn validate(list: &[Misbehave]) -> Result<(), String> {
    for (i, m) in list.iter().enumerate() {
        if list[..i].iter().any(|o| o.kind == m.kind) {
            return Err(format!(
                "{} is given twice; give each kind once with its whole fraction",
                m.kind
            ));
        }
    }
    let total: f64 = list.iter().map(|m| m.fraction).sum();
    if total > MAX_TOTAL_FRACTION + 1e-9 {
        return Err(format!(
            "the misbehaving fractions add up to {:.0}%, more than {:.0}%: at least {:.0}% of the \
             connections must stay normal; lower the fractions",
            total * 100.0,
            MAX_TOTAL_FRACTION * 100.0,
            (1.0 - MAX_TOTAL_FRACTION) * 100.0
        ));
    }
    Ok(())
}

/// Which kind connection number `n` has under `list` (see the module docs): the kind's
/// [`MisbehaveKind::code`], or 0 for a normal connection.
pub fn pick(list: &[Misbehave], n: u64) -> u8 {
    if list.is_empty() {
        return 0;
    }
    const INV_PHI: f64 = 0.618_033_988_749_894_9;
    let u = (n as f64 * INV_PHI).fract();
    let mut edge = 0.0;
    for m in list {
        edge += m.fraction;
        if u < edge {
            return m.kind.code();
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fractions_and_percentages() {
        let m = parse_misbehave("bad-token:5%").unwrap();
        assert_eq!(m.kind, MisbehaveKind::BadToken);
        assert!((m.fraction - 0.05).abs() < 1e-12);
        assert_eq!(
            parse_misbehave(" slow-reader : 0.1 ").unwrap().kind,
            MisbehaveKind::SlowReader
        );
        let e = parse_misbehave("bad-tokn:5%").unwrap_err();
        assert!(e.contains("valid kinds: bad-token"), "{e}");
        assert!(
            parse_misbehave("bad-token")
                .unwrap_err()
                .contains("KIND:FRACTION")
        );
        assert!(
            parse_misbehave("bad-token:0")
                .unwrap_err()
                .contains("above 0")
        );
        assert!(parse_misbehave("bad-token:100%").is_err());
    }

    #[test]
    fn validate_refuses_duplicates_and_too_much() {
        let a = parse_misbehave("no-auth:50%").unwrap();
        let b = parse_misbehave("slow-reader:45%").unwrap();
        assert!(validate(&[a, b]).unwrap_err().contains("95%"));
        assert!(validate(&[a, a]).unwrap_err().contains("twice"));
        assert!(validate(&[a]).is_ok());
    }

    #[test]
    fn pick_gives_each_kind_its_share_deterministically() {
        let list = [
            parse_misbehave("bad-token:10%").unwrap(),
            parse_misbehave("abrupt-close:20%").unwrap(),
        ];
        let mut counts = [0u32; 9];
        for n in 0..1000 {
            counts[pick(&list, n) as usize] += 1;
        }
        let bad = counts[MisbehaveKind::BadToken.code() as usize];
        let rst = counts[MisbehaveKind::AbruptClose.code() as usize];
        assert!((95..=105).contains(&bad), "{counts:?}");
        assert!((195..=205).contains(&rst), "{counts:?}");
        assert_eq!(counts[0] + bad + rst, 1000);
        // The first 20 numbers already hold each kind.
        let first: Vec<u8> = (0..20).map(|n| pick(&list, n)).collect();
        assert!(first.contains(&MisbehaveKind::BadToken.code()), "{first:?}");
        assert_eq!(pick(&list, 7), pick(&list, 7));
        assert_eq!(pick(&[], 7), 0);
    }

    #[test]
    fn codes_round_trip() {
        for k in MisbehaveKind::ALL {
            assert_eq!(MisbehaveKind::from_code(k.code()), Some(k));
            assert_eq!(MisbehaveKind::from_label(k.label()), Some(k));
        }
        assert_eq!(MisbehaveKind::from_code(0), None);
    }
}
