//! Per-connection data (`--data FILE.csv`, k6/Gatling feeders) and the process identity
//! (`{agent}`, `{process}`): the values of `{name}` placeholders that differ per connection
//! or per process.
//!
//! # The file
//!
//! CSV with a header row (parsed with the `csv` crate): the header names the columns, each
//! further row is one connection's values. Column names are identifiers (`user`, `room_id`,
//! `api-key`) and may not shadow a built-in placeholder (`conn`, `seq`, `ts`, `marker`, `pad`,
//! `agent`, `process`). An empty file, a file with a header only, a row with more or fewer
//! fields than the header, and a duplicate column are errors that name the file and line.
//!
//! # Which row
//!
//! Connection number `n` (the `{conn}` number) takes row `n mod rows` (`--data-mode
//! round-robin`, the default) or row `n` (`--data-mode unique`: every connection its own
//! row). `unique` is checked when the plan is built: a plan that can open more connections
//! than the file has rows (counted per engine thread, misbehaving connections included), or
//! that re-opens connections without limit (`--reconnect`), is refused before anything
//! connects. Split over processes or agents, each part takes its own contiguous share of the
//! rows (see `cluster::slice_view`), so `unique` stays unique across them.
//!
//! # Where placeholders are filled
//!
//! `{column}`, `{agent}` and `{process}` are filled by [`Fill`] at send time in the upgrade
//! request (URL path and query, headers, `--token`), in JWT claims (before signing) and in
//! every text frame the client sends (first message, `--send`, subscribe frames of the
//! text presets, timed message text, heartbeats). Binary frames (MQTT packets, binary
//! payloads) are sent as they are. A placeholder that is neither a column nor a built-in
//! stays literal text — but with `--data` given, a `{name}` that looks like a column and is
//! not one is refused (a typo would otherwise go out verbatim).
//!
//! `{agent}` is the agent's name (`wsscale agent --name`, e.g. a pod name; the host name for a
//! plain run; `process-N` under `--processes`) and `{process}` its index in the run (0 for a
//! plain run, 0…N−1 under `--processes` and for a coordinator's agents), so one profile serves
//! every pod.

use std::path::{Path, PathBuf};

/// How connections take rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataMode {
    /// Row `n mod rows`.
    #[default]
    RoundRobin,
    /// Row `n`; the file must have a row for every connection the plan can open.
    Unique,
}

impl DataMode {
    pub fn label(self) -> &'static str {
        match self {
            DataMode::RoundRobin => "round-robin",
            DataMode::Unique => "unique",
        }
    }
}

/// `round-robin` or `unique`.
pub fn parse_data_mode(s: &str) -> Result<DataMode, String> {
    match s.trim() {
        "round-robin" => Ok(DataMode::RoundRobin),
        "unique" => Ok(DataMode::Unique),
        other => Err(format!(
            "{other:?} is not a data mode; use round-robin (rows reused in turn) or unique \
             (one row per connection)"
        )),
    }
}

/// Built-in placeholders a column may not be named after.
pub const RESERVED: &[&str] = &["conn", "seq", "ts", "marker", "pad", "agent", "process"];

/// The rows of a `--data` file. Its `Debug` shows the columns and the number of rows, never
/// the values (they may be tokens).
#[derive(Clone, PartialEq, Eq)]
pub struct DataSpec {
    /// The file as given (for messages).
    pub path: PathBuf,
    pub mode: DataMode,
    pub columns: Vec<String>,
    /// At least one row, each with `columns.len()` fields.
    pub rows: Vec<Vec<String>>,
}

impl std::fmt::Debug for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSpec")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("columns", &self.columns)
            .field("rows", &format_args!("{} rows", self.rows.len()))
            .finish()
    }
}

impl DataSpec {
    /// Read and check a CSV file (see the module docs).
    pub fn load(path: &Path, mode: DataMode) -> Result<DataSpec, String> {
        let text = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the data file {}: {e} (give the path of a CSV file with a header row)",
                path.display()
            )
        })?;
        Self::parse(&text, path, mode)
    }

    /// [`DataSpec::load`] of bytes already read; `path` names them in messages.
    pub fn parse(text: &[u8], path: &Path, mode: DataMode) -> Result<DataSpec, String> {
        let file = path.display();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(text);
        let header = reader
            .headers()
            .map_err(|e| format!("{file}: {}", csv_error(&e)))?
            .clone();
        if header.is_empty() || header.iter().all(|h| h.trim().is_empty()) {
            return Err(format!(
                "{file} is empty: a data file needs a header row naming the columns (e.g. \
                 `user,token`) and one row per connection"
            ));
        }
        let mut columns: Vec<String> = Vec::with_capacity(header.len());
        for (i, h) in header.iter().enumerate() {
            let name = h.trim();
            if !is_identifier(name) {
                return Err(format!(
                    "{file}:1: column {} is named {name:?}; a column name is letters, digits, \
                     `_` or `-`, starting with a letter or `_` (it is used as {{name}})",
                    i + 1
                ));
            }
            if RESERVED.contains(&name) {
                return Err(format!(
                    "{file}:1: column {name:?} would hide the built-in placeholder {{{name}}}; \
                     rename the column"
                ));
            }
            if columns.iter().any(|c| c == name) {
                return Err(format!(
                    "{file}:1: column {name:?} appears twice; give every column its own name"
                ));
            }
            columns.push(name.to_string());
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| format!("{file}: {}", csv_error(&e)))?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        if rows.is_empty() {
            return Err(format!(
                "{file} has a header ({}) but no rows: add one row per connection (or fewer, \
                 reused in turn with --data-mode round-robin)",
                columns.join(",")
            ));
        }
        Ok(DataSpec {
            path: path.to_path_buf(),
            mode,
            columns,
            rows,
        })
    }

    /// The row of connection number `n` (`unique` wraps only past what the plan check
    /// allowed, which a checked plan never reaches).
    pub fn row(&self, n: u64) -> &[String] {
        &self.rows[(n % self.rows.len() as u64) as usize]
    }

    /// This share `[lo, hi)` of the rows (at least one row), for one part of a split run.
    pub fn share(&self, lo: f64, hi: f64) -> DataSpec {
        let n = self.rows.len();
        let a = ((lo * n as f64).floor() as usize).min(n - 1);
        let b = ((hi * n as f64).floor() as usize).clamp(a + 1, n);
        DataSpec {
            rows: self.rows[a..b].to_vec(),
            ..self.clone()
        }
    }
}

fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "line {}: {len} fields where the header has {expected_len}; every row needs one \
             value per column (quote a value that contains a comma: \"a,b\")",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        csv::ErrorKind::Utf8 { pos, .. } => format!(
            "line {}: not UTF-8; save the file as UTF-8",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        _ => e.to_string(),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The names of the `{name}` placeholders in `text` that look like identifiers (JSON such as
/// `{"a":1}` is not one).
pub fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .filter(|name| is_identifier(name))
}

/// `%7Bname%7D` (a URL parser's spelling of `{name}` in a path) back to `{name}`, for
/// identifier names only.
pub fn unescape_placeholders(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("%7B") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        match after.find("%7D") {
            Some(end) if is_identifier(&after[..end]) => {
                out.push('{');
                out.push_str(&after[..end]);
                out.push('}');
                rest = &after[end + 3..];
            }
            _ => {
                out.push_str("%7B");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Who is running this part of the plan: `{agent}` and `{process}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub agent: String,
    pub process: u64,
}

impl Default for Identity {
    /// The host name and process 0: a plain run.
    fn default() -> Self {
        let agent = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        Identity { agent, process: 0 }
    }
}

/// Fills `{column}`, `{agent}` and `{process}` in bytes about to be sent (see the module
/// docs); built once per engine shard.
#[derive(Debug, Clone)]
pub struct Fill {
    data: Option<std::sync::Arc<DataSpec>>,
    agent: String,
    process: String,
}

impl Fill {
    pub fn new(data: Option<std::sync::Arc<DataSpec>>, identity: &Identity) -> Fill {
        Fill {
            data,
            agent: identity.agent.clone(),
            process: identity.process.to_string(),
        }
    }

    fn value(&self, name: &str, conn: u64) -> Option<&str> {
        match name {
            "agent" => Some(&self.agent),
            "process" => Some(&self.process),
            _ => {
                let data = self.data.as_deref()?;
                let i = data.columns.iter().position(|c| c == name)?;
                Some(&data.row(conn)[i])
            }
        }
    }

    /// Append `input` to `out` with the placeholders of connection `conn` filled.
    pub fn apply(&self, input: &[u8], conn: u64, out: &mut Vec<u8>) {
        let mut rest = input;
        while let Some(open) = rest.iter().position(|&b| b == b'{') {
            out.extend_from_slice(&rest[..open]);
            let after = &rest[open + 1..];
            let filled = after
                .iter()
                .take(65)
                .position(|&b| b == b'}')
                .and_then(|close| {
                    let name = std::str::from_utf8(&after[..close]).ok()?;
                    Some((self.value(name, conn)?, close))
                });
            match filled {
                Some((value, close)) => {
                    out.extend_from_slice(value.as_bytes());
                    rest = &after[close + 1..];
                }
                None => {
                    out.push(b'{');
                    rest = after;
                }
            }
        }
        out.extend_from_slice(rest);
    }

    /// `s` with the placeholders of connection `conn` filled.
    pub fn apply_str(&self, s: &str, conn: u64) -> String {
        let mut out = Vec::with_capacity(s.len());
        self.apply(s.as_bytes(), conn, &mut out);
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<DataSpec, String> {
        DataSpec::parse(
            text.as_bytes(),
            Path::new("users.csv"),
            DataMode::RoundRobin,
        )
    }

    #[test]
    fn parses_and_fills() {
        let d = spec("user,token\nalice,t1\nbob,\"t,2\"\n").unwrap();
        assert_eq!(d.columns, ["user", "token"]);
        let fill = Fill::new(
            Some(std::sync::Arc::new(d)),
            &Identity {
                agent: "pod-7".into(),
                process: 3,
            },
        );
        let mut out = Vec::new();
        fill.apply(
            b"GET /ws?u={user}&t={token}&a={agent}&p={process}&c={conn} {\"x\":{}}",
            1,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /ws?u=bob&t=t,2&a=pod-7&p=3&c={conn} {\"x\":{}}"
        );
        assert_eq!(fill.apply_str("{user}", 2), "alice");
    }

    #[test]
    fn bad_files_say_what_and_where() {
        assert!(spec("").unwrap_err().contains("is empty"));
        assert!(spec("user,token\n").unwrap_err().contains("no rows"));
        let e = spec("user,token\na,b\nc\n").unwrap_err();
        assert!(
            e.contains("line 3") && e.contains("1 fields where the header has 2"),
            "{e}"
        );
        assert!(spec("user,conn\na,b\n").unwrap_err().contains("built-in"));
        assert!(spec("user,user\na,b\n").unwrap_err().contains("twice"));
        assert!(spec("us er\na\n").unwrap_err().contains("column 1"));
    }

    #[test]
    fn shares_split_the_rows() {
        let d = spec("u\n1\n2\n3\n4\n").unwrap();
        assert_eq!(d.share(0.0, 0.5).rows, [["1"], ["2"]]);
        assert_eq!(d.share(0.5, 1.0).rows, [["3"], ["4"]]);
        let one = spec("u\n1\n").unwrap();
        assert_eq!(one.share(0.5, 1.0).rows.len(), 1);
    }

    #[test]
    fn url_placeholders_are_restored() {
        assert_eq!(
            unescape_placeholders("/p%7Bprocess%7D/%7B%22x%7D?u={user}"),
            "/p{process}/%7B%22x%7D?u={user}"
        );
    }

    #[test]
    fn placeholders_are_identifiers_only() {
        let names: Vec<&str> = placeholders("{user} {\"a\":1} {conn}{x-y}").collect();
        assert_eq!(names, ["user", "conn", "x-y"]);
    }
}
