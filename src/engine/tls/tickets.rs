//! The session-ticket store for `--tls-resume`: up to [`TICKETS_PER_SERVER`] single-use
//! TLS 1.3 tickets per server name (rustls' default store keeps 8, far too few for a ramp),
//! plus the one TLS 1.2 session and the key-exchange hint rustls asks for.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

/// TLS 1.3 tickets kept per server name with `--tls-resume`.
pub const TICKETS_PER_SERVER: usize = 4096;

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
