//! The `wsscale run` command body: from a validated [`Plan`] to a report and an exit code.
//!
//! Steps: raise `RLIMIT_NOFILE` to the hard limit; refuse a plan that needs more sockets than
//! this process may hold (with the arithmetic and what to do instead); start the embedded
//! gateway when no target was given; probe every target with one TCP connect so an
//! unreachable gateway is an error (exit 1), not a run full of `refused`; install
//! Ctrl-C/SIGTERM handling (first signal: stop, close everything, write the report; second
//! signal: exit at once); run the engine; print the summary; write the JSON report.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::engine::{self, LiveMode, RunOptions};
use crate::gateway::{GatewayConfig, GatewayHandle};
use crate::plan::{Plan, Target};
use crate::report::{self, RunOutcome};
use crate::system;

/// Exit code of an interrupted run (128 + SIGINT), after the report was written.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Run `plan`; returns the process exit code.
pub fn run_plan(plan: Plan) -> anyhow::Result<i32> {
    let stop = install_signals()?;
    let (plan, outcome) = run_to_outcome(plan, stop)?;
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

/// Check limits, start the embedded gateway if no target was given, probe targets, run the
/// engine. Returns the plan as run (with the embedded gateway's target filled in) and the
/// outcome.
pub fn run_to_outcome(mut plan: Plan, stop: Arc<AtomicBool>) -> anyhow::Result<(Plan, RunOutcome)> {
    let limits = system::raise_nofile_to_hard().context("cannot read or raise RLIMIT_NOFILE")?;
    let peak = plan.peak_connections();
    let embedded = plan.targets.is_empty();
    let capacity = if embedded {
        system::max_connections_for_fds_with_gateway(limits.soft)
    } else {
        system::max_connections_for_fds(limits.soft)
    };
    if peak > capacity {
        bail!(fd_advice(peak, capacity, limits.hard, embedded));
    }

    let _gateway = if embedded {
        let gw = GatewayHandle::start("127.0.0.1:0".parse()?, GatewayConfig::default(), 1)
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

    let mut opts = RunOptions::new(stop);
    opts.live = LiveMode::detect();
    opts.embedded_gateway = embedded;
    let outcome = engine::run(&plan, &opts).context("the engine failed")?;
    Ok((plan, outcome))
}

/// Print the summary, write the JSON report, pick the exit code.
fn finish(plan: &Plan, outcome: &RunOutcome) -> anyhow::Result<i32> {
    print!("{}", report::summary_text(outcome));
    if let Some(path) = &plan.report_json {
        report::write_json(path, outcome)
            .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
        eprintln!("JSON report written to {}", path.display());
    }
    Ok(if outcome.interrupted {
        EXIT_INTERRUPTED
    } else {
        0
    })
}

/// One TCP connect per target. Unreachable targets are warnings unless all are unreachable.
fn probe_targets(plan: &Plan) -> anyhow::Result<()> {
    let timeout = plan.connect_timeout.min(Duration::from_secs(5));
    let mut failures = Vec::new();
    for t in &plan.targets {
        if let Err(e) = TcpStream::connect_timeout(&t.addr, timeout) {
            failures.push(format!("{} ({}): {e}", t.url, t.addr));
        }
    }
    if failures.len() == plan.targets.len() {
        bail!(
            "no target is reachable:\n  {}\nCheck that the gateway is running and listening on that address \
             (for a local test: `wsscale serve --listen 127.0.0.1:8080`), or omit --target to use the embedded gateway.",
            failures.join("\n  ")
        );
    }
    for f in failures {
        eprintln!("warning: target not reachable, its connections will fail: {f}");
    }
    Ok(())
}

/// The explanation when a plan needs more sockets than one process may hold.
pub fn fd_advice(peak: u64, capacity: u64, hard: u64, embedded: bool) -> String {
    let processes = peak.div_ceil(capacity.max(1));
    let per = peak.div_ceil(processes.max(1));
    let mut s = format!(
        "the plan needs {peak} connections at its peak, but this process may hold at most {capacity}: \
         RLIMIT_NOFILE hard limit is {hard} file descriptors"
    );
    if embedded {
        s.push_str(
            ", and with the embedded gateway every connection costs two descriptors (client and server side)",
        );
    }
    s.push_str(&format!(
        ".\nWhat to do:\n  - raise the hard limit where you can (`ulimit -Hn`, systemd `LimitNOFILE=`, \
         `docker run --ulimit nofile=1048576:1048576`; needs CAP_SYS_RESOURCE and fs.nr_open ≥ the limit), or\n  \
         - split the load over {processes} processes or hosts of about {per} connections each"
    ));
    if embedded {
        s.push_str(
            ",\n  - and run the gateway in its own process: `wsscale serve --listen 127.0.0.1:8080` \
             plus `--target ws://127.0.0.1:8080/`",
        );
    }
    s
}
