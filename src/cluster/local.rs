//! `--processes N`: the coordinator/agent machinery over loopback, with child processes this
//! process starts, watches and reaps — the way to use every core and to go past the
//! per-process descriptor limit on one host.
//!
//! - [`run_processes`] (`wsscale run --processes N`): a coordinator on `127.0.0.1:0` in this
//!   process, a random token in a 0600 temp file, and N children
//!   `wsscale agent --coordinator ws://127.0.0.1:PORT/ --token-file F --threads T`. Without
//!   `--target`, N `wsscale serve` children on one `SO_REUSEPORT` port are the gateway (one
//!   in-process gateway could not hold more than one process's descriptors either) — more
//!   than N when the kernel's uneven hash spread could push one past its descriptor limit
//!   (`system::preflight::capacity::reuseport_processes`).
//! - [`serve_processes`] (`wsscale serve --processes N`): N `serve --reuse-port` children on
//!   one `SO_REUSEPORT` port (a port another process already holds is refused unless
//!   `--reuse-port` was given to the parent too). With port 0, this process binds the port
//!   first (without listening) to learn it, and keeps it reserved while the children run.
//!
//! Children run in their own process group, so a terminal's Ctrl-C reaches only this
//! process, which then stops them in order (agents: `stop` over the control channel, so the
//! merged report is still written; gateways: SIGTERM). A [`Children`] guard kills and reaps
//! whatever is left on every exit path; should this process die hard, agents stop on their
//! own after their orphan timeout.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::TokenFile;
use super::coordinator::{ClusterError, Coordinator, CoordinatorConfig};
use crate::metrics::RunOutcome;
use crate::metrics::timeseries::ExtraSinks;
use crate::plan::{Plan, Target};
use crate::report::LiveMode;
use crate::report::prometheus::LiveMetrics;
use crate::system;
use crate::system::preflight::capacity::reuseport_processes;
use crate::system::watch::{WatchConfig, Watcher};

/// Settings of a `--processes` run besides the plan.
#[derive(Clone)]
pub struct LocalOptions {
    pub processes: usize,
    /// The `wsscale` executable to start children from (normally `current_exe()`).
    pub exe: PathBuf,
    pub live: LiveMode,
    /// Agents stop this long after losing this process (10 s by default, as for `wsscale
    /// agent`: a coordinator loop starved for a few seconds on a saturated machine must not
    /// cost the run its agents).
    pub orphan_timeout: Duration,
    /// Agents skip the preflight checks on their shares.
    pub skip_preflight: bool,
    /// The merged outcome so far, while the run goes on (`--checkpoint`).
    pub checkpoint: Option<std::sync::Arc<dyn crate::metrics::outcome::CheckpointSink>>,
    /// What to watch on the gateway's side (the gateway processes started here are added).
    pub watch: WatchConfig,
    /// Sinks fed the merged view (`--metrics-listen`, `--report-hdr`).
    pub sinks: ExtraSinks,
    /// The `--metrics-listen` metrics, for per-agent series.
    pub metrics: Option<Arc<LiveMetrics>>,
}

impl LocalOptions {
    pub fn new(processes: usize, exe: PathBuf) -> Self {
        LocalOptions {
            processes,
            exe,
            live: LiveMode::Quiet,
            orphan_timeout: Duration::from_secs(10),
            skip_preflight: false,
            checkpoint: None,
            watch: WatchConfig::default(),
            sinks: ExtraSinks::default(),
            metrics: None,
        }
    }
}

/// Child processes that are killed and reaped when dropped.
#[derive(Debug, Default)]
pub struct Children(Vec<Child>);

impl Children {
    /// Wait up to `grace` for every child to exit by itself, then SIGTERM, then SIGKILL.
    /// Returns how many exited unsuccessfully.
    pub fn finish(&mut self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        let mut failed = 0;
        for c in &mut self.0 {
            let status = loop {
                match c.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break None,
                }
            };
            match status {
                Some(s) if s.success() => {}
                Some(_) => failed += 1,
                None => {
                    terminate(c);
                    failed += 1;
                }
            }
        }
        self.0.clear();
        failed
    }

    /// Send SIGTERM to every child still running.
    pub fn signal_term(&self) {
        for c in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    /// The first child that has exited, with its status.
    pub fn exited(&mut self) -> Option<(usize, std::process::ExitStatus)> {
        self.0
            .iter_mut()
            .enumerate()
            .find_map(|(i, c)| c.try_wait().ok().flatten().map(|s| (i, s)))
    }

    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

/// SIGTERM, a short wait, then SIGKILL; always reaped.
fn terminate(c: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Start a child `wsscale` process. It gets SIGTERM when this process dies however it dies
/// (`PR_SET_PDEATHSIG`): a `wsscale run` killed with SIGKILL or by the OOM killer must not
/// leave its embedded gateway or its agents behind (agents would stop on their orphan timeout
/// anyway; a gateway would serve forever).
fn spawn(exe: &Path, args: &[OsString], stdout: Stdio) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .process_group(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the line above: then nobody would tell us.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the parent exited before the child started",
                ));
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Connections one child process can hold (client side only).
pub fn per_process_capacity() -> Result<u64, ClusterError> {
    let limits = system::raise_nofile_to_hard().map_err(ClusterError::Spawn)?;
    Ok(system::max_connections_for_fds(limits.soft))
}

/// `wsscale run --processes N`: run `plan` on N local agent processes and return the plan
/// as run (targets filled in when local gateways were started) and the merged outcome.
pub fn run_processes(
    mut plan: Plan,
    opts: &LocalOptions,
    stop: Arc<AtomicBool>,
) -> Result<(Plan, RunOutcome), ClusterError> {
    let n = opts.processes.max(1);
    let cap = per_process_capacity()?;
    let peak = plan.peak_connections();
    let needed = peak.div_ceil(cap.max(1)).max(1);
    if (n as u64) < needed {
        return Err(ClusterError::Local(format!(
            "--processes {n} can hold {} connections ({cap} per process: RLIMIT_NOFILE minus {} \
             for the process itself), but the plan needs {peak} at its peak: use --processes {needed} \
             or more",
            cap * n as u64,
            system::FD_HEADROOM
        )));
    }
    let mut gateways = Children::default();
    let mut watch = opts.watch.clone();
    if plan.targets.is_empty() {
        // SO_REUSEPORT spreads the connections by hash, not evenly: leave room for the spread
        // (1M at 19,936 per process: 53 gateway processes for 51 agents).
        let g = n.max(reuseport_processes(peak, cap).unwrap_or(needed) as usize);
        // `[embedded_gateway]` settings and the faults to inject (`--gateway-drop-all-after`,
        // … as `--drop-all-after`, …), for every gateway process.
        let extra: Vec<OsString> = (plan.embedded_gateway.serve_args().into_iter())
            .chain(plan.gateway_faults.serve_args())
            .map(Into::into)
            .collect();
        let (addr, children, _reserved) = start_gateways(
            &opts.exe,
            "127.0.0.1:0".parse().expect("literal address"),
            g,
            per_child_threads(g),
            &extra,
        )?;
        gateways = children;
        eprintln!(
            "no --target given: using {g} gateway process(es) at ws://{addr}/ (wsscale serve, \
             SO_REUSEPORT; watched: their figures are in the Gateway section)"
        );
        watch.pids.extend(gateways.pids());
        plan.targets = vec![Target::ws(addr, "/")];
    } else {
        probe(&plan)?;
    }

    let token = TokenFile::create().map_err(ClusterError::Spawn)?;
    let mut cfg = CoordinatorConfig::new(n, token.token().clone());
    cfg.live = opts.live;
    cfg.checkpoint = opts.checkpoint.clone();
    cfg.sinks = opts.sinks.clone();
    cfg.metrics = opts.metrics.clone();
    cfg.join_timeout = Duration::from_secs(30);
    cfg.orphan_timeout = opts.orphan_timeout.max(Duration::from_secs(2));
    let coordinator = Coordinator::bind("127.0.0.1:0".parse().expect("literal address"), cfg)?;
    let url = coordinator.url();
    let threads = per_child_threads_of(plan.threads, n);
    let mut agents = Children::default();
    for i in 0..n {
        let mut args: Vec<OsString> = vec![
            "agent".into(),
            "--coordinator".into(),
            url.clone().into(),
            "--token-file".into(),
            token.path().into(),
            "--threads".into(),
            threads.to_string().into(),
            "--name".into(),
            format!("process-{}", i + 1).into(),
            "--orphan-timeout".into(),
            format!("{}ms", opts.orphan_timeout.as_millis()).into(),
            "--join-timeout".into(),
            "30s".into(),
            "--quiet".into(),
        ];
        if opts.skip_preflight {
            args.push("--skip-preflight".into());
        }
        let child = spawn(&opts.exe, &args, Stdio::null()).map_err(ClusterError::Spawn)?;
        agents.0.push(child);
    }
    let watcher = if watch.is_empty() {
        None
    } else {
        Some(Watcher::start(watch).map_err(|e| ClusterError::Local(e.to_string()))?)
    };
    let mut result = coordinator.run(&plan, stop);
    if let Some(w) = watcher {
        let record = w.finish();
        if let Ok(outcome) = &mut result {
            outcome.gateway = Some(record);
            crate::metrics::gateway::attach(outcome);
        }
    }
    let failed = agents.finish(Duration::from_secs(5));
    drop(token);
    if failed > 0 && result.is_ok() {
        eprintln!("warning: {failed} agent process(es) did not exit cleanly");
    }
    gateways.signal_term();
    gateways.finish(Duration::from_secs(3));
    Ok((plan, result?))
}

/// Engine threads per child: the plan's threads spread over the children, at least 1.
fn per_child_threads_of(total: usize, n: usize) -> usize {
    (total / n.max(1)).max(1)
}

fn per_child_threads(n: usize) -> usize {
    per_child_threads_of(system::cores(), n)
}

/// One TCP connect per target; an error when none answers.
fn probe(plan: &Plan) -> Result<(), ClusterError> {
    crate::engine::probe_targets(plan)
        .map(drop)
        .map_err(|e| ClusterError::Local(e.to_string()))
}

/// A socket bound to the port (`SO_REUSEPORT`, not listening): keeps a port-0 pick reserved
/// for the children without taking any of their connections.
fn reserve_port(addr: SocketAddr) -> std::io::Result<(Socket, SocketAddr)> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    let local = s
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("not an IP socket"))?;
    Ok((s, local))
}

/// `Ok` when nothing else holds `addr` (a plain bind, without `SO_REUSEPORT`, succeeds; the
/// socket is closed again at once).
fn check_port_free(addr: SocketAddr) -> std::io::Result<()> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())
}

/// Start `n` `wsscale serve --reuse-port` children on one address and wait until each has
/// printed its `listening on` line. Returns the address, the children and the port
/// reservation (keep it alive while they run).
pub fn start_gateways(
    exe: &Path,
    listen: SocketAddr,
    n: usize,
    threads: usize,
    extra: &[OsString],
) -> Result<(SocketAddr, Children, Option<Socket>), ClusterError> {
    let (reserved, addr) = if listen.port() == 0 {
        let (s, a) = reserve_port(listen).map_err(|source| ClusterError::Bind {
            addr: listen,
            source,
        })?;
        (Some(s), a)
    } else {
        (None, listen)
    };
    let mut children = Children::default();
    let mut outputs = Vec::new();
    for _ in 0..n {
        let mut args: Vec<OsString> = vec![
            "serve".into(),
            "--listen".into(),
            addr.to_string().into(),
            "--threads".into(),
            threads.to_string().into(),
            // The children share the port with each other (and the reservation) on purpose.
            "--reuse-port".into(),
        ];
        args.extend(extra.iter().cloned());
        let mut child = spawn(exe, &args, Stdio::piped()).map_err(ClusterError::Spawn)?;
        outputs.push(child.stdout.take().expect("piped stdout"));
        children.0.push(child);
    }
    for (i, out) in outputs.into_iter().enumerate() {
        let mut line = String::new();
        let read = BufReader::new(out).read_line(&mut line);
        if !matches!(read, Ok(n) if n > 0) || !line.starts_with("listening on ") {
            return Err(ClusterError::Local(format!(
                "gateway process {} (pid {}) did not start on {addr} (see its error above)",
                i + 1,
                children.0[i].id()
            )));
        }
    }
    Ok((addr, children, reserved))
}

/// `wsscale serve --processes N`: run N gateway processes on one port until SIGINT/SIGTERM.
/// `extra` are the serve flags passed on to every child. Unless `share` (`--reuse-port`), a
/// port already in use by another process is an error rather than silently shared by the
/// children. Returns the exit code.
pub fn serve_processes(
    exe: &Path,
    listen: SocketAddr,
    share: bool,
    n: usize,
    threads: usize,
    extra: &[OsString],
    stop: Arc<AtomicBool>,
) -> Result<i32, ClusterError> {
    if !share && listen.port() != 0 {
        check_port_free(listen).map_err(|e| {
            ClusterError::Local(crate::gateway::bind_error_message(listen, false, &e))
        })?;
    }
    let threads = if threads == 0 {
        per_child_threads(n)
    } else {
        threads
    };
    let (addr, mut children, _reserved) = start_gateways(exe, listen, n, threads, extra)?;
    println!(
        "listening on ws://{addr}/ ({n} processes: {})",
        children
            .pids()
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut code = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Some((i, status)) = children.exited() {
            eprintln!(
                "gateway process {} exited ({status}); stopping the others",
                i + 1
            );
            code = 1;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    children.signal_term();
    children.finish(Duration::from_secs(5));
    Ok(code)
}
