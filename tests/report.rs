//! Report contract tests: the JSON report validates against the committed schema
//! (`schema/report-v1.json`), every field is documented in `docs/reports.md`, values are
//! exact, the text summary carries the key lines, files are written atomically, and the CSV
//! time series has its header and one line per interval.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};
use wsscale::metrics::drift::HoldQuarters;
use wsscale::metrics::gateway::{GatewayRecord, GatewaySample, HealthCheck};
use wsscale::metrics::{
    DropReason, FailureKind, IntervalPercentiles, IntervalRow, Percentiles, PreflightNote,
    RunOutcome, Snapshot, SourceOutcome, ThresholdOutcome, new_histogram, record_us,
};
use wsscale::plan::Stage;
use wsscale::report::csv::{CSV_HEADER, to_csv};
use wsscale::report::{steps_document, summary_text, to_json, write_atomic, write_csv, write_json};

const SCHEMA: &str = include_str!("../schema/report-v1.json");
const FIELDS_DOC: &str = include_str!("../docs/reports.md");

const MIB: u64 = 1024 * 1024;

/// A run with failures, drops, two source addresses and real histograms.
fn sample() -> RunOutcome {
    let mut totals = Snapshot::default();
    let c = &mut totals.counters;
    c.attempted = 1000;
    c.established = 990;
    c.reconnects = 3;
    c.closed = 985;
    for _ in 0..7 {
        c.fail(FailureKind::HttpStatus);
    }
    c.http_status.insert(401, 7);
    for _ in 0..3 {
        c.fail(FailureKind::Refused);
    }
    c.drop_with(DropReason::CloseCode(1001));
    c.drop_with(DropReason::CloseCode(1001));
    c.drop_with(DropReason::Reset);
    c.bytes_sent = 123_456;
    c.bytes_received = 654_321;
    c.frames_received = 4242;
    c.pings_answered = 17;
    c.messages_sent = 2000;
    c.messages_received = 1990;
    c.messages_lost = 10;
    c.message_bytes_sent = 128_000;
    c.message_bytes_received = 127_400;
    c.other_messages_received = 5;
    c.pings_sent = 300;
    c.pongs_received = 299;
    c.heartbeats_sent = 40;
    c.heartbeat_replies = 39;
    totals.gauges.open = 2;
    {
        use wsscale::metrics::misbehave::Answer;
        use wsscale::plan::misbehave::MisbehaveKind;
        let m = &mut c.misbehave;
        for _ in 0..3 {
            m.opened(MisbehaveKind::InvalidUtf8);
        }
        m.answered(MisbehaveKind::InvalidUtf8, Answer::Close(1007));
        m.answered(MisbehaveKind::InvalidUtf8, Answer::Close(1007));
        m.answered(MisbehaveKind::InvalidUtf8, Answer::Http(503));
    }
    for us in [800u64, 1200, 1500, 2500] {
        record_us(&mut totals.hist.message_rtt, us);
    }
    record_us(&mut totals.hist.ping_rtt, 900);
    record_us(&mut totals.hist.heartbeat_rtt, 1100);
    record_us(&mut totals.hist.schedule_lag, 50);
    c.pushes_received = 3;
    for us in [400u64, 450, 1250] {
        record_us(&mut totals.hist.push_latency, us);
    }
    c.fanout_received = 2;
    for us in [900u64, 3000] {
        record_us(&mut totals.hist.fanout_latency, us);
    }
    for us in 1000..=100_000u64 {
        record_us(&mut totals.hist.tcp_connect, us);
    }
    for us in [250u64, 500, 750] {
        record_us(&mut totals.hist.ws_handshake, us);
    }
    let mut o = RunOutcome {
        started_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        duration: Duration::from_millis(50_250),
        stages: vec![
            Stage {
                duration: Duration::from_secs(10),
                target: 1000,
            },
            Stage {
                duration: Duration::from_secs(30),
                target: 1000,
            },
            Stage {
                duration: Duration::from_secs(10),
                target: 0,
            },
        ],
        targets: vec!["ws://127.0.0.1:9000/ws".to_string()],
        embedded_gateway: false,
        interrupted: false,
        sources_exhausted: false,
        tls_insecure: false,
        threads: 2,
        totals,
        peak_open: 1000,
        peak_reached_after: Duration::from_millis(12_500),
        rss_before_bytes: 10 * MIB,
        rss_peak_bytes: 13 * MIB,
        rss_at_peak_open_bytes: 10 * MIB + 1000 * 1500,
        per_source: vec![
            SourceOutcome {
                address: "127.0.0.2".into(),
                established: 500,
                failed: 4,
                addr_not_available: 0,
            },
            SourceOutcome {
                address: "127.0.0.3".into(),
                established: 490,
                failed: 6,
                addr_not_available: 2,
            },
        ],
        timeseries: vec![
            IntervalRow {
                t_s: 5.0,
                open: 400,
                connect_rate: 80.0,
                failures: 3,
                dropped: 0,
                msgs_sent_per_s: 40.0,
                msgs_received_per_s: 39.5,
                message_p50_ms: 1.2,
                message_p99_ms: 2.5,
                pushes_per_s: 200.0,
                push_p50_ms: 0.4,
                push_p99_ms: 1.25,
                fanout_p50_ms: 0.9,
                fanout_p99_ms: 3.0,
                latency_ms: [(
                    "message_rtt_ms".to_string(),
                    IntervalPercentiles {
                        p50: 1.2,
                        p90: 2.0,
                        p99: 2.5,
                    },
                )]
                .into(),
                failures_by_category: [("refused".to_string(), 3)].into(),
                drops_by_reason: [("close_1001".to_string(), 1)].into(),
                ..Default::default()
            },
            IntervalRow {
                t_s: 10.0,
                open: 800,
                connect_rate: 80.0,
                failures: 7,
                dropped: 1,
                msgs_sent_per_s: 120.0,
                msgs_received_per_s: 119.0,
                message_p50_ms: 0.0,
                message_p99_ms: 0.0,
                ..Default::default()
            },
            // A drop wave during a message burst, then the recovery.
            IntervalRow {
                t_s: 15.0,
                open: 500,
                dropped: 300,
                reconnects: 250,
                failures: 20,
                burst: 1,
                msgs_sent_per_s: 900.0,
                msgs_received_per_s: 700.0,
                message_p99_ms: 40.0,
                failures_by_category: [("refused".to_string(), 20)].into(),
                drops_by_reason: [("reset".to_string(), 300)].into(),
                ..Default::default()
            },
            IntervalRow {
                t_s: 20.0,
                open: 1000,
                reconnects: 60,
                msgs_sent_per_s: 200.0,
                msgs_received_per_s: 200.0,
                message_p99_ms: 0.5,
                ..Default::default()
            },
        ],
        thresholds: vec![
            ThresholdOutcome {
                expr: "message_rtt_ms.p99<5".into(),
                metric: "message_rtt_ms.p99".into(),
                measured: Some(2.501),
                passed: true,
            },
            ThresholdOutcome {
                expr: "ping_rtt_ms.p50 < 1".into(),
                metric: "ping_rtt_ms.p50".into(),
                measured: None,
                passed: false,
            },
        ],
        aborted_by_threshold: false,
        agents: Vec::new(),
        preflight: vec![PreflightNote {
            check: "ephemeral_ports".into(),
            name: "ephemeral ports".into(),
            status: "warn".into(),
            found: "28,232".into(),
            needed: "30,000".into(),
        }],
        verdict: None,
        complete: true,
        per_target: Vec::new(),
        protocol: None,
        reply_rules: Vec::new(),
        gateway: Some(sample_gateway()),
        holds: sample_holds(),
        gateway_read_back: None,
        drift_read_back: Vec::new(),
        // Churn planned, with an arrival cap, so every `churn` field is in the sample; no
        // rate stage and no peak of its own, so the shortfall stays the sample's.
        churn: Some(wsscale::metrics::churn::ChurnRecord {
            session: Some("exp:2s".into()),
            session_mean_s: Some(2.0),
            rates_per_s: vec![None, None],
            max_open: Some(100),
            peak_in_use: 0,
        }),
        disruption_threshold: 0.05,
    };
    wsscale::metrics::gateway::attach(&mut o);
    o
}

/// Gateway samples at 0 s (baseline), 5 s and 10 s, with a health check failing at 10 s.
fn sample_gateway() -> GatewayRecord {
    let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let mut samples = Vec::new();
    for (i, (t, rss)) in [(0u64, 10 * MIB), (5, 12 * MIB), (10, 14 * MIB)]
        .into_iter()
        .enumerate()
    {
        let mut x = GatewaySample::new(start + Duration::from_secs(t));
        x.processes = 1;
        x.rss_bytes = Some(rss);
        x.cpu_percent = (i > 0).then_some(12.5 * i as f64);
        x.threads = Some(4);
        x.fds = Some(10 + 80 * t);
        x.established = Some(80 * t);
        x.scrapes = 1;
        x.scrape_failures = u64::from(i == 1);
        x.metrics.insert("ws_connections".into(), 80.0 * t as f64);
        x.took_ms = 2.0;
        x.health = Some(HealthCheck {
            status: Some(if i == 2 { 503 } else { 200 }),
            latency_ms: 1.5,
            ok: i != 2,
        });
        samples.push(x);
    }
    GatewayRecord {
        watched: vec![
            "pid 4242".into(),
            "health http://127.0.0.1:9/healthz".into(),
        ],
        samples,
        errors: vec!["scrape of http://127.0.0.1:9/metrics: HTTP status 500".into()],
        watcher_cpu_s: 0.25,
    }
}

/// The 30 s hold (stage 2) with samples in both quarters.
fn sample_holds() -> Vec<HoldQuarters> {
    let mut h = HoldQuarters {
        stage: 2,
        stages: 3,
        from_s: 10.0,
        to_s: 40.0,
        target: 1000,
        ..Default::default()
    };
    for us in [1000u64, 2000] {
        record_us(&mut h.first.message_rtt, us);
        record_us(&mut h.last.message_rtt, us * 3);
    }
    h.first.messages_received = 100;
    h.first.seconds = 5.0;
    h.last.messages_received = 50;
    h.last.seconds = 5.0;
    vec![h]
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    jsonschema::meta::validate(&schema).expect("schema is a valid JSON Schema");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn json_validates_against_committed_schema() {
    let v = validator();
    let mut empty = sample();
    empty.totals = Snapshot::default();
    empty.peak_open = 0;
    empty.per_source.clear();
    empty.stages.clear();
    empty.timeseries.clear();
    empty.thresholds.clear();
    empty.aborted_by_threshold = true;
    empty.embedded_gateway = true;
    empty.interrupted = true;
    empty.sources_exhausted = true;
    for o in [sample(), empty] {
        let doc = to_json(&o);
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "report does not match schema: {errs:#?}");
    }
}

/// A named change that must make a valid report invalid.
type Mutation = (&'static str, fn(&mut Value));

/// Every object in the schema is closed and requires every property it declares.
fn assert_closed_and_required(path: &str, schema: &Value) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                assert_eq!(
                    m.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "{path} is not closed"
                );
                let mut required: Vec<&str> = m["required"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{path} has no required list"))
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                let mut declared: Vec<&str> = props.keys().map(String::as_str).collect();
                required.sort_unstable();
                declared.sort_unstable();
                assert_eq!(required, declared, "{path}: required != properties");
            }
            for (k, v) in m {
                assert_closed_and_required(&format!("{path}/{k}"), v);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                assert_closed_and_required(&format!("{path}/{i}"), v);
            }
        }
        _ => {}
    }
}

#[test]
fn schema_objects_are_closed_and_fully_required() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    assert_closed_and_required("#", &schema);
}

#[test]
fn schema_rejects_missing_extra_and_mistyped_fields() {
    let v = validator();
    let good = to_json(&sample());
    assert!(v.is_valid(&good));

    let mutations: Vec<Mutation> = vec![
        ("missing top-level memory", |d| {
            d.as_object_mut().unwrap().remove("memory");
        }),
        ("missing connections.attempted", |d| {
            d["connections"]
                .as_object_mut()
                .unwrap()
                .remove("attempted");
        }),
        ("missing timings.tcp_connect_ms.p99", |d| {
            d["timings"]["tcp_connect_ms"]
                .as_object_mut()
                .unwrap()
                .remove("p99");
        }),
        ("missing memory.bytes_per_connection", |d| {
            d["memory"]
                .as_object_mut()
                .unwrap()
                .remove("bytes_per_connection");
        }),
        ("missing fixed failure category", |d| {
            d["connections"]["failures"]
                .as_object_mut()
                .unwrap()
                .remove("refused");
        }),
        ("unknown top-level field", |d| d["surprise"] = json!(1)),
        ("unknown connections field", |d| {
            d["connections"]["surprise"] = json!(1)
        }),
        ("unknown failure category", |d| {
            d["connections"]["failures"]["http_status"] = json!(1)
        }),
        ("wrong schema_version", |d| d["schema_version"] = json!(2)),
        ("string count", |d| {
            d["connections"]["established"] = json!("990")
        }),
        ("negative percentile", |d| {
            d["timings"]["ws_handshake_ms"]["p50"] = json!(-1.0)
        }),
        ("missing timings.message_rtt_ms", |d| {
            d["timings"]
                .as_object_mut()
                .unwrap()
                .remove("message_rtt_ms");
        }),
        ("missing messages.lost", |d| {
            d["messages"].as_object_mut().unwrap().remove("lost");
        }),
        ("lost_rate above 1", |d| {
            d["messages"]["lost_rate"] = json!(1.5)
        }),
        ("unknown timeseries field", |d| {
            d["timeseries"][0]["surprise"] = json!(1)
        }),
        ("threshold without verdict", |d| {
            d["thresholds"][0].as_object_mut().unwrap().remove("passed");
        }),
        ("string measured", |d| {
            d["thresholds"][0]["measured"] = json!("2")
        }),
        ("missing aborted_by_threshold", |d| {
            d.as_object_mut().unwrap().remove("aborted_by_threshold");
        }),
    ];
    for (what, mutate) in mutations {
        let mut doc = good.clone();
        mutate(&mut doc);
        assert!(!v.is_valid(&doc), "schema accepted a report with {what}");
    }
}

#[test]
fn json_values_are_exact() {
    let doc = to_json(&sample());
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["started_at"], "2023-11-14T22:13:20.123Z");
    assert_eq!(doc["duration_s"], 50.25);
    assert_eq!(doc["threads"], 2);
    assert_eq!(doc["targets"], json!(["ws://127.0.0.1:9000/ws"]));
    assert_eq!(
        doc["stages"],
        json!([
            {"duration_s": 10.0, "target": 1000},
            {"duration_s": 30.0, "target": 1000},
            {"duration_s": 10.0, "target": 0}
        ])
    );

    let c = &doc["connections"];
    assert_eq!(c["attempted"], 1000);
    assert_eq!(c["established"], 990);
    assert_eq!(c["failed"], 10);
    assert_eq!(c["dropped"], 3);
    assert_eq!(c["closed"], 985);
    assert_eq!(c["reconnects"], 3);
    assert_eq!(c["peak_open"], 1000);
    assert_eq!(c["peak_reached_after_s"], 12.5);
    assert_eq!(c["peak_ramp_rate_per_s"], 80.0);
    assert_eq!(c["open_at_end"], 2);
    assert_eq!(c["success_rate"], 0.99);
    assert_eq!(c["failures"]["http_status_401"], 7);
    assert_eq!(c["failures"]["refused"], 3);
    assert_eq!(c["failures"]["dns"], 0);
    assert!(c["failures"].get("http_status").is_none());
    let failure_sum: u64 = c["failures"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(failure_sum, 10, "failure categories sum to failed");
    assert_eq!(c["drops"]["close_1001"], 2);
    assert_eq!(c["drops"]["reset"], 1);
    assert_eq!(c["drops"]["eof"], 0);
    assert_eq!(
        c["per_source"][1],
        json!({"address": "127.0.0.3", "established": 490, "failed": 6, "addr_not_available": 2})
    );

    let t = &doc["traffic"];
    assert_eq!(t["bytes_sent"], 123_456);
    assert_eq!(t["bytes_received"], 654_321);
    assert_eq!(t["frames_received"], 4242);
    assert_eq!(t["pings_answered"], 17);

    let msg = &doc["messages"];
    assert_eq!(
        *msg,
        json!({"sent": 2000, "received": 1990, "lost": 10, "lost_rate": 0.005,
               "bytes_sent": 128_000, "bytes_received": 127_400, "other_received": 5})
    );
    assert_eq!(
        doc["heartbeats"],
        json!({"pings_sent": 300, "pongs_received": 299, "heartbeats_sent": 40,
               "heartbeat_replies": 39})
    );
    assert_eq!(doc["timings"]["message_rtt_ms"]["count"], 4);
    assert_eq!(doc["timings"]["message_rtt_ms"]["min"], 0.8);
    assert_eq!(doc["timings"]["ping_rtt_ms"]["p50"], 0.9);
    assert_eq!(doc["timings"]["heartbeat_rtt_ms"]["max"], 1.1);
    assert_eq!(doc["timings"]["schedule_lag_ms"]["count"], 1);
    assert_eq!(doc["aborted_by_threshold"], false);
    assert_eq!(
        doc["timeseries"][0],
        json!({"t_s": 5.0, "open": 400, "connect_rate": 80.0, "failures": 3, "dropped": 0,
               "msgs_sent_per_s": 40.0, "msgs_received_per_s": 39.5,
               "message_p50_ms": 1.2, "message_p99_ms": 2.5, "pushes_per_s": 200.0,
               "push_p50_ms": 0.4, "push_p99_ms": 1.25, "fanout_p50_ms": 0.9,
               "fanout_p99_ms": 3.0, "rss_bytes": 0, "gateway_rss_bytes": 12 * MIB,
               "gateway_cpu_percent": 12.5, "gateway_fds": 410, "gateway_established": 400,
               "gateway_bytes_per_connection": 5242.88, "health_failures": 0,
               "health_latency_ms": 1.5,
               "latency_ms": {"message_rtt_ms": {"p50": 1.2, "p90": 2.0, "p99": 2.5}},
               "failures_by_category": {"refused": 3}, "drops_by_reason": {"close_1001": 1},
               "opens_per_s": 0.0, "closes_per_s": 0.0,
               "reconnects": 0, "burst": 0})
    );
    // The gateway: 4 MiB more at 800 open; the failed health check at 10 s.
    let g = &doc["gateway"];
    assert_eq!(g["rss_before_bytes"], 10 * MIB);
    assert_eq!(g["rss_at_peak_open_bytes"], 14 * MIB);
    assert_eq!(g["open_at_peak"], 800);
    assert_eq!(g["bytes_per_connection"], 5242.88);
    assert_eq!(g["established_at_peak"], 800);
    assert_eq!(g["connection_mismatch"], Value::Null);
    assert_eq!(g["cpu_percent"], json!({"mean": 18.75, "max": 25.0}));
    assert_eq!(g["scrapes"], 3);
    assert_eq!(g["scrape_failures"], 1);
    assert_eq!(g["metrics"]["ws_connections"]["max"], 800.0);
    assert_eq!(
        g["health"],
        json!({"checks": 3, "failures": 1, "failure_times_s": [10.0],
               "latency_ms": {"mean": 1.5, "max": 1.5}, "last_status": 503})
    );
    assert_eq!(doc["timeseries"][1]["health_failures"], 1);
    assert_eq!(g["sample_ms"], json!({"mean": 2.0, "max": 2.0}));
    assert_eq!(g["watcher_cpu_s"], 0.25);
    // Drift over the 30 s hold: latency ×3, half the messages.
    let d = &doc["drift"][0];
    assert_eq!(d["stage"], 2);
    // HdrHistogram keeps 3 significant digits: 3000 µs reads back as 3.001 ms.
    assert_eq!(d["message_rtt_ms"], json!({"p50": 3.001, "p99": 3.002}));
    assert_eq!(d["msgs_per_s"], 0.5);
    assert_eq!(d["ping_rtt_ms"], Value::Null);
    assert_eq!(d["notes"].as_array().unwrap().len(), 2, "{d}");
    // Server pushes and fan-out: delivered = fan-out samples + own echoes; expected =
    // sent × peak open because the run saw fan-out.
    assert_eq!(doc["pushes"], json!({"received": 3}));
    assert_eq!(
        doc["fanout"],
        json!({"delivered": 1992, "expected": 2_000_000})
    );
    assert_eq!(doc["timings"]["push_latency_ms"]["count"], 3);
    assert_eq!(doc["timings"]["push_latency_ms"]["p50"], 0.45);
    assert_eq!(doc["timings"]["fanout_latency_ms"]["count"], 2);
    let mut echo_only = sample();
    echo_only.totals.counters.fanout_received = 0;
    let doc2 = to_json(&echo_only);
    assert_eq!(doc2["fanout"], json!({"delivered": 1990, "expected": null}));
    assert_eq!(doc["timeseries"].as_array().unwrap().len(), 4);
    // The drop wave at 10–15 s and its recovery by 20 s, found in the time series; the drop
    // of the interval just before belongs to it (a wave may straddle a boundary).
    assert_eq!(doc["disruption_threshold"], 0.05);
    assert_eq!(
        doc["disruptions"],
        json!([{"start_s": 5.0, "open_before": 400, "dropped": 301,
                "drops_by_reason": {"reset": 300}, "reconnect_attempts": 310,
                "peak_reconnect_rate_per_s": 50.0, "failures_during_recovery": 27,
                "failures_by_category": {"refused": 20}, "recovery_s": 15.0, "note": null}])
    );
    assert_eq!(
        doc["bursts"],
        json!([{"burst": 1, "start_s": 10.0, "baseline_p99_ms": 0.0, "p99_ms": 40.0,
                "peak_msgs_sent_per_s": 900.0, "recovery_s": 10.0, "note": null}])
    );
    assert_eq!(
        doc["thresholds"],
        json!([
            {"expr": "message_rtt_ms.p99<5", "metric": "message_rtt_ms.p99", "measured": 2.501, "passed": true},
            {"expr": "ping_rtt_ms.p50 < 1", "metric": "ping_rtt_ms.p50", "measured": null, "passed": false}
        ])
    );

    let m = &doc["memory"];
    assert_eq!(m["rss_before_bytes"], 10 * MIB);
    assert_eq!(m["rss_peak_bytes"], 13 * MIB);
    assert_eq!(m["rss_at_peak_open_bytes"], 10 * MIB + 1_500_000);
    // (10 MiB + 1000 × 1500 − 10 MiB) ÷ 1000
    assert_eq!(m["bytes_per_connection"], 1500.0);
    assert_eq!(m["includes_gateway"], false);
}

#[test]
fn percentiles_match_recorded_values() {
    let doc = to_json(&sample());
    let p = &doc["timings"]["tcp_connect_ms"];
    assert_eq!(p["count"], 99_001);
    // HdrHistogram with 3 significant digits: a value is reported within 0.1 % of its bucket.
    let close = |field: &str, expected_ms: f64| {
        let got = p[field].as_f64().unwrap();
        assert!(
            (got - expected_ms).abs() <= expected_ms * 0.001 + 0.001,
            "{field}: got {got} ms, expected about {expected_ms} ms"
        );
    };
    close("min", 1.0);
    close("mean", 50.5);
    close("p50", 50.5);
    close("p90", 90.1);
    close("p99", 99.01);
    close("max", 100.0);
    for f in [
        "min", "mean", "p50", "p90", "p95", "p99", "p999", "p9999", "max",
    ] {
        let v = p[f].as_f64().unwrap();
        assert_eq!(
            v,
            (v * 1000.0).round() / 1000.0,
            "{f} has at most 3 decimals"
        );
    }

    let h = &doc["timings"]["ws_handshake_ms"];
    assert_eq!(h["count"], 3);
    assert_eq!(h["min"], 0.25);
    assert_eq!(h["p50"], 0.5);
    assert_eq!(h["max"], 0.75);
}

#[test]
fn empty_histogram_gives_zero_count_and_zeros() {
    let p = Percentiles::from_hist(&new_histogram());
    assert_eq!(p.count, 0);
    assert_eq!(p, Percentiles::default());
    let mut o = sample();
    o.totals.hist.ws_handshake = new_histogram().into();
    let doc = to_json(&o);
    assert_eq!(
        doc["timings"]["ws_handshake_ms"],
        json!({"count": 0, "min": 0.0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p95": 0.0,
               "p99": 0.0, "p999": 0.0, "p9999": 0.0, "max": 0.0})
    );
}

#[test]
fn bytes_per_connection_is_null_without_connections() {
    let mut o = sample();
    o.peak_open = 0;
    let doc = to_json(&o);
    assert!(doc["memory"]["bytes_per_connection"].is_null());
    assert!(doc["connections"]["peak_ramp_rate_per_s"].is_null());
    assert!(validator().is_valid(&doc));
    assert!(summary_text(&o).contains("n/a (no connection was open)"));
}

#[test]
fn unattributed_http_status_failures_keep_the_sum() {
    let mut o = sample();
    o.totals.counters.fail(FailureKind::HttpStatus); // no code recorded
    let doc = to_json(&o);
    assert_eq!(doc["connections"]["failures"]["http_status_401"], 7);
    assert_eq!(doc["connections"]["failures"]["http_status_other"], 1);
    assert!(validator().is_valid(&doc));
}

#[test]
fn password_in_target_url_is_redacted() {
    let mut o = sample();
    o.targets = vec!["ws://bob:hunter2@gw.example:443/ws".into()];
    let doc = to_json(&o);
    assert_eq!(doc["targets"][0], "ws://bob:***@gw.example:443/ws");
    let text = summary_text(&o);
    assert!(!text.contains("hunter2"), "{text}");
}

/// Collect the documented dotted path of every field in `v`.
fn field_paths(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let key = if prefix == "connections.failures" && k.starts_with("http_status_") {
                    if k == "http_status_other" {
                        k.clone()
                    } else {
                        "http_status_<code>".to_string()
                    }
                } else if prefix == "connections.drops" && k.starts_with("close_") {
                    "close_<code>".to_string()
                } else if prefix == "gateway.metrics" {
                    "<series>".to_string()
                } else if prefix == "timeseries[].latency_ms" {
                    "<metric>".to_string()
                } else if prefix.ends_with("[].failures_by_category") {
                    "<category>".to_string()
                } else if prefix.ends_with("[].drops_by_reason") {
                    "<reason>".to_string()
                } else if prefix == "misbehave[].answers" {
                    "<answer>".to_string()
                } else {
                    k.clone()
                };
                let path = if prefix.is_empty() {
                    key
                } else if prefix.starts_with("timings.") {
                    format!("timings.*.{key}")
                } else {
                    format!("{prefix}.{key}")
                };
                out.push(path.clone());
                field_paths(&path, child, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                field_paths(&format!("{prefix}[]"), item, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_field_is_documented() {
    let mut o = sample();
    o.totals.counters.fail(FailureKind::HttpStatus); // also produce http_status_other
    let mut paths = Vec::new();
    field_paths("", &to_json(&o), &mut paths);
    paths.sort();
    paths.dedup();
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !FIELDS_DOC.contains(&format!("| `{p}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields missing from docs/reports.md: {missing:?}"
    );
}

#[test]
fn text_summary_has_key_lines() {
    let text = summary_text(&sample());
    for needle in [
        "wsscale ",
        "ws://127.0.0.1:9000/ws",
        "ramp to 1000 over 10s",
        "hold 1000 for 30s",
        "ramp to 0 over 10s",
        "threads",
        "2023-11-14T22:13:20.123Z",
        "50.25s",
        "(99.00% success)",
        "Failures by category",
        "http_status_401",
        "refused",
        "Drops by reason",
        "close_1001",
        "tcp connect",
        "ws handshake",
        "1.46 KiB  (1500 bytes)",
        "127.0.0.3",
    ] {
        assert!(text.contains(needle), "summary lacks {needle:?}:\n{text}");
    }
    // Only non-zero categories, largest first.
    assert!(!text.contains("dns"), "{text}");
    let pos = |s: &str| text.find(s).unwrap();
    assert!(pos("http_status_401") < pos("refused"), "{text}");
    assert!(!text.contains("INTERRUPTED"));
    assert!(!text.contains("embedded gateway"));
    assert!(!text.contains("ran out of local ports"));

    let line = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("attempted"), "attempted 1000");
    assert_eq!(line("established"), "established 990 (99.00% success)");
    assert_eq!(line("failed"), "failed 10");
    assert_eq!(
        line("peak open"),
        "peak open 1000 (reached after 12.5s, 80.0 conn/s)"
    );
    assert_eq!(line("http_status_401"), "http_status_401 7");
}

#[test]
fn text_summary_flags_interrupted_embedded_and_exhausted_runs() {
    let mut o = sample();
    o.interrupted = true;
    o.embedded_gateway = true;
    o.sources_exhausted = true;
    let text = summary_text(&o);
    assert!(text.contains("INTERRUPTED"), "{text}");
    assert!(
        text.contains("(embedded gateway, in-process: memory figures include it)"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l
            == "All source addresses ran out of local ports for every target at some point: \
                the engine retried with back-off (connections.source_port_retries) while ports \
                were held. Add source addresses (--source-ip) or targets, or widen \
                net.ipv4.ip_local_port_range."),
        "{text}"
    );
}

#[test]
fn text_summary_caps_the_source_table() {
    let mut o = sample();
    o.per_source = (0..25u64)
        .map(|i| SourceOutcome {
            address: format!("10.0.0.{i}"),
            established: i,
            failed: 1,
            addr_not_available: 0,
        })
        .collect();
    let text = summary_text(&o);
    // The top 20 by established are 10.0.0.5 ..= 10.0.0.24; the 5 smallest are summed up.
    assert!(text.contains("10.0.0.24 "), "{text}");
    assert!(text.contains("10.0.0.5 "), "{text}");
    assert!(!text.contains("10.0.0.4 "), "{text}");
    assert!(
        text.contains("… 5 more (established 10, failed 5, addr_not_available 0)"),
        "{text}"
    );
}

#[test]
fn text_summary_of_an_empty_run() {
    let mut o = sample();
    o.totals = Snapshot::default();
    o.peak_open = 0;
    let text = summary_text(&o);
    assert!(text.contains("no attempts"), "{text}");
    assert!(text.contains("(no samples)"), "{text}");
}

#[test]
fn write_atomic_replaces_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    write_atomic(&path, b"first").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    write_atomic(&path, b"second, longer").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["report.json".to_string()]);
}

#[test]
fn write_atomic_fails_cleanly_into_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("report.json");
    assert!(write_atomic(&path, b"x").is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn write_json_output_reparses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    let o = sample();
    write_json(&path, &o).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("}\n"));
    assert!(text.starts_with("{\n  \"schema_version\": 1,"), "{text}");
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back, to_json(&o));
    assert!(validator().is_valid(&back));
}

#[test]
fn lost_rate_is_null_without_messages() {
    let mut o = sample();
    o.totals.counters.messages_sent = 0;
    o.totals.counters.messages_lost = 0;
    let doc = to_json(&o);
    assert!(doc["messages"]["lost_rate"].is_null());
    assert!(validator().is_valid(&doc));
}

#[test]
fn text_summary_has_messages_heartbeats_timings_and_thresholds() {
    let text = summary_text(&sample());
    for needle in [
        "Messages",
        "received (echoes)",
        "(0.50% of sent)",
        "Heartbeats",
        "pongs received",
        "message rtt",
        "ping rtt",
        "heartbeat rtt",
        "schedule lag",
        "p99.9",
        "p99.99",
        "Thresholds (1 of 2 FAILED)",
        "✓ message_rtt_ms.p99<5",
        "measured 2.501 ms",
        "✗ ping_rtt_ms.p50 < 1",
        "measured n/a (no data)",
    ] {
        assert!(text.contains(needle), "summary lacks {needle:?}:\n{text}");
    }
    // Thresholds come last.
    assert!(
        text.trim_end().ends_with("measured n/a (no data)"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("lost"))
        .unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>().join(" "),
        "lost 10 (0.50% of sent)"
    );
}

#[test]
fn text_summary_hides_traffic_that_was_not_configured() {
    let mut o = sample();
    let c = &mut o.totals.counters;
    c.messages_sent = 0;
    c.messages_received = 0;
    c.messages_lost = 0;
    c.message_bytes_sent = 0;
    c.message_bytes_received = 0;
    c.other_messages_received = 0;
    c.pings_sent = 0;
    c.pongs_received = 0;
    c.heartbeats_sent = 0;
    c.heartbeat_replies = 0;
    o.totals.hist.message_rtt.reset();
    o.totals.hist.ping_rtt.reset();
    o.totals.hist.heartbeat_rtt.reset();
    o.totals.hist.schedule_lag.reset();
    o.thresholds.clear();
    let text = summary_text(&o);
    for absent in [
        "Messages",
        "Heartbeats",
        "message rtt",
        "ping rtt",
        "schedule lag",
        "Thresholds",
    ] {
        assert!(!text.contains(absent), "summary has {absent:?}:\n{text}");
    }
    assert!(text.contains("tcp connect"), "{text}");
}

#[test]
fn text_summary_shows_lost_messages_without_samples() {
    let mut o = sample();
    o.totals.hist.message_rtt.reset();
    o.totals.counters.messages_received = 0;
    o.totals.counters.messages_lost = 2000;
    let text = summary_text(&o);
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("message rtt"))
        .unwrap_or_else(|| panic!("no message rtt row:\n{text}"));
    assert!(row.contains("(no samples)"), "{row}");
    assert!(text.contains("(100.00% of sent)"), "{text}");
}

#[test]
fn text_summary_flags_an_aborted_run() {
    let mut o = sample();
    o.aborted_by_threshold = true;
    let text = summary_text(&o);
    assert!(text.contains("ABORTED"), "{text}");
    assert!(text.contains("--abort-on-fail"), "{text}");
}

#[test]
fn csv_has_header_and_one_line_per_interval() {
    let o = sample();
    let text = to_csv(&o.timeseries);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + o.timeseries.len(), "{text}");
    assert_eq!(
        lines[0],
        "t_s,open,connect_rate,failures,dropped,msgs_sent_per_s,msgs_received_per_s,message_p50_ms,message_p99_ms,pushes_per_s,push_p50_ms,push_p99_ms,fanout_p50_ms,fanout_p99_ms,rss_bytes,gateway_rss_bytes,gateway_cpu_percent,gateway_fds,gateway_established,gateway_bytes_per_connection,health_failures,health_latency_ms,opens_per_s,closes_per_s,reconnects,burst"
    );
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(
        lines[1],
        "5,400,80,3,0,40,39.5,1.2,2.5,200,0.4,1.25,0.9,3,0,12582912,12.5,410,400,5242.88,0,1.5,0,0,0,0"
    );
    assert_eq!(
        lines[2],
        "10,800,80,7,1,120,119,0,0,0,0,0,0,0,0,14680064,25,810,800,5242.88,1,1.5,0,0,0,0"
    );
    // Nothing watched: empty cells.
    let plain = to_csv(&[IntervalRow::default()]);
    assert!(
        plain
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(",0,,,,,,0,,0,0,0,0"),
        "{plain}"
    );
    let columns = CSV_HEADER.split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns));
    // The same columns as the JSON rows' numbers (the per-category maps are JSON only).
    let doc = to_json(&o);
    let mut json_keys: Vec<&str> = doc["timeseries"][0]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| !v.is_object())
        .map(|(k, _)| k.as_str())
        .collect();
    let mut csv_keys: Vec<&str> = CSV_HEADER.split(',').collect();
    json_keys.sort_unstable();
    csv_keys.sort_unstable();
    assert_eq!(json_keys, csv_keys);
}

#[test]
fn write_csv_writes_atomically_even_without_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ts.csv");
    write_csv(&path, &sample().timeseries).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 5);
    write_csv(&path, &[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{CSV_HEADER}\n")
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn progressive_document_wraps_valid_step_reports() {
    let v = validator();
    let mut second = sample();
    second.interrupted = true;
    let doc = steps_document(vec![to_json(&sample()), to_json(&second)]);
    assert_eq!(doc["schema_version"], 1);
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        let errs = errors(&v, s);
        assert!(
            errs.is_empty(),
            "step report does not match schema: {errs:#?}"
        );
    }
    assert_eq!(steps[1]["interrupted"], true);
    assert_eq!(doc.as_object().unwrap().len(), 2, "{doc}");
    assert!(FIELDS_DOC.contains(r#"{ "schema_version": 1, "steps": ["#));
}

#[test]
fn docs_mention_wire_bytes_and_exit_codes() {
    assert!(FIELDS_DOC.contains("upgrade request"), "traffic.bytes_sent");
    assert!(FIELDS_DOC.contains("`99`"));
    for m in wsscale::plan::threshold::HISTOGRAMS {
        assert!(FIELDS_DOC.contains(&format!("`{m}")), "{m} undocumented");
    }
}

#[test]
fn report_merge_carries_the_gateway_view_over() {
    let o = sample();
    let doc = to_json(&o);
    let merged = wsscale::report::merge::merge(&[wsscale::report::merge::Input {
        name: "one.json".into(),
        doc: doc.clone(),
    }])
    .unwrap();
    let back = to_json(&merged);
    assert_eq!(back["gateway"], doc["gateway"]);
    assert_eq!(back["drift"], doc["drift"]);
    assert_eq!(back["timeseries"][1]["gateway_rss_bytes"], 14 * MIB);
    assert_eq!(back["timeseries"][1]["health_failures"], 1);
}
