//! Churn (`--session-duration`) and the open arrival model (`--arrival-rate`, rate stages,
//! `--max-open`) against the embedded gateway on port 0: churn closes are counted as churn,
//! not drops, and pass the verdict; observed sessions follow their distribution; arrivals
//! open about R per second and never more than the cap; `--processes 2` merges the churn
//! counters; bad input is refused with exit code 2.
//!
//! Bounds are on counts and on session lengths that cannot come out shorter than planned
//! (a session ends at or after its deadline), generous enough for a busy two-core machine.

mod util;

use std::path::Path;
use std::time::Duration;

use util::WAIT;
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::metrics::RunOutcome;
use wsscale::metrics::churn::summary;
use wsscale::metrics::verdict::{Status, judge};
use wsscale::plan::Overrides;
use wsscale::plan::build::build_plan;
use wsscale::plan::churn::SessionDuration;

fn gateway() -> GatewayHandle {
    util::gateway(GatewayConfig::default(), 2)
}

/// Flags as a program gives them: a target, two engine threads, 200 ms intervals.
fn overrides(gw: &GatewayHandle) -> Overrides {
    Overrides {
        targets: vec![gw.url()],
        threads: Some(2),
        interval: Some(Duration::from_millis(200)),
        connect_timeout: Some(util::TIMEOUT),
        handshake_timeout: Some(util::TIMEOUT),
        ..Default::default()
    }
}

fn run(o: &Overrides) -> RunOutcome {
    let plan = build_plan(o).expect("a valid plan");
    util::run(&plan)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn churn_closes_are_churn_not_drops_and_the_run_passes() {
    let gw = gateway();
    let o = run(&Overrides {
        connections: Some(40),
        ramp: Some(ms(200)),
        hold: Some(ms(3000)),
        ramp_down: Some(ms(200)),
        session_duration: Some(SessionDuration::Uniform(ms(200), ms(400))),
        ..overrides(&gw)
    });
    let c = &o.totals.counters;
    // 40 slots, each ending a session every ~0.3 s of a 3 s hold: ~400 sessions. A busy
    // machine slows the refills, never speeds them up.
    assert!(
        c.churn_closes >= 80 && c.churn_closes <= 40 * 3400 / 200,
        "{c:?}"
    );
    assert_eq!(c.dropped, 0, "churn closes are not drops: {c:?}");
    assert_eq!(c.failed, 0, "{c:?}");
    // Every established connection ended with a client close: churn or the ramp-down.
    assert_eq!(c.closed, c.established, "{c:?}");
    assert!(
        c.closed > c.churn_closes,
        "the ramp-down closes the last sessions"
    );
    // Each slot reopened at once: a new attempt per churn close (but for sessions that
    // ended in the ramp-down, whose slots are gone), and the hold stayed near 40 open.
    assert!(c.attempted >= c.churn_closes, "{c:?}");
    assert!(
        o.timeseries
            .iter()
            .any(|r| r.t_s > 1.0 && r.t_s < 3.2 && r.open >= 36),
        "{:?}",
        o.timeseries
            .iter()
            .map(|r| (r.t_s, r.open))
            .collect::<Vec<_>>()
    );
    // The gateway saw each churn close as a normal close of a fresh connection.
    assert!(gw.stats().upgraded >= c.established);

    let s = summary(&o).expect("a churn section");
    assert_eq!(s.sessions_completed, c.churn_closes);
    assert_eq!(s.observed_s.count, c.churn_closes);
    assert_eq!(s.session_duration.as_deref(), Some("uniform:200ms..400ms"));
    assert_eq!(s.planned_mean_s, Some(0.3));
    // A session never ends before its deadline; uniform 0.2–0.4 s stays below 1 s.
    assert!(s.observed_s.min >= 0.199, "{:?}", s.observed_s);
    assert!(s.observed_s.p50 < 1.0, "{:?}", s.observed_s);
    assert!(
        s.opens_per_s.mean > 0.0 && s.closes_per_s.mean > 0.0,
        "{s:?}"
    );
    assert!(s.opens_per_s.peak >= s.opens_per_s.mean, "{s:?}");
    assert!(s.peak_open_or_opening >= 40, "{s:?}");
    assert!(
        o.timeseries.iter().any(|r| r.closes_per_s > 0.0),
        "closes/s in the time series"
    );

    let v = judge(&o, false);
    assert_eq!(v.status, Status::Passed, "{:?}", v.reasons);
    assert_eq!(v.exit_code(), 0);

    // `report merge` of two shard reports adds the churn figures, exactly.
    use wsscale::report::merge::{Input, merge};
    let doc = wsscale::report::to_json(&o);
    let input = |name: &str| Input {
        name: name.into(),
        doc: doc.clone(),
    };
    let m = merge(&[input("a.json"), input("b.json")]).unwrap();
    let ms = summary(&m).expect("a merged churn section");
    assert_eq!(ms.sessions_completed, 2 * s.sessions_completed);
    assert_eq!(ms.observed_s.count, 2 * s.observed_s.count);
    assert_eq!(ms.session_duration, s.session_duration);
    assert_eq!(ms.peak_open_or_opening, 2 * s.peak_open_or_opening);
}

#[test]
fn exponential_sessions_have_about_their_mean() {
    let gw = gateway();
    let o = run(&Overrides {
        connections: Some(50),
        ramp: Some(ms(200)),
        hold: Some(ms(4000)),
        ramp_down: Some(Duration::ZERO),
        session_duration: Some(SessionDuration::Exp(ms(250))),
        ..overrides(&gw)
    });
    let s = summary(&o).expect("a churn section");
    // ~50 × 4 s ÷ 0.25 s = 800 sessions on an idle machine.
    assert!(
        s.sessions_completed >= 150 && s.sessions_completed <= 2000,
        "{s:?}"
    );
    // Exponential: the median is ln 2 ≈ 0.69 of the mean, the mean near 0.25 s (sessions
    // still running at the end are not in it, which only shortens it a little here).
    let obs = s.observed_s;
    assert!(obs.mean > 0.15 && obs.mean < 0.5, "{obs:?}");
    assert!(obs.p50 < obs.mean, "exponential skew: {obs:?}");
    assert!(obs.max > 2.0 * obs.mean, "a long tail: {obs:?}");
    assert_eq!(o.totals.counters.dropped, 0);
}

#[test]
fn arrival_rate_opens_about_r_per_second_and_never_beyond_the_cap() {
    let gw = gateway();
    let o = run(&Overrides {
        arrival_rate: Some(100.0),
        max_open: Some(40),
        hold: Some(ms(2000)),
        ..overrides(&gw)
    });
    let c = &o.totals.counters;
    // Without churn the first 40 arrivals stay open; the other ~160 of the 200 find the cap.
    assert!(o.peak_open <= 40, "peak {}", o.peak_open);
    for r in &o.timeseries {
        assert!(r.open <= 40, "open {} at {:.1}s", r.open, r.t_s);
    }
    assert_eq!(c.attempted, c.established, "{c:?}");
    assert!(c.attempted <= 40, "{c:?}");
    let arrivals = c.attempted + c.arrivals_skipped;
    assert!(
        (150..=210).contains(&arrivals),
        "100/s for 2 s: {arrivals} arrivals ({c:?})"
    );
    let s = summary(&o).expect("a churn section");
    let a = s.arrival.expect("the arrival model");
    assert_eq!(a.max_open, 40);
    assert_eq!(a.rates_per_s, vec![Some(100.0)]);
    assert_eq!(a.skipped, c.arrivals_skipped);
    // The cap is a cap, not a goal: no shortfall, the run passes.
    let v = judge(&o, false);
    assert_eq!(v.status, Status::Passed, "{:?}", v.reasons);
    let text = wsscale::report::summary_text(&o);
    assert!(text.contains("1. arrivals at 100/s for"), "{text}");
    assert!(text.contains("(max open 40)"), "{text}");
    assert!(text.contains(&format!("skipped {}", a.skipped)), "{text}");
}

#[test]
fn arrivals_with_churn_settle_where_littles_law_says() {
    let gw = gateway();
    // 200/s × 0.25 s = 50 open on average, far below the cap.
    let o = run(&Overrides {
        arrival_rate: Some(200.0),
        max_open: Some(1000),
        hold: Some(ms(3000)),
        session_duration: Some(SessionDuration::Fixed(ms(250))),
        ..overrides(&gw)
    });
    let c = &o.totals.counters;
    assert_eq!(c.arrivals_skipped, 0, "{c:?}");
    assert!((450..=620).contains(&c.attempted), "200/s for 3 s: {c:?}");
    assert!(
        o.peak_open >= 25 && o.peak_open <= 150,
        "Little's law: about 50 open, peak {}",
        o.peak_open
    );
    assert_eq!(c.dropped, 0);
    let s = summary(&o).unwrap();
    assert!(s.sessions_completed >= c.attempted / 2, "{s:?}");
    assert!(s.observed_s.min >= 0.249, "{:?}", s.observed_s);
}

#[test]
fn rate_stages_mix_with_count_stages() {
    let gw = gateway();
    let mut o = overrides(&gw);
    o.stages = ["200ms:20", "1500ms:100/s", "300ms:0"]
        .iter()
        .map(|s| wsscale::plan::churn::parse_stage_arg(s).unwrap())
        .collect();
    o.max_open = Some(60);
    let plan = build_plan(&o).unwrap();
    let targets: Vec<u64> = plan.stages.iter().map(|s| s.target).collect();
    assert_eq!(targets, [20, 60, 0], "a rate stage's target is its cap");
    let out = util::run(&plan);
    let c = &out.totals.counters;
    // 20 from the count stage, then up to the cap of 60 from ~150 arrivals.
    assert!(
        out.peak_open <= 60 && out.peak_open > 20,
        "peak {}",
        out.peak_open
    );
    assert!(c.arrivals_skipped > 0, "{c:?}");
    assert_eq!(
        c.closed, c.established,
        "the last count stage closes them all"
    );
    assert_eq!(c.dropped, 0);
}

/// `wsscale run ARGS --report-json R --report-csv C` against `gw`: exit code, report, CSV.
fn run_binary(gw: Option<&GatewayHandle>, args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (json, csv) = (dir.path().join("r.json"), dir.path().join("r.csv"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wsscale"));
    cmd.arg("run").args(args);
    if let Some(gw) = gw {
        cmd.args(["--target", &gw.url()]);
    }
    let child = util::spawn(move || {
        cmd.arg("--report-json")
            .arg(&json)
            .arg("--report-csv")
            .arg(&csv)
            .output()
            .map(|out| (out, read(&json), read(&csv)))
    });
    let (out, json, csv) = child
        .recv_timeout(WAIT)
        .expect("wsscale ends")
        .expect("wsscale runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code(),
        json.unwrap_or(stderr),
        csv.unwrap_or_default(),
    )
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

#[test]
fn the_binary_reports_churn_and_exits_0() {
    let gw = gateway();
    let (code, json, csv) = run_binary(
        Some(&gw),
        &[
            "-c",
            "30",
            "--ramp",
            "200ms",
            "--hold",
            "2s",
            "--ramp-down",
            "0s",
            "--session-duration",
            "uniform:200ms..400ms",
            "--interval",
            "500ms",
            "--threshold",
            "churn.sessions_completed>10",
            "--threshold",
            "churn.opens_per_s.mean>0",
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(doc["churn"]["sessions_completed"].as_u64().unwrap() > 10);
    assert_eq!(doc["connections"]["dropped"], 0);
    assert_eq!(doc["churn"]["session_duration"], "uniform:200ms..400ms");
    assert!(doc["timeseries"][0]["opens_per_s"].is_number());
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains(",opens_per_s,closes_per_s")
    );
}

#[test]
fn processes_split_the_rate_and_merge_the_churn_counters() {
    let gw = gateway();
    let (code, json, _) = run_binary(
        Some(&gw),
        &[
            "--processes",
            "2",
            "-c",
            "40",
            "--ramp",
            "300ms",
            "--hold",
            "2s",
            "--ramp-down",
            "0s",
            "--session-duration",
            "uniform:200ms..400ms",
            "--interval",
            "500ms",
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let churn = &doc["churn"];
    let sessions = churn["sessions_completed"].as_u64().unwrap();
    assert!(sessions > 20, "{churn}");
    // Counters and histograms of both agents merged alike.
    assert_eq!(churn["observed_s"]["count"].as_u64(), Some(sessions));
    assert!(
        churn["observed_s"]["min"].as_f64().unwrap() >= 0.199,
        "{churn}"
    );
    assert_eq!(doc["agents"].as_array().unwrap().len(), 2);
    assert_eq!(doc["connections"]["dropped"], 0);

    // The arrival rate is divided between the processes, and so is the cap.
    let (code, json, _) = run_binary(
        Some(&gw),
        &[
            "--processes",
            "2",
            "--arrival-rate",
            "100/s",
            "--max-open",
            "30",
            "--hold",
            "2s",
            "--interval",
            "500ms",
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let a = &doc["churn"]["arrival"];
    assert_eq!(a["max_open"], 30, "{a}");
    assert!(doc["connections"]["peak_open"].as_u64().unwrap() <= 30);
    let attempted = doc["connections"]["attempted"].as_u64().unwrap();
    let arrivals = attempted + a["skipped"].as_u64().unwrap();
    assert!(
        (140..=210).contains(&arrivals),
        "two processes at 50/s each for 2 s: {arrivals} ({doc})"
    );
}

#[test]
fn nonsense_is_refused_with_exit_code_2() {
    for (args, needle) in [
        (&["-c", "5", "--max-open", "10"][..], "no rate stage"),
        (&["--stage", "0s:5/s"][..], "give it a duration"),
        (&["--stage", "1s:5/parsec"][..], "not a time unit"),
        (
            &["--session-duration", "normal:2s", "-c", "5"][..],
            "unknown distribution",
        ),
        (
            &["--arrival-rate", "10/s", "-c", "5"][..],
            "cannot be used with",
        ),
        (
            &["-c", "5", "--session-seed", "3"][..],
            "--session-duration",
        ),
    ] {
        let (code, stderr, _) = run_binary(None, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn the_churn_profile_is_the_seed_test() {
    let p = build_plan(&Overrides {
        profile: Some("profiles/churn.toml".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(p.peak_connections(), 10_000);
    let churn = p.churn.expect("churn");
    assert_eq!(churn.duration, SessionDuration::Exp(Duration::from_secs(2)));
    assert_eq!(p.sources.len(), 8, "spread over eight source addresses");
    assert!(p.arrival.is_none());
}

#[test]
fn profiles_take_rate_stages_and_churn_keys() {
    use wsscale::plan::build::build_plan_with;
    use wsscale::plan::profile::Profile;
    let text = r#"
session_duration = "uniform:1s..3s"
session_seed = 7
max_open = "2k"

[[stages]]
duration = "10s"
target = 100

[[stages]]
duration = "1m"
target = "30k/m"
"#;
    let profile = Profile::parse(text, Path::new("profiles/x.toml")).unwrap();
    let p = build_plan_with(&Overrides::default(), Some(&profile)).unwrap();
    let a = p.arrival.expect("rate stages");
    assert_eq!(a.rates, vec![None, Some(500.0)]);
    assert_eq!(a.max_open, 2000);
    assert_eq!(p.stages[1].target, 2000);
    let c = p.churn.unwrap();
    assert_eq!(c.seed, 7);
    assert_eq!(c.duration.mean(), Duration::from_secs(2));

    let bad = "arrival_rate = \"fast\"\n";
    let e = Profile::parse(bad, Path::new("profiles/x.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("profiles/x.toml:1:16: invalid value for 'arrival_rate'"),
        "{e}"
    );
    let both = "arrival_rate = \"10/s\"\nconnections = 5\n";
    let profile = Profile::parse(both, Path::new("profiles/x.toml")).unwrap();
    let e = build_plan_with(&Overrides::default(), Some(&profile))
        .unwrap_err()
        .to_string();
    assert!(e.contains("either connections"), "{e}");
}

#[test]
fn the_documented_error_is_what_the_binary_says() {
    let doc = include_str!("../docs/churn.md");
    let shown = doc
        .lines()
        .find(|l| l.starts_with("error: invalid value for --max-open"))
        .expect("docs/churn.md shows the --max-open error");
    let (code, stderr, _) = run_binary(None, &["-c", "5", "--max-open", "10"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr.trim(),
        shown,
        "docs/churn.md must show the error as printed"
    );
}

#[test]
fn churn_and_skipped_arrivals_reach_prometheus() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use wsscale::engine::{self, RunOptions};
    use wsscale::metrics::timeseries::IntervalSink;
    use wsscale::report::prometheus::LiveMetrics;

    let gw = gateway();
    // 200 arrivals/s into at most 20 open, each living 300 ms: both churn closes and
    // skipped arrivals.
    let plan = build_plan(&Overrides {
        arrival_rate: Some(200.0),
        max_open: Some(20),
        hold: Some(ms(1500)),
        session_duration: Some(SessionDuration::Fixed(ms(300))),
        ..overrides(&gw)
    })
    .expect("a valid plan");
    let metrics = Arc::new(LiveMetrics::new("run"));
    let mut opts = RunOptions::new(Arc::new(AtomicBool::new(false)));
    opts.live = Some(metrics.clone() as Arc<dyn IntervalSink>);
    let o = engine::run(&plan, &opts).expect("engine run");
    let c = &o.totals.counters;
    assert!(c.churn_closes > 0 && c.arrivals_skipped > 0, "{c:?}");
    let text = metrics.render();
    let value = |name: &str| -> u64 {
        text.lines()
            .find(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(['{', ' ']))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(value("wsscale_churn_closes_total"), c.churn_closes);
    assert_eq!(value("wsscale_arrivals_skipped_total"), c.arrivals_skipped);
}
