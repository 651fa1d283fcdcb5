//! The `wsscale serve` command body: gateway settings from the flags (echo, push feed, chat
//! room), TLS set-up
//! (`--tls-cert/--tls-key` or `--tls-self-signed`), then [`crate::gateway::serve_listener_blocking`]
//! on a listener bound here (`SO_REUSEPORT` only with `--reuse-port`), with the gateway's
//! counters on `--metrics-listen` when asked.

use std::io::Write;
use std::net::IpAddr;

use anyhow::Context;

use crate::cli::args::ServeArgs;
use crate::gateway::metrics_http::{MetricsServer, render_gateway};
use crate::gateway::{self, GatewayConfig, PushConfig, tls::ServerTls};
use crate::report::prometheus::CONTENT_TYPE;

/// Run `wsscale serve`; returns the process exit code.
pub fn serve_command(a: &ServeArgs) -> anyhow::Result<i32> {
    // Bind first: a busy port fails before any certificate is made or written.
    let listener = gateway::bind_listener(a.listen, a.reuse_port)
        .map_err(|e| anyhow::anyhow!(gateway::bind_error_message(a.listen, a.reuse_port, &e)))?;
    let tls = server_tls(a)?;
    if let Some(t) = &tls {
        // Before "listening on …" (scripts wait for that line, then may read this one).
        let mut out = std::io::stdout().lock();
        writeln!(out, "tls certificate sha256 fingerprint {}", t.fingerprint)?;
        out.flush()?;
    }
    let config = GatewayConfig {
        jwt_secret: a.secret()?,
        max_connections: a.max_connections.map(|n| n as usize),
        echo_delay: a.echo_delay,
        tls: tls.map(|t| t.config),
        push: a.push_rate.map(|rate| PushConfig {
            rate,
            size: a.push_size as usize,
        }),
        broadcast: a.broadcast,
        compression: a.compression == "deflate",
        faults: a.faults.faults(),
    };
    if config.compression {
        if config.faults.scheduled() {
            return Err(crate::cli::usage(
                "--drop-all-after, --drop-every and --stall-after are not available with \
                 --compression deflate (its connection loop has no fault injection)",
            ));
        }
        eprintln!("compression: permessage-deflate accepted when a client offers it");
    }
    if let Some(push) = &config.push {
        eprintln!(
            "push: a {}-byte message to every connection {}/s (every {:?})",
            push.size,
            push.rate,
            push.period()
        );
    }
    if config.broadcast {
        eprintln!("broadcast: every message received goes to every connection");
    }
    let stats = std::sync::Arc::new(gateway::GatewayStats::default());
    // Kept until the gateway stops: dropping it stops the endpoint.
    let _metrics = match a.metrics_listen {
        None => None,
        Some(addr) => {
            let s = stats.clone();
            let server = MetricsServer::start(
                addr,
                CONTENT_TYPE,
                std::sync::Arc::new(move || render_gateway(&s.snapshot())),
            )
            .with_context(|| {
                format!("cannot listen on --metrics-listen {addr} (is the port taken? port 0 picks a free one)")
            })?;
            eprintln!("metrics on {}", server.url());
            Some(server)
        }
    };
    gateway::serve_listener_with_stats(listener, config, a.threads, stats)?;
    Ok(0)
}

fn server_tls(a: &ServeArgs) -> anyhow::Result<Option<ServerTls>> {
    if a.tls_self_signed {
        let names = self_signed_names(a.listen.ip());
        let tls = gateway::tls::self_signed(&names)
            .context("cannot create the self-signed certificate")?;
        eprintln!(
            "tls: self-signed certificate for {} (clients: --tls-insecure, or --tls-ca with --tls-cert-out's file)",
            names.join(", ")
        );
        if let Some(path) = &a.tls_cert_out {
            std::fs::write(path, &tls.cert_pem)
                .with_context(|| format!("cannot write the certificate to {}", path.display()))?;
            eprintln!("tls: certificate written to {}", path.display());
        }
        return Ok(Some(tls));
    }
    match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(
            gateway::tls::from_pem_files(cert, key).context("cannot use --tls-cert/--tls-key")?,
        )),
        _ => Ok(None),
    }
}

/// `localhost`, the loopback addresses and the listen address (when it is a specific one).
fn self_signed_names(listen: IpAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !listen.is_unspecified() && !listen.is_loopback() {
        names.push(listen.to_string());
    }
    names
}
