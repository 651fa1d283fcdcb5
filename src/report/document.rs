//! Reading a JSON report file back: a single run's report (also a merged or coordinated
//! one), a progressive run's `{ "schema_version": 1, "steps": [...] }` document, or a capacity
//! search's, which has a `search` section beside its `steps` ([`super::search`]).
//!
//! `wsscale report html` and `wsscale report compare` both start here, so they accept the
//! same files and say the same things about a bad one. Each run is kept as its JSON value
//! (for [`super::merge`], which rebuilds a [`RunOutcome`](crate::metrics::RunOutcome) from
//! it) and parsed into the typed [`JsonReport`] that wrote it.

use std::path::Path;

use serde_json::Value;

use super::json::{JsonReport, SCHEMA_VERSION};

/// Why a report file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not JSON: {source}")]
    NotJson {
        file: String,
        source: serde_json::Error,
    },
    #[error(
        "{file}: not a wsscale JSON report ({reason}); give a file written by --report-json or \
         `wsscale report merge`"
    )]
    NotReport { file: String, reason: String },
}

/// One run of a document: its label and report.
#[derive(Debug, Clone)]
pub struct DocumentRun {
    /// `run` for a single report, `step 2/3` for a progressive step.
    pub label: String,
    /// The run's JSON, as read.
    pub value: Value,
    /// The same, typed.
    pub report: JsonReport,
}

/// A report file: one run, or the steps of a progressive run.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it was read from (for messages and titles).
    pub file: String,
    /// True for a progressive run's (or a search's) `steps` document.
    pub progressive: bool,
    /// A capacity search's `search` section.
    pub search: Option<super::search::SearchSection>,
    pub runs: Vec<DocumentRun>,
}

impl Document {
    /// Read and parse a report file.
    pub fn read(path: &Path) -> Result<Document, DocumentError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DocumentError::Read {
            file: file.clone(),
            source,
        })?;
        let value: Value =
            serde_json::from_str(&text).map_err(|source| DocumentError::NotJson {
                file: file.clone(),
                source,
            })?;
        Document::from_value(file, value)
    }

    /// A document from its JSON value; `file` names it in messages.
    pub fn from_value(file: String, value: Value) -> Result<Document, DocumentError> {
        let not_report = |reason: String| DocumentError::NotReport {
            file: file.clone(),
            reason,
        };
        let version = value.get("schema_version").and_then(Value::as_u64);
        if version != Some(u64::from(SCHEMA_VERSION)) {
            return Err(not_report(match version {
                None => "no schema_version".to_string(),
                Some(v) => format!("schema_version {v}, this wsscale reads {SCHEMA_VERSION}"),
            }));
        }
        let search_value = value.get("search").cloned();
        let (progressive, values) = match value.get("steps") {
            Some(Value::Array(steps)) => (true, steps.clone()),
            Some(_) => return Err(not_report("`steps` is not an array".to_string())),
            None => (false, vec![value]),
        };
        if values.is_empty() {
            return Err(not_report("a progressive report without steps".to_string()));
        }
        let search: Option<super::search::SearchSection> = match search_value {
            None => None,
            Some(_) if !progressive => {
                return Err(not_report("a `search` section without `steps`".to_string()));
            }
            Some(v) => {
                Some(serde_json::from_value(v).map_err(|e| not_report(format!("search: {e}")))?)
            }
        };
        let n = values.len();
        let runs = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let row = search.as_ref().and_then(|s| s.steps.get(i));
                let label = if let (Some(s), Some(row)) = (&search, row) {
                    format!("step {}/{n}: {} {}", i + 1, s.vary, row.label)
                } else if progressive {
                    format!("step {}/{n}", i + 1)
                } else {
                    "run".to_string()
                };
                let report: JsonReport = serde_json::from_value(value.clone())
                    .map_err(|e| not_report(format!("{label}: {e}")))?;
                Ok(DocumentRun {
                    label,
                    value,
                    report,
                })
            })
            .collect::<Result<Vec<_>, DocumentError>>()?;
        Ok(Document {
            file,
            progressive,
            search,
            runs,
        })
    }
}
