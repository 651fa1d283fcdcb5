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
//! - [`csv`] — [`write_csv`], the time series as CSV (`--report-csv`).
//! - [`gateway`](mod@gateway) — the summary's Gateway and Drift sections.
//! - [`live`] — [`LivePrinter`], the live progress line (an
//!   [`IntervalSink`](crate::metrics::timeseries::IntervalSink)).
//!
//! Reports are a contract: the JSON layout is described by `schema/report-v1.json` and every
//! field by `docs/reports.md`; `tests/report.rs` checks a report against both.

pub mod agents;
pub mod csv;
pub mod gateway;
pub mod json;
pub mod live;
pub mod merge;
pub mod text;
pub mod write;

pub use csv::write_csv;

pub use json::{SCHEMA_VERSION, steps_document, to_json};
pub use live::{LiveMode, LivePrinter};
pub use text::summary_text;
pub use write::{write_atomic, write_json};
