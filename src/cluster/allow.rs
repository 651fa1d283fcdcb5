//! The agent's own allow-list of targets (`wsscale agent --allow-target …`).
//!
//! An agent is a machine that opens sockets wherever a plan says. Whoever runs the agent
//! decides where that may be, not whoever runs the coordinator: an assignment whose target
//! falls outside the list is refused before a single connection opens, with the target
//! and the list named, and the coordinator aborts the run with that reason.
//!
//! Entries (repeatable flag):
//! - `CIDR` (`10.0.0.0/8`, `fd00::/8`) or one address (`10.0.0.5`, `::1`), optionally with
//!   a port (`10.0.0.5:8080`, `[::1]:8080`; a CIDR with a port: `10.0.0.0/8:443`);
//! - `HOST[:PORT]`: a name, resolved **on the agent** when the plan arrives; a target
//!   matches when the address the coordinator resolved for it is one of the name's. The
//!   target's own host name is not trusted (a coordinator could pair any name with any
//!   address).
//!
//! **Default (no `--allow-target`)**: loopback only (`127.0.0.0/8`, `::1`) — enough for
//! `run --processes` and for trying things on one host, and harmless if a coordinator is
//! not who it should be. Any other target needs an explicit entry; `0.0.0.0/0` and `::/0`
//! allow everything and are a deliberate choice.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// One `--allow-target` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    Net {
        net: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
    Host {
        name: String,
        port: Option<u16>,
    },
}

/// Why an `--allow-target` value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--allow-target {value:?}: {reason}; give a CIDR (10.0.0.0/8), an address (10.0.0.5), or a \
     host name, each optionally with :PORT"
)]
pub struct AllowParseError {
    value: String,
    reason: String,
}

impl FromStr for AllowEntry {
    type Err = AllowParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| AllowParseError {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        // A bare IPv6 address or CIDR (several colons, no brackets) has no port.
        let (body, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or_else(|| err("missing `]`"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().map_err(|_| err("bad port"))?),
                None if after.is_empty() => None,
                None => return Err(err("unexpected text after `]`")),
            };
            (inner, port)
        } else if s.matches(':').count() == 1 {
            let (b, p) = s.rsplit_once(':').expect("one colon");
            (b, Some(p.parse().map_err(|_| err("bad port"))?))
        } else {
            (s, None)
        };
        if port == Some(0) {
            return Err(err("port 0"));
        }
        let (addr, prefix) = match body.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (body, None),
        };
        if let Ok(net) = addr.parse::<IpAddr>() {
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| err("bad prefix length"))?,
                None => max,
            };
            return Ok(AllowEntry::Net { net, prefix, port });
        }
        if prefix.is_some() {
            return Err(err("a prefix length needs an IP address before it"));
        }
        if addr.is_empty() {
            return Err(err("no address or host name"));
        }
        let valid = addr
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !addr.starts_with('.')
            && !addr.starts_with('-');
        if !valid {
            return Err(err("not an address and not a host name"));
        }
        Ok(AllowEntry::Host {
            name: addr.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |p: &Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
        match self {
            AllowEntry::Net {
                net,
                prefix,
                port: p,
            } => {
                let full = if net.is_ipv4() { 32 } else { 128 };
                let body = if *prefix == full {
                    net.to_string()
                } else {
                    format!("{net}/{prefix}")
                };
                if net.is_ipv6() && p.is_some() {
                    write!(f, "[{body}]{}", port(p))
                } else {
                    write!(f, "{body}{}", port(p))
                }
            }
            AllowEntry::Host { name, port: p } => write!(f, "{name}{}", port(p)),
        }
    }
}

impl AllowEntry {
    /// Whether `addr` is allowed by this entry (`Host` entries resolve their name now).
    fn allows(&self, addr: SocketAddr) -> bool {
        match self {
            AllowEntry::Net { net, prefix, port } => {
                port.is_none_or(|p| p == addr.port()) && in_net(addr.ip(), *net, *prefix)
            }
            AllowEntry::Host { name, port } => {
                if port.is_some_and(|p| p != addr.port()) {
                    return false;
                }
                (name.as_str(), addr.port())
                    .to_socket_addrs()
                    .map(|mut addrs| addrs.any(|a| a.ip() == addr.ip()))
                    .unwrap_or(false)
            }
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        _ => ip,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The agent's list; empty means the loopback-only default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    pub entries: Vec<AllowEntry>,
}

impl AllowList {
    pub fn new(entries: Vec<AllowEntry>) -> Self {
        AllowList { entries }
    }

    /// `Ok` when `addr` may be connected to; otherwise the reason, naming the target and
    /// the list, and what the agent's operator can do about it.
    pub fn check(&self, url: &str, addr: SocketAddr) -> Result<(), String> {
        let allowed = if self.entries.is_empty() {
            addr.ip().is_loopback()
                || matches!(addr.ip(), IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
        } else {
            self.entries.iter().any(|e| e.allows(addr))
        };
        if allowed {
            return Ok(());
        }
        let list = if self.entries.is_empty() {
            "loopback only, the default without --allow-target".to_string()
        } else {
            self.entries
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(format!(
            "target {url} ({addr}) is outside this agent's allow-list ({list}); if this agent \
             should load it, start it with --allow-target {} (or a CIDR that holds it)",
            addr.ip()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_parse_and_print_back() {
        for (input, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.0.0.5", "10.0.0.5"),
            ("10.0.0.5:8080", "10.0.0.5:8080"),
            ("10.0.0.0/8:443", "10.0.0.0/8:443"),
            ("::1", "::1"),
            ("[::1]:8080", "[::1]:8080"),
            ("fd00::/8", "fd00::/8"),
            ("Gateway.Example.com:443", "gateway.example.com:443"),
            ("localhost", "localhost"),
        ] {
            let e: AllowEntry = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(e.to_string(), shown);
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "host/8",
            "a b",
            "10.0.0.1:0",
            "[::1",
            "x:port",
            "-x",
            // Once accepted as an empty host name (found by fuzzing, fuzz/regressions/units).
            "[]",
            ":80",
            "[]:80",
        ] {
            let e = bad.parse::<AllowEntry>().expect_err(bad);
            assert!(e.to_string().contains("--allow-target"), "{e}");
        }
    }

    #[test]
    fn the_default_allows_loopback_only() {
        let list = AllowList::default();
        assert!(list.check("ws://a/", sa("127.0.0.1:80")).is_ok());
        assert!(list.check("ws://a/", sa("127.3.4.5:80")).is_ok());
        assert!(list.check("ws://a/", sa("[::1]:80")).is_ok());
        let why = list.check("ws://gw/", sa("10.1.2.3:80")).unwrap_err();
        assert!(why.contains("ws://gw/ (10.1.2.3:80)"), "{why}");
        assert!(why.contains("loopback only"), "{why}");
        assert!(why.contains("--allow-target 10.1.2.3"), "{why}");
    }

    #[test]
    fn nets_ports_and_names_match_what_they_say() {
        let list = AllowList::new(vec![
            "10.0.0.0/8:443".parse().unwrap(),
            "192.168.1.7".parse().unwrap(),
            "localhost:9000".parse().unwrap(),
        ]);
        assert!(list.check("u", sa("10.9.9.9:443")).is_ok());
        assert!(list.check("u", sa("10.9.9.9:80")).is_err(), "port bound");
        assert!(list.check("u", sa("11.0.0.1:443")).is_err());
        assert!(list.check("u", sa("192.168.1.7:1")).is_ok());
        assert!(list.check("u", sa("192.168.1.8:1")).is_err());
        assert!(
            list.check("u", sa("127.0.0.1:9000")).is_ok(),
            "localhost resolves"
        );
        assert!(list.check("u", sa("127.0.0.1:9001")).is_err());
        // Loopback is not implied once a list is given.
        assert!(list.check("u", sa("127.0.0.1:80")).is_err());
        let all = AllowList::new(vec!["0.0.0.0/0".parse().unwrap()]);
        assert!(all.check("u", sa("8.8.8.8:53")).is_ok());
        assert!(
            all.check("u", sa("[2001:db8::1]:53")).is_err(),
            "v4 net, v6 address"
        );
    }
}
