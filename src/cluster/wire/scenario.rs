//! The field scenarios in a [`super::WirePlan`]: `--misbehave` as `(kind, fraction)` pairs
//! and the `--data` rows (which travel with the plan, so agents need no copy of the file).

use serde::{Deserialize, Serialize};

use super::WireError;
use crate::plan::data::{DataSpec, parse_data_mode};
use crate::plan::misbehave::{Misbehave, MisbehaveKind};

/// The rows of `--data` (see `plan::data`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireData {
    pub path: std::path::PathBuf,
    /// `round-robin` or `unique`.
    pub mode: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl WireData {
    pub fn from_spec(d: &DataSpec) -> WireData {
        WireData {
            path: d.path.clone(),
            mode: d.mode.label().to_string(),
            columns: d.columns.clone(),
            rows: d.rows.clone(),
        }
    }

    pub fn to_spec(&self) -> Result<DataSpec, WireError> {
        Ok(DataSpec {
            path: self.path.clone(),
            mode: parse_data_mode(&self.mode).map_err(|_| WireError::Unknown {
                what: "data mode",
                value: self.mode.clone(),
            })?,
            columns: self.columns.clone(),
            rows: self.rows.clone(),
        })
    }
}

pub fn misbehave_to_wire(list: &[Misbehave]) -> Vec<(String, f64)> {
    list.iter()
        .map(|m| (m.kind.label().to_string(), m.fraction))
        .collect()
}

pub fn misbehave_from_wire(list: &[(String, f64)]) -> Result<Vec<Misbehave>, WireError> {
    list.iter()
        .map(|(kind, fraction)| {
            MisbehaveKind::from_label(kind)
                .map(|kind| Misbehave {
                    kind,
                    fraction: *fraction,
                })
                .ok_or_else(|| WireError::Unknown {
                    what: "misbehaviour",
                    value: kind.clone(),
                })
        })
        .collect()
}
