//! Traffic on held connections (pings, heartbeats, first message, timed messages) and
//! thresholds: flags and profile keys merged into [`Traffic`] and the plan's threshold list.
//!
//! Rules worth knowing:
//!
//! - A zero `--ping-interval`, `--heartbeat-interval` or `--message-rate` turns that traffic
//!   off, so a flag can switch off what a profile turned on.
//! - A setting that only refines a kind of traffic (`--ping-timeout`, `--heartbeat-expect`,
//!   `--message-size`, …) without that traffic being on is an error naming both, rather than
//!   silently ignored.
//! - Heartbeat and first-message texts are in payload notation ([`crate::plan::payload`]:
//!   escapes `\r \n \t \0 \\ \@ \xNN \u{…}`, and for heartbeats `binary:`/`hex:`/`base64:`
//!   binary frames); `@FILE` sends a file's bytes as they are. Message templates are not
//!   unescaped (a JSON template may hold `\"`).
//! - `--message-size` is at least [`MIN_MESSAGE_SIZE`] (the engine's latency marker) and at
//!   most the plan's `max_frame` (the echo must be accepted).
//! - Thresholds: the profile's `[thresholds]` first, then every `--threshold`.

use std::time::Duration;

use super::super::error::{Origin, PlanError};
use super::super::profile::{Located, MessageSource, Profile};
use super::super::threshold::Threshold;
use super::super::{HeartbeatSpec, MessageSpec, PingSpec, Traffic};
use super::pick;
use crate::plan::Overrides;

/// Default `--ping-timeout`, `--heartbeat-timeout` and `--message-timeout`.
pub const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--heartbeat-interval`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Default `--message-size`.
pub const MESSAGE_SIZE: u64 = 64;
/// Smallest `--message-size`: the engine's latency marker is 32 bytes.
pub const MIN_MESSAGE_SIZE: u64 = 32;
/// Highest `--message-rate` per connection.
pub const MAX_MESSAGE_RATE: f64 = 100_000.0;

/// Resolve the escapes of the payload notation (`\r \n \t \0 \\ \@ \xNN \u{…}`, see
/// [`crate::plan::payload`]) in a text. A bad escape, or a trailing `\`, is an error.
pub fn unescape(s: &str) -> Result<String, String> {
    let p = crate::plan::payload::parse_payload(&format!("text:{s}"), false)?;
    let mut out = Vec::new();
    for part in &p.parts {
        match part {
            crate::plan::payload::Part::Lit(b) => out.extend_from_slice(b),
            // Placeholders stay as written here.
            other => out.extend_from_slice(other.placeholder().unwrap_or_default().as_bytes()),
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 after its escapes"))
}

/// A setting in payload notation (escapes, `text:`/`binary:`, `hex:`, `base64:`): its bytes
/// and whether it is a binary frame; empty is an error.
fn payload(l: Located<String>) -> Result<(Vec<u8>, bool), PlanError> {
    let p =
        crate::plan::payload::parse_payload(&l.value, false).map_err(|m| l.origin.invalid(m))?;
    let mut bytes = Vec::new();
    for part in &p.parts {
        match part {
            crate::plan::payload::Part::Lit(b) => bytes.extend_from_slice(b),
            other => bytes.extend_from_slice(other.placeholder().unwrap_or_default().as_bytes()),
        }
    }
    if bytes.is_empty() {
        return Err(l
            .origin
            .invalid("the text is empty; give some text or leave it out"));
    }
    Ok((bytes, p.frame == crate::plan::payload::FrameType::Binary))
}

/// A text-frame setting in payload notation, as bytes.
fn text(l: Located<String>) -> Result<Vec<u8>, PlanError> {
    let origin = l.origin.clone();
    let (bytes, binary) = payload(l)?;
    if binary {
        return Err(origin.invalid(
            "this is sent as a text frame; for a binary frame use --send binary:… / hex:… \
             (the open sequence)",
        ));
    }
    Ok(bytes)
}

fn positive(l: Option<Located<Duration>>, default: Duration) -> Result<Duration, PlanError> {
    match l {
        Some(l) if l.value.is_zero() => Err(l.origin.invalid(format!(
            "must be longer than 0 (e.g. \"{}\")",
            humantime::format_duration(default)
        ))),
        Some(l) => Ok(l.value),
        None => Ok(default),
    }
}

/// "has no effect without …" for a refining setting given without the traffic it refines.
fn orphan(origin: &Origin, needs: &str) -> PlanError {
    origin.invalid(format!(
        "has no effect without {needs}; add {needs} or remove this setting"
    ))
}

/// "has no effect: … is off" for a flag that refines traffic a zero setting turned off.
fn switched_off(origin: &Origin, what: &str, zero: &Origin) -> PlanError {
    origin.invalid(format!(
        "has no effect: {what} are off ({zero} is 0); remove one of them"
    ))
}

/// The first of these settings that is set.
fn first_set(list: [Option<Origin>; 3]) -> Option<Origin> {
    list.into_iter().flatten().next()
}

fn origin_of<T>(l: &Option<Located<T>>) -> Option<Origin> {
    l.as_ref().map(|l| l.origin.clone())
}

fn flag_origin<T>(v: &Option<T>, flag: &'static str) -> Option<Origin> {
    v.as_ref().map(|_| Origin::Flag(flag))
}

/// A zero interval or rate: the traffic is switched off.
fn zero_origin<T: PartialEq + Default>(l: &Option<Located<T>>) -> Option<Origin> {
    l.as_ref()
        .filter(|l| l.value == T::default())
        .map(|l| l.origin.clone())
}

/// Merge the traffic flags and profile keys.
pub(super) fn traffic(args: &Overrides, p: &Profile, max_frame: u64) -> Result<Traffic, PlanError> {
    Ok(Traffic {
        ping: ping(args, p)?,
        heartbeat: heartbeat(args, p)?,
        first_message: first_message(args, p)?,
        first_message_expect: pick(
            args.first_message_expect.clone(),
            "--first-message-expect",
            &p.first_message_expect,
        )
        .map(text)
        .transpose()?,
        message: message(args, p, max_frame)?,
        // Filled by `build::session` (it needs the targets and the message settings).
        session: Default::default(),
        publishers: publishers(args, p)?,
        push_timestamp: push_timestamp(args, p)?,
        // Filled by `build::recovery` (it needs the message settings).
        message_burst: None,
    })
}

/// `--publishers` / `publishers`: only with timed messages on.
fn publishers(
    args: &Overrides,
    p: &Profile,
) -> Result<Option<crate::plan::push::Publishers>, PlanError> {
    let Some(l) = pick(args.publishers, "--publishers", &p.publishers) else {
        return Ok(None);
    };
    let rate = pick(args.message_rate, "--message-rate", &p.message_rate);
    match rate {
        None => Err(orphan(&l.origin, "--message-rate / message_rate")),
        Some(r) if r.value == 0.0 => Err(switched_off(&l.origin, "timed messages", &r.origin)),
        Some(_) => Ok(Some(l.value)),
    }
}

/// `--push-timestamp` / `push_timestamp`.
fn push_timestamp(
    args: &Overrides,
    p: &Profile,
) -> Result<Option<crate::plan::push::PushTimestamp>, PlanError> {
    if let Some(t) = &args.push_timestamp {
        return Ok(Some(t.clone()));
    }
    p.push_timestamp
        .as_ref()
        .map(|l| crate::plan::push::PushTimestamp::parse(&l.value).map_err(|m| l.origin.invalid(m)))
        .transpose()
}

fn ping(args: &Overrides, p: &Profile) -> Result<Option<PingSpec>, PlanError> {
    let interval = pick(args.ping_interval, "--ping-interval", &p.ping_interval);
    let timeout = pick(args.ping_timeout, "--ping-timeout", &p.ping_timeout);
    if let Some(zero) = zero_origin(&interval) {
        return match flag_origin(&args.ping_timeout, "--ping-timeout") {
            Some(o) => Err(switched_off(&o, "pings", &zero)),
            None => Ok(None),
        };
    }
    let Some(interval) = interval else {
        return match origin_of(&timeout) {
            Some(o) => Err(orphan(&o, "--ping-interval / ping_interval")),
            None => Ok(None),
        };
    };
    Ok(Some(PingSpec {
        interval: interval.value,
        timeout: positive(timeout, TRAFFIC_TIMEOUT)?,
    }))
}

fn heartbeat(args: &Overrides, p: &Profile) -> Result<Option<HeartbeatSpec>, PlanError> {
    let text_l = pick(
        args.heartbeat_text.clone(),
        "--heartbeat-text",
        &p.heartbeat_text,
    );
    let interval = pick(
        args.heartbeat_interval,
        "--heartbeat-interval",
        &p.heartbeat_interval,
    );
    let expect = pick(
        args.heartbeat_expect.clone(),
        "--heartbeat-expect",
        &p.heartbeat_expect,
    );
    let timeout = pick(
        args.heartbeat_timeout,
        "--heartbeat-timeout",
        &p.heartbeat_timeout,
    );
    if let Some(zero) = zero_origin(&interval) {
        let stray = first_set([
            flag_origin(&args.heartbeat_text, "--heartbeat-text"),
            flag_origin(&args.heartbeat_expect, "--heartbeat-expect"),
            flag_origin(&args.heartbeat_timeout, "--heartbeat-timeout"),
        ]);
        return match stray {
            Some(o) => Err(switched_off(&o, "heartbeats", &zero)),
            None => Ok(None),
        };
    }
    let Some(text_l) = text_l else {
        if args.protocol.is_some() {
            // A preset brings its own keep-alive and takes the interval and timeout.
            return Ok(None);
        }
        let stray = first_set([
            origin_of(&interval),
            origin_of(&expect),
            origin_of(&timeout),
        ]);
        return match stray {
            Some(o) => Err(orphan(&o, "--heartbeat-text / heartbeat_text")),
            None => Ok(None),
        };
    };
    let (hb_text, binary) = payload(text_l)?;
    Ok(Some(HeartbeatSpec {
        text: hb_text,
        binary,
        interval: interval.map_or(HEARTBEAT_INTERVAL, |l| l.value),
        expect: expect.map(payload).transpose()?.map(|(b, _)| b),
        timeout: positive(timeout, TRAFFIC_TIMEOUT)?,
    }))
}

fn first_message(args: &Overrides, p: &Profile) -> Result<Option<Vec<u8>>, PlanError> {
    let l = match &args.first_message {
        Some(s) => Some(Located::flag(
            MessageSource::parse(s, None),
            "--first-message",
        )),
        None => p.first_message.clone(),
    };
    let Some(l) = l else { return Ok(None) };
    match l.value {
        MessageSource::Text(t) => text(Located::new(t, l.origin)).map(Some),
        MessageSource::File(path) => {
            let bytes = std::fs::read(&path).map_err(|error| PlanError::Read {
                what: "first message file",
                path: path.clone(),
                error,
            })?;
            if bytes.is_empty() {
                return Err(l.origin.invalid(format!(
                    "{} is empty; the first message needs some content",
                    path.display()
                )));
            }
            Ok(Some(bytes))
        }
    }
}

fn message(
    args: &Overrides,
    p: &Profile,
    max_frame: u64,
) -> Result<Option<MessageSpec>, PlanError> {
    let rate = pick(args.message_rate, "--message-rate", &p.message_rate);
    let size = pick(args.message_size, "--message-size", &p.message_size);
    let template = pick(args.message_text.clone(), "--message-text", &p.message_text);
    let timeout = pick(
        args.message_timeout,
        "--message-timeout",
        &p.message_timeout,
    );
    if let Some(zero) = zero_origin(&rate) {
        let stray = first_set([
            flag_origin(&args.message_size, "--message-size"),
            flag_origin(&args.message_text, "--message-text"),
            flag_origin(&args.message_timeout, "--message-timeout"),
        ]);
        return match stray {
            Some(o) => Err(switched_off(&o, "timed messages", &zero)),
            None => Ok(None),
        };
    }
    let Some(rate) = rate else {
        let stray = first_set([origin_of(&size), origin_of(&template), origin_of(&timeout)]);
        return match stray {
            Some(o) => Err(orphan(&o, "--message-rate / message_rate")),
            None => Ok(None),
        };
    };
    if !rate.value.is_finite() || rate.value > MAX_MESSAGE_RATE {
        return Err(rate.origin.invalid(format!(
            "{} messages per second per connection is more than the engine can time ({MAX_MESSAGE_RATE}/s at most); \
             use more connections for more throughput",
            rate.value
        )));
    }
    let size = match size {
        Some(l) if l.value < MIN_MESSAGE_SIZE => {
            return Err(l.origin.invalid(format!(
                "{} bytes is too small; a timed message carries a {MIN_MESSAGE_SIZE}-byte latency marker, so give at least {MIN_MESSAGE_SIZE} (e.g. 64 or 1KiB)",
                l.value
            )));
        }
        Some(l) if l.value > max_frame => {
            return Err(l.origin.invalid(format!(
                "{} bytes is larger than the largest frame accepted from the server ({max_frame} bytes, --max-frame), so no echo could be received; \
                 lower the size or raise --max-frame",
                l.value
            )));
        }
        Some(l) => l.value,
        None => MESSAGE_SIZE,
    };
    let text = match template {
        Some(l) if l.value.is_empty() => {
            return Err(l
                .origin
                .invalid("the template is empty; give a template like \"{\\\"seq\\\":{seq}}\" or leave it out for binary payloads"));
        }
        Some(l) => Some(l.value),
        None => None,
    };
    Ok(Some(MessageSpec {
        rate: rate.value,
        size: usize::try_from(size).unwrap_or(usize::MAX),
        text,
        timeout: positive(timeout, TRAFFIC_TIMEOUT)?,
    }))
}

/// The profile's `[thresholds]`, then `--threshold`s.
pub(super) fn thresholds(args: &Overrides, p: &Profile) -> Vec<Threshold> {
    p.thresholds
        .iter()
        .map(|l| l.value.clone())
        .chain(args.thresholds.iter().cloned())
        .collect()
}

/// `--abort-on-fail` / `abort_on_fail`; an error when there is nothing to check.
pub(super) fn abort_on_fail(
    args: &Overrides,
    p: &Profile,
    thresholds: &[Threshold],
) -> Result<bool, PlanError> {
    let on = args.abort_on_fail || p.abort_on_fail.as_ref().is_some_and(|l| l.value);
    if on && thresholds.is_empty() {
        let origin = if args.abort_on_fail {
            Origin::Flag("--abort-on-fail")
        } else {
            p.abort_on_fail
                .as_ref()
                .map_or(Origin::Flag("--abort-on-fail"), |l| l.origin.clone())
        };
        return Err(origin.invalid(
            "there is no threshold to check; add --threshold EXPR (or [thresholds] in the profile), e.g. --threshold 'dropped==0'",
        ));
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes() {
        assert_eq!(unescape(r"a\r\nb\tc\\d\@").unwrap(), "a\r\nb\tc\\d@");
        assert_eq!(unescape("plain").unwrap(), "plain");
        assert_eq!(unescape(r"\x41\0\u{20ac}").unwrap(), "A\0€");
        let e = unescape(r"\q").unwrap_err();
        assert!(e.contains(r#"unknown escape "\q""#), "{e}");
        assert!(unescape("end\\").unwrap_err().contains("lone backslash"));
    }
}
