//! The command line of distributed runs: `wsscale coordinator`, `wsscale agent`,
//! `wsscale report merge`, and the `run --processes / --shard / --start-at` and
//! `serve --processes` branches. Library work is in [`crate::cluster`] and
//! [`crate::report::merge`]; this is the `anyhow` edge (messages, exit codes).

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::cli::usage;
use anyhow::Context;
use clap::{Args, Subcommand};

use crate::cli::args::{RunArgs, ServeArgs};
use crate::cli::outputs::LiveOutputs;
use crate::cluster::agent::{AgentConfig, AgentError, run_agent};
use crate::cluster::allow::{AllowEntry, AllowList};
use crate::cluster::coordinator::{Coordinator, CoordinatorConfig};
use crate::cluster::link_tls::LinkTrust;
use crate::cluster::local::{LocalOptions, run_processes, serve_processes};
use crate::plan::units;
use crate::plan::{Plan, Slice};
use crate::report;
use crate::report::LiveMode;

pub const COORDINATOR_ABOUT: &str =
    "Run a plan on N agents (other hosts or processes) and merge their results";

pub const COORDINATOR_LONG: &str = "\
Wait for N agents to dial in, split the plan over them (connections in proportion to each
agent's capacity, every agent its own source addresses), start them all at one instant, merge
their snapshots exactly, and write one report with the global figures and agents[].

Takes the same PROFILE and flags as `wsscale run`. Agents dial out to --listen (they never
listen themselves) and must hold the same token (--token-file). Clocks must agree (NTP): the
start is a wall-clock instant.

Examples:
  head -c 32 /dev/urandom | base64 > token
  wsscale coordinator --listen 0.0.0.0:7070 --agents 4 --token-file token --tls-self-signed \\
      -c 200k --ramp 2m --hold 10m --target ws://10.0.0.5:8080/ws --report-json total.json
  # on each load-generator host (the fingerprint is printed by the coordinator):
  wsscale agent --coordinator wss://10.0.0.2:7070/ --tls-fingerprint AB:CD:… --token-file token \\
      --allow-target 10.0.0.5:8080

The token is proven by HMAC challenge-response both ways and never sent; with TLS on the
link (--tls-self-signed, or --tls-cert/--tls-key) the plan and its secrets are encrypted too.";

pub const AGENT_ABOUT: &str = "Join a coordinator and run its share of the load";

pub const AGENT_LONG: &str = "\
Dial out to a coordinator, authenticate with the shared token, receive a slice of the plan,
run it, and stream a snapshot every interval (counters and serialized histograms). When the
coordinator is silent for longer than --orphan-timeout, the agent closes every connection and
exits: it never keeps loading a gateway unattended.

The agent runs only plans whose targets are in its --allow-target list (default: loopback
only), and first makes the coordinator prove it holds the token (it never sends the token).

Exit codes: 0 done, 1 could not run (refused, unreachable, bad assignment), 2 bad flags,
3 orphaned, 130 interrupted.

Examples:
  wsscale agent --coordinator ws://10.0.0.2:7070/ --token-file token --source-ip iface:eth1 \\
      --allow-target 10.0.0.5:8080
  wsscale agent --coordinator wss://10.0.0.2:7070/ --tls-fingerprint AB:CD:… --token-file token \\
      --allow-target 10.0.0.0/24";

pub const REPORT_ABOUT: &str =
    "Work with JSON reports: merge shard reports, render one as HTML, compare with a baseline";

/// Exit code of an agent that stopped because its coordinator was gone.
pub const EXIT_ORPHANED: i32 = 3;

/// `--shard I/N` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl ShardSpec {
    pub fn slice(self) -> Slice {
        Slice::nth(self.index - 1, self.count)
    }
}

/// Parse `I/N` with 1 ≤ I ≤ N.
pub fn parse_shard(s: &str) -> Result<ShardSpec, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not I/N (e.g. 2/4: the second of four shards)"))?;
    let index: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("{i:?} is not a shard number"))?;
    let count: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is not a shard count"))?;
    if count == 0 || index == 0 || index > count {
        return Err(format!(
            "shard {index}/{count} does not exist: shards are numbered 1/{count} to {count}/{count} \
             (from a 0-based index such as a Kubernetes JOB_COMPLETION_INDEX, add 1)",
            count = count.max(1)
        ));
    }
    Ok(ShardSpec { index, count })
}

/// Parse an RFC 3339 UTC time (`2025-06-01T12:00:00Z`, fractions allowed).
pub fn parse_start_at(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(s.trim()).map_err(|e| {
        format!(
            "{s:?} is not an RFC 3339 UTC time ({e}); write it like 2025-06-01T12:00:00Z, e.g. \
             `date -u -d '+30 sec' +%Y-%m-%dT%H:%M:%SZ`"
        )
    })
}

fn duration(s: &str) -> Result<Duration, units::UnitError> {
    units::parse_duration(s)
}

/// Arguments of `wsscale coordinator`.
#[derive(Debug, Clone, Args)]
pub struct CoordinatorArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Address agents dial (they never listen themselves)
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:7070",
        help_heading = "Coordinator"
    )]
    pub listen: SocketAddr,

    /// Number of agents to wait for before starting
    #[arg(long, value_name = "N", help_heading = "Coordinator")]
    pub agents: usize,

    /// File holding the shared token (agents must present the same)
    #[arg(long, value_name = "FILE", help_heading = "Coordinator")]
    pub token_file: PathBuf,

    /// How long to wait for all agents to join
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = duration, help_heading = "Coordinator")]
    pub join_timeout: Duration,

    /// An agent not heard from for this long is declared lost (its last snapshot is kept)
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration, help_heading = "Coordinator")]
    pub orphan_timeout: Duration,

    /// Stop the whole run (and report it as interrupted) when an agent is lost
    #[arg(long, help_heading = "Coordinator")]
    pub abort_on_agent_loss: bool,

    /// Serve the agent link as wss:// with this PEM certificate chain (needs --tls-key).
    /// Agents check it with --tls-ca (or --tls-fingerprint)
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed",
        help_heading = "Coordinator link security"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Coordinator link security"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve the agent link as wss:// with a certificate generated at start; its SHA-256
    /// fingerprint is printed for the agents' --tls-fingerprint
    #[arg(long, help_heading = "Coordinator link security")]
    pub tls_self_signed: bool,
}

/// Arguments of `wsscale agent`.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The coordinator's URL: ws://HOST:PORT/, or wss://HOST:PORT/ when it runs with
    /// --tls-self-signed or --tls-cert
    #[arg(long, value_name = "URL")]
    pub coordinator: String,

    /// Check a wss:// coordinator's certificate against these PEM roots (e.g. the
    /// coordinator's own --tls-cert) [default: the public web roots]
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "tls_fingerprint",
        help_heading = "Link security"
    )]
    pub tls_ca: Option<PathBuf>,

    /// Accept exactly the wss:// coordinator certificate with this SHA-256 fingerprint (what
    /// `wsscale coordinator --tls-self-signed` prints; colons optional)
    #[arg(long, value_name = "SHA256", help_heading = "Link security")]
    pub tls_fingerprint: Option<String>,

    /// Where this agent lets a plan send its connections: CIDR, address or host name, each
    /// with an optional :PORT (repeatable). A plan with any target outside the list is
    /// refused before a connection opens. [default: loopback only]
    #[arg(
        long = "allow-target",
        value_name = "NET|HOST[:PORT]",
        help_heading = "Link security"
    )]
    pub allow_targets: Vec<AllowEntry>,

    /// File holding the shared token
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,

    /// This agent's own source address(es) (address, range, CIDR or iface:NAME; repeatable).
    /// [default: the coordinator's split of its --source-ip, or the kernel's choice]
    #[arg(long = "source-ip", value_name = "SPEC")]
    pub source_ips: Vec<String>,

    /// Engine threads [default: number of CPU cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Name shown by the coordinator and in the report [default: HOSTNAME:PID]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Close every connection and exit when the coordinator is silent this long
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration)]
    pub orphan_timeout: Duration,

    /// Keep dialing an unreachable coordinator this long
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = duration)]
    pub join_timeout: Duration,

    /// Do not run the preflight checks on the assignment
    #[arg(long)]
    pub skip_preflight: bool,

    /// Print only errors
    #[arg(long)]
    pub quiet: bool,

    /// Serve this agent's live Prometheus/OpenMetrics metrics at http://ADDR/metrics during
    /// its runs (port 0 picks a free port; the address is printed)
    #[arg(long, value_name = "ADDR", value_parser = crate::cli::args::parse_listen)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `wsscale report …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ReportCommand {
    /// Merge JSON reports (e.g. of --shard runs) into one, exactly: counts add up, percentiles
    /// come from the merged histograms
    Merge(MergeArgs),
    /// Render a JSON report as one self-contained HTML file with charts
    #[command(long_about = crate::cli::report::HTML_LONG)]
    Html(crate::cli::report::HtmlArgs),
    /// Compare two JSON reports (base → new, delta, %); exit 99 when a --max-regression bound
    /// is exceeded
    #[command(long_about = crate::cli::report::COMPARE_LONG)]
    Compare(crate::cli::report::CompareArgs),
}

/// Arguments of `wsscale report merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// JSON reports to merge
    #[arg(value_name = "REPORT", required = true)]
    pub reports: Vec<PathBuf>,

    /// Where to write the merged report
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,

    /// Do not print the merged summary
    #[arg(long)]
    pub quiet: bool,

    /// Without thresholds, exit 0 even when the merged runs had failures, drops, lost
    /// messages or a peak below the plan (otherwise 98)
    #[arg(long)]
    pub allow_failures: bool,
}

/// `wsscale run` with `--processes`, `--shard` or `--start-at`.
pub fn run_distributed(a: &RunArgs, plan: Plan) -> anyhow::Result<i32> {
    let stop = crate::cli::run::install_signals()?;
    if let Some(n) = a.processes {
        let (plan, outcome) = processes_to_outcome(a, plan, n, stop)?;
        return crate::cli::run::finish(&plan, &outcome);
    }
    let slice = a.shard.map_or(Slice::WHOLE, ShardSpec::slice);
    let start_at = match a.start_at {
        None => None,
        Some(t) => Some(start_instant(t)?),
    };
    if let Some(s) = a.shard {
        eprintln!(
            "shard {}/{}: {} of {} connections at the peak",
            s.index,
            s.count,
            slice.count(plan.peak_connections() as f64),
            plan.peak_connections()
        );
    }
    let (plan, outcome) = crate::cli::run::run_part_to_outcome(
        plan,
        stop,
        a.skip_preflight,
        slice,
        start_at,
        &a.watch,
        &crate::cli::outputs::LiveOutputs::from_run(a),
    )?;
    crate::cli::run::finish(&plan, &outcome)
}

/// Run `plan` over `n` local agent processes (`--processes N`; without a target, N gateway
/// processes too); returns the plan as run and the merged outcome, not yet concluded.
pub fn processes_to_outcome(
    a: &RunArgs,
    plan: Plan,
    n: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<(Plan, crate::metrics::RunOutcome)> {
    if n == 0 {
        return Err(usage("--processes 0: give at least 1"));
    }
    let exe = std::env::current_exe().context("cannot find the wsscale executable")?;
    let mut opts = LocalOptions::new(n as usize, exe);
    opts.live = LiveMode::detect();
    let started = LiveOutputs::from_run(a).start()?;
    opts.sinks = started.extra();
    opts.metrics = started.metrics.clone();
    opts.skip_preflight = a.skip_preflight;
    if let Some(t) = a.process_orphan_timeout {
        opts.orphan_timeout = t;
    }
    opts.checkpoint = crate::cli::run::checkpoint(&plan);
    crate::cli::run::check_report_paths(&plan)?;
    opts.watch = a
        .watch
        .config(plan.interval, &[])
        .map_err(crate::cli::watch::watch_error)?;
    Ok(run_processes(plan, &opts, stop)?)
}

/// The monotonic instant of a wall-clock start time; waits are announced.
fn start_instant(t: SystemTime) -> anyhow::Result<Instant> {
    let now_sys = SystemTime::now();
    let now = Instant::now();
    match t.duration_since(now_sys) {
        Ok(ahead) => {
            if ahead > Duration::from_secs(1) {
                eprintln!(
                    "waiting {:.1}s for --start-at {}",
                    ahead.as_secs_f64(),
                    humantime::format_rfc3339_millis(t)
                );
            }
            Ok(now + ahead)
        }
        Err(e) if e.duration() <= Duration::from_secs(2) => Ok(now),
        Err(e) => Err(usage(format!(
            "--start-at {} is {:.1}s in the past; give a time a little ahead so every shard can \
             start together",
            humantime::format_rfc3339_millis(t),
            e.duration().as_secs_f64()
        ))),
    }
}

/// `wsscale coordinator`.
pub fn coordinator_command(a: &CoordinatorArgs) -> anyhow::Result<i32> {
    if a.run.processes.is_some() || a.run.shard.is_some() || a.run.start_at.is_some() {
        return Err(usage(
            "--processes, --shard and --start-at are for `wsscale run`; a coordinator splits the plan over its agents itself",
        ));
    }
    if a.agents == 0 {
        return Err(usage("--agents 0: a coordinator needs at least one agent"));
    }
    let token = crate::cluster::read_token_file(&a.token_file)?;
    let plan = crate::plan::build::build_plan(&a.run.overrides())?;
    if plan.targets.is_empty() {
        return Err(usage(
            "a coordinator needs --target (agents on other hosts cannot reach an embedded gateway); \
             for a local test run `wsscale serve` and pass --target ws://HOST:PORT/",
        ));
    }
    let stop = crate::cli::run::install_signals()?;
    let mut cfg = CoordinatorConfig::new(a.agents, token);
    cfg.tls = link_tls(a)?;
    cfg.join_timeout = a.join_timeout;
    cfg.orphan_timeout = a.orphan_timeout;
    cfg.abort_on_agent_loss = a.abort_on_agent_loss;
    cfg.live = LiveMode::detect();
    cfg.verbose = true;
    cfg.checkpoint = crate::cli::run::checkpoint(&plan);
    crate::cli::run::check_report_paths(&plan)?;
    let fingerprint = cfg.tls.as_ref().map(|t| t.fingerprint.clone());
    let watch = a
        .run
        .watch
        .config(plan.interval, &[])
        .map_err(crate::cli::watch::watch_error)?;
    let started = LiveOutputs {
        role: "coordinator",
        ..LiveOutputs::from_run(&a.run)
    }
    .start()?;
    cfg.sinks = started.extra();
    cfg.metrics = started.metrics.clone();
    let coordinator = Coordinator::bind(a.listen, cfg)?;
    println!("coordinator listening on {}", coordinator.url());
    match fingerprint {
        Some(fp) => println!(
            "link: TLS; certificate SHA-256 fingerprint {fp}\n      agents: wsscale agent \
             --coordinator {} --tls-fingerprint {fp} --token-file FILE",
            coordinator.url()
        ),
        None if !a.listen.ip().is_loopback() => eprintln!(
            "warning: the agent link is plain ws:// on {}: the plan (with any tokens or keys \
             in it) crosses the network in clear. Use --tls-self-signed (agents: \
             --tls-fingerprint) or --tls-cert/--tls-key on any network you do not own.",
            a.listen
        ),
        None => {}
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    // The coordinator scrapes the gateway and polls its health (agents keep reporting their
    // own process figures); the baseline is taken before any agent connects.
    let watcher = crate::cli::watch::start(watch)?;
    let mut outcome = coordinator.run(&plan, stop)?;
    crate::cli::watch::attach(watcher, &mut outcome);
    crate::cli::run::finish(&plan, &outcome)
}

/// The coordinator's link certificate (`--tls-cert/--tls-key` or `--tls-self-signed`).
fn link_tls(a: &CoordinatorArgs) -> anyhow::Result<Option<crate::gateway::tls::ServerTls>> {
    let files = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ if a.tls_self_signed => None,
        _ => return Ok(None),
    };
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".into(),
        "::1".into(),
        crate::cluster::hostname(),
    ];
    if !a.listen.ip().is_unspecified() {
        names.push(a.listen.ip().to_string());
    }
    let tls = crate::cluster::link_tls::server_tls(files, &names)
        .context("cannot set up TLS on the agent link")?;
    Ok(Some(tls))
}

/// `wsscale agent`.
pub fn agent_command(a: &AgentArgs) -> anyhow::Result<i32> {
    let token = crate::cluster::read_token_file(&a.token_file)?;
    let sources: Vec<IpAddr> =
        crate::plan::source_spec::parse_sources(&a.source_ips).context("bad --source-ip")?;
    let stop = crate::cli::run::install_signals()?;
    let mut cfg = AgentConfig::new(a.coordinator.clone(), token);
    cfg.trust = match (&a.tls_ca, &a.tls_fingerprint) {
        (Some(ca), _) => LinkTrust::Ca(ca.clone()),
        (None, Some(fp)) => {
            crate::cluster::link_tls::parse_fingerprint(fp).map_err(|e| usage(e.to_string()))?;
            LinkTrust::Fingerprint(fp.clone())
        }
        (None, None) => LinkTrust::WebRoots,
    };
    cfg.allow = AllowList::new(a.allow_targets.clone());
    cfg.name = a.name.clone();
    cfg.sources = sources;
    cfg.threads = a.threads;
    cfg.orphan_timeout = a.orphan_timeout;
    cfg.join_timeout = a.join_timeout;
    cfg.verbose = !a.quiet;
    cfg.preflight = !a.skip_preflight;
    let started = LiveOutputs {
        metrics_listen: a.metrics_listen,
        report_hdr: None,
        role: "agent",
    }
    .start()?;
    cfg.sinks = started.extra();
    match run_agent(&cfg, stop) {
        Ok(run) => {
            if !a.quiet {
                let c = &run.outcome.totals.counters;
                eprintln!(
                    "agent {}: done: {} attempted, {} established, {} failed, {} dropped, peak {} open",
                    run.agent_id,
                    c.attempted,
                    c.established,
                    c.failed,
                    c.dropped,
                    run.outcome.peak_open
                );
            }
            Ok(if run.outcome.interrupted {
                crate::cli::run::EXIT_INTERRUPTED
            } else {
                0
            })
        }
        Err(e @ AgentError::Orphaned(_)) => {
            eprintln!("error: {e}");
            Ok(EXIT_ORPHANED)
        }
        Err(AgentError::Interrupted) => Ok(crate::cli::run::EXIT_INTERRUPTED),
        Err(e @ AgentError::Link { .. }) => Err(usage(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// `wsscale report …`.
pub fn report_command(c: &ReportCommand) -> anyhow::Result<i32> {
    match c {
        ReportCommand::Merge(m) => {
            let inputs = m
                .reports
                .iter()
                .map(|p| report::merge::Input::read(p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut outcome = report::merge::merge(&inputs)?;
            outcome.verdict = Some(crate::metrics::verdict::judge(&outcome, m.allow_failures));
            if !m.quiet {
                print!("{}", report::summary_text(&outcome));
            }
            report::write_json(&m.output, &outcome)
                .with_context(|| format!("cannot write {}", m.output.display()))?;
            eprintln!(
                "merged {} report(s) into {}",
                inputs.len(),
                m.output.display()
            );
            Ok(crate::cli::finish::exit_code(&outcome))
        }
        ReportCommand::Html(a) => crate::cli::report::html_command(a),
        ReportCommand::Compare(a) => crate::cli::report::compare_command(a),
    }
}

/// `wsscale serve --processes N`.
pub fn serve_processes_command(a: &ServeArgs, n: usize) -> anyhow::Result<i32> {
    if a.tls_self_signed {
        return Err(usage(
            "--tls-self-signed with --processes would give every process its own certificate; \
             create one (e.g. `wsscale serve --tls-self-signed --tls-cert-out cert.pem` once, or \
             openssl) and pass --tls-cert/--tls-key",
        ));
    }
    let mut extra: Vec<OsString> = Vec::new();
    if let Some(s) = &a.jwt_secret {
        extra.extend(["--jwt-secret".into(), s.0.clone().into()]);
    }
    if let Some(p) = &a.jwt_secret_file {
        extra.extend(["--jwt-secret-file".into(), p.into()]);
    }
    if let Some(m) = a.max_connections {
        // SO_REUSEPORT spreads connections evenly by hash: each process takes its share.
        let per = m.div_ceil(n as u64);
        extra.extend(["--max-connections".into(), per.to_string().into()]);
    }
    if let Some(d) = a.echo_delay {
        extra.extend(["--echo-delay".into(), format!("{}us", d.as_micros()).into()]);
    }
    if let (Some(c), Some(k)) = (&a.tls_cert, &a.tls_key) {
        extra.extend(["--tls-cert".into(), c.into(), "--tls-key".into(), k.into()]);
    }
    if let Some(rate) = a.push_rate {
        // f64's Display is the shortest form that parses back to the same value.
        extra.extend(["--push-rate".into(), format!("{rate}/s").into()]);
        extra.extend(["--push-size".into(), a.push_size.to_string().into()]);
        eprintln!(
            "push: each of the {n} processes runs its own feed (its own ticks and seq numbers)"
        );
    }
    if a.compression != "none" {
        extra.extend(["--compression".into(), a.compression.clone().into()]);
    }
    // Each process runs the schedule on its own clock (they start together).
    extra.extend(a.faults.child_args());
    if a.broadcast {
        extra.push("--broadcast".into());
        eprintln!(
            "broadcast: each of the {n} processes is its own room: a message reaches the \
             connections the kernel gave to the same process, not all of them"
        );
    }
    let stop = crate::cli::run::install_signals()?;
    let exe = std::env::current_exe().context("cannot find the wsscale executable")?;
    Ok(serve_processes(
        &exe,
        a.listen,
        a.reuse_port,
        n,
        a.threads,
        &extra,
        stop,
    )?)
}
