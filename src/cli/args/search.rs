//! clap definition of `wsscale search`: `wsscale run`'s flags plus `--vary`, `--until` and
//! `--bisect`.

use clap::Args;

use super::{RunArgs, threshold};
use crate::plan::search::{Vary, parse_vary};
use crate::plan::threshold::Threshold;

pub const SEARCH_ABOUT: &str =
    "Find the knee: run steps of growing load until one fails, then bisect";

pub const SEARCH_LONG: &str = "\
Capacity search: run the profile (and flags) again and again with one field stepped up —
connections, or the message rate — with a cool-down between steps, stop at the first step
that fails, optionally bisect between the last passing and the first failing value, and
report the knee: the last value that passed, the first that failed, and why.

--vary FIELD=START..END*FACTOR multiplies (connections=1k..64k*2: 1k, 2k, 4k ... 64k);
--vary FIELD=START..END+STEP adds (connections=1k..10k+1k). END is always the last step.
Fields: connections (counts: 500, 1k, 1.5k) and message_rate (rates: 1/s, 1/10s).

--cool-down DUR waits between steps (default: none); --bisect N adds up to N steps after the
scan, each halving the gap between the last passing and the first failing value.

A step passes when its --until thresholds pass; without --until, the profile's thresholds
(and --threshold) judge it, and without any thresholds the default verdict does (a step with
failed or dropped connections, lost messages or a peak below the plan fails).

Every step runs like `wsscale run`: against the embedded gateway when no --target is given
(a profile's [embedded_gateway] can limit it, see profiles/search.toml), against --target,
or over --processes N. --report-json writes one document: { \"schema_version\": 1,
\"search\": {...}, \"steps\": [...] }; `wsscale report html` renders it (docs/search.md).

Exit codes: 0 the search ended with a finding — a knee, or every step passed (the summary
says which); 98 or 99 even the first step failed (its own code: 98 judged by the default
verdict, 99 by thresholds): no passing value in the range; 97 an agent was lost (--processes);
1 a step could not run; 2 bad input; 130 interrupted (the report covers the steps so far).

Examples:
  wsscale search profiles/search.toml --vary connections=500..8k*2 --bisect 3
      the shipped demo: the embedded gateway refuses above 3,000; finds 3000 / 3250
  wsscale search --hold 30s --vary connections=1k..64k*2 --cool-down 30s \\
      --until 'connect_success_rate>=0.999' --until 'handshake_ms.p99<500' \\
      --target ws://10.0.0.5:8080/ws --report-json search.json
      double the connections until the gateway refuses or slows down
  wsscale search profiles/quick.toml --vary message_rate=1/s..64/s*2 \\
      --until 'message_rtt_ms.p99<50' --bisect 2
      how many messages per second per connection before the echo p99 passes 50 ms
  wsscale search --vary connections=5k..40k+5k --processes 4 --allow-failures
      additive steps over four local agent processes
  wsscale search --vary arrival_rate=250/s..4000/s*2 --session-duration exp:2s \
      --max-open 20k --hold 20s --until 'connect_success_rate>=0.99'
      how many new connections per second the gateway accepts (the open model)";

/// Arguments of `wsscale search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The varied field and its values: FIELD=START..END*FACTOR or FIELD=START..END+STEP, in
    /// the field's units (connections=1k..64k*2, connections=1k..10k+1k,
    /// message_rate=1/s..64/s*2, arrival_rate=100/s..3200/s*2)
    #[arg(long, value_name = "FIELD=START..END*FACTOR", value_parser = parse_vary, help_heading = "Search")]
    pub vary: Vary,

    /// A step passes when these hold (threshold grammar, as for --threshold; repeatable);
    /// they replace the profile's thresholds [default: the profile's thresholds and
    /// --threshold; with none, the default verdict]
    #[arg(long = "until", value_name = "EXPR", value_parser = threshold, help_heading = "Search")]
    pub until: Vec<Threshold>,

    /// After the scan found a knee, run up to N more steps halving the gap between the last
    /// passing and the first failing value
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Search")]
    pub bisect: u32,

    #[command(flatten)]
    pub run: RunArgs,
}
