//! The `wsscale run` flags of the field scenarios: misbehaving clients (`--misbehave`) and
//! per-connection data (`--data`, `--data-mode`), flattened into `RunArgs` so the main
//! flag list stays short.

use clap::Args;

/// Misbehaving clients and per-connection data.
#[derive(Debug, Clone, Default, Args)]
pub struct ScenarioArgs {
    /// Per-connection data: a CSV file with a header row; each connection takes a row and
    /// its columns fill {name} placeholders in the URL, headers, --token, JWT claims and
    /// every text frame sent (first message, --send, subscribe topics, message text), e.g.
    /// --data users.csv --target 'ws://gw/ws?user={user}'. {agent} and {process} are filled
    /// everywhere too. See docs/data.md
    #[arg(long, value_name = "FILE.csv", help_heading = "Traffic")]
    pub data: Option<std::path::PathBuf>,

    /// How connections take rows of --data: round-robin (row = connection number mod rows)
    /// or unique (one row per connection; a plan that can open more connections than the
    /// file has rows is refused before it starts) [default: round-robin]
    #[arg(long, value_name = "MODE", value_parser = crate::plan::data::parse_data_mode, help_heading = "Traffic")]
    pub data_mode: Option<crate::plan::data::DataMode>,

    /// Misbehaving clients, repeatable: this fraction of the connections breaks the rules
    /// on purpose (bad-token, no-auth, oversize-frame, malformed-frame, unmasked-frame,
    /// invalid-utf8, slow-reader, abrupt-close), e.g. --misbehave bad-token:5%
    /// --misbehave oversize-frame:0.01. They run beside the normal connections (which still
    /// reach the plan and keep their own figures); the gateway's answer to each is
    /// classified and 5xx or silence is flagged (threshold misbehave.flagged==0). See
    /// docs/misbehave.md
    #[arg(long, value_name = "KIND:FRACTION", value_parser = crate::plan::misbehave::parse_misbehave, help_heading = "Traffic")]
    pub misbehave: Vec<crate::plan::misbehave::Misbehave>,
}
