//! The real binary on a progressive profile with load-shape flags: every flag overrides every
//! step, so `wsscale run profiles/progressive.toml -c 3 --ramp 200ms --hold 200ms ...` runs
//! the shipped quick/medium/stress steps in well under a second each, against the embedded
//! gateway.
//!
//! The shipped steps carry latency thresholds (`message_rtt_ms.p99<5`, `<10`, `<20`) that a
//! 200 ms step on a busy machine passes only by luck: with `--message-rate 20/s`, 7 runs in
//! 20 failed one on a loaded 2-core host. The verdicts below are therefore made
//! deterministic rather than lucky: `--message-rate 0` switches timed messages off, so every
//! step's `message_rtt_ms.p99` threshold has no data and fails (a run that measured nothing
//! proves nothing), while `connect_success_rate` passes — exit code 99, for a known reason.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

/// The short shape every step gets, plus `--message-rate 0` (see the module docs).
const SHORT: &[&str] = &[
    "-c",
    "3",
    "--ramp",
    "200ms",
    "--hold",
    "200ms",
    "--ramp-down",
    "0s",
    "--cool-down",
    "0s",
    "--allow-failures",
    "--message-rate",
    "0",
];

fn run(profile: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("run")
        .arg(profile)
        .args(SHORT)
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every step shows the flags' shape, not its own (100 / 1,000 / 5,000 over 10s / 30s / 60s).
fn assert_short_stages(stdout: &str, steps: usize) {
    let ramps = stdout.matches("1. ramp to 3 over 0.2s").count();
    let holds = stdout.matches("2. hold 3 for 0.2s").count();
    assert_eq!((ramps, holds), (steps, steps), "{stdout}");
}

/// `wsscale run profiles/progressive.toml -c 3 --ramp 200ms --hold 200ms --ramp-down 0s
/// --cool-down 0s --allow-failures` was refused (exit 2) before flags applied to every step.
/// Now the first step runs with the flags' shape; its `message_rtt_ms.p99<5` threshold has no
/// data (messages off), so it fails, `--allow-failures` does not apply (thresholds are the
/// verdict), the sequence stops there (the profile has no `continue_on_fail`) and the exit
/// code is exactly 99.
#[test]
fn shipped_progressive_profile_takes_the_shape_flags() {
    // Relative to the crate root (the working directory), as the docs show it.
    let out = run(Path::new("profiles/progressive.toml"), &[]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(99),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("(3 steps: quick → medium → stress; cool-down 0s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("=== Step 1/3: quick (profiles/quick.toml) ==="),
        "{stdout}"
    );
    assert_short_stages(&stdout, 1);
    assert!(
        stdout.contains("threshold message_rtt_ms.p99<5 failed (no data)"),
        "{stdout}"
    );
    assert!(stdout.contains("✓ connect_success_rate>=1.0"), "{stdout}");
    assert!(stdout.contains("remaining steps are skipped"), "{stdout}");
    assert!(!stdout.contains("=== Step 2/3"), "{stdout}");
}

/// The shipped steps, all three run (`continue_on_fail = true` in a progressive profile of
/// our own that lists them): three banners, every step with the flags' shape and its own
/// thresholds, no cool-down, exit code exactly 99 (each step's message-latency threshold has
/// no data, see the module docs).
#[test]
fn every_shipped_step_runs_with_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let steps: Vec<String> = ["quick", "medium", "stress"]
        .iter()
        .map(|s| format!("{:?}", root().join(format!("profiles/{s}.toml"))))
        .collect();
    let prof = dir.path().join("prog.toml");
    std::fs::write(
        &prof,
        format!(
            "steps = [{}]\ncool_down = \"30s\"\ncontinue_on_fail = true\n",
            steps.join(", ")
        ),
    )
    .unwrap();
    let json = dir.path().join("steps.json");
    let out = run(&prof, &["--report-json", json.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(99),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for (i, name) in ["quick", "medium", "stress"].iter().enumerate() {
        assert!(
            stdout.contains(&format!("=== Step {}/3: {name} (", i + 1)),
            "{stdout}"
        );
    }
    assert_short_stages(&stdout, 3);
    assert!(stdout.contains("3 of 3 step(s) ran"), "{stdout}");
    // --cool-down 0s overrides the profile's 30s: no pause announced.
    assert!(stdout.contains("cool-down 0s"), "{stdout}");
    assert!(!stderr.contains("cooling down"), "{stderr}");

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (step, rtt_bound) in steps.iter().zip(["<5", "<10", "<20"]) {
        let stages = step["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 2, "the 0s ramp-down is dropped: {stages:?}");
        for s in stages {
            assert_eq!(s["target"], 3);
            assert_eq!(s["duration_s"], 0.2);
        }
        assert_eq!(step["connections"]["established"], 3, "{step}");
        // The step's own thresholds, judged as the module docs say.
        let t = step["thresholds"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["passed"], true, "{t:?}");
        assert_eq!(t[1]["expr"], format!("message_rtt_ms.p99{rtt_bound}"));
        assert_eq!(t[1]["passed"], false, "{t:?}");
    }
}
