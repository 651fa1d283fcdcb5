//! The `wsscale run` command body: from a validated [`Plan`] to a report and an exit code.
//!
//! Steps: raise `RLIMIT_NOFILE` to the hard limit; run the preflight system checks
//! ([`crate::system::preflight::check_system`]) and refuse a plan they fail — too many sockets
//! for the fd limit, too few ephemeral ports, too little memory… — with their arithmetic and
//! fixes, unless `--skip-preflight`; start the embedded
//! gateway when no target was given; probe every target with one TCP connect so an
//! unreachable gateway is an error (exit 1), not a run full of `refused`; install
//! Ctrl-C/SIGTERM handling (first signal: stop, close everything, write the report; second
//! signal: exit at once); start the gateway watcher ([`super::watch`]); run the engine;
//! print the summary; write the JSON report.
//!
//! The embedded gateway runs as a child process (`wsscale serve` of this same executable on
//! `127.0.0.1`, port 0 picked here) rather than in this process: then the client's memory
//! figure is the client's alone, and the gateway's own figures (RSS, CPU, connections) come
//! from watching that process by pid like any other gateway. Library users and tests that
//! want an in-process gateway bind one themselves ([`crate::gateway::GatewayHandle`]).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::args::WatchArgs;
use crate::cluster::local::start_gateways;
use crate::engine::{self, RunOptions};
use crate::metrics::{PreflightNote, RunOutcome};
use crate::plan::{Plan, Slice, Target};
use crate::report;
use crate::report::LiveMode;

use super::outputs::LiveOutputs;
use crate::system;

pub use crate::metrics::verdict::{EXIT_INTERRUPTED, EXIT_THRESHOLDS};

/// Run `plan`; returns the process exit code. `skip_preflight` runs a plan the preflight
/// checks refuse.
pub fn run_plan(
    plan: Plan,
    skip_preflight: bool,
    watch: &WatchArgs,
    outputs: &LiveOutputs,
) -> anyhow::Result<i32> {
    let stop = install_signals()?;
    let (plan, outcome) = run_part_to_outcome(
        plan,
        stop,
        skip_preflight,
        Slice::WHOLE,
        None,
        watch,
        outputs,
    )?;
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
    watch: &WatchArgs,
) -> anyhow::Result<(Plan, RunOutcome)> {
    run_part_to_outcome(
        plan,
        stop,
        skip_preflight,
        Slice::WHOLE,
        None,
        watch,
        &LiveOutputs::default(),
    )
}

/// [`run_to_outcome`] for one part of the plan (`--shard I/N`): the preflight checks apply to
/// the part's share, and the first stage starts at `start_at` when given (`--start-at`).
/// `outputs` (`--metrics-listen`, `--report-hdr`) watch the run beside the live line.
pub fn run_part_to_outcome(
    mut plan: Plan,
    stop: Arc<AtomicBool>,
    skip_preflight: bool,
    slice: Slice,
    start_at: Option<Instant>,
    watch: &WatchArgs,
    outputs: &LiveOutputs,
) -> anyhow::Result<(Plan, RunOutcome)> {
    system::raise_nofile_to_hard().context("cannot read or raise RLIMIT_NOFILE")?;
    if slice != Slice::WHOLE {
        // A part runs its share as a plan of its own (see `cluster::slice_view`).
        plan = crate::cluster::slice_view(&plan, slice);
    }
    let embedded = plan.targets.is_empty();
    let mut preflight = Vec::new();
    if !skip_preflight {
        let checks = system::preflight::check_system(&plan, system::Role::Loadgen);
        if checks.failed() {
            return Err(anyhow::Error::msg(checks.refusal()));
        }
        for w in checks.with_status(system::preflight::Status::Warn) {
            eprintln!(
                "preflight warning: {}: found {}, needed {} (details: wsscale preflight)",
                w.name, w.found, w.needed
            );
            preflight.push(PreflightNote {
                check: w.check.to_string(),
                name: w.name.clone(),
                status: w.status.label().to_string(),
                found: w.found.clone(),
                needed: w.needed.clone(),
            });
        }
    }

    // Checked before a gateway process is started for nothing.
    let mut watch_cfg = watch
        .config(plan.interval, &[])
        .map_err(super::watch::watch_error)?;
    let mut gateway = if embedded {
        let exe = std::env::current_exe().context("cannot find the wsscale executable")?;
        // With --compression the embedded gateway accepts permessage-deflate, so the run
        // measures what was asked for.
        let mut extra: Vec<std::ffi::OsString> = if plan.handshake.compression.offer().is_some() {
            vec!["--compression".into(), "deflate".into()]
        } else {
            Vec::new()
        };
        // `[embedded_gateway]` settings (a known limit for demos and tests).
        extra.extend(
            plan.embedded_gateway
                .serve_args()
                .into_iter()
                .map(Into::into),
        );
        // Per-connection HS256 JWTs: the embedded gateway checks them with the same secret,
        // so a bad or missing token (`--misbehave bad-token`, `no-auth`) gets its 401.
        if let crate::plan::Auth::Jwt {
            alg: crate::plan::JwtAlg::HS256,
            key,
            ..
        } = &plan.handshake.auth
        {
            extra.extend(["--jwt-secret".into(), key.0.clone().into()]);
        }
        // Fault injection asked for (`--gateway-*`, `gateway_*` keys).
        extra.extend(plan.gateway_faults.serve_args().into_iter().map(Into::into));
        let (addr, children, reserved) = start_gateways(&exe, "127.0.0.1:0".parse()?, 1, 1, &extra)
            .context("cannot start the embedded gateway (wsscale serve) on 127.0.0.1")?;
        let pids = children.pids();
        eprintln!(
            "no --target given: using the embedded gateway at ws://{addr}/ (wsscale serve, pid {}; \
             watched: its figures are in the Gateway section, the memory figures are the client's alone)",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        watch_cfg.pids.extend(pids);
        plan.targets = vec![Target::ws(addr, "/")];
        Some((children, reserved))
    } else {
        probe_targets(&plan)?;
        None
    };
    if plan.tls.insecure && plan.targets.iter().any(|t| t.tls) {
        eprintln!("warning: {}", report::text::TLS_INSECURE_NOTE);
    }

    let started = outputs.start()?;
    let mut opts = RunOptions::new(stop);
    opts.live = started.sink(LiveMode::detect().sink());
    opts.start_at = start_at;
    opts.checkpoint = checkpoint(&plan);
    let watcher = super::watch::start(watch_cfg)?;
    let mut outcome = engine::run(&plan, &opts).context("the engine failed")?;
    outcome.preflight = preflight;
    super::watch::attach(watcher, &mut outcome);
    if let Some((children, _reserved)) = &mut gateway {
        children.signal_term();
        children.finish(Duration::from_secs(3));
    }
    Ok((plan, outcome))
}

/// The report destinations of `plan`, for runs whose own process does not pass the
/// preflight gate (a coordinator, `run --processes`): a report that cannot be written is
/// found now, not after the run.
pub fn check_report_paths(plan: &Plan) -> anyhow::Result<()> {
    let failing: Vec<String> = system::preflight::outputs::report_paths(plan)
        .into_iter()
        .filter(|f| f.status == system::preflight::Status::Fail)
        .map(|f| {
            format!(
                "{}: {} ({}); fix: {}",
                f.name,
                f.found,
                f.why,
                f.fix.join("; ")
            )
        })
        .collect();
    if failing.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "cannot write the reports, so the run was not started:\n  {}",
        failing.join("\n  ")
    )
}

/// The `--checkpoint` sink of `plan`: with a JSON report and a non-zero period.
pub fn checkpoint(plan: &Plan) -> Option<Arc<dyn crate::metrics::outcome::CheckpointSink>> {
    let path = plan.report_json.as_deref()?;
    if plan.checkpoint.is_zero() {
        return None;
    }
    Some(Arc::new(report::write::JsonCheckpoint::new(
        path,
        plan.checkpoint,
    )))
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
