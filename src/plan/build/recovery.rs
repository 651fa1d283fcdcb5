//! `--message-burst` / `message_burst`, `--disruption-threshold` / `disruption_threshold`
//! and the embedded gateway's faults `--gateway-*` / `gateway_*` (see
//! [`crate::plan::recovery`]).

use super::super::error::PlanError;
use super::super::overrides::Overrides;
use super::super::profile::{Located, Profile};
use super::super::recovery::{
    DEFAULT_DISRUPTION_THRESHOLD as DEFAULT_THRESHOLD, GatewayFaults, MessageBurst,
    parse_disruption_threshold, parse_drop_every, parse_stall_after,
};

/// The burst setting; it adds to timed messages, so it needs `--message-rate`.
pub(super) fn message_burst(
    args: &Overrides,
    p: &Profile,
    messages_on: bool,
) -> Result<Option<MessageBurst>, PlanError> {
    let burst = match (&args.message_burst, &p.message_burst) {
        (Some(b), _) => Located::flag(*b, "--message-burst"),
        (None, Some(l)) => {
            let b = MessageBurst::parse(&l.value).map_err(|e| l.origin.invalid(e))?;
            Located::new(b, l.origin.clone())
        }
        (None, None) => return Ok(None),
    };
    if !messages_on {
        return Err(burst.origin.invalid(
            "bursts come on top of steady timed messages, the baseline their latency is \
             compared with; add --message-rate (e.g. --message-rate 1/s)",
        ));
    }
    Ok(Some(burst.value))
}

/// The drop-wave threshold (a fraction above 0).
pub(super) fn disruption_threshold(args: &Overrides, p: &Profile) -> Result<f64, PlanError> {
    if let Some(v) = args.disruption_threshold {
        return Ok(v);
    }
    match &p.disruption_threshold {
        Some(l) => parse_disruption_threshold(&l.value).map_err(|e| l.origin.invalid(e)),
        None => Ok(DEFAULT_THRESHOLD),
    }
}

/// The embedded gateway's faults: each flag replaces the profile key of the same name.
pub(super) fn gateway_faults(args: &Overrides, p: &Profile) -> Result<GatewayFaults, PlanError> {
    let a = &args.gateway_faults;
    Ok(GatewayFaults {
        drop_all_after: a
            .drop_all_after
            .or(p.gateway_drop_all_after.as_ref().map(|l| l.value)),
        drop_every: match a.drop_every {
            Some(v) => Some(v),
            None => parsed(&p.gateway_drop_every, parse_drop_every)?,
        },
        stall_after: match a.stall_after {
            Some(v) => Some(v),
            None => parsed(&p.gateway_stall_after, parse_stall_after)?,
        },
    })
}

/// A profile string parsed by `parse`, the error at its place in the file.
fn parsed<T>(
    l: &Option<Located<String>>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, PlanError> {
    l.as_ref()
        .map(|l| parse(&l.value).map_err(|e| l.origin.invalid(e)))
        .transpose()
}
