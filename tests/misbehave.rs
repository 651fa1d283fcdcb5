//! Misbehaving clients (`--misbehave`, docs/misbehave.md): every kind against the embedded
//! gateway gets the answer RFC 6455 and HTTP call for and nothing is flagged; a bad gateway
//! (an in-test server that answers 500 or says nothing) is flagged and fails the threshold
//! with exit code 99; auth kinds against a gateway that checks nothing are flagged
//! `upgraded`. In every run the normal connections keep their own figures: all established,
//! none failed or dropped.

mod util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;

use util::{UNTIL_STOPPED, gateway, plan_for, run_until, stage};
use wsscale::gateway::GatewayConfig;
use wsscale::metrics::RunOutcome;
use wsscale::metrics::misbehave::Answer;
use wsscale::plan::misbehave::{MisbehaveKind, parse_misbehave};
use wsscale::plan::{Auth, JwtAlg, JwtPlacement, Secret};

const SECRET: &str = "misbehave-test-secret";

/// Normal connections of the engine runs.
const NORMAL: u64 = 12;

fn answers(o: &RunOutcome, kind: MisbehaveKind) -> BTreeMap<Answer, u64> {
    o.totals.counters.misbehave.kinds[&kind].answers.clone()
}

/// Run until the normal connections are all established and every misbehaving connection
/// of every kind in `kinds` has been answered.
fn run_answered(plan: &wsscale::plan::Plan, kinds: &[MisbehaveKind]) -> RunOutcome {
    run_until(plan, "every misbehaving connection answered", |c| {
        c.established >= NORMAL
            && kinds.iter().all(|k| {
                c.misbehave
                    .kinds
                    .get(k)
                    .is_some_and(|t| t.count > 0 && t.answers.values().sum::<u64>() == t.count)
            })
    })
}

fn assert_normal_population_clean(o: &RunOutcome) {
    let c = &o.totals.counters;
    assert_eq!(c.established, NORMAL, "{c:?}");
    assert_eq!(
        c.attempted, NORMAL,
        "misbehaving connections are not attempts: {c:?}"
    );
    assert_eq!(c.failed, 0, "{c:?}");
    assert_eq!(c.dropped, 0, "{c:?}");
    assert_eq!(o.peak_open, NORMAL);
}

#[test]
fn every_kind_gets_its_answer_from_the_embedded_gateway_and_none_is_flagged() {
    let gw = gateway(
        GatewayConfig {
            jwt_secret: Some(Secret(SECRET.into())),
            ..Default::default()
        },
        1,
    );
    let mut plan = plan_for(
        gw.local_addr(),
        vec![stage(300, NORMAL), stage(UNTIL_STOPPED, NORMAL)],
    );
    plan.handshake.auth = Auth::Jwt {
        alg: JwtAlg::HS256,
        key: Secret(SECRET.into()),
        claims: wsscale::plan::build::default_claims(),
        placement: JwtPlacement::Header,
    };
    // The bound of a slow reader (and of any answer).
    plan.handshake_timeout = std::time::Duration::from_secs(1);
    plan.misbehave = MisbehaveKind::ALL
        .iter()
        .map(|k| parse_misbehave(&format!("{k}:10%")).unwrap())
        .collect();
    let o = run_answered(&plan, &MisbehaveKind::ALL);
    assert_normal_population_clean(&o);

    let expected = [
        (MisbehaveKind::BadToken, Answer::Http(401)),
        (MisbehaveKind::NoAuth, Answer::Http(401)),
        (MisbehaveKind::OversizeFrame, Answer::Close(1009)),
        (MisbehaveKind::MalformedFrame, Answer::Close(1002)),
        (MisbehaveKind::UnmaskedFrame, Answer::Close(1002)),
        (MisbehaveKind::InvalidUtf8, Answer::Close(1007)),
        (MisbehaveKind::SlowReader, Answer::Held),
        (MisbehaveKind::AbruptClose, Answer::ClientReset),
    ];
    for (kind, answer) in expected {
        let got = answers(&o, kind);
        let count = o.totals.counters.misbehave.kinds[&kind].count;
        assert_eq!(got, BTreeMap::from([(answer, count)]), "{kind}");
    }
    assert_eq!(o.totals.counters.misbehave.flagged(), 0);
    // About 10 % each of all connections: 8 kinds at 10 % beside 12 normal ones make ~48.
    let total = o.totals.counters.misbehave.count();
    assert!((24..=96).contains(&total), "{total}");
}

#[test]
fn the_compressing_gateway_answers_the_frame_kinds_with_their_close_codes() {
    // `serve --compression deflate` runs its own frame loop (gateway::deflate).
    let gw = gateway(
        GatewayConfig {
            compression: true,
            ..Default::default()
        },
        1,
    );
    let mut plan = plan_for(
        gw.local_addr(),
        vec![stage(300, NORMAL), stage(UNTIL_STOPPED, NORMAL)],
    );
    plan.handshake.compression = wsscale::plan::compression::parse_compression("deflate").unwrap();
    let kinds = [
        (MisbehaveKind::OversizeFrame, Answer::Close(1009)),
        (MisbehaveKind::MalformedFrame, Answer::Close(1002)),
        (MisbehaveKind::UnmaskedFrame, Answer::Close(1002)),
        (MisbehaveKind::InvalidUtf8, Answer::Close(1007)),
    ];
    plan.misbehave = kinds
        .iter()
        .map(|(k, _)| parse_misbehave(&format!("{k}:15%")).unwrap())
        .collect();
    let o = run_answered(&plan, &kinds.map(|(k, _)| k));
    assert_normal_population_clean(&o);
    assert_eq!(o.totals.counters.compression.accepted, NORMAL);
    for (kind, answer) in kinds {
        let count = o.totals.counters.misbehave.kinds[&kind].count;
        assert_eq!(
            answers(&o, kind),
            BTreeMap::from([(answer, count)]),
            "{kind}"
        );
    }
}

#[test]
fn auth_kinds_against_a_gateway_that_checks_nothing_are_flagged_upgraded() {
    let gw = gateway(GatewayConfig::default(), 1);
    let mut plan = plan_for(
        gw.local_addr(),
        vec![stage(300, NORMAL), stage(UNTIL_STOPPED, NORMAL)],
    );
    plan.misbehave = vec![
        parse_misbehave("bad-token:20%").unwrap(),
        parse_misbehave("no-auth:20%").unwrap(),
    ];
    let kinds = [MisbehaveKind::BadToken, MisbehaveKind::NoAuth];
    let o = run_answered(&plan, &kinds);
    assert_normal_population_clean(&o);
    for kind in kinds {
        let t = &o.totals.counters.misbehave.kinds[&kind];
        assert_eq!(t.answers, BTreeMap::from([(Answer::Upgraded, t.count)]));
        assert_eq!(t.flagged(), t.count);
    }
}

/// Read an HTTP request head; true when it carries `Authorization: Bearer good`.
fn authorized(s: &mut std::net::TcpStream) -> Option<(bool, String)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let key = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| v.trim().to_string())
    })?;
    Some((head.contains("Authorization: Bearer good\r\n"), key))
}

/// A bad gateway: a request without the good token gets 500; an upgraded connection is
/// never answered again, whatever it sends (it is drained until the client leaves).
fn bad_gateway() -> std::net::SocketAddr {
    util::tcp_server(|mut s| {
        let Some((ok, key)) = authorized(&mut s) else {
            return;
        };
        if !ok {
            let _ = s.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let _ = write!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        util::drain(&mut s);
    })
}

#[test]
fn a_bad_gateway_is_flagged_and_fails_the_threshold_with_exit_99() {
    let addr = bad_gateway();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_wsscale"))
        .args([
            "run",
            "--target",
            &format!("ws://{addr}/"),
            "--token",
            "good",
        ])
        .args([
            "-c",
            "6",
            "--ramp",
            "300ms",
            "--hold",
            "3s",
            "--ramp-down",
            "0s",
        ])
        .args(["--handshake-timeout", "700ms", "--skip-preflight"])
        .args([
            "--misbehave",
            "no-auth:25%",
            "--misbehave",
            "invalid-utf8:25%",
        ])
        .args(["--threshold", "misbehave.flagged==0", "--report-json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(99),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Misbehaving clients"), "{stdout}");
    assert!(stdout.contains("FLAGGED"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["connections"]["established"], 6, "{report:#}");
    assert_eq!(report["connections"]["failed"], 0);
    assert_eq!(report["connections"]["dropped"], 0);
    let m = report["misbehave"].as_array().unwrap();
    let by_kind = |k: &str| m.iter().find(|e| e["kind"] == k).unwrap().clone();
    let no_auth = by_kind("no-auth");
    assert!(no_auth["count"].as_u64().unwrap() > 0);
    assert_eq!(
        no_auth["answers"]["http_500"], no_auth["count"],
        "{no_auth}"
    );
    assert_eq!(no_auth["flagged"], no_auth["count"]);
    let utf8 = by_kind("invalid-utf8");
    assert_eq!(utf8["answers"]["timeout"], utf8["count"], "{utf8}");
    assert_eq!(utf8["flagged"], utf8["count"]);
    let t = &report["thresholds"][0];
    assert_eq!(t["metric"], "misbehave.flagged");
    assert_eq!(t["passed"], false);
}

#[test]
fn the_misbehave_profile_passes_against_the_embedded_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/misbehave.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_wsscale"))
        .args(["run", profile, "-c", "50", "--ramp", "1s", "--hold", "3s"])
        .args([
            "--ramp-down",
            "0s",
            "--handshake-timeout",
            "1s",
            "--skip-preflight",
        ])
        .args(["--message-rate", "0"])
        .arg("--report-json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let m = report["misbehave"].as_array().unwrap();
    assert!(!m.is_empty());
    for e in m {
        assert_eq!(e["flagged"], 0, "{e}");
    }
    let auth: Vec<_> = m
        .iter()
        .filter(|e| e["kind"] == "bad-token" || e["kind"] == "no-auth")
        .collect();
    for e in auth {
        assert_eq!(e["answers"]["http_401"], e["count"], "{e}");
    }
}
