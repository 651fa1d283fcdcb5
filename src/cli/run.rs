//! The `wsscale run` command body: from a validated [`Plan`] to a report and an exit code.
//!
//! Steps: raise `RLIMIT_NOFILE` to the hard limit; run the preflight system checks
//! ([`crate::system::preflight::check_system`]) and refuse a plan they fail — too many sockets
//! for the fd limit, too few ephemeral ports, too little memory… — with their arithmetic and
//! fixes, unless `--skip-preflight`; start the embedded
//! gateway when no target was given; probe every target with one TCP connect so an
//! unreachable gateway is an error (exit 1), not a run full of `refused`; install
//! Ctrl-C/SIGTERM handling (first signal: stop, close everything, write the report; second
//! signal: exit at once); run the engine; print the summary; write the JSON report.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;

use crate::engine::{self, RunOptions};
use crate::gateway::{GatewayConfig, GatewayHandle};
use crate::metrics::RunOutcome;
use crate::plan::{Plan, Slice, Target};
use crate::report;
use crate::report::LiveMode;
use crate::system;

pub use crate::metrics::verdict::{EXIT_INTERRUPTED, EXIT_THRESHOLDS};

/// Run `plan`; returns the process exit code. `skip_preflight` runs a plan the preflight
/// checks refuse.
pub fn run_plan(plan: Plan, skip_preflight: bool) -> anyhow::Result<i32> {
    let stop = install_signals()?;
    let (plan, outcome) = run_to_outcome(plan, stop, skip_preflight)?;
    finish(&plan, &outcome)
}

/// Install SIGINT/SIGTERM handling: the first signal sets the returned flag (the run stops,
/// closes everything and still writes its report); a second one exits at once.
pub fn install_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, EXIT_INTERRUPTED, stop.clone())
            .context("cannot install signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    Ok(stop)
}

/// Raise the fd limit, run the preflight system checks (refusing a plan they fail, unless
/// `skip_preflight`), start the embedded gateway if no target was given, probe targets, run
/// the engine. Returns the plan as run (with the embedded gateway's target filled in) and the
/// outcome.
pub fn run_to_outcome(
    plan: Plan,
    stop: Arc<AtomicBool>,
    skip_preflight: bool,
) -> anyhow::Result<(Plan, RunOutcome)> {
    run_part_to_outcome(plan, stop, skip_preflight, Slice::WHOLE, None)
}

/// [`run_to_outcome`] for one part of the plan (`--shard I/N`): the preflight checks apply to
/// the part's share, and the first stage starts at `start_at` when given (`--start-at`).
pub fn run_part_to_outcome(
    mut plan: Plan,
    stop: Arc<AtomicBool>,
    skip_preflight: bool,
    slice: Slice,
    start_at: Option<Instant>,
) -> anyhow::Result<(Plan, RunOutcome)> {
    system::raise_nofile_to_hard().context("cannot read or raise RLIMIT_NOFILE")?;
    if slice != Slice::WHOLE {
        // A part runs its share as a plan of its own (see `cluster::slice_view`).
        plan = crate::cluster::slice_view(&plan, slice);
    }
    let embedded = plan.targets.is_empty();
    if !skip_preflight {
        let warnings =
            system::preflight::gate(&plan, system::Role::Loadgen).map_err(anyhow::Error::msg)?;
        for w in warnings {
            eprintln!("preflight warning: {w} (details: wsscale preflight)");
        }
    }

    let _gateway = if embedded {
        // With --compression the embedded gateway accepts permessage-deflate, so the run
        // measures what was asked for.
        let config = GatewayConfig {
            compression: plan.handshake.compression.offer().is_some(),
            ..GatewayConfig::default()
        };
        let gw = GatewayHandle::start("127.0.0.1:0".parse()?, config, 1)
            .context("cannot start the embedded gateway on 127.0.0.1")?;
        eprintln!(
            "no --target given: using the embedded gateway at {} (in-process; memory figures include it)",
            gw.url()
        );
        plan.targets = vec![Target::ws(gw.local_addr(), "/")];
        Some(gw)
    } else {
        probe_targets(&plan)?;
        None
    };
    if plan.tls.insecure && plan.targets.iter().any(|t| t.tls) {
        eprintln!("warning: {}", report::text::TLS_INSECURE_NOTE);
    }

    let mut opts = RunOptions::new(stop);
    opts.live = LiveMode::detect().sink();
    opts.embedded_gateway = embedded;
    opts.start_at = start_at;
    let outcome = engine::run(&plan, &opts).context("the engine failed")?;
    Ok((plan, outcome))
}

/// Finish a run: see [`crate::cli::finish`].
pub fn finish(plan: &Plan, outcome: &RunOutcome) -> anyhow::Result<i32> {
    super::finish::finish(plan, outcome.clone())
}

/// Probe the targets: none reachable is an error, some unreachable a warning each.
fn probe_targets(plan: &Plan) -> anyhow::Result<()> {
    for f in engine::probe_targets(plan)? {
        eprintln!("warning: target not reachable, its connections will fail: {f}");
    }
    Ok(())
}
