//! Thresholds: the parse table (operators, whitespace, values, errors that list the valid
//! metric names), evaluation against hand-built run outcomes (including metrics without
//! data), and the "already lost" check behind `--abort-on-fail`.

mod util;

use std::time::{Duration, UNIX_EPOCH};

use util::stage;
use wsscale::metrics::RunOutcome;
use wsscale::metrics::thresholds::{cannot_be_met, evaluate, measure, planned_attempts};
use wsscale::metrics::{FailureKind, Snapshot, record_us};
use wsscale::plan::Reconnect;
use wsscale::plan::threshold::{METRICS, Op, Threshold, ThresholdError, parse};
use wsscale::report::summary_text;

fn t(expr: &str) -> Threshold {
    parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

#[test]
fn parse_table() {
    let cases: &[(&str, &str, Op, f64)] = &[
        (
            "connect_success_rate>=0.95",
            "connect_success_rate",
            Op::Ge,
            0.95,
        ),
        ("handshake_ms.p95<5000", "handshake_ms.p95", Op::Lt, 5000.0),
        (
            "message_rtt_ms.p99 < 200",
            "message_rtt_ms.p99",
            Op::Lt,
            200.0,
        ),
        ("dropped==0", "dropped", Op::Eq, 0.0),
        (
            "messages.lost_rate<0.01",
            "messages.lost_rate",
            Op::Lt,
            0.01,
        ),
        ("  failed <= 10  ", "failed", Op::Le, 10.0),
        ("established>1k", "established", Op::Gt, 1000.0),
        ("peak_open != 0", "peak_open", Op::Ne, 0.0),
        (
            "connect_success_rate >= 99.5%",
            "connect_success_rate",
            Op::Ge,
            0.995,
        ),
        (
            "tcp_connect_ms.max<1e3",
            "tcp_connect_ms.max",
            Op::Lt,
            1000.0,
        ),
        (
            "schedule_lag_ms.p9999<=-1",
            "schedule_lag_ms.p9999",
            Op::Le,
            -1.0,
        ),
        (
            "memory.bytes_per_connection<1024",
            "memory.bytes_per_connection",
            Op::Lt,
            1024.0,
        ),
        (
            "heartbeat_rtt_ms.mean>0.5",
            "heartbeat_rtt_ms.mean",
            Op::Gt,
            0.5,
        ),
    ];
    for (expr, metric, op, value) in cases {
        let th = t(expr);
        assert_eq!(th.metric, *metric, "{expr}");
        assert_eq!(th.op, *op, "{expr}");
        assert!((th.value - value).abs() < 1e-12, "{expr}: {}", th.value);
        assert_eq!(th.expr, expr.trim(), "{expr}");
    }
}

#[test]
fn parse_errors() {
    let cases: &[(&str, &str)] = &[
        ("dropped", "no comparison operator"),
        ("dropped=0", "'=' is not an operator, write '=='"),
        ("dropped!0", "'!' must be followed by '='"),
        ("<5", "the metric name is missing"),
        ("dropped<", "the value is missing"),
        ("dropped<<5", "more than one operator"),
        ("dropped<five", "\"five\" is not a number"),
        ("dropped<5%", "\"5%\" is not a number"),
        ("dropped<NaN", "is not a number"),
    ];
    for (expr, needle) in cases {
        let e = parse(expr).unwrap_err().to_string();
        assert!(e.contains(needle), "{expr}: {e}");
        assert!(
            e.contains(&format!("{expr:?}")),
            "{expr}: the message quotes it: {e}"
        );
    }
    // Percentages only for rates.
    let e = parse("dropped<5%").unwrap_err().to_string();
    assert!(!e.contains("95%"), "{e}");
    let e = parse("connect_success_rate>=abc").unwrap_err().to_string();
    assert!(e.contains("95%"), "{e}");
}

#[test]
fn unknown_metric_lists_the_valid_ones() {
    let e = parse("nosuch<1").unwrap_err();
    assert!(matches!(e, ThresholdError::UnknownMetric { .. }), "{e:?}");
    let m = e.to_string();
    for needle in [
        "unknown metric \"nosuch\"",
        "valid metrics:",
        "connect_success_rate",
        "established",
        "failed",
        "dropped",
        "peak_open",
        "reconnects",
        "tcp_connect_ms",
        "handshake_ms",
        "message_rtt_ms",
        "ping_rtt_ms",
        "heartbeat_rtt_ms",
        "schedule_lag_ms",
        "p50",
        "p9999",
        "messages.lost_rate",
        "memory.bytes_per_connection",
    ] {
        assert!(m.contains(needle), "lacks {needle:?}: {m}");
    }
    // A typo gets a suggestion.
    let m = parse("mesage_rtt_ms.p99<5").unwrap_err().to_string();
    assert!(m.contains("did you mean \"message_rtt_ms.p99\"?"), "{m}");
    let m = parse("handshak_ms.p95<5").unwrap_err().to_string();
    assert!(m.contains("did you mean \"handshake_ms.p95\"?"), "{m}");
    // The JSON report's name for the upgrade histogram is an alias.
    assert_eq!(
        parse("ws_handshake_ms.p95<5").unwrap().metric,
        "handshake_ms.p95"
    );
    // Every listed name parses.
    for name in METRICS {
        t(&format!("{name}>=0"));
    }
    assert!(METRICS.len() >= 12 + 6 * 9, "{}", METRICS.len());
}

#[test]
fn ops_hold() {
    assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0));
    assert!(Op::Le.holds(2.0, 2.0) && !Op::Le.holds(2.1, 2.0));
    assert!(Op::Gt.holds(3.0, 2.0) && !Op::Gt.holds(2.0, 2.0));
    assert!(Op::Ge.holds(2.0, 2.0) && !Op::Ge.holds(1.9, 2.0));
    assert!(Op::Eq.holds(0.0, 0.0) && !Op::Eq.holds(1.0, 0.0));
    assert!(Op::Ne.holds(1.0, 0.0) && !Op::Ne.holds(0.0, 0.0));
    assert_eq!(Op::Ge.to_string(), ">=");
}

// ---------------------------------------------------------------------------------------
// Evaluation.

fn outcome(totals: Snapshot, peak_open: u64) -> RunOutcome {
    RunOutcome {
        started_at: UNIX_EPOCH,
        duration: Duration::from_secs(10),
        stages: vec![stage(10_000, 100)],
        targets: vec!["ws://127.0.0.1:1/".into()],
        embedded_gateway: false,
        interrupted: false,
        sources_exhausted: false,
        tls_insecure: false,
        threads: 1,
        totals,
        peak_open,
        peak_reached_after: Duration::from_secs(5),
        rss_before_bytes: 1_000_000,
        rss_peak_bytes: 2_000_000,
        rss_at_peak_open_bytes: 1_100_000,
        per_source: Vec::new(),
        timeseries: Vec::new(),
        thresholds: Vec::new(),
        aborted_by_threshold: false,
        agents: Vec::new(),
        preflight: Vec::new(),
        verdict: None,
        complete: true,
        gateway: None,
        holds: Vec::new(),
        gateway_read_back: None,
        drift_read_back: Vec::new(),
        churn: None,
        per_target: Vec::new(),
        protocol: None,
        reply_rules: Vec::new(),
        disruption_threshold: 0.05,
    }
}

/// 100 attempts: 98 established, 2 refused, 1 drop; 1000 messages, 5 lost; message round
/// trips 1..=100 ms; nothing else measured.
fn busy_run() -> RunOutcome {
    let mut s = Snapshot::default();
    let c = &mut s.counters;
    c.attempted = 100;
    c.established = 98;
    c.fail(FailureKind::Refused);
    c.fail(FailureKind::Refused);
    c.drop_with(wsscale::metrics::DropReason::Reset);
    c.messages_sent = 1000;
    c.messages_received = 995;
    c.messages_lost = 5;
    for ms in 1..=100u64 {
        record_us(&mut s.hist.message_rtt, ms * 1000);
    }
    record_us(&mut s.hist.tcp_connect, 300);
    outcome(s, 98)
}

#[test]
fn measures_report_figures() {
    let o = busy_run();
    let m = |name: &str| measure(name, &o);
    assert_eq!(m("connect_success_rate"), Some(0.98));
    assert_eq!(m("attempted"), Some(100.0));
    assert_eq!(m("established"), Some(98.0));
    assert_eq!(m("failed"), Some(2.0));
    assert_eq!(m("dropped"), Some(1.0));
    assert_eq!(m("reconnects"), Some(0.0));
    assert_eq!(m("peak_open"), Some(98.0));
    assert_eq!(m("messages.sent"), Some(1000.0));
    assert_eq!(m("messages.received"), Some(995.0));
    assert_eq!(m("messages.lost"), Some(5.0));
    assert_eq!(m("messages.lost_rate"), Some(0.005));
    // (1.1 MB − 1 MB) ÷ 98
    assert!((m("memory.bytes_per_connection").unwrap() - 100_000.0 / 98.0).abs() < 1e-9);
    assert_eq!(m("tcp_connect_ms.max"), Some(0.3));
    let p99 = m("message_rtt_ms.p99").unwrap();
    assert!((p99 - 99.0).abs() <= 0.1, "{p99}");
    assert_eq!(m("message_rtt_ms.min"), Some(1.0));
    assert!((m("message_rtt_ms.max").unwrap() - 100.0).abs() <= 0.1);
}

#[test]
fn metrics_without_data_are_none_and_fail() {
    let o = outcome(Snapshot::default(), 0);
    for name in [
        "connect_success_rate",
        "messages.lost_rate",
        "memory.bytes_per_connection",
        "message_rtt_ms.p99",
        "ping_rtt_ms.max",
        "handshake_ms.p50",
    ] {
        assert_eq!(measure(name, &o), None, "{name}");
    }
    // Counters are data even when zero.
    assert_eq!(measure("dropped", &o), Some(0.0));

    let ts = [
        t("message_rtt_ms.p99<200"),
        t("dropped==0"),
        t("connect_success_rate>=0"),
    ];
    let v = evaluate(&ts, &o);
    assert_eq!(v.len(), 3);
    assert_eq!((v[0].measured, v[0].passed), (None, false));
    assert_eq!((v[1].measured, v[1].passed), (Some(0.0), true));
    assert_eq!((v[2].measured, v[2].passed), (None, false));
}

#[test]
fn evaluate_keeps_order_and_expressions() {
    let mut o = busy_run();
    let ts = [
        t("connect_success_rate>=0.95"),
        t("connect_success_rate >= 99%"),
        t("dropped==0"),
        t("messages.lost_rate<0.01"),
        t("message_rtt_ms.p99<200"),
        t("message_rtt_ms.p50<10"),
        t("failed<=2"),
    ];
    let v = evaluate(&ts, &o);
    let verdicts: Vec<(&str, bool)> = v.iter().map(|r| (r.expr.as_str(), r.passed)).collect();
    assert_eq!(
        verdicts,
        vec![
            ("connect_success_rate>=0.95", true),
            ("connect_success_rate >= 99%", false),
            ("dropped==0", false),
            ("messages.lost_rate<0.01", true),
            ("message_rtt_ms.p99<200", true),
            ("message_rtt_ms.p50<10", false),
            ("failed<=2", true),
        ]
    );
    assert_eq!(v[2].metric, "dropped");
    assert_eq!(v[2].measured, Some(1.0));

    // The summary shows each one with its measured value and a mark.
    o.thresholds = v;
    let text = summary_text(&o);
    assert!(text.contains("Thresholds (3 of 7 FAILED)"), "{text}");
    assert!(text.contains("✗ dropped==0"), "{text}");
    assert!(text.contains("✓ connect_success_rate>=0.95"), "{text}");
    assert!(text.contains("measured 0.98 (98.00%)"), "{text}");
}

// ---------------------------------------------------------------------------------------
// cannot_be_met.

#[test]
fn counters_over_an_upper_bound_are_lost() {
    let mut s = Snapshot::default();
    let lost = |expr: &str, s: &Snapshot| cannot_be_met(&t(expr), s, 100);
    assert!(!lost("dropped==0", &s));
    s.counters.drop_with(wsscale::metrics::DropReason::Eof);
    assert!(lost("dropped==0", &s));
    assert!(lost("dropped<1", &s));
    assert!(!lost("dropped<=1", &s));
    assert!(!lost("dropped<2", &s));
    // Lower bounds and != can still be met: counters grow.
    assert!(!lost("dropped>5", &s));
    assert!(!lost("dropped>=5", &s));
    assert!(!lost("dropped!=1", &s));

    for _ in 0..9 {
        s.counters.fail(FailureKind::Refused);
    }
    assert!(!lost("failed<10", &s));
    s.counters.fail(FailureKind::Refused);
    assert!(lost("failed<10", &s), "failed<10 at 10 failures");
    assert!(!lost("failed<=10", &s));

    s.counters.messages_lost = 3;
    assert!(lost("messages.lost==0", &s));
    assert!(lost("messages.lost<=2", &s));
    assert!(!lost("messages.lost<=3", &s));
    // A loss *rate* can still shrink as more messages are sent.
    s.counters.messages_sent = 3;
    assert!(!lost("messages.lost_rate<0.01", &s));

    s.counters.reconnects = 4;
    assert!(lost("reconnects<4", &s));
    s.gauges.open = 50;
    assert!(lost("peak_open<50", &s));
    assert!(!lost("peak_open<=50", &s));
}

#[test]
fn success_rate_is_lost_when_failures_exceed_what_the_plan_can_make_up() {
    let lost = |expr: &str, failed: u64, attempted: u64, planned: u64| {
        let mut s = Snapshot::default();
        s.counters.attempted = attempted;
        for _ in 0..failed {
            s.counters.fail(FailureKind::Refused);
        }
        cannot_be_met(&t(expr), &s, planned)
    };
    // 100 planned, ≥ 95 % needed: at most 5 may fail.
    assert!(!lost("connect_success_rate>=0.95", 5, 10, 100));
    assert!(lost("connect_success_rate>=0.95", 6, 10, 100));
    assert!(!lost("connect_success_rate>0.95", 4, 10, 100));
    assert!(lost("connect_success_rate>0.95", 5, 10, 100));
    assert!(lost("connect_success_rate>=1.0", 1, 1, 100));
    assert!(lost("connect_success_rate==1", 1, 1, 100));
    // Upper bounds on the rate are never lost early.
    assert!(!lost("connect_success_rate<0.5", 0, 50, 100));
    // More attempts than planned (reconnects): the attempts so far bound it instead.
    assert!(!lost("connect_success_rate>=0.95", 6, 200, 100));
    // Unbounded attempts (reconnects on): never.
    assert!(!lost("connect_success_rate>=0.95", 90, 100, u64::MAX));
    // Aborted attempts can never become established either.
    let mut s = Snapshot::default();
    s.counters.attempted = 10;
    s.counters.aborted = 6;
    assert!(cannot_be_met(&t("connect_success_rate>=0.95"), &s, 100));
    // Nothing planned, nothing attempted.
    assert!(!cannot_be_met(
        &t("connect_success_rate>=0.95"),
        &Snapshot::default(),
        0
    ));
}

#[test]
fn percentiles_are_never_lost_early_but_max_and_min_are() {
    let mut s = Snapshot::default();
    for ms in [1u64, 2, 500] {
        record_us(&mut s.hist.message_rtt, ms * 1000);
        record_us(&mut s.hist.ws_handshake, ms * 1000);
    }
    for expr in [
        "message_rtt_ms.p50<1",
        "message_rtt_ms.p99<200",
        "message_rtt_ms.p9999<1",
        "message_rtt_ms.mean<1",
        "handshake_ms.p95<1",
        "ping_rtt_ms.max<1", // empty histogram
    ] {
        assert!(!cannot_be_met(&t(expr), &s, 100), "{expr}");
    }
    // max only grows, min only shrinks.
    assert!(cannot_be_met(&t("message_rtt_ms.max<200"), &s, 100));
    assert!(cannot_be_met(&t("handshake_ms.max<=499"), &s, 100));
    assert!(!cannot_be_met(&t("message_rtt_ms.max<1000"), &s, 100));
    assert!(!cannot_be_met(&t("message_rtt_ms.max>1000"), &s, 100));
    assert!(cannot_be_met(&t("message_rtt_ms.min>=2"), &s, 100));
    assert!(!cannot_be_met(&t("message_rtt_ms.min>=1"), &s, 100));
    assert!(!cannot_be_met(&t("message_rtt_ms.min<1"), &s, 100));
    // Memory and rates: never.
    assert!(!cannot_be_met(&t("memory.bytes_per_connection<1"), &s, 100));
}

#[test]
fn planned_attempts_sum_the_increases() {
    let mut plan = util::plan_for(
        "127.0.0.1:1".parse().unwrap(),
        vec![stage(10_000, 100), stage(30_000, 100), stage(5_000, 0)],
    );
    assert_eq!(planned_attempts(&plan), Some(100));
    plan.stages = vec![
        stage(10_000, 100),
        stage(10_000, 40),
        stage(10_000, 150),
        stage(5_000, 0),
    ];
    assert_eq!(planned_attempts(&plan), Some(210));
    plan.reconnect = Some(Reconnect::default());
    assert_eq!(planned_attempts(&plan), None);
}

#[test]
fn session_duration_thresholds_read_seconds() {
    let mut s = Snapshot::default();
    s.counters.attempted = 100;
    s.counters.established = 100;
    s.counters.closed = 100;
    // Sessions of 1..=100 minutes, recorded in milliseconds.
    for min in 1..=100u64 {
        record_us(&mut s.hist.session_duration, min * 60_000);
    }
    let o = outcome(s, 100);
    let p95 = measure("session_duration_s.p95", &o).unwrap();
    assert!((p95 - 95.0 * 60.0).abs() <= 95.0 * 60.0 * 0.001, "{p95}");
    assert_eq!(measure("session_duration_s.min", &o), Some(60.0));
    let v = evaluate(
        &[
            t("session_duration_s.p95>1800"),
            t("session_duration_s.max<60"),
        ],
        &o,
    );
    assert!(v[0].passed, "{:?}", v[0]);
    assert!(!v[1].passed, "{:?}", v[1]);
    let text = summary_text(&o);
    assert!(
        text.contains("session (seconds)"),
        "the summary shows session durations:\n{text}"
    );
    assert_eq!(
        measure("session_duration_s.p50", &outcome(Snapshot::default(), 0)),
        None
    );
}
