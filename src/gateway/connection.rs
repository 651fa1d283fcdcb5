//! One accepted socket: handshake (auth, capacity, subprotocol), then echo until the peer
//! leaves or the gateway stops.
//!
//! A connection is one tokio task and nothing else: no per-message tasks, and in the plain
//! echo case no channels. With push or broadcast on, the task also holds a receiver of each
//! fan-out channel (see `fanout`) and `select!`s on it next to the socket. With
//! `echo_delay` set, messages wait in a small per-connection FIFO (`VecDeque`, allocated only
//! once a message arrives) and the task `select!`s between "next message due" and "read the
//! next frame", so reading — and therefore answering pings and close frames — never waits
//! behind a delayed echo. Since the delay is constant, the FIFO is ordered by due time. When
//! [`MAX_PENDING_ECHOES`] messages are waiting, reading pauses (backpressure) until one is
//! sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{HeaderValue, StatusCode, header};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use super::fanout::{self, Fanout};
use super::faults;
use super::stats::GatewayStats;
use super::{Shared, Subscriptions};

/// A client that connects but never finishes its upgrade request is dropped after this.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// On shutdown, how long one connection may spend sending its close frame.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_millis(900);
/// With `echo_delay`, at most this many messages wait per connection before reading pauses.
pub(super) const MAX_PENDING_ECHOES: usize = 256;

/// What the upgrade callback decided; read after the handshake to keep the counters exact.
#[repr(u8)]
#[derive(Clone, Copy)]
enum Slot {
    /// Callback not reached (bad request, timeout, reset before the request was read).
    NotDecided = 0,
    /// Answered 401 or 503 (already counted).
    Rejected = 1,
    /// An `open` slot was taken and 101 is being sent.
    Taken = 2,
}

/// Serve one accepted socket to the end. Never panics; every outcome lands in the counters.
///
/// The handshake and the shutdown close run in boxed futures: their state (~1.3 KiB for the
/// handshake) is needed only briefly, and inlined it would enlarge every held connection's
/// task for its whole life. Boxed, a held connection's task stays well under 1 KiB. A TLS
/// connection runs boxed as a whole, so plain connections do not carry its larger state.
pub(super) async fn serve(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<()>) {
    // Latency tests measure the gateway, not Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    // For a fault-injected reset (see `faults`), whatever wraps the socket.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    match shared.tls.clone() {
        None => serve_ws(stream, fd, &shared, &mut stop).await,
        Some(acceptor) => Box::pin(serve_tls(acceptor, stream, fd, &shared, &mut stop)).await,
    }
}

/// TLS handshake (bounded by [`HANDSHAKE_TIMEOUT`] and by shutdown), then the WebSocket
/// connection over it.
async fn serve_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    fd: i32,
    shared: &Shared,
    stop: &mut watch::Receiver<()>,
) {
    let stats = &*shared.stats;
    let accepted = tokio::select! {
        result = timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => result.ok().and_then(Result::ok),
        _ = stop.changed() => None,
    };
    let Some(tls) = accepted else {
        GatewayStats::incr(&stats.tls_failed);
        GatewayStats::incr(&stats.handshake_failed);
        return;
    };
    GatewayStats::incr(&stats.tls_handshakes);
    if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        GatewayStats::incr(&stats.tls_resumed);
    }
    serve_ws(tls, fd, shared, stop).await
}

/// The WebSocket part of a connection, over TCP or TLS (`fd`: the TCP socket).
async fn serve_ws<S>(stream: S, fd: i32, shared: &Shared, stop: &mut watch::Receiver<()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if shared.compression {
        return super::deflate::serve(stream, shared, stop).await;
    }
    let Some((mut ws, subscriptions)) = Box::pin(upgrade(stream, shared, stop)).await else {
        return;
    };
    let stats = &*shared.stats;
    GatewayStats::incr(&stats.upgraded);
    let _open = OpenGuard(stats);

    // Boxed like the handshake: the fault select sits next to the echo loop for the
    // connection's whole life, and inlined it would enlarge every held task.
    let ended = Box::pin(drive(&mut ws, fd, shared, subscriptions, stop)).await;
    match ended {
        Ended::Closed => {}
        Ended::Stopping => Box::pin(close_going_away(&mut ws)).await,
        Ended::Dropped => {
            shared.faults.count_drop();
            faults::reset_on_close(fd);
        }
    }
}

/// Echo until the connection ends, the gateway stops, or an injected fault drops it (a
/// stall stops polling the echo loop — nothing read, nothing answered — until it ends).
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    fd: i32,
    shared: &Shared,
    subscriptions: Option<Box<Subscriptions>>,
    stop: &mut watch::Receiver<()>,
) -> Ended {
    let mut faults = shared.faults.subscribe();
    let echo = echo(ws, shared, subscriptions);
    tokio::pin!(echo);
    loop {
        tokio::select! {
            () = &mut echo => return Ended::Closed,
            _ = stop.changed() => return Ended::Stopping,
            action = faults::next_action(&mut faults, fd) => match action {
                faults::Action::Carry => {}
                faults::Action::Drop => return Ended::Dropped,
                faults::Action::Stall(until) => {
                    if stall(until, stop).await {
                        return Ended::Stopping;
                    }
                }
            },
        }
    }
}

/// How a connection's loop ended.
enum Ended {
    /// The peer closed, or the connection failed.
    Closed,
    /// The gateway is shutting down.
    Stopping,
    /// A fault drop: reset.
    Dropped,
}

/// Wait until `until` (a stall); true when the gateway began shutting down meanwhile.
async fn stall(until: Instant, stop: &mut watch::Receiver<()>) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(until) => false,
        _ = stop.changed() => true,
    }
}

/// Run the server handshake (bounded by [`HANDSHAKE_TIMEOUT`] and by shutdown). On success
/// the connection holds an `open` slot and its fan-out subscriptions, taken when the upgrade
/// was accepted — before the 101 is written, so a client that has seen its 101 gets every
/// push tick and room message from then on. On failure the counters are settled here.
async fn upgrade<S>(
    stream: S,
    shared: &Shared,
    stop: &mut watch::Receiver<()>,
) -> Option<(WebSocketStream<S>, Option<Box<Subscriptions>>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stats = &*shared.stats;
    let slot = AtomicU8::new(Slot::NotDecided as u8);
    let mut subscriptions = None;
    #[expect(
        clippy::result_large_err,
        reason = "the error type is fixed by tungstenite's Callback trait"
    )]
    let callback = |request: &Request, response: Response| {
        let decision = shared.on_upgrade(request, response);
        let state = if decision.is_ok() {
            subscriptions = shared.subscribe();
            Slot::Taken
        } else {
            Slot::Rejected
        };
        slot.store(state as u8, Relaxed);
        decision
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(shared.ws_config));
    let ws = tokio::select! {
        result = timeout(HANDSHAKE_TIMEOUT, handshake) => result.ok().and_then(Result::ok),
        _ = stop.changed() => None,
    };
    if ws.is_none() {
        match slot.load(Relaxed) {
            s if s == Slot::Rejected as u8 => {}
            s if s == Slot::Taken as u8 => {
                // 101 could not be delivered: give the slot back.
                stats.release_open();
                GatewayStats::incr(&stats.handshake_failed);
            }
            _ => GatewayStats::incr(&stats.handshake_failed),
        }
    }
    Some((ws?, subscriptions))
}

/// Best-effort 1001 close frame on shutdown, bounded by [`CLOSE_TIMEOUT`].
async fn close_going_away<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: "gateway shutting down".into(),
    };
    let _ = timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
}

/// The close code a client's offence calls for (RFC 6455 §7.4.1): 1002 for a protocol
/// error (unmasked or malformed frame), 1007 for a text message that is not UTF-8, 1009 for
/// a frame or message above [`super::MAX_FRAME_SIZE`]; `None` when the connection itself
/// failed (reset, EOF) and there is nobody to tell.
pub(super) fn close_code_for(e: &tungstenite::Error) -> Option<CloseCode> {
    use tungstenite::Error;
    match e {
        Error::Protocol(_) => Some(CloseCode::Protocol),
        Error::Utf8(_) => Some(CloseCode::Invalid),
        Error::Capacity(_) => Some(CloseCode::Size),
        _ => None,
    }
}

/// Answer a client that broke the protocol with the close frame its offence calls for
/// (best effort, bounded by [`CLOSE_TIMEOUT`]), instead of dropping it without a word.
async fn close_for_error<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    e: &tungstenite::Error,
) {
    let Some(code) = close_code_for(e) else {
        return;
    };
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    let _ = timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
}

/// Marks an upgraded connection as ended, whichever way the task exits.
pub(super) struct OpenGuard<'a>(pub(super) &'a GatewayStats);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.release_open();
        GatewayStats::incr(&self.0.closed);
    }
}

/// Echo text and binary messages until the connection ends. Pings are answered and close
/// frames completed by tungstenite itself, as long as we keep reading.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    shared: &Shared,
    subscriptions: Option<Box<Subscriptions>>,
) {
    if shared.relays() {
        // Boxed so plain echo connections do not carry its state (queue, timer, receivers).
        return Box::pin(relay(ws, shared, subscriptions)).await;
    }
    while let Some(read) = ws.next().await {
        let message = match read {
            Ok(message) => message,
            Err(e) => return Box::pin(close_for_error(ws, &e)).await,
        };
        if is_data(&message) {
            // Counted before sending, so a client that has received its echo sees the count.
            GatewayStats::incr(&shared.stats.messages_echoed);
            if ws.send(message).await.is_err() {
                return;
            }
        }
        // Ping/Pong: the pong is queued by tungstenite and flushed on the next read.
        // Close: the reply is queued; the next read flushes it and ends the stream.
    }
}

/// The connection loop with any of `echo_delay`, the push feed or the chat room: one
/// `select!` over "next delayed echo due", "read the next frame", "next push" and "next room
/// message", in that order of priority. Messages received go to the room when there is one,
/// otherwise they are echoed (after the delay, if any). Writing a message holds up only this
/// connection: the fan-out channels go on without it (see `fanout`).
async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    shared: &Shared,
    subscriptions: Option<Box<Subscriptions>>,
) {
    let stats = &*shared.stats;
    let (mut push, mut room) = match subscriptions {
        Some(s) => (s.push, s.room),
        None => (None, None),
    };
    let mut pending: VecDeque<(Instant, Message)> = VecDeque::new();
    loop {
        let next_due = pending.front().map(|(due, _)| *due);
        let outgoing = tokio::select! {
            biased;
            () = sleep_until(early(next_due)), if next_due.is_some() => {
                let Some((due, message)) = pending.pop_front() else { continue };
                // tokio's timer has 1 ms granularity and rounds up; we woke up to 1 ms
                // early on purpose and yield until the exact instant, so the delay the
                // latency-accuracy benchmark compares against is the configured one.
                while Instant::now() < due {
                    tokio::task::yield_now().await;
                }
                GatewayStats::incr(&stats.messages_echoed);
                message
            }
            incoming = ws.next(), if pending.len() < MAX_PENDING_ECHOES => match incoming {
                Some(Ok(message)) if is_data(&message) => {
                    if let Some(room_tx) = &shared.room {
                        GatewayStats::incr(&stats.broadcast_received);
                        // Never waits; it fails only when no connection is subscribed.
                        let _ = room_tx.send(message);
                        continue;
                    }
                    match shared.echo_delay {
                        Some(delay) => {
                            pending.push_back((Instant::now() + delay, message));
                            continue;
                        }
                        None => {
                            GatewayStats::incr(&stats.messages_echoed);
                            message
                        }
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Box::pin(close_for_error(ws, &e)).await,
                None => return,
            },
            pushed = fanout::next(&mut push), if push.is_some() => match pushed {
                Fanout::Message(message) => {
                    GatewayStats::incr(&stats.pushes_sent);
                    message
                }
                Fanout::Lagged(n) => {
                    GatewayStats::add(&stats.push_lagged, n);
                    continue;
                }
                Fanout::Closed => {
                    push = None;
                    continue;
                }
            },
            said = fanout::next(&mut room), if room.is_some() => match said {
                Fanout::Message(message) => {
                    GatewayStats::incr(&stats.broadcast_delivered);
                    message
                }
                Fanout::Lagged(n) => {
                    GatewayStats::add(&stats.broadcast_lagged, n);
                    continue;
                }
                Fanout::Closed => {
                    room = None;
                    continue;
                }
            },
            else => return,
        };
        if ws.send(outgoing).await.is_err() {
            return;
        }
    }
}

/// When to wake for an echo due at `due`: one timer tick early (see `delayed_echo`).
fn early(due: Option<Instant>) -> Instant {
    let now = Instant::now();
    due.map_or(now, |d| {
        d.checked_sub(Duration::from_millis(1))
            .unwrap_or(d)
            .max(now)
    })
}

fn is_data(message: &Message) -> bool {
    matches!(message, Message::Text(_) | Message::Binary(_))
}

/// A short plain-text HTTP error that closes the connection.
pub(super) fn reject(status: StatusCode, body: &'static str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(body.to_owned()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The first protocol the client offers in `Sec-WebSocket-Protocol`, if any.
pub(super) fn first_subprotocol(request: &Request) -> Option<HeaderValue> {
    let offered = request.headers().get(header::SEC_WEBSOCKET_PROTOCOL)?;
    let first = offered.to_str().ok()?.split(',').next()?.trim();
    if first.is_empty() {
        return None;
    }
    HeaderValue::from_str(first).ok()
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The handshake is boxed precisely so that a held connection's task stays small; this
    /// catches a refactor that inlines it again (the handshake alone is ~1.3 KiB).
    #[tokio::test]
    async fn held_connection_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let shared = Arc::new(Shared::new(Default::default(), Default::default()));
        let (_stop_tx, stop_rx) = watch::channel(());
        let task = serve(stream, shared, stop_rx);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "connection task future is {size} bytes");
        // What a held connection carries besides: its boxed loop (echo + fault select).
        let shared = Shared::new(Default::default(), Default::default());
        let (_c, s) = tokio::io::duplex(64);
        let mut ws = WebSocketStream::from_raw_socket(
            s,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let (_tx, mut rx) = watch::channel(());
        let loop_size = std::mem::size_of_val(&drive(&mut ws, 0, &shared, None, &mut rx));
        assert!(
            loop_size <= 768,
            "connection loop future is {loop_size} bytes"
        );
    }

    /// A connection whose client does not read falls behind the push channel and skips
    /// messages (counted); a connection that reads gets every message meanwhile. Runs over
    /// in-memory pipes with a 256-byte buffer, so the slow one blocks after a few messages.
    #[tokio::test]
    async fn a_slow_connection_lags_without_stalling_the_others() {
        use tokio_tungstenite::tungstenite::protocol::Role;
        const CAPACITY: usize = 4;
        const MESSAGES: usize = 40;
        let mut shared = Shared::new(Default::default(), Default::default());
        let tx = fanout::channel(CAPACITY);
        shared.push = Some(tx.clone());
        let shared = Arc::new(shared);

        let mut clients = Vec::new();
        for _ in 0..2 {
            let (server_io, client_io) = tokio::io::duplex(256);
            let server_shared = Arc::clone(&shared);
            let subscriptions = shared.subscribe();
            tokio::spawn(async move {
                let mut ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
                relay(&mut ws, &server_shared, subscriptions).await;
            });
            clients.push(WebSocketStream::from_raw_socket(client_io, Role::Client, None).await);
        }
        let [slow, fast] = &mut clients[..] else {
            unreachable!()
        };
        async fn next(ws: &mut WebSocketStream<tokio::io::DuplexStream>) -> usize {
            match timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => text.as_str()[..4].parse().unwrap(),
                other => panic!("expected a push, got {other:?}"),
            }
        }
        // The fast client reads each message before the next is sent; the slow one never
        // reads until the end.
        for seq in 0..MESSAGES {
            tx.send(Message::text(format!("{seq:04}{}", "x".repeat(196))))
                .unwrap();
            assert_eq!(next(fast).await, seq);
        }
        let mut seen = Vec::new();
        while seen.last() != Some(&(MESSAGES - 1)) {
            seen.push(next(slow).await);
        }
        let skipped = MESSAGES - seen.len();
        assert!(skipped > 0, "the slow connection lagged: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
        assert_eq!(shared.stats.push_lagged.load(Relaxed), skipped as u64);
        assert_eq!(
            shared.stats.pushes_sent.load(Relaxed),
            (MESSAGES + seen.len()) as u64
        );
    }

    #[test]
    fn first_subprotocol_is_picked() {
        let request = |value: &str| {
            Request::builder()
                .header("Sec-WebSocket-Protocol", value)
                .body(())
                .unwrap()
        };
        assert_eq!(
            first_subprotocol(&request("chat.v2, other")).unwrap(),
            "chat.v2"
        );
        assert_eq!(first_subprotocol(&request(" mqtt ")).unwrap(), "mqtt");
        assert!(first_subprotocol(&request("")).is_none());
        assert!(first_subprotocol(&Request::builder().body(()).unwrap()).is_none());
    }
}
