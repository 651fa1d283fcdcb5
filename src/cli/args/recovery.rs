//! clap definitions of the burst, disruption and fault-injection flags: [`RecoveryArgs`]
//! (part of `wsscale run`) and [`FaultArgs`] (part of `wsscale serve`). See docs/recovery.md.

use std::ffi::OsString;
use std::time::Duration;

use clap::Args;

use crate::gateway::faults::Faults;
use crate::plan::recovery::{
    GatewayFaults, MessageBurst, parse_disruption_threshold, parse_drop_every, parse_jitter,
    parse_stall_after,
};
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
    /// (wsscale serve --drop-all-after; profile key gateway_drop_all_after)
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
    /// The embedded gateway's faults given as flags.
    pub fn gateway_faults(&self) -> GatewayFaults {
        GatewayFaults {
            drop_all_after: self.gateway_drop_all_after,
            drop_every: self.gateway_drop_every,
            stall_after: self.gateway_stall_after,
        }
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
        GatewayFaults {
            drop_all_after: self.drop_all_after,
            drop_every: self.drop_every,
            stall_after: self.stall_after,
        }
        .serve_args()
        .into_iter()
        .map(OsString::from)
        .collect()
    }
}
