//! The serializable form of a [`Snapshot`]: what an agent streams to its coordinator and what
//! a JSON report carries so that `wsscale report merge` is exact.
//!
//! - Counters, gauges and per-source counts are serde structs (the derives live on the types
//!   in [`crate::metrics`]); failure categories and drop reasons travel as maps keyed by
//!   their stable report labels (`refused`, `close_1001`), never by enum position, so a
//!   reordering of [`FailureKind::ALL`] cannot silently shift counts.
//! - Histograms travel as HdrHistogram **V2 + DEFLATE** serializations in base64 (standard
//!   alphabet, padded) — the `HISTFAA…` strings every HdrHistogram implementation (Java, Go,
//!   Python `hdrh`, Rust) can decode. Never raw samples; an empty histogram is left out. The
//!   encoding is lossless: decoding and merging the parts of a split gives exactly the
//!   histogram of all samples.
//!
//! Decoded histograms are copied into a fresh [`new_histogram`] so that a peer's histogram
//! with other bounds cannot make a later merge fail: a value outside our range is a
//! [`WireError`], not a panic.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::new_histogram;
use super::{Counters, DropReason, FailureKind, Gauges, Histograms, Snapshot, SourceCounts};

/// Why a serialized snapshot or histogram could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("histogram {name}: not valid base64: {source}")]
    Base64 {
        name: String,
        source: base64::DecodeError,
    },
    #[error("histogram {name}: not a valid HdrHistogram V2 serialization: {detail}")]
    Hdr { name: String, detail: String },
    #[error("histogram {name}: a value is outside the range 1 µs ..= 1 h: {detail}")]
    Range { name: String, detail: String },
}

/// A [`Snapshot`] in serializable form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireSnapshot {
    pub counters: Counters,
    pub gauges: Gauges,
    /// Indexed like the sender's source pool.
    pub per_source: Vec<SourceCounts>,
    /// Indexed like the plan's targets.
    pub per_target: Vec<SourceCounts>,
    /// Histogram name (as in [`Histograms::named`]) → base64 V2-deflate; empty ones omitted.
    pub hist: BTreeMap<String, String>,
}

impl WireSnapshot {
    /// Serialize a snapshot.
    pub fn encode(s: &Snapshot) -> WireSnapshot {
        WireSnapshot {
            counters: s.counters.clone(),
            gauges: s.gauges.clone(),
            per_source: s.per_source.clone(),
            per_target: s.per_target.clone(),
            hist: encode_histograms(&s.hist),
        }
    }

    /// Back to a [`Snapshot`]. Unknown histogram names (from a newer peer) are ignored.
    pub fn decode(self) -> Result<Snapshot, WireError> {
        Ok(Snapshot {
            counters: self.counters,
            gauges: self.gauges,
            per_source: self.per_source,
            per_target: self.per_target,
            hist: decode_histograms(&self.hist)?,
        })
    }
}

/// Every non-empty histogram, by name, as base64 V2-deflate.
pub fn encode_histograms(h: &Histograms) -> BTreeMap<String, String> {
    h.named()
        .into_iter()
        .chain([
            ("session_duration", &*h.session_duration),
            ("churn_session", &*h.churn_session),
        ])
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| (name.to_string(), encode_histogram(h)))
        .collect()
}

/// The inverse of [`encode_histograms`]: missing names stay empty, unknown names are ignored.
pub fn decode_histograms(map: &BTreeMap<String, String>) -> Result<Histograms, WireError> {
    let mut out = Histograms::default();
    for (name, slot) in histograms_mut(&mut out) {
        if let Some(text) = map.get(name) {
            *slot = decode_histogram(name, text)?;
        }
    }
    Ok(out)
}

/// One histogram as base64 of its V2-deflate serialization.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing into a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode one histogram (V2 or V2-deflate, base64) into a fresh [`new_histogram`].
pub fn decode_histogram(name: &str, text: &str) -> Result<Histogram<u64>, WireError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|source| WireError::Base64 {
            name: name.to_string(),
            source,
        })?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| WireError::Hdr {
            name: name.to_string(),
            detail: format!("{e:?}"),
        })?;
    let mut h = new_histogram();
    h.add(&decoded).map_err(|e| WireError::Range {
        name: name.to_string(),
        detail: format!("{e:?}"),
    })?;
    Ok(h)
}

/// Mutable access to every histogram by name, in [`Histograms::named`] order, then
/// `session_duration` (milliseconds).
///
/// Kept next to the wire format on purpose: a unit test checks that it names the same
/// histograms as `named()` and as the struct's fields, so a histogram added to
/// [`Histograms`] cannot be silently left out of agent streams and reports.
pub fn histograms_mut(h: &mut Histograms) -> Vec<(&'static str, &mut Histogram<u64>)> {
    let Histograms {
        tcp_connect,
        tls_handshake,
        ws_handshake,
        message_rtt,
        ping_rtt,
        heartbeat_rtt,
        schedule_lag,
        fanout_latency,
        push_latency,
        session_duration,
        churn_session,
    } = h;
    vec![
        ("tcp_connect", tcp_connect),
        ("tls_handshake", tls_handshake),
        ("ws_handshake", ws_handshake),
        ("message_rtt", message_rtt),
        ("ping_rtt", ping_rtt),
        ("heartbeat_rtt", heartbeat_rtt),
        ("schedule_lag", schedule_lag),
        ("fanout_latency", fanout_latency),
        ("push_latency", push_latency),
        ("session_duration", session_duration),
        ("churn_session", churn_session),
    ]
}

/// serde for `Counters::failures`: a map `label → count` (only non-zero entries).
pub(crate) mod failure_map {
    use super::*;
    use serde::de::Error as _;

    pub fn serialize<S: serde::Serializer>(
        v: &[u64; FailureKind::ALL.len()],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(
            FailureKind::ALL
                .iter()
                .zip(v.iter())
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| (k.label(), *n)),
        )
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<[u64; FailureKind::ALL.len()], D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        let mut out = [0u64; FailureKind::ALL.len()];
        for (label, n) in map {
            let kind = FailureKind::ALL
                .iter()
                .find(|k| k.label() == label)
                .ok_or_else(|| D::Error::custom(format!("unknown failure category `{label}`")))?;
            out[*kind as usize] += n;
        }
        Ok(out)
    }
}

/// serde for `Counters::drops`: a map `label → count` (`close_1001`, `reset`, …).
pub(crate) mod drop_map {
    use super::*;
    use serde::de::Error as _;

    pub fn serialize<S: serde::Serializer>(
        v: &BTreeMap<DropReason, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(r, n)| (r.label(), *n)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<DropReason, u64>, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (label, n) in map {
            let reason = parse_drop_label(&label)
                .ok_or_else(|| D::Error::custom(format!("unknown drop reason `{label}`")))?;
            *out.entry(reason).or_default() += n;
        }
        Ok(out)
    }
}

/// Maps keyed by a number (HTTP status, TLS alert code), serialized with string keys.
///
/// serde_json accepts integer map keys only on the direct path; inside an internally tagged
/// enum (the agent's `{"type":"snapshot",…}` message) the content is buffered first and the
/// keys arrive as strings, so a snapshot with `http_status: {503: 1}` failed to parse and the
/// agent's figures were lost. Explicit string keys work on every path.
pub(crate) mod num_key_map {
    use std::fmt::Display;
    use std::str::FromStr;

    use super::*;
    use serde::de::Error as _;

    pub fn serialize<K: Display, S: serde::Serializer>(
        v: &BTreeMap<K, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, n)| (k.to_string(), *n)))
    }

    pub fn deserialize<'de, K: FromStr + Ord, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<K, u64>, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        map.into_iter()
            .map(|(k, n)| {
                k.parse()
                    .map(|k| (k, n))
                    .map_err(|_| D::Error::custom(format!("`{k}` is not a number")))
            })
            .collect()
    }
}

/// The inverse of [`DropReason::label`].
pub fn parse_drop_label(label: &str) -> Option<DropReason> {
    Some(match label {
        "reset" => DropReason::Reset,
        "eof" => DropReason::Eof,
        "protocol" => DropReason::Protocol,
        "ping_timeout" => DropReason::PingTimeout,
        "io" => DropReason::Io,
        other => DropReason::CloseCode(other.strip_prefix("close_")?.parse().ok()?),
    })
}

/// The inverse of [`FailureKind::label`].
pub fn parse_failure_label(label: &str) -> Option<FailureKind> {
    FailureKind::ALL
        .iter()
        .copied()
        .find(|k| k.label() == label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::record_us;

    /// Top-level field names in a `{:#?}` rendering of a struct.
    fn debug_fields(pretty: &str) -> Vec<String> {
        pretty
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("    ")?;
                let name = rest.split(':').next()?.trim();
                let ident = !rest.starts_with(' ')
                    && !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit());
                ident.then(|| name.to_string())
            })
            .collect()
    }

    #[test]
    fn histograms_mut_covers_every_histogram() {
        let mut h = Histograms::default();
        let mut named: Vec<&str> = h.named().iter().map(|(n, _)| *n).collect();
        named.push("session_duration");
        named.push("churn_session");
        let fields = debug_fields(&format!("{h:#?}"));
        let muts: Vec<&str> = histograms_mut(&mut h).iter().map(|(n, _)| *n).collect();
        assert_eq!(named, muts, "histograms_mut() must list what named() lists");
        assert_eq!(
            fields, muts,
            "every Histograms field must be in named() and histograms_mut()"
        );
    }

    #[test]
    fn snapshot_round_trip() {
        let mut s = Snapshot::default();
        s.counters.attempted = 10;
        s.counters.established = 7;
        s.counters.fail(FailureKind::Refused);
        s.counters.fail(FailureKind::HttpStatus);
        s.counters.http_status.insert(503, 1);
        s.counters.drop_with(DropReason::CloseCode(1001));
        s.counters.drop_with(DropReason::Eof);
        s.gauges.open = 5;
        s.gauges.rss_bytes = 1 << 20;
        s.per_source = vec![SourceCounts {
            established: 7,
            failed: 2,
            addr_not_available: 0,
        }];
        for v in [1, 10, 100, 1000, 123_456] {
            record_us(&mut s.hist.ws_handshake, v);
        }
        s.counters.pushes_received = 2;
        s.counters.fanout_received = 3;
        for v in [250, 900] {
            record_us(&mut s.hist.push_latency, v);
        }
        for v in [40, 41, 4_000] {
            record_us(&mut s.hist.fanout_latency, v);
        }
        let json = serde_json::to_string(&WireSnapshot::encode(&s)).unwrap();
        let back: WireSnapshot = serde_json::from_str(&json).unwrap();
        let back = back.decode().unwrap();
        assert_eq!(back.counters, s.counters);
        assert_eq!(back.gauges, s.gauges);
        assert_eq!(back.per_source, s.per_source);
        assert_eq!(back.hist.ws_handshake, s.hist.ws_handshake);
        assert_eq!(back.hist.fanout_latency, s.hist.fanout_latency);
        assert_eq!(back.hist.push_latency, s.hist.push_latency);
        assert!(back.hist.message_rtt.is_empty());
        assert!(json.contains("\"refused\":1"), "{json}");
        assert!(json.contains("\"close_1001\":1"), "{json}");
    }

    #[test]
    fn drop_labels_round_trip() {
        for r in [
            DropReason::CloseCode(1000),
            DropReason::CloseCode(4001),
            DropReason::Reset,
            DropReason::Eof,
            DropReason::Protocol,
            DropReason::PingTimeout,
            DropReason::Io,
        ] {
            assert_eq!(parse_drop_label(&r.label()), Some(r));
        }
        assert_eq!(parse_drop_label("close_x"), None);
        for k in FailureKind::ALL {
            assert_eq!(parse_failure_label(k.label()), Some(k));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            decode_histogram("x", "not base64!"),
            Err(WireError::Base64 { .. })
        ));
        assert!(matches!(
            decode_histogram("x", "aGVsbG8="),
            Err(WireError::Hdr { .. })
        ));
    }
}
