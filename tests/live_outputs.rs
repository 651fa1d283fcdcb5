//! Outputs that watch a run while it happens: the `--metrics-listen` Prometheus endpoint
//! (scraped during a run against the in-process gateway, then checked against the run's final
//! counters), the gateway's own endpoint, and the `--report-hdr` interval log (read back with
//! the `hdrhistogram` crate's interval-log reader).

mod util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use util::{UNTIL_STOPPED, WAIT, eventually, spawn, stage};
use wsscale::cluster::agent::{AgentConfig, run_agent};
use wsscale::cluster::coordinator::{Coordinator, CoordinatorConfig};
use wsscale::engine::{self, RunOptions};
use wsscale::gateway::metrics_http::{MetricsServer, render_gateway, scrape};
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::metrics::timeseries::{ExtraSinks, IntervalSink};
use wsscale::plan::{MessageSpec, Plan, Target};
use wsscale::report::hdr_log::HdrLog;
use wsscale::report::prometheus::{CONTENT_TYPE, LiveMetrics};

/// 20 connections held until stopped, each sending 20 timed messages a second.
fn plan_for(addr: SocketAddr) -> Plan {
    let mut p = util::plan(
        vec![Target::ws(addr, "/")],
        vec![stage(100, 20), stage(UNTIL_STOPPED, 20)],
    );
    p.interval = Duration::from_millis(100);
    p.traffic.message = Some(MessageSpec {
        rate: 20.0,
        size: 64,
        text: None,
        timeout: Duration::from_secs(5),
    });
    p
}

/// Scrape `addr` and parse the exposition with `prometheus-parse`: every sample by name and
/// labels (`name{k="v",…}`, labels sorted; `le` kept for buckets).
fn samples(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (code, body) = scrape(addr, "/metrics").expect("scrape");
    assert_eq!(code, 200, "{body}");
    parse(&body)
}

/// [`samples`] of an exposition text.
fn parse(body: &str) -> BTreeMap<String, f64> {
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
    let mut out = BTreeMap::new();
    for s in scrape.samples {
        // Every series of a run carries its role; the gateway's carry none.
        let role = s.labels.get("role");
        assert_eq!(
            role.is_some(),
            !s.metric.starts_with("wsscale_gateway_"),
            "{}",
            s.metric
        );
        let mut labels: Vec<String> = s
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "role")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let key = |suffix: &str, extra: Option<String>| {
            let mut l = labels.clone();
            l.extend(extra);
            l.sort();
            if l.is_empty() {
                format!("{}{suffix}", s.metric)
            } else {
                format!("{}{suffix}{{{}}}", s.metric, l.join(","))
            }
        };
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => {
                out.insert(key("", None), v);
            }
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    out.insert(key("_bucket", Some(format!("le={}", b.less_than))), b.count);
                }
            }
            prometheus_parse::Value::Summary(_) => {}
        }
    }
    out
}

fn get(s: &BTreeMap<String, f64>, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {s:#?}"))
}

#[test]
fn metrics_scraped_during_a_run_match_the_final_report() {
    let gw = GatewayHandle::start("127.0.0.1:0".parse().unwrap(), GatewayConfig::default(), 1)
        .expect("gateway");
    let plan = plan_for(gw.local_addr());
    let metrics = Arc::new(LiveMetrics::new("run"));
    let m = metrics.clone();
    let server = MetricsServer::start(
        "127.0.0.1:0".parse().unwrap(),
        CONTENT_TYPE,
        Arc::new(move || m.render()),
    )
    .expect("metrics server");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "the bound port is reported");

    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = RunOptions::new(stop.clone());
    opts.live = Some(metrics.clone() as Arc<dyn IntervalSink>);
    let run = spawn(move || engine::run(&plan, &opts).expect("engine run"));

    // During the run: every connection open, the target known, messages flowing.
    eventually("20 open connections on /metrics", || {
        let s = samples(addr);
        s.get("wsscale_open_connections") == Some(&20.0)
            && s.get("wsscale_messages_received_total")
                .is_some_and(|v| *v > 0.0)
    });
    let during = samples(addr);
    assert_eq!(get(&during, "wsscale_target_connections"), 20.0);
    assert_eq!(get(&during, "wsscale_planned_peak_connections"), 20.0);
    assert_eq!(get(&during, "wsscale_connections_established_total"), 20.0);
    assert!(
        get(
            &during,
            "wsscale_latency_seconds_bucket{le=inf,metric=ws_handshake}"
        ) >= 20.0
    );
    // Anything but /metrics is a 404.
    assert_eq!(scrape(addr, "/").unwrap().0, 404);
    assert_eq!(scrape(addr, "/metricsx").unwrap().0, 404);

    stop.store(true, Ordering::Relaxed);
    let o = run.recv_timeout(WAIT).expect("the run ends once stopped");
    let c = &o.totals.counters;
    let after = samples(addr);
    for (name, want) in [
        ("wsscale_connections_attempted_total", c.attempted),
        ("wsscale_connections_established_total", c.established),
        ("wsscale_connections_closed_total", c.closed),
        ("wsscale_messages_sent_total", c.messages_sent),
        ("wsscale_messages_received_total", c.messages_received),
        ("wsscale_messages_lost_total", c.messages_lost),
        ("wsscale_open_connections", o.totals.gauges.open),
    ] {
        assert_eq!(get(&after, name), want as f64, "{name}");
    }
    assert!(c.messages_received > 0);
    for (metric, h) in [
        ("tcp_connect", &o.totals.hist.tcp_connect),
        ("ws_handshake", &o.totals.hist.ws_handshake),
        ("message_rtt", &o.totals.hist.message_rtt),
    ] {
        let key = format!("wsscale_latency_seconds_bucket{{le=inf,metric={metric}}}");
        assert_eq!(get(&after, &key), h.len() as f64, "{key}");
        // Every sample falls in some finite bucket here (all well under 30 s).
        let key = format!("wsscale_latency_seconds_bucket{{le=30,metric={metric}}}");
        assert_eq!(get(&after, &key), h.len() as f64, "{key}");
    }
    assert_eq!(
        get(&after, "wsscale_session_duration_seconds_bucket{le=inf}"),
        (c.closed + c.dropped) as f64,
        "one session per connection that ended"
    );
    assert_eq!(o.totals.hist.session_duration.len(), c.closed + c.dropped);
    assert!(
        !after.keys().any(|k| k.contains("metric=tls_handshake")),
        "no series for a histogram without samples"
    );
}

#[test]
fn the_gateway_exports_its_own_counters() {
    let gw = GatewayHandle::start("127.0.0.1:0".parse().unwrap(), GatewayConfig::default(), 1)
        .expect("gateway");
    let stats = gw.shared_stats();
    let server = MetricsServer::start(
        "127.0.0.1:0".parse().unwrap(),
        CONTENT_TYPE,
        Arc::new(move || render_gateway(&stats.snapshot())),
    )
    .expect("metrics server");
    let mut plan = plan_for(gw.local_addr());
    plan.stages = vec![stage(100, 5), stage(300, 5)];
    let o = util::run(&plan);
    let s = samples(server.local_addr());
    let g = gw.stats();
    assert_eq!(g.upgraded, 5);
    assert_eq!(
        get(&s, "wsscale_gateway_connections_upgraded_total"),
        g.upgraded as f64
    );
    assert_eq!(
        get(&s, "wsscale_gateway_connections_accepted_total"),
        g.accepted as f64
    );
    assert_eq!(
        get(&s, "wsscale_gateway_messages_echoed_total"),
        g.messages_echoed as f64
    );
    assert_eq!(
        g.messages_echoed, o.totals.counters.messages_received,
        "every echo the client counted, the gateway counted"
    );
    assert_eq!(
        get(
            &s,
            "wsscale_gateway_connections_rejected_total{reason=auth}"
        ),
        0.0
    );
}

#[test]
fn hdr_log_reads_back_with_the_interval_log_reader() {
    let gw = GatewayHandle::start("127.0.0.1:0".parse().unwrap(), GatewayConfig::default(), 1)
        .expect("gateway");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.hlog");
    let log = Arc::new(HdrLog::create(&path).expect("create log"));
    let mut plan = plan_for(gw.local_addr());
    plan.stages = vec![stage(100, 10), stage(600, 10), stage(100, 0)];
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = RunOptions::new(stop);
    opts.live = ExtraSinks(vec![log.clone()]).with(None);
    let o = engine::run(&plan, &opts).expect("engine run");

    let bytes = std::fs::read(&path).unwrap();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut intervals = 0;
    let mut saw_start = false;
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        match entry.expect("a valid interval log") {
            LogEntry::StartTime(_) => saw_start = true,
            LogEntry::BaseTime(_) => {}
            LogEntry::Interval(h) => {
                intervals += 1;
                let tag = h.tag().expect("every histogram is tagged").as_str();
                let decoded = base64_decode(h.encoded_histogram());
                let hist: hdrhistogram::Histogram<u64> =
                    de.deserialize(&mut decoded.as_slice()).expect("histogram");
                *counts.entry(tag.to_string()).or_default() += hist.len();
            }
        }
    }
    assert!(saw_start, "StartTime header");
    assert!(
        intervals >= 3,
        "one line per metric per interval: {intervals}"
    );
    let h = &o.totals.hist;
    for (tag, want) in [
        ("tcp_connect", h.tcp_connect.len()),
        ("ws_handshake", h.ws_handshake.len()),
        ("message_rtt", h.message_rtt.len()),
    ] {
        assert!(want > 0, "{tag} has samples");
        assert_eq!(counts.get(tag).copied().unwrap_or(0), want, "{tag}");
    }
    assert!(!counts.contains_key("tls_handshake"));
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// Every metric family name each endpoint really exports, read from a rendering with data in
/// every family (per-agent series included).
fn exported_names() -> Vec<String> {
    use wsscale::metrics::{Counters, DropReason, FailureKind, Gauges, Histograms, record_us};
    let m = LiveMetrics::new("run");
    let mut totals = Counters::default();
    totals.fail(FailureKind::Refused);
    totals.drop_with(DropReason::Eof);
    let mut hist = Histograms::default();
    record_us(&mut hist.ws_handshake, 1000);
    record_us(&mut hist.session_duration, 1000);
    m.record_parts(&Gauges::default(), 1, 1, 1.0, &totals, &hist);
    m.record_agent(1, "a", &Gauges::default(), &totals);
    let text = m.render() + &render_gateway(&Default::default());
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    // The documented lists name exactly these families.
    let mut listed: Vec<&str> = wsscale::report::prometheus::METRIC_NAMES.to_vec();
    listed.extend(wsscale::gateway::metrics_http::GATEWAY_METRIC_NAMES);
    for n in &listed {
        assert!(
            names
                .iter()
                .any(|s| s == n || s.strip_prefix(n).is_some_and(|r| r.starts_with('_'))),
            "{n} is listed but not exported"
        );
    }
    names
}

#[test]
fn grafana_dashboard_uses_only_exported_metrics() {
    let exported = exported_names();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/wsscale-dashboard.json"
    );
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    // The shape Grafana imports: a title, a uid, a schema version, panels with positions.
    assert!(d["title"].is_string() && d["uid"].is_string());
    assert!(d["schemaVersion"].as_u64().is_some());
    let panels = d["panels"].as_array().expect("panels");
    let re = regex::Regex::new(r"\bwsscale_[a-z_]+").unwrap();
    let mut used = 0;
    for p in panels {
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{p}");
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a PromQL expression");
            for m in re.find_iter(expr) {
                used += 1;
                assert!(
                    exported.iter().any(|n| n == m.as_str()),
                    "panel {:?} uses {} which /metrics does not export ({exported:?})",
                    p["title"],
                    m.as_str()
                );
            }
        }
    }
    assert!(used >= 20, "the dashboard queries the metrics: {used}");
}

/// Reads `child`'s stderr on a thread: returns the address of its `metrics on http://ADDR/`
/// line (the rest of stderr is collected and returned when the process ends).
fn metrics_line(
    child: &mut std::process::Child,
) -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let err = child.stderr.take().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (rest_tx, rest_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("metrics on http://") {
                let addr: SocketAddr = url.trim_end_matches("/metrics").parse().unwrap();
                let _ = addr_tx.send(addr);
            }
            all.push_str(&line);
            all.push('\n');
        }
        let _ = rest_tx.send(all);
    });
    let addr = addr_rx
        .recv_timeout(WAIT)
        .expect("the process prints `metrics on http://ADDR/metrics`");
    (addr, rest_rx)
}

/// The binaries end to end: `serve --metrics-listen` and `run --metrics-listen --report-hdr`
/// against it; the run is stopped with SIGINT once scraped and still writes its reports.
#[test]
fn binaries_serve_metrics_and_write_the_hdr_log() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    const BIN: &str = env!("CARGO_BIN_EXE_wsscale");
    let mut serve = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (gw_metrics, _) = metrics_line(&mut serve.0);
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();

    let dir = tempfile::tempdir().unwrap();
    let (json, hlog) = (dir.path().join("r.json"), dir.path().join("r.hlog"));
    let mut run = Killed(
        Command::new(BIN)
            .args(["run", "-c", "10", "--ramp", "200ms", "--hold", "60s"])
            .args(["--interval", "100ms", "--threads", "1", "--target", &url])
            .args(["--metrics-listen", "127.0.0.1:0", "--report-hdr"])
            .arg(&hlog)
            .arg("--report-json")
            .arg(&json)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (run_metrics, run_err) = metrics_line(&mut run.0);
    eventually("10 open connections on the run's /metrics", || {
        samples(run_metrics).get("wsscale_open_connections") == Some(&10.0)
    });
    let gw = samples(gw_metrics);
    assert_eq!(get(&gw, "wsscale_gateway_open_connections"), 10.0);
    assert_eq!(get(&gw, "wsscale_gateway_connections_upgraded_total"), 10.0);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = run.0.wait().unwrap();
    let err = run_err.recv_timeout(WAIT).unwrap();
    assert_eq!(status.code(), Some(130), "interrupted: {err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["connections"]["established"], 10);
    assert_eq!(report["connections"]["session_duration_s"]["count"], 10);
    let bytes = std::fs::read(&hlog).unwrap();
    let mut de = Deserializer::new();
    let mut handshakes = 0;
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(h) = entry.expect("valid interval log")
            && h.tag().map(|t| t.as_str()) == Some("ws_handshake")
        {
            let raw = base64_decode(h.encoded_histogram());
            let hist: hdrhistogram::Histogram<u64> = de.deserialize(&mut raw.as_slice()).unwrap();
            handshakes += hist.len();
        }
    }
    assert_eq!(handshakes, 10, "every handshake is in the HDR log");
}

/// A child process that is killed (if still running) and reaped when dropped, also when a
/// test fails half-way.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The coordinator exports the merged run and one series per agent; each agent its own share.
#[test]
fn coordinator_exports_per_agent_series() {
    let gw = GatewayHandle::start("127.0.0.1:0".parse().unwrap(), GatewayConfig::default(), 1)
        .expect("gateway");
    let mut plan = plan_for(gw.local_addr());
    plan.stages = vec![stage(200, 40), stage(400, 40)];
    plan.traffic.message = None;
    let token = wsscale::plan::Secret("test-token-0123456789".into());
    let merged = Arc::new(LiveMetrics::new("coordinator"));
    let mut cfg = CoordinatorConfig::new(2, token.clone());
    cfg.start_lead = Duration::from_millis(100);
    cfg.sinks = ExtraSinks(vec![merged.clone()]);
    cfg.metrics = Some(merged.clone());
    let c = Coordinator::bind("127.0.0.1:0".parse().unwrap(), cfg).expect("bind");
    let url = c.url();
    let run = spawn(move || c.run(&plan, Arc::new(AtomicBool::new(false))));
    let agents: Vec<_> = ["a1", "a2"]
        .into_iter()
        .map(|name| {
            let own = Arc::new(LiveMetrics::new("agent"));
            let mut a = AgentConfig::new(url.clone(), token.clone());
            a.name = Some(name.to_string());
            a.threads = Some(1);
            a.sinks = ExtraSinks(vec![own.clone()]);
            let done = spawn(move || run_agent(&a, Arc::new(AtomicBool::new(false))));
            (name, own, done)
        })
        .collect();
    let o = run.recv_timeout(WAIT).unwrap().expect("the run");
    let est = o.totals.counters.established;
    assert!(est > 0);
    let m = parse(&merged.render());
    assert_eq!(get(&m, "wsscale_connections_established_total"), est as f64);
    let mut sum = 0.0;
    for (name, own, done) in agents {
        let r = done.recv_timeout(WAIT).unwrap().expect("agent");
        let a = o
            .agents
            .iter()
            .find(|a| a.name == name)
            .expect("in agents[]");
        let key = format!(
            "wsscale_agent_connections_established_total{{agent={},agent_name={name}}}",
            a.id
        );
        let v = get(&m, &key);
        assert_eq!(v, a.totals.counters.established as f64, "{key}");
        sum += v;
        // The agent's own endpoint shows its own share.
        let mine = parse(&own.render());
        assert_eq!(
            get(&mine, "wsscale_connections_established_total"),
            r.outcome.totals.counters.established as f64
        );
    }
    assert_eq!(
        sum, est as f64,
        "the agents' series add up to the merged one"
    );
}

/// A progressive profile runs several plans in turn; the live outputs are not offered there
/// yet, and asking for them is a usage error (exit 2) that says so.
#[test]
fn progressive_profiles_refuse_the_live_outputs() {
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/progressive.toml");
    for flag in ["--metrics-listen", "--report-hdr"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsscale"))
            .args(["run", profile, flag, "0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains("not available with a progressive"), "{err}");
    }
}
