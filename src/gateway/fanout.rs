//! Fan-out: server push (`--push-rate`) and the chat room (`--broadcast`).
//!
//! Both use one [`tokio::sync::broadcast`] channel of [`Message`]s each, created once per
//! gateway: the push feed's timer task (or, for the room, every connection that receives a
//! data message) sends one message, and every connection task receives it from its own
//! [`broadcast::Receiver`] and writes it to its socket. A message is shared, not copied: a
//! `Message::Text` holds a reference-counted `Bytes`, so a clone per connection is a
//! reference-count increment. Sending never waits for anyone: a connection whose socket is
//! full (the client does not read) stops taking messages from the channel, and once it is
//! more than [`FANOUT_CAPACITY`] messages behind it skips the oldest ones (counted in
//! `push_lagged` / `broadcast_lagged`) while every other connection carries on.
//!
//! A value leaves the channel's ring as soon as every receiver has taken it, so only lagging
//! connections keep old messages alive (at most [`FANOUT_CAPACITY`] per channel).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tungstenite::Message;

use super::PushConfig;
use super::stats::GatewayStats;

/// Messages a connection may fall behind a fan-out channel before it skips the oldest.
pub(super) const FANOUT_CAPACITY: usize = 256;
/// The shortest push period: tokio's timer has 1 ms granularity.
pub(super) const MIN_PUSH_PERIOD: Duration = Duration::from_millis(1);

/// A fan-out channel; connections subscribe to it.
pub(super) fn channel(capacity: usize) -> broadcast::Sender<Message> {
    broadcast::channel(capacity.max(1)).0
}

/// What a connection got from a fan-out channel.
pub(super) enum Fanout {
    Message(Message),
    /// This many messages were skipped because the connection fell behind.
    Lagged(u64),
    /// The channel is gone (the gateway is shutting down).
    Closed,
}

/// The next message of `rx`; never resolves when `rx` is `None` (a disabled `select!` branch
/// still builds its future).
pub(super) async fn next(rx: &mut Option<broadcast::Receiver<Message>>) -> Fanout {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(message) => Fanout::Message(message),
        Err(RecvError::Lagged(n)) => Fanout::Lagged(n),
        Err(RecvError::Closed) => Fanout::Closed,
    }
}

/// The push feed's timer task; aborted when dropped.
pub(super) struct PushFeed(JoinHandle<()>);

impl PushFeed {
    /// Start ticking at `config.rate` on the current runtime, sending each message to `tx`.
    pub(super) fn start(
        config: PushConfig,
        tx: broadcast::Sender<Message>,
        stats: Arc<GatewayStats>,
    ) -> PushFeed {
        PushFeed(tokio::spawn(push_feed(config, tx, stats)))
    }
}

impl Drop for PushFeed {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One message per tick, to every connection. Ticks missed because the runtime was busy are
/// skipped (no catch-up bursts): under overload the feed slows down rather than piling up.
async fn push_feed(config: PushConfig, tx: broadcast::Sender<Message>, stats: Arc<GatewayStats>) {
    let mut interval = tokio::time::interval(config.period());
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut text = String::with_capacity(config.size.max(64));
    for seq in 1u64.. {
        interval.tick().await;
        text.clear();
        write_push_message(&mut text, seq, SystemTime::now(), config.size);
        GatewayStats::incr(&stats.push_ticks);
        // No receivers (no connection open) is not an error: the tick is simply unheard.
        let _ = tx.send(Message::text(text.as_str()));
    }
}

/// `{"ts":<unix ms>.<µs>,"seq":N,"pad":"xx…"}`, padded with `x` to `size` bytes (when `size`
/// is below the unpadded length, the message is that length with an empty pad).
pub(super) fn write_push_message(out: &mut String, seq: u64, now: SystemTime, size: usize) {
    use std::fmt::Write as _;
    let micros = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let _ = write!(
        out,
        r#"{{"ts":{}.{:03},"seq":{seq},"pad":""#,
        micros / 1000,
        micros % 1000
    );
    let pad = size.saturating_sub(out.len() + 2);
    out.extend(std::iter::repeat_n('x', pad));
    out.push_str("\"}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, size: usize) -> String {
        let mut s = String::new();
        let now = UNIX_EPOCH + Duration::from_micros(1_733_097_600_123_456);
        write_push_message(&mut s, seq, now, size);
        s
    }

    #[test]
    fn push_message_is_json_padded_to_size() {
        let m = message(7, 64);
        assert_eq!(m.len(), 64);
        assert!(
            m.starts_with(r#"{"ts":1733097600123.456,"seq":7,"pad":"xxx"#),
            "{m}"
        );
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v["ts"].as_f64(), Some(1_733_097_600_123.456));
        assert_eq!(v["seq"], 7);
    }

    #[test]
    fn small_size_gives_an_empty_pad() {
        let m = message(12, 1);
        assert_eq!(m, r#"{"ts":1733097600123.456,"seq":12,"pad":""}"#);
        assert_eq!(message(12, m.len()), m);
        assert_eq!(message(12, m.len() + 1).len(), m.len() + 1);
    }

    #[test]
    fn fraction_keeps_leading_zeros() {
        let mut s = String::new();
        let now = UNIX_EPOCH + Duration::from_micros(1_000_007);
        write_push_message(&mut s, 1, now, 0);
        assert!(s.starts_with(r#"{"ts":1000.007,"#), "{s}");
    }
}
