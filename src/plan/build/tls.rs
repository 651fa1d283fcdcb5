//! The `--tls-*` flags → [`TlsSpec`], checked before any socket opens: the CA, client
//! certificate and key files are loaded once here (the engine loads them again when it
//! starts), and the SNI name must be a DNS name or an IP address.

use super::super::error::{Origin, PlanError};
use super::super::{Target, TlsSpec};
use crate::plan::Overrides;

/// TLS settings from the flags; validated when a target is `wss://`.
pub(super) fn tls(args: &Overrides, targets: &[Target]) -> Result<TlsSpec, PlanError> {
    let spec = TlsSpec {
        sni: args.tls_sni.clone(),
        ca_files: args.tls_ca.clone(),
        insecure: args.tls_insecure,
        client_cert: args.tls_client_cert.clone(),
        client_key: args.tls_client_key.clone(),
        resume: args.tls_resume,
    };
    if let Err(e) = super::super::tls::check(&spec, targets) {
        return Err(Origin::Flag(e.flag()).invalid(e.to_string()));
    }
    Ok(spec)
}
