//! The conntrack table (`nf_conntrack_max`) and its hash buckets — and whether this traffic is
//! tracked at all.
//!
//! A loaded `nf_conntrack` module does not mean every connection takes a table entry: since
//! Linux 4.10 conntrack registers its hooks in a network namespace only when a ruleset there
//! needs them (a stateful rule, NAT, Docker, kube-proxy), and `notrack` rules exempt traffic.
//! A host with the module loaded and nothing tracking keeps `nf_conntrack_count` at 0 through
//! any number of connections. So when the table would be too small for the plan (the only
//! case where it matters), preflight **probes**: it reads `nf_conntrack_count`, holds
//! [`PROBE_CONNECTIONS`] TCP connections to the plan's first target (from its first source
//! address of that family; for the embedded gateway or the gateway role, to a listener of its
//! own on loopback), reads the count again, and closes them with a reset (no `TIME_WAIT`
//! left behind).
//!
//! - The count rose by at least half the connections: **tracked** — a table smaller than the
//!   plan fails, as before.
//! - It did not: **loaded, not tracking this traffic** — a pass, with the numbers as a note.
//! - The probe could not connect: it cannot tell, and the table is treated as tracking.
//!
//! The probe reads the count under the same `/proc` root as the other facts, so tests drive
//! it with a fake tree whose count a test listener raises.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::capacity::{CONNTRACK_CHAIN, conntrack_buckets_needed};
use super::tcp::{finding, not_visible, tune_fix};
use super::{Finding, HostFacts, Needs, Status};
use crate::plan::Plan;
use crate::system::host::SysctlAccess;
use crate::system::human::count;
use crate::system::settings::Role;
use crate::system::sysctl::read_sysctl_at;
use crate::system::tune;

/// Connections the probe holds while it watches `nf_conntrack_count`.
pub const PROBE_CONNECTIONS: u64 = 16;
/// Longest wait for one probe connection.
pub const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest the probe watches the count rise once its connections are open.
pub const PROBE_WATCH: Duration = Duration::from_millis(300);

const COUNT: &str = "net.netfilter.nf_conntrack_count";
const MAX: &str = "net.netfilter.nf_conntrack_max";
const BUCKETS: &str = "net.netfilter.nf_conntrack_buckets";

/// What the conntrack probe saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConntrackProbe {
    /// Where the probe connected (`127.0.0.1:9000`, or its own loopback listener).
    pub target: String,
    /// Connections it held.
    pub opened: u64,
    /// `nf_conntrack_count` before they opened, and the highest reading while they were open.
    pub before: u64,
    pub during: u64,
    /// `Some(true)`: tracked; `Some(false)`: not tracked; `None`: could not tell (`error`).
    pub tracked: Option<bool>,
    pub error: Option<String>,
}

impl ConntrackProbe {
    /// `"16 connections held to 127.0.0.1:9000: nf_conntrack_count 0 -> 0"`.
    pub fn describe(&self) -> String {
        match &self.error {
            Some(e) => format!(
                "probe of {}: could not tell whether this traffic is tracked ({e})",
                self.target
            ),
            None => format!(
                "probe: {} connection{} held to {}: nf_conntrack_count {} -> {}",
                self.opened,
                if self.opened == 1 { "" } else { "s" },
                self.target,
                count(self.before),
                count(self.during)
            ),
        }
    }
}

/// Whether the conntrack findings depend on the probe: the module is loaded here and its
/// table or buckets fall short of the plan.
pub fn probe_wanted(needs: &Needs, facts: &HostFacts) -> bool {
    let Some(max) = facts.num(MAX) else {
        return false;
    };
    let needed = facts
        .num(COUNT)
        .unwrap_or(0)
        .saturating_add(needs.connections);
    let buckets_short = facts
        .num(BUCKETS)
        .is_some_and(|b| b < conntrack_buckets_needed(needs.connections));
    max < needed || buckets_short
}

fn read_count(proc_root: &Path) -> Result<u64, String> {
    let text = read_sysctl_at(proc_root, COUNT).map_err(|e| e.to_string())?;
    text.trim()
        .parse()
        .map_err(|_| format!("{COUNT} is not a number: {text:?}"))
}

/// Runs the probe for `plan` on a host playing `needs.role` (see the module docs).
pub fn probe(plan: &Plan, needs: &Needs, proc_root: &Path) -> ConntrackProbe {
    let target = (needs.role == Role::Loadgen)
        .then(|| plan.targets.first().map(|t| t.addr))
        .flatten();
    let source = |dest: &SocketAddr| {
        (needs.role == Role::Loadgen)
            .then(|| {
                plan.sources
                    .iter()
                    .copied()
                    .find(|s| s.is_ipv4() == dest.is_ipv4())
            })
            .flatten()
    };
    match target {
        Some(dest) => probe_at(dest, source(&dest), dest.to_string(), proc_root),
        None => {
            let v6 = !plan.sources.is_empty() && plan.sources.iter().all(IpAddr::is_ipv6);
            let lo: IpAddr = if v6 {
                Ipv6Addr::LOCALHOST.into()
            } else {
                Ipv4Addr::LOCALHOST.into()
            };
            let listener = match TcpListener::bind(SocketAddr::new(lo, 0)) {
                Ok(l) => l,
                Err(e) => {
                    return ConntrackProbe {
                        target: format!("a listener on {lo}"),
                        error: Some(format!("cannot listen on {lo}: {e}")),
                        ..ConntrackProbe::default()
                    };
                }
            };
            let dest = match listener.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    return ConntrackProbe {
                        target: format!("a listener on {lo}"),
                        error: Some(e.to_string()),
                        ..ConntrackProbe::default()
                    };
                }
            };
            let src = source(&dest);
            let label = format!("its own listener on {dest} (loopback)");
            let result = probe_at(dest, src, label, proc_root);
            drop(listener);
            result
        }
    }
}

/// Holds [`PROBE_CONNECTIONS`] connections from `source` to `dest` and watches the count.
pub fn probe_at(
    dest: SocketAddr,
    source: Option<IpAddr>,
    label: String,
    proc_root: &Path,
) -> ConntrackProbe {
    let mut p = ConntrackProbe {
        target: label,
        ..ConntrackProbe::default()
    };
    let before = match read_count(proc_root) {
        Ok(c) => c,
        Err(e) => {
            p.error = Some(e);
            return p;
        }
    };
    p.before = before;
    p.during = before;
    let mut held = Vec::new();
    for _ in 0..PROBE_CONNECTIONS {
        match connect(dest, source) {
            Ok(s) => held.push(s),
            Err(e) => {
                p.error = Some(format!("connect to {dest}: {e}"));
                return p;
            }
        }
    }
    p.opened = held.len() as u64;
    let threshold = p.opened.div_ceil(2);
    let deadline = Instant::now() + PROBE_WATCH;
    loop {
        if let Ok(c) = read_count(proc_root) {
            p.during = p.during.max(c);
        }
        if p.during.saturating_sub(before) >= threshold || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    p.tracked = Some(p.during.saturating_sub(before) >= threshold);
    // Dropping the sockets resets them (SO_LINGER 0): no TIME_WAIT is left behind.
    drop(held);
    p
}

fn connect(dest: SocketAddr, source: Option<IpAddr>) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(dest), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(src) = source {
        s.bind(&SocketAddr::new(src, 0).into())?;
    }
    s.connect_timeout(&dest.into(), PROBE_CONNECT_TIMEOUT)?;
    s.set_linger(Some(Duration::ZERO))?;
    Ok(s)
}

/// The conntrack table and its hash buckets, when `nf_conntrack` is loaded; with a probe in
/// `facts` that found the traffic untracked, both pass with the probe as a note.
pub fn conntrack(needs: &Needs, facts: &HostFacts) -> Vec<Finding> {
    let n = needs.connections;
    let Some(max) = facts.num(MAX) else {
        let mut f = finding(
            MAX,
            "-".to_owned(),
            "with nf_conntrack loaded (a stateful firewall, NAT, Docker, kube-proxy) every \
             connection takes a table entry"
                .to_owned(),
        );
        f.name = "conntrack".to_owned();
        f.found = if facts.initial_netns {
            "nf_conntrack not loaded: connections are not tracked".to_owned()
        } else {
            "nf_conntrack not visible here (not loaded, or not in this namespace)".to_owned()
        };
        return vec![f];
    };
    let count_now = facts.num(COUNT).unwrap_or(0);
    let needed = count_now.saturating_add(n);
    let changeable = match facts.access(MAX) {
        Some(SysctlAccess::Writable) => "writable from here".to_owned(),
        Some(other) => other.describe(),
        None => "writability unknown".to_owned(),
    };
    let mut table = finding(
        MAX,
        format!(">= {}", count(needed)),
        format!(
            "{} entries in use now + one per connection; a full table drops new connections \
             (\"nf_conntrack: table full, dropping packet\") and they time out",
            count(count_now)
        ),
    );
    table.found = format!("{} ({changeable})", count(max));
    if max < needed {
        table.status = Status::Fail;
        table.fix = tune_fix(needs, facts, MAX);
        if !matches!(facts.access(MAX), Some(SysctlAccess::Writable)) {
            table.fix.insert(
                0,
                "this namespace cannot change it: it is the node's table, set it on the node"
                    .to_owned(),
            );
        }
        table.fix.push(
            "or exempt the test traffic from tracking: nftables `notrack` in `priority raw` \
             prerouting/output chains, iptables `-t raw ... -j NOTRACK`"
                .to_owned(),
        );
    }
    let wanted = conntrack_buckets_needed(n);
    let mut buckets = finding(
        BUCKETS,
        format!(">= {}", count(wanted)),
        format!(
            "{} tracked connections over fewer buckets than that make hash chains longer than \
             {CONNTRACK_CHAIN}, and every packet walks its chain",
            count(n)
        ),
    );
    let mut out = match facts.num(BUCKETS) {
        None => vec![table, not_visible(buckets, facts, BUCKETS)],
        Some(b) => {
            buckets.found = format!(
                "{} ({})",
                count(b),
                facts
                    .access(BUCKETS)
                    .map_or_else(|| "writability unknown".to_owned(), SysctlAccess::describe)
            );
            if b < wanted {
                buckets.status = Status::Warn;
                let value = tune::file_value(needs.role, n, BUCKETS)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(wanted)
                    .max(wanted);
                buckets.fix = vec![
                    format!("initial network namespace only: sudo sysctl -w {BUCKETS}={value}"),
                    format!(
                        "persist: echo \"options nf_conntrack hashsize={value}\" | sudo tee \
                         /etc/modprobe.d/wsscale.conf"
                    ),
                ];
            }
            vec![table, buckets]
        }
    };
    if let Some(probe) = &facts.conntrack_probe {
        for f in &mut out {
            apply_probe(f, probe);
        }
    }
    out
}

/// Adds the probe's verdict to a conntrack finding: untracked traffic turns a shortfall into
/// a pass with a note; tracked traffic (or no answer) keeps it, with the numbers.
fn apply_probe(f: &mut Finding, probe: &ConntrackProbe) {
    match probe.tracked {
        Some(false) => {
            if f.status != Status::Pass {
                f.why = format!(
                    "{}; nothing tracks this traffic, so {} does not limit the run, although \
                     {} is short of the {} a tracked run would need. If a rule starts \
                     tracking it (a stateful firewall, NAT, Docker, kube-proxy), every \
                     connection takes an entry again",
                    probe.describe(),
                    f.check,
                    f.found.split(" (").next().unwrap_or_default(),
                    f.needed.trim_start_matches(">= ")
                );
                f.status = Status::Pass;
                f.fix.clear();
                f.needed = "-".to_owned();
            } else {
                f.why = format!("{}; {}", probe.describe(), f.why);
            }
            f.found = format!("{}; loaded, not tracking this traffic", f.found);
        }
        Some(true) => {
            f.found = format!("{}; tracking this traffic", f.found);
            f.why = format!("{}: this traffic is tracked; {}", probe.describe(), f.why);
        }
        None => {
            f.why = format!("{}, so it is taken as tracked; {}", probe.describe(), f.why);
        }
    }
}
