//! TLS on the control link (`wss://`), both ends.
//!
//! - **Coordinator**: `--tls-cert FILE --tls-key FILE`, or `--tls-self-signed`, which makes
//!   a fresh P-256 certificate and prints its SHA-256 fingerprint for the agents'
//!   `--tls-fingerprint`. The certificate code is the embedded gateway's
//!   ([`crate::gateway::tls`]).
//! - **Agent**: a `wss://` coordinator URL is verified against `--tls-ca FILE` (PEM roots),
//!   or pinned with `--tls-fingerprint SHA256` (the leaf certificate's digest; the host name
//!   is then not checked — the pin is stronger), or against the public web roots when
//!   neither is given.
//!
//! Either way the handshake signatures are checked, so a pinned certificate cannot be
//! replayed by someone without its key. Both ends see the link as a [`LinkStream`]: a boxed
//! byte stream, plain or TLS, under tokio-tungstenite.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::gateway::tls::{GatewayTlsError, ServerTls, fingerprint};
use crate::plan::tls::{PemFile, TlsSetupError, load_certs, provider};

/// A control-link byte stream, plain TCP or TLS over it.
pub struct LinkStream(Pin<Box<dyn LinkIo>>);

/// What a link stream must do (blanket-implemented).
pub trait LinkIo: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> LinkIo for T {}

impl LinkStream {
    pub fn new(io: impl LinkIo + 'static) -> Self {
        LinkStream(Box::pin(io))
    }
}

impl AsyncRead for LinkStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for LinkStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_shutdown(cx)
    }
}

/// How an agent checks a `wss://` coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LinkTrust {
    /// The public web roots (a coordinator with a certificate from a public CA).
    #[default]
    WebRoots,
    /// Roots from a PEM file (`--tls-ca`), e.g. the coordinator's own certificate.
    Ca(PathBuf),
    /// The SHA-256 of the coordinator's certificate (`--tls-fingerprint`), as
    /// `AB:CD:…` or plain hex, either case.
    Fingerprint(String),
}

/// Why the link's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkTlsError {
    #[error(transparent)]
    Files(#[from] TlsSetupError),
    #[error(transparent)]
    Server(#[from] GatewayTlsError),
    #[error(
        "--tls-fingerprint `{0}` is not a SHA-256 digest: give the 64 hex digits the \
         coordinator printed (colons allowed), e.g. AB:CD:…"
    )]
    Fingerprint(String),
    #[error("cannot set up TLS: {0}")]
    Config(rustls::Error),
}

/// The coordinator's certificate: from files, or self-signed for `names`.
pub fn server_tls(
    files: Option<(&Path, &Path)>,
    names: &[String],
) -> Result<ServerTls, LinkTlsError> {
    Ok(match files {
        Some((cert, key)) => crate::gateway::tls::from_pem_files(cert, key)?,
        None => crate::gateway::tls::self_signed(names)?,
    })
}

/// The agent's client configuration for `trust`.
pub fn client_config(trust: &LinkTrust) -> Result<Arc<ClientConfig>, LinkTlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(LinkTlsError::Config)?;
    let config = match trust {
        LinkTrust::WebRoots => {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        LinkTrust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certs(path, PemFile::Ca)? {
                roots.add(cert).map_err(|e| TlsSetupError::BadCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        LinkTrust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                digest: parse_fingerprint(fp)?,
                provider: provider(),
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `AB:CD:…` or `abcd…` → the 32 digest bytes.
pub fn parse_fingerprint(fp: &str) -> Result<[u8; 32], LinkTlsError> {
    let hex: String = fp.chars().filter(|c| *c != ':').collect();
    let bad = || LinkTlsError::Fingerprint(fp.to_string());
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

/// Open the TCP connection and, for `wss://`, the TLS session to `host:port`.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
) -> std::io::Result<LinkStream> {
    let tcp = TcpStream::connect((host, port)).await?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(LinkStream::new(tcp));
    };
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
        .to_owned();
    let stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await?;
    Ok(LinkStream::new(stream))
}

/// Accepts exactly one certificate, by its SHA-256, and checks handshake signatures.
#[derive(Debug)]
struct Pinned {
    digest: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if got.as_ref() == self.digest {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the coordinator's certificate has fingerprint {}, not the one given with \
                 --tls-fingerprint",
                fingerprint(end_entity)
            )))
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let colons = (0..32)
            .map(|i| format!("{i:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let plain = colons.replace(':', "").to_lowercase();
        let want: Vec<u8> = (0..32).collect();
        assert_eq!(parse_fingerprint(&colons).unwrap().to_vec(), want);
        assert_eq!(parse_fingerprint(&plain).unwrap().to_vec(), want);
        for bad in ["", "AB:CD", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }
}
