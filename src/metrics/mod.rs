//! Counters, histograms and the [`Snapshot`] every engine shard hands over each interval.
//!
//! Failures are data: a closed set of [`FailureKind`]s counted in fixed arrays (HTTP statuses
//! and close codes in small sorted maps, since their value is the label). Strings exist only
//! when a report is written. Histograms are HdrHistogram (microseconds, 3 significant
//! digits): mergeable and of fixed size, never raw samples.
//!
//! The same [`Snapshot::merge`] adds up shards inside a process and, later, processes and
//! agents: counters add, gauges add, histograms add. A shard's snapshot carries *deltas*
//! since its previous snapshot for counters and histograms, and the current value for gauges.
//!
//! [`wire`] is the serializable form of a snapshot (counters by label, histograms as base64
//! HdrHistogram V2): what agents stream to their coordinator and what JSON reports carry.

pub mod aggregate;
pub mod bursts;
pub mod churn;
pub mod compression;
pub mod disruption;
pub mod drift;
pub mod gateway;
pub mod labels;
pub mod misbehave;
pub mod outcome;
pub mod percentiles;
pub mod thresholds;
pub mod timeseries;
pub mod verdict;
pub mod wire;

pub use aggregate::Aggregator;
pub use outcome::{
    AgentOutcome, IntervalPercentiles, IntervalRow, OutcomeMeta, PreflightNote, RunOutcome,
    SourceOutcome, TargetOutcome, ThresholdOutcome, build_outcome,
};
pub use percentiles::{Percentiles, quantile_ms};

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Why a connection attempt failed or an open connection ended unplanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// Host name did not resolve.
    Dns,
    /// TCP connect refused (RST to SYN).
    Refused,
    /// TCP connect did not complete within the connect timeout.
    ConnectTimeout,
    /// Connection reset by peer.
    Reset,
    /// `EADDRNOTAVAIL`: no free local port for this (source, destination).
    AddrNotAvailable,
    /// `EMFILE`/`ENFILE`: out of file descriptors.
    TooManyFiles,
    /// Any other TLS failure: a malformed or undecryptable record, a handshake the server
    /// abandoned without an alert, a protocol mismatch.
    Tls,
    /// The server certificate was rejected: unknown issuer (wrong or missing CA), name
    /// mismatch (SNI), expired, not yet valid, revoked, bad signature.
    TlsCert,
    /// The server sent a fatal TLS alert (its description is counted in
    /// [`Counters::tls_alerts`]; e.g. `certificate_required` when an mTLS gateway gets no
    /// client certificate).
    TlsAlert,
    /// The TLS handshake did not complete within the handshake timeout.
    TlsHandshakeTimeout,
    /// The upgrade was answered with a non-101 status (the code is counted separately).
    HttpStatus,
    /// No complete upgrade response within the handshake timeout.
    HandshakeTimeout,
    /// Bad upgrade response, bad `Sec-WebSocket-Accept`, malformed or oversized frame, a
    /// frame breaking RFC 6455 (reserved bits or close codes, interleaved fragments, a text
    /// frame that is not UTF-8).
    Protocol,
    /// The server closed the connection (close frame or EOF) before it was established.
    ClosedByServer,
    /// A ping was not answered in time (heartbeats).
    PingTimeout,
    /// Any other socket error.
    Io,
    /// Upgraded, but the open sequence (`--expect`, `--first-message-expect`, a preset's
    /// handshake) did not complete within the handshake timeout.
    OpenSequenceTimeout,
    /// Upgraded, but the server closed the connection during the open sequence.
    OpenSequenceClosed,
    /// The upgrade response head did not end within 16 KiB (`MAX_RESPONSE_HEAD` of the
    /// engine) or 32 header lines: an endless or absurd head, never buffered further.
    HandshakeTooLarge,
}

impl FailureKind {
    pub const ALL: [FailureKind; 19] = [
        FailureKind::Dns,
        FailureKind::Refused,
        FailureKind::ConnectTimeout,
        FailureKind::Reset,
        FailureKind::AddrNotAvailable,
        FailureKind::TooManyFiles,
        FailureKind::Tls,
        FailureKind::TlsCert,
        FailureKind::TlsAlert,
        FailureKind::TlsHandshakeTimeout,
        FailureKind::HttpStatus,
        FailureKind::HandshakeTimeout,
        FailureKind::Protocol,
        FailureKind::ClosedByServer,
        FailureKind::PingTimeout,
        FailureKind::Io,
        FailureKind::OpenSequenceTimeout,
        FailureKind::OpenSequenceClosed,
        FailureKind::HandshakeTooLarge,
    ];

    /// Stable label used in reports (`http_status` is refined to `http_status_<code>` there,
    /// `tls_alert` to `tls_alert_<name>`).
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::Refused => "refused",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::Reset => "reset",
            FailureKind::AddrNotAvailable => "addr_not_available",
            FailureKind::TooManyFiles => "too_many_files",
            FailureKind::Tls => "tls",
            FailureKind::TlsCert => "tls_cert",
            FailureKind::TlsAlert => "tls_alert",
            FailureKind::TlsHandshakeTimeout => "tls_handshake_timeout",
            FailureKind::HttpStatus => "http_status",
            FailureKind::HandshakeTimeout => "handshake_timeout",
            FailureKind::Protocol => "protocol",
            FailureKind::ClosedByServer => "closed_by_server",
            FailureKind::PingTimeout => "ping_timeout",
            FailureKind::Io => "io",
            FailureKind::OpenSequenceTimeout => "open_sequence_timeout",
            FailureKind::OpenSequenceClosed => "open_sequence_closed",
            FailureKind::HandshakeTooLarge => "handshake_too_large",
        }
    }

    /// Classify a socket error.
    pub fn from_io(e: &std::io::Error) -> FailureKind {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => FailureKind::Refused,
            Some(libc::ECONNRESET) | Some(libc::EPIPE) => FailureKind::Reset,
            Some(libc::EADDRNOTAVAIL) => FailureKind::AddrNotAvailable,
            Some(libc::EMFILE) | Some(libc::ENFILE) => FailureKind::TooManyFiles,
            Some(libc::ETIMEDOUT) => FailureKind::ConnectTimeout,
            _ => FailureKind::Io,
        }
    }
}

/// Why an established connection ended without the client asking for it (a "drop").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The server sent a close frame with this code (1005 when it carried none).
    CloseCode(u16),
    /// Connection reset.
    Reset,
    /// EOF without a close frame.
    Eof,
    /// A protocol violation by the server (bad frame, oversized frame).
    Protocol,
    /// A ping or heartbeat was not answered in time.
    PingTimeout,
    /// Other socket error.
    Io,
}

impl DropReason {
    /// Stable label used in reports.
    pub fn label(self) -> String {
        match self {
            DropReason::CloseCode(c) => format!("close_{c}"),
            DropReason::Reset => "reset".into(),
            DropReason::Eof => "eof".into(),
            DropReason::Protocol => "protocol".into(),
            DropReason::PingTimeout => "ping_timeout".into(),
            DropReason::Io => "io".into(),
        }
    }
}

/// Monotonic event counts (a shard's snapshot carries the delta since its previous one).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Connection attempts started (TCP connect issued or failed immediately).
    pub attempted: u64,
    /// WebSocket upgrades completed (101 with a valid accept key).
    pub established: u64,
    /// Attempts that never reached `established`.
    pub failed: u64,
    /// Established connections that ended without the client closing them.
    pub dropped: u64,
    /// Attempts that were re-opens of failed or dropped connections (`--reconnect`).
    pub reconnects: u64,
    /// Connections the client closed on purpose (ramp-down, end of run).
    pub closed: u64,
    /// Of `closed`: close handshakes the server never answered, ended by `--close-timeout`.
    pub close_timeouts: u64,
    /// Attempts the client cancelled before they were established (ramp-down or end of run
    /// while connecting or handshaking). `attempted = established + failed + aborted +
    /// pending`.
    pub aborted: u64,
    /// Retries of a (source, destination) pair that had run out of local ports
    /// (`EADDRNOTAVAIL`), made with back-off while every pair of the target was full.
    pub source_port_retries: u64,
    /// Failures by category, indexed by `FailureKind as usize`.
    #[serde(with = "wire::failure_map")]
    pub failures: [u64; FailureKind::ALL.len()],
    /// Non-101 upgrade statuses by code.
    #[serde(with = "wire::num_key_map")]
    pub http_status: BTreeMap<u16, u64>,
    /// Fatal TLS alerts received from the server, by alert description code (see
    /// [`tls_alert_name`]).
    #[serde(with = "wire::num_key_map")]
    pub tls_alerts: BTreeMap<u8, u64>,
    /// TLS handshakes completed, and how many of them resumed an earlier session.
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    /// Drops by reason.
    #[serde(with = "wire::drop_map")]
    pub drops: BTreeMap<DropReason, u64>,
    /// Bytes and frames in both directions (all frames, including control frames).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_received: u64,
    /// Pings received from the server and answered.
    pub pings_answered: u64,
    /// Timed messages sent (`--message-rate`).
    pub messages_sent: u64,
    /// Echoes of our timed messages received (each closes one latency sample).
    pub messages_received: u64,
    /// Timed messages whose echo did not arrive within `--message-timeout`, or that were
    /// still outstanding when their connection ended.
    pub messages_lost: u64,
    /// Payload bytes of timed messages sent / of data frames received.
    pub message_bytes_sent: u64,
    pub message_bytes_received: u64,
    /// Data frames received that were not echoes of our timed messages (server push,
    /// heartbeat replies, first-message replies).
    pub other_messages_received: u64,
    /// WebSocket pings sent / pongs that answered them.
    pub pings_sent: u64,
    pub pongs_received: u64,
    /// Application heartbeats sent / expected replies received.
    pub heartbeats_sent: u64,
    pub heartbeat_replies: u64,
    /// The first detail seen per failure category label (`tls_cert` → "invalid peer
    /// certificate: …CaUsedAsEndEntity…"): why, in words, for the summary and the report.
    /// Kept small: one entry per category, the first one wins when merging.
    pub examples: BTreeMap<String, String>,
    /// Auto-replies sent, per rule of the session table (in rule order).
    pub replies: Vec<u64>,
    /// Server keep-alives answered by an auto-reply (Engine.IO `2`, NATS `PING`, …; WebSocket
    /// pings answered are `pings_answered`).
    pub server_pings_answered: u64,
    /// Server-originated frames whose creation time `--push-timestamp` read (each one a
    /// `push_latency` sample; not counted in `other_messages_received`).
    pub pushes_received: u64,
    /// Frames carrying another sender's latency marker (fan-out: each one a
    /// `fanout_latency` sample; not counted in `other_messages_received`).
    pub fanout_received: u64,
    /// permessage-deflate: offered, accepted, parameters, payload vs wire bytes.
    pub compression: compression::CompressionCounters,
    /// Sessions ended by churn (`--session-duration`): client closes, also in `closed`.
    pub churn_closes: u64,
    /// Arrivals of a rate stage not started because `--max-open` was reached (or no source
    /// address could take one).
    pub arrivals_skipped: u64,
    /// Misbehaving connections (`--misbehave`) and the gateway's answers, by kind; none of
    /// them is counted in any other field.
    pub misbehave: misbehave::MisbehaveCounters,
}

impl Counters {
    pub fn fail(&mut self, kind: FailureKind) {
        self.failed += 1;
        self.failures[kind as usize] += 1;
    }

    /// Keep `detail` as the example of `label` unless one is kept already (a string is
    /// built only then).
    pub fn example(&mut self, label: &str, detail: impl FnOnce() -> String) {
        if !self.examples.contains_key(label) {
            self.examples.insert(label.to_string(), detail());
        }
    }

    pub fn failures_of(&self, kind: FailureKind) -> u64 {
        self.failures[kind as usize]
    }

    pub fn drop_with(&mut self, reason: DropReason) {
        self.dropped += 1;
        *self.drops.entry(reason).or_default() += 1;
    }

    pub fn merge(&mut self, o: &Counters) {
        self.attempted += o.attempted;
        self.established += o.established;
        self.failed += o.failed;
        self.dropped += o.dropped;
        self.reconnects += o.reconnects;
        self.closed += o.closed;
        self.close_timeouts += o.close_timeouts;
        self.aborted += o.aborted;
        self.source_port_retries += o.source_port_retries;
        for (a, b) in self.failures.iter_mut().zip(o.failures.iter()) {
            *a += b;
        }
        self.server_pings_answered += o.server_pings_answered;
        if self.replies.len() < o.replies.len() {
            self.replies.resize(o.replies.len(), 0);
        }
        for (a, b) in self.replies.iter_mut().zip(&o.replies) {
            *a += b;
        }
        for (k, v) in &o.examples {
            if !self.examples.contains_key(k) {
                self.examples.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &o.http_status {
            *self.http_status.entry(*k).or_default() += v;
        }
        for (k, v) in &o.tls_alerts {
            *self.tls_alerts.entry(*k).or_default() += v;
        }
        self.tls_handshakes += o.tls_handshakes;
        self.tls_resumed += o.tls_resumed;
        for (k, v) in &o.drops {
            *self.drops.entry(*k).or_default() += v;
        }
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.frames_received += o.frames_received;
        self.pings_answered += o.pings_answered;
        self.messages_sent += o.messages_sent;
        self.messages_received += o.messages_received;
        self.messages_lost += o.messages_lost;
        self.message_bytes_sent += o.message_bytes_sent;
        self.message_bytes_received += o.message_bytes_received;
        self.other_messages_received += o.other_messages_received;
        self.pings_sent += o.pings_sent;
        self.pongs_received += o.pongs_received;
        self.heartbeats_sent += o.heartbeats_sent;
        self.heartbeat_replies += o.heartbeat_replies;
        self.pushes_received += o.pushes_received;
        self.fanout_received += o.fanout_received;
        self.compression.merge(&o.compression);
        self.churn_closes += o.churn_closes;
        self.arrivals_skipped += o.arrivals_skipped;
        self.misbehave.merge(&o.misbehave);
    }
}

/// Current values (not deltas).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Gauges {
    /// Connections established and not yet closed.
    pub open: u64,
    /// Connections connecting or handshaking.
    pub pending: u64,
    /// Connections in the client's close handshake.
    pub closing: u64,
    /// True when every (source, destination) pair ran out of ports: no more connections
    /// can be opened.
    pub sources_exhausted: bool,
    /// Resident set size of the process(es) behind this snapshot, in bytes; 0 from engine
    /// shards (the controller samples its own process), set by a process that forwards its
    /// snapshot to a coordinator, summed over agents by `merge`.
    pub rss_bytes: u64,
    /// The most bytes one connection held in a receive buffer (a partial response head or
    /// frame, or the collected fragments of a compressed message): since the previous
    /// snapshot in a shard's snapshot, over the run so far once aggregated (see
    /// [`Aggregator`]). Bounded by 16 KiB during the upgrade and by `--max-frame` plus a
    /// 14-byte header after it. Merges by maximum; not in the JSON report (the hostile-server
    /// tests assert the bound).
    pub buffered_peak: u64,
    /// The most connections this process had open at once so far (0 from engine shards):
    /// set by a process that forwards its snapshot to a coordinator from its own
    /// aggregator, which sees every shard snapshot — the coordinator, which samples each
    /// agent once per forward, could miss a short peak. Summed by `merge`.
    pub peak_open: u64,
}

impl Gauges {
    pub fn merge(&mut self, o: &Gauges) {
        self.open += o.open;
        self.pending += o.pending;
        self.closing += o.closing;
        self.sources_exhausted |= o.sources_exhausted;
        self.rss_bytes += o.rss_bytes;
        self.buffered_peak = self.buffered_peak.max(o.buffered_peak);
        self.peak_open += o.peak_open;
    }
}

/// Per source address accounting (index = position in the source pool).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SourceCounts {
    pub established: u64,
    pub failed: u64,
    /// `EADDRNOTAVAIL` results (the pair was full).
    pub addr_not_available: u64,
}

impl SourceCounts {
    pub fn merge(&mut self, o: &SourceCounts) {
        self.established += o.established;
        self.failed += o.failed;
        self.addr_not_available += o.addr_not_available;
    }
}

/// Highest value a histogram records: one hour in microseconds.
pub const HIST_MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// Record a duration in microseconds (clamped to the histogram range).
pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(1, HIST_MAX_US));
}

/// A latency histogram that allocates its counts (≈ 190 KiB at 3 significant digits up to one
/// hour in µs) only when something is recorded or merged into it.
///
/// Snapshots travel from every shard every 200 ms and most of their histograms are empty
/// (no TLS, no pings, no messages in a plain hold): allocating them eagerly put several MiB of
/// histogram arrays into the process's RSS during a run, which the memory-per-connection
/// figure then charged to the connections. Reads of an unallocated histogram see a shared,
/// immutable empty one.
#[derive(Debug, Clone, Default)]
pub struct Hist(Option<Box<Histogram<u64>>>);

static EMPTY_HIST: std::sync::LazyLock<Histogram<u64>> = std::sync::LazyLock::new(new_histogram);

impl std::ops::Deref for Hist {
    type Target = Histogram<u64>;
    fn deref(&self) -> &Histogram<u64> {
        self.0.as_deref().unwrap_or(&EMPTY_HIST)
    }
}

impl std::ops::DerefMut for Hist {
    fn deref_mut(&mut self) -> &mut Histogram<u64> {
        self.0.get_or_insert_with(|| Box::new(new_histogram()))
    }
}

/// Equal when the recorded samples are equal (an unallocated histogram equals an empty one).
impl PartialEq for Hist {
    fn eq(&self, o: &Hist) -> bool {
        **self == **o
    }
}

impl From<Histogram<u64>> for Hist {
    fn from(h: Histogram<u64>) -> Hist {
        Hist(Some(Box::new(h)))
    }
}

impl Hist {
    /// Add `o`'s samples (nothing is allocated when `o` is empty).
    pub fn merge(&mut self, o: &Hist) {
        if let Some(h) = &o.0
            && !h.is_empty()
        {
            // Same bounds everywhere, so `add` cannot fail.
            self.add(&**h).expect("same bounds");
        }
    }

    /// True when the counts array exists.
    pub fn is_allocated(&self) -> bool {
        self.0.is_some()
    }
}

/// The histograms every shard keeps.
#[derive(Debug, Clone, Default)]
pub struct Histograms {
    /// SYN to connected (µs).
    pub tcp_connect: Hist,
    /// TCP connected to TLS handshake complete (µs); `wss://` targets only.
    pub tls_handshake: Hist,
    /// Upgrade request written to valid 101 parsed (µs).
    pub ws_handshake: Hist,
    /// Echo receive time − *intended* send time of timed messages (µs).
    pub message_rtt: Hist,
    /// Pong receive time − intended ping time (µs).
    pub ping_rtt: Hist,
    /// Expected heartbeat reply time − intended heartbeat time (µs).
    pub heartbeat_rtt: Hist,
    /// How late each scheduled send (message, ping, heartbeat) actually went out (µs):
    /// actual send time − intended send time.
    pub schedule_lag: Hist,
    /// Receive wall-clock time − the marker's intended send time (wall clock) of timed
    /// messages another connection published (µs); across hosts this needs synchronized
    /// clocks.
    pub fanout_latency: Hist,
    /// Receive wall-clock time − the creation time a server push carries
    /// (`--push-timestamp`) (µs); across hosts this needs synchronized clocks.
    pub push_latency: Hist,
    /// Session duration: established → closed or dropped, per connection, in
    /// **milliseconds** (not µs like the latencies, so sessions of days fit; percentiles of
    /// it read as seconds, see [`Percentiles::from_hist`]). Not in [`Histograms::named`],
    /// which lists the latencies.
    pub session_duration: Hist,
    /// Sessions ended by churn (`--session-duration`): established → the client's close at
    /// the session's end, in **milliseconds** like `session_duration` (which also counts
    /// drops and ramp-down closes). Not in [`Histograms::named`].
    pub churn_session: Hist,
}

impl Histograms {
    pub fn merge(&mut self, o: &Histograms) {
        self.tcp_connect.merge(&o.tcp_connect);
        self.tls_handshake.merge(&o.tls_handshake);
        self.ws_handshake.merge(&o.ws_handshake);
        self.message_rtt.merge(&o.message_rtt);
        self.ping_rtt.merge(&o.ping_rtt);
        self.heartbeat_rtt.merge(&o.heartbeat_rtt);
        self.schedule_lag.merge(&o.schedule_lag);
        self.fanout_latency.merge(&o.fanout_latency);
        self.push_latency.merge(&o.push_latency);
        self.session_duration.merge(&o.session_duration);
        self.churn_session.merge(&o.churn_session);
    }

    /// Every latency histogram (µs) with its report name (`message_rtt` → `message_rtt_ms` in
    /// JSON). `session_duration` (ms) is not one of them.
    pub fn named(&self) -> [(&'static str, &Histogram<u64>); 9] {
        [
            ("tcp_connect", &*self.tcp_connect),
            ("tls_handshake", &*self.tls_handshake),
            ("ws_handshake", &*self.ws_handshake),
            ("message_rtt", &*self.message_rtt),
            ("ping_rtt", &*self.ping_rtt),
            ("heartbeat_rtt", &*self.heartbeat_rtt),
            ("schedule_lag", &*self.schedule_lag),
            ("fanout_latency", &*self.fanout_latency),
            ("push_latency", &*self.push_latency),
        ]
    }
}

/// The report name of a TLS alert description code: the RFC 8446 name in snake case
/// (`certificate_required`, `handshake_failure`, `unknown_ca`), `unknown_<code>` for codes
/// rustls does not name.
pub fn tls_alert_name(code: u8) -> String {
    match rustls::AlertDescription::from(code) {
        rustls::AlertDescription::Unknown(c) => format!("unknown_{c}"),
        known => snake_case(&format!("{known:?}")),
    }
}

/// `UnknownPSKIdentity` → `unknown_psk_identity`: a word starts at an upper-case letter that
/// follows a lower-case one, or that ends a run of capitals and is followed by lower case.
fn snake_case(camel: &str) -> String {
    let c: Vec<char> = camel.chars().collect();
    let mut out = String::with_capacity(c.len() + 4);
    for (i, &ch) in c.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let prev_lower = c[i - 1].is_ascii_lowercase();
            let ends_acronym = c[i - 1].is_ascii_uppercase()
                && c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev_lower || ends_acronym {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// What a shard (or a process, or an agent) reports each interval.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counters: Counters,
    pub gauges: Gauges,
    pub hist: Histograms,
    /// Indexed like the source pool; empty when the kernel chooses the source.
    pub per_source: Vec<SourceCounts>,
    /// Indexed like the plan's targets: established and failed per target.
    pub per_target: Vec<SourceCounts>,
}

impl Snapshot {
    /// Add `o`'s counters, histograms and per-source counts into `self`, leaving the gauges
    /// alone (for totals over time, where gauges are current values, not sums).
    pub fn merge_deltas(&mut self, o: &Snapshot) {
        let gauges = std::mem::take(&mut self.gauges);
        self.merge(o);
        self.gauges = gauges;
    }

    /// Add `o` into `self`: counters, gauges, histograms and per-source counts all add.
    pub fn merge(&mut self, o: &Snapshot) {
        self.counters.merge(&o.counters);
        self.gauges.merge(&o.gauges);
        self.hist.merge(&o.hist);
        if self.per_source.len() < o.per_source.len() {
            self.per_source
                .resize(o.per_source.len(), SourceCounts::default());
        }
        for (a, b) in self.per_source.iter_mut().zip(o.per_source.iter()) {
            a.merge(b);
        }
        if self.per_target.len() < o.per_target.len() {
            self.per_target
                .resize(o.per_target.len(), SourceCounts::default());
        }
        for (a, b) in self.per_target.iter_mut().zip(o.per_target.iter()) {
            a.merge(b);
        }
    }
}

/// Resident set size of this process in bytes (`VmRSS` from `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&s)
}

/// Parse the `VmRSS:` line of a `/proc/<pid>/status` text into bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_alert_names_are_snake_case() {
        assert_eq!(tls_alert_name(0x74), "certificate_required");
        assert_eq!(tls_alert_name(0x30), "unknown_ca");
        assert_eq!(tls_alert_name(0x73), "unknown_psk_identity");
        assert_eq!(tls_alert_name(0x28), "handshake_failure");
        assert_eq!(tls_alert_name(0x2a), "bad_certificate");
        assert_eq!(tls_alert_name(0xfe), "unknown_254");
    }

    #[test]
    fn tls_counters_merge() {
        let mut a = Counters::default();
        a.tls_alerts.insert(0x74, 2);
        a.tls_handshakes = 3;
        let mut b = Counters::default();
        b.tls_alerts.insert(0x74, 1);
        b.tls_alerts.insert(0x30, 1);
        b.tls_resumed = 1;
        a.merge(&b);
        assert_eq!(a.tls_alerts[&0x74], 3);
        assert_eq!(a.tls_alerts[&0x30], 1);
        assert_eq!((a.tls_handshakes, a.tls_resumed), (3, 1));
    }
}
