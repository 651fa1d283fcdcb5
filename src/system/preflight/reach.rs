//! Target reachability: for each target, DNS resolves, TCP connects (from the plan's first
//! source address of the right family, as the engine would), for `wss://` the TLS handshake
//! completes with the plan's TLS settings, and one WebSocket upgrade with the plan's headers
//! and auth gets `101` with a valid `Sec-WebSocket-Accept`; the upgrade's round-trip time
//! (request written → response head parsed) is reported.
//!
//! The request and the TLS client are the engine's own ([`crate::engine::tls::ClientTls`], ([`crate::engine::ws::request_template`],
//! [`crate::engine::ws::connection_key`], [`crate::engine::jwt::JwtMinter`]), so a probe that
//! passes means the run's connections are built the same way. After the upgrade the probe
//! sends a close frame (1000) and closes. Each step is bounded by the plan's timeouts, capped
//! at [`PROBE_TIMEOUT`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use super::{Finding, Status};
use crate::engine::jwt::JwtMinter;
use crate::engine::tls::ClientTls;
use crate::engine::ws::{self, UpgradeResponse};
use crate::plan::redact::redact_url;
use crate::plan::{Plan, Target};

/// Longest a probe waits for any one step.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A target whose host name did not resolve when the plan was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub url: String,
    pub reason: String,
}

/// What a probe measured, for the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetProbe {
    pub url: String,
    /// The address connected to.
    pub addr: Option<String>,
    /// Name resolution time (`None` for an IP literal or when it failed).
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    /// TLS handshake time (`wss://` only).
    pub tls_ms: Option<f64>,
    /// Upgrade round trip: request written → `101` parsed.
    pub upgrade_ms: Option<f64>,
    pub status: Status,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// Probes every target of `plan` (and reports `unresolved` ones); with no target at all,
/// one passing finding says the embedded gateway will be used.
pub fn check_targets(plan: &Plan, unresolved: &[Unresolved]) -> (Vec<Finding>, Vec<TargetProbe>) {
    let mut findings = Vec::new();
    let mut probes = Vec::new();
    if plan.targets.is_empty() && unresolved.is_empty() {
        findings.push(Finding {
            check: "target",
            name: "target".to_owned(),
            status: Status::Pass,
            scope: "target",
            found: "no --target: the embedded gateway".to_owned(),
            needed: "-".to_owned(),
            why: "without a target wsscale run starts its reference gateway (`wsscale serve`, a \
                  child process) on 127.0.0.1 (port chosen at start) and loads it"
                .to_owned(),
            fix: Vec::new(),
        });
        return (findings, probes);
    }
    for u in unresolved {
        findings.push(Finding {
            check: "target",
            name: format!("target {}", redact_url(&u.url)),
            status: Status::Fail,
            scope: "target",
            found: format!("DNS failed: {}", u.reason),
            needed: needed_text(),
            why: why_text(),
            fix: vec![
                "check the host name and DNS (`getent hosts HOST`), or use an IP address"
                    .to_owned(),
            ],
        });
        probes.push(TargetProbe {
            url: redact_url(&u.url),
            addr: None,
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
            upgrade_ms: None,
            status: Status::Fail,
        });
    }
    for index in 0..plan.targets.len() {
        let (finding, probe) = check_target(plan, index);
        findings.push(finding);
        probes.push(probe);
    }
    (findings, probes)
}

fn needed_text() -> String {
    "DNS, TCP connect and a WebSocket upgrade (plan's auth) succeed".to_owned()
}

fn why_text() -> String {
    "every connection of the run goes through these steps; the upgrade round trip is the \
     floor of the handshake times the run will report"
        .to_owned()
}

/// Probes target number `index` of `plan`.
pub fn check_target(plan: &Plan, index: usize) -> (Finding, TargetProbe) {
    let target = &plan.targets[index];
    let mut finding = Finding {
        check: "target",
        name: format!("target {}", redact_url(&target.url)),
        status: Status::Pass,
        scope: "target",
        found: String::new(),
        needed: needed_text(),
        why: why_text(),
        fix: Vec::new(),
    };
    let mut probe = TargetProbe {
        url: redact_url(&target.url),
        addr: Some(target.addr.to_string()),
        dns_ms: None,
        connect_ms: None,
        tls_ms: None,
        upgrade_ms: None,
        status: Status::Pass,
    };
    let mut steps = Vec::new();
    let fail = |finding: &mut Finding, probe: &mut TargetProbe, steps: &[String], fix: &str| {
        finding.status = Status::Fail;
        probe.status = Status::Fail;
        finding.found = steps.join("; ");
        finding.fix.push(fix.to_owned());
    };

    // DNS (fresh, timed; the engine connects to the address resolved when the plan was built).
    if let Some(host) = domain_of(&target.url) {
        let started = Instant::now();
        match (host.as_str(), target.addr.port()).to_socket_addrs() {
            Ok(addrs) => {
                let took = started.elapsed();
                probe.dns_ms = Some(ms(took));
                let n = addrs.count();
                steps.push(format!(
                    "DNS {} ms ({n} address{})",
                    ms(took),
                    if n == 1 { "" } else { "es" }
                ));
            }
            Err(e) => {
                steps.push(format!("DNS failed: {e}"));
                fail(
                    &mut finding,
                    &mut probe,
                    &steps,
                    "check the host name and DNS (`getent hosts HOST`), or use an IP address",
                );
                return (finding, probe);
            }
        }
    }

    // TCP.
    let timeout = plan.connect_timeout.min(PROBE_TIMEOUT);
    let started = Instant::now();
    let mut stream = match connect(plan, target.addr, timeout) {
        Ok(s) => s,
        Err(e) => {
            steps.push(format!("TCP connect to {} failed: {e}", target.addr));
            let fix = if e.kind() == io::ErrorKind::ConnectionRefused {
                format!(
                    "nothing listens on {}: start the gateway (for a local test `wsscale serve \
                     --listen {}`), or correct --target",
                    target.addr, target.addr
                )
            } else {
                format!(
                    "no answer from {}: check that the host is up and that routes, firewalls and \
                     security groups let TCP through",
                    target.addr
                )
            };
            fail(&mut finding, &mut probe, &steps, &fix);
            return (finding, probe);
        }
    };
    let took = started.elapsed();
    probe.connect_ms = Some(ms(took));
    steps.push(format!("TCP {} ms to {}", ms(took), target.addr));

    let io_timeout = plan.handshake_timeout.min(PROBE_TIMEOUT);
    let _ = stream.set_read_timeout(Some(io_timeout));
    let _ = stream.set_write_timeout(Some(io_timeout));

    // TLS (wss://), then the WebSocket upgrade over it.
    let result = if target.tls {
        match tls_handshake(plan, index, &mut stream) {
            Ok((conn, took, version)) => {
                probe.tls_ms = Some(ms(took));
                steps.push(format!("TLS {} ms ({version})", ms(took)));
                let mut tls_stream = rustls::StreamOwned::new(conn, stream);
                upgrade(plan, target, &mut tls_stream)
            }
            Err(e) => Err(e),
        }
    } else {
        upgrade(plan, target, &mut stream)
    };
    match result {
        Ok(took) => {
            probe.upgrade_ms = Some(ms(took));
            steps.push(format!("upgrade 101 in {} ms", ms(took)));
            finding.found = steps.join("; ");
        }
        Err(UpgradeFailure { what, fix }) => {
            steps.push(what);
            fail(&mut finding, &mut probe, &steps, &fix);
        }
    }
    (finding, probe)
}

/// The TLS handshake of a `wss://` target with the plan's TLS settings.
fn tls_handshake(
    plan: &Plan,
    index: usize,
    stream: &mut TcpStream,
) -> Result<(rustls::ClientConnection, Duration, String), UpgradeFailure> {
    let setup_fix = "check --tls-ca / --tls-sni / --tls-client-cert / --tls-client-key";
    let tls = match ClientTls::new(&plan.tls, &plan.targets) {
        Ok(Some(tls)) => tls,
        Ok(None) => {
            return Err(failure(
                "no TLS configuration for a wss:// target",
                setup_fix,
            ));
        }
        Err(e) => return Err(failure(format!("TLS setup failed: {e}"), setup_fix)),
    };
    let mut conn = tls
        .connect(index)
        .map_err(|e| failure(format!("TLS setup failed: {e}"), setup_fix))?;
    let started = Instant::now();
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(stream) {
            let inner = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned();
            return Err(match inner {
                Some(rustls::Error::InvalidCertificate(why)) => failure(
                    format!("TLS certificate rejected: {why:?}"),
                    "trust the gateway's CA with --tls-ca FILE, set --tls-sni to a name in the \
                     certificate, or (test gateways only) --tls-insecure",
                ),
                Some(other) => failure(format!("TLS handshake failed: {other}"), setup_fix),
                None => failure(
                    format!("TLS handshake did not complete: {e}"),
                    "does the gateway speak TLS on this port? (ws:// for plaintext)",
                ),
            });
        }
    }
    let version = conn
        .protocol_version()
        .map_or_else(|| "TLS".to_owned(), |v| format!("{v:?}"));
    Ok((*conn, started.elapsed(), version))
}

/// The host of `url` when it is a domain name (not an IP literal).
fn domain_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url.trim()).ok()?;
    match url.host()? {
        url::Host::Domain(d) => Some(d.to_owned()),
        _ => None,
    }
}

/// Connects like the engine: bound to the plan's first source address of the same family.
fn connect(plan: &Plan, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(src) = plan.sources.iter().find(|s| s.is_ipv4() == addr.is_ipv4()) {
        socket.bind(&SocketAddr::new(*src, 0).into()).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind source address {src}: {e}"))
        })?;
    }
    socket.connect_timeout(&addr.into(), timeout)?;
    socket.set_tcp_nodelay(true)?;
    Ok(socket.into())
}

struct UpgradeFailure {
    what: String,
    fix: String,
}

fn failure(what: impl Into<String>, fix: impl Into<String>) -> UpgradeFailure {
    UpgradeFailure {
        what: what.into(),
        fix: fix.into(),
    }
}

/// Sends the plan's upgrade request and waits for the response; returns the round trip.
fn upgrade<S: Read + Write>(
    plan: &Plan,
    target: &Target,
    stream: &mut S,
) -> Result<Duration, UpgradeFailure> {
    let template = ws::template_for(plan, target);
    let jwt = match JwtMinter::from_auth(&plan.handshake.auth) {
        Ok(Some(minter)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            Some(minter.mint(0, now).map_err(|e| {
                failure(
                    format!("cannot mint the JWT: {e}"),
                    "check --jwt-key-file / --jwt-alg / --jwt-claims",
                )
            })?)
        }
        Ok(None) => None,
        Err(e) => {
            return Err(failure(
                e.to_string(),
                "check --jwt-key-file / --jwt-secret",
            ));
        }
    };
    let key = ws::connection_key(fastrand::u64(..), 0);
    let mut request = Vec::with_capacity(512);
    template.write(&key, jwt.as_deref(), &mut request);

    let timeout = plan.handshake_timeout.min(PROBE_TIMEOUT);
    let io_fail = |e: io::Error| {
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        if timed_out {
            failure(
                format!("no upgrade response within {} ms", timeout.as_millis()),
                "the gateway accepted TCP but did not answer the upgrade: is it a WebSocket \
                 endpoint, and is it overloaded?",
            )
        } else {
            failure(
                format!("upgrade failed: {e}"),
                "the gateway closed or reset the connection during the upgrade: check its logs",
            )
        }
    };
    let started = Instant::now();
    stream.write_all(&request).map_err(io_fail)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let read = stream.read(&mut chunk).map_err(io_fail)?;
        if read == 0 {
            return Err(failure(
                "the gateway closed the connection before answering the upgrade",
                "check the gateway's logs, the path and the Host header (-H 'Host: ...')",
            ));
        }
        buf.extend_from_slice(&chunk[..read]);
        match ws::parse_upgrade_response(&buf, &key, plan.handshake.compression.offer()) {
            UpgradeResponse::Partial => {
                if started.elapsed() > timeout {
                    return Err(io_fail(io::ErrorKind::TimedOut.into()));
                }
            }
            UpgradeResponse::Accepted { .. } => {
                let took = started.elapsed();
                let mut close = Vec::with_capacity(8);
                ws::write_client_frame(
                    &mut close,
                    0x8,
                    &1000u16.to_be_bytes(),
                    fastrand::u32(..).to_be_bytes(),
                );
                let _ = stream.write_all(&close);
                return Ok(took);
            }
            UpgradeResponse::Status(code @ (401 | 403)) => {
                return Err(failure(
                    format!("upgrade refused: HTTP {code}"),
                    "the gateway rejected the plan's auth: check --token / --jwt-secret / \
                     --jwt-claims / --jwt-in (every connection of the run sends the same kind)",
                ));
            }
            UpgradeResponse::Status(code) => {
                return Err(failure(
                    format!("upgrade refused: HTTP {code}"),
                    format!(
                        "the gateway answered HTTP {code} to GET {}: check the path, the Host \
                         header and any required headers (-H)",
                        target.path_and_query
                    ),
                ));
            }
            UpgradeResponse::TooLarge => {
                return Err(failure(
                    "invalid upgrade response: no end of the response head in 16 KiB",
                    "this does not look like a WebSocket endpoint: check the URL",
                ));
            }
            UpgradeResponse::Invalid(why) => {
                return Err(failure(
                    format!("invalid upgrade response: {why}"),
                    "this does not look like a WebSocket endpoint: check the URL",
                ));
            }
        }
    }
}
