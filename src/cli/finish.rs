//! Finishing a run — the one path every run mode ends in (`run`, `--processes`, `--shard`,
//! `coordinator`, each progressive step, `report merge`): evaluate the thresholds, judge the
//! run ([`crate::metrics::verdict`]), print the summary, write the reports, return the exit
//! code.

use std::path::Path;

use anyhow::Context;

use crate::metrics::RunOutcome;
use crate::metrics::verdict::{self, Status};
use crate::plan::Plan;
use crate::plan::threshold::Threshold;
use crate::report;

/// Where a finished run's reports go.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outputs<'a> {
    pub json: Option<&'a Path>,
    pub csv: Option<&'a Path>,
    pub html: Option<&'a Path>,
}

/// Evaluate `thresholds` into `outcome` and judge it.
pub fn conclude(outcome: &mut RunOutcome, thresholds: &[Threshold], allow_failures: bool) {
    outcome.thresholds = crate::metrics::thresholds::evaluate(thresholds, outcome);
    outcome.verdict = Some(verdict::judge(outcome, allow_failures));
}

/// Print the summary of a concluded run and write its reports.
pub fn publish(outcome: &RunOutcome, out: Outputs<'_>) -> anyhow::Result<()> {
    print!("{}", report::summary_text(outcome));
    if let Some(path) = out.json {
        report::write_json(path, outcome)
            .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
        eprintln!("JSON report written to {}", path.display());
    }
    if let Some(path) = out.csv {
        report::write_csv(path, &outcome.timeseries)
            .with_context(|| format!("cannot write the CSV time series to {}", path.display()))?;
        eprintln!("CSV time series written to {}", path.display());
    }
    if let Some(path) = out.html {
        let html = report::html::render_outcome(outcome)?;
        report::html::write_html(path, &html)?;
        eprintln!("HTML report written to {}", path.display());
    }
    Ok(())
}

/// The exit code of a concluded run.
pub fn exit_code(outcome: &RunOutcome) -> i32 {
    outcome
        .verdict
        .as_ref()
        .map_or(verdict::EXIT_PASSED, |v| v.exit_code())
}

/// Conclude, publish and return the exit code of a run of `plan`.
pub fn finish(plan: &Plan, outcome: RunOutcome) -> anyhow::Result<i32> {
    let mut outcome = outcome;
    conclude(&mut outcome, &plan.thresholds, plan.allow_failures);
    publish(
        &outcome,
        Outputs {
            json: plan.report_json.as_deref(),
            csv: plan.report_csv.as_deref(),
            html: plan.report_html.as_deref(),
        },
    )?;
    Ok(exit_code(&outcome))
}

/// The most severe of several verdicts (progressive runs): interrupted, then incomplete,
/// then a failed threshold, then completed with failures, then passed.
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    let rank = |s: Status| match s {
        Status::Passed => 0,
        Status::CompletedWithFailures => 1,
        Status::ThresholdsFailed => 2,
        Status::Incomplete => 3,
        Status::Interrupted => 4,
    };
    statuses
        .into_iter()
        .max_by_key(|s| rank(*s))
        .unwrap_or(Status::Passed)
}
