//! Tests for `wss://` client TLS, client and server run against each other in memory:
//! records both ways with no buffers left behind, certificate and alert classification,
//! resumption with the ticket store, server names, and set-up errors.

use super::*;
use rustls::ServerConnection;
use rustls::client::ClientSessionStore;

/// Move what `from` produces to `to`; returns how many bytes moved.
fn pump(from: &mut impl FnMut(&mut Vec<u8>), to: &mut impl FnMut(&[u8])) -> usize {
    let mut buf = Vec::new();
    from(&mut buf);
    let n = buf.len();
    if n > 0 {
        to(&buf);
    }
    n
}

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki(names: &[&str]) -> Pki {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key_der)
        .unwrap();
    server.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    Pki {
        ca_pem: cert.pem(),
        server: Arc::new(server),
    }
}

fn target(url: &str) -> Target {
    Target {
        url: url.into(),
        host_header: "x".into(),
        path_and_query: "/".into(),
        addr: "127.0.0.1:443".parse().unwrap(),
        tls: url.starts_with("wss"),
    }
}

fn spec_with_ca(pem: &str) -> (TlsSpec, tempfile::NamedTempFile) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(pem.as_bytes()).unwrap();
    (
        TlsSpec {
            ca_files: vec![f.path().to_path_buf()],
            ..Default::default()
        },
        f,
    )
}

/// Run client and server against each other in memory until neither has anything to
/// send. Returns the client's error, if any.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        let mut moved = 0;
        moved += pump(&mut |w| take_output(client, w), &mut |d| {
            let mut d = d;
            while !d.is_empty() {
                server.read_tls(&mut d).unwrap();
                if server.process_new_packets().is_err() {
                    break;
                }
            }
        });
        let mut err = None;
        moved += pump(
            &mut |w| {
                while server.wants_write() {
                    server.write_tls(w).unwrap();
                }
            },
            &mut |d| {
                let mut plain = Vec::new();
                if let Err(e) = decrypt(client, d, &mut plain) {
                    err = Some(e);
                }
            },
        );
        if let Some(e) = err {
            return Err(e);
        }
        if moved == 0 {
            break;
        }
    }
    Ok(())
}

#[test]
fn handshake_then_records_both_ways_leave_no_buffers_behind() {
    let p = pki(&["localhost"]);
    let (spec, _f) = spec_with_ca(&p.ca_pem);
    let tls = ClientTls::new(&spec, &[target("wss://localhost:8443/")])
        .unwrap()
        .unwrap();
    let mut client = tls.connect(0).unwrap();
    let mut server = ServerConnection::new(p.server.clone()).unwrap();
    handshake(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking());

    // Client → server: a message larger than the record buffer limit goes through.
    let big = vec![7u8; RECORD_BUFFER_LIMIT * 3 + 5];
    let mut wire = Vec::new();
    encrypt(&mut client, &big, &mut wire).unwrap();
    assert!(!client.wants_write(), "every record was drained");
    let mut rd = &wire[..];
    let mut got = Vec::new();
    while !rd.is_empty() {
        server.read_tls(&mut rd).unwrap();
        server.process_new_packets().unwrap();
        let mut chunk = Vec::new();
        let _ = server.reader().read_to_end(&mut chunk);
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, big);

    // Server → client, fed in awkward pieces (split records).
    server.writer().write_all(b"hello over tls").unwrap();
    let mut wire = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut wire).unwrap();
    }
    let mut plain = Vec::new();
    for piece in wire.chunks(5) {
        let d = decrypt(&mut client, piece, &mut plain).unwrap();
        assert!(!d.peer_closed);
    }
    assert_eq!(plain, b"hello over tls");
    // Nothing is queued inside rustls afterwards.
    assert!(!client.wants_write());
    let mut rest = [0u8; 1];
    assert_eq!(
        client.reader().read(&mut rest).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );

    // close_notify is reported.
    server.send_close_notify();
    let mut wire = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut wire).unwrap();
    }
    let d = decrypt(&mut client, &wire, &mut plain).unwrap();
    assert!(d.peer_closed);
}

#[test]
fn wrong_ca_is_a_certificate_failure() {
    let p = pki(&["localhost"]);
    let other = pki(&["localhost"]);
    let (spec, _f) = spec_with_ca(&other.ca_pem);
    let tls = ClientTls::new(&spec, &[target("wss://localhost/")])
        .unwrap()
        .unwrap();
    let mut client = tls.connect(0).unwrap();
    let mut server = ServerConnection::new(p.server.clone()).unwrap();
    let e = handshake(&mut client, &mut server).unwrap_err();
    assert_eq!(classify(&e), (FailureKind::TlsCert, None), "{e}");
    // The alert for the server is queued.
    assert!(client.wants_write());
}

#[test]
fn sni_mismatch_is_a_certificate_failure_and_insecure_accepts_it() {
    let p = pki(&["localhost"]);
    let (mut spec, _f) = spec_with_ca(&p.ca_pem);
    spec.sni = Some("wrong.example".into());
    let tls = ClientTls::new(&spec, &[target("wss://localhost/")])
        .unwrap()
        .unwrap();
    let mut client = tls.connect(0).unwrap();
    let mut server = ServerConnection::new(p.server.clone()).unwrap();
    let e = handshake(&mut client, &mut server).unwrap_err();
    assert_eq!(classify(&e).0, FailureKind::TlsCert, "{e}");
    assert_eq!(server.server_name(), Some("wrong.example"));

    let insecure = TlsSpec {
        insecure: true,
        sni: Some("wrong.example".into()),
        ..Default::default()
    };
    let tls = ClientTls::new(&insecure, &[target("wss://localhost/")])
        .unwrap()
        .unwrap();
    assert!(tls.insecure);
    let mut client = tls.connect(0).unwrap();
    let mut server = ServerConnection::new(p.server.clone()).unwrap();
    handshake(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking());
}

#[test]
fn alerts_are_classified_with_their_code() {
    let e = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
    assert_eq!(classify(&e), (FailureKind::TlsAlert, Some(0x74)));
    let e = rustls::Error::DecryptError;
    assert_eq!(classify(&e), (FailureKind::Tls, None));
}

#[test]
fn resumption_uses_stored_tickets_only_when_asked() {
    let p = pki(&["localhost"]);
    for resume in [false, true] {
        let (mut spec, _f) = spec_with_ca(&p.ca_pem);
        spec.resume = resume;
        let tls = ClientTls::new(&spec, &[target("wss://localhost/")])
            .unwrap()
            .unwrap();
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let mut client = tls.connect(0).unwrap();
            let mut server = ServerConnection::new(p.server.clone()).unwrap();
            handshake(&mut client, &mut server).unwrap();
            kinds.push(server.handshake_kind().unwrap());
        }
        use rustls::HandshakeKind::{Full, Resumed};
        if resume {
            assert_eq!(kinds, [Full, Resumed, Resumed]);
        } else {
            assert_eq!(kinds, [Full, Full, Full]);
        }
    }
}

#[test]
fn ticket_store_hands_out_each_ticket_once() {
    let p = pki(&["localhost"]);
    let (spec, _f) = spec_with_ca(&p.ca_pem);
    let store = Arc::new(TicketStore::default());
    let mut config = (*client_config(&spec).unwrap()).clone();
    config.resumption = Resumption::store(store.clone());
    let config = Arc::new(config);
    let name = ServerName::try_from("localhost").unwrap();
    assert_eq!(store.tickets(&name), 0);
    let mut counts = Vec::new();
    for _ in 0..3 {
        let mut client = ClientConnection::new(config.clone(), name.clone()).unwrap();
        let mut server = ServerConnection::new(p.server.clone()).unwrap();
        handshake(&mut client, &mut server).unwrap();
        counts.push(store.tickets(&name));
    }
    // The server sends 2 tickets per connection; each resumption uses up one.
    assert_eq!(counts, [2, 3, 4]);
    assert!(store.kx_hint(&name).is_some());
}

#[test]
fn server_names_come_from_the_url_or_sni() {
    let n = server_name(&target("wss://gw.example.com:8443/x"), None).unwrap();
    assert_eq!(n, ServerName::try_from("gw.example.com").unwrap());
    let n = server_name(&target("wss://[::1]:8443/"), None).unwrap();
    assert!(matches!(n, ServerName::IpAddress(_)));
    let n = server_name(&target("wss://127.0.0.1/"), Some("localhost")).unwrap();
    assert_eq!(n, ServerName::try_from("localhost").unwrap());
    assert!(server_name(&target("wss://127.0.0.1/"), Some("bad name!")).is_err());
}

#[test]
fn setup_errors_name_the_problem() {
    let no_targets = ClientTls::new(&TlsSpec::default(), &[target("ws://a/")]).unwrap();
    assert!(
        no_targets.is_none(),
        "no TLS set-up without a wss:// target"
    );
    let half = TlsSpec {
        client_cert: Some("/nonexistent".into()),
        ..Default::default()
    };
    assert!(matches!(
        client_config(&half),
        Err(TlsSetupError::HalfClientAuth)
    ));
    let missing = TlsSpec {
        ca_files: vec!["/nonexistent/ca.pem".into()],
        ..Default::default()
    };
    let e = client_config(&missing).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    let mut empty = tempfile::NamedTempFile::new().unwrap();
    empty.write_all(b"not a pem\n").unwrap();
    let e = client_config(&TlsSpec {
        ca_files: vec![empty.path().to_path_buf()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, TlsSetupError::NoCertificate { .. }), "{e}");
}
