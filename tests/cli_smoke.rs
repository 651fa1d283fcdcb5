//! Smoke tests of the real binary: threshold exit codes (0 / 99 / usage error), the JSON and
//! CSV reports it writes, and a progressive profile. Every run targets the embedded gateway
//! with a handful of connections and sub-second stages; the thresholds are chosen so their
//! verdict does not depend on timing (`failed<0` can never pass, `failed>=0` always does).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

/// `wsscale run -c 20 --ramp 200ms --hold 300ms --ramp-down 100ms EXTRA…`
fn run(extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "-c",
        "20",
        "--ramp",
        "200ms",
        "--hold",
        "300ms",
        "--ramp-down",
        "100ms",
        "--interval",
        "100ms",
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    Command::new(BIN)
        .args(&args)
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn failed_threshold_exits_99_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let csv = dir.path().join("ts.csv");
    let out = run(&[
        "--threshold",
        "failed<0",
        "--threshold",
        "failed>=0",
        "--report-json",
        json.to_str().unwrap(),
        "--report-csv",
        csv.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(99),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Thresholds (1 of 2 FAILED)"), "{stdout}");
    assert!(stdout.contains("✗ failed<0"), "{stdout}");
    assert!(stdout.contains("✓ failed>=0"), "{stdout}");

    let doc = read_json(&json);
    let t = doc["thresholds"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["expr"], "failed<0");
    assert_eq!(t[0]["passed"], false);
    assert_eq!(t[1]["passed"], true);
    assert_eq!(t[0]["measured"], t[1]["measured"]);
    assert_eq!(doc["aborted_by_threshold"], false);

    // The CSV has the JSON's time series: a header and one line per interval.
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv_text.lines().collect();
    assert_eq!(lines[0], wsscale::report::csv::CSV_HEADER);
    assert_eq!(
        lines.len() - 1,
        doc["timeseries"].as_array().unwrap().len(),
        "{csv_text}"
    );
}

#[test]
fn passing_thresholds_exit_0() {
    let out = run(&["--threshold", "failed>=0", "--threshold", "dropped >= 0"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Thresholds (all 2 passed)"), "{stdout}");
}

#[test]
fn unknown_metric_is_a_usage_error_listing_valid_names() {
    let out = run(&["--threshold", "nosuch<1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in [
        "--threshold",
        "unknown metric \"nosuch\"",
        "connect_success_rate",
        "message_rtt_ms",
        "p99",
        "messages.lost_rate",
    ] {
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
}

#[test]
fn bad_profile_threshold_exits_1_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, "connections = 1\n[thresholds]\nnosuch = \"<1\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", p.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("p.toml:3:10"), "{stderr}");
    assert!(stderr.contains("valid metrics:"), "{stderr}");
}

/// A two-step progressive profile of tiny steps.
fn progressive(dir: &Path, first_step_threshold: &str) -> std::path::PathBuf {
    let step = |name: &str, extra: &str| {
        std::fs::write(
            dir.join(name),
            format!(
                "description = \"{name}\"\nconnections = 5\nramp = \"100ms\"\nhold = \"100ms\"\n\
                 ramp_down = \"0s\"\ninterval = \"100ms\"\nthreads = 1\n{extra}"
            ),
        )
        .unwrap();
    };
    step(
        "one.toml",
        &format!("[thresholds]\nfailed = \"{first_step_threshold}\"\n"),
    );
    step("two.toml", "");
    let p = dir.join("prog.toml");
    std::fs::write(
        &p,
        "description = \"two tiny steps\"\nsteps = [\"one.toml\", \"two.toml\"]\ncool_down = \"0s\"\n",
    )
    .unwrap();
    p
}

#[test]
fn progressive_runs_every_step_and_writes_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let prof = progressive(dir.path(), ">=0");
    let json = dir.path().join("steps.json");
    let out = Command::new(BIN)
        .args([
            "run",
            prof.to_str().unwrap(),
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("=== Step 1/2: one"), "{stdout}");
    assert!(stdout.contains("=== Step 2/2: two"), "{stdout}");
    assert!(stdout.contains("2 of 2 step(s) ran"), "{stdout}");
    let doc = read_json(&json);
    assert_eq!(doc["schema_version"], 1);
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["stages"][0]["target"], 5);
    assert_eq!(steps[0]["thresholds"][0]["passed"], true);
}

#[test]
fn progressive_stops_after_a_failed_step_and_exits_99() {
    let dir = tempfile::tempdir().unwrap();
    let prof = progressive(dir.path(), "<0");
    let json = dir.path().join("steps.json");
    let out = Command::new(BIN)
        .args([
            "run",
            prof.to_str().unwrap(),
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(99),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("remaining steps are skipped"), "{stdout}");
    assert!(!stdout.contains("=== Step 2/2"), "{stdout}");
    let doc = read_json(&json);
    assert_eq!(doc["steps"].as_array().unwrap().len(), 1);
    assert_eq!(doc["steps"][0]["thresholds"][0]["passed"], false);
}

#[test]
fn ctrl_c_stops_the_run_and_still_writes_the_report() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "-c",
            "20",
            "--ramp",
            "100ms",
            "--hold",
            "10m",
            "--interval",
            "100ms",
            "--threads",
            "1",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Wait (on the live output, not on a timer) until all 20 connections are open.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("open 20/20") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    // Keep draining stderr so the child never blocks on a full pipe.
    for _ in lines {}
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted runs exit 130");
    let r = read_json(&json);
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["connections"]["established"], 20);
    assert_eq!(
        r["connections"]["closed"], 20,
        "everything was closed before exiting"
    );
}

#[test]
fn unreachable_target_is_exit_1_with_an_explanation() {
    // Bind then drop: nothing listens on that port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(&["--target", &format!("ws://{addr}/ws")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no target is reachable"), "{err}");
    assert!(err.contains(&addr.to_string()), "{err}");
}
