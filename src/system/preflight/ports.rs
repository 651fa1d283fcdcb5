//! Load-generator address checks: ephemeral-port capacity (with the ports held right now,
//! see [`super::held`]), the `--source-ip` addresses (each test-bound on this host), how
//! `--processes` share them ([`source_split`], arithmetic in [`super::spread`]), and the
//! kernel's `IP_BIND_ADDRESS_NO_PORT`.

use super::capacity::{
    PORT_UTILISATION_PCT, has_bind_address_no_port, port_capacity, sources_needed, usable_ports,
};
use super::spread::{equal_shares, spread};
use super::{Finding, HostFacts, Needs, Status};
use crate::plan::source_spec::check_bindable;
use crate::system::human::count;
use crate::system::settings::k8s_lines;
use crate::system::tune::PORT_RANGE;

/// Source addresses listed by name in a failing finding before "… and N more".
const LIST_AT_MOST: usize = 5;

/// Ephemeral ports: source addresses × destinations × port-range size vs connections.
pub fn ephemeral_ports(needs: &Needs, facts: &HostFacts) -> Finding {
    let n = needs.connections;
    let mut finding = Finding {
        check: "ephemeral_ports",
        name: "ephemeral ports".to_owned(),
        status: Status::Pass,
        scope: "netns",
        found: String::new(),
        needed: String::new(),
        why: String::new(),
        fix: Vec::new(),
    };
    let Some((lo, hi)) = facts.port_range() else {
        finding.status = Status::Warn;
        finding.found = "net.ipv4.ip_local_port_range not readable".to_owned();
        return finding;
    };
    let ports = u64::from(hi) - u64::from(lo) + 1;
    let explicit = needs.sources.len() as u64;
    let sources = explicit.max(1);
    let d = needs.destinations;
    let no_port = explicit == 0 || facts.kernel_version().is_none_or(has_bind_address_no_port);
    let capacity = port_capacity(explicit, d, ports, no_port);
    let usable = usable_ports(capacity);
    let needed_capacity = n.saturating_mul(100).div_ceil(PORT_UTILISATION_PCT);
    finding.found = if no_port {
        format!(
            "{} = {} source{} x {} destination{} x {} ports ({lo}-{hi})",
            count(capacity),
            count(sources),
            if sources == 1 { "" } else { "s" },
            count(d),
            if d == 1 { "" } else { "s" },
            count(ports),
        )
    } else {
        format!(
            "{} = {} sources x {} ports ({lo}-{hi}), no IP_BIND_ADDRESS_NO_PORT",
            count(capacity),
            count(sources),
            count(ports),
        )
    };
    if let Some(held) = facts.ports_held.as_ref().filter(|h| h.ports > 0) {
        let free = held.free();
        finding.found.push_str(&format!(
            "; {} free now",
            count(port_capacity(explicit, d, free, no_port)),
        ));
    }
    finding.needed = format!(
        ">= {} ({} at <= {PORT_UTILISATION_PCT}% use)",
        count(needed_capacity),
        count(n)
    );
    finding.why = format!(
        "a TCP connection is unique per (source IP, source port, destination IP, destination \
         port); {}. Above {PORT_UTILISATION_PCT}% use connect() scans a nearly full range and \
         reconnects find ports still in TIME_WAIT; when it is full connect() fails with \
         EADDRNOTAVAIL",
        if explicit == 0 {
            "without --source-ip the kernel uses one source address and picks the port per \
             destination at connect time"
        } else if no_port {
            "with IP_BIND_ADDRESS_NO_PORT the port is picked per destination at connect time, so \
             every (source, destination) pair offers the whole range"
        } else {
            "without IP_BIND_ADDRESS_NO_PORT (kernel < 4.2) bind() takes a port of a source \
             address for all destinations"
        }
    );
    if n <= usable {
        // Fits, but a (source, destination) pair that holds more than half of the range makes
        // connect() slow: the kernel hands out odd ports first and then scans the used ones
        // (measured here: handshake p99 1.2 s with 16.7K connections on one pair, 25 ms with
        // 8.3K on each of two).
        let pairs = if no_port { sources * d.max(1) } else { sources };
        let per_pair = n.div_ceil(pairs.max(1));
        if per_pair > ports / 2 {
            let enough = n.div_ceil((ports / 2).max(1) * if no_port { d.max(1) } else { 1 });
            finding.status = Status::Warn;
            finding.why.push_str(&format!(
                "; each (source, destination) pair would hold about {} connections, more than \
                 half of the {}-port range, where connect() slows down (it scans used ports)",
                count(per_pair),
                count(ports)
            ));
            finding.fix.push(format!(
                "use at least {} source addresses (e.g. --source-ip 127.0.0.2-127.0.0.{} on \
                 loopback), or widen net.ipv4.ip_local_port_range",
                count(enough),
                (enough + 1).min(254)
            ));
        }
        return finding;
    }
    finding.status = if n <= capacity {
        Status::Warn
    } else {
        Status::Fail
    };
    let per_pair = if no_port { d } else { 1 };
    let wide = u64::from(PORT_RANGE.1) - u64::from(PORT_RANGE.0) + 1;
    let range_value = format!("{} {}", PORT_RANGE.0, PORT_RANGE.1);
    if ports < wide {
        let wider = port_capacity(explicit, d, wide, no_port);
        finding.fix.push(format!(
            "widen the port range: {} (then {} connections{})",
            crate::system::settings::sysctl_w("net.ipv4.ip_local_port_range", &range_value),
            count(wider),
            if n <= usable_ports(wider) {
                ", enough"
            } else {
                ", still not enough alone"
            }
        ));
        finding
            .fix
            .extend(k8s_lines("net.ipv4.ip_local_port_range", &range_value));
    }
    let k_now = sources_needed(n, per_pair, ports);
    let k_wide = sources_needed(n, per_pair, ports.max(wide));
    let range = |k: u64| format!("127.0.0.1-127.0.0.{}", k.min(254));
    if needs.loopback_only {
        finding.fix.push(if k_wide < k_now {
            format!(
                "and/or use {k_now} source addresses, or {k_wide} after widening the range: every \
                 127.0.0.0/8 address is a loopback source, e.g. --source-ip {} (or {})",
                range(k_now),
                range(k_wide)
            )
        } else {
            format!(
                "and/or use {k_now} source addresses: every 127.0.0.0/8 address is a loopback \
                 source, e.g. --source-ip {}",
                range(k_now)
            )
        });
    } else {
        let count_text = if k_wide < k_now {
            format!("{k_now} source addresses ({k_wide} after widening the range)")
        } else {
            format!("{k_now} source addresses")
        };
        finding.fix.push(format!(
            "and/or use {count_text}: add them to the interface that reaches the gateway (`sudo \
             ip addr add 10.0.0.11/24 dev eth0` ...) and pass --source-ip 10.0.0.10-10.0.0.N or \
             --source-ip iface:eth0"
        ));
    }
    finding.fix.push(
        "or give the gateway more listening addresses or ports: each destination adds a full \
         range per source address"
            .to_owned(),
    );
    finding
}

/// Every `--source-ip` address must be bindable here (exist on a local interface).
pub fn source_addresses(needs: &Needs) -> Finding {
    let total = needs.sources.len();
    let mut finding = Finding {
        check: "source_addresses",
        name: "source addresses".to_owned(),
        status: Status::Pass,
        scope: "host",
        found: String::new(),
        needed: "every --source-ip address bindable on this host".to_owned(),
        why: "the engine binds each client socket to a source address before connecting; an \
              address this host does not own fails with EADDRNOTAVAIL"
            .to_owned(),
        fix: Vec::new(),
    };
    if total == 0 {
        finding.found = "none given: the kernel picks the source address".to_owned();
        finding.needed = "-".to_owned();
        return finding;
    }
    let bad: Vec<String> = needs
        .sources
        .iter()
        .filter_map(|addr| check_bindable(*addr).err().map(|e| format!("{addr} ({e})")))
        .collect();
    if bad.is_empty() {
        finding.found = format!(
            "{} address{}, each bindable",
            count(total as u64),
            plural(total)
        );
        return finding;
    }
    finding.status = Status::Fail;
    let mut listed = bad
        .iter()
        .take(LIST_AT_MOST)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if bad.len() > LIST_AT_MOST {
        listed.push_str(&format!(" and {} more", bad.len() - LIST_AT_MOST));
    }
    finding.found = format!(
        "{} of {} not bindable: {listed}",
        count(bad.len() as u64),
        count(total as u64)
    );
    finding.fix = vec![
        "assign them to an interface: `sudo ip addr add ADDR/32 dev lo` for tests against this \
         host, or to the NIC that reaches the gateway"
            .to_owned(),
        "or drop them from --source-ip (`ip -br addr` lists this host's addresses; \
         --source-ip iface:eth0 takes them all)"
            .to_owned(),
    ];
    finding
}

/// How `--processes` share the `--source-ip` addresses: the layout the split gives them
/// ([`super::spread`]) and the most connections it puts on one (source, destination) pair,
/// against half the port range. `None` for one process or no explicit addresses (the
/// ephemeral-port check covers those).
pub fn source_split(needs: &Needs, facts: &HostFacts) -> Option<Finding> {
    let k = needs.processes;
    let m = needs.sources.len();
    if k <= 1 || m == 0 {
        return None;
    }
    let mut finding = Finding {
        check: "source_split",
        name: "source split (--processes)".to_owned(),
        status: Status::Pass,
        scope: "host",
        found: String::new(),
        needed: String::new(),
        why: String::new(),
        fix: Vec::new(),
    };
    let Some((lo, hi)) = facts.port_range() else {
        finding.status = Status::Warn;
        finding.found = "net.ipv4.ip_local_port_range not readable".to_owned();
        return Some(finding);
    };
    let ports = u64::from(hi) - u64::from(lo) + 1;
    let half = ports / 2;
    let d = needs.destinations.max(1);
    let shares = equal_shares(needs.connections, k as usize);
    let layout = spread(m, &shares);
    let per_pair = (layout.max_load / d as f64).ceil() as u64;
    let share = shares.iter().copied().max().unwrap_or(0);
    finding.found = format!(
        "{} address{}, {}: {} per pair",
        count(m as u64),
        plural(m),
        layout.describe(m),
        count(per_pair)
    );
    finding.needed = format!(
        "<= {} per pair (half of {} ports)",
        count(half),
        count(ports)
    );
    finding.why = format!(
        "each process holds about {} connections and spreads them evenly over its addresses \
         and the {} destination{}; processes that share an address share its ports (the \
         kernel's port space is per (source, destination) pair, host-wide). A pair holding \
         more than half of the range makes connect() slow: it scans used ports (measured: \
         handshake p99 1.2 s with 16.7K connections on one pair, 25 ms with 8.3K on each of \
         two)",
        count(share),
        count(d),
        if d == 1 { "" } else { "s" }
    );
    if per_pair <= half {
        return Some(finding);
    }
    finding.status = Status::Warn;
    // Addresses that bring every pair under half the range, and a multiple of the process
    // count so that each process gets a block of its own.
    let enough = needs.connections.div_ceil(half.max(1) * d);
    let disjoint = enough.div_ceil(k) * k;
    let example = if needs.loopback_only {
        format!(
            ", e.g. --source-ip 127.0.0.2-127.0.0.{} on loopback",
            (disjoint + 1).min(254)
        )
    } else {
        String::new()
    };
    finding.fix.push(format!(
        "use at least {} source addresses ({} give each of the {k} processes {} of its \
         own){example}",
        count(enough),
        count(disjoint),
        disjoint / k
    ));
    let wide = u64::from(PORT_RANGE.1) - u64::from(PORT_RANGE.0) + 1;
    if ports < wide {
        finding.fix.push(format!(
            "or widen net.ipv4.ip_local_port_range to {} {} (half of it: {} per pair)",
            PORT_RANGE.0,
            PORT_RANGE.1,
            count(wide / 2)
        ));
    }
    Some(finding)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "es" }
}

/// The kernel release, for `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2).
pub fn kernel(needs: &Needs, facts: &HostFacts) -> Finding {
    let mut finding = Finding {
        check: "kernel",
        name: "kernel (IP_BIND_ADDRESS_NO_PORT)".to_owned(),
        status: Status::Pass,
        scope: "node",
        found: facts
            .kernel_release
            .clone()
            .unwrap_or_else(|| "unknown".to_owned()),
        needed: ">= 4.2".to_owned(),
        why: "IP_BIND_ADDRESS_NO_PORT (Linux 4.2) lets a bound source address reuse each port \
              for every destination"
            .to_owned(),
        fix: Vec::new(),
    };
    match facts.kernel_version() {
        Some(v) if has_bind_address_no_port(v) => {}
        Some(_) if needs.sources.is_empty() => {
            finding
                .why
                .push_str("; without --source-ip nothing is bound, so it does not matter");
        }
        Some(_) => {
            finding.status = Status::Warn;
            finding.why.push_str(
                "; on this kernel each source address offers one port range in total, which the \
                 ephemeral-port check accounts for",
            );
            finding
                .fix
                .push("upgrade the kernel, or add source addresses".to_owned());
        }
        None => {
            finding.status = Status::Warn;
            finding
                .why
                .push_str("; the kernel release could not be read");
        }
    }
    finding
}
