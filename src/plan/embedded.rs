//! Settings of the embedded gateway: the `wsscale serve` that a run starts when no target is
//! given (`[embedded_gateway]` in a profile).
//!
//! They let a profile make the embedded gateway behave like a gateway with a known limit —
//! `max_connections` refuses upgrades beyond it with HTTP 503, `echo_delay` slows every echo —
//! so that demos and tests (a capacity search that must find its knee at a known step, see
//! docs/search.md) run against something deterministic. They are passed on as
//! `wsscale serve` flags ([`EmbeddedGateway::serve_args`]) to every embedded gateway process
//! (with `--processes N`, each of the N processes applies its own `max_connections`). A run
//! with a target starts no gateway, and then these settings do nothing.

use std::time::Duration;

/// `[embedded_gateway]`: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmbeddedGateway {
    /// `wsscale serve --max-connections`: upgrades beyond this many open get HTTP 503.
    pub max_connections: Option<u64>,
    /// `wsscale serve --echo-delay`: added before each echo.
    pub echo_delay: Option<Duration>,
}

impl EmbeddedGateway {
    /// The `wsscale serve` flags for these settings (empty for the defaults).
    pub fn serve_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(n) = self.max_connections {
            out.push("--max-connections".to_string());
            out.push(n.to_string());
        }
        if let Some(d) = self.echo_delay {
            out.push("--echo-delay".to_string());
            out.push(format!("{}ms", d.as_millis()));
        }
        out
    }
}
