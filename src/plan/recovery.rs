//! Settings of the burst and recovery scenarios: `--message-burst N@DUR[~SPREAD]`,
//! `--disruption-threshold` and `--reconnect-jitter`, with their parsers (shared by the CLI
//! and profiles, so both say the same thing about a bad value).

use std::time::Duration;

use super::units;

/// `--message-burst N@DUR[~SPREAD]`: every `every`, each connection sends `count` timed
/// messages back to back on top of its steady `--message-rate`.
///
/// Bursts are aligned to the run clock: burst `k` (k ≥ 1) is due at `k × every` after the
/// start of the first stage, and each connection starts its burst at a fixed per-connection
/// offset in `[0, spread)` after that. The default spread is a tenth of `every`: a spike the
/// gateway sees as one, without making every connection of every shard fire in the same
/// millisecond (which would measure the load generator's own queue). `~0s` aligns them
/// exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageBurst {
    /// Messages per connection per burst.
    pub count: u32,
    /// Time between bursts.
    pub every: Duration,
    /// Burst starts are spread over this much per burst.
    pub spread: Duration,
}

/// Most messages one burst may ask of one connection.
pub const MAX_BURST: u32 = 10_000;

impl MessageBurst {
    /// Parse `N@DUR` or `N@DUR~SPREAD` (`100@10s`, `50@30s~0s`, `20@5s~200ms`).
    pub fn parse(s: &str) -> Result<MessageBurst, String> {
        const FORM: &str = "write N@DUR or N@DUR~SPREAD, e.g. 100@10s (100 messages every 10 s \
                            per connection) or 100@10s~0s (bursts exactly aligned)";
        let (n, rest) = s
            .trim()
            .split_once('@')
            .ok_or_else(|| format!("'{s}' has no '@'; {FORM}"))?;
        let (every, spread) = match rest.split_once('~') {
            Some((e, sp)) => (e, Some(sp)),
            None => (rest, None),
        };
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("'{n}' is not a message count; {FORM}"))?;
        if count == 0 || count > MAX_BURST {
            return Err(format!(
                "a burst of {count} messages is out of range; give 1 to {MAX_BURST}"
            ));
        }
        let every = units::parse_duration(every).map_err(|e| format!("{e}; {FORM}"))?;
        if every < Duration::from_millis(100) {
            return Err(format!(
                "bursts every {} are too close together; give 100ms or more (for a steady \
                 rate use --message-rate)",
                humantime::format_duration(every)
            ));
        }
        let spread = match spread {
            Some(sp) => units::parse_duration(sp).map_err(|e| format!("{e}; {FORM}"))?,
            None => every / 10,
        };
        if spread >= every {
            return Err(format!(
                "the spread ({}) must be shorter than the time between bursts ({})",
                humantime::format_duration(spread),
                humantime::format_duration(every)
            ));
        }
        Ok(MessageBurst {
            count,
            every,
            spread,
        })
    }
}

/// The default `--disruption-threshold`: 5 % of open connections dropped in one interval.
pub const DEFAULT_DISRUPTION_THRESHOLD: f64 = 0.05;

/// A fraction written `0.05` or `5%`, in `0..=1`.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("'{s}' is not a fraction; write e.g. 0.05 or 5%"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!(
            "'{s}' is out of range; give 0 to 1 (or 0% to 100%)"
        ));
    }
    Ok(v)
}

/// `--disruption-threshold`: a fraction above 0 (`5%`, `0.2`).
pub fn parse_disruption_threshold(s: &str) -> Result<f64, String> {
    let v = parse_fraction(s)?;
    if v <= 0.0 {
        return Err("0 would make every single drop a disruption; give e.g. 5% or 1%".into());
    }
    Ok(v)
}

/// `--reconnect-jitter off|on|FRACTION`: the part of each back-off delay that is random.
/// `off` = 0 (every connection dropped at once retries at the same instant: the thundering
/// herd), `on` = [`DEFAULT_JITTER`] (half fixed, half random), `1` = all random.
pub fn parse_jitter(s: &str) -> Result<f64, String> {
    match s.trim() {
        "off" | "none" => Ok(0.0),
        "on" => Ok(DEFAULT_JITTER),
        other => parse_fraction(other).map_err(|e| format!("{e}, or off / on")),
    }
}

/// The default reconnect jitter: half of each back-off delay is random.
pub const DEFAULT_JITTER: f64 = 0.5;

/// Faults the embedded gateway injects (`--gateway-drop-all-after`, `--gateway-drop-every`,
/// `--gateway-stall-after`, or the same profile keys): passed to its `wsscale serve` child as
/// `--drop-all-after`, `--drop-every`, `--stall-after` (see `gateway::faults`). Only for a
/// run without a target.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GatewayFaults {
    /// Reset every connection once, this long after the gateway started.
    pub drop_all_after: Option<Duration>,
    /// Every `.0`, reset the fraction `.1` of the connections.
    pub drop_every: Option<(Duration, f64)>,
    /// `.0` after the start, stop reading, answering and accepting for `.1`.
    pub stall_after: Option<(Duration, Duration)>,
}

impl GatewayFaults {
    /// True when no fault is asked for.
    pub fn is_empty(&self) -> bool {
        *self == GatewayFaults::default()
    }

    /// The `wsscale serve` flags that ask for these faults.
    pub fn serve_args(&self) -> Vec<String> {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let mut out = Vec::new();
        if let Some(d) = self.drop_all_after {
            out.extend(["--drop-all-after".to_string(), ms(d)]);
        }
        if let Some((every, f)) = self.drop_every {
            out.extend(["--drop-every".to_string(), format!("{}:{f}", ms(every))]);
        }
        if let Some((after, stall_for)) = self.stall_after {
            out.extend([
                "--stall-after".to_string(),
                format!("{}:{}", ms(after), ms(stall_for)),
            ]);
        }
        out
    }
}

/// Parse `DUR:FRACTION` (`10s:0.2`, `10s:20%`) for `--drop-every`.
pub fn parse_drop_every(s: &str) -> Result<(Duration, f64), String> {
    let (d, f) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not DUR:FRACTION; e.g. 10s:0.2 or 10s:20%"))?;
    let every = units::parse_duration(d).map_err(|e| e.to_string())?;
    if every.is_zero() {
        return Err("the period must be longer than 0, e.g. 10s:20%".into());
    }
    let fraction = parse_fraction(f)?;
    Ok((every, fraction))
}

/// Parse `DUR:FOR` (`10s:5s`) for `--stall-after`.
pub fn parse_stall_after(s: &str) -> Result<(Duration, Duration), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not DUR:FOR; e.g. 10s:5s (stall 10 s in, for 5 s)"))?;
    let after = units::parse_duration(a).map_err(|e| e.to_string())?;
    let stall_for = units::parse_duration(b).map_err(|e| e.to_string())?;
    if stall_for.is_zero() {
        return Err("the stall must last longer than 0, e.g. 10s:5s".into());
    }
    Ok((after, stall_for))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_parse() {
        let b = MessageBurst::parse("100@10s").unwrap();
        assert_eq!(
            b,
            MessageBurst {
                count: 100,
                every: Duration::from_secs(10),
                spread: Duration::from_secs(1)
            }
        );
        assert_eq!(
            MessageBurst::parse("5@2s~0s").unwrap().spread,
            Duration::ZERO
        );
        for bad in [
            "100", "x@1s", "0@1s", "10@1", "10@10ms", "10@1s~2s", "10@1s~x",
        ] {
            assert!(MessageBurst::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fault_flags_parse_and_print_back() {
        assert_eq!(
            parse_drop_every("10s:20%").unwrap(),
            (Duration::from_secs(10), 0.2)
        );
        assert!(parse_drop_every("10s").is_err());
        assert!(parse_drop_every("0s:0.5").is_err());
        assert_eq!(
            parse_stall_after("2s:500ms").unwrap(),
            (Duration::from_secs(2), Duration::from_millis(500))
        );
        assert!(parse_stall_after("2s:0s").is_err());
        let f = GatewayFaults {
            drop_all_after: Some(Duration::from_millis(1500)),
            drop_every: Some((Duration::from_secs(10), 0.25)),
            stall_after: Some((Duration::from_secs(2), Duration::from_secs(5))),
        };
        let args = f.serve_args();
        assert_eq!(
            args,
            [
                "--drop-all-after",
                "1500ms",
                "--drop-every",
                "10000ms:0.25",
                "--stall-after",
                "2000ms:5000ms"
            ]
        );
        assert_eq!(parse_drop_every(&args[3]).unwrap(), f.drop_every.unwrap());
        assert_eq!(parse_stall_after(&args[5]).unwrap(), f.stall_after.unwrap());
        assert!(GatewayFaults::default().is_empty());
    }

    #[test]
    fn fractions_and_jitter_parse() {
        assert_eq!(parse_fraction("5%").unwrap(), 0.05);
        assert_eq!(parse_fraction("0.2").unwrap(), 0.2);
        assert!(parse_fraction("120%").is_err());
        assert!(parse_disruption_threshold("0").is_err());
        assert_eq!(parse_jitter("off").unwrap(), 0.0);
        assert_eq!(parse_jitter("on").unwrap(), DEFAULT_JITTER);
        assert_eq!(parse_jitter("25%").unwrap(), 0.25);
        assert!(parse_jitter("lots").unwrap_err().contains("off / on"));
    }
}
