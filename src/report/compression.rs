//! The report's `compression` object (permessage-deflate, `--compression`): what was
//! offered and agreed, and payload vs wire bytes of data messages — the text summary's
//! "Compression" lines and the live line's ratio read the same counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::compression::CompressionCounters;

/// `compression` in the JSON report. Added within schema version 1: absent from older
/// reports, which read back as zeros.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JsonCompression {
    /// Upgrade requests that offered permessage-deflate.
    pub offered: u64,
    /// Upgrades whose 101 accepted it.
    pub accepted: u64,
    /// Accepted connections by the answer's parameters (canonical spelling).
    pub params: BTreeMap<String, u64>,
    /// Connections that needed their own inflate window (server context takeover).
    pub inflate_windows: u64,
    /// Data messages sent / received compressed.
    pub messages_compressed_sent: u64,
    pub messages_compressed_received: u64,
    /// Data-message bytes before compression and data-frame payload bytes on the wire.
    pub payload_bytes_sent: u64,
    pub wire_bytes_sent: u64,
    pub payload_bytes_received: u64,
    pub wire_bytes_received: u64,
    /// payload ÷ wire (`null` when no data message went that way).
    pub ratio_sent: Option<f64>,
    pub ratio_received: Option<f64>,
}

impl JsonCompression {
    pub fn from_counters(c: &CompressionCounters) -> JsonCompression {
        let (ratio_sent, ratio_received) = c.ratios();
        let round = |r: Option<f64>| r.map(|r| (r * 1000.0).round() / 1000.0);
        JsonCompression {
            offered: c.offered,
            accepted: c.accepted,
            params: c.params.clone(),
            inflate_windows: c.inflate_windows,
            messages_compressed_sent: c.messages_compressed_sent,
            messages_compressed_received: c.messages_compressed_received,
            payload_bytes_sent: c.payload_bytes_sent,
            wire_bytes_sent: c.wire_bytes_sent,
            payload_bytes_received: c.payload_bytes_received,
            wire_bytes_received: c.wire_bytes_received,
            ratio_sent: round(ratio_sent),
            ratio_received: round(ratio_received),
        }
    }

    /// The counters back (for `wsscale report merge`).
    pub fn to_counters(&self) -> CompressionCounters {
        CompressionCounters {
            offered: self.offered,
            accepted: self.accepted,
            params: self.params.clone(),
            payload_bytes_sent: self.payload_bytes_sent,
            wire_bytes_sent: self.wire_bytes_sent,
            wire_bytes_received: self.wire_bytes_received,
            payload_bytes_received: self.payload_bytes_received,
            messages_compressed_sent: self.messages_compressed_sent,
            messages_compressed_received: self.messages_compressed_received,
            inflate_windows: self.inflate_windows,
        }
    }
}

/// The text summary's lines (`None` when compression was not offered).
pub fn summary_lines(c: &CompressionCounters) -> Option<Vec<(&'static str, String)>> {
    if c.offered == 0 {
        return None;
    }
    let mut lines = vec![(
        "offered / accepted",
        format!(
            "{:>12} / {}  ({} inflate windows)",
            c.offered, c.accepted, c.inflate_windows
        ),
    )];
    for (params, n) in &c.params {
        lines.push(("params", format!("{n:>12}  {params}")));
    }
    let (rs, rr) = c.ratios();
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}x"));
    lines.push((
        "payload / wire sent",
        format!(
            "{:>12} / {} bytes  ({})",
            c.payload_bytes_sent,
            c.wire_bytes_sent,
            ratio(rs)
        ),
    ));
    lines.push((
        "payload / wire recv",
        format!(
            "{:>12} / {} bytes  ({})",
            c.payload_bytes_received,
            c.wire_bytes_received,
            ratio(rr)
        ),
    ));
    Some(lines)
}

/// The live line's part: `deflate 5.1x out 4.8x in` (`None` when nothing was compressed).
pub fn live_part(c: &CompressionCounters) -> Option<String> {
    if c.messages_compressed_sent + c.messages_compressed_received == 0 {
        return None;
    }
    let (rs, rr) = c.ratios();
    let r = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.1}x"));
    Some(format!("deflate {} out {} in", r(rs), r(rr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_ratios_follow_the_counters() {
        let mut c = CompressionCounters::default();
        assert!(summary_lines(&c).is_none(), "nothing offered: no section");
        assert!(live_part(&c).is_none());
        c.offered = 10;
        c.accept("permessage-deflate");
        c.payload_bytes_sent = 1000;
        c.wire_bytes_sent = 200;
        c.messages_compressed_sent = 4;
        let lines = summary_lines(&c).unwrap();
        assert!(
            lines
                .iter()
                .any(|(k, v)| *k == "params" && v.contains("permessage-deflate"))
        );
        assert!(
            lines.iter().any(|(_, v)| v.contains("(5.00x)")),
            "{lines:?}"
        );
        assert_eq!(live_part(&c).unwrap(), "deflate 5.0x out - in");
        let j = JsonCompression::from_counters(&c);
        assert_eq!((j.ratio_sent, j.ratio_received), (Some(5.0), None));
        assert_eq!(
            j.to_counters(),
            c,
            "report merge reads back what was written"
        );
    }
}
