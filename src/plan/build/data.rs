//! `--data FILE.csv` / `data = "FILE.csv"` and `--data-mode` / `data_mode`: load the rows,
//! refuse a `{name}` that is not a column, and check that `unique` has a row for every
//! connection the plan can open (see `plan::data`).

use std::sync::Arc;

use super::super::data::{DataMode, DataSpec, RESERVED, parse_data_mode, placeholders};
use super::super::error::{Origin, PlanError};
use super::super::misbehave::pick;
use super::super::payload::Part;
use super::super::profile::{Located, Profile};
use super::super::session::OpenStep;
use super::super::{Auth, Plan};
use crate::plan::Overrides;

/// The data of the plan, or `None` without `--data` / `data`.
pub(super) fn data(args: &Overrides, p: &Profile) -> Result<Option<(DataSpec, Origin)>, PlanError> {
    let mode = match (&args.data_mode, &p.data_mode) {
        (Some(m), _) => Some(Located::flag(*m, "--data-mode")),
        (None, Some(l)) => Some(Located::new(
            parse_data_mode(&l.value).map_err(|e| l.origin.invalid(e))?,
            l.origin.clone(),
        )),
        (None, None) => None,
    };
    let (path, origin) = match (&args.data, &p.data) {
        (Some(path), _) => (path.clone(), Origin::Flag("--data")),
        (None, Some(l)) => (l.value.clone(), l.origin.clone()),
        (None, None) => {
            return match mode {
                Some(m) => Err(m.origin.invalid(
                    "a data mode needs a data file: give --data FILE.csv (or data = \"FILE.csv\" \
                     in the profile), or leave the mode out",
                )),
                None => Ok(None),
            };
        }
    };
    let mode = mode.map_or(DataMode::default(), |m| m.value);
    let spec = DataSpec::load(&path, mode).map_err(|e| origin.invalid(e))?;
    Ok(Some((spec, origin)))
}

/// Every text of the plan that is sent with its placeholders filled, with where it came from.
fn template_texts(plan: &Plan) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for t in &plan.targets {
        out.push(("the target URL", t.path_and_query.clone()));
    }
    for (k, v) in &plan.handshake.headers {
        out.push(("a header", format!("{k}: {v}")));
    }
    match &plan.handshake.auth {
        Auth::Bearer(t) => out.push(("the token", t.0.clone())),
        Auth::Jwt { claims, .. } => out.push(("the JWT claims", claims.to_string())),
        Auth::None => {}
    }
    let t = &plan.traffic;
    if let Some(m) = &t.first_message {
        out.push(("the first message", String::from_utf8_lossy(m).into_owned()));
    }
    if let Some(m) = t.message.as_ref().and_then(|m| m.text.as_ref()) {
        out.push(("the message text", m.clone()));
    }
    if let Some(h) = &t.heartbeat {
        out.push((
            "the heartbeat",
            String::from_utf8_lossy(&h.text).into_owned(),
        ));
    }
    for step in &t.session.open {
        if let OpenStep::Send(payload) = step {
            for part in &payload.parts {
                if let Part::Lit(b) = part {
                    out.push(("the open sequence", String::from_utf8_lossy(b).into_owned()));
                }
            }
        }
    }
    out
}

/// True when a text of the plan uses `{agent}` or `{process}`.
pub fn uses_identity(plan: &Plan) -> bool {
    template_texts(plan)
        .iter()
        .any(|(_, t)| placeholders(t).any(|n| n == "agent" || n == "process"))
}

/// Refuse `{name}`s that are neither columns nor built-ins, and a `unique` file too short for
/// the plan.
pub(super) fn check(plan: &Plan, spec: &DataSpec, origin: &Origin) -> Result<(), PlanError> {
    for (what, text) in template_texts(plan) {
        for name in placeholders(&text) {
            let known = RESERVED.contains(&name)
                || name.starts_with("now")
                || spec.columns.iter().any(|c| c == name);
            if !known {
                return Err(origin.invalid(format!(
                    "{what} uses {{{name}}}, which is not a column of {} (its columns: {}); fix \
                     the name, or add the column",
                    spec.path.display(),
                    spec.columns.join(", ")
                )));
            }
        }
    }
    if spec.mode == DataMode::Unique {
        if plan.reconnect.is_some() {
            return Err(origin.invalid(
                "--data-mode unique cannot be combined with --reconnect: re-opened connections \
                 would need rows without end; use --data-mode round-robin, or drop --reconnect",
            ));
        }
        let needed = numbers_needed(plan);
        if needed > spec.rows.len() as u64 {
            return Err(origin.invalid(format!(
                "{} has {} rows, but --data-mode unique needs one per connection and this plan \
                 can open {needed} (its stage targets{}, spread over {} engine thread(s)); add \
                 rows, lower the connections, or use --data-mode round-robin",
                spec.path.display(),
                spec.rows.len(),
                if plan.misbehave.is_empty() {
                    ""
                } else {
                    " and the misbehaving connections beside them"
                },
                plan.threads.max(1)
            )));
        }
    }
    Ok(())
}

/// The highest connection number the plan can use, plus one: each engine thread numbers its
/// connections `thread + threads × j` and opens at most its rounded-up share of the plan's
/// attempts, skipping the numbers chosen to misbehave.
fn numbers_needed(plan: &Plan) -> u64 {
    // The sum of the stage targets' increases (without reconnects, every attempt is one).
    let mut level = 0u64;
    let mut attempts = 0u64;
    for s in &plan.stages {
        attempts = attempts.saturating_add(s.target.saturating_sub(level));
        level = s.target;
    }
    let threads = plan.threads.max(1) as u64;
    let share = attempts.div_ceil(threads);
    let mut needed = 0;
    for s in 0..threads {
        let (mut normal, mut j) = (0u64, 0u64);
        let mut last = None;
        while normal < share {
            let n = s + threads * j;
            if pick(&plan.misbehave, n) == 0 {
                normal += 1;
            }
            last = Some(n);
            j += 1;
        }
        if let Some(n) = last {
            needed = needed.max(n + 1);
        }
    }
    needed
}

/// Put the loaded data into the plan.
pub(super) fn attach(plan: &mut Plan, loaded: Option<(DataSpec, Origin)>) -> Result<(), PlanError> {
    if let Some((spec, origin)) = loaded {
        check(plan, &spec, &origin)?;
        plan.data = Some(Arc::new(spec));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Stage, Target};

    fn plan(threads: usize, target: u64) -> Plan {
        let mut p = Plan::with_defaults(
            vec![Target::ws("127.0.0.1:9".parse().unwrap(), "/")],
            vec![Stage {
                duration: std::time::Duration::from_secs(1),
                target,
            }],
        );
        p.threads = threads;
        p
    }

    #[test]
    fn numbers_needed_counts_threads_and_misbehaving_numbers() {
        assert_eq!(numbers_needed(&plan(1, 10)), 10);
        // Two threads: 0,2,…,8 and 1,3,…,9.
        assert_eq!(numbers_needed(&plan(2, 10)), 10);
        // An odd count: each thread may open its rounded-up share.
        assert_eq!(numbers_needed(&plan(2, 9)), 10);
        let mut p = plan(1, 100);
        p.misbehave = vec![crate::plan::misbehave::parse_misbehave("no-auth:50%").unwrap()];
        let n = numbers_needed(&p);
        assert!((190..=210).contains(&n), "{n}");
    }
}
