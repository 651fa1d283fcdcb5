//! Writing report files atomically.
//!
//! A report is first written to a temporary file in the destination's directory (same file
//! system, so the final `rename` is atomic), flushed with `fsync`, then renamed over the
//! destination; the directory is synced afterwards (best effort) so the rename itself
//! survives a crash. A reader — a CI step, a dashboard polling the file, a run interrupted by
//! Ctrl-C in the middle of writing — sees either the old complete file or the new complete
//! file, never a truncated one. On any error the temporary file is removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::json::JsonReport;
use crate::metrics::outcome::RunOutcome;

/// Write `bytes` to `path` atomically: temp file in the same directory, `fsync`, `rename`.
/// An existing file at `path` is replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("report path {} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let (tmp_path, file) = create_temp(&dir, &file_name.to_string_lossy())?;
    let result = fill_and_rename(file, bytes, &tmp_path, path);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }
    // Persist the rename itself; not every platform or file system lets a directory be
    // opened or synced, and the data is already in place, so failures are ignored.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Write and sync the temporary file, close it, and rename it over the destination.
fn fill_and_rename(mut file: File, bytes: &[u8], tmp: &Path, dest: &Path) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, dest)
}

/// Create a new, uniquely named temporary file `.<name>.<random>.tmp` in `dir`.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let mut last_err = None;
    for _ in 0..16 {
        let tmp = dir.join(format!(
            ".{name}.{}-{:08x}.tmp",
            std::process::id(),
            fastrand::u32(..)
        ));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not create a temporary file")))
}

/// Write the JSON report (pretty-printed, trailing newline) to `path` atomically.
///
/// Fields appear in the documented order (the order of the report structs), not sorted.
pub fn write_json(path: &Path, o: &RunOutcome) -> io::Result<()> {
    let mut bytes =
        serde_json::to_vec_pretty(&JsonReport::from_outcome(o)).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The `--checkpoint` sink: rewrites the JSON report (atomically, `complete: false`) every
/// `every` while the run goes on. A failed write is reported once on stderr and retried at
/// the next checkpoint; it never stops the run.
pub struct JsonCheckpoint {
    path: std::path::PathBuf,
    every: std::time::Duration,
    warned: std::sync::atomic::AtomicBool,
}

impl JsonCheckpoint {
    pub fn new(path: &Path, every: std::time::Duration) -> Self {
        JsonCheckpoint {
            path: path.to_path_buf(),
            every,
            warned: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl crate::metrics::outcome::CheckpointSink for JsonCheckpoint {
    fn every(&self) -> std::time::Duration {
        self.every
    }

    fn checkpoint(&self, partial: &RunOutcome) {
        if let Err(e) = write_json(&self.path, partial)
            && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "warning: cannot write the checkpoint to {}: {e} (the run goes on; the final \
                 report is tried at the end)",
                self.path.display()
            );
        }
    }
}
