//! The real protocol servers that `ci/servers.sh` starts (python-socketio, RabbitMQ Web-MQTT
//! and Web-STOMP, nats-server's WebSocket listener), as seen from a test.
//!
//! Include it with `#[path = "util/servers.rs"] mod servers;` and begin each test with
//!
//! ```ignore
//! let Some(url) = servers::url("mqtt") else { return };
//! ```
//!
//! * `WSSCALE_SERVERS` unset (or empty, or `0`): the servers are not wanted, as in a plain
//!   local `cargo nextest run`. [`url`] prints `skipped: WSSCALE_SERVERS not set ...` to
//!   stderr and returns `None`, and the test returns without testing anything.
//! * `WSSCALE_SERVERS=1` (CI: `.ci/run` starts the servers and exports the variables):
//!   [`url`] returns `WSSCALE_<NAME>_URL`, and panics, naming the variable and how to start
//!   the servers, when that variable is missing or its host:port does not accept a TCP
//!   connection within [`CONNECT_WITHIN`]. A server that failed to come up fails the
//!   tests loudly instead of skipping them.
//!
//! To run these tests locally: `ci/servers.sh start; eval "$(ci/servers.sh env)"`, then
//! `cargo nextest run`, then `ci/servers.sh stop` (see ci/README.md).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The servers, by the names [`url`] takes: `WSSCALE_<NAME>_URL` holds each one's URL.
pub const NAMES: [&str; 4] = ["socketio", "mqtt", "stomp", "nats"];

/// How long a server may take to accept a TCP connection before it counts as down.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// The commands that start the servers and export their URLs.
pub const HOW_TO_START: &str = "ci/servers.sh start; eval \"$(ci/servers.sh env)\"";

/// Whether the servers are wanted: `WSSCALE_SERVERS` is set to anything but empty or `0`.
pub fn enabled() -> bool {
    std::env::var_os("WSSCALE_SERVERS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The environment variable that holds the URL of server `name` (one of [`NAMES`]).
pub fn var_name(name: &str) -> String {
    assert!(
        NAMES.contains(&name),
        "unknown test server {name:?}: one of {NAMES:?}"
    );
    format!("WSSCALE_{}_URL", name.to_ascii_uppercase())
}

/// The URL of server `name` (one of [`NAMES`]), or `None` when the servers are not wanted
/// (`WSSCALE_SERVERS` unset): then it prints the skip notice, and the test should return.
///
/// Panics when `WSSCALE_SERVERS=1` but the URL is missing, malformed, or unreachable: see
/// the module's documentation (the panic is reported at the caller's line).
#[track_caller]
pub fn url(name: &str) -> Option<String> {
    match check(name) {
        Ok(Some(url)) => Some(url),
        Ok(None) => {
            eprintln!(
                "skipped: WSSCALE_SERVERS not set (this test needs the {name} server: {HOW_TO_START})"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// [`url`] without the notice and the panic: `Ok(None)` when the servers are not wanted,
/// `Err` with the full explanation when the server is wanted but cannot be reached.
pub fn check(name: &str) -> Result<Option<String>, String> {
    let var = var_name(name);
    if !enabled() {
        return Ok(None);
    }
    let url = match std::env::var(&var) {
        Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
        Ok(_) | Err(std::env::VarError::NotPresent) => {
            return Err(format!(
                "WSSCALE_SERVERS is set but {var} is not: start the test servers with \
                 `{HOW_TO_START}` (or unset WSSCALE_SERVERS to skip the tests that need them)"
            ));
        }
        Err(e) => return Err(format!("{var}: {e}")),
    };
    let addrs = socket_addrs(&url).map_err(|e| format!("{var}={url}: {e}"))?;
    reachable(&addrs, CONNECT_WITHIN).map_err(|e| {
        format!(
            "WSSCALE_SERVERS is set but the {name} server at {var}={url} does not accept a TCP \
             connection within {CONNECT_WITHIN:?} ({e}): is it running (`ci/servers.sh status`)? \
             Start the test servers with `{HOW_TO_START}`"
        )
    })?;
    Ok(Some(url))
}

/// The socket addresses of a `ws://` or `wss://` URL's host and port (80 and 443 by default).
fn socket_addrs(url: &str) -> Result<Vec<SocketAddr>, String> {
    let parsed = ::url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(format!(
            "not a ws:// or wss:// URL (scheme {:?})",
            parsed.scheme()
        ));
    }
    let addrs = parsed
        .socket_addrs(|| None)
        .map_err(|e| format!("cannot resolve its host: {e}"))?;
    if addrs.is_empty() {
        return Err("its host resolves to no address".to_string());
    }
    Ok(addrs)
}

/// Ok once one of `addrs` accepts a TCP connection; retried (a refused connection is
/// immediate on loopback) until `within` has passed.
fn reachable(addrs: &[SocketAddr], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let mut last = String::new();
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            match TcpStream::connect_timeout(addr, left.max(Duration::from_millis(100))) {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
