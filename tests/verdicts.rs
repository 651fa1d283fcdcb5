//! Honest verdicts, run through the real binary: a run that did not do what it was asked
//! does not exit 0; plans reach their peak exactly; the summary shows planned vs attempted vs
//! established; bad input exits 2 with a message that says how to fix it.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

fn wsscale(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run wsscale")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn report(dir: &tempfile::TempDir, args: &[&str]) -> (Output, serde_json::Value) {
    let path = dir.path().join("r.json");
    let mut all = vec![
        "run",
        "--report-json",
        path.to_str().unwrap(),
        "--interval",
        "200ms",
    ];
    all.extend_from_slice(args);
    let out = wsscale(&all);
    let doc = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, doc)
}

/// Nothing connects (every handshake waits for a reply that never comes): exit 98, the
/// summary's first lines say why, and the JSON carries the same verdict.
#[test]
fn a_run_where_nothing_connects_fails_with_98() {
    let dir = tempfile::tempdir().unwrap();
    let (out, doc) = report(
        &dir,
        &[
            "-c",
            "5",
            "--ramp",
            "0s",
            "--hold",
            "1s",
            "--ramp-down",
            "0s",
            "--first-message",
            "hi",
            "--first-message-expect",
            "never",
            "--handshake-timeout",
            "300ms",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(98),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let head: String = stdout.lines().take(3).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("VERDICT") && head.contains("FAILED: completed with failures"),
        "{head}"
    );
    assert!(
        stdout.contains("5 of 5 connection attempts failed"),
        "{stdout}"
    );
    assert!(stdout.contains("SHORT OF PLAN"), "{stdout}");
    assert!(stdout.contains("planned peak"), "{stdout}");
    assert_eq!(doc["verdict"]["status"], "completed_with_failures");
    assert_eq!(doc["verdict"]["exit_code"], 98);
    assert_eq!(doc["connections"]["planned_peak"], 5);
    assert_eq!(doc["connections"]["established"], 0);
    assert!(
        doc["connections"]["shortfall"]
            .as_str()
            .unwrap()
            .contains("failed")
    );
}

/// `--allow-failures` restores exit 0 and still lists what went wrong; a threshold, when
/// given, is the verdict.
#[test]
fn allow_failures_and_thresholds_decide() {
    let base = [
        "run",
        "-c",
        "3",
        "--ramp",
        "0s",
        "--hold",
        "500ms",
        "--ramp-down",
        "0s",
        "--first-message",
        "hi",
        "--first-message-expect",
        "never",
        "--handshake-timeout",
        "200ms",
    ];
    let mut allowed = base.to_vec();
    allowed.push("--allow-failures");
    let out = wsscale(&allowed);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("PASSED (failures allowed by --allow-failures)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 of 3 connection attempts failed"),
        "{stdout}"
    );

    let mut lenient = base.to_vec();
    lenient.extend(["--threshold", "attempted>=1"]);
    let out = wsscale(&lenient);
    assert_eq!(
        out.status.code(),
        Some(0),
        "thresholds are the verdict: {}",
        text(&out.stdout)
    );

    let mut strict = base.to_vec();
    strict.extend(["--threshold", "connect_success_rate>=95%"]);
    let out = wsscale(&strict);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}");
    assert!(stdout.contains("FAILED: a threshold failed"), "{stdout}");
}

/// A clean run passes with 0 and says so.
#[test]
fn a_clean_run_passes() {
    let out = wsscale(&[
        "run",
        "-c",
        "4",
        "--ramp",
        "200ms",
        "--hold",
        "300ms",
        "--ramp-down",
        "0s",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.lines().nth(1).unwrap_or("").contains("PASSED"),
        "{stdout}"
    );
    assert!(!stdout.contains("SHORT OF PLAN"), "{stdout}");
}

/// The planned peak is reached exactly at the vertex of a ramp up and a ramp down.
#[test]
fn plans_reach_their_peak_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for shape in [
        &["--stage", "1s:10", "--stage", "1s:0"][..],
        &[
            "-c",
            "10",
            "--ramp",
            "1s",
            "--hold",
            "0s",
            "--ramp-down",
            "1s",
        ][..],
    ] {
        let (out, doc) = report(&dir, shape);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{shape:?}: {}",
            text(&out.stdout)
        );
        assert_eq!(doc["connections"]["attempted"], 10, "{shape:?}");
        assert_eq!(doc["connections"]["peak_open"], 10, "{shape:?}");
        assert_eq!(doc["connections"]["planned_peak"], 10, "{shape:?}");
    }
}

/// One rule for bad input: exit 2, and a message that says what and how to fix it.
#[test]
fn bad_input_exits_2_with_a_fix() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "-c", "-5"], "must be positive"),
        (&["run", "-c", "1.5"], "-c"),
        (&["run", "-c", "0"], "connections"),
        (&["run", "-c", "1", "--threads", "0"], "--threads"),
        (&["run", "-c", "1", "--target", "http://x/"], "--target"),
        (
            &["run", "-c", "1", "--threshold", "connect_success_rate>=95"],
            "did you mean 0.95",
        ),
        (
            &["run", "-c", "1", "--threshold", "nosuch<1"],
            "valid metrics",
        ),
    ];
    for (args, needle) in cases {
        let out = wsscale(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
        assert!(!stderr.contains("-- -5"), "no advice that fails: {stderr}");
    }
}

/// `--max-frame` is capped at 1 GiB: a frame is buffered whole before it is handled.
#[test]
fn max_frame_is_capped() {
    let out = wsscale(&["run", "-c", "1", "--max-frame", "2GiB"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--max-frame") && stderr.contains("1GiB"),
        "{stderr}"
    );
}

/// One of two targets down: the run warns, counts its failures under that target, says in
/// the summary that it was down, and the verdict is "completed with failures".
#[test]
fn a_down_target_is_named_and_counted() {
    let gw = wsscale::gateway::GatewayHandle::start(
        "127.0.0.1:0".parse().unwrap(),
        wsscale::gateway::GatewayConfig::default(),
        1,
    )
    .expect("gateway");
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let up_url = format!("ws://{}/", gw.local_addr());
    let down_url = format!("ws://{down}/");
    let dir = tempfile::tempdir().unwrap();
    let (out, doc) = report(
        &dir,
        &[
            "--target",
            &up_url,
            "--target",
            &down_url,
            "-c",
            "6",
            "--ramp",
            "0s",
            "--hold",
            "300ms",
            "--ramp-down",
            "0s",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(98),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("not reachable"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("DOWN: every connection to it failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("target {down_url} was down")),
        "{stdout}"
    );
    let targets = doc["connections"]["per_target"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["url"], up_url.as_str());
    assert_eq!(targets[0]["failed"], 0);
    assert_eq!(targets[1]["established"], 0);
    assert_eq!(
        targets[1]["failed"], doc["connections"]["failed"],
        "every failure is counted under the down target"
    );
    assert!(targets[1]["failed"].as_u64().unwrap() >= 3);
}

/// A handshake that waits for a reply that never comes says which step timed out.
#[test]
fn a_handshake_timeout_says_which_step() {
    let out = wsscale(&[
        "run",
        "-c",
        "2",
        "--ramp",
        "0s",
        "--hold",
        "600ms",
        "--ramp-down",
        "0s",
        "--first-message",
        "hi",
        "--first-message-expect",
        "never",
        "--handshake-timeout",
        "200ms",
        "--allow-failures",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "open_sequence_timeout, e.g.: upgraded (101), but step 2 of the open sequence (expect \"*never\")"
        ),
        "{stdout}"
    );
}
