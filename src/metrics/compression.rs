//! [`CompressionCounters`]: what permessage-deflate was offered and agreed, and what it did
//! to the bytes of data messages (payload vs wire), for `compression.*` in the report.

use std::collections::BTreeMap;

/// permessage-deflate counts of a run (deltas in a shard snapshot, totals after merging).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CompressionCounters {
    /// Upgrade requests that offered permessage-deflate.
    pub offered: u64,
    /// Upgrades whose 101 accepted it.
    pub accepted: u64,
    /// Accepted connections by the parameters the server answered with (canonical spelling,
    /// e.g. `permessage-deflate; server_no_context_takeover`).
    pub params: BTreeMap<String, u64>,
    /// Data-message bytes before compression / data-frame payload bytes actually sent (all
    /// data messages; equal when nothing is compressed).
    pub payload_bytes_sent: u64,
    pub wire_bytes_sent: u64,
    /// Data-frame payload bytes received / after inflating.
    pub wire_bytes_received: u64,
    pub payload_bytes_received: u64,
    /// Data messages sent / received compressed.
    pub messages_compressed_sent: u64,
    pub messages_compressed_received: u64,
    /// Connections that needed their own inflate window (the server compressed with
    /// context takeover).
    pub inflate_windows: u64,
}

impl CompressionCounters {
    pub fn merge(&mut self, o: &CompressionCounters) {
        self.offered += o.offered;
        self.accepted += o.accepted;
        for (k, v) in &o.params {
            *self.params.entry(k.clone()).or_default() += v;
        }
        self.payload_bytes_sent += o.payload_bytes_sent;
        self.wire_bytes_sent += o.wire_bytes_sent;
        self.wire_bytes_received += o.wire_bytes_received;
        self.payload_bytes_received += o.payload_bytes_received;
        self.messages_compressed_sent += o.messages_compressed_sent;
        self.messages_compressed_received += o.messages_compressed_received;
        self.inflate_windows += o.inflate_windows;
    }

    /// Count one accepted connection with these parameters (a string is built only for the
    /// first connection with them).
    pub fn accept(&mut self, label: &str) {
        self.accepted += 1;
        match self.params.get_mut(label) {
            Some(n) => *n += 1,
            None => {
                self.params.insert(label.to_string(), 1);
            }
        }
    }

    /// payload ÷ wire bytes of data messages sent and received (`None` when none).
    pub fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let r = |p: u64, w: u64| (w > 0).then(|| p as f64 / w as f64);
        (
            r(self.payload_bytes_sent, self.wire_bytes_sent),
            r(self.payload_bytes_received, self.wire_bytes_received),
        )
    }
}
