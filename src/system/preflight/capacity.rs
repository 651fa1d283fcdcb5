//! The arithmetic of preflight, with no I/O: what N connections need, and what a host
//! offers. Every figure a finding prints comes from a function here, so the table tests in
//! `tests/preflight.rs` cover the numbers users see.
//!
//! Memory figures:
//!
//! - [`KERNEL_BYTES_PER_SOCKET`] — about 4.1 KiB per idle TCP socket: slab `TCP` 2368 B +
//!   `sock_inode_cache` ~832 B + `filp` 192 B + `dentry` 192 B + epoll item ~200 B, plus a
//!   conntrack entry ~256 B when nf_conntrack is loaded (the same figures as `sysctl/*.conf`).
//! - [`CLIENT_BYTES_PER_CONN`] — wsscale's user space per held connection. Measured ~350 B
//!   per idle connection (`bench/hold.sh`); 1 KiB is the conservative planning figure, which
//!   also covers heartbeat/latency state and partial frames.
//! - [`GATEWAY_BYTES_PER_CONN`] — the embedded gateway (`wsscale serve`): measured 4,155 B
//!   per idle connection (tokio task + 2 KiB read buffer, see `src/gateway/mod.rs`; 6,013 B
//!   with the 4 KiB buffer it had before); 6 KiB planned.
//! - [`PROCESS_BASE_BYTES`] — one wsscale process before it holds a connection (runtime,
//!   scratch buffers, histograms): measured ~6.8 MiB per agent process at 100K
//!   (`bench/hold-100k.sh`: 40.7 MiB over 6 agents before the first connect); 8 MiB planned.
//!   It matters with `--processes`, where a million connections take ~50 client and ~50
//!   gateway processes.
//!
//! Gateway processes: `SO_REUSEPORT` hands each new connection to one of the processes on the
//! port by a hash of its 4-tuple, so each of P processes gets N/P ± sqrt(N/P), not exactly
//! N/P. [`reuseport_processes`] leaves [`REUSEPORT_SIGMAS`] standard deviations of room under
//! each process's descriptor limit.

use crate::system::limits::FD_HEADROOM;

/// Kernel memory per idle TCP socket, bytes (≈ 4.1 KiB).
pub const KERNEL_BYTES_PER_SOCKET: u64 = 4198;
/// wsscale client user-space memory per connection used for planning, bytes.
pub const CLIENT_BYTES_PER_CONN: u64 = 1024;
/// Embedded gateway user-space memory per connection used for planning, bytes.
pub const GATEWAY_BYTES_PER_CONN: u64 = 6144;
/// Resident memory of one wsscale process before it holds a connection, bytes (planning
/// figure).
pub const PROCESS_BASE_BYTES: u64 = 8 << 20;
/// CPU per answered send (a ping and its pong, a message and its echo) at slow schedules,
/// µs, with client, gateway and kernel on this host: 200,000 held with a ping every 30 s
/// (11 client + 11 `wsscale serve` processes, `bench/hold-1m.sh --connections 200000`) kept
/// 0.656 of 2 cores busy for 6,667 pings/s = 98 µs each (gateway processes 51 µs, the
/// clients ~24 µs, softirq 23 µs); planned 100 µs. Measured on a 2-core VM, where a
/// loopback packet and a wake-up are expensive; a bare-metal core does more.
pub const CPU_US_PER_SEND_BOTH_ENDS: f64 = 100.0;
/// The same for the client alone (the gateway elsewhere): planned 30 µs (measured 24 µs
/// of client processes, plus its share of the kernel's receive path).
pub const CPU_US_PER_SEND_CLIENT: f64 = 30.0;
/// A connection sending faster than this many times a second batches its sends (one write
/// per 1 ms send tick) and its answers arrive in batches: [`CPU_US_PER_BATCHED_SEND`].
pub const BATCHING_SENDS_PER_S: f64 = 100.0;
/// CPU per batched send and its answer, µs (client ≈ 4.4 µs per echoed message in
/// `bench/message-cost.sh`, about as much for the gateway): planned 10 µs both ends, 5 µs
/// client alone.
pub const CPU_US_PER_BATCHED_SEND: f64 = 10.0;
/// Warn when holding the plan is estimated to keep more than this share of the cores busy,
/// percent: past it, schedules slip and pings time out while the ramp competes for CPU.
pub const CPU_WARN_PCT: f64 = 50.0;

/// CPU per answered send and its answer, µs, for a connection sending `sends_per_conn_s`
/// times a second, with the gateway on this host too (`both_ends`) or elsewhere.
pub fn cpu_us_per_send(sends_per_conn_s: f64, both_ends: bool) -> f64 {
    match (sends_per_conn_s > BATCHING_SENDS_PER_S, both_ends) {
        (false, true) => CPU_US_PER_SEND_BOTH_ENDS,
        (false, false) => CPU_US_PER_SEND_CLIENT,
        (true, true) => CPU_US_PER_BATCHED_SEND,
        (true, false) => CPU_US_PER_BATCHED_SEND / 2.0,
    }
}

/// Cores kept busy by `conns` connections each sending `sends_per_conn_s` answered sends a
/// second (see [`cpu_us_per_send`]).
pub fn steady_cpu_cores(conns: u64, sends_per_conn_s: f64, both_ends: bool) -> f64 {
    conns as f64 * sends_per_conn_s * cpu_us_per_send(sends_per_conn_s, both_ends) / 1e6
}

/// Standard deviations of room [`reuseport_processes`] leaves under each process's limit.
pub const REUSEPORT_SIGMAS: f64 = 5.0;
/// Largest share of the ephemeral-port capacity a plan should use, percent. Past it,
/// `connect()` scans a nearly full range for a free port and reconnects find ports still in
/// TIME_WAIT.
pub const PORT_UTILISATION_PCT: u64 = 90;
/// Warn when the plan's memory exceeds this share of what is available, percent.
pub const MEMORY_WARN_PCT: u64 = 80;
/// The longest accept-loop stall the listen backlog should absorb, milliseconds.
pub const ACCEPT_STALL_MS: u64 = 100;
/// Longest conntrack hash chain tolerated when all planned connections are tracked
/// (tcpkali warns below N/8 buckets).
pub const CONNTRACK_CHAIN: u64 = 8;
/// From this many connections on, close-related settings (FIN_WAIT_2 timeout) matter.
pub const CLOSE_STORM_CONNECTIONS: u64 = 10_000;

/// Descriptors one process needs for `conns` connections: one per socket, two when the
/// embedded gateway holds the server side in the same process, plus [`FD_HEADROOM`].
pub fn fds_needed(conns: u64, embedded_gateway: bool) -> u64 {
    conns
        .saturating_mul(if embedded_gateway { 2 } else { 1 })
        .saturating_add(FD_HEADROOM)
}

/// Connections one process can hold with a descriptor limit of `limit`.
pub fn conns_per_process(limit: u64, embedded_gateway: bool) -> u64 {
    let usable = limit.saturating_sub(FD_HEADROOM);
    if embedded_gateway { usable / 2 } else { usable }
}

/// Processes (or hosts) needed when each can hold `per_process`; `None` when a process can
/// hold none at all.
pub fn processes_needed(conns: u64, per_process: u64) -> Option<u64> {
    (per_process > 0).then(|| conns.div_ceil(per_process).max(1))
}

/// Processes sharing one `SO_REUSEPORT` port so that the fullest stays under `per_process`
/// connections: the kernel spreads `conns` by hash, each process gets `conns/P ± sqrt(per)`,
/// so P = ceil(conns / (per − [`REUSEPORT_SIGMAS`] × sqrt(per))), at least 1; `None` when a
/// process has no room at all. E.g. 1,000,000 with 19,936 per process: 53 (not 51).
pub fn reuseport_processes(conns: u64, per_process: u64) -> Option<u64> {
    let per = per_process as f64;
    let room = per - REUSEPORT_SIGMAS * per.sqrt();
    (room >= 1.0).then(|| ((conns as f64 / room).ceil() as u64).max(1))
}

/// Connections the ephemeral ports allow. A TCP connection is unique per (source IP, source
/// port, destination IP, destination port). With `IP_BIND_ADDRESS_NO_PORT` (or without
/// binding at all) the port is chosen at connect time per destination, so every (source,
/// destination) pair offers the whole range; without it a bound source address spends a
/// port for all destinations at `bind()`. `sources` 0 means the kernel picks the source (one
/// address).
pub fn port_capacity(sources: u64, destinations: u64, ports: u64, bind_no_port: bool) -> u64 {
    let sources = sources.max(1);
    let destinations = destinations.max(1);
    if bind_no_port {
        sources.saturating_mul(destinations).saturating_mul(ports)
    } else {
        sources.saturating_mul(ports)
    }
}

/// The most connections a plan should open against `capacity` ([`PORT_UTILISATION_PCT`]).
pub fn usable_ports(capacity: u64) -> u64 {
    capacity.saturating_mul(PORT_UTILISATION_PCT) / 100
}

/// Source addresses needed for `conns` connections to `destinations` with `ports` ports each
/// (at [`PORT_UTILISATION_PCT`]).
pub fn sources_needed(conns: u64, destinations: u64, ports: u64) -> u64 {
    let per_source = usable_ports(destinations.max(1).saturating_mul(ports)).max(1);
    conns.div_ceil(per_source).max(1)
}

/// Planned memory per connection on this host, bytes: kernel socket + wsscale client for a
/// load generator (plus a second kernel socket and the gateway with the embedded gateway);
/// kernel socket + gateway for the gateway role.
pub fn bytes_per_conn(gateway_role: bool, embedded_gateway: bool) -> u64 {
    if gateway_role {
        KERNEL_BYTES_PER_SOCKET + GATEWAY_BYTES_PER_CONN
    } else if embedded_gateway {
        2 * KERNEL_BYTES_PER_SOCKET + CLIENT_BYTES_PER_CONN + GATEWAY_BYTES_PER_CONN
    } else {
        KERNEL_BYTES_PER_SOCKET + CLIENT_BYTES_PER_CONN
    }
}

/// Listen backlog that absorbs an [`ACCEPT_STALL_MS`] stall at `rate` connections/s (at
/// least 128, the old kernel default).
pub fn backlog_needed(rate: f64) -> u64 {
    ((rate * ACCEPT_STALL_MS as f64 / 1000.0).ceil() as u64).max(128)
}

/// Per-CPU packet backlog for `rate` connections/s over `cores`: a connect brings SYN, ACK
/// and the upgrade request (3 packets) and a softirq stall of [`ACCEPT_STALL_MS`] must not
/// overflow the queue (at least the kernel default 1000).
pub fn netdev_backlog_needed(rate: f64, cores: usize) -> u64 {
    let per_core = rate * 3.0 / cores.max(1) as f64;
    ((per_core * ACCEPT_STALL_MS as f64 / 1000.0).ceil() as u64).max(1000)
}

/// Conntrack buckets below which chains exceed [`CONNTRACK_CHAIN`] entries for `conns`.
pub fn conntrack_buckets_needed(conns: u64) -> u64 {
    conns.div_ceil(CONNTRACK_CHAIN)
}

/// Whether the kernel `(major, minor)` has `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2).
pub fn has_bind_address_no_port(version: (u32, u32)) -> bool {
    version >= (4, 2)
}

/// `n` rounded up to a power of two (saturating), for suggested limits.
pub fn round_up_pow2(n: u64) -> u64 {
    n.checked_next_power_of_two().unwrap_or(u64::MAX)
}
