//! Coordinator, agents, plan splitting, wire format, `report merge` and `--processes`.
//!
//! Everything runs in-process on 127.0.0.1:0 (coordinator and agents as library calls on
//! threads, the gateway as a `GatewayHandle`), except the smoke test of the real binary and
//! the multi-host test, which puts the gateway, the coordinator and two agents into network
//! namespaces of their own (root and `ip netns` needed; skipped with a message otherwise).
//! Waits are on channels and join handles with generous deadlines; no sleep synchronizes
//! anything. Nothing assumes an idle machine: a count the plan must reach is waited for (a
//! long hold, stopped once it is reached), or a fixed-length run is checked for what a slow
//! run still guarantees (attempts established or aborted, sums over agents exact).

mod util;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use util::{UNTIL_STOPPED, WAIT, eventually, ips, spawn, stage};
use wsscale::cluster::agent::{AgentConfig, AgentError, AgentRun, run_agent};
use wsscale::cluster::coordinator::{ClusterError, Coordinator, CoordinatorConfig};
use wsscale::cluster::split::{AgentCapacity, split};
use wsscale::cluster::wire::{AgentMsg, Assignment, CoordMsg, PROTOCOL_VERSION, WirePlan, unix_ns};
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::metrics::RunOutcome;
use wsscale::metrics::thresholds::{AbortRule, cannot_be_met, planned_attempts};
use wsscale::metrics::wire::{WireSnapshot, decode_histogram, encode_histogram};
use wsscale::metrics::{FailureKind, Snapshot, new_histogram, record_us};
use wsscale::plan::{Plan, Reconnect, Secret, Slice, Stage, threshold};

/// This file's gateway: the default configuration on two worker threads.
fn gateway() -> GatewayHandle {
    util::gateway(GatewayConfig::default(), 2)
}

/// This file's plans: [`util::plan_for`] with 200 ms intervals and a 500 ms close timeout.
fn plan_for(addr: SocketAddr, stages: Vec<Stage>) -> Plan {
    let mut p = util::plan_for(addr, stages);
    p.interval = Duration::from_millis(200);
    p.close_timeout = Duration::from_millis(500);
    p
}

fn token() -> Secret {
    Secret("test-token-0123456789".into())
}

struct Running {
    url: String,
    stop: Arc<AtomicBool>,
    result: mpsc::Receiver<Result<RunOutcome, ClusterError>>,
}

fn start_coordinator(plan: Plan, cfg: CoordinatorConfig) -> Running {
    let c = Coordinator::bind("127.0.0.1:0".parse().unwrap(), cfg).expect("bind");
    let url = c.url();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let result = spawn(move || c.run(&plan, s));
    Running { url, stop, result }
}

fn agent_cfg(url: &str, token: Secret, name: &str) -> AgentConfig {
    let mut cfg = AgentConfig::new(url, token);
    cfg.name = Some(name.to_string());
    cfg.threads = Some(1);
    cfg.orphan_timeout = Duration::from_secs(5);
    cfg.join_timeout = Duration::from_secs(20);
    cfg
}

fn start_agent(cfg: AgentConfig) -> mpsc::Receiver<Result<AgentRun, AgentError>> {
    spawn(move || run_agent(&cfg, Arc::new(AtomicBool::new(false))))
}

// ---------------------------------------------------------------------------------------
// Plan splitting
// ---------------------------------------------------------------------------------------

fn cap(host: &str, max: u64) -> AgentCapacity {
    AgentCapacity {
        host: host.into(),
        max_connections: max,
        own_sources: Vec::new(),
    }
}

#[test]
fn plan_splitting_table() {
    struct Case {
        name: &'static str,
        peak: u64,
        sources: Vec<IpAddr>,
        agents: Vec<AgentCapacity>,
        connections: Vec<u64>,
        sources_per_agent: Vec<usize>,
    }
    let four = ips(&["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]);
    let cases = vec![
        Case {
            name: "even",
            peak: 100_000,
            sources: four.clone(),
            agents: vec![cap("h", 19_936); 6],
            connections: vec![16_666, 16_667, 16_667, 16_666, 16_667, 16_667],
            // 4 addresses for 6 agents: two groups of 3 agents share 2 addresses each
            // (25,000 per address, where one address per agent put 33,333 on two of them).
            sources_per_agent: vec![2; 6],
        },
        Case {
            name: "uneven capacities",
            peak: 30_000,
            sources: Vec::new(),
            agents: vec![cap("a", 10_000), cap("b", 20_000), cap("c", 30_000)],
            connections: vec![5_000, 10_000, 15_000],
            sources_per_agent: vec![0, 0, 0],
        },
        Case {
            name: "peak equals total capacity",
            peak: 30_000,
            sources: Vec::new(),
            agents: vec![cap("a", 7_001), cap("b", 22_999)],
            connections: vec![7_001, 22_999],
            sources_per_agent: vec![0, 0],
        },
        Case {
            name: "more agents than connections",
            peak: 3,
            sources: Vec::new(),
            agents: vec![cap("h", 1000); 5],
            connections: vec![0, 1, 0, 1, 1],
            sources_per_agent: vec![0; 5],
        },
        Case {
            name: "nothing to hold",
            peak: 0,
            sources: Vec::new(),
            agents: vec![cap("h", 1000); 2],
            connections: vec![0, 0],
            sources_per_agent: vec![0, 0],
        },
        Case {
            name: "sources split disjointly per host",
            peak: 4_000,
            sources: four.clone(),
            agents: vec![
                cap("x", 1000),
                cap("x", 1000),
                cap("y", 1000),
                cap("y", 1000),
            ],
            connections: vec![1000; 4],
            sources_per_agent: vec![2, 2, 2, 2],
        },
    ];
    for c in cases {
        let shares =
            split(c.peak, &c.sources, &c.agents).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let got: Vec<u64> = shares.iter().map(|s| s.connections).collect();
        // "more agents than connections" depends on where boundaries fall; check the sum and
        // the bound instead of the exact layout there.
        if c.name == "more agents than connections" {
            assert_eq!(got.iter().sum::<u64>(), 3, "{}", c.name);
            assert!(got.iter().all(|&n| n <= 1), "{}: {got:?}", c.name);
        } else {
            assert_eq!(got, c.connections, "{}", c.name);
        }
        for (s, a) in shares.iter().zip(&c.agents) {
            assert!(
                s.connections <= a.max_connections,
                "{}: over capacity",
                c.name
            );
        }
        let per: Vec<usize> = shares.iter().map(|s| s.sources.len()).collect();
        assert_eq!(per, c.sources_per_agent, "{}", c.name);
        // Slices partition [0, 1): at every target the counts sum to the target.
        for t in [0.0, 1.0, 2.5, 7.0, 99.0, 12_345.6, c.peak as f64] {
            let total: u64 = shares.iter().map(|s| s.slice.count(t)).sum();
            assert_eq!(total, (t + 1e-9).floor() as u64, "{}: target {t}", c.name);
        }
    }

    // The "even" case's groups: agents 0-2 share the first two addresses, 3-5 the others.
    let shares = split(100_000, &four, &vec![cap("h", 19_936); 6]).unwrap();
    for (i, s) in shares.iter().enumerate() {
        let block = if i < 3 { &four[0..2] } else { &four[2..4] };
        assert_eq!(s.sources, block, "agent {i}");
    }

    // Same host: disjoint blocks; different hosts: each host group gets the whole list.
    let shares = split(
        4_000,
        &four,
        &[
            cap("x", 1000),
            cap("x", 1000),
            cap("y", 1000),
            cap("y", 1000),
        ],
    )
    .unwrap();
    assert_eq!(shares[0].sources, four[0..2]);
    assert_eq!(shares[1].sources, four[2..4]);
    assert_eq!(shares[2].sources, four[0..2]);
    assert_eq!(shares[3].sources, four[2..4]);

    // An agent with its own addresses keeps them; the others split the plan's.
    let mut own = cap("x", 1000);
    own.own_sources = ips(&["10.0.0.1"]);
    let shares = split(2_000, &four, &[own, cap("x", 1000)]).unwrap();
    assert_eq!(shares[0].sources, ips(&["10.0.0.1"]));
    assert_eq!(shares[1].sources, four);

    // Not enough capacity: the error says how many more agents.
    let err = split(50_000, &[], &[cap("a", 19_936), cap("b", 19_936)]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("50000") && msg.contains("39872") && msg.contains("1 more"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// Wire format and exact merging
// ---------------------------------------------------------------------------------------

fn quantiles(h: &Histogram<u64>) -> Vec<u64> {
    [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0]
        .iter()
        .map(|q| h.value_at_quantile(*q))
        .collect()
}

#[test]
fn merge_of_serialized_splits_equals_the_whole() {
    // Property test over seeds: split random samples into k random parts, send each part
    // through the wire format, merge: the result is the histogram of all samples.
    for seed in 0..40u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let k = rng.usize(2..6);
        let mut parts: Vec<Snapshot> = (0..k).map(|_| Snapshot::default()).collect();
        let mut whole = Snapshot::default();
        for _ in 0..rng.usize(0..5000) {
            let v = match rng.u8(0..3) {
                0 => rng.u64(1..1_000),
                1 => rng.u64(1_000..1_000_000),
                _ => rng.u64(1_000_000..3_600_000_000),
            };
            let p = rng.usize(0..k);
            record_us(&mut parts[p].hist.message_rtt, v);
            record_us(&mut whole.hist.message_rtt, v);
            parts[p].counters.attempted += 1;
            whole.counters.attempted += 1;
            if v % 7 == 0 {
                parts[p].counters.fail(FailureKind::Refused);
                whole.counters.fail(FailureKind::Refused);
            }
        }
        let mut merged = Snapshot::default();
        for p in &parts {
            let json = serde_json::to_string(&WireSnapshot::encode(p)).unwrap();
            let back: WireSnapshot = serde_json::from_str(&json).unwrap();
            merged.merge(&back.decode().unwrap());
        }
        assert_eq!(merged.counters, whole.counters, "seed {seed}");
        let (m, w) = (&merged.hist.message_rtt, &whole.hist.message_rtt);
        assert_eq!(m.len(), w.len(), "seed {seed}");
        if !w.is_empty() {
            assert_eq!(quantiles(m), quantiles(w), "seed {seed}");
            assert_eq!(m.min(), w.min());
            assert_eq!(m.max(), w.max());
        }
        assert!(
            m == w,
            "seed {seed}: merged histogram differs from the whole"
        );
    }
}

#[test]
fn histogram_encoding_is_standard_and_lossless() {
    let mut h = new_histogram();
    for v in [1, 2, 3, 500, 12_345, 3_600_000_000] {
        record_us(&mut h, v);
    }
    let text = encode_histogram(&h);
    // V2 + DEFLATE, base64: the "HISTFAA" cookie every HdrHistogram library reads.
    assert!(text.starts_with("HISTFAA"), "{text}");
    let back = decode_histogram("x", &text).unwrap();
    assert!(back == h);
}

#[test]
fn control_messages_round_trip() {
    let plan = plan_for("127.0.0.1:9".parse().unwrap(), vec![stage(1000, 10)]);
    let wire = WirePlan::from_plan(&plan);
    let msg = CoordMsg::Assign(Box::new(Assignment {
        agent_id: 1,
        plan: wire.clone(),
        plan_hash: wire.hash(),
        slice_lo: 0.0,
        slice_hi: 0.5,
        connections: 5,
        sources: ips(&["127.0.0.2"]),
        snapshot_every: Duration::from_secs(1),
    }));
    assert_eq!(CoordMsg::parse(&msg.to_text()).unwrap(), msg);
    let mut s = Snapshot::default();
    record_us(&mut s.hist.ws_handshake, 777);
    s.counters.established = 3;
    let snap = AgentMsg::Snapshot {
        seq: 9,
        last: true,
        snapshot: Box::new(WireSnapshot::encode(&s)),
    };
    assert_eq!(AgentMsg::parse(&snap.to_text()).unwrap(), snap);
    assert!(CoordMsg::parse("{\"type\":\"assign\"}").is_err());
}

#[test]
fn malformed_control_messages_are_errors_not_panics() {
    // Mutations of valid messages (the control channel's parser sees untrusted bytes).
    let mut s = Snapshot::default();
    record_us(&mut s.hist.tcp_connect, 1234);
    s.counters.fail(FailureKind::Refused);
    let valid = [
        AgentMsg::Snapshot {
            seq: 1,
            last: false,
            snapshot: Box::new(WireSnapshot::encode(&s)),
        }
        .to_text(),
        CoordMsg::Heartbeat { ack: 3 }.to_text(),
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    for text in valid {
        let bytes = text.into_bytes();
        for _ in 0..2000 {
            let mut b = bytes.clone();
            for _ in 0..rng.usize(1..4) {
                if b.is_empty() {
                    break;
                }
                let i = rng.usize(..b.len());
                match rng.u8(0..3) {
                    0 => b[i] = rng.u8(..),
                    1 => {
                        b.remove(i);
                    }
                    _ => b.truncate(i),
                }
            }
            let Ok(t) = String::from_utf8(b) else {
                continue;
            };
            if let Ok(AgentMsg::Snapshot { snapshot, .. }) = AgentMsg::parse(&t) {
                let _ = snapshot.decode();
            }
            let _ = CoordMsg::parse(&t);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Admission: token and protocol version
// ---------------------------------------------------------------------------------------

#[test]
fn wrong_token_is_refused() {
    let gw = gateway();
    let plan = plan_for(gw.local_addr(), vec![stage(100, 1)]);
    let mut cfg = CoordinatorConfig::new(1, token());
    cfg.join_timeout = WAIT;
    let c = start_coordinator(plan, cfg);
    let agent = start_agent(agent_cfg(&c.url, Secret("not-the-token".into()), "bad"));
    match agent.recv_timeout(WAIT).expect("agent returns") {
        // The coordinator proves its token first; this agent cannot tell a coordinator with
        // another token from an impostor, and says both.
        Err(AgentError::Refused(reason)) => {
            assert!(
                reason.contains("could not prove it holds the token"),
                "{reason}"
            );
            assert!(reason.contains("--token-file"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The coordinator is still waiting for a real agent; Ctrl-C cancels it.
    c.stop.store(true, Ordering::Relaxed);
    assert!(matches!(
        c.result.recv_timeout(WAIT).expect("coordinator returns"),
        Err(ClusterError::Interrupted)
    ));
    assert_eq!(gw.stats().accepted, 0, "no load before the run starts");
}

/// A raw control client: connect, send `text`, return the first answer.
fn raw_exchange(url: &str, text: String) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(tungstenite::Message::text(text)).await.unwrap();
        loop {
            match ws.next().await.expect("an answer").unwrap() {
                tungstenite::Message::Text(t) => return t.as_str().to_string(),
                _ => continue,
            }
        }
    })
}

#[test]
fn wrong_protocol_version_is_refused_clearly() {
    let gw = gateway();
    let plan = plan_for(gw.local_addr(), vec![stage(100, 1)]);
    let c = start_coordinator(plan, CoordinatorConfig::new(1, token()));
    // A hello from a future version, with fields this version does not know.
    let hello = serde_json::json!({
        "type": "hello", "protocol": PROTOCOL_VERSION + 1, "nonce": "00",
        "agent": {"something": "new"}, "capabilities": ["x"]
    });
    let answer = raw_exchange(&c.url, hello.to_string());
    match CoordMsg::parse(&answer).unwrap() {
        CoordMsg::Refused { reason } => {
            assert!(reason.contains("protocol version mismatch"), "{reason}");
            assert!(
                reason.contains(&format!("sent {}", PROTOCOL_VERSION + 1)),
                "{reason}"
            );
        }
        other => panic!("expected refused, got {other:?}"),
    }
    c.stop.store(true, Ordering::Relaxed);
    c.result
        .recv_timeout(WAIT)
        .expect("coordinator returns")
        .unwrap_err();
}

// ---------------------------------------------------------------------------------------
// A hand-driven coordinator for the agent's safety rules
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Vanish {
    /// Drop the connection and the listener (the coordinator process died).
    Drop,
    /// Keep the connection open but never send again (the coordinator hung).
    Silent,
}

/// Accept one agent, assign it the whole plan, start it, wait until `open` connections are
/// held, then vanish. Returns the URL; `held` gets a message once the load is up.
fn fake_coordinator(
    plan: Plan,
    open: u64,
    vanish: Vanish,
    protocol: u32,
) -> (String, mpsc::Receiver<()>, JoinHandle<()>) {
    use futures_util::{SinkExt, StreamExt};
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let url = format!("ws://{}/", std_listener.local_addr().unwrap());
    let (held_tx, held_rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            let hello = loop {
                match ws.next().await {
                    Some(Ok(tungstenite::Message::Text(t))) => {
                        break AgentMsg::parse(t.as_str()).unwrap();
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("expected hello, got {other:?}"),
                }
            };
            if protocol == PROTOCOL_VERSION {
                util::link::coordinator_side(&mut ws, &token().0, &hello).await;
            }
            let wire = WirePlan::from_plan(&plan);
            let hash = wire.hash();
            let send = |m: CoordMsg| tungstenite::Message::text(m.to_text());
            ws.send(send(CoordMsg::Welcome {
                protocol,
                agent_id: 1,
                run_id: "r".into(),
                plan_hash: hash.clone(),
                last_seq: 0,
            }))
            .await
            .unwrap();
            if protocol != PROTOCOL_VERSION {
                let _ = ws.next().await;
                return;
            }
            ws.send(send(CoordMsg::Assign(Box::new(Assignment {
                agent_id: 1,
                plan: wire,
                plan_hash: hash,
                slice_lo: 0.0,
                slice_hi: 1.0,
                connections: open,
                sources: Vec::new(),
                snapshot_every: Duration::from_millis(100),
            }))))
            .await
            .unwrap();
            let at = std::time::SystemTime::now() + Duration::from_millis(50);
            let mut started = false;
            let mut open_now = 0;
            while let Some(Ok(m)) = ws.next().await {
                let tungstenite::Message::Text(t) = m else {
                    continue;
                };
                match AgentMsg::parse(t.as_str()).unwrap() {
                    AgentMsg::Ready { .. } if !started => {
                        started = true;
                        ws.send(send(CoordMsg::Start {
                            at_unix_ns: unix_ns(at),
                        }))
                        .await
                        .unwrap();
                    }
                    AgentMsg::Snapshot { seq, snapshot, .. } => {
                        open_now = snapshot.gauges.open;
                        ws.send(send(CoordMsg::Heartbeat { ack: seq }))
                            .await
                            .unwrap();
                    }
                    _ => {}
                }
                if open_now == open {
                    break;
                }
            }
            let _ = held_tx.send(());
            match vanish {
                Vanish::Drop => {
                    drop(ws);
                    drop(listener);
                }
                Vanish::Silent => {
                    // Keep both open, read nothing, send nothing, until the agent gives up
                    // and closes its side.
                    let mut buf = [0u8; 1];
                    let _ = tokio::time::timeout(WAIT, async {
                        let (mut s, _) = listener.accept().await.unwrap();
                        use tokio::io::AsyncReadExt;
                        let _ = s.read(&mut buf).await;
                    })
                    .await;
                    drop(ws);
                }
            }
        });
    });
    (url, held_rx, h)
}

fn orphan_case(vanish: Vanish) {
    let gw = gateway();
    let n = 40;
    // A long hold: only the orphan rule can end this run early.
    let plan = plan_for(gw.local_addr(), vec![stage(200, n), stage(600_000, n)]);
    let (url, held, fake) = fake_coordinator(plan, n, vanish, PROTOCOL_VERSION);
    let mut cfg = agent_cfg(&url, token(), "orphan");
    cfg.orphan_timeout = Duration::from_millis(700);
    let began = Instant::now();
    let agent = start_agent(cfg);
    held.recv_timeout(WAIT).expect("the load comes up");
    // The agent saw every upgrade; the gateway counts each a moment later on a busy machine
    // (by then the agent may already have been orphaned and closed them: count upgrades).
    eventually("the gateway to count every upgrade", || {
        gw.stats().upgraded == n
    });
    let result = agent.recv_timeout(WAIT).expect("the orphaned agent exits");
    assert!(
        matches!(result, Err(AgentError::Orphaned(_))),
        "expected Orphaned, got {result:?}"
    );
    assert!(began.elapsed() < Duration::from_secs(120));
    // Everything it opened is closed (the gateway sees the closes shortly after).
    eventually("the gateway to see every connection closed", || {
        gw.stats().open == 0
    });
    assert_eq!(
        gw.stats().upgraded,
        n,
        "no new connections after the orphaning"
    );
    if vanish == Vanish::Drop {
        fake.join().unwrap();
    }
}

#[test]
fn orphaned_agent_stops_its_load_when_the_coordinator_dies() {
    orphan_case(Vanish::Drop);
}

#[test]
fn orphaned_agent_stops_its_load_when_the_coordinator_hangs() {
    orphan_case(Vanish::Silent);
}

#[test]
fn agent_refuses_a_coordinator_of_another_protocol_version() {
    let gw = gateway();
    let plan = plan_for(gw.local_addr(), vec![stage(100, 1)]);
    let (url, _held, _fake) = fake_coordinator(plan, 1, Vanish::Drop, PROTOCOL_VERSION + 7);
    match start_agent(agent_cfg(&url, token(), "v"))
        .recv_timeout(WAIT)
        .unwrap()
    {
        Err(AgentError::Refused(r)) => assert!(r.contains("protocol version mismatch"), "{r}"),
        other => panic!("expected refusal, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Whole runs
// ---------------------------------------------------------------------------------------

fn merged_of(hists: &[&Histogram<u64>]) -> Histogram<u64> {
    let mut m = new_histogram();
    for h in hists {
        m.add(*h).unwrap();
    }
    m
}

#[test]
fn two_agents_merge_exactly() {
    let gw = gateway();
    let n = 300;
    let mut plan = plan_for(gw.local_addr(), vec![stage(400, n), stage(400, n)]);
    plan.sources = ips(&["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]);
    let mut cfg = CoordinatorConfig::new(2, token());
    cfg.start_lead = Duration::from_millis(100);
    let c = start_coordinator(plan, cfg);
    let a1 = start_agent(agent_cfg(&c.url, token(), "a1"));
    let a2 = start_agent(agent_cfg(&c.url, token(), "a2"));
    let o = c.result.recv_timeout(WAIT).unwrap().expect("the run");
    let r1 = a1.recv_timeout(WAIT).unwrap().expect("agent 1");
    let r2 = a2.recv_timeout(WAIT).unwrap().expect("agent 2");

    // What a run on a busy machine still guarantees: the plan ends on time whether or not
    // the ramp kept up, and the slots not open by then are aborted while connecting. So the
    // counts are checked against what was established (exactly: the merge loses and
    // duplicates nothing), not against the plan's 300.
    let t = &o.totals.counters;
    let est = t.established;
    assert!(est > 0, "{t:?}");
    assert!(t.attempted <= n, "{t:?}");
    assert_eq!(t.attempted, est + t.aborted, "{t:?}");
    assert_eq!((t.failed, t.dropped), (0, 0), "{t:?}");
    assert_eq!(t.closed, est);
    assert!(o.peak_open <= est, "{} > {est}", o.peak_open);
    // The gateway upgraded every established connection, and maybe a few the client
    // aborted before it read the 101.
    let upgraded = gw.stats().upgraded;
    assert!(
        est <= upgraded && upgraded <= t.attempted,
        "{upgraded} upgraded; {t:?}"
    );
    assert!(!o.interrupted);

    // agents[]: their counts sum to the global ones, each within its own sources.
    assert_eq!(o.agents.len(), 2);
    let sum: u64 = o.agents.iter().map(|a| a.totals.counters.established).sum();
    assert_eq!(sum, est);
    assert_eq!(
        o.agents.iter().map(|a| a.planned_connections).sum::<u64>(),
        n
    );
    assert_eq!(o.agents[0].sources, ["127.0.0.2", "127.0.0.3"]);
    assert_eq!(o.agents[1].sources, ["127.0.0.4", "127.0.0.5"]);
    let per: u64 = o.per_source.iter().map(|s| s.established).sum();
    assert_eq!(per, est);
    assert_eq!(o.per_source.len(), 4);

    // The agents' own outcomes agree with what the coordinator holds for them.
    let own: u64 = [&r1, &r2]
        .iter()
        .map(|r| r.outcome.totals.counters.established)
        .sum();
    assert_eq!(own, est);

    // Merged histograms are the histogram of all samples.
    let parts: Vec<&Histogram<u64>> = o
        .agents
        .iter()
        .map(|a| &*a.totals.hist.ws_handshake)
        .collect();
    let expect = merged_of(&parts);
    let got = &o.totals.hist.ws_handshake;
    assert_eq!(got.len(), est);
    assert_eq!(got.len(), expect.len());
    assert_eq!(quantiles(got), quantiles(&expect));
    let own_parts = [
        &*r1.outcome.totals.hist.ws_handshake,
        &*r2.outcome.totals.hist.ws_handshake,
    ];
    assert!(merged_of(&own_parts) == **got);

    // The JSON report carries agents[] and the serialized histograms.
    let doc = wsscale::report::to_json(&o);
    assert_eq!(doc["agents"].as_array().unwrap().len(), 2);
    assert!(
        doc["histograms"]["ws_handshake"]
            .as_str()
            .unwrap()
            .starts_with("HISTFAA")
    );
}

#[test]
fn ctrl_c_on_the_coordinator_ramps_agents_down_and_still_reports() {
    let gw = gateway();
    let n = 100;
    let mut plan = plan_for(gw.local_addr(), vec![stage(200, n), stage(600_000, n)]);
    // Each connection sends one message once the client has read the 101 (the gateway counts
    // a connection open before it answers, so its `open` alone could run ahead of the
    // client, which aborts whatever is still handshaking when it stops).
    plan.traffic.first_message = Some(b"up".to_vec());
    let mut cfg = CoordinatorConfig::new(2, token());
    cfg.start_lead = Duration::from_millis(100);
    let c = start_coordinator(plan, cfg);
    let a1 = start_agent(agent_cfg(&c.url, token(), "a1"));
    let a2 = start_agent(agent_cfg(&c.url, token(), "a2"));
    eventually("all connections held by the clients", || {
        gw.stats().messages_echoed == n
    });
    c.stop.store(true, Ordering::Relaxed);
    let o = c
        .result
        .recv_timeout(WAIT)
        .unwrap()
        .expect("a merged outcome");
    assert!(o.interrupted);
    assert_eq!(o.totals.counters.established, n);
    assert_eq!(o.totals.gauges.open, 0);
    assert!(a1.recv_timeout(WAIT).unwrap().is_ok());
    assert!(a2.recv_timeout(WAIT).unwrap().is_ok());
    eventually("the gateway to see every close", || gw.stats().open == 0);
}

/// A fake agent that joins, runs nothing, sends one snapshot, and dies.
fn dying_agent(url: &str, established: u64) -> JoinHandle<()> {
    use futures_util::{SinkExt, StreamExt};
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            let hello = serde_json::json!({
                "type": "hello", "protocol": PROTOCOL_VERSION,
                "agent": {"name": "doomed", "host": "elsewhere", "pid": 1, "cores": 1,
                          "fd_soft": 1000, "fd_hard": 1000, "max_connections": 900,
                          "sources": [], "threads": null, "port_range": null},
            });
            let welcome = util::link::agent_side(&mut ws, &token().0, hello).await;
            assert!(matches!(welcome, CoordMsg::Welcome { .. }), "{welcome:?}");
            while let Some(Ok(m)) = ws.next().await {
                let tungstenite::Message::Text(t) = m else {
                    continue;
                };
                match CoordMsg::parse(t.as_str()).unwrap() {
                    CoordMsg::Assign(a) => {
                        let ready = AgentMsg::Ready {
                            plan_hash: a.plan_hash,
                            threads: 1,
                            rss_before_bytes: 0,
                            warnings: Vec::new(),
                        };
                        ws.send(tungstenite::Message::text(ready.to_text()))
                            .await
                            .unwrap();
                    }
                    CoordMsg::Start { .. } => {
                        let mut s = Snapshot::default();
                        s.counters.attempted = established;
                        s.counters.established = established;
                        s.gauges.open = established;
                        let m = AgentMsg::Snapshot {
                            seq: 1,
                            last: false,
                            snapshot: Box::new(WireSnapshot::encode(&s)),
                        };
                        ws.send(tungstenite::Message::text(m.to_text()))
                            .await
                            .unwrap();
                        return; // dies: the connection drops without a final snapshot
                    }
                    _ => {}
                }
            }
        });
    })
}

fn lost_agent_case(abort: bool) -> RunOutcome {
    let gw = gateway();
    let n = 40;
    let plan = plan_for(
        gw.local_addr(),
        vec![stage(200, n), stage(if abort { 600_000 } else { 1500 }, n)],
    );
    let mut cfg = CoordinatorConfig::new(2, token());
    cfg.start_lead = Duration::from_millis(100);
    cfg.orphan_timeout = Duration::from_millis(500);
    cfg.abort_on_agent_loss = abort;
    let c = start_coordinator(plan, cfg);
    let real = start_agent(agent_cfg(&c.url, token(), "survivor"));
    let doomed = dying_agent(&c.url, 7);
    let o = c
        .result
        .recv_timeout(WAIT)
        .unwrap()
        .expect("the run goes on");
    doomed.join().unwrap();
    assert!(real.recv_timeout(WAIT).unwrap().is_ok());
    let lost: Vec<_> = o.agents.iter().filter(|a| a.lost.is_some()).collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].name, "doomed");
    // Its last snapshot is kept in the merged figures.
    assert_eq!(lost[0].totals.counters.established, 7);
    o
}

#[test]
fn an_agent_lost_mid_run_is_reported_and_the_run_continues() {
    let o = lost_agent_case(false);
    assert!(!o.interrupted);
    let survivor = o.agents.iter().find(|a| a.lost.is_none()).unwrap();
    assert_eq!(
        survivor.totals.counters.established,
        survivor.planned_connections
    );
    assert_eq!(
        o.totals.counters.established,
        7 + survivor.totals.counters.established
    );
    let doc = wsscale::report::to_json(&o);
    let lost = doc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["lost"] == true)
        .unwrap();
    assert!(lost["lost_reason"].as_str().unwrap().contains("link lost"));
}

#[test]
fn abort_on_agent_loss_stops_the_run() {
    // The hold is ten minutes: only the abort can end this test in time.
    let o = lost_agent_case(true);
    assert!(o.interrupted);
}

// ---------------------------------------------------------------------------------------
// --abort-on-fail: one rule in every run mode
// ---------------------------------------------------------------------------------------

/// A WebSocket server that holds at most 10 connections at a time and closes any other
/// before answering its upgrade: of a plan's 20 connections, 10 fail (and, with
/// `--reconnect`, keep failing). Not the gateway's `max_connections`: an agent cannot yet
/// report its 503s to the coordinator (integer-keyed maps in a snapshot do not parse).
fn server_of_10() -> SocketAddr {
    let open = Arc::new(std::sync::atomic::AtomicU64::new(0));
    util::tcp_server(move |s| {
        if open.fetch_add(1, Ordering::SeqCst) < 10
            && let Ok(mut ws) = tungstenite::accept(s)
        {
            while ws.read().is_ok() {}
        }
        // Otherwise `s` is dropped unanswered: the client's upgrade fails.
        open.fetch_sub(1, Ordering::SeqCst);
    })
}

/// 20 connections (ramped in 200 ms, then held `hold_ms`) with `--abort-on-fail` and one
/// threshold.
fn abort_plan(addr: SocketAddr, threshold: &str, hold_ms: u64) -> Plan {
    let mut p = plan_for(addr, vec![stage(200, 20), stage(hold_ms, 20)]);
    p.thresholds = vec![threshold::parse(threshold).unwrap()];
    p.abort_on_fail = true;
    p
}

/// The plan `make` builds for a fresh [`server_of_10`], run by one engine in this process
/// (`wsscale run`) and by a coordinator with two agents (what `wsscale run --processes 2`
/// runs, here in-process).
fn run_in_one_process_and_coordinated(
    make: impl Fn(SocketAddr) -> Plan,
) -> Vec<(&'static str, RunOutcome)> {
    let plan = make(server_of_10());
    let single = spawn(move || util::run(&plan))
        .recv_timeout(WAIT)
        .expect("the single-process run ends");

    let mut cfg = CoordinatorConfig::new(2, token());
    cfg.start_lead = Duration::from_millis(100);
    let c = start_coordinator(make(server_of_10()), cfg);
    let agents = [
        start_agent(agent_cfg(&c.url, token(), "a1")),
        start_agent(agent_cfg(&c.url, token(), "a2")),
    ];
    let coordinated = c
        .result
        .recv_timeout(WAIT)
        .expect("the coordinator returns")
        .expect("the coordinated run");
    for a in agents {
        a.recv_timeout(WAIT)
            .expect("the agent returns")
            .expect("the agent's run");
    }
    vec![
        ("one process", single),
        ("coordinator, 2 agents", coordinated),
    ]
}

/// `wsscale run --processes 2 ARGS` against a fresh [`server_of_10`]: the exit code and the
/// JSON report. The child is killed if it is still running after [`WAIT`].
// The child is reaped by `try_wait` in the loop (or `wait` after a kill); clippy does not see
// `try_wait` as a wait.
#[allow(clippy::zombie_processes)]
fn run_processes_2(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let target = format!("ws://{}/", server_of_10());
    let dir = tempfile::tempdir().unwrap();
    let (report, stderr) = (dir.path().join("r.json"), dir.path().join("stderr"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsscale"))
        .args(["run", "--processes", "2", "--target", &target])
        .args(args)
        .arg("--report-json")
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("wsscale starts");
    let mut status = None;
    let deadline = Instant::now() + WAIT;
    while status.is_none() {
        status = child.try_wait().unwrap();
        if status.is_none() && Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsscale run --processes 2 {args:?} still running after {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        let err = std::fs::read_to_string(&stderr).unwrap_or_default();
        panic!("no report ({e}); exit {status:?}\n{err}")
    });
    (status.unwrap().code(), serde_json::from_str(&text).unwrap())
}

#[test]
fn abort_on_fail_bounds_attempts_by_the_plan_in_every_run_mode() {
    // --reconnect: failed connections are re-opened without limit, so no number of failures
    // makes connect_success_rate>=0.5 unreachable, and no run mode may stop early. Half of
    // the 20 fail and then keep reconnecting into a full server: with the attempts bounded
    // by the peak (20, what the coordinator used to take) instead, the threshold would be
    // lost at the first failed reconnect (11 of 21 failed).
    let reconnecting = |addr| {
        let mut p = abort_plan(addr, "connect_success_rate>=0.5", 1000);
        p.reconnect = Some(Reconnect {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
            ..Reconnect::default()
        });
        p
    };
    let p = reconnecting("127.0.0.1:9".parse().unwrap());
    assert_eq!(planned_attempts(&p), None);
    assert_eq!(p.peak_connections(), 20);
    let rule = AbortRule::for_plan(&p).expect("an abort rule");
    let rate = &p.thresholds[0];
    for (mode, o) in run_in_one_process_and_coordinated(reconnecting) {
        let c = &o.totals.counters;
        assert!(c.reconnects > 0, "{mode}: {c:?}");
        assert!(
            cannot_be_met(rate, &o.totals, p.peak_connections()),
            "{mode}: the peak as the bound would have aborted this run: {c:?}"
        );
        assert!(rule.lost(&o.totals).is_none(), "{mode}: {c:?}");
        assert!(!o.aborted_by_threshold, "{mode}: stopped early: {c:?}");
        assert!(!o.interrupted, "{mode}");
    }
    let (code, doc) = run_processes_2(&[
        "--stage",
        "200ms:20",
        "--stage",
        "1s:20",
        "--reconnect-initial",
        "20ms",
        "--reconnect-max",
        "100ms",
        "--threshold",
        "connect_success_rate>=0.5",
        "--abort-on-fail",
    ]);
    assert_eq!(doc["aborted_by_threshold"], false, "{}", doc["connections"]);
    assert!(doc["connections"]["reconnects"].as_u64().unwrap() > 0);
    assert_eq!(code, Some(99), "the threshold fails at the end, not before");

    // Without --reconnect the plan makes 20 attempts; 10 fail, more than the 8 that
    // connect_success_rate>=0.6 allows: every run mode stops early. The hold is ten minutes,
    // so only the abort ends these runs in time.
    let lost = |addr| abort_plan(addr, "connect_success_rate>=0.6", UNTIL_STOPPED);
    let p = lost("127.0.0.1:9".parse().unwrap());
    assert_eq!(planned_attempts(&p), Some(20));
    for (mode, o) in run_in_one_process_and_coordinated(lost) {
        let c = &o.totals.counters;
        assert!(c.failed >= 9, "{mode}: {c:?}");
        assert!(o.aborted_by_threshold, "{mode}: {c:?}");
        assert!(!o.interrupted, "{mode}: an abort is not an interruption");
    }
    let (code, doc) = run_processes_2(&[
        "--stage",
        "200ms:20",
        "--stage",
        "10m:20",
        "--threshold",
        "connect_success_rate>=0.6",
        "--abort-on-fail",
    ]);
    assert_eq!(doc["aborted_by_threshold"], true, "{}", doc["connections"]);
    assert_eq!(doc["interrupted"], false);
    assert_eq!(code, Some(99));
}

// ---------------------------------------------------------------------------------------
// Shards and report merge
// ---------------------------------------------------------------------------------------

/// What `wsscale run --shard` runs: the shard's own share of the plan.
fn run_part(plan: &Plan, slice: Slice) -> RunOutcome {
    util::run(&wsscale::cluster::slice_view(plan, slice))
}

/// [`run_part`] for a plan that ends on a long hold: run until every connection of the share
/// is established, then stop (so reaching the count does not depend on the machine's speed).
fn run_part_until_held(plan: &Plan, slice: Slice) -> RunOutcome {
    let part = wsscale::cluster::slice_view(plan, slice);
    let share = part.peak_connections();
    util::run_until(&part, &format!("{share} connections"), |c| {
        c.established >= share
    })
}

fn input(name: &str, o: &RunOutcome) -> wsscale::report::merge::Input {
    wsscale::report::merge::Input {
        name: name.into(),
        doc: wsscale::report::to_json(o),
    }
}

#[test]
fn report_merge_of_shards_equals_a_single_run() {
    let gw = gateway();
    let n = 201;
    // Each run holds until its share is established, then stops: the whole and the shards
    // then hold exactly what the plan asks, however slow the machine.
    let mut plan = plan_for(
        gw.local_addr(),
        vec![stage(300, n), stage(UNTIL_STOPPED, n)],
    );
    plan.threads = 2;
    let whole = run_part_until_held(&plan, Slice::WHOLE);
    let parts: Vec<RunOutcome> = (0..3)
        .map(|i| run_part_until_held(&plan, Slice::nth(i, 3)))
        .collect();
    let shard_counts: Vec<u64> = parts
        .iter()
        .map(|p| p.totals.counters.established)
        .collect();
    assert_eq!(shard_counts, vec![67, 67, 67]);

    let inputs: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| input(&format!("shard-{}.json", i + 1), p))
        .collect();
    let merged = wsscale::report::merge::merge(&inputs).unwrap();
    let (m, w) = (&merged.totals.counters, &whole.totals.counters);
    assert_eq!(
        (m.attempted, m.established, m.failed, m.dropped, m.closed),
        (w.attempted, w.established, w.failed, w.dropped, w.closed)
    );
    assert_eq!(merged.peak_open, n);
    assert_eq!(
        merged.stages, plan.stages,
        "the shards' stages add up to the plan's"
    );
    assert_eq!(merged.agents.len(), 3);
    assert_eq!(merged.agents[1].name, "shard-2.json");

    // Percentiles are those of all samples.
    let hs: Vec<&Histogram<u64>> = parts.iter().map(|p| &*p.totals.hist.ws_handshake).collect();
    let all = merged_of(&hs);
    assert!(*merged.totals.hist.ws_handshake == all);
    let doc = wsscale::report::to_json(&merged);
    let p = wsscale::metrics::Percentiles::from_hist(&all);
    assert_eq!(doc["timings"]["ws_handshake_ms"]["p99"], p.p99);
    assert_eq!(doc["timings"]["ws_handshake_ms"]["count"], n);
    assert_eq!(doc["connections"]["established"], n);

    // Merging the merged report with nothing else changes nothing but agents' names.
    let again = wsscale::report::merge::merge(&[wsscale::report::merge::Input {
        name: "total.json".into(),
        doc: doc.clone(),
    }])
    .unwrap();
    assert!(*again.totals.hist.ws_handshake == all);
    assert_eq!(again.agents.len(), 3);
}

#[test]
fn report_merge_of_one_report_reproduces_it() {
    // Catches report fields that `report merge` does not carry over.
    let gw = gateway();
    let plan = plan_for(gw.local_addr(), vec![stage(200, 30), stage(300, 30)]);
    let o = run_part(&plan, Slice::WHOLE);
    let doc = wsscale::report::to_json(&o);
    let merged = wsscale::report::merge::merge(&[input("one.json", &o)]).unwrap();
    let mut back = wsscale::report::to_json(&merged);
    assert_eq!(back["agents"].as_array().unwrap().len(), 1);
    back["agents"] = doc["agents"].clone();
    let (a, b) = (
        serde_json::to_string_pretty(&doc).unwrap(),
        serde_json::to_string_pretty(&back).unwrap(),
    );
    if a != b {
        for (x, y) in a.lines().zip(b.lines()) {
            assert_eq!(x, y, "a field differs after report merge");
        }
        panic!("reports differ in length");
    }
}

#[test]
fn report_merge_refuses_reports_without_histograms() {
    let gw = gateway();
    let plan = plan_for(gw.local_addr(), vec![stage(100, 5)]);
    let o = run_part(&plan, Slice::WHOLE);
    let mut doc = wsscale::report::to_json(&o);
    doc.as_object_mut().unwrap().remove("histograms");
    let err = wsscale::report::merge::merge(&[wsscale::report::merge::Input {
        name: "old.json".into(),
        doc,
    }])
    .expect_err("refused");
    assert!(
        err.to_string().contains("old.json") && err.to_string().contains("histograms"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------

#[test]
fn run_with_processes_merges_exact_counts() {
    let gw = gateway();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsscale"))
        .args([
            "run",
            "--processes",
            "3",
            "-c",
            "3000",
            "--ramp",
            "1s",
            "--hold",
            "1s",
            "--ramp-down",
            "0s",
            "--interval",
            "500ms",
            "--source-ip",
            "127.0.0.2-127.0.0.4",
            // A busy machine may fall short of the peak in 2 s (exit 98 otherwise); what
            // this test checks is the merge, below.
            "--allow-failures",
            "--target",
            &gw.url(),
            "--report-json",
        ])
        .arg(&report)
        .output()
        .expect("wsscale runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // Counts are checked against what was established, not against the plan's 3000: three
    // agent processes may not open every slot within the plan's 2 s on a busy machine (the
    // rest are aborted while connecting). Whatever they did adds up exactly.
    let count = |field: &str| doc["connections"][field].as_u64().unwrap();
    let (attempted, est) = (count("attempted"), count("established"));
    assert!(
        0 < est && est <= attempted && attempted <= 3000,
        "{}",
        doc["connections"]
    );
    assert_eq!(count("failed"), 0);
    assert!(count("peak_open") <= est);
    let agents = doc["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 3);
    let field = |a: &serde_json::Value, f: &str| a[f].as_u64().unwrap();
    let sum = |f: &str| agents.iter().map(|a| field(a, f)).sum::<u64>();
    assert_eq!(sum("established"), est);
    assert_eq!(sum("attempted"), attempted);
    assert_eq!(sum("planned_connections"), 3000);
    // Each process its own source address.
    for (i, a) in agents.iter().enumerate() {
        assert_eq!(
            a["sources"],
            serde_json::json!([format!("127.0.0.{}", i + 2)])
        );
    }
    // The gateway upgraded every established connection, and maybe a few the client
    // aborted before it read the 101.
    let upgraded = gw.stats().upgraded;
    assert!(
        est <= upgraded && upgraded <= attempted,
        "{upgraded} upgraded, {est} established, {attempted} attempted"
    );
    assert!(
        stderr.contains("agent 3"),
        "per-agent live lines:\n{stderr}"
    );
}

#[test]
fn run_refuses_too_few_processes_with_the_number_needed() {
    let gw = gateway();
    let limits = wsscale::system::nofile_limits().unwrap();
    let per = wsscale::system::max_connections_for_fds(limits.hard);
    let want = per * 2 + 1;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsscale"))
        .args(["run", "--processes", "2", "-c"])
        .arg(want.to_string())
        .args(["--target", &gw.url()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--processes 3"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// Several hosts: network namespaces
// ---------------------------------------------------------------------------------------

mod netns {
    //! A gateway host, two agent hosts with addresses of their own, and a coordinator host,
    //! each a network namespace on one bridge (in a fifth, "switch" namespace).

    use super::*;
    use std::process::{Child, Command, Stdio};

    struct Lab {
        tag: String,
        hosts: Vec<String>,
        children: Vec<Child>,
    }

    impl Lab {
        fn ns(&self, h: &str) -> String {
            format!("wss{}{h}", self.tag)
        }

        fn exec(&self, host: &str, args: &[&str]) -> Command {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.ns(host)]).args(args);
            c
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
            for h in &self.hosts {
                let _ = Command::new("ip")
                    .args(["netns", "del", &self.ns(h)])
                    .status();
            }
        }
    }

    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Hosts and their addresses on 10.77.0.0/24.
    const HOSTS: &[(&str, &[&str])] = &[
        ("gw", &["10.77.0.1"]),
        ("co", &["10.77.0.2"]),
        ("a1", &["10.77.0.11", "10.77.0.12"]),
        ("a2", &["10.77.0.21", "10.77.0.22"]),
    ];

    fn build() -> Result<Lab, String> {
        // Unique per lab: the tests of this module run in parallel in one process.
        static LABS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{:x}{n}", std::process::id() % 0xfffff);
        let mut lab = Lab {
            tag,
            hosts: vec!["sw".into()],
            children: Vec::new(),
        };
        let sw = lab.ns("sw");
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (h, addrs) in HOSTS {
            let ns = lab.ns(h);
            ip(&["netns", "add", &ns])?;
            lab.hosts.push(h.to_string());
            let (inner, outer) = (format!("v{}{h}", lab.tag), format!("b{}{h}", lab.tag));
            ip(&[
                "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "netns", &sw])?;
            ip(&["-n", &sw, "link", "set", &outer, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            for a in *addrs {
                ip(&["-n", &ns, "addr", "add", &format!("{a}/24"), "dev", &inner])?;
            }
        }
        Ok(lab)
    }

    /// Start a command in a namespace and read its first stdout line.
    fn start(lab: &mut Lab, host: &str, args: &[&str]) -> String {
        use std::io::BufRead;
        let mut child = lab
            .exec(host, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ip netns exec");
        let out = child.stdout.take().unwrap();
        let first = spawn(move || {
            let mut line = String::new();
            std::io::BufReader::new(out).read_line(&mut line).ok();
            line
        });
        lab.children.push(child);
        first.recv_timeout(WAIT).expect("a first line")
    }

    #[test]
    fn multi_host_run_in_network_namespaces() {
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                == Some("0")
        });
        let has_ip = Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !root || !has_ip {
            eprintln!(
                "SKIPPED multi_host_run_in_network_namespaces: needs root and `ip netns` \
                 (root: {root}, ip: {has_ip}); it runs in CI"
            );
            return;
        }
        let mut lab = match build() {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "SKIPPED multi_host_run_in_network_namespaces: cannot build the lab: {e}"
                );
                return;
            }
        };
        let bin = env!("CARGO_BIN_EXE_wsscale");
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "netns-token\n").unwrap();
        let report = dir.path().join("total.json");
        let token_path = token_file.to_str().unwrap().to_string();

        let line = start(
            &mut lab,
            "gw",
            &[bin, "serve", "--listen", "10.77.0.1:8080"],
        );
        assert!(line.starts_with("listening on"), "{line}");

        let n = 1000;
        let report_s = report.to_str().unwrap().to_string();
        let mut co = lab
            .exec(
                "co",
                &[
                    bin,
                    "coordinator",
                    "--listen",
                    "10.77.0.2:7070",
                    "--agents",
                    "2",
                    "--token-file",
                    &token_path,
                    "-c",
                    &n.to_string(),
                    "--ramp",
                    "1s",
                    "--hold",
                    "1s",
                    "--ramp-down",
                    "0s",
                    "--interval",
                    "500ms",
                    // Exit 0 even if a busy machine falls short of the peak in 2 s:
                    // what this test checks is who connected from where, below.
                    "--allow-failures",
                    "--target",
                    "ws://10.77.0.1:8080/",
                    "--report-json",
                    &report_s,
                    // The link over TLS, its certificate pinned by the agents.
                    "--tls-self-signed",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let fingerprint = {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(co.stdout.take().unwrap()).lines();
            let fp = loop {
                let line = lines.next().expect("coordinator output").unwrap();
                if let Some(rest) = line.strip_prefix("link: TLS; certificate SHA-256 fingerprint ")
                {
                    break rest.trim().to_string();
                }
            };
            std::thread::spawn(move || lines.for_each(drop));
            fp
        };
        let mut agents = Vec::new();
        for (host, range) in [
            ("a1", "10.77.0.11-10.77.0.12"),
            ("a2", "10.77.0.21-10.77.0.22"),
        ] {
            agents.push(
                lab.exec(
                    host,
                    &[
                        bin,
                        "agent",
                        "--coordinator",
                        "wss://10.77.0.2:7070/",
                        "--tls-fingerprint",
                        &fingerprint,
                        "--allow-target",
                        "10.77.0.1:8080",
                        "--token-file",
                        &token_path,
                        "--source-ip",
                        range,
                        "--name",
                        host,
                        "--threads",
                        "1",
                    ],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
            );
        }
        let status = spawn(move || co.wait())
            .recv_timeout(WAIT)
            .unwrap()
            .unwrap();
        for mut a in agents {
            assert!(
                spawn(move || a.wait())
                    .recv_timeout(WAIT)
                    .unwrap()
                    .unwrap()
                    .success()
            );
        }
        assert!(status.success(), "coordinator exit {status:?}");

        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        // Checked against what was established, not against the plan's n: the agents may
        // not open every slot within the plan's 2 s on a busy machine.
        let est = doc["connections"]["established"].as_u64().unwrap();
        assert!(0 < est && est <= n, "{}", doc["connections"]);
        assert_eq!(doc["connections"]["failed"], 0);
        let agents = doc["agents"].as_array().unwrap();
        let mut sum = 0;
        for a in agents {
            let name = a["name"].as_str().unwrap();
            let prefix = if name == "a1" {
                "10.77.0.1"
            } else {
                "10.77.0.2"
            };
            let own: Vec<&str> = a["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(own.len(), 2);
            assert!(
                own.iter().all(|s| s.starts_with(prefix) && s.len() == 10),
                "{own:?}"
            );
            // Its connections came from its own addresses: the per-source rows of its
            // addresses add up to exactly its count.
            let from_own: u64 = doc["connections"]["per_source"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| own.contains(&r["address"].as_str().unwrap()))
                .map(|r| r["established"].as_u64().unwrap())
                .sum();
            assert_eq!(from_own, a["established"].as_u64().unwrap(), "agent {name}");
            sum += a["established"].as_u64().unwrap();
        }
        assert_eq!(sum, est, "the merged report is the sum of the agents");
    }

    // ---- partitions between an agent and the coordinator --------------------------------

    /// The lab for a partition test, or `None` (with a printed notice) when this host cannot
    /// build one: not root, no `ip netns`, no `nft`.
    fn partition_lab(test: &str) -> Option<Lab> {
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                == Some("0")
        });
        let has = |prog: &str| {
            Command::new(prog)
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let (has_ip, has_nft) = (has("ip"), has("nft"));
        if !root || !has_ip || !has_nft {
            eprintln!(
                "SKIPPED {test}: needs root, `ip netns` and `nft` (root: {root}, ip: \
                 {has_ip}, nft: {has_nft}); it runs in CI"
            );
            return None;
        }
        match build() {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("SKIPPED {test}: cannot build the lab: {e}");
                None
            }
        }
    }

    /// Cut `host` off from the coordinator (10.77.0.2) in both directions: packets are
    /// dropped silently, as on a dead link, while its traffic to the gateway flows on.
    fn partition(lab: &Lab, host: &str) {
        let mut nft = lab
            .exec(host, &["nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        nft.stdin
            .take()
            .unwrap()
            .write_all(
                b"table inet wsspart {\n\
                  chain out { type filter hook output priority 0; ip daddr 10.77.0.2 drop; }\n\
                  chain in { type filter hook input priority 0; ip saddr 10.77.0.2 drop; }\n\
                  }\n",
            )
            .unwrap();
        assert!(nft.wait().unwrap().success(), "nft partition rule");
    }

    /// Heal what [`partition`] did.
    fn heal(lab: &Lab, host: &str) {
        let ok = lab
            .exec(host, &["nft", "delete", "table", "inet", "wsspart"])
            .status()
            .unwrap();
        assert!(ok.success(), "nft delete");
    }

    /// TCP connections established to the gateway's port, counted in its namespace.
    fn gateway_established(lab: &Lab) -> usize {
        let out = lab
            .exec(
                "gw",
                &["ss", "-Htn", "state", "established", "sport", "= :8080"],
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// The gateway, a coordinator (plain `ws://` link; `co_args` added) of `n` connections
    /// held for `hold`, and agents `a1`, `a2` (`agent_args` added). Returns the coordinator,
    /// its stderr lines (also echoed), the agents and the report path.
    fn start_run(
        lab: &mut Lab,
        dir: &std::path::Path,
        n: u64,
        hold: &str,
        co_args: &[&str],
        agent_args: &[&str],
    ) -> (
        Child,
        std::sync::mpsc::Receiver<String>,
        Vec<Child>,
        std::path::PathBuf,
    ) {
        let bin = env!("CARGO_BIN_EXE_wsscale");
        let token_file = dir.join("token");
        std::fs::write(&token_file, "netns-token\n").unwrap();
        let token = token_file.to_str().unwrap();
        let report = dir.join("total.json");
        let line = start(lab, "gw", &[bin, "serve", "--listen", "10.77.0.1:8080"]);
        assert!(line.starts_with("listening on"), "{line}");
        let n_s = n.to_string();
        let mut args = vec![
            bin,
            "coordinator",
            "--listen",
            "10.77.0.2:7070",
            "--agents",
            "2",
            "--token-file",
            token,
            "-c",
            &n_s,
            "--ramp",
            "1s",
            "--hold",
            hold,
            "--ramp-down",
            "0s",
            "--target",
            "ws://10.77.0.1:8080/",
            "--report-json",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(co_args);
        let mut co = lab
            .exec("co", &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let err = co.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let _ = tx.send(line);
            }
        });
        let mut agents = Vec::new();
        for (host, range) in [
            ("a1", "10.77.0.11-10.77.0.12"),
            ("a2", "10.77.0.21-10.77.0.22"),
        ] {
            let mut args = vec![
                bin,
                "agent",
                "--coordinator",
                "ws://10.77.0.2:7070/",
                "--allow-target",
                "10.77.0.1:8080",
                "--token-file",
                token,
                "--source-ip",
                range,
                "--name",
                host,
                "--threads",
                "1",
            ];
            args.extend_from_slice(agent_args);
            agents.push(
                lab.exec(host, &args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap(),
            );
        }
        (co, lines, agents, report)
    }

    /// Wait (bounded) for a coordinator line that satisfies `pred`.
    fn wait_line(
        lines: &std::sync::mpsc::Receiver<String>,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return,
                Ok(_) => {}
                Err(e) => panic!("{e:?} waiting for the coordinator to show {what}"),
            }
        }
    }

    /// A live line of the coordinator showing agent `name` with a non-zero open count
    /// (`    agent 2   a1      open     100 | …`).
    fn shows_open(line: &str, name: &str) -> bool {
        let mut words = line.split_whitespace();
        words.next() == Some("agent")
            && words.nth(1) == Some(name)
            && words.next() == Some("open")
            && words
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
    }

    /// Wait (bounded) for a child's exit code.
    fn exit_code(child: Child) -> Option<i32> {
        let mut child = child;
        spawn(move || child.wait())
            .recv_timeout(2 * WAIT)
            .expect("the process exits")
            .unwrap()
            .code()
    }

    /// Poll until `n` connections are established at the gateway (bounded by [`WAIT`]).
    fn wait_established(lab: &Lab, n: usize) {
        let deadline = std::time::Instant::now() + WAIT;
        while gateway_established(lab) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {n} connections at the gateway"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn a_short_partition_of_an_agent_heals_without_loss() {
        let Some(mut lab) = partition_lab("a_short_partition_of_an_agent_heals_without_loss")
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let n = 200;
        // A hold long enough to contain the wait for the ramp and the 2 s partition.
        let (co, _lines, agents, report) = start_run(&mut lab, dir.path(), n, "15s", &[], &[]);
        wait_established(&lab, n as usize);
        partition(&lab, "a1");
        // The fault itself lasts 2 s (below the 10 s orphan timeout of both sides).
        std::thread::sleep(Duration::from_secs(2));
        heal(&lab, "a1");
        let codes: Vec<_> = agents.into_iter().map(exit_code).collect();
        assert_eq!(codes, [Some(0), Some(0)], "both agents finish normally");
        assert_eq!(
            exit_code(co),
            Some(0),
            "the coordinator's verdict is a pass"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let c = &doc["connections"];
        assert_eq!(c["established"], n, "exact merged count: {c}");
        assert_eq!(c["failed"], 0, "{c}");
        assert_eq!(c["dropped"], 0, "{c}");
        let agents = doc["agents"].as_array().unwrap();
        assert_eq!(agents.len(), 2);
        let mut sum = 0;
        for a in agents {
            assert_eq!(a["lost"], false, "no agent lost: {a}");
            sum += a["established"].as_u64().unwrap();
        }
        assert_eq!(
            sum, n,
            "the agents' counts add up exactly (nothing lost or doubled)"
        );
    }

    #[test]
    fn a_partition_past_the_orphan_timeout_stops_the_agent_and_the_run_is_incomplete() {
        let test = "a_partition_past_the_orphan_timeout_stops_the_agent_and_the_run_is_incomplete";
        let Some(mut lab) = partition_lab(test) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let n = 200;
        let orphan = ["--orphan-timeout", "2s"];
        let (co, lines, mut agents, report) =
            start_run(&mut lab, dir.path(), n, "10s", &orphan, &orphan);
        wait_established(&lab, n as usize);
        // The coordinator has a snapshot of a1 with its connections (so there is one to keep).
        wait_line(&lines, "a1's connections", |l| shows_open(l, "a1"));
        partition(&lab, "a1");
        let a2 = agents.pop().unwrap();
        let a1 = agents.pop().unwrap();
        assert_eq!(
            exit_code(a1),
            Some(3),
            "the cut-off agent exits as orphaned"
        );
        assert_eq!(exit_code(a2), Some(0), "the other agent finishes");
        assert_eq!(
            exit_code(co),
            Some(97),
            "the coordinator's verdict is incomplete"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let agents = doc["agents"].as_array().unwrap();
        let a1 = agents.iter().find(|a| a["name"] == "a1").unwrap();
        let a2 = agents.iter().find(|a| a["name"] == "a2").unwrap();
        assert_eq!(a1["lost"], true, "{a1}");
        assert!(a1["lost_reason"].is_string(), "{a1}");
        assert!(
            a1["established"].as_u64().unwrap() > 0,
            "its last snapshot is kept"
        );
        assert_eq!(a2["lost"], false, "{a2}");
    }
}

/// `run --processes 2 --process-orphan-timeout T`, with the coordinator (the run process itself)
/// stopped with SIGSTOP for 3 s once the agents hold their connections: the exit code and the
/// number of agents the report marks lost.
fn stalled_coordinator(orphan_timeout: &str) -> (Option<i32>, usize) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let gw = gateway();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsscale"))
        .args([
            "run",
            "--processes",
            "2",
            "-c",
            "4",
            "--ramp",
            "0s",
            "--hold",
            "8s",
        ])
        .args([
            "--ramp-down",
            "0s",
            "--process-orphan-timeout",
            orphan_timeout,
        ])
        .args(["--target", &gw.url()])
        .arg("--report-json")
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wsscale starts");
    eventually("the agents' 4 connections", || gw.stats().open == 4);
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    // The stall under test: longer than 2 s, shorter than 30 s.
    std::thread::sleep(Duration::from_secs(3));
    kill(pid, Signal::SIGCONT).unwrap();
    let status = child.wait().unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let lost = doc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["lost"].as_bool() == Some(true))
        .count();
    (status.code(), lost)
}

#[test]
fn process_orphan_timeout_decides_whether_a_stalled_coordinator_loses_its_agents() {
    // 2 s: the agents give up on the stopped coordinator and it declares them lost.
    let (code, lost) = stalled_coordinator("2s");
    assert_ne!(code, Some(0));
    assert_eq!(lost, 2, "exit {code:?}");
    // 30 s: the same 3 s stall is ridden out; the run completes.
    let (code, lost) = stalled_coordinator("30s");
    assert_eq!((code, lost), (Some(0), 0));
}

#[test]
fn process_orphan_timeout_without_processes_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsscale"))
        .args(["run", "-c", "1", "--process-orphan-timeout", "30s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--processes"), "{stderr}");
}
