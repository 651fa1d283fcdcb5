//! Changing the host: `tune --apply` (with a backup first), `--revert FILE`, `--write PATH`.
//!
//! - **Backup before change.** `--apply` first writes the current values of exactly the
//!   settings it is about to change to a backup file, in sysctl.d syntax (so `--revert FILE`
//!   and `sysctl -p FILE` both restore it), opened with `create_new` and synced: an existing
//!   file is never overwritten, because it may hold the only copy of the original values.
//! - **Idempotent.** Settings that already meet the recommendation are not written; when
//!   nothing would change, no backup is written and nothing is touched.
//! - **Nothing silently skipped.** A setting that cannot be changed from here — node-wide
//!   while in a child network namespace, read-only, absent — is reported with the reason and
//!   where to change it. A write the kernel refuses, or one that does not read back as
//!   written, is a failure (exit 1).
//! - `--write PATH` writes a complete sysctl.d file for this host (every setting of the role,
//!   with values that never lower the current ones), atomically (temp file + rename).

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::{Line, LineState};
use crate::system::host::{SysctlAccess, in_initial_netns, sysctl_access};
use crate::system::settings::{Role, Scope, scope_of};
use crate::system::sysctl::{
    normalize_value, parse_sysctl_conf, read_sysctl, validate_sysctl_name, write_sysctl,
};

/// What happened to one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written and read back.
    Applied { from: String, to: String },
    /// Already at the wanted value; not written.
    Unchanged,
    /// Cannot be changed from here; the reason says where to do it.
    NotHere(String),
    /// The write failed or did not stick.
    Failed(String),
}

/// One setting's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub outcome: Outcome,
}

/// The result of `--apply` or `--revert`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeReport {
    /// Where the previous values were saved (`--apply` with something to change).
    pub backup: Option<PathBuf>,
    pub changes: Vec<Change>,
}

impl ChangeReport {
    /// True when some write failed (the exit code is then 1).
    pub fn failed(&self) -> bool {
        self.changes
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Failed(_)))
    }

    /// Human-readable lines, one per setting, then a summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let width = self.changes.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.changes {
            let what = match &c.outcome {
                Outcome::Applied { from, to } => format!("set      {from} -> {to}"),
                Outcome::Unchanged => "unchanged".to_owned(),
                Outcome::NotHere(why) => format!("not changed from here: {why}"),
                Outcome::Failed(why) => format!("FAILED   {why}"),
            };
            let _ = writeln!(out, "  {:width$}  {what}", c.name);
        }
        let count = |f: fn(&Outcome) -> bool| self.changes.iter().filter(|c| f(&c.outcome)).count();
        let _ = writeln!(
            out,
            "{} set, {} unchanged, {} not changeable from here, {} failed",
            count(|o| matches!(o, Outcome::Applied { .. })),
            count(|o| matches!(o, Outcome::Unchanged)),
            count(|o| matches!(o, Outcome::NotHere(_))),
            count(|o| matches!(o, Outcome::Failed(_))),
        );
        out
    }
}

/// `./wsscale-sysctl-backup-<role>-<UTC time>.conf`.
pub fn default_backup_path(role: Role) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "now".to_owned());
    PathBuf::from(format!(
        "wsscale-sysctl-backup-{}-{stamp}.conf",
        role.label()
    ))
}

/// The backup file's text: the current values of `lines`, in sysctl.d syntax.
pub fn backup_text(role: Role, n: u64, lines: &[&Line]) -> String {
    let mut out = format!(
        "# wsscale tune backup: values before `wsscale tune --role {role} -c {n} --apply`\n\
         # Restore with: wsscale tune --revert THIS_FILE   (or: sudo sysctl -p THIS_FILE)\n"
    );
    for line in lines {
        if let Some(cur) = &line.current {
            let _ = writeln!(out, "{} = {cur}", line.rec.name);
        }
    }
    out
}

/// Writes `text` to a new file at `path`; fails if it exists.
fn write_new(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::AlreadyExists {
                " (a backup is never overwritten: choose another --backup path)"
            } else {
                ""
            };
            io::Error::new(
                e.kind(),
                format!("cannot create backup {}: {e}{hint}", path.display()),
            )
        })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Writes one setting and reads it back.
fn set(name: &str, from: &str, to: &str) -> Outcome {
    if let Err(e) = write_sysctl(name, to) {
        return Outcome::Failed(e.to_string());
    }
    match read_sysctl(name) {
        Ok(now) if normalize_value(&now) == to => Outcome::Applied {
            from: from.to_owned(),
            to: to.to_owned(),
        },
        Ok(now) => Outcome::Failed(format!(
            "wrote {to:?} but the kernel keeps {:?}",
            normalize_value(&now)
        )),
        Err(e) => Outcome::Failed(format!("written, but cannot read it back: {e}")),
    }
}

/// `--apply`: saves the current values of the settings that would change to `backup`, then
/// writes the recommended values. Fails before touching anything when the backup cannot be
/// written.
pub fn apply(role: Role, n: u64, lines: &[Line], backup: &Path) -> io::Result<ChangeReport> {
    let to_change: Vec<&Line> = lines
        .iter()
        .filter(|l| l.state == LineState::Change)
        .collect();
    let mut report = ChangeReport::default();
    if !to_change.is_empty() {
        write_new(backup, &backup_text(role, n, &to_change))?;
        report.backup = Some(backup.to_path_buf());
    }
    for line in lines {
        let outcome = match &line.state {
            LineState::Ok => Outcome::Unchanged,
            LineState::Change => set(
                line.rec.name,
                line.current.as_deref().unwrap_or(""),
                &line.recommended,
            ),
            LineState::Blocked(why) | LineState::Unknown(why) => Outcome::NotHere(why.clone()),
            LineState::NotApplicable(_) => continue,
            LineState::Denied(why) => {
                Outcome::Failed(format!("not writable by this process: {why}"))
            }
        };
        report.changes.push(Change {
            name: line.rec.name.to_owned(),
            outcome,
        });
    }
    Ok(report)
}

/// `--revert FILE`: restores every `key = value` of a sysctl.d-syntax file (a backup written
/// by `--apply`, or any sysctl.d file), with the same rules as `--apply`.
pub fn revert(path: &Path) -> io::Result<ChangeReport> {
    let text = fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
    let entries = parse_sysctl_conf(&text)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let initial_netns = in_initial_netns();
    let mut report = ChangeReport::default();
    for entry in entries {
        validate_sysctl_name(&entry.key)?;
        let current = read_sysctl(&entry.key).ok().map(|v| normalize_value(&v));
        let outcome = match current {
            Some(cur) if cur == entry.value => Outcome::Unchanged,
            _ if scope_of(&entry.key) == Scope::Node && !initial_netns => Outcome::NotHere(
                "node-wide: restore it on the node, not from this network namespace".to_owned(),
            ),
            None => Outcome::NotHere("not present here".to_owned()),
            Some(cur) => match sysctl_access(&entry.key) {
                SysctlAccess::Writable => set(&entry.key, &cur, &entry.value),
                SysctlAccess::ReadOnly(why) => Outcome::NotHere(why),
                SysctlAccess::Absent => Outcome::NotHere("not present here".to_owned()),
                SysctlAccess::Denied(why) => {
                    Outcome::Failed(format!("not writable by this process: {why}"))
                }
            },
        };
        report.changes.push(Change {
            name: entry.key,
            outcome,
        });
    }
    Ok(report)
}

/// The sysctl.d file `--write` produces for this host.
pub fn conf_text(role: Role, n: u64, lines: &[Line]) -> String {
    let mut out = format!(
        "# wsscale tune --role {role} -c {n}: kernel settings for {n} connections on this host.\n\
         # Values never lower what this host already had. Install as\n\
         # /etc/sysctl.d/90-wsscale-{role}.conf and load with `sudo sysctl --system`.\n\
         # The shipped sysctl/{role}.conf explains every line in detail.\n"
    );
    for line in lines {
        let _ = write!(out, "\n# {}\n", line.rec.why);
        if line.rec.in_file {
            if line.current.is_none() {
                let _ = writeln!(
                    out,
                    "# (not present when this file was written; `-` = ignore if still absent)"
                );
                let _ = writeln!(out, "-{} = {}", line.rec.name, line.recommended);
            } else {
                let _ = writeln!(out, "{} = {}", line.rec.name, line.recommended);
            }
        } else {
            let _ = writeln!(
                out,
                "# {} = {}\n# set by the module, not here: \
                 echo \"options nf_conntrack hashsize={}\" | sudo tee /etc/modprobe.d/wsscale.conf",
                line.rec.name, line.recommended, line.recommended
            );
        }
    }
    out
}

/// `--write PATH`: writes [`conf_text`] atomically (temp file in the same directory, then
/// rename).
pub fn write_conf(path: &Path, text: &str) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file path", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}
