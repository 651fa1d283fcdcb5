//! One connection under test: a compact struct that lives in the shard's slab.
//!
//! What a held, idle connection costs in user space is `size_of::<Conn>()` (64 bytes in release builds: `conn_is_compact` checks it) plus
//! its share of the slab's slack: the socket is a bare fd, timestamps are µs offsets from the
//! shard epoch, the `Sec-WebSocket-Key` is recomputed from the id instead of stored, and the
//! read/write buffers ([`Bufs`]) exist only while a frame is split across reads or the kernel
//! refused part of a write. Everything else (scratch buffers, the request template) is per
//! shard.
//!
//! A `wss://` connection adds one pointer here and one boxed `rustls::ClientConnection`
//! behind it, whose buffers are kept empty between events (see [`super::tls`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// Connection life cycle: `Connecting → [TlsHandshaking →] Handshaking → [AwaitingReply →]
/// Open → Closing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// TCP connect in progress.
    Connecting,
    /// `wss://` only: TCP connected, TLS handshake in progress.
    TlsHandshaking,
    /// Upgrade request sent (or being sent), waiting for the 101.
    Handshaking,
    /// Upgraded; the first message was sent and its expected reply has not arrived yet
    /// (`--first-message-expect`). Still counts as pending.
    AwaitingReply,
    /// Upgraded and held.
    Open,
    /// The client sent a close frame and waits for the server's close (or the timeout).
    Closing,
    /// A misbehaving connection (`--misbehave`) broke its rule after the upgrade and waits
    /// for the gateway's answer (see `shard::misbehave`).
    Misbehaving,
}

/// Bytes a connection must keep between events. Allocated only when needed and dropped as
/// soon as both buffers are empty again.
#[derive(Debug, Default)]
pub struct Bufs {
    /// Received bytes not yet forming a complete response head or frame.
    pub input: Vec<u8>,
    /// Bytes the kernel did not take yet.
    pub output: Vec<u8>,
    /// The compressed fragments of a permessage-deflate message still arriving.
    pub message: Vec<u8>,
    /// This connection's inflate window: only once the server sent a compressed message
    /// with context takeover (see [`super::deflate`]).
    pub inflate: Option<Box<flate2::Decompress>>,
}

/// A connection in the slab.
#[derive(Debug)]
pub struct Conn {
    pub sock: TcpStream,
    pub bufs: Option<Box<Bufs>>,
    /// The TLS session of a `wss://` connection (from TCP connect to the end).
    pub tls: Option<Box<rustls::ClientConnection>>,
    /// µs since the shard epoch when the current phase began (connect start, then
    /// handshake start).
    pub mark_us: u64,
    /// Shard-local id (distinguishes reuses of a slab slot; seeds the handshake key).
    pub id: u32,
    /// Index in the source pool.
    pub source: u32,
    /// Index in the target list.
    pub target: u16,
    pub state: State,
    /// Re-open attempt number (0 for a first attempt).
    pub attempt: u8,
    /// Next timed-message sequence number to send.
    pub seq_next: u32,
    /// Oldest timed-message sequence not yet echoed (or declared lost).
    pub seq_acked: u32,
    /// Intended time (ms since the shard epoch) of the newest answered ping.
    pub pong_ms: u32,
    /// `k + 1` of the outstanding heartbeat whose reply is awaited; 0 when none.
    pub hb_pending: u32,
    /// The permessage-deflate parameters ([`super::deflate::Negotiated::pack`]; bit
    /// [`super::deflate::ON`] clear: none) and the state of a fragmented message arriving
    /// ([`super::deflate::IN_MESSAGE`], `FRAGMENTED`, `TEXT`, the UTF-8 bits).
    pub deflate: u16,
    /// `--misbehave`: the kind's code (`MisbehaveKind::code`), 0 for a normal connection.
    /// One byte in the struct's padding: a normal connection costs nothing more.
    pub misbehave: u8,
}

impl Conn {
    /// True when no bytes are buffered for this connection.
    pub fn idle_buffers(&self) -> bool {
        self.bufs
            .as_ref()
            .is_none_or(|b| b.input.is_empty() && b.output.is_empty())
    }

    /// Drop the buffers if both are empty and no deflate state is kept (back to zero
    /// per-connection heap).
    pub fn release_buffers(&mut self) {
        if self.idle_buffers()
            && self
                .bufs
                .as_ref()
                .is_some_and(|b| b.message.is_empty() && b.inflate.is_none())
        {
            self.bufs = None;
        }
    }

    pub fn bufs_mut(&mut self) -> &mut Bufs {
        self.bufs.get_or_insert_with(Default::default)
    }
}

/// Socket options for new connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketOpts {
    pub rcvbuf: Option<usize>,
    pub sndbuf: Option<usize>,
}

/// Why opening a socket failed before any packet was sent.
#[derive(Debug)]
pub enum OpenError {
    /// `bind()` failed: the source address is not usable on this host (or ports are out).
    Bind(io::Error),
    /// `connect()` returned `EADDRNOTAVAIL`: this (source, destination) pair is full.
    PortsExhausted,
    /// Any other error (socket creation, immediate connect failure).
    Other(io::Error),
}

/// Create a non-blocking TCP socket, bind it to `source` (if any) with
/// `IP_BIND_ADDRESS_NO_PORT`, and start connecting to `dest`.
pub fn start_connect(
    dest: SocketAddr,
    source: Option<IpAddr>,
    opts: SocketOpts,
) -> Result<TcpStream, OpenError> {
    let sock = Socket::new(
        Domain::for_address(dest),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(OpenError::Other)?;
    sock.set_tcp_nodelay(true).map_err(OpenError::Other)?;
    if let Some(n) = opts.rcvbuf {
        sock.set_recv_buffer_size(n).map_err(OpenError::Other)?;
    }
    if let Some(n) = opts.sndbuf {
        sock.set_send_buffer_size(n).map_err(OpenError::Other)?;
    }
    if let Some(src) = source {
        set_bind_address_no_port(&sock).map_err(OpenError::Other)?;
        sock.bind(&SocketAddr::new(src, 0).into())
            .map_err(OpenError::Bind)?;
    }
    match sock.connect(&dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
            return Err(OpenError::PortsExhausted);
        }
        Err(e) => return Err(OpenError::Other(e)),
    }
    Ok(TcpStream::from_std(sock.into()))
}

/// `IP_BIND_ADDRESS_NO_PORT`: defer local port choice to `connect()`, so one source address
/// serves a full port range per destination instead of per host.
fn set_bind_address_no_port(sock: &Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: valid fd, option value is a c_int of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Make the next close of this socket send RST (`SO_LINGER` 0).
pub fn set_reset_on_close(sock: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(sock).set_linger(Some(std::time::Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_is_compact() {
        // The per-connection user-space budget is < 1 KiB; the struct itself must stay tiny
        // (64 bytes in release builds; mio adds a selector id to sockets in debug builds).
        let limit = if cfg!(debug_assertions) { 80 } else { 64 };
        assert!(
            std::mem::size_of::<Conn>() <= limit,
            "{}",
            std::mem::size_of::<Conn>()
        );
    }
}
