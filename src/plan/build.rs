//! [`build_plan`]: profile + flags + defaults → validated [`Plan`].
//!
//! Precedence is flag > profile > default, value by value, with three exceptions that keep
//! the load shape unambiguous:
//!
//! - `--stage` replaces the profile's `[[stages]]` *and* its `connections/ramp/hold/ramp_down`;
//!   `-c N` does the same (then `--ramp/--hold/--ramp-down` fall back to the profile's simple
//!   shape, then to the defaults). `--ramp` etc. without `-c` adjust a profile's
//!   `connections` shape, and are an error against a profile with `[[stages]]`.
//! - Any credential flag (`--token`, `--jwt-secret`, `--jwt-secret-file`, `--jwt-key-file`)
//!   replaces the profile's whole `[auth]` table.
//! - `--target` and `--source-ip` replace the profile's lists instead of adding to them.
//!
//! `-c N` with `--ramp R --hold H --ramp-down D` becomes `[R:N, H:N, D:0]`. A zero-length stage
//! is dropped when it changes nothing: a zero hold, or a zero ramp-down at the very end (the
//! run closes everything when it ends anyway). A zero-length *ramp* is kept — in
//! [`StageClock`](super::StageClock) a zero-length stage is an instant jump, and dropping it
//! would turn the following hold into a ramp from 0. At least one stage always remains.
//!
//! Traffic (pings, heartbeats, first message, timed messages) and thresholds are merged in
//! the `traffic` submodule; progressive profiles (`steps = [...]`) are built by
//! [`build_progressive`], and [`build_plan`] refuses them (a sequence of runs is not one plan).
//!
//! Validation happens here, before any socket is opened: URLs are parsed and resolved
//! (IPv4 preferred), source-address specs expanded, header syntax checked, JWT keys parsed.
//! Errors name the flag or the profile's `file:line:col` (see [`PlanError`]).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

mod auth;
mod churn;
mod data;
mod misbehave;
mod progressive;
mod recovery;
mod session;
mod tls;
mod traffic;

pub use auth::{default_claims, parse_header, read_secret_file};
pub use data::uses_identity;
pub use progressive::{
    Progressive, ProgressiveStep, build_progressive, build_progressive_with, step_path,
};
pub use traffic::{
    HEARTBEAT_INTERVAL, MAX_MESSAGE_RATE, MESSAGE_SIZE, MIN_MESSAGE_SIZE, TRAFFIC_TIMEOUT, unescape,
};

use super::error::{Origin, PlanError};
use super::profile::{Located, Profile};
use super::redact::redact_url;
use super::{Plan, Reconnect, Stage, Target, defaults};
use crate::plan::Overrides;
use crate::plan::source_spec::parse_sources;

/// The largest stage target accepted (connection ids are 32-bit in a process).
pub const MAX_CONNECTIONS: u64 = u32::MAX as u64;

/// Largest `max_frame`: 1 GiB. A frame is buffered whole before it is handled, so the cap
/// bounds what one connection can make this process allocate.
pub const MAX_MAX_FRAME: u64 = 1 << 30;

/// Smallest `max_frame`: a control frame may carry 125 bytes.
pub const MIN_MAX_FRAME: u64 = 125;

/// Loads the profile named in `args` (if any), applies the flags and defaults, validates,
/// and resolves target host names.
pub fn build_plan(args: &Overrides) -> Result<Plan, PlanError> {
    let profile = args.profile.as_deref().map(Profile::load).transpose()?;
    build_plan_with(args, profile.as_ref())
}

/// Like [`build_plan`], with an already parsed profile (`args.profile` is ignored).
pub fn build_plan_with(args: &Overrides, profile: Option<&Profile>) -> Result<Plan, PlanError> {
    let empty = Profile::default();
    let p = profile.unwrap_or(&empty);
    if let Some(steps) = &p.steps {
        return Err(steps.origin.invalid(
            "this is a progressive profile (a sequence of runs, not one plan);              `wsscale run` runs it step by step, and programs build it with build_progressive",
        ));
    }

    let churn = churn::session(args, p)?;
    let (stages, arrival) = stages(args, p, churn.as_ref())?;

    let mut targets = Vec::new();
    if args.targets.is_empty() {
        for t in &p.targets {
            targets.push(parse_target(&t.value, &t.origin)?);
        }
    } else {
        for t in &args.targets {
            targets.push(parse_target(t, &Origin::Flag("--target"))?);
        }
    }

    let sources = sources(args, p)?;
    check_families(&targets, &sources)?;

    let (mut handshake, host_override) = auth::handshake(args, p)?;
    if let Some(host) = host_override {
        for t in &mut targets {
            t.host_header = host.clone();
        }
    }

    let threads = match pick(args.threads, "--threads", &p.threads) {
        Some(l) => at_least(l, 1, "use at least 1 engine thread")?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let max_pending = match pick(args.max_pending, "--max-pending", &p.max_pending) {
        Some(l) => at_least(l, 1, "allow at least 1 connection in flight, e.g. 1024")?,
        None => defaults::MAX_PENDING,
    };
    let connect_timeout = timeout(
        pick(
            args.connect_timeout,
            "--connect-timeout",
            &p.connect_timeout,
        ),
        defaults::CONNECT_TIMEOUT,
    )?;
    let handshake_timeout = timeout(
        pick(
            args.handshake_timeout,
            "--handshake-timeout",
            &p.handshake_timeout,
        ),
        defaults::HANDSHAKE_TIMEOUT,
    )?;
    let close_timeout = timeout(
        pick(args.close_timeout, "--close-timeout", &p.close_timeout),
        defaults::CLOSE_TIMEOUT,
    )?;
    let interval = timeout(
        pick(args.interval, "--interval", &p.interval),
        defaults::INTERVAL,
    )?;
    let close_mode = pick(args.close, "--close", &p.close)
        .map(|l| l.value)
        .unwrap_or_default();

    let max_frame = match pick(args.max_frame, "--max-frame", &p.max_frame) {
        Some(l) if l.value < MIN_MAX_FRAME => {
            return Err(l.origin.invalid(format!(
                "{} bytes is too small; control frames carry up to {MIN_MAX_FRAME} bytes (use e.g. 64KiB or 16MiB)",
                l.value
            )));
        }
        Some(l) if l.value > MAX_MAX_FRAME => {
            return Err(l.origin.invalid(format!(
                "{} bytes is too large; the largest accepted frame is 1GiB (a frame is buffered \
                 whole: use e.g. 16MiB, or at most 1GiB)",
                l.value
            )));
        }
        Some(l) => l.value,
        None => defaults::MAX_FRAME,
    };

    let reconnect = reconnect(args, p)?;
    let socket_rcvbuf = sockbuf(pick(args.rcvbuf, "--rcvbuf", &p.rcvbuf))?;
    let socket_sndbuf = sockbuf(pick(args.sndbuf, "--sndbuf", &p.sndbuf))?;
    let report_json = args
        .report_json
        .clone()
        .or_else(|| p.report_json.as_ref().map(|l| l.value.clone()));
    let report_csv = args
        .report_csv
        .clone()
        .or_else(|| p.report_csv.as_ref().map(|l| l.value.clone()));
    let checkpoint = pick(args.checkpoint, "--checkpoint", &p.checkpoint)
        .map_or(defaults::CHECKPOINT, |l| l.value);
    let report_html = args
        .report_html
        .clone()
        .or_else(|| p.report_html.as_ref().map(|l| l.value.clone()));
    let mut traffic = traffic::traffic(args, p, max_frame)?;
    let session_args = session::with_profile(args, p)?;
    session::session(&session_args, &mut targets, &mut handshake, &mut traffic)?;
    let thresholds = traffic::thresholds(args, p);
    let abort_on_fail = traffic::abort_on_fail(args, p, &thresholds)?;

    let tls = tls::tls(args, &targets)?;
    let misbehave = misbehave::misbehave(args, p)?;
    let loaded = data::data(args, p)?;
    traffic.message_burst = recovery::message_burst(args, p, traffic.message.is_some())?;
    let disruption_threshold = recovery::disruption_threshold(args, p)?;
    let gateway_faults = recovery::gateway_faults(args, p)?;

    let mut plan = Plan {
        profile: profile.map(|p| p.path.clone()),
        targets,
        stages,
        sources,
        handshake,
        threads,
        max_pending,
        connect_timeout,
        handshake_timeout,
        close_timeout,
        close_mode,
        max_frame,
        reconnect,
        interval,
        socket_rcvbuf,
        socket_sndbuf,
        report_json,
        report_csv,
        checkpoint,
        report_html,
        traffic,
        thresholds,
        abort_on_fail,
        allow_failures: args.allow_failures || p.allow_failures.as_ref().is_some_and(|l| l.value),
        tls,
        churn,
        arrival,
        embedded_gateway: super::embedded::EmbeddedGateway {
            max_connections: p.embedded_gateway.max_connections.as_ref().map(|l| l.value),
            echo_delay: p.embedded_gateway.echo_delay.as_ref().map(|l| l.value),
        },
        misbehave,
        data: None,
        identity: Default::default(),
        disruption_threshold,
        gateway_faults,
    };
    data::attach(&mut plan, loaded)?;
    Ok(plan)
}

/// The flag value if given, else the profile's.
fn pick<T: Clone>(
    cli: Option<T>,
    flag: &'static str,
    prof: &Option<Located<T>>,
) -> Option<Located<T>> {
    cli.map(|v| Located::flag(v, flag)).or_else(|| prof.clone())
}

fn at_least(l: Located<u64>, min: u64, fix: &str) -> Result<usize, PlanError> {
    if l.value < min {
        return Err(l.origin.invalid(format!("{} is too small; {fix}", l.value)));
    }
    usize::try_from(l.value).map_err(|_| l.origin.invalid(format!("{} is too large", l.value)))
}

fn timeout(l: Option<Located<Duration>>, default: Duration) -> Result<Duration, PlanError> {
    match l {
        Some(l) if l.value.is_zero() => Err(l.origin.invalid(format!(
            "must be longer than 0 (e.g. \"{}\")",
            humantime::format_duration(default)
        ))),
        Some(l) => Ok(l.value),
        None => Ok(default),
    }
}

fn sockbuf(l: Option<Located<u64>>) -> Result<Option<usize>, PlanError> {
    let Some(l) = l else { return Ok(None) };
    if l.value == 0 || l.value > i32::MAX as u64 {
        return Err(l.origin.invalid(format!(
            "{} bytes is out of range; give 1 byte to 2GiB, e.g. 4KiB (the kernel doubles it and enforces its own minimum)",
            l.value
        )));
    }
    Ok(Some(l.value as usize))
}

// ---------------------------------------------------------------------------------------
// Load shape.

fn stages(
    args: &Overrides,
    p: &Profile,
    session: Option<&super::churn::SessionSpec>,
) -> Result<(Vec<Stage>, Option<super::churn::Arrival>), PlanError> {
    let count_shape = |n: u64| -> Vec<super::churn::StageArg> {
        simple_shape(n, args, p)
            .into_iter()
            .map(Into::into)
            .collect()
    };
    let (list, origin) = if !args.stages.is_empty() {
        (args.stages.clone(), Origin::Flag("--stage"))
    } else if let Some(r) = args.arrival_rate {
        (
            churn::rate_shape(r, args, p),
            Origin::Flag("--arrival-rate"),
        )
    } else if let Some(n) = args.connections {
        (count_shape(n), Origin::Flag("--connections"))
    } else if let Some(ps) = &p.stages {
        let flag = [
            (args.ramp.is_some(), "--ramp"),
            (args.hold.is_some(), "--hold"),
            (args.ramp_down.is_some(), "--ramp-down"),
        ]
        .into_iter()
        .find_map(|(given, f)| given.then_some(f));
        if let Some(flag) = flag {
            return Err(PlanError::Conflict {
                first: flag.to_string(),
                second: format!("the [[stages]] of {}", ps.origin),
                hint: "also give -c N to replace the profile's stages, or edit the stages".into(),
            });
        }
        (ps.value.clone(), ps.origin.clone())
    } else if let (Some(r), Some(n)) = (&p.arrival_rate, &p.connections) {
        return Err(PlanError::Conflict {
            first: format!("'arrival_rate' at {}", r.origin),
            second: format!("'connections' at {}", n.origin),
            hint: "a profile gives either connections (a count to hold) or arrival_rate (new \
                   connections per second); keep one"
                .into(),
        });
    } else if let Some(r) = &p.arrival_rate {
        (churn::rate_shape(r.value, args, p), r.origin.clone())
    } else if let Some(n) = &p.connections {
        (count_shape(n.value), n.origin.clone())
    } else {
        return Err(PlanError::NoLoad);
    };

    if list.is_empty() {
        return Err(origin.invalid("no stages; give at least one, e.g. --stage 1m:10k"));
    }
    let (list, arrival) = churn::resolve(list, &origin, args, p, session)?;
    if let Some(s) = list.iter().find(|s| s.target > MAX_CONNECTIONS) {
        return Err(origin.invalid(format!(
            "a target of {} connections is more than one run can address ({MAX_CONNECTIONS}); \
             split the load over processes or agents",
            s.target
        )));
    }
    if arrival.is_none() && list.iter().all(|s| s.target == 0) {
        return Err(origin.invalid(
            "every stage target is 0, so no connection would open; give a target above 0, e.g. -c 100",
        ));
    }
    Ok((list, arrival))
}

/// `[ramp:N, hold:N, ramp_down:0]`, see the module docs for which zero-length stages drop.
fn simple_shape(n: u64, args: &Overrides, p: &Profile) -> Vec<Stage> {
    let get = |cli: Option<Duration>, prof: &Option<Located<Duration>>, default| {
        cli.or_else(|| prof.as_ref().map(|l| l.value))
            .unwrap_or(default)
    };
    let ramp = get(args.ramp, &p.ramp, defaults::RAMP);
    let hold = get(args.hold, &p.hold, defaults::HOLD);
    let ramp_down = get(args.ramp_down, &p.ramp_down, defaults::RAMP_DOWN);
    shape(n, ramp, hold, ramp_down)
}

/// The stage list for `n` connections with a ramp, hold and ramp-down (public for tests and
/// for callers that build plans programmatically).
pub fn shape(n: u64, ramp: Duration, hold: Duration, ramp_down: Duration) -> Vec<Stage> {
    let all = [
        Stage {
            duration: ramp,
            target: n,
        },
        Stage {
            duration: hold,
            target: n,
        },
        Stage {
            duration: ramp_down,
            target: 0,
        },
    ];
    let mut out: Vec<Stage> = Vec::with_capacity(3);
    let mut level = 0;
    for (i, s) in all.iter().enumerate() {
        let last = i + 1 == all.len();
        let noop = s.duration.is_zero() && (s.target == level || last);
        if !noop {
            out.push(*s);
        }
        level = s.target;
    }
    if out.is_empty() {
        out.push(all[1]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Targets and sources.

/// Parses and resolves one `ws://` / `wss://` URL. `origin` names the flag or profile key.
pub fn parse_target(s: &str, origin: &Origin) -> Result<Target, PlanError> {
    const EXAMPLE: &str =
        "(expected e.g. \"ws://127.0.0.1:8080/ws\" or \"wss://gw.example.com/socket?room=1\")";
    // Messages show the URL with its credentials hidden (see `redact`).
    let shown = redact_url(s);
    let bad = |reason: String| {
        origin.invalid(format!(
            "{shown:?} is not a usable WebSocket URL: {reason} {EXAMPLE}"
        ))
    };
    let url = url::Url::parse(s.trim()).map_err(|e| bad(e.to_string()))?;
    let tls = match url.scheme() {
        "ws" => false,
        "wss" => true,
        "http" => return Err(bad("the scheme is http; use ws://".into())),
        "https" => return Err(bad("the scheme is https; use wss://".into())),
        other => {
            return Err(bad(format!(
                "unsupported scheme {other:?}; use ws:// or wss://"
            )));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "user info in the URL is not sent; remove it and use -H 'Authorization: ...' or --token".into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(bad(
            "WebSocket URLs cannot have a #fragment; remove it".into()
        ));
    }
    let host = url
        .host()
        .ok_or_else(|| bad("the host is missing".into()))?;
    let host_str = url.host_str().unwrap_or_default().to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let host_header = match url.port() {
        Some(p) => format!("{host_str}:{p}"),
        None => host_str.clone(),
    };
    let mut path_and_query = url.path().to_string();
    if path_and_query.is_empty() {
        path_and_query.push('/');
    }
    if let Some(q) = url.query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    // The URL parser percent-encodes `{`/`}` in the path: keep `{name}` placeholders.
    let path_and_query = crate::plan::data::unescape_placeholders(&path_and_query);
    let addr = match host {
        url::Host::Ipv4(ip) => SocketAddr::new(IpAddr::V4(ip), port),
        url::Host::Ipv6(ip) => SocketAddr::new(IpAddr::V6(ip), port),
        url::Host::Domain(d) => resolve(d, port).map_err(|reason| PlanError::Resolve {
            url: s.to_string(),
            reason,
        })?,
    };
    Ok(Target {
        url: s.to_string(),
        host_header,
        path_and_query,
        addr,
        tls,
    })
}

/// First address of `host:port`, IPv4 preferred.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| "the name has no addresses".to_string())
}

fn sources(args: &Overrides, p: &Profile) -> Result<Vec<IpAddr>, PlanError> {
    let specs: Vec<Located<String>> = if args.source_ips.is_empty() {
        p.source_ips.clone()
    } else {
        args.source_ips
            .iter()
            .map(|s| Located::flag(s.clone(), "--source-ip"))
            .collect()
    };
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<String> = specs.iter().map(|l| l.value.clone()).collect();
    match parse_sources(&all) {
        Ok(v) => Ok(v),
        Err(whole) => {
            // Point at the entry that fails on its own, if one does.
            for l in &specs {
                if let Err(error) = parse_sources(std::slice::from_ref(&l.value)) {
                    return Err(PlanError::Sources {
                        origin: l.origin.clone(),
                        spec: l.value.clone(),
                        error: Box::new(error),
                    });
                }
            }
            Err(PlanError::Sources {
                origin: specs[0].origin.clone(),
                spec: all.join(", "),
                error: Box::new(whole),
            })
        }
    }
}

/// Every target needs a source address of its family, and a non-loopback target a
/// non-loopback source, or every connect would fail.
fn check_families(targets: &[Target], sources: &[IpAddr]) -> Result<(), PlanError> {
    if sources.is_empty() {
        return Ok(());
    }
    for t in targets {
        let same_family = sources.iter().filter(|s| s.is_ipv4() == t.addr.is_ipv4());
        if !t.addr.ip().is_loopback()
            && same_family.clone().count() > 0
            && same_family.clone().all(|s| s.is_loopback())
        {
            return Err(PlanError::Conflict {
                first: format!("target {} ({})", redact_url(&t.url), t.addr.ip()),
                second: "loopback source addresses (--source-ip/source_ips)".into(),
                hint: "a loopback source cannot reach another host; give this host's own addresses, e.g. --source-ip iface:eth0".into(),
            });
        }
        if !sources.iter().any(|s| s.is_ipv4() == t.addr.is_ipv4()) {
            let fam = if t.addr.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(PlanError::Conflict {
                first: format!("target {} ({})", redact_url(&t.url), t.addr.ip()),
                second: "--source-ip/source_ips".into(),
                hint: format!(
                    "no source address is {fam}; add an {fam} source address or drop the source list"
                ),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reconnect.

fn reconnect(args: &Overrides, p: &Profile) -> Result<Option<Reconnect>, PlanError> {
    if args.no_reconnect {
        return Ok(None);
    }
    let from_profile = p.reconnect.as_ref().and_then(|l| l.value);
    let on_cli = args.reconnect
        || args.reconnect_initial.is_some()
        || args.reconnect_max.is_some()
        || args.reconnect_jitter.is_some();
    let Some(mut r) = (if on_cli {
        Some(from_profile.unwrap_or_default())
    } else {
        from_profile
    }) else {
        return Ok(None);
    };
    let origin = |flag: &'static str, has: bool| {
        if has {
            Origin::Flag(flag)
        } else {
            p.reconnect
                .as_ref()
                .map_or(Origin::Flag(flag), |l| l.origin.clone())
        }
    };
    if let Some(d) = args.reconnect_initial {
        r.initial = d;
    }
    if let Some(d) = args.reconnect_max {
        r.max = d;
    }
    if let Some(j) = args.reconnect_jitter {
        r.jitter = j;
    }
    if r.initial.is_zero() {
        return Err(
            origin("--reconnect-initial", args.reconnect_initial.is_some())
                .invalid("the first back-off delay must be longer than 0, e.g. 500ms"),
        );
    }
    if r.initial > r.max {
        return Err(origin("--reconnect-max", args.reconnect_max.is_some()).invalid(format!(
            "the back-off cap ({}) is shorter than the first delay ({}); raise the cap or lower the first delay",
            humantime::format_duration(r.max),
            humantime::format_duration(r.initial)
        )));
    }
    Ok(Some(r))
}
