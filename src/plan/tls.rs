//! TLS material named by a plan: the crypto provider, PEM loading of CA files, client and
//! server certificates and keys, the server name each `wss://` target is verified against,
//! and [`check`], which validates a [`TlsSpec`] before any socket opens.
//!
//! These are leaves shared by the engine (client configuration), the gateway (server
//! certificates) and preflight, so they live at the bottom layer. Every error knows which
//! flag its file came from ([`TlsSetupError::flag`]) — typed, never recovered from message
//! text.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{Target, TlsSpec};

/// Which file a PEM came from (for messages and the flag to blame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFile {
    /// `--tls-ca`
    Ca,
    /// `--tls-client-cert`
    ClientCert,
    /// `--tls-client-key`
    ClientKey,
    /// `serve --tls-cert`
    ServerCert,
    /// `serve --tls-key`
    ServerKey,
}

impl PemFile {
    /// The flag that names this file.
    pub fn flag(self) -> &'static str {
        match self {
            PemFile::Ca => "--tls-ca",
            PemFile::ClientCert => "--tls-client-cert",
            PemFile::ClientKey => "--tls-client-key",
            PemFile::ServerCert => "--tls-cert",
            PemFile::ServerKey => "--tls-key",
        }
    }

    fn what(self) -> &'static str {
        match self {
            PemFile::Ca => "CA file",
            PemFile::ClientCert => "client certificate",
            PemFile::ClientKey => "client key",
            PemFile::ServerCert => "certificate",
            PemFile::ServerKey => "private key",
        }
    }
}

/// Why the TLS settings cannot be used (reported before any connection opens).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {} ({}) {path}: {reason}", .file.what(), .file.flag(), path = .path.display())]
    Read {
        file: PemFile,
        path: PathBuf,
        reason: String,
    },
    #[error("{} contains no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\" blocks)", .path.display())]
    NoCertificate { file: PemFile, path: PathBuf },
    #[error("the CA certificate in {} is not usable as a trust anchor: {reason}", .path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error(
        "--tls-client-cert and --tls-client-key go together: give both (a PEM certificate chain and its PEM private key)"
    )]
    HalfClientAuth,
    #[error("the client certificate and key cannot be used together: {0}")]
    ClientAuth(rustls::Error),
    #[error("{0:?} is not a valid TLS server name; give a DNS name or an IP address to --tls-sni")]
    ServerName(String),
    #[error("cannot set up TLS: {0}")]
    Config(rustls::Error),
}

impl TlsSetupError {
    /// The flag whose value is wrong.
    pub fn flag(&self) -> &'static str {
        match self {
            TlsSetupError::Read { file, .. } | TlsSetupError::NoCertificate { file, .. } => {
                file.flag()
            }
            TlsSetupError::BadCa { .. } | TlsSetupError::Config(_) => "--tls-ca",
            TlsSetupError::HalfClientAuth | TlsSetupError::ClientAuth(_) => "--tls-client-cert",
            TlsSetupError::ServerName(_) => "--tls-sni",
        }
    }
}

/// The crypto provider used everywhere (ring: no C toolchain beyond cc, no cmake).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Read every PEM certificate of `path`.
pub fn load_certs(
    path: &Path,
    file: PemFile,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsSetupError::Read {
            file,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            file,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Read the first PEM private key (PKCS#8, PKCS#1 or SEC1) of `path`.
pub fn load_key(path: &Path, file: PemFile) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsSetupError::Read {
        file,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The Mozilla roots plus every certificate of `spec.ca_files`.
pub fn root_store(spec: &TlsSpec) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in &spec.ca_files {
        for cert in load_certs(path, PemFile::Ca)? {
            roots.add(cert).map_err(|e| TlsSetupError::BadCa {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// A client certificate chain and key for mTLS (`None` without `--tls-client-cert`).
pub type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The `--tls-client-cert` / `--tls-client-key` pair, loaded.
pub fn client_identity(spec: &TlsSpec) -> Result<Option<ClientIdentity>, TlsSetupError> {
    match (&spec.client_cert, &spec.client_key) {
        (Some(cert), Some(key)) => Ok(Some((
            load_certs(cert, PemFile::ClientCert)?,
            load_key(key, PemFile::ClientKey)?,
        ))),
        (None, None) => Ok(None),
        _ => Err(TlsSetupError::HalfClientAuth),
    }
}

/// The name sent as SNI and verified against the certificate: `sni` if given, else the host
/// of the target URL (an IP literal is verified against the certificate's IP addresses and
/// sends no SNI, as RFC 6066 requires).
pub fn server_name(
    target: &Target,
    sni: Option<&str>,
) -> Result<ServerName<'static>, TlsSetupError> {
    let host = match sni {
        Some(s) => s.to_string(),
        None => url_host(&target.url).unwrap_or_else(|| target.addr.ip().to_string()),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string()).map_err(|_| TlsSetupError::ServerName(host))
}

fn url_host(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(match u.host()? {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    })
}

/// Validate `spec` for `targets` as the engine will use it: CA files load and are trust
/// anchors, the client certificate and key load and belong together, every `wss://` target
/// has a valid server name. Nothing to check when no target is `wss://`.
pub fn check(spec: &TlsSpec, targets: &[Target]) -> Result<(), TlsSetupError> {
    if !targets.iter().any(|t| t.tls) {
        return Ok(());
    }
    let roots = if spec.insecure {
        rustls::RootCertStore::empty()
    } else {
        root_store(spec)?
    };
    if let Some((chain, key)) = client_identity(spec)? {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Config)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(TlsSetupError::ClientAuth)?;
    }
    for t in targets.iter().filter(|t| t.tls) {
        server_name(t, spec.sni.as_deref())?;
    }
    Ok(())
}
