//! Client TLS for `wss://` targets: rustls used sans I/O inside the mio shards.
//!
//! # Where TLS sits
//!
//! A `wss://` connection goes `Connecting → TlsHandshaking → Handshaking → Open`. Between TCP
//! connect and the upgrade request the shard drives a [`rustls::ClientConnection`]: it writes
//! the ClientHello, feeds the server's records in, and when `is_handshaking()` turns false it
//! records `tls_handshake` and sends the upgrade request. From then on the WebSocket code
//! sees plaintext only: the shard's `send_out` encrypts its plaintext with [`encrypt`] and
//! `read_ready` decrypts with [`decrypt`] before `ingest`. Those two calls are the whole
//! seam; `ws.rs` and the traffic code are the same for `ws://` and `wss://`.
//!
//! # Memory: what an idle held wss connection keeps
//!
//! rustls' buffered `ClientConnection` owns four buffers; we keep every one of them empty
//! between events, so an idle connection costs the `ClientConnection` itself and nothing
//! that grows with traffic:
//!
//! - **TLS records in.** Ciphertext is read from the socket into the shard's 64 KiB scratch
//!   buffer and handed over with `read_tls(&mut &scratch[..n])`; `process_new_packets`
//!   runs after every `read_tls`, so rustls' deframer buffer only ever holds one partial
//!   record. (It does keep its 4 KiB read window allocated after the first read — the one
//!   buffer the buffered API gives no way to release; it is the largest single item per
//!   connection, see `bench/tls.sh`.)
//! - **Plaintext in.** Right after each `process_new_packets` all plaintext is read out into
//!   the shard's plaintext scratch ([`decrypt`]); rustls' queue of plaintext chunks is empty
//!   again (its chunks are freed as they are read).
//! - **TLS records out.** [`encrypt`] writes plaintext through `writer()` and immediately
//!   drains the records with `write_tls` into the shard's wire scratch; what the kernel does
//!   not take waits in the connection's ordinary output buffer (`Conn::bufs`), exactly as
//!   for `ws://`, and is freed once sent.
//! - **Plaintext out before the handshake.** Never used: the upgrade request is written only
//!   after the handshake completed. [`RECORD_BUFFER_LIMIT`] caps what rustls queues per
//!   `write` call, so a large message is encrypted in bounded steps.
//!
//! Everything shared lives once per run in [`ClientTls`]: the `ClientConfig` (root store,
//! verifier, client certificate, crypto provider) and the session-ticket store.
//!
//! Measured (`bench/tls.sh`, rustls 0.23.46, ring): 9.6 KiB of client RSS per held idle
//! `wss://` connection at 10,000 connections. The live heap of one idle connection's TLS
//! state is 6.7 KiB: the 1,056-byte `ClientConnection` itself, rustls' 4 KiB receive window
//! (the dominant item), and ~1.7 KiB of record-layer keys and TLS 1.3 traffic state; the rest
//! of the RSS figure is allocator overhead. Dropping the receive window would take rustls'
//! unbuffered API (`UnbufferedClientConnection`), with partial records kept in `Conn::bufs`.
//!
//! # Resumption
//!
//! Without `--tls-resume`, resumption is disabled (every connection pays a full handshake,
//! the worst case a gateway must plan for). With it, [`TicketStore`] keeps up to
//! [`TICKETS_PER_SERVER`] TLS 1.3 tickets per server name — rustls' default store keeps 8,
//! far too few for a ramp that opens hundreds of connections per millisecond — and each
//! ticket is used once, as a real client population would.
//!
//! # Failures
//!
//! [`classify`] maps rustls errors to the report's categories: a rejected certificate
//! (unknown issuer, name mismatch, expiry, …) is `tls_cert`, a fatal alert from the server is
//! `tls_alert` with its description counted, anything else `tls`. The shard maps a handshake
//! timeout in `TlsHandshaking` to `tls_handshake_timeout`.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::CryptoProvider;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, NamedGroup, SignatureScheme};

use crate::metrics::FailureKind;
use crate::plan::tls::{TlsSetupError, client_identity, provider, root_store, server_name};
use crate::plan::{Target, TlsSpec};

/// Largest amount of TLS data rustls may queue for one `writer().write` call. Records are
/// drained right after each call, so this bounds a transient, never an idle, buffer.
pub const RECORD_BUFFER_LIMIT: usize = 32 * 1024;
/// TLS 1.3 tickets kept per server name with `--tls-resume`.
pub const TICKETS_PER_SERVER: usize = 4096;

/// What every shard shares to open `wss://` connections.
#[derive(Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    /// Server name per target index (`None` for `ws://` targets).
    names: Vec<Option<ServerName<'static>>>,
    /// `--tls-insecure`: certificates are not verified.
    pub insecure: bool,
}

impl ClientTls {
    /// Build the client configuration for `targets`; `None` when no target is `wss://`.
    pub fn new(
        spec: &TlsSpec,
        targets: &[Target],
    ) -> Result<Option<Arc<ClientTls>>, TlsSetupError> {
        if !targets.iter().any(|t| t.tls) {
            return Ok(None);
        }
        let config = client_config(spec)?;
        let names = targets
            .iter()
            .map(|t| {
                t.tls
                    .then(|| server_name(t, spec.sni.as_deref()))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Arc::new(ClientTls {
            config,
            names,
            insecure: spec.insecure,
        })))
    }

    /// True when `target` is a `wss://` target.
    pub fn is_tls(&self, target: usize) -> bool {
        self.names.get(target).is_some_and(Option::is_some)
    }

    /// A new client connection to `target` (its ClientHello is ready to be taken with
    /// [`take_output`]).
    pub fn connect(&self, target: usize) -> Result<Box<ClientConnection>, rustls::Error> {
        let name = self.names[target]
            .clone()
            .ok_or_else(|| rustls::Error::General("target is not wss://".into()))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        conn.set_buffer_limit(Some(RECORD_BUFFER_LIMIT));
        Ok(Box::new(conn))
    }
}

/// The rustls client configuration for `spec`.
pub fn client_config(spec: &TlsSpec) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Config)?;
    let builder = if spec.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(root_store(spec)?)
    };
    let mut config = match client_identity(spec)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(TlsSetupError::ClientAuth)?,
        None => builder.with_no_client_auth(),
    };
    config.resumption = if spec.resume {
        Resumption::store(Arc::new(TicketStore::default()))
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// `--tls-insecure`: accept any certificate, but still check that the server holds the key
/// of the certificate it sent (handshake signatures), so the session is at least not
/// trivially broken.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Session store for `--tls-resume`: many single-use TLS 1.3 tickets per server name (see
/// the module docs), one TLS 1.2 session, the key-exchange hint.
#[derive(Debug, Default)]
pub struct TicketStore {
    servers: Mutex<HashMap<ServerName<'static>, ServerSessions>>,
}

#[derive(Debug, Default)]
struct ServerSessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl TicketStore {
    fn with<R>(
        &self,
        name: &ServerName<'_>,
        f: impl FnOnce(&mut ServerSessions) -> R,
    ) -> Option<R> {
        let mut map = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        map.get_mut(&name.to_owned()).map(f)
    }

    fn with_entry<R>(
        &self,
        name: ServerName<'static>,
        f: impl FnOnce(&mut ServerSessions) -> R,
    ) -> R {
        let mut map = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(name).or_default())
    }

    /// Tickets currently stored for `name`.
    pub fn tickets(&self, name: &ServerName<'_>) -> usize {
        self.with(name, |s| s.tls13.len()).unwrap_or(0)
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.with_entry(server_name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(server_name, |s| s.kx_hint).flatten()
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with_entry(server_name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(server_name, |s| s.tls12.clone()).flatten()
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(server_name, |s| s.tls12 = None);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.with_entry(server_name, |s| {
            if s.tls13.len() >= TICKETS_PER_SERVER {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        // Newest first: the oldest tickets are the likeliest to have expired.
        self.with(server_name, |s| s.tls13.pop_back()).flatten()
    }
}

/// Map a rustls error to a failure category and, for a received alert, its description code.
pub fn classify(e: &rustls::Error) -> (FailureKind, Option<u8>) {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_) => {
            (FailureKind::TlsCert, None)
        }
        rustls::Error::AlertReceived(a) => (FailureKind::TlsAlert, Some(u8::from(*a))),
        _ => (FailureKind::Tls, None),
    }
}

/// Move every TLS record rustls has queued into `wire` (appending).
pub fn take_output(conn: &mut ClientConnection, wire: &mut Vec<u8>) {
    while conn.wants_write() {
        // Writing into a Vec cannot fail or block.
        if conn.write_tls(wire).unwrap_or(0) == 0 {
            break;
        }
    }
}

/// Encrypt `plain` into TLS records appended to `wire`. rustls keeps nothing afterwards.
pub fn encrypt(
    conn: &mut ClientConnection,
    mut plain: &[u8],
    wire: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    while !plain.is_empty() {
        let n = conn
            .writer()
            .write(plain)
            .map_err(|e| rustls::Error::General(format!("cannot encrypt: {e}")))?;
        take_output(conn, wire);
        if n == 0 {
            return Err(rustls::Error::General(
                "rustls accepted no plaintext".into(),
            ));
        }
        plain = &plain[n..];
    }
    Ok(())
}

/// What [`decrypt`] found besides plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decrypted {
    /// The server sent `close_notify`: no more data will come.
    pub peer_closed: bool,
}

/// Feed received ciphertext `wire` to rustls and append all plaintext it yields to `plain`.
/// Handshake replies, alerts and key updates rustls wants to send are left queued: take them
/// with [`take_output`] (also after an error: that is how the server learns why).
pub fn decrypt(
    conn: &mut ClientConnection,
    mut wire: &[u8],
    plain: &mut Vec<u8>,
) -> Result<Decrypted, rustls::Error> {
    let mut out = Decrypted::default();
    while !wire.is_empty() {
        let n = conn
            .read_tls(&mut wire)
            .map_err(|e| rustls::Error::General(format!("cannot buffer TLS data: {e}")))?;
        let state = conn.process_new_packets()?;
        let ready = state.plaintext_bytes_to_read();
        if ready > 0 {
            let at = plain.len();
            plain.resize(at + ready, 0);
            conn.reader()
                .read_exact(&mut plain[at..])
                .map_err(|e| rustls::Error::General(format!("cannot read plaintext: {e}")))?;
        }
        if state.peer_has_closed() {
            out.peer_closed = true;
            break;
        }
        if n == 0 {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::ServerConnection;

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
}
