//! Gateway counters: lock-free atomics shared by the accept loop and every connection task,
//! read as a plain [`GatewayCounts`] snapshot.
//!
//! All updates use `Relaxed` ordering: each counter is independent, and a snapshot is a
//! best-effort view (fields are read one after the other, so `open` may briefly disagree with
//! `upgraded - closed` while connections come and go).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one gateway. Share it as `Arc<GatewayStats>`; read it with
/// [`GatewayStats::snapshot`].
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// WebSocket handshakes completed (HTTP 101 sent). Counted just after the 101 is
    /// written; `open` is taken just before, when the upgrade is accepted.
    pub upgraded: AtomicU64,
    /// Upgrades refused with HTTP 401 (missing or invalid JWT).
    pub rejected_auth: AtomicU64,
    /// Upgrades refused with HTTP 503 (`max_connections` reached).
    pub rejected_full: AtomicU64,
    /// WebSocket connections currently open (a gauge, not a counter).
    pub open: AtomicU64,
    /// Text and binary messages echoed back (counted when handed to the socket, so a
    /// client that has received an echo always sees it counted).
    pub messages_echoed: AtomicU64,
    /// Upgraded connections that have ended (any reason: close, reset, protocol error,
    /// shutdown).
    pub closed: AtomicU64,
    /// Accepted sockets that never became a WebSocket and were not rejected with 401/503:
    /// not an upgrade request, malformed request, handshake timeout, reset mid-handshake.
    pub handshake_failed: AtomicU64,
    /// `accept()` failures (for example `EMFILE` when the gateway runs out of descriptors).
    pub accept_errors: AtomicU64,
    /// TLS handshakes completed (`wss://` gateways).
    pub tls_handshakes: AtomicU64,
    /// Of those, handshakes that resumed an earlier session (a ticket).
    pub tls_resumed: AtomicU64,
    /// Accepted sockets whose TLS handshake failed (bad certificate on either side, missing
    /// client certificate, not TLS at all, timeout). Also counted in `handshake_failed`.
    pub tls_failed: AtomicU64,
    /// Push messages made by the feed (one per tick, whether or not a connection is open).
    pub push_ticks: AtomicU64,
    /// Push messages handed to connections (one per connection per tick; counted before the
    /// write, like `messages_echoed`).
    pub pushes_sent: AtomicU64,
    /// Push messages skipped by connections that fell too far behind the feed.
    pub push_lagged: AtomicU64,
    /// Text and binary messages received for the chat room (`broadcast`).
    pub broadcast_received: AtomicU64,
    /// Room messages handed to connections (one per connection per message received).
    pub broadcast_delivered: AtomicU64,
    /// Room messages skipped by connections that fell too far behind.
    pub broadcast_lagged: AtomicU64,
    /// Upgrades that agreed to permessage-deflate (`--compression deflate`).
    pub deflate_accepted: AtomicU64,
    /// Connections that allocated an inflate window (their client compresses with context
    /// takeover).
    pub deflate_windows: AtomicU64,
}

/// A point-in-time copy of [`GatewayStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCounts {
    /// TCP connections accepted.
    pub accepted: u64,
    /// WebSocket handshakes completed.
    pub upgraded: u64,
    /// Upgrades refused with HTTP 401.
    pub rejected_auth: u64,
    /// Upgrades refused with HTTP 503.
    pub rejected_full: u64,
    /// WebSocket connections open at the time of the snapshot.
    pub open: u64,
    /// Text and binary messages echoed back.
    pub messages_echoed: u64,
    /// Upgraded connections that have ended.
    pub closed: u64,
    /// Accepted sockets whose handshake failed for a reason other than 401/503.
    pub handshake_failed: u64,
    /// `accept()` failures.
    pub accept_errors: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that resumed a session.
    pub tls_resumed: u64,
    /// TLS handshakes that failed.
    pub tls_failed: u64,
    /// Push messages made by the feed.
    pub push_ticks: u64,
    /// Push messages handed to connections.
    pub pushes_sent: u64,
    /// Push messages skipped by lagging connections.
    pub push_lagged: u64,
    /// Messages received for the chat room.
    pub broadcast_received: u64,
    /// Room messages handed to connections.
    pub broadcast_delivered: u64,
    /// Room messages skipped by lagging connections.
    pub broadcast_lagged: u64,
    /// Upgrades that agreed to permessage-deflate.
    pub deflate_accepted: u64,
    /// Connections that allocated an inflate window.
    pub deflate_windows: u64,
}

impl GatewayStats {
    /// Read every counter once.
    pub fn snapshot(&self) -> GatewayCounts {
        GatewayCounts {
            accepted: self.accepted.load(Relaxed),
            upgraded: self.upgraded.load(Relaxed),
            rejected_auth: self.rejected_auth.load(Relaxed),
            rejected_full: self.rejected_full.load(Relaxed),
            open: self.open.load(Relaxed),
            messages_echoed: self.messages_echoed.load(Relaxed),
            closed: self.closed.load(Relaxed),
            handshake_failed: self.handshake_failed.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
            tls_handshakes: self.tls_handshakes.load(Relaxed),
            tls_resumed: self.tls_resumed.load(Relaxed),
            tls_failed: self.tls_failed.load(Relaxed),
            push_ticks: self.push_ticks.load(Relaxed),
            pushes_sent: self.pushes_sent.load(Relaxed),
            push_lagged: self.push_lagged.load(Relaxed),
            broadcast_received: self.broadcast_received.load(Relaxed),
            broadcast_delivered: self.broadcast_delivered.load(Relaxed),
            broadcast_lagged: self.broadcast_lagged.load(Relaxed),
            deflate_accepted: self.deflate_accepted.load(Relaxed),
            deflate_windows: self.deflate_windows.load(Relaxed),
        }
    }

    pub(super) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Take one slot of `open`, refusing when `limit` slots are already taken. Returns whether
    /// a slot was taken. Without a limit it always succeeds.
    pub(super) fn try_open(&self, limit: Option<usize>) -> bool {
        match limit {
            None => {
                self.open.fetch_add(1, Relaxed);
                true
            }
            Some(limit) => {
                let limit = u64::try_from(limit).unwrap_or(u64::MAX);
                self.open
                    .fetch_update(Relaxed, Relaxed, |open| (open < limit).then_some(open + 1))
                    .is_ok()
            }
        }
    }

    /// Give back a slot taken by [`GatewayStats::try_open`].
    pub(super) fn release_open(&self) {
        self.open.fetch_sub(1, Relaxed);
    }
}

impl std::fmt::Display for GatewayCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accepted {}, upgraded {}, open {}, closed {}, messages echoed {}, \
             rejected 401 {}, rejected 503 {}, handshake failed {}, accept errors {}",
            self.accepted,
            self.upgraded,
            self.open,
            self.closed,
            self.messages_echoed,
            self.rejected_auth,
            self.rejected_full,
            self.handshake_failed,
            self.accept_errors
        )?;
        if self.tls_handshakes + self.tls_failed > 0 {
            write!(
                f,
                ", tls handshakes {} (resumed {}), tls failed {}",
                self.tls_handshakes, self.tls_resumed, self.tls_failed
            )?;
        }
        if self.push_ticks > 0 {
            write!(
                f,
                ", push ticks {}, pushes sent {} (lagged {})",
                self.push_ticks, self.pushes_sent, self.push_lagged
            )?;
        }
        if self.broadcast_received + self.broadcast_delivered > 0 {
            write!(
                f,
                ", broadcast received {}, delivered {} (lagged {})",
                self.broadcast_received, self.broadcast_delivered, self.broadcast_lagged
            )?;
        }
        if self.deflate_accepted > 0 {
            write!(
                f,
                ", permessage-deflate {} (inflate windows {})",
                self.deflate_accepted, self.deflate_windows
            )?;
        }
        Ok(())
    }
}
