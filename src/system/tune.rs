//! `wsscale tune`: the kernel settings a host needs for N connections, next to the values it
//! has, and the means to change them (see [`apply`] for `--apply`, `--revert`, `--write`).
//!
//! [`recommendations`] is the single source of truth for the values: the shipped
//! `sysctl/loadgen.conf` and `sysctl/gateway.conf` are its output for 1,000,000 connections
//! on a host at kernel defaults (a test keeps them in step), and preflight quotes it in its
//! fixes.
//!
//! A recommendation is a [`Want`], not a fixed value, because sysctl.d files only *set*:
//! most settings are ceilings where a larger current value is fine and must not be lowered
//! (`fs.file-max` is 2^63−1 under systemd), a few are better smaller (`tcp_fin_timeout`, the
//! default socket buffer), and a few are exact (`tcp_tw_reuse = 1`). [`Want::recommend`]
//! combines a want with the current value; only settings whose value would change are shown
//! unless `--all`.
//!
//! Formulas for N connections (each rounded up to a power of two, so 1M gives the round
//! numbers of the shipped files):
//!
//! | setting | value | why |
//! |---|---|---|
//! | `fs.file-max` | ≥ 4·N | every socket is a file; room for the rest of the host |
//! | `fs.nr_open` | ≥ 2·N + 64 | ceiling of `RLIMIT_NOFILE`; 2 fds/conn with the in-process gateway |
//! | `fs.epoll.max_user_watches` | ≥ 8·N | per user, over all its processes |
//! | `ip_local_port_range` | `1024 65535` | 64,512 connections per source IP and destination |
//! | `tcp_max_tw_buckets`, `nf_conntrack_max` | ≥ 2·N | a full ramp-down plus a new run |
//! | `nf_conntrack_buckets` | ≥ 2·N / 4 | ≤ 4 entries per hash chain when full |
//! | `tcp_max_orphans` | ≥ N / 4 | a ramp-down closing a quarter of the sockets at once |
//! | `tcp_mem` | ≥ ¾·P, P, 1½·P pages, P = N rounded up | one page of queued data per socket at the pressure point |
//! | `somaxconn`, `tcp_max_syn_backlog` | ≥ 65535 | connect bursts (independent of N) |
//! | `netdev_max_backlog` | ≥ 16384 | packet bursts per CPU (independent of N) |
//! | `tcp_rmem`/`tcp_wmem` default | ≤ 16 KiB | what an idle socket may be made to hold |

pub mod apply;

use super::host::{SysctlAccess, in_initial_netns, sysctl_access};
use super::limits::FD_HEADROOM;
use super::settings::{Role, Scope, scope_of};
use super::sysctl::{normalize_value, parse_numbers, parse_port_range, read_sysctl};

/// Connections `tune` plans for when `-c` is not given: the 1M-connection class of the
/// shipped sysctl files.
pub const DEFAULT_CONNECTIONS: u64 = 1_000_000;

/// The wanted port range: all unprivileged ports (64,512 per source IP and destination).
pub const PORT_RANGE: (u16, u16) = (1024, 65535);

/// The constraint on one number of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Any value is fine; the number is what a file for a default host says.
    Keep(u64),
    /// At least this (a ceiling the run must stay under).
    AtLeast(u64),
    /// At most this (smaller is better).
    AtMost(u64),
    /// Exactly this.
    Exactly(u64),
}

impl Bound {
    fn file_value(self) -> u64 {
        match self {
            Bound::Keep(v) | Bound::AtLeast(v) | Bound::AtMost(v) | Bound::Exactly(v) => v,
        }
    }

    fn combine(self, current: u64) -> u64 {
        match self {
            Bound::Keep(_) => current,
            Bound::AtLeast(v) => current.max(v),
            Bound::AtMost(v) => current.min(v),
            Bound::Exactly(v) => v,
        }
    }
}

/// What a setting should be, for a given N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// One number per field (one field for most settings, three for `tcp_mem`/`rmem`/`wmem`).
    Fields(Vec<Bound>),
    /// A port range at least as wide as `lo..=hi`.
    PortRange { lo: u16, hi: u16 },
}

impl Want {
    /// The value a sysctl.d file for a host at kernel defaults carries.
    pub fn file_value(&self) -> String {
        match self {
            Want::Fields(bounds) => bounds
                .iter()
                .map(|b| b.file_value().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            Want::PortRange { lo, hi } => format!("{lo} {hi}"),
        }
    }

    /// The value to set given `current` (normalized text); equal to `current` when it
    /// already satisfies the want. `None` when `current` cannot be parsed.
    pub fn recommend(&self, current: &str) -> Option<String> {
        match self {
            Want::Fields(bounds) => {
                let values = parse_numbers(current)?;
                if values.len() != bounds.len() {
                    return None;
                }
                Some(
                    bounds
                        .iter()
                        .zip(values)
                        .map(|(b, v)| b.combine(v).to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }
            Want::PortRange { lo, hi } => {
                let (cur_lo, cur_hi) = parse_port_range(current).ok()?;
                let wanted = u32::from(*hi) - u32::from(*lo) + 1;
                let have = u32::from(cur_hi) - u32::from(cur_lo) + 1;
                Some(if have >= wanted {
                    normalize_value(current)
                } else {
                    format!("{lo} {hi}")
                })
            }
        }
    }

    /// Whether `value` already satisfies the want.
    pub fn satisfied_by(&self, value: &str) -> bool {
        self.recommend(value)
            .is_some_and(|r| r == normalize_value(value))
    }
}

/// One recommended setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    /// Dotted sysctl name.
    pub name: &'static str,
    pub want: Want,
    /// One line: what it does for this role.
    pub why: String,
    /// Written as a setting into sysctl.d files (false for `nf_conntrack_buckets`, which the
    /// module option sets; it appears as a comment).
    pub in_file: bool,
}

/// `n` rounded up to a power of two (saturating).
fn pow2(n: u64) -> u64 {
    n.checked_next_power_of_two().unwrap_or(u64::MAX)
}

fn at_least(v: u64) -> Want {
    Want::Fields(vec![Bound::AtLeast(v)])
}

/// The settings for `role` and `n` connections, in the order of the shipped files.
pub fn recommendations(role: Role, n: u64) -> Vec<Recommendation> {
    let n = n.max(1);
    let rec = |name: &'static str, want: Want, why: String| Recommendation {
        name,
        want,
        why,
        in_file: true,
    };
    let side = match role {
        Role::Loadgen => "outgoing",
        Role::Gateway => "accepted",
    };
    // tcp_mem pressure point: one page per connection.
    let pages = pow2(n);
    vec![
        rec(
            "fs.file-max",
            at_least(pow2(n.saturating_mul(4))),
            format!("system-wide open files: {n} {side} sockets with 4x headroom"),
        ),
        rec(
            "fs.nr_open",
            at_least(pow2(n.saturating_mul(2).saturating_add(FD_HEADROOM))),
            "ceiling of any RLIMIT_NOFILE: N sockets, 2N with the in-process gateway".to_owned(),
        ),
        rec(
            "fs.epoll.max_user_watches",
            at_least(pow2(n.saturating_mul(8))),
            "epoll registrations per user, over all its processes".to_owned(),
        ),
        rec(
            "net.ipv4.ip_local_port_range",
            Want::PortRange {
                lo: PORT_RANGE.0,
                hi: PORT_RANGE.1,
            },
            match role {
                Role::Loadgen => "64,512 connections per source IP and destination".to_owned(),
                Role::Gateway => "ports for upstream connections the gateway opens".to_owned(),
            },
        ),
        rec(
            "net.ipv4.tcp_tw_reuse",
            Want::Fields(vec![Bound::Exactly(1)]),
            "reuse TIME_WAIT 4-tuples for new outgoing connections (reconnects, reruns)".to_owned(),
        ),
        rec(
            "net.ipv4.tcp_timestamps",
            Want::Fields(vec![Bound::AtLeast(1)]),
            "TCP timestamps: required by tcp_tw_reuse and PAWS".to_owned(),
        ),
        rec(
            "net.ipv4.tcp_fin_timeout",
            Want::Fields(vec![Bound::AtMost(15)]),
            "seconds an orphan waits in FIN_WAIT_2 after a ramp-down".to_owned(),
        ),
        rec(
            "net.ipv4.tcp_max_tw_buckets",
            at_least(pow2(n.saturating_mul(2))),
            "TIME_WAIT sockets kept after a full ramp-down".to_owned(),
        ),
        rec(
            "net.ipv4.tcp_max_orphans",
            at_least(pow2(n / 4)),
            "closed-but-not-finished sockets during a ramp-down".to_owned(),
        ),
        rec(
            "net.core.somaxconn",
            at_least(65535),
            "accept-queue cap for listen() (connect bursts)".to_owned(),
        ),
        rec(
            "net.ipv4.tcp_max_syn_backlog",
            at_least(65535),
            "half-open connections queued per listener".to_owned(),
        ),
        rec(
            "net.core.netdev_max_backlog",
            at_least(16384),
            "packets queued per CPU between NIC and TCP (bursts)".to_owned(),
        ),
        rec(
            "net.netfilter.nf_conntrack_max",
            at_least(pow2(n.saturating_mul(2))),
            "conntrack entries (when nf_conntrack is loaded): one per connection".to_owned(),
        ),
        Recommendation {
            name: "net.netfilter.nf_conntrack_buckets",
            want: at_least(pow2(n.saturating_mul(2)) / 4),
            why: "conntrack hash chains: <= 4 entries per chain when the table is full".to_owned(),
            in_file: false,
        },
        rec(
            "net.ipv4.tcp_mem",
            Want::Fields(vec![
                Bound::AtLeast(pages / 4 * 3),
                Bound::AtLeast(pages),
                Bound::AtLeast(pages / 2 * 3),
            ]),
            "TCP buffer memory in pages: one page queued per socket at the pressure point"
                .to_owned(),
        ),
        rec(
            "net.ipv4.tcp_rmem",
            Want::Fields(vec![
                Bound::Keep(4096),
                Bound::AtMost(16384),
                Bound::AtLeast(6_291_456),
            ]),
            "receive buffer min/default/max: a small default for many idle sockets".to_owned(),
        ),
        rec(
            "net.ipv4.tcp_wmem",
            Want::Fields(vec![
                Bound::Keep(4096),
                Bound::AtMost(16384),
                Bound::AtLeast(4_194_304),
            ]),
            "send buffer min/default/max: a small default for many idle sockets".to_owned(),
        ),
    ]
}

/// The recommended value of `name` for `role` and `n` on a host at kernel defaults (what
/// preflight quotes in a fix).
pub fn file_value(role: Role, n: u64, name: &str) -> Option<String> {
    recommendations(role, n)
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| r.want.file_value())
}

/// Where one setting stands on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineState {
    /// The current value already satisfies the recommendation.
    Ok,
    /// It would change, and can be changed from here.
    Change,
    /// It would change, but cannot be changed from here (node-wide in a child network
    /// namespace, read-only); the reason says where to change it.
    Blocked(String),
    /// It would change, but this process may not write it (not root).
    Denied(String),
    /// Not visible from here although it matters (node-wide, child network namespace).
    Unknown(String),
    /// Not present and not needed (e.g. conntrack not loaded).
    NotApplicable(String),
}

/// One setting with its current and recommended value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub rec: Recommendation,
    /// The normalized current value; `None` when absent or unreadable.
    pub current: Option<String>,
    /// The value to set (the file value when the current one is unknown).
    pub recommended: String,
    pub state: LineState,
}

impl Line {
    /// Shown without `--all`: it would change, or it matters and cannot be seen from here.
    pub fn shown_by_default(&self) -> bool {
        !matches!(self.state, LineState::Ok | LineState::NotApplicable(_))
    }
}

/// What [`assess_with`] needs to know about one setting on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Current value (raw text), `None` when absent or unreadable.
    pub value: Option<String>,
    pub access: SysctlAccess,
}

/// Reads `name` and probes whether it can be written from here.
pub fn observe(name: &str) -> Observed {
    Observed {
        value: read_sysctl(name).ok(),
        access: sysctl_access(name),
    }
}

/// Assesses every recommendation for `role` and `n` against this host.
pub fn assess(role: Role, n: u64) -> Vec<Line> {
    assess_with(recommendations(role, n), in_initial_netns(), observe)
}

/// [`assess`] with the host facts passed in (tests use synthetic hosts).
pub fn assess_with(
    recs: Vec<Recommendation>,
    initial_netns: bool,
    observe: impl Fn(&str) -> Observed,
) -> Vec<Line> {
    recs.into_iter()
        .map(|rec| {
            let seen = observe(rec.name);
            let current = seen.value.as_deref().map(normalize_value);
            let node_elsewhere = scope_of(rec.name) == Scope::Node && !initial_netns;
            let Some(cur) = current.clone() else {
                let why = if node_elsewhere {
                    LineState::Unknown(
                        "node-wide, not visible in this network namespace: check and set it on \
                         the node"
                            .to_owned(),
                    )
                } else if rec.name.starts_with("net.netfilter.") {
                    LineState::NotApplicable(
                        "nf_conntrack is not loaded: connections are not tracked".to_owned(),
                    )
                } else {
                    LineState::NotApplicable("not present on this kernel".to_owned())
                };
                return Line {
                    recommended: rec.want.file_value(),
                    rec,
                    current: None,
                    state: why,
                };
            };
            let Some(recommended) = rec.want.recommend(&cur) else {
                return Line {
                    recommended: rec.want.file_value(),
                    state: LineState::Unknown(format!("cannot parse the current value {cur:?}")),
                    rec,
                    current,
                };
            };
            let state = if recommended == cur {
                LineState::Ok
            } else if node_elsewhere {
                LineState::Blocked(
                    "node-wide: change it on the node, not from this network namespace".to_owned(),
                )
            } else {
                match seen.access {
                    SysctlAccess::Writable => LineState::Change,
                    SysctlAccess::ReadOnly(why) => LineState::Blocked(why),
                    SysctlAccess::Denied(why) => LineState::Denied(why),
                    SysctlAccess::Absent => LineState::Unknown("vanished while reading".into()),
                }
            };
            Line {
                rec,
                current,
                recommended,
                state,
            }
        })
        .collect()
}

/// The aligned table `wsscale tune` prints.
pub fn table(role: Role, n: u64, lines: &[Line], all: bool, initial_netns: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wsscale tune: role {role}, values for {} connections{}",
        super::human::count(n),
        if initial_netns {
            ""
        } else {
            " (child network namespace: node-wide settings are only reported)"
        }
    );
    let shown: Vec<&Line> = lines
        .iter()
        .filter(|l| all || l.shown_by_default())
        .collect();
    if shown.is_empty() {
        let _ = writeln!(
            out,
            "\nevery setting already meets the recommendation (use --all to list them)"
        );
        return out;
    }
    let rows: Vec<[String; 4]> = shown
        .iter()
        .map(|l| {
            let note = match &l.state {
                LineState::Ok => "ok".to_owned(),
                LineState::Change => "change".to_owned(),
                LineState::Blocked(why)
                | LineState::Unknown(why)
                | LineState::NotApplicable(why) => why.clone(),
                LineState::Denied(why) => format!("change (needs root: {why})"),
            };
            [
                l.rec.name.to_owned(),
                l.current.clone().unwrap_or_else(|| "-".to_owned()),
                l.recommended.clone(),
                note,
            ]
        })
        .collect();
    let header = ["SETTING", "CURRENT", "RECOMMENDED", "NOTE"].map(str::to_owned);
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    out.push('\n');
    for row in std::iter::once(&header).chain(rows.iter()) {
        let _ = writeln!(
            out,
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn one_million_gives_the_round_numbers() {
        let v = |name| file_value(Role::Loadgen, 1_000_000, name).unwrap();
        assert_eq!(v("fs.file-max"), "4194304");
        assert_eq!(v("fs.nr_open"), "2097152");
        assert_eq!(v("fs.epoll.max_user_watches"), "8388608");
        assert_eq!(v("net.ipv4.tcp_max_tw_buckets"), "2097152");
        assert_eq!(v("net.ipv4.tcp_max_orphans"), "262144");
        assert_eq!(v("net.netfilter.nf_conntrack_max"), "2097152");
        assert_eq!(v("net.netfilter.nf_conntrack_buckets"), "524288");
        assert_eq!(v("net.ipv4.tcp_mem"), "786432 1048576 1572864");
    }

    #[test]
    fn bounds_combine_with_current_values() {
        let w = Want::Fields(vec![Bound::AtLeast(100)]);
        assert_eq!(w.recommend("50").unwrap(), "100");
        assert_eq!(
            w.recommend("9223372036854775807").unwrap(),
            "9223372036854775807"
        );
        assert!(w.satisfied_by("100"));
        assert!(!w.satisfied_by("99"));
        let fin = Want::Fields(vec![Bound::AtMost(15)]);
        assert_eq!(fin.recommend("60").unwrap(), "15");
        assert_eq!(fin.recommend("10").unwrap(), "10");
        let rmem = Want::Fields(vec![
            Bound::Keep(4096),
            Bound::AtMost(16384),
            Bound::AtLeast(6_291_456),
        ]);
        assert_eq!(
            rmem.recommend("4096\t131072\t33554432").unwrap(),
            "4096 16384 33554432"
        );
        assert_eq!(rmem.recommend("4096 131072").as_deref(), None);
        let ports = Want::PortRange {
            lo: 1024,
            hi: 65535,
        };
        assert_eq!(ports.recommend("32768\t60999").unwrap(), "1024 65535");
        assert_eq!(ports.recommend("1024 65535").unwrap(), "1024 65535");
        assert_eq!(ports.recommend("1000 65535").unwrap(), "1000 65535");
        assert_eq!(ports.recommend("nonsense"), None);
    }
}
