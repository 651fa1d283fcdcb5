//! Gateway TLS: `wsscale serve --tls-cert F --tls-key F` or `--tls-self-signed`.
//!
//! The server configuration uses the ring provider (like the client) and stateless session
//! tickets ([`rustls::crypto::ring::Ticketer`]), so TLS 1.3 resumption works for any number
//! of clients: rustls' default server-side session cache holds 256 sessions, far fewer than
//! the connections a load test opens. Resumed handshakes are counted in
//! [`super::GatewayStats::tls_resumed`].

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;

use crate::plan::tls::{PemFile, TlsSetupError, load_certs, load_key, provider};

/// Why the gateway's TLS set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayTlsError {
    #[error(transparent)]
    Files(#[from] TlsSetupError),
    #[error("the certificate and key cannot be used together: {0}")]
    KeyMismatch(rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot set up TLS: {0}")]
    Config(rustls::Error),
}

/// A server certificate ready to serve, with what to tell the operator about it.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), as colon-separated upper-case hex.
    pub fingerprint: String,
    /// The leaf certificate in PEM (for clients' `--tls-ca` when self-signed).
    pub cert_pem: String,
}

/// Load a PEM certificate chain and private key.
pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, GatewayTlsError> {
    let chain = load_certs(cert, PemFile::ServerCert)?;
    let key = load_key(key, PemFile::ServerKey)?;
    let cert_pem = pem_of(&chain[0]);
    let fingerprint = fingerprint(&chain[0]);
    Ok(ServerTls {
        config: server_config(chain, key, None)?,
        fingerprint,
        cert_pem,
    })
}

/// Generate a self-signed certificate (ECDSA P-256) valid for `names` (DNS names or IP
/// addresses).
pub fn self_signed(names: &[String]) -> Result<ServerTls, GatewayTlsError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wsscale self-signed gateway");
    let cert = params.self_signed(&key)?;
    let der = cert.der().clone();
    let key_der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| GatewayTlsError::Config(rustls::Error::General(e.into())))?;
    Ok(ServerTls {
        fingerprint: fingerprint(&der),
        cert_pem: cert.pem(),
        config: server_config(vec![der], key_der, None)?,
    })
}

/// A server configuration for `chain`/`key`; `client_verifier` makes it require (or accept)
/// client certificates (mTLS).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, GatewayTlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(GatewayTlsError::Config)?;
    let builder = match client_verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(GatewayTlsError::KeyMismatch)?;
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(GatewayTlsError::Config)?;
    Ok(Arc::new(config))
}

/// SHA-256 of a DER certificate as `AB:CD:…` (what browsers and `openssl x509 -fingerprint
/// -sha256` show).
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap_or_default());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn self_signed_certificate_round_trips_through_pem() {
        let tls = self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        let der = CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).unwrap();
        assert_eq!(fingerprint(&der), tls.fingerprint);
        assert_eq!(
            CertificateDer::from_pem_slice(pem_of(&der).as_bytes()).unwrap(),
            der
        );
    }
}
