//! [`PlanError`]: everything that can be wrong with a profile or the flags, found before a
//! run starts.
//!
//! Every message says *what* is wrong, *where* (the flag, or `file:line:col` and the key for
//! a profile — see [`Origin`]) and *how to fix it* (an example of valid input or the flag to
//! use instead). Secret values (tokens, JWT keys) never appear in a message: errors about them
//! name the flag, key or file only.

use std::fmt;
use std::path::PathBuf;

use crate::plan::source_spec::SourceError;

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--threads`.
    Flag(&'static str),
    /// A profile key at `path:line:col` (1-based line and column, in characters).
    Profile {
        path: PathBuf,
        line: usize,
        col: usize,
        key: String,
    },
}

impl Origin {
    /// An [`PlanError::Invalid`] for the value set here.
    pub fn invalid(&self, message: impl Into<String>) -> PlanError {
        PlanError::Invalid {
            origin: self.clone(),
            message: message.into(),
        }
    }

    /// `"path:line:col: "` for a profile, `""` for a flag.
    fn prefix(&self) -> String {
        match self {
            Origin::Flag(_) => String::new(),
            Origin::Profile {
                path, line, col, ..
            } => format!("{}:{line}:{col}: ", path.display()),
        }
    }

    /// `--flag` or `'key'`.
    fn name(&self) -> String {
        match self {
            Origin::Flag(f) => (*f).to_string(),
            Origin::Profile { key, .. } => format!("'{key}'"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Profile {
                path,
                line,
                col,
                key,
            } => write!(f, "{}:{line}:{col} ('{key}')", path.display()),
        }
    }
}

/// Why a [`Plan`](super::Plan) could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A file (profile, JWT key or secret) could not be read.
    #[error("cannot read {what} {}: {error} (check the path and its permissions)", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// The profile is not valid TOML, or a key is unknown or has the wrong type.
    /// `at` is `path:line:col`.
    #[error("{at}: {message}")]
    Profile { at: String, message: String },
    /// A value is malformed, out of range or inconsistent with another.
    #[error("{}invalid value for {}: {message}", origin.prefix(), origin.name())]
    Invalid { origin: Origin, message: String },
    /// A target host name did not resolve. `url` is the target as given (callers match it
    /// against their list); the message shows it redacted.
    #[error(
        "cannot resolve the host of target {}: {reason} (check the host name and DNS, or use an IP address)",
        crate::plan::redact::redact_url(.url)
    )]
    Resolve { url: String, reason: String },
    /// A `--source-ip` / `source_ips` entry was rejected by the source-address parser.
    /// The error's own message names the spec and lists the valid forms.
    #[error("{}invalid value for {}: {error}", origin.prefix(), origin.name())]
    Sources {
        origin: Origin,
        spec: String,
        error: Box<SourceError>,
    },
    /// Two settings that cannot be combined.
    #[error("{first} cannot be combined with {second}: {hint}")]
    Conflict {
        first: String,
        second: String,
        hint: String,
    },
    /// Neither a connection count nor stages were given.
    #[error(
        "no load given: pass -c/--connections N (e.g. -c 1k), --stage DUR:TARGET (e.g. --stage 1m:10k), or a profile (e.g. profiles/quick.toml)"
    )]
    NoLoad,
}
