//! `wsscale run PROGRESSIVE.toml`: run the step profiles of a progressive profile one after
//! the other (see [`crate::plan::build::Progressive`]).
//!
//! Each step goes through the same path as a single run ([`crate::cli::steps::StepRunner`]:
//! fd limits, embedded gateway or target probe, engine) and prints its own summary under a
//! `=== Step i/n: name ===` banner; its thresholds are evaluated and its CSV (if asked for)
//! written right away. Between steps the runner waits `cool_down`, so the gateway (and the
//! kernel's TIME_WAIT sockets) settle before the next load.
//!
//! The sequence stops early on Ctrl-C/SIGTERM (one signal handler for the whole sequence; the
//! interrupted step still reports) and after a step whose thresholds failed, unless
//! `continue_on_fail = true`: escalating the load on a gateway that already failed the
//! lighter step tells little and costs a lot. The combined JSON report
//! (`{ "schema_version": 1, "steps": [...] }`) is rewritten atomically after every step, so
//! it is complete up to the last finished step even if a later step cannot start.
//!
//! Each step is finished like a single run ([`crate::cli::finish`]): thresholds, verdict,
//! summary, CSV. Exit code: the most severe step verdict — 130 when interrupted, else 99 when
//! any step failed a threshold, else 98 when a step without thresholds completed with
//! failures, else 0.

use crate::cli::args::RunArgs;
use crate::cli::finish;
use crate::cli::steps::{StepRunner, write_document};
use crate::metrics::verdict::Status;
use crate::plan::build::Progressive;
use crate::report;

/// How a step ended, for the closing recap.
struct StepResult {
    name: String,
    status: Status,
    thresholds: usize,
    failed: usize,
    interrupted: bool,
}

/// Run every step of `p`; returns the process exit code.
pub fn run_progressive(p: Progressive, args: &RunArgs) -> anyhow::Result<i32> {
    let mut runner = StepRunner::new(args, p.cool_down)?;
    let n = p.steps.len();
    let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    println!(
        "wsscale progressive run: {} ({n} steps: {}; cool-down {})\n",
        p.profile.display(),
        names.join(" → "),
        humantime::format_duration(p.cool_down)
    );

    let mut results: Vec<StepResult> = Vec::with_capacity(n);
    for (i, step) in p.steps.iter().enumerate() {
        let banner = format!(
            "Step {}/{n}: {} ({})",
            i + 1,
            step.name,
            step.profile.display()
        );
        let Some(r) = runner.run(&step.name, &banner, step.plan.clone())? else {
            break;
        };
        write_document(
            p.report_json.as_deref(),
            p.report_html.as_deref(),
            &report::steps_document(runner.reports.clone()),
        )?;
        results.push(StepResult {
            name: step.name.clone(),
            status: r.status,
            thresholds: r.thresholds,
            failed: r.failed,
            interrupted: r.interrupted,
        });
        if r.interrupted {
            break;
        }
        if r.failed > 0 && !p.continue_on_fail && i + 1 < n {
            println!(
                "Step {} failed {} threshold(s): the remaining steps are skipped \
                 (set continue_on_fail = true in {} to run them anyway).\n",
                step.name,
                r.failed,
                p.profile.display()
            );
            break;
        }
    }

    recap(&results, n);
    if let Some(path) = &p.report_json {
        eprintln!(
            "JSON report ({} step(s)) written to {}",
            runner.reports.len(),
            path.display()
        );
    }
    if let Some(path) = &p.report_html {
        eprintln!(
            "HTML report ({} step(s)) written to {}",
            runner.reports.len(),
            path.display()
        );
    }
    let mut worst = finish::worst(results.iter().map(|r| r.status));
    if runner.stopped() {
        worst = Status::Interrupted;
    }
    Ok(worst.exit_code())
}

/// One line per step: ran or skipped, thresholds passed or failed.
fn recap(results: &[StepResult], planned: usize) {
    println!(
        "Progressive run: {} of {planned} step(s) ran",
        results.len()
    );
    for r in results {
        let verdict = if r.interrupted {
            "interrupted".to_string()
        } else if r.thresholds == 0 && r.status == Status::CompletedWithFailures {
            "no thresholds; completed with failures".to_string()
        } else if r.thresholds == 0 {
            "no thresholds; no failures".to_string()
        } else if r.failed == 0 {
            format!("✓ {} threshold(s) passed", r.thresholds)
        } else {
            format!("✗ {} of {} threshold(s) failed", r.failed, r.thresholds)
        };
        println!("  {:<20}{verdict}", r.name);
    }
}
