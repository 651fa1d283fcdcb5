//! The churn and arrival-model flags of `wsscale run` (flattened into `RunArgs`; see
//! `plan::churn` and docs/churn.md).

use clap::Args;

use crate::plan::churn::{SessionDuration, parse_arrival_rate, parse_session_duration};
use crate::plan::units;

/// `--session-duration`, `--session-seed`, `--arrival-rate`, `--max-open`.
#[derive(Debug, Clone, Default, Args)]
pub struct ChurnArgs {
    /// Churn: every connection closes itself (close code 1000) after a session of DUR, and
    /// in a count stage its slot reopens at once. DUR is a duration (30s), uniform:A..B
    /// (uniform:10s..50s) or exp:MEAN (exp:2s, exponential). Counted as churn (opens/s,
    /// closes/s, sessions completed), never as drops.
    /// e.g. -c 10k --session-duration exp:2s  (about 5,000 reconnects per second)
    #[arg(
        long,
        value_name = "DUR|uniform:A..B|exp:MEAN",
        value_parser = parse_session_duration,
        help_heading = "Churn and arrival rate"
    )]
    pub session_duration: Option<SessionDuration>,

    /// Seed of the session-length RNG: the same seed draws the same sessions [default: a
    /// fixed seed]
    #[arg(long, value_name = "N", value_parser = units::parse_count, help_heading = "Churn and arrival rate")]
    pub session_seed: Option<u64>,

    /// Open arrival model: start R new connections per second whatever is open, for --hold
    /// (500/s, 30k/m, 1.5k/s). With --session-duration the open count settles at about
    /// R × mean session (Little's law). Use --stage DUR:R/s for several rates.
    /// e.g. --arrival-rate 500/s --session-duration exp:2s --max-open 2k --hold 1m
    #[arg(
        long,
        value_name = "R",
        value_parser = parse_arrival_rate,
        conflicts_with_all = ["connections", "stages", "ramp", "ramp_down"],
        help_heading = "Churn and arrival rate"
    )]
    pub arrival_rate: Option<f64>,

    /// Cap on connections open (or opening) at once during rate stages; an arrival beyond it
    /// is counted as skipped (churn.arrivals_skipped) [default: with --session-duration twice
    /// R × mean session, else every arrival]
    #[arg(long, value_name = "N", value_parser = units::parse_count, help_heading = "Churn and arrival rate")]
    pub max_open: Option<u64>,
}
