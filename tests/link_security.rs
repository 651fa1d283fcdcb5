//! The control link under attack: the token is proven both ways and never sent, an impostor
//! coordinator or agent gets nothing, the link runs over TLS with a pinned certificate, and
//! an agent refuses targets outside its own allow-list.
//!
//! Everything runs in-process on 127.0.0.1:0; fakes are hand-written tokio-tungstenite
//! peers that record what they receive.

mod util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use util::{WAIT, spawn, stage};
use wsscale::cluster::agent::{AgentConfig, AgentError, AgentRun, run_agent};
use wsscale::cluster::allow::AllowList;
use wsscale::cluster::auth::{self, Role};
use wsscale::cluster::coordinator::{ClusterError, Coordinator, CoordinatorConfig};
use wsscale::cluster::link_tls::LinkTrust;
use wsscale::cluster::wire::{AgentMsg, CoordMsg, PROTOCOL_VERSION};
use wsscale::gateway::{GatewayConfig, GatewayHandle};
use wsscale::metrics::RunOutcome;
use wsscale::plan::{Plan, Secret};

const TOKEN: &str = "link-test-token-9f8e7d6c5b4a";

fn gateway() -> GatewayHandle {
    util::gateway(GatewayConfig::default(), 1)
}

fn plan(addr: SocketAddr, n: u64) -> Plan {
    let mut p = util::plan_for(addr, vec![stage(200, n), stage(300, n), stage(100, 0)]);
    p.interval = Duration::from_millis(100);
    p
}

/// A running coordinator: URL, certificate fingerprint (with TLS), stop flag, result.
type Running = (
    String,
    Option<String>,
    Arc<AtomicBool>,
    mpsc::Receiver<Result<RunOutcome, ClusterError>>,
);

/// How a fake agent answers a challenge: (coordinator nonce, coordinator proof, own nonce).
type Answer = Box<dyn FnOnce(&str, &str, &str) -> String>;

fn coordinator(plan: Plan, tls: bool) -> Running {
    let mut cfg = CoordinatorConfig::new(1, Secret(TOKEN.into()));
    cfg.join_timeout = WAIT;
    if tls {
        cfg.tls = Some(wsscale::gateway::tls::self_signed(&["localhost".into()]).unwrap());
    }
    let fingerprint = cfg.tls.as_ref().map(|t| t.fingerprint.clone());
    let c = Coordinator::bind("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let url = c.url();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    (url, fingerprint, stop, spawn(move || c.run(&plan, s)))
}

fn agent(cfg: AgentConfig) -> mpsc::Receiver<Result<AgentRun, AgentError>> {
    spawn(move || run_agent(&cfg, Arc::new(AtomicBool::new(false))))
}

fn agent_cfg(url: &str) -> AgentConfig {
    let mut cfg = AgentConfig::new(url, Secret(TOKEN.into()));
    cfg.threads = Some(1);
    cfg.join_timeout = Duration::from_secs(10);
    cfg
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A coordinator impostor: accepts one agent, records every text frame it sends, and
/// answers its hello with a challenge whose proof it had to make up.
fn impostor() -> (String, mpsc::Receiver<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let frames = spawn(move || {
        block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            let mut seen = Vec::new();
            let mut challenged = false;
            while let Some(Ok(m)) = ws.next().await {
                let tungstenite::Message::Text(t) = m else {
                    continue;
                };
                seen.push(t.as_str().to_string());
                if !challenged {
                    challenged = true;
                    // Its best guess: a proof made with some other token.
                    let AgentMsg::Hello(h) = AgentMsg::parse(t.as_str()).unwrap() else {
                        panic!("expected hello first");
                    };
                    let nonce = auth::nonce();
                    let c = CoordMsg::Challenge {
                        protocol: PROTOCOL_VERSION,
                        proof: auth::prove("guess", Role::Coordinator, &h.nonce, &nonce),
                        nonce,
                    };
                    ws.send(tungstenite::Message::text(c.to_text()))
                        .await
                        .unwrap();
                }
            }
            seen
        })
    });
    (url, frames)
}

#[test]
fn an_impostor_coordinator_learns_nothing_and_the_agent_stops() {
    let (url, frames) = impostor();
    let result = agent(agent_cfg(&url))
        .recv_timeout(WAIT)
        .expect("agent returns");
    match result {
        Err(AgentError::Refused(why)) => {
            assert!(why.contains("could not prove it holds the token"), "{why}");
            assert!(!why.contains(TOKEN), "the message never shows the token");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let seen = frames
        .recv_timeout(WAIT)
        .expect("the impostor saw the link close");
    assert_eq!(seen.len(), 1, "only the hello was sent: {seen:?}");
    assert!(
        !seen[0].contains(TOKEN),
        "the token never crosses: {}",
        seen[0]
    );
    match AgentMsg::parse(&seen[0]).unwrap() {
        AgentMsg::Hello(h) => assert!(auth::well_formed(&h.nonce)),
        other => panic!("expected hello, got {other:?}"),
    }
}

/// A raw agent: hello, then `answer` computes the proof from the challenge (nonce, proof)
/// and the agent's own nonce. Returns the coordinator's verdict message.
fn raw_agent(url: &str, answer: impl FnOnce(&str, &str, &str) -> String) -> CoordMsg {
    block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let nonce = auth::nonce();
        let hello = serde_json::json!({
            "type": "hello", "protocol": PROTOCOL_VERSION, "nonce": nonce,
            "agent": {"name": "fake", "host": "h", "pid": 1, "cores": 1, "fd_soft": 100,
                      "fd_hard": 100, "max_connections": 50, "sources": [], "threads": null,
                      "port_range": null},
        });
        ws.send(tungstenite::Message::text(hello.to_string()))
            .await
            .unwrap();
        let CoordMsg::Challenge {
            nonce: theirs,
            proof,
            ..
        } = CoordMsg::parse(&util::link::next_text(&mut ws).await).unwrap()
        else {
            panic!("expected a challenge");
        };
        // The real coordinator proves the token first.
        assert!(auth::verify(
            TOKEN,
            Role::Coordinator,
            &nonce,
            &theirs,
            &proof
        ));
        let mine = answer(&theirs, &proof, &nonce);
        ws.send(tungstenite::Message::text(
            AgentMsg::Proof { proof: mine }.to_text(),
        ))
        .await
        .unwrap();
        CoordMsg::parse(&util::link::next_text(&mut ws).await).unwrap()
    })
}

#[test]
fn an_agent_without_the_token_is_refused_however_it_answers() {
    let gw = gateway();
    let (url, _, stop, result) = coordinator(plan(gw.local_addr(), 2), false);
    let attempts: Vec<(&str, Answer)> = vec![
        (
            "another token",
            Box::new(|c, _, a| auth::prove("guess", Role::Agent, c, a)),
        ),
        // Reflecting the coordinator's own proof back.
        ("reflection", Box::new(|_, p, _| p.to_string())),
        ("garbage", Box::new(|_, _, _| "zz".into())),
    ];
    for (what, answer) in attempts {
        match raw_agent(&url, answer) {
            CoordMsg::Refused { reason } => {
                assert!(reason.contains("wrong token"), "{what}: {reason}")
            }
            other => panic!("{what}: expected refused, got {}", other.kind()),
        }
    }
    // The right proof is admitted (welcome), which shows the refusals were about the proof.
    let welcome = raw_agent(&url, |c, _, a| auth::prove(TOKEN, Role::Agent, c, a));
    assert!(
        matches!(welcome, CoordMsg::Welcome { .. }),
        "{}",
        welcome.kind()
    );
    stop.store(true, Ordering::Relaxed);
    let _ = result.recv_timeout(WAIT).expect("coordinator returns");
    assert_eq!(gw.stats().accepted, 0, "no load from refused agents");
}

#[test]
fn the_link_runs_over_tls_with_a_pinned_certificate() {
    let gw = gateway();
    let n = 6;
    let (url, fingerprint, _stop, result) = coordinator(plan(gw.local_addr(), n), true);
    assert!(url.starts_with("wss://"), "{url}");
    let mut cfg = agent_cfg(&url);
    cfg.trust = LinkTrust::Fingerprint(fingerprint.expect("self-signed has a fingerprint"));
    let ran = agent(cfg).recv_timeout(WAIT).expect("agent returns");
    let ran = ran.expect("the agent ran its part over wss://");
    assert_eq!(ran.outcome.totals.counters.established, n);
    let merged = result.recv_timeout(WAIT).unwrap().expect("merged outcome");
    assert_eq!(merged.totals.counters.established, n);
}

#[test]
fn the_link_runs_over_tls_checked_against_a_ca_file() {
    let gw = gateway();
    let tls = wsscale::gateway::tls::self_signed(&["127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("coordinator.pem");
    std::fs::write(&ca, &tls.cert_pem).unwrap();
    let mut cfg = CoordinatorConfig::new(1, Secret(TOKEN.into()));
    cfg.join_timeout = WAIT;
    cfg.tls = Some(tls);
    let c = Coordinator::bind("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let url = c.url();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let p = plan(gw.local_addr(), 3);
    let result = spawn(move || c.run(&p, s));
    let mut agent_cfg = agent_cfg(&url);
    agent_cfg.trust = LinkTrust::Ca(ca);
    let ran = agent(agent_cfg).recv_timeout(WAIT).expect("agent returns");
    assert_eq!(
        ran.expect("ran over wss:// verified by the CA file")
            .outcome
            .totals
            .counters
            .established,
        3
    );
    result.recv_timeout(WAIT).unwrap().expect("merged outcome");
}

#[test]
fn a_certificate_with_another_fingerprint_is_not_trusted() {
    let gw = gateway();
    let (url, fingerprint, stop, result) = coordinator(plan(gw.local_addr(), 2), true);
    let mut wrong: Vec<char> = fingerprint.unwrap().chars().collect();
    wrong[0] = if wrong[0] == 'A' { 'B' } else { 'A' };
    let mut cfg = agent_cfg(&url);
    cfg.trust = LinkTrust::Fingerprint(wrong.into_iter().collect());
    cfg.join_timeout = Duration::from_millis(500);
    match agent(cfg).recv_timeout(WAIT).expect("agent returns") {
        Err(e @ AgentError::Unreachable { .. }) => {
            assert!(e.to_string().contains("fingerprint"), "{e}")
        }
        other => panic!("expected an untrusted link, got {other:?}"),
    }
    // A plain ws:// client cannot talk to the TLS listener either.
    let plain = url.replacen("wss://", "ws://", 1);
    let mut cfg = agent_cfg(&plain);
    cfg.join_timeout = Duration::from_millis(500);
    assert!(matches!(
        agent(cfg).recv_timeout(WAIT).expect("agent returns"),
        Err(AgentError::Unreachable { .. })
    ));
    stop.store(true, Ordering::Relaxed);
    assert!(matches!(
        result.recv_timeout(WAIT).expect("coordinator returns"),
        Err(ClusterError::Interrupted)
    ));
    assert_eq!(gw.stats().accepted, 0);
}

#[test]
fn tls_settings_on_a_plain_url_are_refused_before_dialing() {
    let mut cfg = agent_cfg("ws://127.0.0.1:9/");
    cfg.trust = LinkTrust::Fingerprint("00".repeat(32));
    match agent(cfg).recv_timeout(WAIT).expect("agent returns") {
        Err(e @ AgentError::Link { .. }) => assert!(e.to_string().contains("wss://"), "{e}"),
        other => panic!("expected a link configuration error, got {other:?}"),
    }
}

#[test]
fn an_agent_refuses_a_plan_outside_its_allow_list() {
    let gw = gateway();
    let (url, _, _stop, result) = coordinator(plan(gw.local_addr(), 2), false);
    let mut cfg = agent_cfg(&url);
    cfg.allow = AllowList::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let agent_result = agent(cfg).recv_timeout(WAIT).expect("agent returns");
    assert!(agent_result.is_err(), "the agent does not run the plan");
    match result.recv_timeout(WAIT).expect("coordinator returns") {
        Err(ClusterError::AgentFailed { reason, .. }) => {
            assert!(reason.contains("allow-list (10.0.0.0/8)"), "{reason}");
            assert!(reason.contains(&gw.local_addr().to_string()), "{reason}");
        }
        other => panic!("expected the run refused, got {other:?}"),
    }
    assert_eq!(
        gw.stats().accepted,
        0,
        "not one connection to a refused target"
    );
}
