//! Report destinations, checked before the run instead of after it: a 30-minute run whose
//! `--report-json` directory does not exist, is read-only, or sits on a full disk must fail
//! in its first second, not at its end.
//!
//! For each report file: its directory exists and a file can be created there (a probe file
//! is created and removed — the same directory the atomic writer puts its temp file in), and
//! the file system has room for the report, its checkpoints' temp copies, and a margin.

use std::path::{Path, PathBuf};

use super::{Finding, Status};
use crate::plan::Plan;
use crate::system::human::bytes;

/// Bytes a report needs besides its time series: histograms, per-source rows, agents.
const REPORT_BASE_BYTES: u64 = 4 << 20;
/// Bytes per time-series row (JSON and CSV alike, generously).
const ROW_BYTES: u64 = 1024;

/// The report files `plan` writes, with the flag that names each.
fn destinations(plan: &Plan) -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    if let Some(p) = &plan.report_json {
        out.push(("--report-json", p.clone()));
    }
    if let Some(p) = &plan.report_csv {
        out.push(("--report-csv", p.clone()));
    }
    out
}

/// Bytes one report of `plan` may take: a base plus one row per interval.
pub fn report_bytes(plan: &Plan) -> u64 {
    let interval = plan.interval.as_secs_f64().max(0.001);
    let rows = (plan.duration().as_secs_f64() / interval).ceil() as u64 + 2;
    REPORT_BASE_BYTES + rows * ROW_BYTES
}

/// One finding per report file of `plan` (none when it writes no report).
pub fn report_paths(plan: &Plan) -> Vec<Finding> {
    let need = report_bytes(plan);
    destinations(plan)
        .into_iter()
        .map(|(flag, path)| check(flag, &path, need))
        .collect()
}

fn check(flag: &'static str, path: &Path, need: u64) -> Finding {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut f = Finding {
        check: "report_path",
        name: format!("{flag} {}", path.display()),
        status: Status::Pass,
        scope: "host",
        found: String::new(),
        needed: format!("a writable directory with {} free", bytes(2 * need)),
        why: String::new(),
        fix: Vec::new(),
    };
    if path.is_dir() {
        f.status = Status::Fail;
        f.found = "a directory".into();
        f.why = format!(
            "{flag} names a file to write; {} is a directory",
            path.display()
        );
        f.fix = vec![format!("{flag} {}", path.join("report.json").display())];
        return f;
    }
    if let Err(e) = probe_write(&dir) {
        f.status = Status::Fail;
        f.found = format!("cannot create a file in {}: {e}", dir.display());
        f.why = "the report is written at the end of the run (and checkpointed during it): \
                 finding out then would lose the run"
            .into();
        f.fix = vec![
            format!("mkdir -p {}", dir.display()),
            format!("or give {flag} a path in a writable directory"),
        ];
        return f;
    }
    match free_bytes(&dir) {
        Ok(free) => {
            f.found = format!("writable, {} free", bytes(free));
            // Room for the report and the temp copy of an atomic replace.
            if free < 2 * need {
                f.status = Status::Fail;
                f.why = format!(
                    "a report of this plan takes up to {} (histograms plus one row per \
                     interval), and an atomic replace needs room for two copies",
                    bytes(need)
                );
                f.fix = vec![
                    format!("free space on the file system of {}", dir.display()),
                    format!("or give {flag} a path on another file system"),
                ];
            }
        }
        Err(e) => f.found = format!("writable (free space unknown: {e})"),
    }
    f
}

/// Create and remove a probe file in `dir`.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".wsscale-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// Bytes available to an unprivileged writer on the file system of `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_passes_and_a_missing_one_fails_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let ok = check("--report-json", &dir.path().join("r.json"), 1);
        assert_eq!(ok.status, Status::Pass, "{ok:?}");
        assert!(ok.found.starts_with("writable"), "{}", ok.found);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe removed"
        );

        let missing = dir.path().join("no/such/dir/r.json");
        let bad = check("--report-json", &missing, 1);
        assert_eq!(bad.status, Status::Fail);
        assert!(bad.found.contains("cannot create a file"), "{}", bad.found);
        assert!(bad.fix[0].starts_with("mkdir -p"), "{:?}", bad.fix);

        let is_dir = check("--report-csv", dir.path(), 1);
        assert_eq!(is_dir.status, Status::Fail);
        assert_eq!(is_dir.found, "a directory");
    }

    #[test]
    fn a_file_system_without_room_fails() {
        let dir = tempfile::tempdir().unwrap();
        let huge = check("--report-json", &dir.path().join("r.json"), u64::MAX / 4);
        assert_eq!(huge.status, Status::Fail, "{huge:?}");
        assert!(huge.why.contains("two copies"), "{}", huge.why);
    }
}
