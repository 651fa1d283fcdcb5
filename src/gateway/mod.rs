//! The embedded reference gateway: a WebSocket echo server on tokio + tokio-tungstenite.
//!
//! It is the default target of `wsscale run` (started in-process on `127.0.0.1:0`), the body
//! of `wsscale serve`, and what the tests and benchmarks load. It belongs to the control
//! plane: it never touches the engine's sockets.
//!
//! # What it does
//!
//! - Accepts an upgrade on any path (`/`, `/ws`, with a query).
//! - Optional HS256 JWT check at upgrade time ([`GatewayConfig::jwt_secret`]): token from
//!   `Authorization: Bearer …`, `?token=` or `?access_token=`; failure → HTTP 401, no upgrade.
//! - Optional connection cap ([`GatewayConfig::max_connections`]): above it → HTTP 503.
//! - Echoes back the first subprotocol the client offers, so clients that insist on one work.
//! - Echoes text and binary messages as-is, optionally after [`GatewayConfig::echo_delay`]
//!   (which never delays pongs or the close handshake, see `connection`).
//! - Optional server push ([`GatewayConfig::push`]): one timer task sends every connection
//!   the same JSON message `{"ts":…,"seq":N,"pad":"…"}` at a fixed rate, like a market-data
//!   feed, so clients can measure server-originated latency (receive time − `ts`).
//! - Optional chat room ([`GatewayConfig::broadcast`]): every text or binary message
//!   received is sent to every connection, the sender included, instead of being echoed.
//!   Push and room share one fan-out mechanism (see `fanout`): a slow connection skips
//!   messages (counted) instead of holding up the others.
//! - Optional permessage-deflate ([`GatewayConfig::compression`], see [`deflate`]): echo
//!   with compressed messages, an inflate window per connection only once its client sent a
//!   compressed message with context takeover.
//! - Optional fault injection ([`GatewayConfig::faults`], see [`faults`]): drop every
//!   connection (TCP reset) once or a fraction of them periodically, stall, or drop all on
//!   demand (`wsscale serve` on SIGUSR1) — for recovery tests.
//! - Counts everything in [`GatewayStats`]; connection errors end that connection quietly.
//! - Optional TLS ([`GatewayConfig::tls`], see [`tls`]): `wss://`, with stateless session
//!   tickets so clients can resume, and the number of resumed handshakes counted. A config
//!   with a client-certificate verifier makes it an mTLS gateway.
//!
//! # Memory per connection
//!
//! The gateway has to hold tens of thousands of idle connections on a 2-core machine next to
//! the load generator, so each connection is exactly one tokio task owning one
//! `WebSocketStream<TcpStream>` — no channels, no per-message tasks, no per-connection
//! allocation of our own. tungstenite's default 128 KiB read buffer would cost ~135 KiB per
//! connection; we configure a [`READ_BUFFER_SIZE`] (2 KiB) read buffer and no write
//! buffering (frames go straight to the socket). A plain echo connection holds no channel;
//! with push or broadcast on, each connection also holds a broadcast receiver and a boxed
//! message loop (a few hundred bytes more). The handshake state (~1.3 KiB) lives in a
//! boxed future freed after the upgrade, so the resident task stays under 1 KiB; the echo
//! loop and the select beside it (shutdown, injected faults) live in one boxed future of
//! their own (under 768 bytes, asserted by a test).
//!
//! The read buffer is most of what an idle connection costs: tungstenite allocates it at its
//! full size when the connection opens and keeps it for the connection's life, and reads at
//! most that much per `read`. Measured with `bench/gateway-bytes.sh 18000` and the gateway's
//! CPU per echoed message (100 connections × 500 msg/s for 10 s, `/proc/PID/stat`; two or
//! three runs each on the shared 2-core machine, so the spread is wide):
//!
//! | read buffer | idle bytes per connection | CPU per 64 B echo | per 1 KiB echo |
//! |---|---|---|---|
//! | 4 KiB (before) | 6,013 | 2.5–3.3 µs | 4.3–4.7 µs |
//! | 2 KiB (now) | 4,155 | 2.2–4.7 µs | 4.1–5.0 µs |
//! | 1 KiB | 3,093 | 3.2 µs | 5.8–7.7 µs (a 1 KiB frame no longer fits one read) |
//!
//! 2 KiB keeps a message up to ~2 KiB (and a burst of small ones) in one `read` and saves a
//! third of the idle cost, which is what makes a million connections — client and gateway on
//! one 24 GiB host — fit on paper with room to spare (`bench/hold-1m.sh`; see
//! docs/benchmarks.md for how far it got). Larger messages still
//! work: the read buffer grows for a big frame,
//! up to [`MAX_FRAME_SIZE`]. A TLS connection adds its rustls `ServerConnection` (key
//! schedule, record layer and rustls' own 4 KiB receive window), boxed with the rest of its
//! task state, so plain connections do not pay for it.
//!
//! # Lifecycle
//!
//! [`run`] serves an already-bound listener (callers bind, so tests use port 0) until its
//! `shutdown` future resolves; then it stops accepting, asks every connection to send a
//! best-effort close frame (1001 "going away") and waits at most [`SHUTDOWN_GRACE`] for them.
//! [`GatewayHandle`] runs the same thing on its own runtime thread for synchronous callers,
//! and [`serve_blocking`] is the `wsscale serve` command.

mod auth;
mod connection;
pub mod deflate;
mod fanout;
pub mod faults;
mod handle;
pub mod metrics_http;
mod stats;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{StatusCode, header};
use tungstenite::protocol::WebSocketConfig;

pub use auth::AuthError;
pub use handle::{
    GatewayHandle, serve_blocking, serve_listener_blocking, serve_listener_with_stats,
};
pub use stats::{GatewayCounts, GatewayStats};

use auth::Authenticator;

/// Per-connection read buffer. Small on purpose: see the module docs.
pub const READ_BUFFER_SIZE: usize = 2 * 1024;
/// Largest accepted frame and message.
pub const MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;
/// On shutdown, how long [`run`] waits for connections to send their close frames.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Listen backlog when `/proc/sys/net/core/somaxconn` is lower or unreadable (the kernel caps
/// the value at `somaxconn` anyway).
const MIN_BACKLOG: i32 = 4096;
/// After `accept()` fails for lack of resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`),
/// wait this long before trying again instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How the gateway behaves. `Default` is a plain echo server with no auth and no cap.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// HS256 secret. When set, an upgrade without a valid token gets HTTP 401.
    pub jwt_secret: Option<crate::plan::Secret>,
    /// Above this many open WebSocket connections, new upgrades get HTTP 503.
    pub max_connections: Option<usize>,
    /// Delay each echo by this much (for latency-accuracy tests).
    pub echo_delay: Option<Duration>,
    /// Serve `wss://` with this configuration (see [`tls`]; build it with a client
    /// verifier for mTLS). `None`: plain `ws://`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Server push: send every connection one message per tick (see [`PushConfig`]).
    /// Echo (or broadcast) goes on as usual alongside.
    pub push: Option<PushConfig>,
    /// Chat room: every text or binary message received from any connection is sent to every
    /// connection (the sender included) instead of being echoed to the sender.
    /// [`GatewayConfig::echo_delay`] does not apply to it.
    pub broadcast: bool,
    /// Accept permessage-deflate (see [`deflate`]): echo only, so `echo_delay`, `push` and
    /// `broadcast` are ignored when it is on.
    pub compression: bool,
    /// Fault injection (see [`faults`]): scheduled drops and stalls, and the switch that
    /// injects them on demand. Ignored with `compression`.
    pub faults: faults::Faults,
}

/// The server-push feed: at `rate` messages per second, one text message
/// `{"ts":<unix ms with a 3-digit fraction>,"seq":N,"pad":"xx…"}` sent to every open
/// connection, the same message to all in one tick. `ts` is the wall-clock time the message
/// was made, `seq` counts ticks from 1, and `pad` fills the message to `size` bytes (empty
/// when `size` is below the unpadded length: 41 bytes while `seq` has one digit, one more
/// per further digit, for the next few centuries of `ts`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PushConfig {
    /// Messages per second (`1.0`, `10.0`, `0.2` for one every 5 s). Periods below 1 ms are
    /// raised to 1 ms (tokio's timer granularity); a rate that is not positive and finite
    /// disables the feed.
    pub rate: f64,
    /// Bytes per message.
    pub size: usize,
}

impl PushConfig {
    /// The default message size.
    pub const DEFAULT_SIZE: usize = 64;

    /// A feed at `rate` messages per second of [`PushConfig::DEFAULT_SIZE`] bytes.
    pub fn new(rate: f64) -> Self {
        Self {
            rate,
            size: Self::DEFAULT_SIZE,
        }
    }

    /// Time between two messages.
    pub fn period(&self) -> Duration {
        Duration::try_from_secs_f64(1.0 / self.rate)
            .unwrap_or(Duration::MAX)
            .max(fanout::MIN_PUSH_PERIOD)
    }

    fn enabled(&self) -> bool {
        self.rate.is_finite() && self.rate > 0.0
    }
}

/// State shared (read-only, apart from the atomics) by every connection task.
struct Shared {
    auth: Option<Authenticator>,
    max_connections: Option<usize>,
    echo_delay: Option<Duration>,
    ws_config: WebSocketConfig,
    /// Serve connections with [`deflate`] (permessage-deflate available).
    compression: bool,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stats: Arc<GatewayStats>,
    /// The push feed's channel (with [`GatewayConfig::push`]).
    push: Option<tokio::sync::broadcast::Sender<tungstenite::Message>>,
    /// The chat room's channel (with [`GatewayConfig::broadcast`]).
    room: Option<tokio::sync::broadcast::Sender<tungstenite::Message>>,
    /// What connections listen to for injected faults.
    faults: faults::FaultSwitch,
}

impl Shared {
    fn new(config: GatewayConfig, stats: Arc<GatewayStats>) -> Self {
        Self {
            auth: config.jwt_secret.as_ref().map(Authenticator::new),
            max_connections: config.max_connections,
            // The room replaces the echo, delayed or not.
            echo_delay: config
                .echo_delay
                .filter(|d| !d.is_zero() && !config.broadcast),
            ws_config: ws_config(),
            compression: config.compression,
            tls: config.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            stats,
            push: config
                .push
                .filter(PushConfig::enabled)
                .map(|_| fanout::channel(fanout::FANOUT_CAPACITY)),
            room: config
                .broadcast
                .then(|| fanout::channel(fanout::FANOUT_CAPACITY)),
            faults: config.faults.switch.clone(),
        }
    }

    /// Receivers of the fan-out channels that are on; `None` when both are off.
    fn subscribe(&self) -> Option<Box<Subscriptions>> {
        if self.push.is_none() && self.room.is_none() {
            return None;
        }
        Some(Box::new(Subscriptions {
            push: self.push.as_ref().map(|tx| tx.subscribe()),
            room: self.room.as_ref().map(|tx| tx.subscribe()),
        }))
    }

    /// True when connections need more than the plain echo loop.
    fn relays(&self) -> bool {
        self.echo_delay.is_some() || self.push.is_some() || self.room.is_some()
    }

    /// The upgrade callback: auth, then capacity (taking an `open` slot), then subprotocol.
    #[expect(
        clippy::result_large_err,
        reason = "the error type is fixed by tungstenite's Callback trait"
    )]
    fn on_upgrade(
        &self,
        request: &Request,
        mut response: Response,
    ) -> Result<Response, ErrorResponse> {
        if let Some(auth) = &self.auth
            && let Err(e) = auth.check(request)
        {
            GatewayStats::incr(&self.stats.rejected_auth);
            let body = match e {
                AuthError::Missing => "401 missing token\n",
                AuthError::Invalid(_) => "401 invalid token\n",
            };
            return Err(connection::reject(StatusCode::UNAUTHORIZED, body));
        }
        if !self.stats.try_open(self.max_connections) {
            GatewayStats::incr(&self.stats.rejected_full);
            return Err(connection::reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 gateway full\n",
            ));
        }
        if let Some(protocol) = connection::first_subprotocol(request) {
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        Ok(response)
    }
}

/// One connection's receivers of the fan-out channels (`None`: that channel is off). Boxed
/// where it is held, so a plain echo connection's task carries one null pointer for it.
struct Subscriptions {
    push: Option<tokio::sync::broadcast::Receiver<tungstenite::Message>>,
    room: Option<tokio::sync::broadcast::Receiver<tungstenite::Message>>,
}

/// The WebSocket settings every gateway connection uses (see the module docs).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(0)
        .max_frame_size(Some(MAX_FRAME_SIZE))
        .max_message_size(Some(MAX_FRAME_SIZE))
}

/// Serve on an already-bound listener until `shutdown` resolves.
///
/// Accept errors never end the loop: transient ones (`ECONNABORTED`, …) are skipped, resource
/// exhaustion (`EMFILE`, …) backs off for 50 ms; both are counted in
/// [`GatewayStats::accept_errors`]. On shutdown, connections get a best-effort close frame
/// and at most [`SHUTDOWN_GRACE`] in total. Must be called inside a tokio runtime (it spawns
/// one task per connection).
pub async fn run(
    listener: TcpListener,
    config: GatewayConfig,
    stats: Arc<GatewayStats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let push = config.push;
    // Aborted when `run` returns.
    let _schedule =
        (config.faults.scheduled() && !config.compression).then(|| config.faults.start());
    let mut faults = config.faults.switch.subscribe();
    let shared = Arc::new(Shared::new(config, stats));
    // Ticks until shutdown (dropping it stops the timer task).
    let feed = match (push, &shared.push) {
        (Some(push), Some(tx)) => Some(fanout::PushFeed::start(
            push,
            tx.clone(),
            Arc::clone(&shared.stats),
        )),
        _ => None,
    };
    // Every connection holds a receiver; a send tells them to close, and `closed()` resolves
    // when the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            // A stalled gateway accepts nothing either (connections wait in the backlog).
            Ok(()) = faults.changed() => {
                let fault = *faults.borrow_and_update();
                if let faults::Fault::Stall { until } = fault {
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep_until(until) => {}
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    GatewayStats::incr(&shared.stats.accepted);
                    tokio::spawn(connection::serve(stream, Arc::clone(&shared), stop_rx.clone()));
                }
                Err(e) => {
                    GatewayStats::incr(&shared.stats.accept_errors);
                    if is_resource_exhaustion(&e) {
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                }
            },
        }
    }
    drop(listener);
    drop(feed);
    drop(stop_rx);
    stop_tx.send_replace(());
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, stop_tx.closed()).await;
    Ok(())
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Bind `addr` with `SO_REUSEADDR` + `SO_REUSEPORT` (so several `wsscale serve` processes can
/// share one port and the kernel spreads connections over them), a backlog of
/// `max(4096, somaxconn)`, non-blocking. Returns a std listener ready for
/// `tokio::net::TcpListener::from_std`.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bind_listener(addr, true)
}

/// Bind a non-blocking listener with a large backlog; `SO_REUSEPORT` only when asked (a
/// gateway must not silently share a fixed port with another process: `wsscale serve` sets it
/// only with `--reuse-port`, which `serve --processes` passes to its own children).
pub fn bind_listener(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog())?;
    Ok(socket.into())
}

/// The message for a failed bind of `addr` (`reuse_port`: `--reuse-port` was given): a busy
/// port says how to pick another or share it deliberately.
pub fn bind_error_message(addr: SocketAddr, reuse_port: bool, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse if reuse_port => format!(
            "{addr} is in use by another process that does not share it (a port is shared only \
             by processes of the same user that all set SO_REUSEPORT, e.g. `wsscale serve \
             --reuse-port`); give another --listen port"
        ),
        io::ErrorKind::AddrInUse => format!(
            "{addr} is in use by another process (give another --listen port, or --reuse-port \
             to share it deliberately)"
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {addr}: {e} (the address is not one of this host's; use \
             127.0.0.1, 0.0.0.0 for every interface, or one of `ip -brief address`)"
        ),
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "cannot listen on {addr}: {e} (ports below 1024 need root or CAP_NET_BIND_SERVICE; \
             give a --listen port of 1024 or above)"
        ),
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

fn backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .map_or(MIN_BACKLOG, |somaxconn| somaxconn.max(MIN_BACKLOG))
}
