//! `wss://`: the engine's TLS client against the in-process gateway with TLS, certificates
//! made here with rcgen. Trust via a CA file and via `--tls-insecure`; certificate failures
//! (wrong CA, SNI mismatch) as `tls_cert`; mTLS accepted and rejected; session resumption
//! counted by the gateway; pings, heartbeats and messages exactly as over plain TCP; and a
//! smoke test of the real binary (`serve --tls-self-signed`, `run --tls-ca`).

mod util;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use util::{UNTIL_STOPPED, stage};
use wsscale::gateway::{GatewayConfig, GatewayHandle, tls as gwtls};
use wsscale::metrics::{FailureKind, RunOutcome};
use wsscale::plan::build::parse_target;
use wsscale::plan::error::Origin;
use wsscale::plan::{HeartbeatSpec, MessageSpec, PingSpec, Plan, TlsSpec};

/// A wss plan for `localhost:port` (so the certificate name `localhost` matches).
fn plan_for(gw: &GatewayHandle, conns: u64, ramp_ms: u64, hold_ms: u64, tls: TlsSpec) -> Plan {
    let url = format!("wss://localhost:{}/", gw.local_addr().port());
    let target = parse_target(&url, &Origin::Flag("--target")).expect("target");
    assert!(target.tls);
    let mut p = util::plan(
        vec![target],
        vec![stage(ramp_ms, conns), stage(hold_ms, conns)],
    );
    p.handshake_timeout = util::TIMEOUT;
    p.tls = tls;
    p
}

/// Run `plan` (ending on an [`UNTIL_STOPPED`] hold) until each of its connections is
/// established or has failed, then stop it: debug-build TLS handshakes on a busy machine can
/// take longer than any fixed hold.
fn run_all(plan: &Plan) -> RunOutcome {
    let n = plan.peak_connections();
    util::run_until(
        plan,
        &format!("{n} connections established or failed"),
        |c| c.established + c.failed >= n,
    )
}

fn gateway(tls: Arc<rustls::ServerConfig>) -> GatewayHandle {
    let config = GatewayConfig {
        tls: Some(tls),
        ..Default::default()
    };
    let gw = util::gateway(config, 1);
    assert!(gw.url().starts_with("wss://"), "{}", gw.url());
    gw
}

/// Write `text` to a new file in `dir`.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write temp file");
    path
}

/// A CA and certificates it signs.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names`: (cert PEM, key PEM, cert DER, key DER).
    fn leaf(
        &self,
        names: &[&str],
    ) -> (
        String,
        String,
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key_der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone(), key_der)
    }

    /// A gateway server configuration with a `localhost` certificate from this CA.
    fn server(&self, client_ca: Option<&Ca>) -> Arc<rustls::ServerConfig> {
        let (_, _, der, key) = self.leaf(&["localhost"]);
        let verifier = client_ca.map(|ca| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                wsscale::plan::tls::provider(),
            )
            .build()
            .unwrap()
        });
        gwtls::server_config(vec![der], key, verifier).unwrap()
    }
}

#[test]
fn wss_run_trusting_the_ca_file() {
    let ca = Ca::new("test CA");
    let gw = gateway(ca.server(None));
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "ca.pem", &ca.pem)],
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 20, 100, UNTIL_STOPPED, tls));
    let c = &o.totals.counters;
    assert_eq!(c.established, 20, "{c:?}");
    assert_eq!(c.failed, 0);
    assert_eq!(c.tls_handshakes, 20);
    assert_eq!(o.totals.hist.tls_handshake.len(), 20);
    assert_eq!(o.totals.hist.ws_handshake.len(), 20);
    assert!(!o.tls_insecure);
    let s = gw.stats();
    assert_eq!((s.tls_handshakes, s.upgraded, s.tls_failed), (20, 20, 0));
    let json = wsscale::report::json::to_json(&o);
    assert_eq!(json["tls"]["handshakes"], 20);
    assert_eq!(json["timings"]["tls_handshake_ms"]["count"], 20);
    assert_eq!(json["tls_insecure"], false);
}

#[test]
fn wss_run_with_a_self_signed_gateway_and_insecure() {
    let self_signed = gwtls::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    let gw = gateway(self_signed.config.clone());
    let tls = TlsSpec {
        insecure: true,
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 10, 50, UNTIL_STOPPED, tls));
    assert_eq!(o.totals.counters.established, 10);
    assert!(o.tls_insecure, "the report flags --tls-insecure");
    let text = wsscale::report::summary_text(&o);
    assert!(text.contains("TLS INSECURE"), "{text}");
    assert_eq!(wsscale::report::json::to_json(&o)["tls_insecure"], true);

    // The same self-signed certificate, trusted through its PEM as a CA file.
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "gw.pem", &self_signed.cert_pem)],
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 5, 50, UNTIL_STOPPED, tls));
    assert_eq!(o.totals.counters.established, 5);
}

#[test]
fn wrong_ca_is_tls_cert() {
    let ca = Ca::new("the gateway's CA");
    let other = Ca::new("another CA");
    let gw = gateway(ca.server(None));
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "other.pem", &other.pem)],
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 5, 50, UNTIL_STOPPED, tls));
    let c = &o.totals.counters;
    assert_eq!(c.established, 0);
    assert_eq!(c.failures_of(FailureKind::TlsCert), 5, "{c:?}");
    assert_eq!(c.tls_handshakes, 0);
    let json = wsscale::report::json::to_json(&o);
    assert_eq!(json["connections"]["failures"]["tls_cert"], 5);
    // The client told the gateway why (an alert), and the gateway counted failed handshakes.
    let s = gw.stats();
    assert_eq!(s.tls_handshakes, 0);
    assert_eq!(s.upgraded, 0);
}

#[test]
fn sni_mismatch_is_tls_cert() {
    let ca = Ca::new("test CA");
    let gw = gateway(ca.server(None)); // certificate for "localhost" only
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "ca.pem", &ca.pem)],
        sni: Some("wrong.example".into()),
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 4, 50, UNTIL_STOPPED, tls));
    let c = &o.totals.counters;
    assert_eq!(c.established, 0);
    assert_eq!(c.failures_of(FailureKind::TlsCert), 4, "{c:?}");
}

#[test]
fn mtls_accepted_with_a_client_certificate() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let gw = gateway(server_ca.server(Some(&client_ca)));
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem, _, _) = client_ca.leaf(&["client.example"]);
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "ca.pem", &server_ca.pem)],
        client_cert: Some(file(&dir, "client.pem", &cert_pem)),
        client_key: Some(file(&dir, "client.key", &key_pem)),
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 6, 50, UNTIL_STOPPED, tls));
    let c = &o.totals.counters;
    assert_eq!(c.established, 6, "{c:?}");
    assert_eq!(gw.stats().tls_handshakes, 6);
}

#[test]
fn mtls_rejected_without_or_with_a_foreign_client_certificate() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let gw = gateway(server_ca.server(Some(&client_ca)));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = file(&dir, "ca.pem", &server_ca.pem);

    // No client certificate: the gateway answers with a certificate_required alert.
    let tls = TlsSpec {
        ca_files: vec![ca_file.clone()],
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 4, 50, UNTIL_STOPPED, tls));
    let c = &o.totals.counters;
    assert_eq!(c.established, 0);
    assert_eq!(c.failures_of(FailureKind::TlsAlert), 4, "{c:?}");
    let json = wsscale::report::json::to_json(&o);
    assert_eq!(
        json["connections"]["failures"]["tls_alert_certificate_required"], 4,
        "{}",
        json["connections"]["failures"]
    );
    assert_eq!(gw.stats().upgraded, 0);
    assert!(gw.stats().tls_failed >= 4, "{:?}", gw.stats());

    // A certificate from a CA the gateway does not trust: rejected with an alert too.
    let stranger = Ca::new("stranger CA");
    let (cert_pem, key_pem, _, _) = stranger.leaf(&["client.example"]);
    let tls = TlsSpec {
        ca_files: vec![ca_file],
        client_cert: Some(file(&dir, "stranger.pem", &cert_pem)),
        client_key: Some(file(&dir, "stranger.key", &key_pem)),
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 3, 50, UNTIL_STOPPED, tls));
    let c = &o.totals.counters;
    assert_eq!(c.established, 0);
    assert_eq!(c.failures_of(FailureKind::TlsAlert), 3, "{c:?}");
    assert_eq!(c.tls_alerts.values().sum::<u64>(), 3);
}

#[test]
fn resumption_is_used_on_a_ramp_only_with_tls_resume() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = file(&dir, "ca.pem", &ca.pem);
    for resume in [false, true] {
        let gw = gateway(ca.server(None));
        let tls = TlsSpec {
            ca_files: vec![ca_file.clone()],
            resume,
            ..Default::default()
        };
        // 30 connections over 300 ms: after the first handshakes, tickets are waiting. Held
        // until all 30 are up (debug-build handshakes on a busy machine can take longer than
        // the ramp), then stopped.
        let o = run_all(&plan_for(&gw, 30, 300, UNTIL_STOPPED, tls));
        let c = &o.totals.counters;
        assert_eq!(c.established, 30, "{c:?}");
        let s = gw.stats();
        assert_eq!(s.tls_handshakes, 30);
        assert_eq!(c.tls_resumed, s.tls_resumed, "client and gateway agree");
        if resume {
            assert!(s.tls_resumed > 0, "{s:?}");
        } else {
            assert_eq!(s.tls_resumed, 0, "{s:?}");
        }
    }
}

#[test]
fn resumption_is_used_on_reconnect() {
    // The gateway holds 2 connections; the others get 503 and reconnect (each reconnect
    // is a new TLS handshake, which resumes).
    let ca = Ca::new("test CA");
    let config = GatewayConfig {
        tls: Some(ca.server(None)),
        max_connections: Some(2),
        ..Default::default()
    };
    let gw = util::gateway(config, 1);
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "ca.pem", &ca.pem)],
        resume: true,
        ..Default::default()
    };
    let mut plan = plan_for(&gw, 4, 0, UNTIL_STOPPED, tls);
    plan.reconnect = Some(wsscale::plan::Reconnect {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        ..Default::default()
    });
    let o = util::run_until(&plan, "a resumed reconnect", |c| {
        c.reconnects > 0 && c.tls_resumed > 0
    });
    let c = &o.totals.counters;
    assert!(c.reconnects > 0, "{c:?}");
    assert!(c.tls_resumed > 0, "{c:?}");
    assert!(gw.stats().tls_resumed > 0);
}

#[test]
fn pings_heartbeats_and_messages_work_over_tls() {
    let ca = Ca::new("test CA");
    let gw = gateway(ca.server(None));
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "ca.pem", &ca.pem)],
        ..Default::default()
    };
    let mut plan = plan_for(&gw, 8, 50, UNTIL_STOPPED, tls);
    plan.traffic.ping = Some(PingSpec {
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
    });
    plan.traffic.heartbeat = Some(HeartbeatSpec {
        binary: false,
        text: b"{\"type\":\"ping\"}".to_vec(),
        interval: Duration::from_millis(100),
        expect: Some(b"\"ping\"".to_vec()),
        timeout: Duration::from_secs(5),
    });
    plan.traffic.message = Some(MessageSpec {
        rate: 20.0,
        size: 256,
        text: None,
        timeout: Duration::from_secs(5),
    });
    // Until every kind of traffic has flowed (the lower bounds below), then stopped.
    let o = util::run_until(&plan, "traffic on all 8 connections", |c| {
        c.established >= 8 && c.pings_sent >= 8 && c.heartbeats_sent >= 8 && c.messages_sent >= 80
    });
    let c = &o.totals.counters;
    assert_eq!(c.established, 8);
    assert_eq!(c.dropped, 0, "{c:?}");
    assert!(c.pings_sent >= 8, "{c:?}");
    assert_eq!(c.pongs_received, c.pings_sent);
    assert!(c.heartbeats_sent >= 8, "{c:?}");
    assert_eq!(c.heartbeat_replies, c.heartbeats_sent);
    assert!(c.messages_sent >= 8 * 10, "{c:?}");
    assert_eq!(c.messages_received, c.messages_sent);
    assert_eq!(c.messages_lost, 0);
    // Echoed messages plus the echoed 15-byte heartbeats.
    assert_eq!(
        c.message_bytes_received,
        c.message_bytes_sent + 15 * c.heartbeat_replies
    );
    assert_eq!(o.totals.hist.message_rtt.len(), c.messages_received);
}

#[test]
fn large_messages_span_many_tls_records() {
    let ca = Ca::new("test CA");
    let gw = gateway(ca.server(None));
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "ca.pem", &ca.pem)],
        ..Default::default()
    };
    let mut plan = plan_for(&gw, 2, 20, UNTIL_STOPPED, tls);
    // 200 KB: 13 TLS records each way, frames split across reads and records.
    plan.traffic.message = Some(MessageSpec {
        rate: 5.0,
        size: 200_000,
        text: None,
        timeout: Duration::from_secs(5),
    });
    let o = util::run_until(&plan, "2 messages echoed", |c| {
        c.established >= 2 && c.messages_received >= 2
    });
    let c = &o.totals.counters;
    assert_eq!(c.established, 2);
    assert!(c.messages_sent >= 2, "{c:?}");
    assert_eq!(c.messages_received, c.messages_sent, "{c:?}");
    assert_eq!(c.message_bytes_received, c.messages_sent * 200_000);
    assert_eq!(c.dropped, 0);
}

/// The real binary: `serve --tls-self-signed --tls-cert-out`, then `run --tls-ca` and
/// `run --tls-insecure` against it.
#[test]
fn binary_serve_self_signed_and_run_wss() {
    let exe = env!("CARGO_BIN_EXE_wsscale");
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("gw.pem");
    let mut serve = Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            "--tls-cert-out",
        ])
        .arg(&cert)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wsscale serve");
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let fingerprint = lines.next().unwrap().unwrap();
    assert!(
        fingerprint.starts_with("tls certificate sha256 fingerprint "),
        "{fingerprint}"
    );
    let listening = lines.next().unwrap().unwrap();
    let url = listening
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap();
    let localhost = format!("wss://localhost:{port}/");

    let report = dir.path().join("r.json");
    let common = [
        "run",
        "-c",
        "5",
        "--ramp",
        "100ms",
        // Long enough for 5 debug-build TLS handshakes on a busy machine (a peak below
        // the plan exits 98).
        "--hold",
        "2s",
        "--ramp-down",
        "0s",
    ];
    let out = Command::new(exe)
        .args(common)
        .args(["--skip-preflight", "--target", &localhost, "--tls-ca"])
        .arg(&cert)
        .arg("--report-json")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["connections"]["established"], 5, "{json}");
    assert_eq!(json["tls_insecure"], false);

    let out = Command::new(exe)
        .args(common)
        .args(["--skip-preflight", "--target", &url, "--tls-insecure"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TLS INSECURE"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT verified"));

    // A CA file that is not PEM is a usage error before anything connects.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "nope\n").unwrap();
    let out = Command::new(exe)
        .args(common)
        .args(["--skip-preflight", "--target", &url, "--tls-ca"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-ca") && err.contains("bad.pem"), "{err}");

    let _ = serve.kill();
    let _ = serve.wait();
}

/// A gateway that serves a CA certificate (CA:TRUE) as its own: the run says why it failed
/// (`CaUsedAsEndEntity`) in the failure detail, not only `tls_cert`.
#[test]
fn a_ca_certificate_served_as_the_gateway_s_own_is_named() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let gw = gateway(gwtls::server_config(vec![cert.der().clone()], key_der, None).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSpec {
        ca_files: vec![file(&dir, "ca.pem", &cert.pem())],
        ..Default::default()
    };
    let o = run_all(&plan_for(&gw, 3, 50, UNTIL_STOPPED, tls));
    let c = &o.totals.counters;
    assert_eq!(c.failures_of(FailureKind::TlsCert), 3, "{c:?}");
    let why = c.examples.get("tls_cert").expect("a tls_cert example");
    assert!(why.contains("CaUsedAsEndEntity"), "{why}");
    let json = wsscale::report::json::to_json(&o);
    assert_eq!(
        json["connections"]["failure_examples"]["tls_cert"],
        why.as_str()
    );
    assert!(wsscale::report::summary_text(&o).contains("CaUsedAsEndEntity"));
}
