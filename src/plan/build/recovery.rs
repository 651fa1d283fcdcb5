//! `--message-burst` / `message_burst` and `--disruption-threshold` /
//! `disruption_threshold` (see [`crate::plan::recovery`]).

use super::super::error::PlanError;
use super::super::overrides::Overrides;
use super::super::profile::{Located, Profile};
use super::super::recovery::{
    DEFAULT_DISRUPTION_THRESHOLD as DEFAULT_THRESHOLD, MessageBurst, parse_disruption_threshold,
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
