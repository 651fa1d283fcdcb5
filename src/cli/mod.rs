//! Command line: clap definitions ([`args`]), human-unit parsers ([`units`]), and dispatch
//! to the command bodies ([`run`] for `wsscale run`; `wsscale serve` is
//! [`crate::gateway::serve_blocking`]).
//!
//! This is the only place that uses `anyhow`: library errors are typed, and here they become
//! one message on stderr and an exit code (0 completed, 1 could not run, 2 usage error,
//! 130 interrupted).

pub mod args;
pub mod run;
pub mod units;

use clap::Parser;

use crate::gateway::GatewayConfig;

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
            let plan = crate::plan::build::build_plan(&a)?;
            run::run_plan(plan)
        }
        args::Command::Serve(a) => {
            let config = GatewayConfig {
                jwt_secret: a.secret()?,
                max_connections: a.max_connections.map(|n| n as usize),
                echo_delay: a.echo_delay,
            };
            crate::gateway::serve_blocking(a.listen, config, a.threads)?;
            Ok(0)
        }
    }
}
