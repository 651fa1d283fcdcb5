//! The `wsscale preflight` and `wsscale tune` command bodies (the logic lives in
//! [`crate::system::preflight`] and [`crate::system::tune`]).
//!
//! Preflight builds the plan exactly as `wsscale run` does, with one difference: a `--target`
//! whose host name does not resolve is not an error here but a failing finding (DNS is one of
//! the things preflight checks), and the other checks still run with that target counted as
//! a destination.
//!
//! Exit codes: preflight 0 (nothing fails) or 2 (something fails); tune 0, or 1 when a write
//! of `--apply`/`--revert` failed.
//!
//! Both write their output through [`Out`]: a reader that goes away (`| head -1`, `| true`)
//! ends the output silently, and the command still finishes with its own exit code (`tune
//! --apply` still applies).

use std::io::{ErrorKind, Write};

use anyhow::Context;

use crate::cli::args::{PreflightArgs, RunArgs, TuneArgs};
use crate::plan::build::build_plan;
use crate::plan::{Plan, PlanError};
use crate::system::host::in_initial_netns;
use crate::system::preflight::{self, Needs, Unresolved, render};
use crate::system::tune::{self, DEFAULT_CONNECTIONS, apply};

/// `wsscale preflight`; returns the exit code.
pub fn preflight_command(args: &PreflightArgs) -> anyhow::Result<i32> {
    let (plan, unresolved) = build_for_preflight(&args.run)?;
    let mut needs = Needs::from_plan(&plan, args.role);
    needs.processes = args.run.processes.unwrap_or(1).max(1);
    let report = preflight::preflight_needs(&plan, needs, &unresolved);
    let mut out = Out::default();
    if args.json {
        let doc = serde_json::to_string_pretty(&render::json(&report))
            .context("cannot serialize the preflight report")?;
        out.print(&format!("{doc}\n"))?;
    } else {
        out.print(&render::table(&report))?;
    }
    Ok(report.exit_code())
}

/// Builds the plan, turning unresolvable `--target` hosts into [`Unresolved`] entries.
fn build_for_preflight(args: &RunArgs) -> anyhow::Result<(Plan, Vec<Unresolved>)> {
    let mut args = args.clone();
    let had_targets = !args.targets.is_empty();
    let mut unresolved = Vec::new();
    loop {
        match build_plan(&args.overrides()) {
            Ok(mut plan) => {
                // All flag targets failed: do not fall back to the profile's or the embedded
                // gateway; the unresolved ones are the destinations.
                if had_targets && args.targets.is_empty() {
                    plan.targets.clear();
                }
                return Ok((plan, unresolved));
            }
            Err(PlanError::Resolve { url, reason }) if args.targets.contains(&url) => {
                args.targets.retain(|t| t != &url);
                unresolved.push(Unresolved { url, reason });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `wsscale tune`; returns the exit code.
pub fn tune_command(args: &TuneArgs) -> anyhow::Result<i32> {
    let mut out = Out::default();
    if let Some(path) = &args.revert {
        let report = apply::revert(path)?;
        out.print(&format!(
            "wsscale tune: restoring the values in {}\n",
            path.display()
        ))?;
        out.print(&report.text())?;
        return Ok(if report.failed() { 1 } else { 0 });
    }
    let role = args.role;
    let n = args.connections.unwrap_or(DEFAULT_CONNECTIONS);
    let lines = tune::assess(role, n);
    out.print(&tune::table(role, n, &lines, args.all, in_initial_netns()))?;
    if let Some(path) = &args.write {
        apply::write_conf(path, &apply::conf_text(role, n, &lines))?;
        out.print(&format!(
            "\nsysctl.d file written to {} (install it as /etc/sysctl.d/90-wsscale-{role}.conf, \
             then `sudo sysctl --system`)\n",
            path.display()
        ))?;
    }
    if !args.apply {
        if lines.iter().any(|l| l.state == tune::LineState::Change) {
            out.print(&format!(
                "\napply now: sudo wsscale tune --role {role} -c {n} --apply   \
                 (saves the current values first)\npersist:   wsscale tune --role {role} -c {n} \
                 --write /etc/sysctl.d/90-wsscale-{role}.conf\n"
            ))?;
        }
        return Ok(0);
    }
    let backup = args
        .backup
        .clone()
        .unwrap_or_else(|| apply::default_backup_path(role));
    let report = apply::apply(role, n, &lines, &backup)?;
    out.print(&match &report.backup {
        Some(path) => format!(
            "\nprevious values saved to {}\nrestore with: sudo wsscale tune --revert {}\n",
            path.display(),
            path.display()
        ),
        None => "\nnothing to change from here: every setting that can be changed already meets \
                 the recommendation (no backup written)\n"
            .to_owned(),
    })?;
    out.print(&report.text())?;
    Ok(if report.failed() { 1 } else { 0 })
}

/// Standard output for command output that may be piped into `head` or `true`: once the
/// reader is gone (`EPIPE`), further output is dropped silently instead of panicking like
/// `println!`, so the command still ends with its own exit code. Other write errors (a full
/// disk) are errors.
#[derive(Default)]
struct Out {
    closed: bool,
}

impl Out {
    fn print(&mut self, text: &str) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(e).context("cannot write to standard output"),
        }
    }
}
