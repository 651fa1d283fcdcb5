//! Ports held now: the TCP sockets of this network namespace whose local port lies in the
//! ephemeral range, counted from `/proc/net/tcp` and `/proc/net/tcp6`, plus the ports
//! `net.ipv4.ip_local_reserved_ports` keeps from `connect()`.
//!
//! Why it matters: the port-range arithmetic ([`super::ports::ephemeral_ports`]) is that of a
//! host at rest. A socket that holds a port of the range takes it from the plan:
//!
//! - one whose port was bound explicitly (`bind()` with a port, a listener, `bind(addr, 0)`
//!   without `IP_BIND_ADDRESS_NO_PORT`) keeps the port from **every** later `connect()`,
//!   whatever the source address — also while it sits in `TIME_WAIT` for 60 s after its
//!   close;
//! - one whose port `connect()` picked keeps it only from its own (source, destination) pair.
//!
//! `/proc/net/tcp*` does not say which of the two a socket is, so the distinct held ports count
//! against every pair: the worst case. The finding says how many sockets are in `TIME_WAIT`
//! (free again when their timer ends, at most 60 s) and when the last of them expires, and
//! how many are in use (free only when they close). Sockets that are bound but neither
//! connected nor listening do not appear in `/proc/net/tcp*` and are not counted.
//!
//! Why not netlink `sock_diag`: `netlink-packet-sock-diag` (0.5) drops the `TIME_WAIT`
//! timer's expiry — the "until when" this check reports — and the `/proc` tables carry it.
//! They are read line by line into two 64 Ki-bit port maps, without allocating per line, so
//! 100,000 sockets take a few tens of milliseconds.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::capacity::{PORT_UTILISATION_PCT, has_bind_address_no_port, port_capacity};
use super::{Finding, HostFacts, Needs, Status};
use crate::system::human::count;

/// `TIME_WAIT` in the `st` column of `/proc/net/tcp`.
const TCP_TIME_WAIT: u8 = 0x06;
/// Clock ticks per second of the `tm->when` column (`USER_HZ`, 100 on every Linux
/// architecture).
const USER_HZ: u64 = 100;
/// How long Linux keeps a socket in `TIME_WAIT` (`TCP_TIMEWAIT_LEN`), seconds.
pub const TIME_WAIT_S: u64 = 60;

/// The ports of the ephemeral range held right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortsHeld {
    /// The range counted (`net.ipv4.ip_local_port_range`).
    pub range: (u16, u16),
    /// Sockets with a local port in the range that are not in `TIME_WAIT` (connected,
    /// connecting, closing, listening).
    pub active_sockets: u64,
    /// Sockets in `TIME_WAIT` with a local port in the range.
    pub time_wait_sockets: u64,
    /// Distinct ports of the range that are held by a socket or reserved.
    pub ports: u64,
    /// Of [`ports`](Self::ports), those held only by `TIME_WAIT` sockets: free again when
    /// the last of them expires.
    pub time_wait_ports: u64,
    /// Ports of the range listed in `net.ipv4.ip_local_reserved_ports` (`connect()` never
    /// picks them).
    pub reserved_ports: u64,
    /// Longest remaining `TIME_WAIT` timer among the range's sockets, milliseconds.
    pub time_wait_clears_in_ms: Option<u64>,
    /// When the tables were read, milliseconds since the Unix epoch.
    pub read_at_unix_ms: u64,
}

impl PortsHeld {
    /// Ports held by sockets in use (or reserved): not freed by waiting a minute.
    pub fn lasting_ports(&self) -> u64 {
        self.ports - self.time_wait_ports
    }

    /// Ports in the range.
    pub fn range_size(&self) -> u64 {
        u64::from(self.range.1) - u64::from(self.range.0) + 1
    }

    /// Ports of the range free now.
    pub fn free(&self) -> u64 {
        self.range_size().saturating_sub(self.ports)
    }

    /// `HH:MM:SS` (UTC) when the last `TIME_WAIT` socket of the range expires.
    pub fn clears_at(&self) -> Option<String> {
        let ms = self.read_at_unix_ms + self.time_wait_clears_in_ms?;
        let t = time::OffsetDateTime::from_unix_timestamp((ms.div_ceil(1000)) as i64).ok()?;
        let format = time::macros::format_description!("[hour]:[minute]:[second]");
        t.format(&format).ok()
    }
}

/// A 65,536-bit port map.
struct PortMap(Vec<u64>);

impl PortMap {
    fn new() -> Self {
        PortMap(vec![0; 1024])
    }
    fn set(&mut self, port: u16) {
        self.0[usize::from(port) / 64] |= 1 << (port % 64);
    }
    fn get(&self, port: u16) -> bool {
        self.0[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }
}

/// Running totals while scanning the tables.
pub struct Tally {
    range: (u16, u16),
    active: PortMap,
    time_wait: PortMap,
    reserved: PortMap,
    active_sockets: u64,
    time_wait_sockets: u64,
    longest_ticks: Option<u64>,
}

impl Tally {
    /// Counting for ports `range`, with `reserved` the text of
    /// `net.ipv4.ip_local_reserved_ports` (`"8080,9000-9100"`, empty for none).
    pub fn new(range: (u16, u16), reserved: &str) -> Tally {
        let mut map = PortMap::new();
        for item in reserved.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (a.trim().parse::<u16>(), b.trim().parse::<u16>()),
                None => (item.parse::<u16>(), item.parse::<u16>()),
            };
            if let (Ok(lo), Ok(hi)) = (lo, hi) {
                for p in lo.max(range.0)..=hi.min(range.1) {
                    map.set(p);
                }
            }
        }
        Tally {
            range,
            active: PortMap::new(),
            time_wait: PortMap::new(),
            reserved: map,
            active_sockets: 0,
            time_wait_sockets: 0,
            longest_ticks: None,
        }
    }

    /// Counts the sockets of one `/proc/net/tcp` or `/proc/net/tcp6` table.
    pub fn scan(&mut self, mut table: impl BufRead) -> io::Result<()> {
        let mut line = Vec::with_capacity(256);
        let mut first = true;
        loop {
            line.clear();
            if table.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            if std::mem::take(&mut first) {
                continue; // the header
            }
            self.line(&line);
        }
    }

    /// One socket line: `sl local rem st tx:rx tr:when ...`; lines that do not parse are
    /// skipped.
    fn line(&mut self, line: &[u8]) {
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let (Some(_sl), Some(local), Some(_rem), Some(st), Some(_queues), Some(timer)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return;
        };
        let Some(port) = local
            .iter()
            .rposition(|&b| b == b':')
            .and_then(|i| hex(&local[i + 1..]))
            .and_then(|p| u16::try_from(p).ok())
        else {
            return;
        };
        if port < self.range.0 || port > self.range.1 {
            return;
        }
        if hex(st) == Some(u64::from(TCP_TIME_WAIT)) {
            self.time_wait_sockets += 1;
            self.time_wait.set(port);
            let ticks = timer
                .iter()
                .position(|&b| b == b':')
                .and_then(|i| hex(&timer[i + 1..]));
            if let Some(t) = ticks {
                self.longest_ticks = Some(self.longest_ticks.map_or(t, |l| l.max(t)));
            }
        } else {
            self.active_sockets += 1;
            self.active.set(port);
        }
    }

    /// The summary, stamped `read_at_unix_ms`.
    pub fn finish(&self, read_at_unix_ms: u64) -> PortsHeld {
        let (mut ports, mut time_wait_ports, mut reserved_ports) = (0, 0, 0);
        for p in self.range.0..=self.range.1 {
            let (a, t, r) = (
                self.active.get(p),
                self.time_wait.get(p),
                self.reserved.get(p),
            );
            if a || t || r {
                ports += 1;
            }
            if t && !a && !r {
                time_wait_ports += 1;
            }
            if r {
                reserved_ports += 1;
            }
        }
        PortsHeld {
            range: self.range,
            active_sockets: self.active_sockets,
            time_wait_sockets: self.time_wait_sockets,
            ports,
            time_wait_ports,
            reserved_ports,
            time_wait_clears_in_ms: self.longest_ticks.map(|t| t.saturating_mul(1000) / USER_HZ),
            read_at_unix_ms,
        }
    }
}

fn hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &d in digits {
        v = v << 4 | u64::from((d as char).to_digit(16)?);
    }
    Some(v)
}

/// Reads `net/tcp` and `net/tcp6` under the `/proc` tree at `proc_root` for the ports of
/// `range`. A missing `tcp6` (IPv6 disabled) counts as empty; a missing `tcp` is an error.
pub fn read(proc_root: &Path, range: (u16, u16), reserved: &str) -> io::Result<PortsHeld> {
    let mut tally = Tally::new(range, reserved);
    for (name, required) in [("tcp", true), ("tcp6", false)] {
        match File::open(proc_root.join("net").join(name)) {
            Ok(f) => tally.scan(BufReader::with_capacity(64 * 1024, f))?,
            Err(e) if !required && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(tally.finish(now))
}

/// Reads the held ports for the range in `facts` (`None` when the range or the tables are
/// not readable).
pub fn read_for(proc_root: &Path, facts: &HostFacts) -> Option<PortsHeld> {
    let range = facts.port_range()?;
    let reserved = facts.get("net.ipv4.ip_local_reserved_ports").unwrap_or("");
    read(proc_root, range, reserved).ok()
}

/// Ports each (source, destination) pair must have free for `needs`: the connections at
/// [`PORT_UTILISATION_PCT`] spread over the pairs, with `ports` per pair. `(pairs, per pair)`.
fn per_pair_need(needs: &Needs, facts: &HostFacts) -> (u64, u64) {
    let explicit = needs.sources.len() as u64;
    let no_port = explicit == 0 || facts.kernel_version().is_none_or(has_bind_address_no_port);
    let pairs = port_capacity(explicit, needs.destinations, 1, no_port);
    let capacity_needed = needs
        .connections
        .saturating_mul(100)
        .div_ceil(PORT_UTILISATION_PCT);
    (pairs, capacity_needed.div_ceil(pairs.max(1)))
}

/// What the held ports mean in words: `"1,234 of 28,232 held: 1,200 in TIME_WAIT until
/// 12:03:05 UTC, 34 in use"`.
pub fn describe(held: &PortsHeld) -> String {
    let mut parts = Vec::new();
    if held.time_wait_sockets > 0 {
        let until = held
            .clears_at()
            .map_or_else(String::new, |at| format!(" until {at} UTC"));
        parts.push(format!(
            "{} in TIME_WAIT{until}",
            count(held.time_wait_sockets)
        ));
    }
    if held.active_sockets > 0 {
        parts.push(format!("{} in use", count(held.active_sockets)));
    }
    if held.reserved_ports > 0 {
        parts.push(format!("{} reserved", count(held.reserved_ports)));
    }
    format!(
        "{} of {} held{}{}",
        count(held.ports),
        count(held.range_size()),
        if parts.is_empty() { "" } else { ": " },
        parts.join(", ")
    )
}

/// The `ports_held` finding: warns when the ports held now leave a pair fewer free ports than
/// the plan needs, though the whole range would do.
pub fn ports_held(needs: &Needs, facts: &HostFacts) -> Finding {
    let mut f = Finding {
        check: "ports_held",
        name: "ports held now".to_owned(),
        status: Status::Pass,
        scope: "netns",
        found: String::new(),
        needed: String::new(),
        why: format!(
            "sockets holding ports of the range take them from the plan: one whose port was bound \
             explicitly (bind() with a port, a listener, bind() without IP_BIND_ADDRESS_NO_PORT) \
             keeps it from every connect() whatever the source address, also for the \
             {TIME_WAIT_S} s it spends in TIME_WAIT after its close; one whose port connect() \
             picked keeps it only from its own (source, destination) pair. /proc/net/tcp does \
             not tell the two apart, so every held port counts against every pair (the worst \
             case)"
        ),
        fix: Vec::new(),
    };
    let Some(held) = &facts.ports_held else {
        f.status = Status::Warn;
        f.found = "/proc/net/tcp not readable".to_owned();
        f.needed = "-".to_owned();
        return f;
    };
    let ports = held.range_size();
    let (pairs, need) = per_pair_need(needs, facts);
    f.found = describe(held);
    f.needed = format!(
        "<= {} held ({} free per pair)",
        count(ports.saturating_sub(need)),
        count(need)
    );
    f.why.push_str(&format!(
        ". {} connections at <= {PORT_UTILISATION_PCT}% use over {} (source, destination) \
         pair{} need {} free ports per pair, of the {} in {}-{}",
        count(needs.connections),
        count(pairs),
        if pairs == 1 { "" } else { "s" },
        count(need),
        count(ports),
        held.range.0,
        held.range.1
    ));
    if let Some(ms) = held.time_wait_clears_in_ms {
        f.why.push_str(&format!(
            "; the last TIME_WAIT socket of the range expires in {} s",
            ms.div_ceil(1000)
        ));
    }
    if held.ports == 0 || need > ports || need <= held.free() {
        if need > ports {
            f.needed = "-".to_owned();
            f.why
                .push_str("; the plan does not fit the whole range anyway (see ephemeral ports)");
        }
        return f;
    }
    f.status = Status::Warn;
    let free = held.free();
    f.why.push_str(&format!(
        ". Now {} ports are free per pair, not {}: about {} connections open before connect() \
         fails with EADDRNOTAVAIL; the engine then retries the full pairs with back-off and \
         opens more as ports come free",
        count(free),
        count(ports),
        count(free.saturating_mul(pairs))
    ));
    if held.time_wait_ports > 0
        && let (Some(at), Some(ms)) = (held.clears_at(), held.time_wait_clears_in_ms)
    {
        f.fix.push(format!(
            "wait until {at} UTC ({} s) for the {} ports held only by TIME_WAIT sockets, or \
             ramp over longer than that: ports freed mid-run are picked up by the engine's \
             retries",
            ms.div_ceil(1000),
            count(held.time_wait_ports)
        ));
    }
    let (lo, hi) = held.range;
    f.fix.push(format!(
        "see what holds them: ss -tanp '( sport >= :{lo} and sport <= :{hi} )' (add `state \
         time-wait` for the TIME_WAIT ones)"
    ));
    if held.lasting_ports() > 0 {
        f.fix.push(format!(
            "{} ports stay held while their sockets are open{}: close them, or widen \
             net.ipv4.ip_local_port_range",
            count(held.lasting_ports()),
            if held.reserved_ports > 0 {
                " or reserved"
            } else {
                ""
            }
        ));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:2328 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   2: 0100007F:9C41 0100007F:2328 06 00000000:00000000 03:000003E8 00000000     0        0 0 3 0000000000000000
   3: 0200007F:9C41 0100007F:2328 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:2328 0100007F:9C41 06 00000000:00000000 03:00000BB8 00000000     0        0 0 3 0000000000000000
garbage
";

    #[test]
    fn counts_sockets_and_distinct_ports_in_the_range() {
        // 0x9C40 = 40000, 0x9C41 = 40001; 0x1F90 (8080) and 0x2328 (9000) are outside.
        let mut t = Tally::new((40000, 40099), "40050-40059, 40098,8080");
        t.scan(TCP.as_bytes()).unwrap();
        let h = t.finish(0);
        assert_eq!(h.time_wait_sockets, 2);
        assert_eq!(h.active_sockets, 1);
        // 40000 (TIME_WAIT only), 40001 (TIME_WAIT and established), 11 reserved.
        assert_eq!(h.ports, 13);
        assert_eq!(h.time_wait_ports, 1);
        assert_eq!(h.reserved_ports, 11);
        assert_eq!(h.lasting_ports(), 12);
        assert_eq!(h.free(), 87);
        // 0x1770 = 6000 ticks of 10 ms; the socket outside the range (3000) is ignored.
        assert_eq!(h.time_wait_clears_in_ms, Some(60_000));
    }

    #[test]
    fn clears_at_is_the_wall_clock_time() {
        let h = PortsHeld {
            time_wait_clears_in_ms: Some(42_000),
            read_at_unix_ms: 1_700_000_000_500,
            ..PortsHeld::default()
        };
        // 1,700,000,042.5 s → rounded up to the next second.
        assert_eq!(h.clears_at().as_deref(), Some("22:14:03"));
    }
}
