//! The `--metrics-listen` HTTP endpoint: `GET /metrics` answers the text a render function
//! returns (the OpenMetrics exposition); any other path is 404, any other method 405.
//!
//! It runs on its own thread with a current-thread tokio runtime, so `run` (whose data plane
//! is mio), `serve`, `coordinator` and `agent` all start it the same way; the caller binds
//! (port 0 allowed) and reads the bound address from [`MetricsServer::local_addr`]. It lives
//! in the gateway layer because it is control-plane HTTP, next to the reference gateway, and
//! everything that owns a run (cli, cluster) sits above it. Dropping the handle stops it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// Produces the body of `GET /metrics`.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Largest request head read (a scrape's request is a few hundred bytes).
const MAX_HEAD: usize = 8 * 1024;

/// A running metrics endpoint; stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Bind `addr` and serve `render()` with `content_type` on `GET /metrics`.
    pub fn start(
        addr: SocketAddr,
        content_type: &'static str,
        render: Render,
    ) -> std::io::Result<MetricsServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, mut rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wsscale-metrics".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                if let Ok((sock, _)) = accepted {
                                    tokio::spawn(answer(sock, content_type, render.clone()));
                                }
                            }
                        }
                    }
                });
            })?;
        Ok(MetricsServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read one request head and answer it; the connection closes after the answer.
async fn answer(mut sock: tokio::net::TcpStream, content_type: &str, render: Render) {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => {
                    return Some((req.method?.to_string(), req.path?.to_string()));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
                _ => return Some((String::new(), String::new())),
            }
        }
    })
    .await;
    let Ok(Some((method, path))) = head else {
        return;
    };
    let path = path.split('?').next().unwrap_or_default();
    let (status, ctype, body) = match (method.as_str(), path) {
        ("GET", "/metrics") => ("200 OK", content_type, render()),
        ("", _) => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: the metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// Blocking `GET /metrics` (and any other path) for tests and benchmarks: returns the status
/// code and the body.
pub fn scrape(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, body.to_string()))
}

/// Names of the gateway's own metric families (`wsscale serve --metrics-listen`).
pub const GATEWAY_METRIC_NAMES: &[&str] = &[
    "wsscale_gateway_open_connections",
    "wsscale_gateway_connections_accepted_total",
    "wsscale_gateway_connections_upgraded_total",
    "wsscale_gateway_connections_closed_total",
    "wsscale_gateway_connections_rejected_total",
    "wsscale_gateway_handshakes_failed_total",
    "wsscale_gateway_accept_errors_total",
    "wsscale_gateway_messages_echoed_total",
    "wsscale_gateway_pushes_sent_total",
    "wsscale_gateway_broadcast_delivered_total",
];

/// The gateway's own counters as an OpenMetrics exposition (with `prometheus-client`; built
/// from one [`GatewayCounts`](super::GatewayCounts) snapshot per scrape).
pub fn render_gateway(c: &super::GatewayCounts) -> String {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;
    use std::sync::atomic::Ordering::Relaxed;

    let mut r = Registry::with_prefix("wsscale_gateway");
    let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
        let m = Counter::<u64>::default();
        m.inner().store(v, Relaxed);
        r.register(name, help, m);
    };
    let open = Gauge::<i64>::default();
    open.set(i64::try_from(c.open).unwrap_or(i64::MAX));
    r.register("open_connections", "WebSocket connections open", open);
    counter(
        &mut r,
        "connections_accepted",
        "TCP connections accepted",
        c.accepted,
    );
    counter(
        &mut r,
        "connections_upgraded",
        "WebSocket handshakes completed",
        c.upgraded,
    );
    counter(
        &mut r,
        "connections_closed",
        "Upgraded connections that ended",
        c.closed,
    );
    let rejected = Family::<Vec<(String, String)>, Counter>::default();
    for (reason, n) in [("auth", c.rejected_auth), ("full", c.rejected_full)] {
        rejected
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inner()
            .store(n, Relaxed);
    }
    r.register(
        "connections_rejected",
        "Upgrades refused: 401 (auth) or 503 (full)",
        rejected,
    );
    counter(
        &mut r,
        "handshakes_failed",
        "Accepted sockets that never became a WebSocket (not 401/503)",
        c.handshake_failed,
    );
    counter(
        &mut r,
        "accept_errors",
        "accept() failures",
        c.accept_errors,
    );
    counter(
        &mut r,
        "messages_echoed",
        "Messages echoed back",
        c.messages_echoed,
    );
    counter(
        &mut r,
        "pushes_sent",
        "Push messages handed to connections",
        c.pushes_sent,
    );
    counter(
        &mut r,
        "broadcast_delivered",
        "Room messages handed to connections",
        c.broadcast_delivered,
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r)
        .expect("writing into a String cannot fail");
    out
}
