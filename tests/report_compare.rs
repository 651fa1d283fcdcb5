//! `wsscale report compare`: the table, the bounds and the exit codes, on the shared run's
//! report and variants of it (`tests/util/run_report.rs`).

#[path = "util/run_report.rs"]
mod run_report;

use std::path::Path;
use std::process::{Command, Output};

use run_report::{BIN, fixture, read_json, text, variant, write_json};
use serde_json::json;

fn compare(base: &Path, new: &Path, bounds: &[&str]) -> Output {
    let mut args = vec![
        "report".to_string(),
        "compare".into(),
        base.display().to_string(),
        new.display().to_string(),
    ];
    for b in bounds {
        args.push("--max-regression".into());
        args.push(b.to_string());
    }
    Command::new(BIN).args(&args).output().unwrap()
}

#[test]
fn compare_identical_reports_passes_every_bound() {
    let f = fixture();
    let out = compare(
        &f.json,
        &f.json,
        &[
            "message_rtt_ms.p99=+0%",
            "dropped=+0",
            "connect_success_rate=+0",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("message_rtt_ms.p99"), "{stdout}");
    assert!(
        stdout.contains("+0.0%") && stdout.contains("✓ +0%"),
        "{stdout}"
    );
    assert!(stdout.contains("no bound exceeded"), "{stdout}");
}

#[test]
fn compare_exits_99_when_a_bound_is_exceeded() {
    let f = fixture();
    // Five more resets in NEW.
    let new = variant("dropped.json", |d| {
        let c = &mut d["connections"];
        c["dropped"] = json!(c["dropped"].as_u64().unwrap() + 5);
        c["drops"]["reset"] = json!(c["drops"]["reset"].as_u64().unwrap() + 5);
    });
    let out = compare(&f.json, &new, &["dropped=+2", "message_rtt_ms.p99=+50%"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("1 bound(s) exceeded"), "{stdout}");
    assert!(stdout.contains("✗ dropped=+2"), "{stdout}");
    // Without bounds the table is shown and the exit is 0.
    assert_eq!(compare(&f.json, &new, &[]).status.code(), Some(0));
    // Within an absolute allowance.
    assert_eq!(
        compare(&f.json, &new, &["dropped=+5"]).status.code(),
        Some(0)
    );
}

#[test]
fn compare_reads_latency_from_the_histograms() {
    let f = fixture();
    // NEW: every message round trip took 10 s (1,000 samples at 10,000,000 µs) — far above
    // anything the shared run sees, however loaded the machine.
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    h.record_n(10_000_000, 1000).unwrap();
    let slow = wsscale::metrics::wire::encode_histogram(&h);
    let new = variant("slow.json", |d| {
        d["histograms"]["message_rtt"] = json!(slow);
    });
    let out = compare(&f.json, &new, &["message_rtt_ms.p99=+10%"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}{}", text(&out.stderr));
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("message_rtt_ms.p99"))
        .unwrap();
    let p99: f64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(
        (9_990.0..=10_010.0).contains(&p99),
        "NEW p99 from the histogram: {row}"
    );
    assert!(row.contains('✗'), "{row}");
    // The reverse (NEW faster) is no regression.
    assert_eq!(
        compare(&new, &f.json, &["message_rtt_ms.p99=+10%"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn compare_progressive_reports_step_by_step() {
    let f = fixture();
    let one = read_json(&f.json);
    let mut worse = one.clone();
    worse["connections"]["failed"] = json!(3);
    worse["connections"]["attempted"] =
        json!(worse["connections"]["attempted"].as_u64().unwrap() + 3);
    worse["connections"]["failures"]["refused"] = json!(3);
    let base = f.dir.join("steps-base.json");
    let new = f.dir.join("steps-new.json");
    write_json(&base, &json!({"schema_version": 1, "steps": [one, one]}));
    write_json(&new, &json!({"schema_version": 1, "steps": [one, worse]}));
    let out = compare(&base, &new, &["failed=+0"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("step 1/2") && stdout.contains("step 2/2"),
        "{stdout}"
    );
    assert!(stdout.contains("✗ failed=+0 (step 2/2)"), "{stdout}");
    // A step of BASE that NEW lacks counts as exceeded when bounds are given.
    let short = f.dir.join("steps-short.json");
    write_json(&short, &json!({"schema_version": 1, "steps": [one]}));
    let out = compare(&base, &short, &["failed=+0"]);
    assert_eq!(out.status.code(), Some(99), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("missing from NEW"));
}

#[test]
fn compare_bad_input_exits_2_and_says_why() {
    let f = fixture();
    let out = compare(&f.json, &f.json, &["message_rtt.p99=+10%"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("did you mean \"message_rtt_ms.p99\""), "{err}");
    assert!(
        err.contains("connect_success_rate") && err.contains("handshake_ms"),
        "lists valid metrics: {err}"
    );

    let out = compare(&f.json, &f.json, &["dropped<5"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let steps = f.dir.join("one-step.json");
    write_json(
        &steps,
        &json!({"schema_version": 1, "steps": [read_json(&f.json)]}),
    );
    let out = compare(&f.json, &steps, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("progressive"),
        "{}",
        text(&out.stderr)
    );

    let out = compare(&f.json, &f.dir.join("missing.json"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.json"));
}
