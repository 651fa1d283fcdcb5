//! Command line: clap definitions ([`args`]), human-unit parsers ([`units`]), and dispatch
//! to the command bodies ([`run`] for `wsscale run`; [`serve`] for `wsscale serve`, which
//! ends in [`crate::gateway::serve_blocking`]; [`cluster`] for `coordinator`, `agent`,
//! `report merge` and the `--processes`/`--shard` branches).
//!
//! This is the only place that uses `anyhow`: library errors are typed, and here they become
//! one message on stderr and an exit code (0 completed, 1 could not run, 2 usage error,
//! 99 a threshold failed, 130 interrupted). A profile with `steps` goes to [`progressive`].

pub mod args;
pub mod cluster;
pub mod preflight;
pub mod progressive;
pub mod run;
pub mod serve;

use clap::Parser;

/// Exit code when the run could not be carried out (bad input, no target reachable).
pub const EXIT_ERROR: i32 = 1;

/// Parse the command line and run; returns the process exit code.
pub fn main() -> i32 {
    let cli = match args::Cli::try_parse() {
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
            EXIT_ERROR
        }
    }
}

fn dispatch(cli: args::Cli) -> anyhow::Result<i32> {
    match cli.command {
        args::Command::Run(a) => {
            // A profile with `steps` is a sequence of runs (see `progressive`).
            if let Some(p) = crate::plan::build::build_progressive(&a.overrides())? {
                return progressive::run_progressive(p, a.skip_preflight);
            }
            let plan = crate::plan::build::build_plan(&a.overrides())?;
            if a.processes.is_some() || a.shard.is_some() || a.start_at.is_some() {
                return cluster::run_distributed(&a, plan);
            }
            run::run_plan(plan, a.skip_preflight)
        }
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
