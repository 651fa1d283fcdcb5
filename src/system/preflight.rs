//! `wsscale preflight`: can this host carry the planned run, and if not, what exactly must
//! change?
//!
//! The flow is one direction: a [`Plan`] and a [`Role`] become [`Needs`] (pure numbers);
//! [`HostFacts::read`] takes one snapshot of the host (rlimits, capabilities, `/proc/sys`,
//! memory, kernel); the checks are pure functions of the two and return [`Finding`]s; the
//! target probes ([`reach`]) add one finding per target. A [`Report`] renders as an aligned
//! table or as JSON (`schema/preflight-v1.json`), and its exit code is 0 when nothing fails,
//! 2 otherwise (warnings alone do not fail).
//!
//! Submodules: [`capacity`] (the arithmetic, no I/O), [`facts`] (the host snapshot),
//! [`fds`] (descriptors and memory), [`ports`] (ephemeral ports, source addresses, the
//! `--processes` source split, kernel), [`held`] (ports of the range held now: in use and in
//! `TIME_WAIT`), [`spread`] (how processes share source addresses, no I/O), [`tcp`]
//! (TIME_WAIT/orphans, TCP memory, listen queues), [`conntrack`] (the table, and a probe of
//! whether this traffic is tracked), [`reach`] (DNS, TCP, WebSocket upgrade), [`render`]
//! (table and JSON).
//!
//! `wsscale run` runs [`check_system`] before it opens a socket and refuses a plan with a
//! failing finding ([`Report::refusal`]) unless `--skip-preflight`; reachability is then the
//! run's own target probe. Both read the host once ([`HostFacts::read_at`]) and, when the
//! conntrack table would be too small, probe whether this traffic is tracked
//! ([`conntrack::probe`]) — the only network traffic `check_system` makes. The `*_at`
//! variants take the `/proc` root, so tests run every check against a fake tree.
//!
//! Every limit is read from the system; nothing here assumes the numbers of a particular
//! machine.

pub mod capacity;
pub mod conntrack;
pub mod cpu;
pub mod facts;
pub mod fds;
pub mod held;
pub mod outputs;
pub mod ports;
pub mod reach;
pub mod render;
pub mod spread;
pub mod tcp;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

pub use facts::HostFacts;
pub use reach::{TargetProbe, Unresolved};

use crate::plan::{CloseMode, Plan, Stage};
use crate::system::settings::Role;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    /// `"pass"`, `"warn"`, `"fail"`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's result: what was found, what is needed and why (the arithmetic), and the
/// exact fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier for machines (`nofile`, `fs.file-max`, `ephemeral_ports`, `target`…).
    pub check: &'static str,
    /// Label for people.
    pub name: String,
    pub status: Status,
    /// Where the setting lives: `process`, `netns`, `node`, `host` or `target`.
    pub scope: &'static str,
    pub found: String,
    pub needed: String,
    /// The reasoning, with the numbers.
    pub why: String,
    /// Commands and snippets that fix it, one line each (empty when nothing is to fix).
    pub fix: Vec<String>,
}

/// What the planned run asks of this host, as numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Needs {
    pub role: Role,
    /// Peak connections (the largest stage target).
    pub connections: u64,
    /// The embedded gateway runs in this process (no target, load generator role).
    pub embedded_gateway: bool,
    /// Distinct destination `ip:port`s (1 with the embedded gateway).
    pub destinations: u64,
    /// Explicit source addresses (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
    /// Every destination is a loopback address (the embedded gateway included).
    pub loopback_only: bool,
    /// Fastest planned arrival rate, connections per second.
    pub peak_rate: f64,
    /// Connections end with a close handshake (TIME_WAIT) rather than a reset.
    pub graceful_close: bool,
    /// Load processes on this host (`--processes`, 1 by default). With more than one, each
    /// holds its share and the embedded gateway runs as separate `wsscale serve` processes;
    /// host-wide needs (ports, memory, file-max) stay those of the whole plan.
    pub processes: u64,
    /// Scheduled sends per connection per second that each get an answer (pings, timed
    /// messages, heartbeats): what holding costs in CPU (see [`cpu::steady`]).
    pub sends_per_conn_s: f64,
}

impl Needs {
    /// The needs of `plan` on a host playing `role`. For the gateway role the plan's targets
    /// are irrelevant: this host accepts the connections.
    pub fn from_plan(plan: &Plan, role: Role) -> Needs {
        let embedded_gateway = role == Role::Loadgen && plan.targets.is_empty();
        let destinations: HashSet<_> = plan.targets.iter().map(|t| t.addr).collect();
        Needs {
            role,
            connections: plan.peak_connections(),
            embedded_gateway,
            destinations: (destinations.len() as u64).max(1),
            sources: plan.sources.clone(),
            loopback_only: plan.targets.iter().all(|t| t.addr.ip().is_loopback()),
            peak_rate: peak_rate(&plan.stages),
            graceful_close: plan.close_mode == CloseMode::Graceful,
            processes: 1,
            sends_per_conn_s: sends_per_conn_s(&plan.traffic),
        }
    }
}

/// Answered sends per connection per second of a plan's schedules.
fn sends_per_conn_s(t: &crate::plan::Traffic) -> f64 {
    let per = |d: std::time::Duration| 1.0 / d.as_secs_f64().max(1e-6);
    t.ping.as_ref().map_or(0.0, |p| per(p.interval))
        + t.heartbeat.as_ref().map_or(0.0, |h| per(h.interval))
        + t.message.as_ref().map_or(0.0, |m| m.rate)
}

/// The fastest arrival rate of a stage list, connections per second (a stage shorter than a
/// second counts as one second: the engine's pending cap spreads such jumps anyway).
pub fn peak_rate(stages: &[Stage]) -> f64 {
    let mut previous = 0u64;
    let mut rate = 0f64;
    for stage in stages {
        if stage.target > previous {
            let secs = stage.duration.as_secs_f64().max(1.0);
            rate = rate.max((stage.target - previous) as f64 / secs);
        }
        previous = stage.target;
    }
    rate
}

/// The checks that do not touch the network, for `needs` on a host described by `facts`.
pub fn system_findings(needs: &Needs, facts: &HostFacts) -> Vec<Finding> {
    let mut out = vec![
        fds::nofile(needs, facts),
        fds::nr_open(needs, facts),
        fds::file_max(needs, facts),
        fds::epoll_watches(needs, facts),
    ];
    if needs.role == Role::Loadgen {
        out.push(ports::ephemeral_ports(needs, facts));
        out.push(held::ports_held(needs, facts));
        out.push(ports::source_addresses(needs));
        out.extend(ports::source_split(needs, facts));
        out.push(ports::kernel(needs, facts));
        out.push(tcp::tw_reuse(needs, facts));
        out.push(tcp::timestamps(needs, facts));
    }
    out.push(tcp::fin_timeout(needs, facts));
    out.push(tcp::max_tw_buckets(needs, facts));
    out.push(tcp::max_orphans(needs, facts));
    out.extend(conntrack::conntrack(needs, facts));
    out.push(fds::memory(needs, facts));
    if needs.role == Role::Loadgen {
        out.push(cpu::steady(needs, facts));
    }
    out.push(tcp::tcp_mem(needs, facts));
    if needs.role == Role::Gateway || needs.embedded_gateway {
        out.push(tcp::somaxconn(needs, facts));
        out.push(tcp::syn_backlog(needs, facts));
    }
    if needs.role == Role::Gateway {
        out.push(tcp::netdev_backlog(needs, facts));
        out.push(tcp::socket_buffers(needs, facts));
    }
    out
}

/// A preflight result.
#[derive(Debug, Clone)]
pub struct Report {
    pub needs: Needs,
    pub facts: HostFacts,
    pub findings: Vec<Finding>,
    /// Per-target measurements (empty when no target was probed).
    pub targets: Vec<TargetProbe>,
}

impl Report {
    /// Whether any finding failed.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.status == Status::Fail)
    }

    /// 0 when nothing fails, 2 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.failed() { 2 } else { 0 }
    }

    /// How many findings have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    /// The findings with `status`.
    pub fn with_status(&self, status: Status) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.status == status)
    }

    /// The message `wsscale run` refuses a plan with: every failing finding with its
    /// arithmetic and fix.
    pub fn refusal(&self) -> String {
        render::refusal(self)
    }
}

/// Reads the host under the `/proc` tree at `proc_root` for `needs`, probing conntrack when
/// its table would fall short ([`conntrack::probe_wanted`]).
pub fn host_facts(plan: &Plan, needs: &Needs, proc_root: &Path) -> HostFacts {
    let mut facts = HostFacts::read_at(proc_root);
    if conntrack::probe_wanted(needs, &facts) {
        facts.conntrack_probe = Some(conntrack::probe(plan, needs, proc_root));
    }
    facts
}

/// The system checks for `plan` on this host: what `wsscale run` runs before opening
/// sockets. No traffic, except the conntrack probe's few connections when the table would be
/// too small.
pub fn check_system(plan: &Plan, role: Role) -> Report {
    check_system_at(plan, role, Path::new(crate::system::sysctl::PROC))
}

/// [`check_system`] with the `/proc` tree at `proc_root`.
pub fn check_system_at(plan: &Plan, role: Role, proc_root: &Path) -> Report {
    let needs = Needs::from_plan(plan, role);
    let facts = host_facts(plan, &needs, proc_root);
    let mut findings = system_findings(&needs, &facts);
    findings.extend(outputs::report_paths(plan));
    Report {
        needs,
        facts,
        findings,
        targets: Vec::new(),
    }
}

/// The gate before a run (`wsscale run`, each `--processes` child, each agent): `Err` with
/// [`Report::refusal`] when a system check fails, else the warnings as one line each
/// (`name: found X, needed Y`).
pub fn gate(plan: &Plan, role: Role) -> Result<Vec<String>, String> {
    let checks = check_system(plan, role);
    if checks.failed() {
        return Err(checks.refusal());
    }
    Ok(checks
        .with_status(Status::Warn)
        .map(|w| format!("{}: found {}, needed {}", w.name, w.found, w.needed))
        .collect())
}

/// `wsscale preflight`: the system checks plus, for a load generator, one probe per target
/// (DNS, TCP connect, WebSocket upgrade with the plan's auth). `unresolved` lists targets
/// whose host name did not resolve when the plan was built; they count as destinations and
/// fail their DNS step.
pub fn preflight(plan: &Plan, role: Role, unresolved: &[Unresolved]) -> Report {
    preflight_needs(plan, Needs::from_plan(plan, role), unresolved)
}

/// [`preflight`] with adjusted needs (e.g. [`Needs::processes`] from `--processes`).
pub fn preflight_needs(plan: &Plan, needs: Needs, unresolved: &[Unresolved]) -> Report {
    preflight_needs_at(
        plan,
        needs,
        unresolved,
        Path::new(crate::system::sysctl::PROC),
    )
}

/// [`preflight_needs`] with the `/proc` tree at `proc_root`.
pub fn preflight_needs_at(
    plan: &Plan,
    mut needs: Needs,
    unresolved: &[Unresolved],
    proc_root: &Path,
) -> Report {
    let role = needs.role;
    if role == Role::Loadgen && !unresolved.is_empty() {
        needs.embedded_gateway = false;
        needs.destinations = plan.targets.len() as u64 + unresolved.len() as u64;
        needs.loopback_only = false;
    }
    let facts = host_facts(plan, &needs, proc_root);
    let mut findings = system_findings(&needs, &facts);
    findings.extend(outputs::report_paths(plan));
    let mut targets = Vec::new();
    if role == Role::Loadgen {
        let (target_findings, probes) = reach::check_targets(plan, unresolved);
        findings.extend(target_findings);
        targets = probes;
    }
    Report {
        needs,
        facts,
        findings,
        targets,
    }
}
