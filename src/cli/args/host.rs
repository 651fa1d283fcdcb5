//! clap definitions of the commands besides `run`: `serve`, `preflight` and `tune`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{RunArgs, secret};
use crate::plan::Secret;
use crate::plan::error::PlanError;
use crate::plan::units;

/// Arguments of `wsscale serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on: PORT (on 127.0.0.1), HOST:PORT, IP:PORT or [IPv6]:PORT; 0.0.0.0
    /// for every interface
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Share the --listen port with other processes that also ask for it (SO_REUSEPORT; the
    /// kernel spreads connections over them). Without it a busy port is an error.
    #[arg(long)]
    pub reuse_port: bool,

    /// Require an HS256 JWT signed with this secret (Authorization: Bearer, or ?token=).
    /// [default: no auth]
    #[arg(
        long,
        value_name = "SECRET",
        value_parser = secret,
        conflicts_with = "jwt_secret_file"
    )]
    pub jwt_secret: Option<Secret>,

    /// Like --jwt-secret, read from a file (a trailing newline is ignored)
    #[arg(long, value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// Refuse connections beyond this many (18000, 18k, 1M) [default: no limit]
    #[arg(long, value_name = "N", value_parser = units::parse_count)]
    pub max_connections: Option<u64>,

    /// Delay before echoing each message (e.g. 20ms) [default: 0]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration)]
    pub echo_delay: Option<Duration>,

    /// Server push: send every connection the same JSON text message
    /// {"ts":UNIX_MS,"seq":N,"pad":"…"} at this rate (1/s, 10/s, 1/5s; at most 1000/s), like a
    /// market-data feed; clients measure receive time − ts [default: off]
    #[arg(long, value_name = "RATE", value_parser = ServeArgs::parse_push_rate)]
    pub push_rate: Option<f64>,

    /// Bytes per push message (64, 1k, 4KiB): the JSON is padded to this size (below ~41
    /// bytes it is sent unpadded)
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "64",
        value_parser = ServeArgs::parse_push_size,
        requires = "push_rate"
    )]
    pub push_size: u64,

    /// Chat room: send every text or binary message received to every connection (the
    /// sender included) instead of echoing it to the sender only
    #[arg(long, conflicts_with = "echo_delay")]
    pub broadcast: bool,

    /// Serve the gateway's own counters (connections, messages) as Prometheus/OpenMetrics
    /// metrics at http://ADDR/metrics; port 0 picks a free port (the address is printed)
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, conflicts_with = "processes")]
    pub metrics_listen: Option<SocketAddr>,
    /// permessage-deflate: none, or deflate (accept a client's offer, echo compressed; the
    /// plain echo only, so not with --echo-delay, --push-rate or --broadcast). See
    /// docs/compression.md [default: none]
    #[arg(
        long,
        value_name = "none|deflate",
        default_value = "none",
        value_parser = ["none", "deflate"],
        conflicts_with_all = ["echo_delay", "push_rate", "broadcast"]
    )]
    pub compression: String,

    /// Runtime worker threads; 0 = number of CPU cores
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,

    /// Run N gateway processes on the one --listen port (they share it with --reuse-port; with
    /// port 0 the port is picked first): uses every core and holds more connections than one
    /// process may
    #[arg(long, value_name = "N")]
    pub processes: Option<usize>,

    /// Serve wss:// with this PEM certificate chain (needs --tls-key)
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve wss:// with a certificate generated at start for localhost, 127.0.0.1, ::1 and
    /// the listen address; its SHA-256 fingerprint is printed. Clients need --tls-insecure
    /// (or --tls-ca with the PEM written by --tls-cert-out).
    #[arg(long)]
    pub tls_self_signed: bool,

    /// With --tls-self-signed: also write the generated certificate (PEM) to FILE, for
    /// clients' --tls-ca
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    pub tls_cert_out: Option<PathBuf>,

    #[command(flatten)]
    pub faults: super::FaultArgs,
}

/// `serve --listen`: `PORT` (→ `127.0.0.1:PORT`), `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`
/// (resolved; IPv4 preferred). The error says which forms are accepted.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    const FORMS: &str = "write PORT (8080, on 127.0.0.1), IP:PORT (0.0.0.0:8080), \
                         [IPv6]:PORT ([::1]:8080) or HOST:PORT (localhost:8080)";
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|_| format!("port {t} is out of range (0-65535); {FORMS}"));
    }
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = t.rsplit_once(':') else {
        return Err(format!("{t:?} has no port; {FORMS}"));
    };
    if host.is_empty() || host.contains(':') || host.starts_with('[') {
        return Err(format!("{t:?} is not a listen address; {FORMS}"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port (0-65535); {FORMS}"))?;
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}; {FORMS}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{host:?} has no addresses; {FORMS}"))
}

impl ServeArgs {
    /// The highest `--push-rate` (tokio's timer ticks once per millisecond at most).
    pub const MAX_PUSH_RATE: f64 = 1000.0;

    /// `--push-rate`: a positive rate of at most [`ServeArgs::MAX_PUSH_RATE`] per second.
    pub fn parse_push_rate(s: &str) -> Result<f64, String> {
        let rate = units::parse_rate(s).map_err(|e| e.to_string())?;
        if rate <= 0.0 {
            return Err("the push rate must be above zero (e.g. 1/s, 10/s, 1/5s); leave                         --push-rate out to disable server push"
                .into());
        }
        if rate > Self::MAX_PUSH_RATE {
            return Err(format!(
                "{rate}/s is above the highest push rate, 1000/s (one message per                  millisecond, the timer's granularity); for more data per second raise                  --push-size"
            ));
        }
        Ok(rate)
    }

    /// `--push-size`: bytes, at most the gateway's largest message (16 MiB).
    pub fn parse_push_size(s: &str) -> Result<u64, String> {
        let size = units::parse_size(s).map_err(|e| e.to_string())?;
        let max = crate::gateway::MAX_FRAME_SIZE as u64;
        if size > max {
            return Err(format!(
                "{size} bytes is above the largest message, {max} bytes (16 MiB)"
            ));
        }
        Ok(size)
    }

    /// The JWT secret, from --jwt-secret or --jwt-secret-file (one trailing newline
    /// trimmed). An empty secret is an error.
    pub fn secret(&self) -> Result<Option<Secret>, PlanError> {
        let (secret, origin) = match (&self.jwt_secret, &self.jwt_secret_file) {
            (Some(s), _) => (s.clone(), "--jwt-secret"),
            (None, Some(path)) => (
                crate::plan::build::read_secret_file(path)?,
                "--jwt-secret-file",
            ),
            (None, None) => return Ok(None),
        };
        if secret.0.is_empty() {
            return Err(crate::plan::error::Origin::Flag(origin).invalid(
                "the JWT secret is empty; give a non-empty secret, or leave the flag out to disable auth",
            ));
        }
        Ok(Some(secret))
    }
}

pub(super) const PREFLIGHT_ABOUT: &str =
    "Check that this host can carry a planned run, and print the exact fixes";

pub(super) const PREFLIGHT_LONG: &str = "\
Check that this host can carry a planned run: file-descriptor limits, ephemeral ports and
source addresses, conntrack, memory, TCP settings, and (for a load generator) that every target
resolves, accepts TCP and completes one WebSocket upgrade with the plan's auth. Every finding
shows what was found, what is needed and why, and the exact fix (sysctl -w, ulimit,
LimitNOFILE=, docker --ulimit, a Kubernetes securityContext.sysctls snippet).

Takes the same PROFILE and flags as `wsscale run`. Exit code: 0 when nothing fails, 2 when
something fails (warnings alone do not fail).

Examples:
  wsscale preflight -c 100k
      can this host hold 100,000 connections to the embedded gateway?
  wsscale preflight profiles/hold-100k.toml --target ws://10.0.0.5:8080/ws --json
      the same for a profile and a real gateway, as JSON
  wsscale preflight --role gateway -c 1M
      on the gateway host: can it accept 1,000,000 connections?";

/// `--role` values.
fn role(s: &str) -> Result<crate::system::Role, String> {
    s.parse()
}

/// Arguments of `wsscale preflight`: the run's flags plus the host's role and JSON output.
#[derive(Debug, Clone, Args)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// What this host does in the test: loadgen (opens the connections) or gateway (accepts
    /// them)
    #[arg(long, value_name = "loadgen|gateway", value_parser = role, default_value = "loadgen", help_heading = "Preflight")]
    pub role: crate::system::Role,

    /// Print the findings as JSON (schema/preflight-v1.json) instead of a table
    #[arg(long, help_heading = "Preflight")]
    pub json: bool,
}

pub(super) const TUNE_ABOUT: &str = "Show, apply or revert the kernel settings for N connections";

pub(super) const TUNE_LONG: &str = "\
Show the kernel settings (sysctls) a load generator or gateway needs for N connections next to
this host's current values: only the lines that would change, unless --all. The values never
lower a current setting that is already sufficient.

--write PATH writes a sysctl.d file for this host. --apply writes the values to /proc/sys
(root), after saving the current values of everything it changes to a backup file (default:
./wsscale-sysctl-backup-ROLE-TIME.conf, printed); --revert FILE restores them. Settings that
cannot be changed from here (node-wide ones inside a container or network namespace, a
read-only /proc/sys) are reported, never silently skipped. Applying twice changes nothing.

Examples:
  wsscale tune --role loadgen -c 200k
      what to change on this load generator for 200,000 connections
  sudo wsscale tune --role gateway -c 1M --apply
      apply the gateway settings for 1,000,000 connections (backup printed)
  sudo wsscale tune --revert wsscale-sysctl-backup-gateway-20250101T120000Z.conf
      restore the values saved by that --apply";

/// Arguments of `wsscale tune`.
#[derive(Debug, Clone, Args)]
pub struct TuneArgs {
    /// What this host does in the test: loadgen or gateway
    #[arg(long, value_name = "loadgen|gateway", value_parser = role, default_value = "loadgen")]
    pub role: crate::system::Role,

    /// Connections to plan for (18000, 18k, 1M) [default: 1M, the class of sysctl/*.conf]
    #[arg(short = 'c', long, value_name = "N", value_parser = units::parse_count)]
    pub connections: Option<u64>,

    /// List every setting, also those that already meet the recommendation
    #[arg(long)]
    pub all: bool,

    /// Write a sysctl.d file with the recommended values for this host to PATH
    #[arg(long, value_name = "PATH", conflicts_with = "revert")]
    pub write: Option<PathBuf>,

    /// Write the recommended values to /proc/sys (root), after saving the current ones
    #[arg(long, conflicts_with = "revert")]
    pub apply: bool,

    /// With --apply: where to save the current values [default:
    /// ./wsscale-sysctl-backup-ROLE-TIME.conf]; never overwritten
    #[arg(long, value_name = "FILE", requires = "apply")]
    pub backup: Option<PathBuf>,

    /// Restore the values saved in FILE by --apply (any sysctl.d file works)
    #[arg(long, value_name = "FILE")]
    pub revert: Option<PathBuf>,
}
