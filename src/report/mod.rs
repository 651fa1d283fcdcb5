//! Reports: the end-of-run text summary and the versioned JSON report, written atomically.
//!
//! Input is a [`RunOutcome`](crate::metrics::RunOutcome) (built in `metrics` by the
//! engine's controller, a coordinator or [`merge`]); nothing here measures, and nothing here
//! touches a socket. Modules:
//!
//! - [`text`] — [`summary_text`], the aligned human summary.
//! - [`json`] — [`to_json`], the JSON document (`schema_version` [`SCHEMA_VERSION`]); its
//!   types serialize *and* deserialize, so [`merge`] reads reports with the types that wrote
//!   them.
//! - [`write`](mod@write) — [`write_atomic`] (temp file + fsync + rename) and [`write_json`].
//! - [`agents`] — the report's `histograms` (serialized, for exact merging) and `agents[]`.
//! - [`merge`] — `wsscale report merge`: several JSON reports → one, exactly.
//! - [`compare`] — `wsscale report compare`: two reports side by side, bounds on regressions.
//! - [`churn`](mod@churn) — the summary's Churn section and the live line's churn part.
//! - [`compression`] — the `compression` object and its summary and live lines.
//! - [`misbehave`] — misbehaving clients: `misbehave[]` and the summary's section.
//! - [`csv`] — [`write_csv`], the time series as CSV (`--report-csv`).
//! - [`document`] — a JSON report file read back (one run, a progressive run's steps or a
//!   capacity search).
//! - [`search`] — a capacity search's `search` section, step table and finding.
//! - [`html`] — the self-contained HTML report with charts (`--report-html`,
//!   `wsscale report html`).
//! - [`gateway`](mod@gateway) — the summary's Gateway and Drift sections.
//! - [`live`] — [`LivePrinter`], the live progress line (an
//!   [`IntervalSink`](crate::metrics::timeseries::IntervalSink)).
//! - [`progress`] — the terminal's progress bar of the stage clock (`indicatif`).
//! - [`hdr_log`] — [`hdr_log::HdrLog`], the `--report-hdr` interval log (an interval sink).
//! - [`prometheus`] — [`prometheus::LiveMetrics`], the `--metrics-listen` exposition (also an
//!   interval sink).
//!
//! Reports are a contract: the JSON layout is described by `schema/report-v1.json` and every
//! field by `docs/reports.md`; `tests/report.rs` checks a report against both.

pub mod agents;
pub mod churn;
pub mod compare;
pub mod compression;
pub mod csv;
pub mod document;
pub mod gateway;
pub mod hdr_log;
pub mod html;
pub mod json;
pub mod live;
pub mod merge;
pub mod misbehave;
pub mod progress;
pub mod prometheus;
pub mod recovery;
pub mod search;
pub mod text;
pub mod write;

pub use csv::write_csv;

pub use json::{SCHEMA_VERSION, steps_document, to_json};
pub use live::{LiveMode, LivePrinter};
pub use text::summary_text;
pub use write::{write_atomic, write_json};
