//! Watching the gateway during a run: its processes on this host (`--watch-pid`,
//! `--watch-process`), its Prometheus endpoint (`--gateway-metrics`) and its health URL
//! (`--health-url`), sampled once per report interval on a thread of its own — never on an
//! engine shard thread — into [`GatewaySample`]s for the report (`metrics::gateway`).
//!
//! - [`procfs`] — RSS, CPU time, threads, descriptors and socket inodes from `/proc/PID`;
//!   processes found by name (re-resolved every sample: workers may come and go).
//! - [`sockdiag`] — ESTABLISHED TCP sockets of those processes, via netlink `sock_diag`.
//! - [`http`] — the Prometheus scrape and the health check (`ureq`, with a timeout).
//!
//! The first sample is taken by [`Watcher::start`] itself, before the caller opens any
//! connection: it is the "before" of bytes per connection. A failed scrape, a vanished
//! process or an unreadable `/proc` entry is recorded (and its first message kept), never
//! fatal: the load run matters more than one gateway figure.

pub mod http;
pub mod procfs;
pub mod sockdiag;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

pub use http::MetricSelector;

use crate::metrics::gateway::{GatewayRecord, GatewaySample};

/// What to watch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchConfig {
    /// Processes by pid (`--watch-pid`).
    pub pids: Vec<u32>,
    /// Processes by name (`--watch-process`), re-resolved every sample.
    pub names: Vec<String>,
    /// Prometheus text endpoints (`--gateway-metrics`).
    pub metrics_urls: Vec<String>,
    /// Extra series to record from them (`--gateway-metric`).
    pub metrics: Vec<MetricSelector>,
    /// `--health-url`.
    pub health_url: Option<String>,
    /// Time between samples (the run's `--interval`).
    pub interval: Duration,
}

impl WatchConfig {
    /// True when there is nothing to watch.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
            && self.names.is_empty()
            && self.metrics_urls.is_empty()
            && self.health_url.is_none()
    }

    /// Timeout of one HTTP request: 80 % of the interval, between 100 ms and 5 s.
    pub fn http_timeout(&self) -> Duration {
        self.interval
            .mul_f64(0.8)
            .clamp(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "--watch-pid {pid}: no such process (is the gateway running? `pgrep NAME` finds its pid, or use --watch-process NAME)"
    )]
    NoSuchPid { pid: u32 },
    #[error(
        "--gateway-metric {text:?}: {why} (e.g. ws_connections or 'ws_connections{{node=\"a\"}}')"
    )]
    Selector { text: String, why: String },
    #[error("{flag} {url:?}: {why} (expected http://HOST:PORT/PATH or https://…)")]
    Url {
        flag: &'static str,
        url: String,
        why: String,
    },
    #[error("cannot start the gateway watcher thread: {0}")]
    Thread(std::io::Error),
}

/// The watcher thread; [`Watcher::finish`] stops it and returns what it recorded.
pub struct Watcher {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<GatewayRecord>,
    taken: Arc<AtomicU64>,
}

impl Watcher {
    /// Check the configuration, take the baseline sample and start sampling every
    /// `cfg.interval`.
    pub fn start(cfg: WatchConfig) -> Result<Watcher, WatchError> {
        for &pid in &cfg.pids {
            if !std::path::Path::new("/proc").join(pid.to_string()).exists() {
                return Err(WatchError::NoSuchPid { pid });
            }
        }
        let urls = cfg
            .metrics_urls
            .iter()
            .map(|u| ("--gateway-metrics", u))
            .chain(cfg.health_url.iter().map(|u| ("--health-url", u)));
        for (flag, u) in urls {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                Ok(p) => {
                    return Err(WatchError::Url {
                        flag,
                        url: u.clone(),
                        why: format!("scheme {:?} is not HTTP", p.scheme()),
                    });
                }
                Err(e) => {
                    return Err(WatchError::Url {
                        flag,
                        url: u.clone(),
                        why: e.to_string(),
                    });
                }
            }
        }
        let mut sampler = Sampler::new(cfg);
        let first = sampler.sample();
        let taken = Arc::new(AtomicU64::new(1));
        let (stop, rx) = mpsc::channel();
        let counter = taken.clone();
        let handle = std::thread::Builder::new()
            .name("wsscale-watch".into())
            .spawn(move || sampler.run(first, rx, &counter))
            .map_err(WatchError::Thread)?;
        Ok(Watcher {
            stop,
            handle,
            taken,
        })
    }

    /// Samples taken so far (the baseline included).
    pub fn samples_taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Take a last sample, stop, and return the record.
    pub fn finish(self) -> GatewayRecord {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or_default()
    }
}

/// CPU time (user + system) of the calling thread, seconds.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    } else {
        0.0
    }
}

/// The sampling state: previous CPU times and counter values, for rates.
struct Sampler {
    cfg: WatchConfig,
    agent: ureq::Agent,
    ticks_per_s: f64,
    own_pid: u32,
    last: Option<Instant>,
    cpu_ticks: HashMap<u32, u64>,
    /// (url, key) → previous counter value and when it was read.
    counters: HashMap<(usize, String), (f64, Instant)>,
    errors: BTreeMap<&'static str, String>,
    /// When sampling began, and the time spent counting the gateway's descriptors and
    /// connections so far. The count (listing `fd/`, a `readlink` per descriptor, a
    /// `sock_diag` dump of every TCP socket of the host) may use [`COUNT_FREE`], then at
    /// most [`COUNT_SHARE`] of the time since sampling began: a small or short run is counted
    /// every sample, a 100,000-connection gateway every ~20 s.
    began: Instant,
    count_spent: Duration,
}

/// The share of wall time the connection count may take (of one core), over the run.
const COUNT_SHARE: f64 = 0.05;
/// Counting time allowed before the share applies.
const COUNT_FREE: Duration = Duration::from_secs(2);

impl Sampler {
    fn new(cfg: WatchConfig) -> Self {
        Sampler {
            agent: http::agent(cfg.http_timeout()),
            cfg,
            ticks_per_s: procfs::clock_ticks_per_s(),
            own_pid: std::process::id(),
            last: None,
            cpu_ticks: HashMap::new(),
            counters: HashMap::new(),
            errors: BTreeMap::new(),
            began: Instant::now(),
            count_spent: Duration::ZERO,
        }
    }

    fn run(
        mut self,
        first: GatewaySample,
        stop: mpsc::Receiver<()>,
        taken: &AtomicU64,
    ) -> GatewayRecord {
        let mut samples = vec![first];
        let mut next = Instant::now() + self.cfg.interval;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            match stop.recv_timeout(wait) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            samples.push(self.sample());
            taken.fetch_add(1, Ordering::Relaxed);
            next += self.cfg.interval;
            let now = Instant::now();
            if next < now {
                // A sample longer than the interval: skip the missed ticks.
                next = now + self.cfg.interval;
            }
        }
        samples.push(self.sample());
        taken.fetch_add(1, Ordering::Relaxed);
        GatewayRecord {
            watched: self.watched(),
            samples,
            errors: self.errors.into_values().collect(),
            watcher_cpu_s: thread_cpu_s(),
        }
    }

    fn watched(&self) -> Vec<String> {
        let c = &self.cfg;
        c.pids
            .iter()
            .map(|p| format!("pid {p}"))
            .chain(c.names.iter().map(|n| format!("process {n}")))
            .chain(c.metrics_urls.iter().map(|u| format!("metrics {u}")))
            .chain(c.health_url.iter().map(|u| format!("health {u}")))
            .collect()
    }

    fn error(&mut self, kind: &'static str, msg: String) {
        self.errors.entry(kind).or_insert(msg);
    }

    fn sample(&mut self) -> GatewaySample {
        let now = Instant::now();
        let dt = self.last.map(|l| now.duration_since(l).as_secs_f64());
        self.last = Some(now);
        let mut s = GatewaySample::new(SystemTime::now());
        self.sample_processes(&mut s, dt);
        self.sample_metrics(&mut s);
        if let Some(url) = &self.cfg.health_url {
            s.health = Some(http::health(&self.agent, url));
        }
        s.took_ms = (now.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
        s
    }

    fn sample_processes(&mut self, s: &mut GatewaySample, dt: Option<f64>) {
        if self.cfg.pids.is_empty() && self.cfg.names.is_empty() {
            return;
        }
        let mut pids: Vec<u32> = self.cfg.pids.clone();
        for name in &self.cfg.names {
            pids.extend(procfs::pids_named(name, self.own_pid));
        }
        pids.sort_unstable();
        pids.dedup();
        let mut sockets = HashSet::new();
        let began = Instant::now();
        let budget = COUNT_FREE.max(began.duration_since(self.began).mul_f64(COUNT_SHARE));
        let count = self.count_spent <= budget;
        let (mut rss, mut threads, mut fds, mut cpu_ticks, mut found) = (0, 0, 0, 0u64, 0);
        let mut ticks_now = HashMap::new();
        for pid in pids {
            match procfs::read_process(pid, count.then_some(&mut sockets)) {
                Ok(r) => {
                    found += 1;
                    rss += r.rss_bytes;
                    threads += r.threads;
                    fds += r.fds.unwrap_or(0);
                    if let Some(prev) = self.cpu_ticks.get(&pid) {
                        cpu_ticks += r.cpu_ticks.saturating_sub(*prev);
                    }
                    ticks_now.insert(pid, r.cpu_ticks);
                }
                Err(e) if self.cfg.pids.contains(&pid) => {
                    self.error("process", format!("pid {pid}: {e}"));
                }
                // A name match that exited between the scan and the read.
                Err(_) => {}
            }
        }
        self.cpu_ticks = ticks_now;
        s.processes = found;
        if found == 0 {
            return;
        }
        s.rss_bytes = Some(rss);
        s.threads = Some(threads);
        if count {
            s.fds = Some(fds);
        }
        if let Some(dt) = dt.filter(|d| *d > 0.0) {
            s.cpu_percent = Some(cpu_ticks as f64 / self.ticks_per_s / dt * 100.0);
        }
        if !count {
            return;
        }
        match sockdiag::count_established(&sockets) {
            Ok(n) => s.established = Some(n),
            Err(e) => self.error("sock_diag", format!("sock_diag: {e}")),
        }
        self.count_spent += began.elapsed();
    }

    fn sample_metrics(&mut self, s: &mut GatewaySample) {
        let urls = self.cfg.metrics_urls.clone();
        for (i, url) in urls.iter().enumerate() {
            s.scrapes += 1;
            let v = match http::scrape(&self.agent, url, &self.cfg.metrics) {
                Ok(v) => v,
                Err(e) => {
                    s.scrape_failures += 1;
                    self.error("scrape", format!("scrape of {url}: {e}"));
                    continue;
                }
            };
            if let Some(r) = v.rss_bytes {
                *s.rss_bytes.get_or_insert(0) += r as u64;
            }
            if let Some(f) = v.open_fds {
                *s.fds.get_or_insert(0) += f as u64;
            }
            if let Some(rate) = self.rate(i, "process_cpu_seconds_total", v.cpu_seconds_total) {
                *s.cpu_percent.get_or_insert(0.0) += rate * 100.0;
            }
            for (key, (value, counter)) in v.selected {
                let value = if counter {
                    match self.rate(i, &key, Some(value)) {
                        Some(r) => r,
                        None => continue,
                    }
                } else {
                    value
                };
                *s.metrics.entry(key).or_insert(0.0) += value;
            }
        }
    }

    /// The per-second rate of counter `key` of URL `i` since its previous successful read
    /// (`None` on the first one; a counter reset counts from zero).
    fn rate(&mut self, i: usize, key: &str, value: Option<f64>) -> Option<f64> {
        let value = value?;
        let now = Instant::now();
        let (prev, then) = self.counters.insert((i, key.to_string()), (value, now))?;
        let dt = now.duration_since(then).as_secs_f64();
        if dt <= 0.0 {
            return None;
        }
        let delta = if value >= prev { value - prev } else { value };
        Some(delta / dt)
    }
}
