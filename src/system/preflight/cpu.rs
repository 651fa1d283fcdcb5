//! The CPU check: what holding the plan's connections with its schedules (pings, timed
//! messages, heartbeats) costs in cores, at the planning figures of [`super::capacity`],
//! against the cores this host has.
//!
//! Memory, descriptors and ports decide how many connections fit; CPU decides whether they
//! can be *held* with their schedules. Every answered send costs the client a write, a
//! wake-up and a read, and — with the gateway on the same host — the gateway as much again,
//! plus the kernel's loopback path for both packets. On the 2-core development machine a
//! million connections with a ping every 30 s would need about 3.3 cores: the 1M runs there
//! fell behind their pings (p99 of seconds), agents went silent and connections were
//! dropped, with memory and descriptors to spare. It is an estimate from one machine's
//! figures, so it warns and never fails.

use super::capacity::{CPU_WARN_PCT, cpu_us_per_send, steady_cpu_cores};
use super::fds::gateway_here;
use super::tcp::finding;
use super::{Finding, HostFacts, Needs, Status};
use crate::system::human::count;

/// Cores needed to hold the plan's connections with their schedules vs the host's cores.
pub fn steady(needs: &Needs, facts: &HostFacts) -> Finding {
    let both = gateway_here(needs);
    let cores = steady_cpu_cores(needs.connections, needs.sends_per_conn_s, both);
    let mut f = finding(
        "cpu",
        format!("about {cores:.2} cores to hold"),
        String::new(),
    );
    f.scope = "node";
    f.found = format!(
        "{} core{}",
        facts.cores,
        if facts.cores == 1 { "" } else { "s" }
    );
    if needs.sends_per_conn_s <= 0.0 {
        f.why = "no pings, messages or heartbeats: held connections cost next to no CPU".into();
        return f;
    }
    let per_send = cpu_us_per_send(needs.sends_per_conn_s, both);
    let who = if both {
        "client, gateway and kernel all on this host"
    } else {
        "the client and its kernel share; the gateway's own CPU is elsewhere"
    };
    f.why = format!(
        "{} connections x {:.4} answered sends/s each (pings, messages, heartbeats) x ~{per_send:.0} \
         µs of CPU per send and its answer ({who}; planning figure measured on a 2-core VM) = \
         {cores:.2} cores",
        count(needs.connections),
        needs.sends_per_conn_s,
    );
    let limit = facts.cores as f64 * CPU_WARN_PCT / 100.0;
    if cores > limit {
        f.status = Status::Warn;
        f.why.push_str(&format!(
            "; more than {CPU_WARN_PCT:.0} % of the {} cores: schedules slip, pings time out and \
             connections drop while a ramp competes for the rest",
            facts.cores
        ));
        f.fix = vec![
            "spread the connections over more hosts (--processes shares this host's cores, it does not add any)".into(),
            "or send less often (a longer --ping-interval, a lower --message-rate)".into(),
        ];
        if both {
            f.fix.push("or run the gateway on another host".into());
        }
    }
    f
}
