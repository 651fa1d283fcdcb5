//! Progressive profiles: `steps = ["quick.toml", "medium.toml", "stress.toml"]` runs each
//! step profile in turn, with `cool_down` between steps.
//!
//! [`build_progressive`] builds *every* step's plan before anything runs, so a mistake in the
//! last step is reported before the first one starts. Each step is built exactly as
//! `wsscale run STEP.toml FLAGS…` would be ([`build_plan_with`] with the step profile and the
//! same flags for every step): every flag overrides every step, with the precedence rules of
//! a single run (see the [`build`](super) module docs). In particular the load-shape flags:
//!
//! - `-c N` or `--stage` replace each step's load shape (`-c 5`: every step holds 5);
//! - `--ramp`, `--hold`, `--ramp-down` without `-c` adjust each step's own `connections`
//!   shape (`--ramp 1s --hold 2s`: every step keeps its connection count, ramps for 1s and
//!   holds for 2s), and are an error, naming the step's file, against a step with
//!   `[[stages]]` (give `-c N` as well, or edit the step).
//!
//! Three settings belong to the sequence rather than to a step:
//!
//! - `--cool-down` / `cool_down` is the pause between steps (the flag wins); `--cool-down`
//!   without a progressive profile is an error rather than a silent no-op;
//! - `--report-json` / `report_json` and `--report-html` / `report_html` are one document
//!   each for the whole sequence (written by the runner, `crate::cli::progressive`), so step
//!   plans carry none;
//! - `--report-csv` / `report_csv` becomes one file per step, `FILE` with `-<step>` before
//!   the extension ([`step_path`]); a step profile's own `report_json`/`report_csv` are
//!   ignored.
//!
//! A step that is itself progressive is an error (no nesting).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::Plan;
use super::super::error::{Origin, PlanError};
use super::super::profile::Profile;
use super::build_plan_with;
use crate::plan::Overrides;

/// One step of a progressive run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressiveStep {
    /// The step profile's file stem (`quick`).
    pub name: String,
    /// The step profile's path.
    pub profile: PathBuf,
    pub plan: Plan,
}

/// A validated progressive run.
#[derive(Debug, Clone, PartialEq)]
pub struct Progressive {
    /// The progressive profile's path.
    pub profile: PathBuf,
    pub description: Option<String>,
    pub steps: Vec<ProgressiveStep>,
    /// Pause between two steps (after one step's ramp-down, before the next one's ramp):
    /// `--cool-down`, else the profile's `cool_down`, else none.
    pub cool_down: Duration,
    /// Run the next step even when a step's thresholds failed.
    pub continue_on_fail: bool,
    /// The combined JSON report (`{ "schema_version": 1, "steps": [...] }`).
    pub report_json: Option<PathBuf>,
    /// The HTML report of every step.
    pub report_html: Option<PathBuf>,
}

/// `Some` when `args` names a profile with `steps` (every step's plan built and validated),
/// `None` for an ordinary run (which must not give `--cool-down`).
pub fn build_progressive(args: &Overrides) -> Result<Option<Progressive>, PlanError> {
    let profile = args.profile.as_deref().map(Profile::load).transpose()?;
    match profile {
        Some(p) if p.steps.is_some() => build_progressive_with(args, &p).map(Some),
        _ if args.cool_down.is_some() => Err(Origin::Flag("--cool-down").invalid(
            "it is the pause between the steps of a progressive profile (one with \
             steps = [...], e.g. profiles/progressive.toml), and this run has no steps; \
             remove --cool-down",
        )),
        _ => Ok(None),
    }
}

/// Like [`build_progressive`] with an already parsed profile, which must have `steps`.
pub fn build_progressive_with(args: &Overrides, p: &Profile) -> Result<Progressive, PlanError> {
    let steps_l = p.steps.as_ref().ok_or_else(|| {
        Origin::Flag("PROFILE").invalid(format!(
            "{} has no 'steps'; it is not a progressive profile",
            p.path.display()
        ))
    })?;
    let report_csv = args
        .report_csv
        .clone()
        .or_else(|| p.report_csv.as_ref().map(|l| l.value.clone()));
    let mut step_args = args.clone();
    step_args.report_json = None;
    step_args.report_csv = None;
    step_args.report_html = None;

    let mut steps = Vec::with_capacity(steps_l.value.len());
    for s in &steps_l.value {
        let step = Profile::load(&s.value).map_err(|e| match e {
            PlanError::Read { path, error, .. } => s.origin.invalid(format!(
                "cannot read step profile {}: {error} (step paths are relative to the progressive profile's directory)",
                path.display()
            )),
            other => other,
        })?;
        if step.steps.is_some() {
            return Err(s.origin.invalid(format!(
                "{} is itself a progressive profile; steps cannot be nested, list its steps here instead",
                s.value.display()
            )));
        }
        let name = s.value.file_stem().map_or_else(
            || format!("step{}", steps.len() + 1),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut plan = build_plan_with(&step_args, Some(&step))?;
        plan.report_json = None;
        plan.report_html = None;
        plan.report_csv = report_csv.as_deref().map(|f| step_path(f, &name));
        steps.push(ProgressiveStep {
            name,
            profile: s.value.clone(),
            plan,
        });
    }

    Ok(Progressive {
        profile: p.path.clone(),
        description: p.description.clone(),
        steps,
        cool_down: args
            .cool_down
            .or_else(|| p.cool_down.as_ref().map(|l| l.value))
            .unwrap_or(Duration::ZERO),
        continue_on_fail: p.continue_on_fail.as_ref().is_some_and(|l| l.value),
        report_json: args
            .report_json
            .clone()
            .or_else(|| p.report_json.as_ref().map(|l| l.value.clone())),
        report_html: args
            .report_html
            .clone()
            .or_else(|| p.report_html.as_ref().map(|l| l.value.clone())),
    })
}

/// `dir/ts.csv` + `quick` → `dir/ts-quick.csv` (`ts` → `ts-quick`).
pub fn step_path(file: &Path, step: &str) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match file.extension() {
        Some(ext) => format!("{stem}-{step}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{step}"),
    };
    file.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_paths() {
        assert_eq!(
            step_path(Path::new("out/ts.csv"), "quick"),
            PathBuf::from("out/ts-quick.csv")
        );
        assert_eq!(step_path(Path::new("ts"), "a"), PathBuf::from("ts-a"));
    }
}
