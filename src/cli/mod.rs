//! Command line: clap definitions ([`args`]), human-unit parsers ([`units`]), and dispatch
//! to the command bodies ([`run`] for `wsscale run`; [`serve`] for `wsscale serve`, which
//! ends in [`crate::gateway::serve_blocking`]; [`cluster`] for `coordinator`, `agent`,
//! `report merge` and the `--processes`/`--shard` branches; [`report`] for `report html` and
//! `report compare`).
//!
//! This is the only place that uses `anyhow`: library errors are typed, and here they become
//! one message on stderr and an exit code (0 completed, 1 could not run, 2 usage error,
//! 99 a threshold failed, 130 interrupted). A profile with `steps` goes to [`progressive`];
//! `wsscale search` to [`search`]; both run their steps with [`steps`].

pub mod args;
pub mod cluster;
pub mod finish;
pub mod outputs;
pub mod preflight;
pub mod progressive;
pub mod report;
pub mod run;
pub mod search;
pub mod serve;
pub mod steps;
pub mod watch;

/// Exit code when the run could not be carried out although the input was valid: no target
/// reachable, a host name that does not resolve, a plan this host cannot hold (preflight), an
/// engine or I/O failure.
pub const EXIT_ERROR: i32 = 1;
/// Exit code for bad input — anything wrong in what the user wrote, on the command line or
/// in a profile: clap's usage errors and every [`PlanError`](crate::plan::PlanError) but an
/// unresolvable host. One rule: 2 means "fix the command", 1 means "fix the environment".
pub const EXIT_USAGE: i32 = 2;

/// Parse the command line and run; returns the process exit code.
pub fn main() -> i32 {
    let cli = match parse(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code_of(&e)
        }
    }
}

/// Parse the command line, keeping the relative order of `--send` and `--expect` (clap
/// collects each flag on its own; their indices tell the order).
pub fn parse<I, T>(argv: I) -> Result<args::Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = args::Cli::command().try_get_matches_from(argv)?;
    let mut cli = args::Cli::from_arg_matches(&matches)?;
    let Some((_, sub)) = matches.subcommand() else {
        return Ok(cli);
    };
    let run = match &mut cli.command {
        args::Command::Run(a) => a,
        args::Command::Preflight(a) => &mut a.run,
        args::Command::Coordinator(a) => &mut a.run,
        args::Command::Search(a) => &mut a.run,
        _ => return Ok(cli),
    };
    let mut steps: Vec<(usize, crate::plan::OpenArg)> = Vec::new();
    for (id, send) in [("send", true), ("expect", false)] {
        if let (Some(idx), Some(vals)) = (sub.indices_of(id), sub.get_many::<String>(id)) {
            for (i, v) in idx.zip(vals) {
                steps.push((
                    i,
                    if send {
                        crate::plan::OpenArg::Send(v.clone())
                    } else {
                        crate::plan::OpenArg::Expect(v.clone())
                    },
                ));
            }
        }
    }
    steps.sort_by_key(|(i, _)| *i);
    run.open = steps.into_iter().map(|(_, s)| s).collect();
    Ok(cli)
}

/// Bad input found by a command body (not by clap or the plan): exits [`EXIT_USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// An [`UsageError`] as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// 2 for bad input (a [`PlanError`](crate::plan::PlanError) other than a failed DNS lookup),
/// else 1.
fn exit_code_of(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<UsageError>().is_some() {
        return EXIT_USAGE;
    }
    match e.downcast_ref::<crate::plan::PlanError>() {
        Some(crate::plan::PlanError::Resolve { .. }) | None => EXIT_ERROR,
        Some(_) => EXIT_USAGE,
    }
}

fn dispatch(cli: args::Cli) -> anyhow::Result<i32> {
    match cli.command {
        args::Command::Run(a) => {
            // A profile with `steps` is a sequence of runs (see `progressive`).
            if let Some(p) = crate::plan::build::build_progressive(&a.overrides())? {
                if a.processes.is_some() || a.shard.is_some() || a.start_at.is_some() {
                    return Err(usage(
                        "--processes, --shard and --start-at cannot be combined with a \
                         progressive profile (steps = [...]); run its steps one by one",
                    ));
                }
                if a.metrics_listen.is_some() || a.report_hdr.is_some() {
                    return Err(usage(
                        "--metrics-listen and --report-hdr are not available with a progressive \
                         profile (steps = [...]) yet; run its steps one by one",
                    ));
                }
                return progressive::run_progressive(p, &a);
            }
            let plan = crate::plan::build::build_plan(&a.overrides())?;
            if !plan.targets.is_empty() && !plan.gateway_faults.is_empty() {
                return Err(usage(
                    "--gateway-drop-all-after, --gateway-drop-every and --gateway-stall-after \
                     (or the profile keys gateway_*) inject faults into the embedded gateway, \
                     which runs only without a target; remove the target (or start your gateway \
                     with `wsscale serve --drop-all-after …`)",
                ));
            }
            if plan.handshake.compression.offer().is_some() && !plan.gateway_faults.is_empty() {
                return Err(usage(
                    "the embedded gateway cannot inject faults with --compression (its \
                     permessage-deflate loop has no fault injection); leave one of them out",
                ));
            }
            if a.processes.is_some() || a.shard.is_some() || a.start_at.is_some() {
                return cluster::run_distributed(&a, plan);
            }
            run::run_plan(
                plan,
                a.skip_preflight,
                &a.watch,
                &outputs::LiveOutputs::from_run(&a),
            )
        }
        args::Command::Search(a) => search::search_command(&a),
        args::Command::Preflight(a) => preflight::preflight_command(&a),
        args::Command::Tune(a) => preflight::tune_command(&a),
        args::Command::Serve(a) => match a.processes {
            Some(n) if n > 1 => cluster::serve_processes_command(&a, n),
            _ => serve::serve_command(&a),
        },
        args::Command::Coordinator(a) => cluster::coordinator_command(&a),
        args::Command::Agent(a) => cluster::agent_command(&a),
        args::Command::Report(c) => cluster::report_command(&c),
    }
}
