//! Parsing of `--source-ip` specs into the list of local addresses a source pool binds to.
//!
//! A spec is one item or a comma-separated list of items; whitespace around items is ignored.
//! An item is one of:
//!
//! | form                     | example                       | expands to                         |
//! |--------------------------|-------------------------------|------------------------------------|
//! | single address           | `127.0.0.2`, `::1`, `[::1]`   | that address                       |
//! | inclusive range          | `10.0.0.10-10.0.0.60`         | every address from start to end    |
//! | CIDR prefix              | `10.0.0.0/28`, `fd00::/120`   | the prefix's usable host addresses |
//! | interface                | `iface:eth0`                  | its IPv4/IPv6 addresses            |
//!
//! Rules, and why:
//!
//! - **IPv4 CIDR** prefixes shorter than /31 drop the network and broadcast addresses (they
//!   are not host addresses on a broadcast subnet); /31 (RFC 3021 point-to-point) and /32
//!   keep all their addresses. **IPv6 CIDR** keeps every address of the prefix: IPv6 has no
//!   broadcast address, and the all-zero "subnet-router anycast" address is rarely assigned
//!   to a host anyway — [`check_bindable`] tells which addresses the host owns.
//! - A CIDR with host bits set (`10.0.0.5/28`, as printed by `ip addr`) is rejected with the
//!   network form as a suggestion, rather than silently widened into a whole subnet.
//! - **Ranges** must keep one address family and must not run backwards.
//! - **`iface:NAME`** takes the interface's addresses in `getifaddrs(3)` order and skips IPv6
//!   link-local addresses (`fe80::/10`): binding them needs a scope id, which a plain
//!   [`IpAddr`] cannot carry.
//! - One item may expand to at most [`MAX_SOURCES`] addresses, and so may a whole pool. One
//!   source address serves about one ephemeral port range of connections *per destination*
//!   (64,512 with `ip_local_port_range = 1024 65535`), so 65,536 source addresses already
//!   cover billions of connections; a larger expansion is almost certainly a typo (`/8` for
//!   `/28`), and materializing it would cost memory for nothing. The error suggests the
//!   narrowest prefix or range that fits.
//! - Duplicates are dropped keeping the first occurrence, so order (and therefore the
//!   round-robin order of the pool) is what the user wrote.
//!
//! Every error names the spec it came from and shows an example of valid input.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// The most addresses one spec item, or one whole pool, may expand to.
pub const MAX_SOURCES: usize = 65_536;

/// Shown at the end of every error so the user sees what valid input looks like.
const VALID_FORMS: &str = "valid forms: 10.0.0.2, ::1, 10.0.0.10-10.0.0.60, 10.0.0.0/28, \
                           fd00::/120, iface:eth0, or a comma list such as 10.0.0.2,10.0.0.3";

/// Why a `--source-ip` spec could not be turned into addresses.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The spec (or the whole list) contained no item.
    #[error("source spec {spec:?} is empty; {VALID_FORMS}")]
    Empty {
        /// The spec as given.
        spec: String,
    },
    /// An item is not an address, range, CIDR or `iface:` form.
    #[error("source spec {spec:?}: {item:?} is not an IP address ({reason}); {VALID_FORMS}")]
    InvalidAddress {
        /// The spec as given.
        spec: String,
        /// The offending part.
        item: String,
        /// What the address parser said, or a hint.
        reason: String,
    },
    /// A range whose start is after its end.
    #[error(
        "source spec {spec:?}: range start {start} is after its end {end}; write the lower \
         address first, e.g. {end}-{start}"
    )]
    ReversedRange {
        /// The spec as given.
        spec: String,
        /// First address as written.
        start: IpAddr,
        /// Last address as written.
        end: IpAddr,
    },
    /// A range from an IPv4 to an IPv6 address or the other way round.
    #[error(
        "source spec {spec:?}: range {start}-{end} mixes IPv4 and IPv6; both ends must be the \
         same family, e.g. 10.0.0.10-10.0.0.60 or fd00::10-fd00::60"
    )]
    MixedFamilies {
        /// The spec as given.
        spec: String,
        /// First address as written.
        start: IpAddr,
        /// Last address as written.
        end: IpAddr,
    },
    /// A CIDR prefix length that is not a number or too long for the family.
    #[error(
        "source spec {spec:?}: prefix length {prefix:?} is not a number from 0 to {max}; \
         e.g. {example}"
    )]
    InvalidPrefix {
        /// The spec as given.
        spec: String,
        /// The prefix length as written.
        prefix: String,
        /// Longest prefix of the family (32 or 128).
        max: u8,
        /// A valid CIDR of the same family.
        example: &'static str,
    },
    /// A CIDR whose address has bits set beyond the prefix.
    #[error(
        "source spec {spec:?}: {item} has host bits set; the network is {network}/{prefix} \
         (or give the single address {addr})"
    )]
    HostBitsSet {
        /// The spec as given.
        spec: String,
        /// The CIDR as written.
        item: String,
        /// The address as written.
        addr: IpAddr,
        /// The network address of the prefix.
        network: IpAddr,
        /// The prefix length.
        prefix: u8,
    },
    /// An item expands to more than [`MAX_SOURCES`] addresses.
    #[error(
        "source spec {spec:?}: {item} expands to {} addresses, more than the {MAX_SOURCES} a \
         source pool holds; use a narrower range such as {suggestion}",
        Count(*count)
    )]
    TooMany {
        /// The spec as given.
        spec: String,
        /// The item that expanded too far.
        item: String,
        /// How many addresses it would have produced (saturating at `u128::MAX`).
        count: u128,
        /// A narrower prefix or range that fits.
        suggestion: String,
    },
    /// All specs together expand to more than [`MAX_SOURCES`] distinct addresses.
    #[error(
        "source specs {specs:?} together expand to {count} distinct addresses, more than the \
         {MAX_SOURCES} a source pool holds; drop some specs or use narrower ranges \
         (e.g. 10.0.0.0/24 instead of 10.0.0.0/16)"
    )]
    PoolTooLarge {
        /// The specs as given, joined with `, `.
        specs: String,
        /// Distinct addresses counted before giving up.
        count: usize,
    },
    /// `iface:NAME` names an interface this host does not have.
    #[error(
        "source spec {spec:?}: no network interface named {name:?}; this host has: {}; \
         e.g. iface:{}",
        list_or_none(available),
        available.first().map_or("eth0", String::as_str)
    )]
    UnknownInterface {
        /// The spec as given.
        spec: String,
        /// The interface name as written.
        name: String,
        /// Interfaces that do exist, sorted.
        available: Vec<String>,
    },
    /// The interface exists but has no address a socket could bind to.
    #[error(
        "source spec {spec:?}: interface {name:?} has no usable IPv4 or IPv6 address (IPv6 \
         link-local fe80::/10 addresses are skipped: they need a scope id); add one with \
         `ip addr add 10.0.0.2/24 dev {name}`, or give addresses directly, e.g. 10.0.0.2"
    )]
    NoUsableAddress {
        /// The spec as given.
        spec: String,
        /// The interface name.
        name: String,
    },
    /// `getifaddrs(3)` itself failed.
    #[error("source spec {spec:?}: cannot list network interfaces: {source}")]
    Interfaces {
        /// The spec as given.
        spec: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Formats an address count, writing 2^128 (which does not fit a `u128`) as such.
struct Count(u128);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u128::MAX {
            f.write_str("2^128")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// Parses one `--source-ip` spec (possibly a comma list) into addresses, duplicates removed
/// keeping the first occurrence.
pub fn parse_source(spec: &str) -> Result<Vec<IpAddr>, SourceError> {
    let mut pool = Pool::default();
    parse_into(spec, spec, &mut pool)?;
    Ok(pool.addrs)
}

/// Parses several specs (one per `--source-ip` flag) and concatenates them, duplicates
/// removed keeping the first occurrence. No specs give an empty list (let the kernel choose).
pub fn parse_sources(specs: &[String]) -> Result<Vec<IpAddr>, SourceError> {
    let mut pool = Pool::default();
    let label = specs.join(", ");
    for spec in specs {
        parse_into(spec, &label, &mut pool)?;
    }
    Ok(pool.addrs)
}

/// Tells whether this host owns `addr`: creates a TCP socket, binds it to `(addr, 0)` and
/// drops it. `EADDRNOTAVAIL` means the address is not assigned to any interface.
///
/// Bind succeeds for foreign addresses when `net.ipv4.ip_nonlocal_bind` (or the IPv6
/// equivalent) is 1; connections from such an address then fail at connect time instead.
pub fn check_bindable(addr: IpAddr) -> io::Result<()> {
    let local = SocketAddr::new(addr, 0);
    let socket = Socket::new(
        Domain::for_address(local),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.bind(&local.into())
}

/// Addresses collected so far, in first-seen order, plus the set used to drop duplicates.
#[derive(Default)]
struct Pool {
    addrs: Vec<IpAddr>,
    seen: HashSet<IpAddr>,
}

impl Pool {
    fn push(&mut self, addr: IpAddr) {
        if self.seen.insert(addr) {
            self.addrs.push(addr);
        }
    }
}

/// Adds the addresses of `spec` to `pool`; `label` names all specs of the pool for the
/// [`SourceError::PoolTooLarge`] message.
fn parse_into(spec: &str, label: &str, pool: &mut Pool) -> Result<(), SourceError> {
    let items: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect();
    if items.is_empty() {
        return Err(SourceError::Empty {
            spec: spec.to_owned(),
        });
    }
    for item in items {
        parse_item(spec, item, pool)?;
        if pool.addrs.len() > MAX_SOURCES {
            return Err(SourceError::PoolTooLarge {
                specs: label.to_owned(),
                count: pool.addrs.len(),
            });
        }
    }
    Ok(())
}

fn parse_item(spec: &str, item: &str, pool: &mut Pool) -> Result<(), SourceError> {
    if let Some(name) = strip_prefix_ignore_case(item, "iface:") {
        for addr in interface_addrs(spec, name.trim())? {
            pool.push(addr);
        }
        return Ok(());
    }
    if let Some((addr, prefix)) = item.split_once('/') {
        return expand_cidr(spec, item, addr.trim(), prefix.trim(), pool);
    }
    if let Some((start, end)) = item.split_once('-') {
        return expand_range(spec, item, start.trim(), end.trim(), pool);
    }
    pool.push(parse_addr(spec, item)?);
    Ok(())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Parses one address, accepting IPv6 in brackets (`[::1]`).
fn parse_addr(spec: &str, text: &str) -> Result<IpAddr, SourceError> {
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>().map_err(|err| {
        let reason = if bare.contains('%') {
            "a %zone suffix is not supported; use a global or unique-local address".to_owned()
        } else if bare.contains(':') && bare.chars().filter(|c| *c == ':').count() == 1 {
            "a port is not part of a source address; the kernel picks the port".to_owned()
        } else {
            err.to_string()
        };
        SourceError::InvalidAddress {
            spec: spec.to_owned(),
            item: text.to_owned(),
            reason,
        }
    })
}

fn expand_range(
    spec: &str,
    item: &str,
    start: &str,
    end: &str,
    pool: &mut Pool,
) -> Result<(), SourceError> {
    let start = parse_addr(spec, start)?;
    let end = parse_addr(spec, end)?;
    let (lo, hi, v4) = match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(b)), true)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), false),
        _ => {
            return Err(SourceError::MixedFamilies {
                spec: spec.to_owned(),
                start,
                end,
            });
        }
    };
    if lo > hi {
        return Err(SourceError::ReversedRange {
            spec: spec.to_owned(),
            start,
            end,
        });
    }
    let count = (hi - lo).saturating_add(1);
    if count > MAX_SOURCES as u128 {
        let last = lo + MAX_SOURCES as u128 - 1;
        return Err(SourceError::TooMany {
            spec: spec.to_owned(),
            item: item.to_owned(),
            count,
            suggestion: format!("{start}-{}", to_addr(last, v4)),
        });
    }
    for value in lo..=hi {
        pool.push(to_addr(value, v4));
    }
    Ok(())
}

fn expand_cidr(
    spec: &str,
    item: &str,
    addr: &str,
    prefix: &str,
    pool: &mut Pool,
) -> Result<(), SourceError> {
    let addr = parse_addr(spec, addr)?;
    let (bits, v4, example) = match addr {
        IpAddr::V4(_) => (32u8, true, "10.0.0.0/28"),
        IpAddr::V6(_) => (128u8, false, "fd00::/120"),
    };
    let prefix_len = prefix
        .parse::<u8>()
        .ok()
        .filter(|len| *len <= bits)
        .ok_or_else(|| SourceError::InvalidPrefix {
            spec: spec.to_owned(),
            prefix: prefix.to_owned(),
            max: bits,
            example,
        })?;
    let value = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let host_bits = u32::from(bits - prefix_len);
    // Mask of the host part; `checked_shl` is None for a 128-bit shift (the /0 IPv6 case).
    let host_mask = 1u128
        .checked_shl(host_bits)
        .map_or(u128::MAX, |size| size - 1);
    let network = value & !host_mask;
    if network != value {
        return Err(SourceError::HostBitsSet {
            spec: spec.to_owned(),
            item: item.to_owned(),
            addr,
            network: to_addr(network, v4),
            prefix: prefix_len,
        });
    }
    let broadcast = network | host_mask;
    // IPv4 prefixes shorter than /31 lose the network and broadcast addresses.
    let (first, last) = if v4 && prefix_len < 31 {
        (network + 1, broadcast - 1)
    } else {
        (network, broadcast)
    };
    let count = (last - first).saturating_add(1);
    if count > MAX_SOURCES as u128 {
        let narrower = narrowest_fitting_prefix(v4);
        return Err(SourceError::TooMany {
            spec: spec.to_owned(),
            item: item.to_owned(),
            count,
            suggestion: format!("{}/{narrower}", to_addr(network, v4)),
        });
    }
    for value in first..=last {
        pool.push(to_addr(value, v4));
    }
    Ok(())
}

/// The shortest prefix whose expansion still fits [`MAX_SOURCES`]: /16 for IPv4 (65,534
/// hosts), /112 for IPv6 (65,536 addresses).
fn narrowest_fitting_prefix(v4: bool) -> u8 {
    let bits: u8 = if v4 { 32 } else { 128 };
    (0..=bits)
        .find(|&len| {
            let host_bits = u32::from(bits - len);
            let size = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
            let usable = if v4 && len < 31 { size - 2 } else { size };
            usable <= MAX_SOURCES as u128
        })
        .unwrap_or(bits)
}

fn to_addr(value: u128, v4: bool) -> IpAddr {
    if v4 {
        // Callers only pass values derived from an IPv4 address, which fit 32 bits.
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

/// The usable addresses of interface `name`, in `getifaddrs(3)` order.
fn interface_addrs(spec: &str, name: &str) -> Result<Vec<IpAddr>, SourceError> {
    let entries = nix::ifaddrs::getifaddrs().map_err(|errno| SourceError::Interfaces {
        spec: spec.to_owned(),
        source: io::Error::from(errno),
    })?;
    let mut names = Vec::new();
    let mut addrs = Vec::new();
    let mut found = false;
    for entry in entries {
        if entry.interface_name != name {
            if !names.contains(&entry.interface_name) {
                names.push(entry.interface_name);
            }
            continue;
        }
        found = true;
        let Some(sockaddr) = entry.address else {
            continue;
        };
        let addr = if let Some(v4) = sockaddr.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = sockaddr.as_sockaddr_in6() {
            let ip = v6.ip();
            if is_ipv6_link_local(ip) {
                continue;
            }
            IpAddr::V6(ip)
        } else {
            continue; // AF_PACKET and other non-IP families
        };
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if !found {
        names.sort();
        return Err(SourceError::UnknownInterface {
            spec: spec.to_owned(),
            name: name.to_owned(),
            available: names,
        });
    }
    if addrs.is_empty() {
        return Err(SourceError::NoUsableAddress {
            spec: spec.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(addrs)
}

/// `fe80::/10`: usable only together with a scope id (the interface index).
fn is_ipv6_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn fitting_prefixes() {
        assert_eq!(narrowest_fitting_prefix(true), 16);
        assert_eq!(narrowest_fitting_prefix(false), 112);
    }

    #[test]
    fn ipv6_slash_zero_is_too_many_not_overflow() {
        let err = parse_source("::/0").unwrap_err();
        assert!(err.to_string().contains("2^128"), "{err}");
        assert!(err.to_string().contains("::/112"), "{err}");
    }

    #[test]
    fn link_local_detection() {
        assert!(is_ipv6_link_local("fe80::1".parse().unwrap()));
        assert!(is_ipv6_link_local("febf::1".parse().unwrap()));
        assert!(!is_ipv6_link_local("fec0::1".parse().unwrap()));
        assert!(!is_ipv6_link_local("::1".parse().unwrap()));
    }
}
