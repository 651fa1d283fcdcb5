//! Running the gateway watcher ([`crate::system::watch`]) around a run: start it (the
//! baseline sample is taken before the first connection), then hand its record to the
//! outcome and fill the time series' gateway columns ([`crate::metrics::gateway::attach`]).
//! Used by `run` (also for the embedded gateway's process), `run --processes` (inside
//! `cluster::local`) and `coordinator`.

use crate::metrics::RunOutcome;
use crate::system::watch::{WatchConfig, WatchError, Watcher};

/// A bad watch flag is a usage error (exit 2); a thread that cannot start is not.
pub fn watch_error(e: WatchError) -> anyhow::Error {
    match e {
        WatchError::Thread(_) => anyhow::Error::new(e),
        _ => super::usage(e.to_string()),
    }
}

/// Start watching, unless there is nothing to watch.
pub fn start(cfg: WatchConfig) -> anyhow::Result<Option<Watcher>> {
    if cfg.is_empty() {
        return Ok(None);
    }
    Watcher::start(cfg).map(Some).map_err(watch_error)
}

/// Stop `watcher` and put what it recorded into `outcome`.
pub fn attach(watcher: Option<Watcher>, outcome: &mut RunOutcome) {
    if let Some(w) = watcher {
        outcome.gateway = Some(w.finish());
        crate::metrics::gateway::attach(outcome);
    }
}
