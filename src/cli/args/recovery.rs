//! clap definitions of the burst, disruption and fault-injection flags: [`RecoveryArgs`]
//! (part of `wsscale run`) and [`FaultArgs`] (part of `wsscale serve`). See docs/recovery.md.

use std::ffi::OsString;
use std::time::Duration;

use clap::Args;

use crate::gateway::faults::{Faults, parse_drop_every, parse_stall_after};
use crate::plan::recovery::{MessageBurst, parse_disruption_threshold, parse_jitter};
use crate::plan::units;

/// `wsscale run`: bursts, drop-wave detection, reconnect jitter, and the embedded gateway's
/// fault injection.
#[derive(Debug, Clone, Default, Args)]
pub struct RecoveryArgs {
    /// Every DUR each connection sends N timed messages back to back, on top of
    /// --message-rate (which it needs): 100@10s. Bursts are aligned to the run clock
    /// (DUR, 2×DUR, … after the start) and each connection's burst starts within SPREAD of
    /// that (default DUR/10; ~0s = exactly aligned): 100@10s~500ms. The report gives each
    /// burst's p99 and recovery time (docs/recovery.md)
    #[arg(long, value_name = "N@DUR[~SPREAD]", value_parser = MessageBurst::parse, help_heading = "Recovery")]
    pub message_burst: Option<MessageBurst>,

    /// A drop wave (a disruption in the report) is at least this fraction of the open
    /// connections dropped within one interval: 5%, 0.2 [default: 5%]
    #[arg(long, value_name = "FRACTION", value_parser = parse_disruption_threshold, help_heading = "Recovery")]
    pub disruption_threshold: Option<f64>,

    /// Random part of each reconnect back-off delay: on (half fixed, half random), off
    /// (every dropped connection retries at the same instant: the thundering herd), or a
    /// fraction 0..1; implies --reconnect [default: on]
    #[arg(long, value_name = "on|off|FRACTION", value_parser = parse_jitter, help_heading = "Recovery")]
    pub reconnect_jitter: Option<f64>,

    /// Embedded gateway only (no --target): reset every connection DUR after it started
    /// (wsscale serve --drop-all-after)
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Recovery")]
    pub gateway_drop_all_after: Option<Duration>,

    /// Embedded gateway only: every DUR reset that fraction of the connections: 10s:20%
    /// (wsscale serve --drop-every)
    #[arg(long, value_name = "DUR:FRACTION", value_parser = parse_drop_every, help_heading = "Recovery")]
    pub gateway_drop_every: Option<(Duration, f64)>,

    /// Embedded gateway only: DUR after it started, stop reading, answering and accepting
    /// for FOR: 10s:5s (wsscale serve --stall-after)
    #[arg(long, value_name = "DUR:FOR", value_parser = parse_stall_after, help_heading = "Recovery")]
    pub gateway_stall_after: Option<(Duration, Duration)>,
}

impl RecoveryArgs {
    /// The `wsscale serve` flags of the embedded gateway's faults (empty: none asked).
    pub fn gateway_args(&self) -> Vec<OsString> {
        FaultArgs {
            drop_all_after: self.gateway_drop_all_after,
            drop_every: self.gateway_drop_every,
            stall_after: self.gateway_stall_after,
        }
        .child_args()
    }
}

/// `wsscale serve`: fault injection (SIGUSR1 drops every connection at any time).
#[derive(Debug, Clone, Default, Args)]
pub struct FaultArgs {
    /// Reset every open connection once, DUR after the start (a gateway crash) [default: off]
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration, help_heading = "Fault injection")]
    pub drop_all_after: Option<Duration>,

    /// Every DUR, reset that fraction of the open connections (10s:0.2, 10s:20%)
    /// [default: off]
    #[arg(long, value_name = "DUR:FRACTION", value_parser = parse_drop_every, help_heading = "Fault injection")]
    pub drop_every: Option<(Duration, f64)>,

    /// DUR after the start, stop reading, answering and accepting for FOR (10s:5s): clients'
    /// pings time out [default: off]
    #[arg(long, value_name = "DUR:FOR", value_parser = parse_stall_after, help_heading = "Fault injection")]
    pub stall_after: Option<(Duration, Duration)>,
}

impl FaultArgs {
    /// The gateway's fault schedule.
    pub fn faults(&self) -> Faults {
        Faults {
            drop_all_after: self.drop_all_after,
            drop_every: self.drop_every,
            stall_after: self.stall_after,
            ..Default::default()
        }
    }

    /// The same flags for a `wsscale serve` child.
    pub fn child_args(&self) -> Vec<OsString> {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let mut out: Vec<OsString> = Vec::new();
        if let Some(d) = self.drop_all_after {
            out.extend(["--drop-all-after".into(), ms(d).into()]);
        }
        if let Some((every, f)) = self.drop_every {
            out.extend(["--drop-every".into(), format!("{}:{f}", ms(every)).into()]);
        }
        if let Some((after, stall_for)) = self.stall_after {
            out.extend([
                "--stall-after".into(),
                format!("{}:{}", ms(after), ms(stall_for)).into(),
            ]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_args_parse_back() {
        let a = FaultArgs {
            drop_all_after: Some(Duration::from_millis(1500)),
            drop_every: Some((Duration::from_secs(10), 0.25)),
            stall_after: Some((Duration::from_secs(2), Duration::from_secs(5))),
        };
        let args: Vec<String> = a
            .child_args()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
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
        assert_eq!(parse_drop_every(&args[3]).unwrap(), a.drop_every.unwrap());
        assert_eq!(parse_stall_after(&args[5]).unwrap(), a.stall_after.unwrap());
    }
}
