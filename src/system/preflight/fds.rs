//! Descriptor and memory checks: `RLIMIT_NOFILE` (and whether it can be raised),
//! `fs.nr_open`, `fs.file-max`, `fs.epoll.max_user_watches`, memory per connection vs what
//! is available.

use super::capacity::{
    CLIENT_BYTES_PER_CONN, GATEWAY_BYTES_PER_CONN, KERNEL_BYTES_PER_SOCKET, MEMORY_WARN_PCT,
    PROCESS_BASE_BYTES, bytes_per_conn, conns_per_process, fds_needed, processes_needed,
    reuseport_processes, round_up_pow2,
};
use super::{Finding, HostFacts, Needs, Status};
use crate::system::human::{bytes, count};
use crate::system::limits::FD_HEADROOM;
use crate::system::settings::{Role, fix_lines};
use crate::system::tune;

/// Whether the gateway's end of every connection is on this host too: the embedded gateway,
/// or a load generator whose every target is a loopback address (a gateway here, whatever it
/// is). Its sockets then count against this host's `fs.file-max`, epoll watches and memory.
pub fn gateway_here(needs: &Needs) -> bool {
    needs.embedded_gateway || (needs.role == Role::Loadgen && needs.loopback_only)
}

/// Sockets per connection on this host: 2 when the gateway runs here too.
fn sockets_per_conn(needs: &Needs) -> u64 {
    if gateway_here(needs) { 2 } else { 1 }
}

/// `wsscale serve` processes the embedded gateway runs as: 1 for a single-process run; with
/// `--processes N`, N or more — as many as keep the fullest under the descriptor limit
/// ([`reuseport_processes`]; what `run --processes` starts). 0 without the embedded gateway.
pub fn embedded_gateway_processes(needs: &Needs, facts: &HostFacts) -> u64 {
    if !needs.embedded_gateway {
        return 0;
    }
    if needs.processes <= 1 {
        return 1;
    }
    let per = facts.nofile.map_or(0, |l| conns_per_process(l.hard, false));
    reuseport_processes(needs.connections, per)
        .unwrap_or(0)
        .max(needs.processes)
}

/// Whether the embedded gateway's sockets count against the client process's descriptors.
/// Never: `wsscale run` without `--target` starts the embedded gateway as a `wsscale serve`
/// child process of its own (with `--processes`, as several), which has its own limit. Its
/// sockets still count for the host (`sockets_per_conn`: memory, `fs.file-max`).
fn gateway_in_process(_needs: &Needs) -> bool {
    false
}

/// Connections one load process holds: the plan's share per process.
fn conns_in_one_process(needs: &Needs) -> u64 {
    needs.connections.div_ceil(needs.processes.max(1))
}

/// Descriptors one process needs.
fn fds_per_process(needs: &Needs) -> u64 {
    fds_needed(conns_in_one_process(needs), gateway_in_process(needs))
}

/// A suggested value for a ceiling-type sysctl: at least `needed` rounded up, and at least
/// what `wsscale tune` recommends for the same N (so preflight and tune never disagree).
fn suggest(needs: &Needs, name: &str, needed: u64) -> u64 {
    let tuned = tune::file_value(needs.role, needs.connections, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    round_up_pow2(needed).max(tuned)
}

/// `RLIMIT_NOFILE` soft and hard vs the descriptors one process needs.
pub fn nofile(needs: &Needs, facts: &HostFacts) -> Finding {
    let n = needs.connections;
    let in_process = gateway_in_process(needs);
    let per = if in_process { 2 } else { 1 };
    let needed = fds_per_process(needs);
    let share = if needs.processes > 1 {
        format!(
            "{} connections / {} processes = {} per process",
            count(n),
            needs.processes,
            count(conns_in_one_process(needs))
        )
    } else {
        format!("{} connections", count(n))
    };
    let mut why = format!(
        "{share} x {per} descriptor{}{} + {FD_HEADROOM} for the process itself = {}",
        if per == 1 { "" } else { "s" },
        if in_process {
            " (client socket + the embedded gateway's server socket)"
        } else {
            ""
        },
        count(needed)
    );
    if needs.role == Role::Gateway {
        why.push_str(
            "; this shell's limits are what a gateway started from here inherits (a systemd \
             unit sets its own with LimitNOFILE=)",
        );
    }
    let mut finding = Finding {
        check: "nofile",
        name: "open files (RLIMIT_NOFILE)".to_owned(),
        status: Status::Pass,
        scope: "process",
        found: String::new(),
        needed: format!("{} descriptors in one process", count(needed)),
        why,
        fix: Vec::new(),
    };
    let Some(limits) = facts.nofile else {
        finding.status = Status::Warn;
        finding.found = "getrlimit(RLIMIT_NOFILE) failed".to_owned();
        return finding;
    };
    let nr_open = facts.num("fs.nr_open");
    // An infinite hard limit is capped by fs.nr_open in practice.
    let hard = if limits.hard == u64::MAX {
        nr_open.unwrap_or(u64::MAX)
    } else {
        limits.hard
    };
    finding.found = format!(
        "soft {}, hard {}; {}",
        count(limits.soft),
        count(limits.hard),
        if facts.cap_sys_resource {
            "CAP_SYS_RESOURCE"
        } else {
            "no CAP_SYS_RESOURCE"
        }
    );
    if limits.soft >= needed {
        return finding;
    }
    if hard >= needed {
        finding
            .why
            .push_str("; wsscale run raises the soft limit to the hard limit when it starts");
        return finding;
    }

    finding.status = Status::Fail;
    let per_process = conns_per_process(hard, in_process);
    // With --processes the gateway runs in its own processes: one descriptor per connection.
    let per_split = conns_per_process(hard, false);
    let target = round_up_pow2(needed);
    if facts.cap_sys_resource {
        finding.why.push_str(&format!(
            ". The hard limit {} is too low, and this process has CAP_SYS_RESOURCE, so it can be \
             raised here",
            count(limits.hard)
        ));
        finding.fix.push(format!(
            "raise it in this shell, then rerun: ulimit -Hn {target} && ulimit -n {target}"
        ));
    } else {
        finding.why.push_str(&format!(
            ". The hard limit {} cannot be raised from here: this process lacks \
             CAP_SYS_RESOURCE (CapEff bit {}), so one process holds at most {} connections",
            count(limits.hard),
            crate::system::host::CAP_SYS_RESOURCE,
            count(per_process)
        ));
    }
    match (needs.role, processes_needed(n, per_split)) {
        (Role::Loadgen, Some(p)) => finding.fix.push(format!(
            "split the load: --processes {p} ({p} processes of at most {} connections each{}), \
             or {p} hosts running wsscale agents",
            count(per_split),
            if needs.embedded_gateway {
                "; the embedded gateway runs as separate `wsscale serve` processes"
            } else {
                ""
            }
        )),
        (Role::Gateway, Some(p)) => finding.fix.push(format!(
            "spread the connections: {p} gateway processes sharing the port with SO_REUSEPORT \
             (`wsscale serve` binds that way), or {p} gateway hosts behind the load balancer"
        )),
        (_, None) => {}
    }
    if in_process && n <= per_split {
        finding.fix.push(format!(
            "or run the gateway in its own process (`wsscale serve --listen 127.0.0.1:8080`, then \
             `--target ws://127.0.0.1:8080/`): one descriptor per connection here, at most {} \
             per process",
            count(per_split)
        ));
    }
    finding.fix.push(format!(
        "or raise the hard limit where wsscale starts (root): systemd `LimitNOFILE={target}`; \
         Docker `docker run --ulimit nofile={target}:{target}`; \
         /etc/security/limits.d/90-wsscale.conf `* hard nofile {target}`"
    ));
    if nr_open.is_some_and(|v| v < target) {
        finding.fix.push(format!(
            "a hard limit above fs.nr_open = {} also needs: {}",
            count(nr_open.unwrap_or(0)),
            crate::system::settings::sysctl_w(
                "fs.nr_open",
                &suggest(needs, "fs.nr_open", needed).to_string()
            )
        ));
    }
    finding
}

/// `fs.nr_open`: the ceiling of any `RLIMIT_NOFILE`.
pub fn nr_open(needs: &Needs, facts: &HostFacts) -> Finding {
    let needed = fds_per_process(needs);
    let mut finding = Finding {
        check: "fs.nr_open",
        name: "fs.nr_open".to_owned(),
        status: Status::Pass,
        scope: "node",
        found: String::new(),
        needed: format!(">= {}", count(needed)),
        why: "no process may have an RLIMIT_NOFILE above fs.nr_open, root included".to_owned(),
        fix: Vec::new(),
    };
    let Some(value) = facts.num("fs.nr_open") else {
        finding.status = Status::Warn;
        finding.found = "not readable".to_owned();
        return finding;
    };
    finding.found = count(value);
    let hard = facts.nofile.map_or(0, |l| l.hard);
    if value >= needed {
        return finding;
    }
    if hard >= needed {
        finding
            .why
            .push_str("; the hard limit already allows the plan");
        return finding;
    }
    finding.status = Status::Fail;
    finding.why.push_str(&format!(
        "; the plan needs {} descriptors in one process",
        count(needed)
    ));
    finding.fix = fix_lines(
        "fs.nr_open",
        &suggest(needs, "fs.nr_open", needed).to_string(),
        facts.initial_netns,
    );
    finding
}

/// `fs.file-max`: open files system-wide.
pub fn file_max(needs: &Needs, facts: &HostFacts) -> Finding {
    let sockets = needs.connections.saturating_mul(sockets_per_conn(needs));
    let open_now = facts.num("fs.file-nr").unwrap_or(0);
    let why = if gateway_here(needs) {
        format!(
            "{} files open on this host now + {} connections x 2 sockets (client and gateway \
             side: the gateway runs on this host too) = {}",
            count(open_now),
            count(needs.connections),
            count(open_now.saturating_add(sockets))
        )
    } else {
        format!(
            "{} files open on this host now + {} sockets for the plan",
            count(open_now),
            count(sockets)
        )
    };
    node_minimum(
        "fs.file-max",
        open_now.saturating_add(sockets),
        why,
        "; past fs.file-max socket() and accept() fail with ENFILE",
        needs,
        facts,
    )
}

/// `fs.epoll.max_user_watches`: epoll registrations per user.
pub fn epoll_watches(needs: &Needs, facts: &HostFacts) -> Finding {
    let why = format!(
        "every socket is one epoll registration ({} per connection here), counted per user \
         over all its processes",
        sockets_per_conn(needs)
    );
    node_minimum(
        "fs.epoll.max_user_watches",
        needs.connections.saturating_mul(sockets_per_conn(needs)),
        why,
        "; past the limit epoll_ctl() fails with ENOSPC and the connection is lost",
        needs,
        facts,
    )
}

/// A node-wide sysctl that must be at least `needed`: pass, fail with `fail_note` appended to
/// `why` and the fix lines, or warn when it cannot be read.
fn node_minimum(
    name: &'static str,
    needed: u64,
    why: String,
    fail_note: &str,
    needs: &Needs,
    facts: &HostFacts,
) -> Finding {
    let mut finding = Finding {
        check: name,
        name: name.to_owned(),
        status: Status::Pass,
        scope: "node",
        found: String::new(),
        needed: format!(">= {}", count(needed)),
        why,
        fix: Vec::new(),
    };
    let Some(value) = facts.num(name) else {
        finding.status = Status::Warn;
        finding.found = "not readable".to_owned();
        return finding;
    };
    finding.found = count(value);
    if value < needed {
        finding.status = Status::Fail;
        finding.why.push_str(fail_note);
        finding.fix = fix_lines(
            name,
            &suggest(needs, name, needed).to_string(),
            facts.initial_netns,
        );
    }
    finding
}

/// Memory for N connections vs `MemAvailable` (and the memory cgroup's headroom): the
/// connections at the planning figures of [`super::capacity`], plus each wsscale process's
/// baseline ([`PROCESS_BASE_BYTES`]) for a load generator — with `--processes` there are many.
pub fn memory(needs: &Needs, facts: &HostFacts) -> Finding {
    let gateway_role = needs.role == Role::Gateway;
    let loopback_gateway = !gateway_role && !needs.embedded_gateway && gateway_here(needs);
    let mut per = bytes_per_conn(gateway_role, needs.embedded_gateway);
    if loopback_gateway {
        per += KERNEL_BYTES_PER_SOCKET;
    }
    let parts = if gateway_role {
        format!(
            "{} kernel per socket + {} gateway user space (wsscale serve's planning figure; \
             another gateway has its own)",
            bytes(KERNEL_BYTES_PER_SOCKET),
            bytes(GATEWAY_BYTES_PER_CONN)
        )
    } else if needs.embedded_gateway {
        format!(
            "2 x {} kernel (client and server socket) + {} wsscale client + {} embedded gateway",
            bytes(KERNEL_BYTES_PER_SOCKET),
            bytes(CLIENT_BYTES_PER_CONN),
            bytes(GATEWAY_BYTES_PER_CONN)
        )
    } else if loopback_gateway {
        format!(
            "2 x {} kernel (client and server socket: the target is on loopback) + {} wsscale \
             client; the gateway's own user space is not counted",
            bytes(KERNEL_BYTES_PER_SOCKET),
            bytes(CLIENT_BYTES_PER_CONN)
        )
    } else {
        format!(
            "{} kernel per socket + {} wsscale client",
            bytes(KERNEL_BYTES_PER_SOCKET),
            bytes(CLIENT_BYTES_PER_CONN)
        )
    };
    let processes = if gateway_role {
        0
    } else {
        needs.processes.max(1) + embedded_gateway_processes(needs, facts)
    };
    let base = processes.saturating_mul(PROCESS_BASE_BYTES);
    let needed = needs.connections.saturating_mul(per).saturating_add(base);
    let base_text = if processes == 0 {
        String::new()
    } else {
        format!(
            " + {processes} wsscale process{} x {} baseline",
            if processes == 1 { "" } else { "es" },
            bytes(PROCESS_BASE_BYTES)
        )
    };
    let mut finding = Finding {
        check: "memory",
        name: "memory".to_owned(),
        status: Status::Pass,
        scope: "node",
        found: String::new(),
        needed: format!("about {}", bytes(needed)),
        why: format!(
            "{} connections x ({parts}){base_text} = {}",
            count(needs.connections),
            bytes(needed)
        ),
        fix: Vec::new(),
    };
    let Some(usable) = facts.usable_memory() else {
        finding.status = Status::Warn;
        finding.found = "MemAvailable not readable".to_owned();
        return finding;
    };
    finding.found = format!("{} available", bytes(usable));
    if let Some((limit, usage)) = facts.cgroup_memory {
        finding.found.push_str(&format!(
            " (memory cgroup limit {}, {} used)",
            bytes(limit),
            bytes(usage)
        ));
    }
    let warn_at = usable / 100 * MEMORY_WARN_PCT;
    if needed <= warn_at {
        return finding;
    }
    finding.status = if needed > usable {
        Status::Fail
    } else {
        Status::Warn
    };
    let hosts = needed.div_ceil(warn_at.max(1));
    finding.why.push_str(&format!(
        "; more than {MEMORY_WARN_PCT}% of the available memory leaves the host swapping or \
         killing processes"
    ));
    finding.fix.push(format!(
        "spread the load over {hosts} hosts (wsscale agents), or use a host with at least {} \
         available",
        bytes(needed / MEMORY_WARN_PCT * 100)
    ));
    if needs.embedded_gateway {
        finding.fix.push(
            "or run the gateway elsewhere (`--target ws://HOST:PORT/`): the embedded gateway \
             doubles the kernel memory per connection here"
                .to_owned(),
        );
    }
    finding
}
