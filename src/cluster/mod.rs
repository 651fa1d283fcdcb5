//! Beyond one process and one host: one coordinator, many agents, one exactly-merged report.
//!
//! - [`wire`] — the control channel's typed, versioned messages (JSON over WebSocket) and
//!   the plan as sent to agents ([`wire::WirePlan`]).
//! - [`split`] — how a plan is divided: connections in proportion to each agent's capacity,
//!   every agent its own source addresses.
//! - [`coordinator`] — [`Coordinator`]: waits for N agents, splits, starts everyone at one
//!   wall-clock instant, merges their snapshots with the same [`crate::metrics::Snapshot`]
//!   merge that adds up engine shards, prints a global line and one line per agent, and
//!   builds the [`crate::report::RunOutcome`] with `agents[]`.
//! - [`agent`] — [`agent::run_agent`]: dials out (agents never listen), authenticates, runs
//!   its slice on the engine's own threads, streams snapshots; stops its load when the
//!   coordinator is gone for longer than the orphan timeout.
//! - `auth` — both ends prove they hold the token by HMAC over fresh nonces; the token
//!   never crosses the link. [`link_tls`] — `wss://` on the link (certificate files,
//!   self-signed with a printed fingerprint, CA or fingerprint pinning on the agent).
//!   [`allow`] — the agent's own list of where a plan may send it.
//! - [`local`] — `wsscale run --processes N` and `wsscale serve --processes N`: the same
//!   machinery over loopback, with child processes this process starts and reaps.
//!
//! The control plane is tokio + tokio-tungstenite on its own runtime; the engine stays on
//! its own threads and talks to it through the engine's `observer` channel. Nothing here
//! touches a socket under test.
//!
//! # Safety rules
//!
//! - An agent whose coordinator is silent (no heartbeat; one goes out every second) for
//!   longer than `--orphan-timeout` sets its stop flag — the engine closes every connection
//!   — and exits. It never keeps loading a gateway unattended. A short link loss is bridged:
//!   the agent dials again and resends the snapshots the coordinator has not acknowledged.
//! - Ctrl-C on the coordinator sends `stop` to every agent; they ramp down (close
//!   everything), send their final snapshots, and the merged report is still written.
//! - An agent that vanishes mid-run is reported `lost` (what it sent is kept); the run
//!   goes on unless `--abort-on-agent-loss`.

pub mod agent;
pub mod allow;
pub mod auth;
pub mod coordinator;
mod link;
pub mod link_tls;
pub mod local;
pub mod split;
pub mod wire;

pub use agent::{AgentConfig, AgentError, run_agent};
pub use coordinator::{ClusterError, Coordinator, CoordinatorConfig};

use std::io;
use std::path::{Path, PathBuf};

use crate::plan::{Plan, Secret, Slice};

/// The plan one part (agent, local process, `--shard`) runs: every stage target replaced by
/// the part's share of it.
///
/// At every stage boundary the parts' targets sum to exactly the global target (the slices
/// partition it); inside a stage each part ramps linearly to its own share, so the sum may
/// trail the global figure by less than one connection per part. Why not evaluate the slice
/// continuously ([`Slice::count`] of the global target) as engine shards do? Because a
/// slice's share of a *rising* target dips by one for a moment whenever the floor of its
/// lower boundary steps before the floor of its upper one (`floor(g·hi) − floor(g·lo)`),
/// and the engine would close and re-open a connection on every dip — ~3 % extra
/// connections over a 100K ramp on six processes. A part's own linear ramp never dips.
/// Preflight checks on this plan apply to what the part will actually hold.
pub fn slice_view(plan: &Plan, slice: Slice) -> Plan {
    let mut view = plan.clone();
    for s in &mut view.stages {
        s.target = slice.count(s.target as f64);
    }
    // The arrival rates are divided like the targets (the cap is a stage target already),
    // and each part draws its own sessions from the plan's seed.
    if let Some(a) = &plan.arrival {
        view.arrival = Some(a.scaled(slice.hi - slice.lo, slice.count(a.max_open as f64)));
    }
    if let Some(c) = &mut view.churn {
        c.seed ^= slice.lo.to_bits();
    }
    // Each part takes its own share of the `--data` rows (`unique` stays unique).
    if let Some(d) = &plan.data
        && slice != Slice::WHOLE
    {
        view.data = Some(std::sync::Arc::new(d.share(slice.lo, slice.hi)));
    }
    view
}

/// Read a token file: the whole file, one trailing newline trimmed; empty is an error.
pub fn read_token_file(path: &Path) -> io::Result<Secret> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read the token file {}: {e}", path.display()),
        )
    })?;
    let token = text.strip_suffix('\n').unwrap_or(&text);
    let token = token.strip_suffix('\r').unwrap_or(token);
    if token.trim().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the token file {} is empty; put a shared secret in it, e.g. \
                 `head -c 32 /dev/urandom | base64 > {}`",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(Secret(token.to_string()))
}

/// A random token (128 bits, hex).
pub fn random_token() -> String {
    // From the system's secure random source: a token guessed is a run hijacked.
    auth::nonce()
}

/// A token written to a fresh file (mode 0600) in the temporary directory; the file is
/// removed on drop.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    token: Secret,
}

impl TokenFile {
    pub fn create() -> io::Result<TokenFile> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let token = random_token();
        let mut last = None;
        for _ in 0..16 {
            let path = std::env::temp_dir().join(format!(
                "wsscale-token-{}-{:08x}",
                std::process::id(),
                fastrand::u32(..)
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(token.as_bytes())?;
                    return Ok(TokenFile {
                        path,
                        token: Secret(token),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("cannot create a token file")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This host's name (`/proc/sys/kernel/hostname`), `localhost` when unreadable.
pub fn hostname() -> String {
    crate::system::read_sysctl("kernel.hostname")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
