//! The verdict of a finished run, and its exit code — one rule for every run mode
//! (`run`, `--processes`, `--shard`, coordinator, progressive steps, `report merge`).
//!
//! 1. **Interrupted** (Ctrl-C / SIGTERM): `130`, whatever else happened.
//! 1. **Incomplete**: an agent of a distributed run was lost mid-run (killed, its host or
//!    link gone): the merged figures hold its part only up to its last snapshot, so neither
//!    thresholds nor failure counts can be trusted — `97`.
//! 2. **Thresholds given**: they are the verdict. Any failed threshold (or a run stopped by
//!    `--abort-on-fail`, which means one is lost): `99`; all passed: `0`.
//! 3. **No thresholds**: a run that did not do what it was asked — the planned peak was not
//!    reached, a connection attempt failed, an open connection was dropped, or a timed
//!    message was lost, or the gateway gave a misbehaving client (`--misbehave`) a flagged
//!    answer — **completed with failures**: `98`. `--allow-failures` turns that
//!    into `0` (the reasons are still listed). A clean run: `0`.
//!
//! Like Locust (which exits 1 on any failure) and unlike a tool that exits 0 whatever
//! happened: a CI job that runs `wsscale run` without thresholds must not pass a run where
//! nothing connected.

use super::outcome::{AgentOutcome, RunOutcome};

/// Exit code: every threshold passed, or (without thresholds) nothing went wrong.
pub const EXIT_PASSED: i32 = 0;
/// Exit code: the run completed, had no thresholds, and had failures, drops, lost messages or
/// a shortfall against the plan.
pub const EXIT_COMPLETED_WITH_FAILURES: i32 = 98;
/// Exit code: at least one threshold failed (k6's convention).
pub const EXIT_THRESHOLDS: i32 = 99;
/// Exit code: an agent was lost mid-run; the merged figures are incomplete.
pub const EXIT_INCOMPLETE: i32 = 97;
/// Exit code: interrupted by Ctrl-C / SIGTERM (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// What the verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    ThresholdsFailed,
    CompletedWithFailures,
    Incomplete,
    Interrupted,
}

impl Status {
    /// The stable label in the JSON report (`verdict.status`).
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::ThresholdsFailed => "thresholds_failed",
            Status::CompletedWithFailures => "completed_with_failures",
            Status::Incomplete => "incomplete",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            Status::Passed => EXIT_PASSED,
            Status::ThresholdsFailed => EXIT_THRESHOLDS,
            Status::CompletedWithFailures => EXIT_COMPLETED_WITH_FAILURES,
            Status::Incomplete => EXIT_INCOMPLETE,
            Status::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

/// The verdict with the reasons behind it, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    /// Why (empty for a clean pass). With `--allow-failures` a pass can still list what went
    /// wrong.
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn exit_code(&self) -> i32 {
        self.status.exit_code()
    }

    /// One line for the top of the summary: `PASSED`, `FAILED: …`.
    pub fn headline(&self) -> String {
        let what = match self.status {
            Status::Passed if self.reasons.is_empty() => return "PASSED".to_string(),
            Status::Passed => "PASSED (failures allowed by --allow-failures)",
            Status::ThresholdsFailed => "FAILED: a threshold failed",
            Status::CompletedWithFailures => "FAILED: completed with failures",
            Status::Incomplete => "INCOMPLETE: an agent was lost",
            Status::Interrupted => "INTERRUPTED",
        };
        format!("{what} (exit code {})", self.exit_code())
    }
}

/// The peak the plan asked for (the highest stage target).
pub fn planned_peak(o: &RunOutcome) -> u64 {
    o.stages.iter().map(|s| s.target).max().unwrap_or(0)
}

/// Why the run stayed below its planned peak, or `None` when it reached it.
///
/// With rate stages the planned peak is a cap (`--max-open`), not a goal: no shortfall.
/// With churn a slot between two sessions is opening, not lost: the peak of open + opening
/// connections counts.
pub fn shortfall(o: &RunOutcome) -> Option<String> {
    let planned = planned_peak(o);
    let reached = match &o.churn {
        Some(c) if c.has_rate_stages() => return None,
        Some(c) => o.peak_open.max(c.peak_in_use),
        None => o.peak_open,
    };
    if reached >= planned || (o.churn.is_none() && agents_reached_their_share(&o.agents, planned)) {
        return None;
    }
    let c = &o.totals.counters;
    let why = if o.interrupted {
        "the run was interrupted"
    } else if o.aborted_by_threshold {
        "--abort-on-fail stopped the run"
    } else if o.sources_exhausted {
        "the source addresses ran out of local ports"
    } else if c.failed > 0 {
        "connection attempts failed"
    } else if c.dropped > 0 {
        "connections were dropped"
    } else if c.aborted > 0 {
        "connections were still connecting or handshaking when the plan closed them"
    } else {
        "connections did not open as fast as the plan ramped (in-flight cap: --max-pending)"
    };
    Some(format!(
        "peak open {} of the planned {planned}: {why}",
        o.peak_open
    ))
}

/// With agents (a coordinator, `--processes`, `report merge`), whether every one reached its
/// own share of the planned peak and none was lost. The merged peak is the highest sum of
/// the agents' open counts as each last reported them, sampled once per forward: a short
/// peak (a 1 s hold) can fall between two samples of one agent and show as a shortfall the
/// agents never had. Each agent's own peak comes from its own aggregator, which sees every
/// one of its engine snapshots.
fn agents_reached_their_share(agents: &[AgentOutcome], planned: u64) -> bool {
    !agents.is_empty()
        && agents.iter().map(|a| a.planned_connections).sum::<u64>() >= planned
        && agents
            .iter()
            .all(|a| a.lost.is_none() && a.peak_open >= a.planned_connections)
}

/// Judge a finished run whose thresholds (if any) were evaluated into `o.thresholds`.
pub fn judge(o: &RunOutcome, allow_failures: bool) -> Verdict {
    if o.interrupted {
        return Verdict {
            status: Status::Interrupted,
            reasons: vec![
                "interrupted by Ctrl-C / SIGTERM; figures cover the run until then".into(),
            ],
        };
    }
    let lost: Vec<String> = o
        .agents
        .iter()
        .filter_map(|a| {
            a.lost.as_ref().map(|why| {
                format!(
                    "agent {} was lost mid-run ({why}): the merged figures hold its part only up \
                     to its last snapshot",
                    a.name
                )
            })
        })
        .collect();
    if !lost.is_empty() {
        return Verdict {
            status: Status::Incomplete,
            reasons: lost,
        };
    }
    if !o.thresholds.is_empty() || o.aborted_by_threshold {
        let reasons: Vec<String> = o
            .thresholds
            .iter()
            .filter(|t| !t.passed)
            .map(|t| match t.measured {
                Some(v) => format!("threshold {} failed (measured {v})", t.expr),
                None => format!("threshold {} failed (no data)", t.expr),
            })
            .collect();
        let failed = !reasons.is_empty() || o.aborted_by_threshold;
        return Verdict {
            status: if failed {
                Status::ThresholdsFailed
            } else {
                Status::Passed
            },
            reasons,
        };
    }
    let c = &o.totals.counters;
    let mut reasons = Vec::new();
    if let Some(s) = shortfall(o) {
        reasons.push(s);
    }
    for t in o.per_target.iter().filter(|t| t.all_failed()) {
        reasons.push(format!(
            "target {} was down: all {} of its connection attempts failed",
            crate::plan::redact::redact_url(&t.url),
            t.failed
        ));
    }
    if c.failed > 0 {
        reasons.push(format!(
            "{} of {} connection attempts failed",
            c.failed, c.attempted
        ));
    }
    if c.dropped > 0 {
        reasons.push(format!("{} open connections were dropped", c.dropped));
    }
    if c.messages_lost > 0 {
        reasons.push(format!(
            "{} of {} timed messages were lost",
            c.messages_lost, c.messages_sent
        ));
    }
    let flagged = c.misbehave.flagged();
    if flagged > 0 {
        reasons.push(format!(
            "the gateway gave {flagged} of {} misbehaving connections a flagged answer (5xx, \
             timeout, or an upgrade without valid credentials)",
            c.misbehave.count()
        ));
    }
    let status = if reasons.is_empty() || allow_failures {
        Status::Passed
    } else {
        Status::CompletedWithFailures
    };
    Verdict { status, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Gauges, Snapshot};

    fn agent(planned: u64, peak: u64, lost: bool) -> AgentOutcome {
        AgentOutcome::new(
            1,
            "a".into(),
            "h".into(),
            Vec::new(),
            planned,
            peak,
            lost.then(|| "gone".to_string()),
            &Snapshot::default(),
            &Gauges::default(),
        )
    }

    #[test]
    fn agents_are_judged_by_their_own_peak_against_their_share() {
        let both = [agent(2, 2, false), agent(2, 2, false)];
        assert!(agents_reached_their_share(&both, 4));
        let short = [agent(2, 2, false), agent(2, 1, false)];
        assert!(!agents_reached_their_share(&short, 4));
        let lost = [agent(2, 2, false), agent(2, 2, true)];
        assert!(!agents_reached_their_share(&lost, 4));
        // Shares that do not cover the plan (an agent never admitted) are no proof.
        assert!(!agents_reached_their_share(&both[..1], 4));
        assert!(!agents_reached_their_share(&[], 4));
    }
}
