//! `wsscale search`: a capacity search (issue 13, part 6). The course of the search — which
//! value runs next, when the scan stops, the bisection — is [`crate::plan::search::Search`];
//! each step runs through the same [`StepRunner`] as a progressive run's; the report is
//! [`crate::report::search`].
//!
//! Every scan step's plan is built before the first step runs (a bad value at the far end of
//! the range is found at once, like a bad step of a progressive profile); a bisection step's
//! plan is built when its value is known. Each plan is the profile and flags with the varied
//! field set by `--vary` (as if given by its flag: `-c N` replaces the profile's load shape,
//! `--message-rate R` its rate), judged by `--until` (which replaces the profile's
//! thresholds) when given. Reports: `--report-json` / `--report-html` (or the profile's) are
//! one document for the whole search, rewritten after every step; `--report-csv FILE` is one
//! file per step, `FILE` with `-<field><value>` before the extension.
//!
//! Exit codes (docs/run.md): 0 when the search ended with a finding — a knee, or every step
//! passed; when even the first step failed, that step's own code (99 thresholds, 98 the
//! default verdict): nothing in the range passed; 97 when an agent was lost; 130 when
//! interrupted.

use std::time::Duration;

use anyhow::Context;

use crate::cli::args::SearchArgs;
use crate::cli::steps::{StepRunner, write_document};
use crate::cli::usage;
use crate::metrics::verdict::{EXIT_PASSED, Status};
use crate::plan::Plan;
use crate::plan::build::{build_plan_with, step_path};
use crate::plan::profile::Profile;
use crate::plan::search::{Finding, Phase, Search};
use crate::report::search::{SearchSection, SearchStep, search_document, search_text};

/// Run `wsscale search`; returns the process exit code.
pub fn search_command(a: &SearchArgs) -> anyhow::Result<i32> {
    let run = &a.run;
    if run.shard.is_some() || run.start_at.is_some() {
        return Err(usage(
            "--shard and --start-at cannot be combined with `wsscale search` (it runs many \
             steps); use --processes N to spread each step over local processes",
        ));
    }
    if run.metrics_listen.is_some() || run.report_hdr.is_some() {
        return Err(usage(
            "--metrics-listen and --report-hdr are not available with `wsscale search` yet; \
             run the step that interests you with `wsscale run`",
        ));
    }
    let mut base = run.overrides();
    if let Some(flag) = (a.vary.field.overridden_by)(&base) {
        return Err(usage(format!(
            "{flag} fixes what --vary {} would set ({}); remove {flag} (shape the steps with \
             --ramp/--hold/--ramp-down or the profile instead)",
            a.vary.field.name, a.vary.field.flag
        )));
    }
    let cool_down = base.cool_down.take().unwrap_or(Duration::ZERO);
    let profile = base.profile.as_deref().map(Profile::load).transpose()?;
    if let Some(p) = profile.as_ref().filter(|p| p.steps.is_some()) {
        return Err(usage(format!(
            "{} is a progressive profile (steps = [...]): search one of its step profiles instead",
            p.path.display()
        )));
    }
    if !a.until.is_empty() {
        // Replaces the profile's thresholds (see `plan_for`); given here too so that
        // --abort-on-fail sees thresholds when the plan is built.
        base.thresholds = a.until.clone();
    }

    let mut search = Search::new(a.vary.clone(), a.bisect);
    let scan: Vec<f64> = search.scan().to_vec();
    let first = varied(a, &base, profile.as_ref(), scan[0])?;
    crate::cli::run::check_report_paths(&first)?;
    let (json, html, csv) = (
        first.report_json.clone(),
        first.report_html.clone(),
        first.report_csv.clone(),
    );
    let until: Vec<String> = first.thresholds.iter().map(|t| t.expr.clone()).collect();
    let mut plans = Vec::with_capacity(scan.len());
    for v in &scan {
        plans.push(plan_for(a, &base, profile.as_ref(), *v, csv.as_deref())?);
    }

    let vary = &a.vary;
    let labels: Vec<String> = scan.iter().map(|v| vary.label(*v)).collect();
    println!(
        "wsscale search: {} ({} scan steps: {}; bisect up to {}; cool-down {})\n  each step \
         judged by: {}\n",
        vary,
        scan.len(),
        labels.join(" → "),
        a.bisect,
        humantime::format_duration(cool_down),
        if until.is_empty() {
            "the default verdict (no failures, drops, lost messages or shortfall)".to_string()
        } else {
            until.join(", ")
        }
    );

    let mut section = SearchSection {
        vary: vary.field.name.to_string(),
        range: vary.spec.clone(),
        scan: scan.clone(),
        until,
        bisect: a.bisect,
        cool_down_s: cool_down.as_secs_f64(),
        result: Finding::NotRun.label().to_string(),
        last_pass: None,
        first_fail: None,
        steps: Vec::new(),
    };
    let mut runner = StepRunner::new(run, cool_down)?;
    let mut ended: Option<Status> = None;
    let mut first_status: Option<Status> = None;
    let mut scanned = 0;
    let mut bisected = 0;
    while let Some((value, phase)) = search.next() {
        let (plan, of) = match phase {
            Phase::Scan => {
                scanned += 1;
                (
                    plans[scanned - 1].clone(),
                    format!("scan {scanned}/{}", scan.len()),
                )
            }
            Phase::Bisect => {
                bisected += 1;
                (
                    plan_for(a, &base, profile.as_ref(), value, csv.as_deref())?,
                    format!("bisect {bisected}/{}", a.bisect),
                )
            }
        };
        let k = section.steps.len() + 1;
        let label = vary.label(value);
        let banner = format!("Step {k}: {} = {label} ({of})", vary.field.name);
        let Some(r) = runner.run(&label, &banner, plan)? else {
            break;
        };
        section.steps.push(SearchStep::from_report(
            k,
            value,
            label,
            phase.label(),
            &r.report,
        ));
        first_status.get_or_insert(r.status);
        match r.status {
            Status::Interrupted | Status::Incomplete => {
                ended = Some(r.status);
            }
            s => search.record(value, s == Status::Passed),
        }
        conclude(&mut section, &search, ended);
        write_document(
            json.as_deref(),
            html.as_deref(),
            &search_document(&section, runner.reports.clone()),
        )?;
        if ended.is_some() {
            break;
        }
    }
    if runner.stopped() {
        ended = Some(Status::Interrupted);
    }
    conclude(&mut section, &search, ended);
    if !runner.reports.is_empty() {
        write_document(
            json.as_deref(),
            html.as_deref(),
            &search_document(&section, runner.reports.clone()),
        )
        .context("cannot write the search report")?;
    }

    print!("{}", search_text(&section));
    for (path, what) in [(&json, "JSON"), (&html, "HTML")] {
        if let (Some(p), false) = (path, runner.reports.is_empty()) {
            eprintln!(
                "{what} report ({} step(s)) written to {}",
                runner.reports.len(),
                p.display()
            );
        }
    }
    Ok(match (ended, search.finding()) {
        (Some(s), _) => s.exit_code(),
        (None, Finding::Knee { .. } | Finding::AllPassed { .. }) => EXIT_PASSED,
        (None, Finding::FirstFailed { .. }) => first_status.map_or(EXIT_PASSED, Status::exit_code),
        (None, Finding::NotRun) => Status::Interrupted.exit_code(),
    })
}

/// The plan of the step that runs `value`: [`varied`], without a report of its own but its
/// CSV (`FILE-<field><value>`).
fn plan_for(
    a: &SearchArgs,
    base: &crate::plan::Overrides,
    profile: Option<&Profile>,
    value: f64,
    csv: Option<&std::path::Path>,
) -> anyhow::Result<Plan> {
    let mut plan = varied(a, base, profile, value)?;
    plan.report_json = None;
    plan.report_html = None;
    let name = format!(
        "{}{}",
        a.vary.field.name,
        a.vary.label(value).replace('/', "per")
    );
    plan.report_csv = csv.map(|f| step_path(f, &name));
    Ok(plan)
}

/// The profile and flags with the varied field set to `value`, judged by `--until` when
/// given.
fn varied(
    a: &SearchArgs,
    base: &crate::plan::Overrides,
    profile: Option<&Profile>,
    value: f64,
) -> anyhow::Result<Plan> {
    let mut o = base.clone();
    (a.vary.field.set)(&mut o, value);
    let mut plan = build_plan_with(&o, profile).with_context(|| {
        format!(
            "the step {} = {} (--vary {}) is not a valid plan",
            a.vary.field.name,
            a.vary.label(value),
            a.vary
        )
    })?;
    if !a.until.is_empty() {
        plan.thresholds = a.until.clone();
    }
    Ok(plan)
}

/// The section's finding from where the search stands (`ended`: stopped by an interrupt or
/// a lost agent).
fn conclude(section: &mut SearchSection, search: &Search, ended: Option<Status>) {
    let finding = search.finding();
    let (pass, fail) = match finding {
        Finding::Knee {
            last_pass,
            first_fail,
        } => (Some(last_pass), Some(first_fail)),
        Finding::AllPassed { last_pass } => (Some(last_pass), None),
        Finding::FirstFailed { first_fail } => (None, Some(first_fail)),
        Finding::NotRun => (None, None),
    };
    section.last_pass = pass.and_then(|v| section.point(v));
    section.first_fail = fail.and_then(|v| section.point(v));
    section.result = match ended {
        Some(Status::Incomplete) => "incomplete".to_string(),
        Some(_) => "interrupted".to_string(),
        None => finding.label().to_string(),
    };
}
