//! The step loop's body, shared by progressive runs ([`super::progressive`]) and capacity
//! searches ([`super::search`]): each decides *which* plan runs next; [`StepRunner::run`]
//! runs it the same way for both.
//!
//! A step: wait the cool-down (not before the first step; Ctrl-C ends the wait and the
//! sequence), print the step's banner, run the plan like a single run (fd limits, embedded
//! gateway or target probe, engine — in this process, or over `--processes N` local agent
//! processes), finish it like a single run ([`crate::cli::finish`]: thresholds, verdict,
//! summary, its CSV), and keep its JSON report for the sequence's document, which the caller
//! rewrites atomically after every step ([`write_document`]) so it is complete up to the
//! last finished step even if a later step cannot start.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::args::RunArgs;
use crate::cli::finish::{self, Outputs};
use crate::metrics::RunOutcome;
use crate::metrics::verdict::Status;
use crate::plan::Plan;
use crate::report::json::JsonReport;
use crate::report::{self, write_atomic};

/// How a step ended.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub status: Status,
    /// Thresholds evaluated, and how many of them failed.
    pub thresholds: usize,
    pub failed: usize,
    pub interrupted: bool,
    /// The step's report (also kept in [`StepRunner::reports`]).
    pub report: JsonReport,
}

/// Runs the steps of one sequence (see the module docs).
pub struct StepRunner<'a> {
    args: &'a RunArgs,
    stop: Arc<AtomicBool>,
    cool_down: Duration,
    /// Every finished step's JSON report, in the order the steps ran.
    pub reports: Vec<serde_json::Value>,
}

impl<'a> StepRunner<'a> {
    /// `args` gives `--skip-preflight`, the gateway watch flags and `--processes`;
    /// `cool_down` is the pause before every step but the first.
    pub fn new(args: &'a RunArgs, cool_down: Duration) -> anyhow::Result<StepRunner<'a>> {
        Ok(StepRunner {
            args,
            stop: crate::cli::run::install_signals()?,
            cool_down,
            reports: Vec::new(),
        })
    }

    /// True once Ctrl-C / SIGTERM arrived.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Run one step (see the module docs): `name` names it in the cool-down line, `banner`
    /// is printed above its summary. `None` when the sequence was stopped before the step
    /// started.
    pub fn run(
        &mut self,
        name: &str,
        banner: &str,
        plan: Plan,
    ) -> anyhow::Result<Option<StepResult>> {
        if !self.reports.is_empty() && !self.cool(name) {
            return Ok(None);
        }
        if self.stopped() {
            return Ok(None);
        }
        println!("=== {banner} ===");
        let (plan, mut outcome) = self
            .run_plan(plan)
            .with_context(|| format!("{banner} could not run"))?;
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
        let report = JsonReport::from_outcome(&outcome);
        self.reports
            .push(serde_json::to_value(&report).expect("report structs serialize"));
        Ok(Some(StepResult {
            status: outcome
                .verdict
                .as_ref()
                .map_or(Status::Passed, |v| v.status),
            thresholds: outcome.thresholds.len(),
            failed: outcome.thresholds.iter().filter(|t| !t.passed).count(),
            interrupted: outcome.interrupted,
            report,
        }))
    }

    /// In this process, or over `--processes N`.
    fn run_plan(&self, plan: Plan) -> anyhow::Result<(Plan, RunOutcome)> {
        match self.args.processes {
            Some(n) => {
                crate::cli::cluster::processes_to_outcome(self.args, plan, n, self.stop.clone())
            }
            None => crate::cli::run::run_to_outcome(
                plan,
                self.stop.clone(),
                self.args.skip_preflight,
                &self.args.watch,
            ),
        }
    }

    /// Wait the cool-down before step `next`, waking early on Ctrl-C; false when interrupted.
    fn cool(&self, next: &str) -> bool {
        let d = self.cool_down;
        if d.is_zero() {
            return !self.stopped();
        }
        eprintln!(
            "cooling down for {} before step {next} (Ctrl-C to stop here)",
            humantime::format_duration(d)
        );
        let until = Instant::now() + d;
        while !self.stopped() {
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(100)));
        }
        false
    }
}

/// Write a sequence's JSON document and/or its HTML page (atomically).
pub fn write_document(
    json: Option<&Path>,
    html: Option<&Path>,
    doc: &serde_json::Value,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        let mut bytes =
            serde_json::to_vec_pretty(doc).context("cannot serialize the JSON report")?;
        bytes.push(b'\n');
        write_atomic(path, &bytes)
            .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
    }
    if let Some(path) = html {
        let doc = report::document::Document::from_value(String::new(), doc.clone())
            .context("cannot read back the report")?;
        let page = report::html::render(&doc)?;
        report::html::write_html(path, &page)?;
    }
    Ok(())
}
