//! TCP stack checks: TIME_WAIT reuse and timestamps, FIN_WAIT_2 timeout, TIME_WAIT and
//! orphan tables, `tcp_mem`, listen queues (`somaxconn`, `tcp_max_syn_backlog`),
//! `netdev_max_backlog`, socket buffer defaults. The conntrack table is in
//! [`super::conntrack`].
//!
//! Settings that only exist in the initial network namespace (`tcp_mem`,
//! `tcp_max_orphans`, `netdev_max_backlog`) are absent inside a container: those findings
//! warn that they belong to the node and cannot be checked from here.

use super::capacity::{CLOSE_STORM_CONNECTIONS, backlog_needed, netdev_backlog_needed};
use super::{Finding, HostFacts, Needs, Status};
use crate::system::human::{bytes, count};
use crate::system::settings::{Role, Scope, fix_lines, scope_of};
use crate::system::tune;

pub(super) fn finding(check: &'static str, needed: String, why: String) -> Finding {
    Finding {
        check,
        name: check.to_owned(),
        status: Status::Pass,
        scope: scope_of(check).label(),
        found: String::new(),
        needed,
        why,
        fix: Vec::new(),
    }
}

/// The finding for a setting that is not visible here: node-wide in a child network
/// namespace (warn), or simply unreadable.
pub(super) fn not_visible(mut f: Finding, facts: &HostFacts, name: &str) -> Finding {
    f.status = Status::Warn;
    if !facts.initial_netns && scope_of(name) == Scope::Node {
        f.found = "not visible: this is a child network namespace (container)".to_owned();
        f.why.push_str(&format!(
            "; {name} belongs to the node, like tcp_mem, tcp_max_orphans, netdev_max_backlog, \
             nf_conntrack_max and fs.*: check it there"
        ));
        f.fix.push(format!(
            "on the node: `sysctl {name}` (or `wsscale preflight` / `wsscale tune` run on the node)"
        ));
    } else {
        f.found = "not readable".to_owned();
    }
    f
}

/// Fix lines that set `name` to what `wsscale tune` recommends for N, combined with the
/// current value.
pub(super) fn tune_fix(needs: &Needs, facts: &HostFacts, name: &str) -> Vec<String> {
    let rec = tune::recommendations(needs.role, needs.connections)
        .into_iter()
        .find(|r| r.name == name);
    let value = match (rec, facts.get(name)) {
        (Some(r), Some(cur)) => r.want.recommend(cur).unwrap_or_else(|| r.want.file_value()),
        (Some(r), None) => r.want.file_value(),
        (None, _) => return Vec::new(),
    };
    fix_lines(name, &value, facts.initial_netns)
}

/// A fix that sets `name` to exactly `value`.
fn fix_to(name: &str, value: u64, facts: &HostFacts) -> Vec<String> {
    fix_lines(name, &value.to_string(), facts.initial_netns)
}

/// `net.ipv4.tcp_tw_reuse` (load generator).
pub fn tw_reuse(needs: &Needs, facts: &HostFacts) -> Finding {
    let name = "net.ipv4.tcp_tw_reuse";
    let mut f = finding(
        name,
        "1 (2 is enough for loopback-only targets)".to_owned(),
        "after a ramp-down the client side holds its closed connections in TIME_WAIT for 60 s; \
         a rerun or a reconnect wave to the same destination needs those 4-tuples again, and \
         tcp_tw_reuse lets connect() take them (with tcp_timestamps on)"
            .to_owned(),
    );
    let Some(v) = facts.num(name) else {
        return not_visible(f, facts, name);
    };
    f.found = format!(
        "{v}{}",
        match v {
            0 => " (off)",
            1 => " (on)",
            2 => " (loopback only)",
            _ => "",
        }
    );
    let ok = v == 1 || (v == 2 && needs.loopback_only);
    if !ok && needs.graceful_close {
        f.status = Status::Warn;
        f.fix = fix_lines(name, "1", facts.initial_netns);
    } else if !needs.graceful_close {
        f.why
            .push_str("; with --close reset the client sends RST and keeps no TIME_WAIT");
    }
    f
}

/// `net.ipv4.tcp_timestamps` (load generator).
pub fn timestamps(_needs: &Needs, facts: &HostFacts) -> Finding {
    let name = "net.ipv4.tcp_timestamps";
    let mut f = finding(
        name,
        ">= 1".to_owned(),
        "tcp_tw_reuse only reuses a TIME_WAIT 4-tuple when timestamps prove it safe (PAWS)"
            .to_owned(),
    );
    let Some(v) = facts.num(name) else {
        return not_visible(f, facts, name);
    };
    f.found = v.to_string();
    if v == 0 {
        f.status = Status::Warn;
        f.fix = fix_lines(name, "1", facts.initial_netns);
    }
    f
}

/// `net.ipv4.tcp_fin_timeout`.
pub fn fin_timeout(needs: &Needs, facts: &HostFacts) -> Finding {
    let name = "net.ipv4.tcp_fin_timeout";
    let mut f = finding(
        name,
        "<= 30 s from 10,000 connections on".to_owned(),
        format!(
            "a socket closed by this side waits this long in FIN_WAIT_2 for a peer that never \
             finishes the close; after a ramp-down of {} connections they pin memory and orphan \
             slots that long",
            count(needs.connections)
        ),
    );
    let Some(v) = facts.num(name) else {
        return not_visible(f, facts, name);
    };
    f.found = format!("{v} s");
    if v > 30 && needs.connections >= CLOSE_STORM_CONNECTIONS {
        f.status = Status::Warn;
        f.fix = tune_fix(needs, facts, name);
    }
    f
}

/// `net.ipv4.tcp_max_tw_buckets`.
pub fn max_tw_buckets(needs: &Needs, facts: &HostFacts) -> Finding {
    let name = "net.ipv4.tcp_max_tw_buckets";
    let n = needs.connections;
    let mut f = finding(
        name,
        format!(">= {}", count(n)),
        format!(
            "a full ramp-down puts up to {} sockets in TIME_WAIT for 60 s ({}); past the limit \
             the kernel drops them early and logs \"time wait bucket table overflow\"",
            count(n),
            match needs.role {
                Role::Loadgen => "the client closes first",
                Role::Gateway => "RFC 6455: the server closes the TCP connection first",
            }
        ),
    );
    let Some(v) = facts.num(name) else {
        return not_visible(f, facts, name);
    };
    f.found = count(v);
    if needs.role == Role::Loadgen && !needs.graceful_close {
        f.why
            .push_str("; with --close reset there is no TIME_WAIT here");
    } else if v < n {
        f.status = Status::Warn;
        f.fix = tune_fix(needs, facts, name);
    }
    f
}

/// `net.ipv4.tcp_max_orphans` (node-wide).
pub fn max_orphans(needs: &Needs, facts: &HostFacts) -> Finding {
    let name = "net.ipv4.tcp_max_orphans";
    let n = needs.connections;
    let mut f = finding(
        name,
        format!(">= {}", count(n)),
        format!(
            "when the run ends, up to {} sockets are closed at once and are orphans until the \
             peer answers; past the limit the kernel resets them and logs \"too many orphaned \
             sockets\"",
            count(n)
        ),
    );
    let Some(v) = facts.num(name) else {
        return not_visible(f, facts, name);
    };
    f.found = count(v);
    if v < n {
        f.status = Status::Warn;
        f.fix = tune_fix(needs, facts, name);
    }
    f
}

/// `net.ipv4.tcp_mem` (node-wide; absent in a child network namespace).
pub fn tcp_mem(needs: &Needs, facts: &HostFacts) -> Finding {
    let name = "net.ipv4.tcp_mem";
    let n = needs.connections;
    let mut f = finding(
        name,
        format!("pressure point >= {} pages", count(n)),
        format!(
            "idle connections queue nothing, but a message to every connection at once queues \
             about one page (skb truesize) per socket: {} connections = {}; above the pressure \
             point the kernel shrinks buffers, above the third value it drops",
            count(n),
            bytes(n.saturating_mul(4096))
        ),
    );
    let Some(v) = facts.nums(name).filter(|v| v.len() == 3) else {
        return not_visible(f, facts, name);
    };
    f.found = format!(
        "{} {} {} pages (pressure at {})",
        v[0],
        v[1],
        v[2],
        bytes(v[1].saturating_mul(4096))
    );
    if v[1] < n {
        f.status = Status::Warn;
        f.fix = tune_fix(needs, facts, name);
    }
    f
}

/// `net.core.somaxconn` (gateway role, or the embedded gateway).
pub fn somaxconn(needs: &Needs, facts: &HostFacts) -> Finding {
    backlog(
        needs,
        facts,
        "net.core.somaxconn",
        "the kernel caps every listen() backlog at \
         somaxconn; when the accept queue is full the handshake's final ACK is dropped and the \
         client retries after 1 s, 3 s, ... (connect-time outliers)",
    )
}

/// `net.ipv4.tcp_max_syn_backlog` (gateway role, or the embedded gateway).
pub fn syn_backlog(needs: &Needs, facts: &HostFacts) -> Finding {
    backlog(
        needs,
        facts,
        "net.ipv4.tcp_max_syn_backlog",
        "half-open connections queue here \
         until the handshake completes; past it the kernel falls back to SYN cookies (or drops \
         SYNs without them)",
    )
}

fn backlog(needs: &Needs, facts: &HostFacts, name: &'static str, what: &str) -> Finding {
    let wanted = backlog_needed(needs.peak_rate);
    let mut f = finding(
        name,
        format!(">= {}", count(wanted)),
        format!(
            "at the plan's peak arrival rate of {} connections/s a 100 ms accept stall queues {}; \
             {what}",
            count(needs.peak_rate.round() as u64),
            count(wanted)
        ),
    );
    let Some(v) = facts.num(name) else {
        return not_visible(f, facts, name);
    };
    f.found = count(v);
    if v < wanted {
        f.status = Status::Warn;
        f.fix = fix_to(name, wanted.max(65535), facts);
    }
    f
}

/// `net.core.netdev_max_backlog` (gateway role; node-wide).
pub fn netdev_backlog(needs: &Needs, facts: &HostFacts) -> Finding {
    let name = "net.core.netdev_max_backlog";
    let wanted = netdev_backlog_needed(needs.peak_rate, facts.cores);
    let mut f = finding(
        name,
        format!(">= {}", count(wanted)),
        format!(
            "each connect brings about 3 packets (SYN, ACK, upgrade request); at {} \
             connections/s over {} cores a 100 ms softirq stall queues {} packets per core; \
             drops show in the 2nd column of /proc/net/softnet_stat",
            count(needs.peak_rate.round() as u64),
            facts.cores,
            count(wanted)
        ),
    );
    let Some(v) = facts.num(name) else {
        return not_visible(f, facts, name);
    };
    f.found = count(v);
    if v < wanted {
        f.status = Status::Warn;
        f.fix = tune_fix(needs, facts, name);
    }
    f
}

/// `tcp_rmem`/`tcp_wmem` defaults (gateway role): what idle sockets may be made to hold.
pub fn socket_buffers(needs: &Needs, facts: &HostFacts) -> Finding {
    let n = needs.connections;
    let mut f = finding(
        "net.ipv4.tcp_rmem",
        "worst case within available memory".to_owned(),
        String::new(),
    );
    f.check = "socket_buffers";
    f.name = "tcp_rmem / tcp_wmem defaults".to_owned();
    let (Some(r), Some(w)) = (
        facts.nums("net.ipv4.tcp_rmem").filter(|v| v.len() == 3),
        facts.nums("net.ipv4.tcp_wmem").filter(|v| v.len() == 3),
    ) else {
        return not_visible(f, facts, "net.ipv4.tcp_rmem");
    };
    let worst = n.saturating_mul(r[1] + w[1]);
    f.found = format!("rmem default {}, wmem default {}", bytes(r[1]), bytes(w[1]));
    f.why = format!(
        "a client that floods without reading, or a stalled one, can fill a socket's default \
         buffers: {} connections x ({} + {}) = {} worst case; idle connections use almost \
         nothing, busy sockets still autotune up to the max",
        count(n),
        bytes(r[1]),
        bytes(w[1]),
        bytes(worst)
    );
    if facts.usable_memory().is_some_and(|avail| worst > avail) {
        f.status = Status::Warn;
        f.fix = tune_fix(needs, facts, "net.ipv4.tcp_rmem");
        f.fix.extend(tune_fix(needs, facts, "net.ipv4.tcp_wmem"));
    }
    f
}
