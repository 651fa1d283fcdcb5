//! Server push and fan-out latency on the client: `--push-timestamp` against the gateway's
//! push feed (`push_latency`, `pushes.received`), and `--publishers` in a `--broadcast` room
//! (`fanout_latency` for other connections' messages, `message_rtt` for a publisher's own
//! echo, `fanout.delivered` / `fanout.expected`); the new histograms across agents and
//! through `report merge`.
//!
//! Everything runs in-process against the embedded gateway on 127.0.0.1:0. Counts the plan
//! must reach are waited for (a long hold stopped once they are reached), so a slow machine
//! only makes a test slower.

mod util;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hdrhistogram::Histogram;
use util::{UNTIL_STOPPED, WAIT, spawn, stage};
use wsscale::cluster::agent::{AgentConfig, run_agent};
use wsscale::cluster::coordinator::{Coordinator, CoordinatorConfig};
use wsscale::gateway::{GatewayConfig, PushConfig};
use wsscale::metrics::{Percentiles, RunOutcome, new_histogram};
use wsscale::plan::build::build_plan;
use wsscale::plan::push::{Publishers, PushTimestamp};
use wsscale::plan::{Overrides, Plan, Secret};

/// A gateway pushing `rate` feed messages per second to every connection.
fn push_gateway(rate: f64) -> wsscale::gateway::GatewayHandle {
    util::gateway(
        GatewayConfig {
            push: Some(PushConfig::new(rate)),
            ..GatewayConfig::default()
        },
        2,
    )
}

/// A gateway that is one chat room.
fn room_gateway() -> wsscale::gateway::GatewayHandle {
    util::gateway(
        GatewayConfig {
            broadcast: true,
            ..GatewayConfig::default()
        },
        2,
    )
}

/// `wsscale run --target URL -c N --ramp 0s --hold (until stopped) EXTRA…` as a plan, on two
/// engine threads (so connection numbers interleave over shards).
fn plan_of(url: &str, conns: u64, extra: impl FnOnce(&mut Overrides)) -> Plan {
    let mut o = Overrides {
        targets: vec![url.to_string()],
        connections: Some(conns),
        ramp: Some(Duration::ZERO),
        hold: Some(Duration::from_millis(UNTIL_STOPPED)),
        ramp_down: Some(Duration::ZERO),
        interval: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    extra(&mut o);
    let mut p = build_plan(&o).expect("plan builds");
    p.threads = 2;
    p.connect_timeout = util::TIMEOUT;
    p.handshake_timeout = util::TIMEOUT;
    p
}

#[test]
fn push_latency_from_the_gateway_feed() {
    let gw = push_gateway(20.0);
    let plan = plan_of(&gw.url(), 10, |o| {
        o.push_timestamp = Some(PushTimestamp::parse("json:ts").unwrap());
    });
    let o = util::run_until(&plan, "50 pushes read", |c| c.pushes_received >= 50);
    let c = &o.totals.counters;
    assert_eq!(c.established, 10, "{c:?}");
    let h = &o.totals.hist.push_latency;
    assert!(h.len() >= 10 * 5, "{} push samples", h.len());
    assert_eq!(c.pushes_received, h.len(), "one sample per push read");
    // Pushes with a timestamp are pushes, not "other" frames.
    assert_eq!(c.other_messages_received, 0, "{c:?}");
    let p = Percentiles::from_hist(h);
    assert!(p.p99 < 1000.0, "push latency p99 {} ms", p.p99);

    let doc = wsscale::report::to_json(&o);
    assert_eq!(doc["pushes"]["received"], c.pushes_received);
    assert_eq!(doc["timings"]["push_latency_ms"]["count"], h.len());
    assert!(doc["histograms"]["push_latency"].is_string());
    let rows = doc["timeseries"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["pushes_per_s"].as_f64().unwrap() > 0.0),
        "{rows:?}"
    );
    assert_eq!(doc["fanout"]["expected"], serde_json::Value::Null);
    let text = wsscale::report::summary_text(&o);
    assert!(text.contains("push latency"), "{text}");
    assert!(text.contains("pushes received"), "{text}");
}

#[test]
fn without_push_timestamp_pushes_are_other_frames() {
    let gw = push_gateway(20.0);
    let plan = plan_of(&gw.url(), 3, |_| {});
    let o = util::run_until(&plan, "pushes", |c| c.other_messages_received >= 6);
    let c = &o.totals.counters;
    assert_eq!(c.pushes_received, 0);
    assert!(o.totals.hist.push_latency.is_empty());
    assert!(c.other_messages_received >= 6, "{c:?}");
}

#[test]
fn fanout_in_a_broadcast_room_with_two_publishers() {
    let gw = room_gateway();
    let plan = plan_of(&gw.url(), 10, |o| {
        o.message_rate = Some(5.0);
        o.publishers = Some(Publishers::Count(2));
    });
    assert_eq!(plan.traffic.publishers, Some(Publishers::Count(2)));
    let o = util::run_until(&plan, "60 messages published and delivered", |c| {
        c.messages_sent >= 60 && c.fanout_received >= 9 * 40
    });
    let c = &o.totals.counters;
    assert_eq!(c.established, 10, "{c:?}");
    let sent = c.messages_sent;
    // Only the two publishers sent: the room saw exactly what they sent (every frame the
    // gateway received is one of their timed messages).
    let stats = gw.stats();
    assert_eq!(stats.broadcast_received, sent, "{stats:?}");
    // Each message reaches the 9 other connections (fan-out) and comes back to its sender
    // (its round trip). Messages still in flight when the run was stopped are missing.
    let fanout = o.totals.hist.fanout_latency.len();
    assert_eq!(fanout, c.fanout_received);
    assert!(
        fanout as f64 >= 0.8 * (sent * 9) as f64,
        "{fanout} fan-out samples for {sent} messages × 9 receivers"
    );
    let echoes = o.totals.hist.message_rtt.len();
    assert!(
        echoes as f64 >= 0.8 * sent as f64 && echoes <= sent,
        "{echoes} own echoes of {sent}"
    );
    assert_eq!(c.other_messages_received, 0, "{c:?}");
    assert_eq!(c.messages_lost, 0, "{c:?}");
    let p = Percentiles::from_hist(&o.totals.hist.fanout_latency);
    assert!(p.p99 < 1000.0, "fan-out p99 {} ms", p.p99);

    // Reported: delivered = fan-out + own echoes, expected = sent × peak open.
    let doc = wsscale::report::to_json(&o);
    let delivered = doc["fanout"]["delivered"].as_u64().unwrap();
    let expected = doc["fanout"]["expected"].as_u64().unwrap();
    assert_eq!(delivered, fanout + echoes);
    assert_eq!(expected, sent * o.peak_open);
    assert_eq!(o.peak_open, 10);
    assert!(
        delivered as f64 >= 0.8 * expected as f64,
        "{delivered} of {expected}"
    );
    assert_eq!(doc["timings"]["fanout_latency_ms"]["count"], fanout);
    let text = wsscale::report::summary_text(&o);
    assert!(text.contains("fanout latency"), "{text}");
    assert!(text.contains("fan-out delivered"), "{text}");
    assert!(text.contains(&format!("of {expected} expected")), "{text}");
}

#[test]
fn publishers_as_a_fraction_and_thresholds_on_the_new_metrics() {
    let gw = room_gateway();
    let plan = plan_of(&gw.url(), 8, |o| {
        o.message_rate = Some(10.0);
        o.publishers = Some(Publishers::parse("25%").unwrap());
        o.thresholds = vec![
            wsscale::plan::threshold::parse("fanout_latency_ms.p99<5000").unwrap(),
            wsscale::plan::threshold::parse("push_latency_ms.p50<5000").unwrap(),
            wsscale::plan::threshold::parse("pushes.received==0").unwrap(),
        ];
    });
    let o = util::run_until(&plan, "fan-out", |c| {
        c.messages_sent >= 20 && c.fanout_received >= 7 * 10
    });
    // 25% of 8 connections: 2 publishers, every message seen by 7 others.
    let stats = gw.stats();
    assert_eq!(stats.broadcast_received, o.totals.counters.messages_sent);
    let v = wsscale::metrics::thresholds::evaluate(&plan.thresholds, &o);
    assert!(v[0].passed, "{v:?}");
    // No push timestamp configured: no data, which fails the threshold.
    assert_eq!(v[1].measured, None, "{v:?}");
    assert!(!v[1].passed);
    assert_eq!(v[2].measured, Some(0.0));
    assert!(v[2].passed);
}

#[test]
fn publishers_need_timed_messages() {
    let o = Overrides {
        targets: vec!["ws://127.0.0.1:9/".into()],
        connections: Some(1),
        publishers: Some(Publishers::Count(1)),
        ..Default::default()
    };
    let e = build_plan(&o).unwrap_err().to_string();
    assert!(
        e.contains("--publishers") && e.contains("--message-rate"),
        "{e}"
    );
}

fn merged(parts: &[&Histogram<u64>]) -> Histogram<u64> {
    let mut m = new_histogram();
    for h in parts {
        m.add(*h).unwrap();
    }
    m
}

/// Two agents (in-process, each with its own engine run and marker nonce) in one room with a
/// push feed: the coordinator's totals hold the exact merge of the agents' new histograms,
/// and `report merge` of the agents' reports reproduces them.
#[test]
fn new_histograms_travel_to_the_coordinator_and_merge() {
    let gw = util::gateway(
        GatewayConfig {
            push: Some(PushConfig::new(20.0)),
            broadcast: true,
            ..GatewayConfig::default()
        },
        2,
    );
    let mut plan = plan_of(&gw.url(), 10, |o| {
        o.message_rate = Some(5.0);
        o.publishers = Some(Publishers::Count(2));
        o.push_timestamp = Some(PushTimestamp::parse("json:ts:ms").unwrap());
    });
    plan.stages = vec![stage(200, 10), stage(2500, 10)];
    plan.threads = 1;
    plan.interval = Duration::from_millis(250);
    plan.close_timeout = Duration::from_millis(500);
    let token = Secret("test-token-0123456789".into());
    let mut cfg = CoordinatorConfig::new(2, token.clone());
    cfg.start_lead = Duration::from_millis(100);
    let c = Coordinator::bind("127.0.0.1:0".parse().unwrap(), cfg).expect("bind");
    let url = c.url();
    let stop = Arc::new(AtomicBool::new(false));
    let coord = spawn(move || c.run(&plan, stop));
    let agents: Vec<_> = ["a1", "a2"]
        .into_iter()
        .map(|name| {
            let mut a = AgentConfig::new(&url, token.clone());
            a.name = Some(name.into());
            a.threads = Some(1);
            a.join_timeout = Duration::from_secs(20);
            spawn(move || run_agent(&a, Arc::new(AtomicBool::new(false))))
        })
        .collect();
    let o: RunOutcome = coord.recv_timeout(WAIT).unwrap().expect("the run");
    for a in agents {
        a.recv_timeout(WAIT).unwrap().expect("agent");
    }
    assert_eq!(o.agents.len(), 2);
    let t = &o.totals;
    assert!(t.counters.pushes_received > 0, "{:?}", t.counters);
    assert!(t.counters.fanout_received > 0, "{:?}", t.counters);
    // Each agent got one of the two publishers.
    for a in &o.agents {
        assert!(a.totals.counters.messages_sent > 0, "{}", a.name);
    }
    for (name, total, parts) in [
        (
            "push_latency",
            &*t.hist.push_latency,
            o.agents
                .iter()
                .map(|a| &*a.totals.hist.push_latency)
                .collect::<Vec<_>>(),
        ),
        (
            "fanout_latency",
            &*t.hist.fanout_latency,
            o.agents
                .iter()
                .map(|a| &*a.totals.hist.fanout_latency)
                .collect(),
        ),
    ] {
        assert!(!total.is_empty(), "{name}");
        assert!(*total == merged(&parts), "{name}: merged ≠ sum of agents");
    }
    let sum = |f: fn(&wsscale::metrics::Counters) -> u64| {
        o.agents.iter().map(|a| f(&a.totals.counters)).sum::<u64>()
    };
    assert_eq!(sum(|c| c.pushes_received), t.counters.pushes_received);
    assert_eq!(sum(|c| c.fanout_received), t.counters.fanout_received);

    // report merge of the coordinated report reproduces the figures.
    let doc = wsscale::report::to_json(&o);
    let back = wsscale::report::merge::merge(&[wsscale::report::merge::Input {
        name: "run.json".into(),
        doc: doc.clone(),
    }])
    .unwrap();
    assert!(*back.totals.hist.push_latency == *t.hist.push_latency);
    assert!(*back.totals.hist.fanout_latency == *t.hist.fanout_latency);
    let again = wsscale::report::to_json(&back);
    for path in [
        ["pushes", "received"],
        ["fanout", "delivered"],
        ["fanout", "expected"],
    ] {
        assert_eq!(again[path[0]][path[1]], doc[path[0]][path[1]], "{path:?}");
    }
    assert_eq!(
        again["timings"]["fanout_latency_ms"],
        doc["timings"]["fanout_latency_ms"]
    );
    assert!(
        doc["agents"][0]["timings"]
            .as_object()
            .unwrap()
            .contains_key("push_latency_ms")
    );
}
