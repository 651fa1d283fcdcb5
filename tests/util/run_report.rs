//! The shared run of the report tests (`tests/report_html.rs`, `tests/report_compare.rs`):
//! one short `wsscale run` against the embedded gateway, with timed messages and pings so
//! every kind of chart and figure has data, made once per test process; and helpers to run
//! the binary and to write variants of its JSON report.
//!
//! Include it with `#[path = "util/run_report.rs"] mod run_report;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

/// The shared run: its directory (kept for the test process), JSON and HTML reports.
pub struct Fixture {
    pub dir: PathBuf,
    pub json: PathBuf,
    pub html: PathBuf,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let json = dir.join("run.json");
        let html = dir.join("run.html");
        let out = Command::new(BIN)
            .args([
                "run",
                "-c",
                "40",
                "--ramp",
                "600ms",
                "--hold",
                "900ms",
                "--ramp-down",
                "200ms",
                "--interval",
                "100ms",
                "--threads",
                "1",
                "--message-rate",
                "10/s",
                "--ping-interval",
                "200ms",
                "--threshold",
                "failed>=0",
                "--report-json",
            ])
            .arg(&json)
            .arg("--report-html")
            .arg(&html)
            .output()
            .expect("the binary runs");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        Fixture { dir, json, html }
    })
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn wsscale(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

pub fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

pub fn write_json(p: &Path, v: &Value) {
    std::fs::write(p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// `(data-chart, data-series, data-points)` of every chart on a page.
/// A copy of the shared report with `edit` applied, written to `name`.
pub fn variant(name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let f = fixture();
    let mut doc = read_json(&f.json);
    edit(&mut doc);
    let p = f.dir.join(name);
    write_json(&p, &doc);
    p
}
