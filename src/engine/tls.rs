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
//! ticket is used once, as a real client population would. The store is in the `tickets`
//! submodule.
//!
//! # Failures
//!
//! [`classify`] maps rustls errors to the report's categories: a rejected certificate
//! (unknown issuer, name mismatch, expiry, …) is `tls_cert`, a fatal alert from the server is
//! `tls_alert` with its description counted, anything else `tls`. The shard maps a handshake
//! timeout in `TlsHandshaking` to `tls_handshake_timeout`.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::metrics::FailureKind;
use crate::plan::tls::{TlsSetupError, client_identity, provider, root_store, server_name};
use crate::plan::{Target, TlsSpec};

mod tickets;
pub use tickets::{TICKETS_PER_SERVER, TicketStore};

/// Largest amount of TLS data rustls may queue for one `writer().write` call. Records are
/// drained right after each call, so this bounds a transient, never an idle, buffer.
pub const RECORD_BUFFER_LIMIT: usize = 32 * 1024;

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
mod tests;
