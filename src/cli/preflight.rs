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
    if args.json {
        let doc = serde_json::to_string_pretty(&render::json(&report))
            .context("cannot serialize the preflight report")?;
        println!("{doc}");
    } else {
        print!("{}", render::table(&report));
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
    if let Some(path) = &args.revert {
        let report = apply::revert(path)?;
        println!("wsscale tune: restoring the values in {}", path.display());
        print!("{}", report.text());
        return Ok(if report.failed() { 1 } else { 0 });
    }
    let role = args.role;
    let n = args.connections.unwrap_or(DEFAULT_CONNECTIONS);
    let lines = tune::assess(role, n);
    print!(
        "{}",
        tune::table(role, n, &lines, args.all, in_initial_netns())
    );
    if let Some(path) = &args.write {
        apply::write_conf(path, &apply::conf_text(role, n, &lines))?;
        println!(
            "\nsysctl.d file written to {} (install it as /etc/sysctl.d/90-wsscale-{role}.conf, \
             then `sudo sysctl --system`)",
            path.display()
        );
    }
    if !args.apply {
        if lines.iter().any(|l| l.state == tune::LineState::Change) {
            println!(
                "\napply now: sudo wsscale tune --role {role} -c {n} --apply   \
                 (saves the current values first)\npersist:   wsscale tune --role {role} -c {n} \
                 --write /etc/sysctl.d/90-wsscale-{role}.conf"
            );
        }
        return Ok(0);
    }
    let backup = args
        .backup
        .clone()
        .unwrap_or_else(|| apply::default_backup_path(role));
    let report = apply::apply(role, n, &lines, &backup)?;
    match &report.backup {
        Some(path) => println!(
            "\nprevious values saved to {}\nrestore with: sudo wsscale tune --revert {}",
            path.display(),
            path.display()
        ),
        None => println!(
            "\nnothing to change from here: every setting that can be changed already meets the \
             recommendation (no backup written)"
        ),
    }
    print!("{}", report.text());
    Ok(if report.failed() { 1 } else { 0 })
}
