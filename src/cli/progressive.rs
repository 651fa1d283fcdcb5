//! `wsscale run PROGRESSIVE.toml`: run the step profiles of a progressive profile one after
//! the other (see [`crate::plan::build::Progressive`]).
//!
//! Each step goes through the same path as a single run ([`run_to_outcome`]: fd limits,
//! embedded gateway or target probe, engine) and prints its own summary under a
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::finish::{self, Outputs};
use crate::cli::run::{install_signals, run_to_outcome};
use crate::metrics::verdict::Status;
use crate::plan::build::Progressive;
use crate::report::{self, write_atomic};

/// How a step ended, for the closing recap.
struct StepResult {
    name: String,
    status: Status,
    thresholds: usize,
    failed: usize,
    interrupted: bool,
}

/// Run every step of `p`; returns the process exit code.
pub fn run_progressive(
    p: Progressive,
    skip_preflight: bool,
    watch: &crate::cli::args::WatchArgs,
) -> anyhow::Result<i32> {
    let stop = install_signals()?;
    let n = p.steps.len();
    let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    println!(
        "wsscale progressive run: {} ({n} steps: {}; cool-down {})\n",
        p.profile.display(),
        names.join(" → "),
        humantime::format_duration(p.cool_down)
    );

    let mut reports = Vec::with_capacity(n);
    let mut results: Vec<StepResult> = Vec::with_capacity(n);
    for (i, step) in p.steps.iter().enumerate() {
        if i > 0 && !cool_down(p.cool_down, &stop, &step.name) {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        println!(
            "=== Step {}/{n}: {} ({}) ===",
            i + 1,
            step.name,
            step.profile.display()
        );
        let (plan, mut outcome) =
            run_to_outcome(step.plan.clone(), stop.clone(), skip_preflight, watch)
                .with_context(|| format!("step {} ({}) could not run", i + 1, step.name))?;
        finish::conclude(&mut outcome, &plan.thresholds, plan.allow_failures);
        finish::publish(
            &outcome,
            Outputs {
                json: None,
                csv: plan.report_csv.as_deref(),
                html: None,
            },
        )?;
        println!();
        reports.push(report::to_json(&outcome));
        if let Some(path) = &p.report_json {
            let mut bytes = serde_json::to_vec_pretty(&report::steps_document(reports.clone()))
                .context("cannot serialize the JSON report")?;
            bytes.push(b'\n');
            write_atomic(path, &bytes)
                .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
        }
        if let Some(path) = &p.report_html {
            write_steps_html(path, &reports)?;
        }
        let failed = outcome.thresholds.iter().filter(|t| !t.passed).count();
        results.push(StepResult {
            name: step.name.clone(),
            status: outcome
                .verdict
                .as_ref()
                .map_or(Status::Passed, |v| v.status),
            thresholds: outcome.thresholds.len(),
            failed,
            interrupted: outcome.interrupted,
        });
        if outcome.interrupted {
            break;
        }
        if failed > 0 && !p.continue_on_fail && i + 1 < n {
            println!(
                "Step {} failed {failed} threshold(s): the remaining steps are skipped \
                 (set continue_on_fail = true in {} to run them anyway).\n",
                step.name,
                p.profile.display()
            );
            break;
        }
    }

    recap(&results, n);
    if let Some(path) = &p.report_json {
        eprintln!(
            "JSON report ({} step(s)) written to {}",
            reports.len(),
            path.display()
        );
    }
    if let Some(path) = &p.report_html {
        eprintln!(
            "HTML report ({} step(s)) written to {}",
            reports.len(),
            path.display()
        );
    }
    let mut worst = finish::worst(results.iter().map(|r| r.status));
    if stop.load(Ordering::Relaxed) {
        worst = Status::Interrupted;
    }
    Ok(worst.exit_code())
}

/// The HTML report of the steps so far (rewritten after every step, like the JSON).
fn write_steps_html(path: &std::path::Path, reports: &[serde_json::Value]) -> anyhow::Result<()> {
    let doc = report::document::Document::from_value(
        String::new(),
        report::steps_document(reports.to_vec()),
    )
    .context("cannot read back the steps report")?;
    let html = report::html::render(&doc)?;
    report::html::write_html(path, &html)?;
    Ok(())
}

/// Wait `d` before step `next`, waking early on Ctrl-C; false when interrupted.
fn cool_down(d: Duration, stop: &AtomicBool, next: &str) -> bool {
    if d.is_zero() {
        return !stop.load(Ordering::Relaxed);
    }
    eprintln!(
        "cooling down for {} before step {next} (Ctrl-C to stop here)",
        humantime::format_duration(d)
    );
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
    false
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
