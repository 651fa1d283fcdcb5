//! Reports: the end-of-run text summary and the versioned JSON report, written atomically.
//!
//! Input is a [`RunOutcome`] (filled in by the engine's controller or a coordinator);
//! nothing here measures. The one way back from JSON is [`merge`], which reads reports to
//! merge them. Modules:
//!
//! - [`outcome`] — [`RunOutcome`] / [`SourceOutcome`], the data a run hands over.
//! - [`text`] — [`summary_text`], the aligned human summary.
//! - [`json`] — [`to_json`], the JSON document (`schema_version` [`SCHEMA_VERSION`]), and
//!   [`Percentiles`] (milliseconds from a microsecond HdrHistogram).
//! - [`write`](mod@write) — [`write_atomic`] (temp file + fsync + rename) and [`write_json`].
//! - [`agents`] — the report's `histograms` (serialized, for exact merging) and `agents[]`.
//! - [`merge`] — `wsscale report merge`: several JSON reports → one, exactly.
//! - [`csv`] — [`write_csv`], the time series as CSV (`--report-csv`).
//! - [`thresholds`] — threshold verdicts ([`thresholds::evaluate`]) and the early "already
//!   lost" check for `--abort-on-fail` ([`thresholds::cannot_be_met`]).
//!
//! Reports are a contract: the JSON layout is described by `schema/report-v1.json` and every
//! field by the README (“JSON report fields”); `tests/report.rs` checks a report against both.

pub mod agents;
pub mod csv;
pub mod json;
pub mod merge;
pub mod outcome;
pub mod text;
pub mod thresholds;
pub mod write;

pub use csv::write_csv;

pub use json::{Percentiles, SCHEMA_VERSION, steps_document, to_json};
pub use outcome::{AgentOutcome, IntervalRow, RunOutcome, SourceOutcome, ThresholdOutcome};
pub use text::summary_text;
pub use write::{write_atomic, write_json};
