//! Capacity search (`wsscale search`, docs/search.md).
//!
//! - `--vary` parsing: geometric and additive ranges in the field's units, END always last,
//!   and bad specs refused with what was wrong and an example (exit 2 from the binary).
//! - The course of a search ([`Search`]) against a known capacity: the scan stops at the
//!   first failing value, bisection narrows the knee, and the findings when every value
//!   passes or even the first fails.
//! - The real binary against gateways with a deterministic limit — the embedded gateway
//!   limited by a profile's `[embedded_gateway] max_connections` (HTTP 503 beyond it), and
//!   an in-process gateway given as `--target` — finds the knee at the right step, with and
//!   without `--bisect`; its JSON validates against `schema/search-v1.json` (and every step
//!   against `schema/report-v1.json`); `wsscale report html` renders it; exit codes 0 and 99.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::plan::search::{Finding, Phase, Search, Unit, parse_vary};
use wsscale::report::document::Document;
use wsscale::report::search::SearchSection;

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");
const SEARCH_SCHEMA: &str = include_str!("../schema/search-v1.json");
const REPORT_SCHEMA: &str = include_str!("../schema/report-v1.json");
const FIELDS_DOC: &str = include_str!("../docs/reports.md");

// ---------------------------------------------------------------------------------------
// --vary parsing.

#[test]
fn geometric_ranges_multiply_and_end_at_end() {
    let v = parse_vary("connections=1k..64k*2").unwrap();
    assert_eq!(v.field.name, "connections");
    assert_eq!(v.field.unit, Unit::Count);
    assert_eq!(v.values(), [1e3, 2e3, 4e3, 8e3, 16e3, 32e3, 64e3].to_vec());
    // Overshooting steps still end at END.
    let v = parse_vary("connections=500..8k*3").unwrap();
    assert_eq!(v.values(), vec![500.0, 1500.0, 4500.0, 8000.0]);
    // A fractional factor gives whole counts.
    let v = parse_vary("connections=10..40*1.5").unwrap();
    assert_eq!(v.values(), vec![10.0, 15.0, 23.0, 34.0, 40.0]);
}

#[test]
fn additive_ranges_add_the_step_in_the_fields_unit() {
    let v = parse_vary("connections=1k..10k+1k").unwrap();
    let want: Vec<f64> = (1..=10).map(|k| f64::from(k) * 1000.0).collect();
    assert_eq!(v.values(), want);
    let v = parse_vary("connections=1.5k..5k+2k").unwrap();
    assert_eq!(v.values(), vec![1500.0, 3500.0, 5000.0]);
}

#[test]
fn rates_take_rate_units_and_label_back() {
    let v = parse_vary("message_rate=1/s..64/s*2").unwrap();
    assert_eq!(v.field.unit, Unit::Rate);
    assert_eq!(v.values(), vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
    assert_eq!(v.label(2.0), "2/s");
    let v = parse_vary("message_rate=1/10s..1/s+1/5s").unwrap();
    assert_eq!(v.values(), vec![0.1, 0.3, 0.5, 0.7, 0.9, 1.0]);
    assert_eq!(v.label(0.1), "0.1/s");
    let v = parse_vary("message_rate=600/m..1200/m*2").unwrap();
    assert_eq!(v.values(), vec![10.0, 20.0]);
}

#[test]
fn bad_specs_say_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        ("connections", "missing '='"),
        ("conections=1k..8k*2", "did you mean \"connections\"?"),
        ("memory=1..8*2", "the fields are connections, message_rate"),
        ("connections=1k-8k*2", "missing '..'"),
        ("connections=1k..8k", "missing the step after END"),
        ("connections=1k..8k*1", "must be above 1"),
        ("connections=1k..8k*x", "is not a number"),
        (
            "connections=8k..1k*2",
            "START (8000) must be below END (1000)",
        ),
        ("connections=0..1k*2", "START must be above 0"),
        ("connections=1k..8k+0", "must be above 0"),
        ("connections=1x..8k*2", "START:"),
        ("message_rate=1..8/s*2", "START:"),
        ("connections=1..1M+1", "more than 64"),
        ("message_rate=1/s..64/s*1.000000001", "more than 64"),
    ];
    for (spec, want) in cases {
        let e = parse_vary(spec).unwrap_err().to_string();
        assert!(e.contains(want), "{spec}: {e}");
        assert!(e.contains("expected e.g. \"connections=1k..64k*2\""), "{e}");
    }
}

#[test]
fn a_bad_vary_exits_2_naming_the_flag() {
    let out = Command::new(BIN)
        .args(["search", "-c", "10", "--vary", "connections=8k..1k*2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--vary"), "{stderr}");
    assert!(stderr.contains("must be below END"), "{stderr}");
    // A plan that cannot be built at the far end of the range is refused before any step.
    let out = Command::new(BIN)
        .args([
            "search",
            "-c",
            "10",
            "--vary",
            "message_rate=1/s..1000000/s*10",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("message_rate = 1000000/s"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("=== Step"));
    // --stage would win over the varied connections: refused rather than ignored.
    let out = Command::new(BIN)
        .args([
            "search",
            "--stage",
            "1s:10",
            "--vary",
            "connections=10..20*2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--stage fixes what --vary connections would set"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// The course of a search.

/// Run `search` to its end against a gateway that holds `capacity`; the values in order.
fn course(mut search: Search, capacity: f64) -> (Vec<(f64, Phase)>, Finding) {
    let mut ran = Vec::new();
    while let Some((v, phase)) = search.next() {
        ran.push((v, phase));
        search.record(v, v <= capacity);
        assert!(ran.len() < 100, "the search does not end");
    }
    (ran, search.finding())
}

#[test]
fn the_scan_stops_at_the_first_failure_and_bisection_narrows_the_knee() {
    let vary = parse_vary("connections=500..8k*2").unwrap();
    let (ran, finding) = course(Search::new(vary.clone(), 0), 3000.0);
    let values: Vec<f64> = ran.iter().map(|r| r.0).collect();
    assert_eq!(
        values,
        vec![500.0, 1000.0, 2000.0, 4000.0],
        "8000 never runs"
    );
    assert_eq!(
        finding,
        Finding::Knee {
            last_pass: 2000.0,
            first_fail: 4000.0
        }
    );

    let (ran, finding) = course(Search::new(vary.clone(), 3), 3000.0);
    assert_eq!(
        ran[4..],
        [
            (3000.0, Phase::Bisect),
            (3500.0, Phase::Bisect),
            (3250.0, Phase::Bisect)
        ]
    );
    assert_eq!(
        finding,
        Finding::Knee {
            last_pass: 3000.0,
            first_fail: 3250.0
        }
    );

    // Bisection stops when no count is left between the two (not after 20 steps).
    let (ran, finding) = course(Search::new(vary, 20), 2345.0);
    assert_eq!(
        finding,
        Finding::Knee {
            last_pass: 2345.0,
            first_fail: 2346.0
        }
    );
    assert!(ran.len() <= 4 + 11, "{ran:?}");
}

#[test]
fn findings_when_everything_passes_or_nothing_does() {
    let vary = parse_vary("connections=1k..10k+1k").unwrap();
    let (ran, finding) = course(Search::new(vary.clone(), 2), 1e9);
    assert_eq!(ran.len(), 10);
    assert_eq!(
        finding,
        Finding::AllPassed {
            last_pass: 10_000.0
        }
    );
    let (ran, finding) = course(Search::new(vary, 5), 10.0);
    assert_eq!(ran, vec![(1000.0, Phase::Scan)], "no bisection below START");
    assert_eq!(finding, Finding::FirstFailed { first_fail: 1000.0 });
}

// ---------------------------------------------------------------------------------------
// The binary against gateways with a known limit.

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A short profile in `dir`; `[embedded_gateway] max_connections = limit` when given. The
/// 2 s hold gives a loaded machine time to finish every handshake of the 300 ms ramp: one
/// still under way when the plan ends would count against `connect_success_rate` and fail a
/// step that the limit lets pass.
fn profile(dir: &Path, limit: Option<u64>) -> PathBuf {
    let gw = limit.map_or(String::new(), |n| {
        format!("[embedded_gateway]\nmax_connections = {n}\n")
    });
    let p = dir.join("search.toml");
    std::fs::write(
        &p,
        format!(
            "description = \"test\"\nconnections = 10\nramp = \"300ms\"\nhold = \"2s\"\n\
             ramp_down = \"0s\"\n{gw}\n[thresholds]\nconnect_success_rate = \">=0.99\"\n"
        ),
    )
    .unwrap();
    p
}

fn search(args: &[&str]) -> (Output, String, String) {
    let out = Command::new(BIN)
        .arg("search")
        .args(args)
        .output()
        .expect("the binary runs");
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    (out, o, e)
}

fn validate(schema: &str, doc: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(schema).unwrap();
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    let v = jsonschema::draft202012::new(&schema).unwrap();
    v.iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn read_doc(path: &Path) -> (Value, SearchSection) {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let errs = validate(SEARCH_SCHEMA, &doc);
    assert!(errs.is_empty(), "search document: {errs:#?}");
    for step in doc["steps"].as_array().unwrap() {
        let errs = validate(REPORT_SCHEMA, step);
        assert!(errs.is_empty(), "step report: {errs:#?}");
    }
    let section: SearchSection = serde_json::from_value(doc["search"].clone()).unwrap();
    (doc, section)
}

/// The embedded gateway refuses above 300: the scan 100, 200, 400 stops at 400 (800 never
/// runs); two bisection steps try 300 (passes: exactly the limit) and 350 (fails). The
/// knee is 300 / 350, with the 503s as the reason; exit 0; the document validates and
/// renders as HTML.
#[test]
fn finds_the_knee_of_the_embedded_gateway_and_bisects_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), Some(300));
    let json = dir.path().join("search.json");
    let (out, stdout, stderr) = search(&[
        p.to_str().unwrap(),
        "--vary",
        "connections=100..800*2",
        "--bisect",
        "2",
        "--report-json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Knee found: connections = 300 passed (step 4), 350 failed (step 5)."),
        "{stdout}"
    );
    assert!(
        stdout.contains("why: threshold connect_success_rate>=0.99 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("=== Step 4: connections = 300 (bisect 1/2) ==="),
        "{stdout}"
    );
    assert!(!stdout.contains("= 800 "), "800 must not run: {stdout}");

    let (doc, s) = read_doc(&json);
    assert_eq!(s.result, "knee");
    assert_eq!(s.scan, vec![100.0, 200.0, 400.0, 800.0]);
    let ran: Vec<(f64, &str, bool)> = s
        .steps
        .iter()
        .map(|r| (r.value, r.phase.as_str(), r.passed))
        .collect();
    assert_eq!(
        ran,
        vec![
            (100.0, "scan", true),
            (200.0, "scan", true),
            (400.0, "scan", false),
            (300.0, "bisect", true),
            (350.0, "bisect", false),
        ],
        "{stdout}"
    );
    let fail = s.first_fail.as_ref().unwrap();
    assert_eq!((fail.value, fail.step), (350.0, 5));
    assert!(
        fail.reasons[0].contains("connect_success_rate>=0.99"),
        "{fail:?}"
    );
    assert_eq!(s.last_pass.as_ref().unwrap().value, 300.0);
    // The failing steps met the limit exactly: 300 open, the rest refused.
    assert_eq!(
        (s.steps[2].peak_open, s.steps[2].failed),
        (300, 100),
        "{stdout}"
    );
    assert_eq!(
        (s.steps[4].peak_open, s.steps[4].failed),
        (300, 50),
        "{stdout}"
    );
    let step5 = &doc["steps"][4];
    assert_eq!(step5["connections"]["failures"]["http_status_503"], 50);

    // `wsscale report html` of the document.
    let html = dir.path().join("search.html");
    let out = Command::new(BIN)
        .args(["report", "html"])
        .arg(&json)
        .arg("-o")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Capacity search: <code>connections=100..800*2</code>"));
    assert!(page.contains("Knee found: connections = 300 passed (step 4)"));
    assert!(page.contains("data-chart=\"search-p99\""), "latency chart");
    assert!(page.contains("data-chart=\"search-failures\" data-series=\"2\" data-points=\"10\""));
    assert!(page.contains("connections held"), "x axis title");
    let section = &page[page.find("<section class=\"search\">").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    assert_eq!(
        section.matches("<tr class=\"fail\">").count(),
        2,
        "two failing rows"
    );
    assert_eq!(
        section.matches("<tr class=\"pass\">").count(),
        3,
        "three passing rows"
    );
    assert!(page.contains("id=\"step-5\""), "each step has its section");
    let doc = Document::read(&json).unwrap();
    assert_eq!(doc.runs[4].label, "step 5/5: connections 350");
}

/// An outside gateway (`--target`, in-process, limited to 150): without `--bisect` the
/// search stops at the first failing scan step and reports the scan's knee.
#[test]
fn stops_at_the_first_failing_step_of_an_outside_target() {
    let cfg = GatewayConfig {
        max_connections: Some(150),
        ..GatewayConfig::default()
    };
    let gw = GatewayHandle::start("127.0.0.1:0".parse().unwrap(), cfg, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), None);
    let json = dir.path().join("s.json");
    let target = format!("ws://{}/", gw.local_addr());
    let (out, stdout, stderr) = search(&[
        p.to_str().unwrap(),
        "--target",
        &target,
        "--vary",
        "connections=50..400+50",
        "--cool-down",
        "100ms",
        "--report-json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let (_, s) = read_doc(&json);
    let values: Vec<f64> = s.steps.iter().map(|r| r.value).collect();
    assert_eq!(values, vec![50.0, 100.0, 150.0, 200.0], "{stdout}");
    assert_eq!(s.last_pass.as_ref().unwrap().value, 150.0);
    assert_eq!(s.first_fail.as_ref().unwrap().value, 200.0);
    assert_eq!(s.cool_down_s, 0.1);
    assert!(stderr.contains("cooling down for 100ms before step 100"));
}

/// `--until` replaces the profile's thresholds; when even the first step fails the search
/// exits with that step's code (99) and says there is no passing value.
#[test]
fn a_first_step_that_fails_exits_99() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), None);
    let json = dir.path().join("s.json");
    let (out, stdout, stderr) = search(&[
        p.to_str().unwrap(),
        "--vary",
        "connections=20..80*2",
        "--until",
        "peak_open>=1000",
        "--bisect",
        "3",
        "--report-json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(99), "{stdout}\n{stderr}");
    assert!(stdout.contains("No passing value: even the first step, connections = 20, failed."));
    let (_, s) = read_doc(&json);
    assert_eq!(s.result, "first_failed");
    assert_eq!(s.until, vec!["peak_open>=1000"]);
    assert_eq!(s.steps.len(), 1);
    assert_eq!(
        s.steps[0].thresholds_failed, 1,
        "connect_success_rate was replaced"
    );
}

/// Every step passes (`--processes 2`: agents and two embedded gateway processes): exit 0,
/// `all_passed`, and the summary says the capacity is above the range. Each step is split
/// over both agents. (The bound is 90 %, not the profile's 99 %: on a machine loaded by
/// parallel tests, four processes per step may leave a handshake unfinished at the end.)
#[test]
fn all_steps_pass_over_processes() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), None);
    let json = dir.path().join("s.json");
    let (out, stdout, stderr) = search(&[
        p.to_str().unwrap(),
        "--vary",
        "connections=10..20*2",
        "--until",
        "connect_success_rate>=0.9",
        "--processes",
        "2",
        "--interval",
        "100ms",
        "--report-json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("No knee in the range: every step passed, up to connections = 20"),
        "{stdout}"
    );
    let (doc, s) = read_doc(&json);
    assert_eq!(s.result, "all_passed");
    for (i, planned) in [(0, 10), (1, 20)] {
        assert_eq!(s.steps[i].planned_peak, planned, "{stdout}");
        let agents = doc["steps"][i]["agents"].as_array().unwrap();
        assert_eq!(agents.len(), 2, "{stdout}");
        let attempted: u64 = agents
            .iter()
            .map(|a| a["attempted"].as_u64().unwrap())
            .sum();
        assert_eq!(
            attempted, planned,
            "each agent attempted its share: {stdout}"
        );
    }
}

#[test]
fn docs_list_every_search_field() {
    let s = SearchSection {
        vary: "connections".into(),
        range: "connections=1..2*2".into(),
        scan: vec![1.0, 2.0],
        until: vec![],
        bisect: 0,
        cool_down_s: 0.0,
        result: "knee".into(),
        last_pass: None,
        first_fail: None,
        steps: vec![],
    };
    let v = serde_json::to_value(&s).unwrap();
    for k in v.as_object().unwrap().keys() {
        let row = format!("| `search.{k}` |");
        assert!(FIELDS_DOC.contains(&row), "docs/reports.md lacks {row}");
    }
    let schema: Value = serde_json::from_str(SEARCH_SCHEMA).unwrap();
    let step = &schema["properties"]["search"]["properties"]["steps"]["items"]["properties"];
    for k in step.as_object().unwrap().keys() {
        let row = format!("| `search.steps[].{k}` |");
        assert!(FIELDS_DOC.contains(&row), "docs/reports.md lacks {row}");
    }
    let point = &schema["properties"]["search"]["properties"]["first_fail"]["properties"];
    for k in point.as_object().unwrap().keys() {
        let row = format!("| `search.first_fail.{k}` |");
        assert!(FIELDS_DOC.contains(&row), "docs/reports.md lacks {row}");
    }
}

/// `[embedded_gateway]` in a profile reaches the plan and becomes `wsscale serve` flags;
/// a misspelt key is refused with its line.
#[test]
fn embedded_gateway_settings_come_from_the_profile() {
    use wsscale::plan::build::build_plan_with;
    use wsscale::plan::profile::Profile;
    let p = Profile::parse(
        "connections = 5\n[embedded_gateway]\nmax_connections = \"3k\"\necho_delay = \"20ms\"\n",
        Path::new("x.toml"),
    )
    .unwrap();
    let plan = build_plan_with(&wsscale::plan::Overrides::default(), Some(&p)).unwrap();
    assert_eq!(plan.embedded_gateway.max_connections, Some(3000));
    assert_eq!(
        plan.embedded_gateway.serve_args(),
        ["--max-connections", "3000", "--echo-delay", "20ms"]
    );
    let e = Profile::parse(
        "connections = 5\n[embedded_gateway]\nmax_conections = 3\n",
        Path::new("x.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("x.toml:3:1: unknown key 'max_conections'"),
        "{e}"
    );
    // The shipped demo profile limits its gateway.
    let p = Profile::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/search.toml"
    )))
    .unwrap();
    assert_eq!(p.embedded_gateway.max_connections.unwrap().value, 3000);
}
