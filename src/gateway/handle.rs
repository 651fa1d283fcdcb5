//! Synchronous entry points: [`GatewayHandle`] (an in-process gateway on its own runtime
//! thread, for `wsscale run` and sync tests) and [`serve_blocking`] (`wsscale serve`).

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use super::{GatewayConfig, GatewayCounts, GatewayStats, SHUTDOWN_GRACE, bind_listener, run};

/// A gateway running on its own tokio runtime in a background thread. Dropping it shuts the
/// gateway down (like [`GatewayHandle::shutdown`]).
#[derive(Debug)]
pub struct GatewayHandle {
    local_addr: SocketAddr,
    tls: bool,
    stats: Arc<GatewayStats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GatewayHandle {
    /// Bind `addr` (port 0 allowed; `SO_REUSEADDR`, no `SO_REUSEPORT`) and start serving on a
    /// multi-thread runtime with `worker_threads` workers (0 is treated as 1). Returns once
    /// the listener is bound, so connecting to [`GatewayHandle::local_addr`] right away works.
    pub fn start(
        addr: SocketAddr,
        config: GatewayConfig,
        worker_threads: usize,
    ) -> io::Result<GatewayHandle> {
        let runtime = build_runtime(worker_threads.max(1))?;
        let std_listener = bind_listener(addr, false)?;
        let local_addr = std_listener.local_addr()?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let tls = config.tls.is_some();
        let stats = Arc::new(GatewayStats::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("wsscale-gateway".into())
            .spawn(move || {
                let shutdown = async {
                    // Either an explicit stop or the handle being dropped.
                    let _ = stopped.await;
                };
                // `run` only returns errors it cannot recover from; there are none today.
                let _ = runtime.block_on(run(listener, config, thread_stats, shutdown));
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })?;
        Ok(GatewayHandle {
            local_addr,
            tls,
            stats,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://IP:PORT/` (`wss://` when TLS is on); an unspecified bind address (`0.0.0.0`,
    /// `::`) becomes loopback.
    pub fn url(&self) -> String {
        url_for(self.local_addr, self.tls)
    }

    /// True when the gateway serves `wss://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Current counters.
    pub fn stats(&self) -> GatewayCounts {
        self.stats.snapshot()
    }

    /// The live counters themselves (what a metrics endpoint reads on each scrape).
    pub fn shared_stats(&self) -> Arc<GatewayStats> {
        Arc::clone(&self.stats)
    }

    /// Stop accepting, close connections (bounded by about a second) and join the thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the gateway thread must not propagate into the caller's drop.
            let _ = thread.join();
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn url_for(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "wss" } else { "ws" };
    format!("{scheme}://{}/", SocketAddr::new(ip, addr.port()))
}

/// The `wsscale serve` command: bind `addr` (with `SO_REUSEPORT` only when `reuse_port`, see
/// [`bind_listener`]), then [`serve_listener_blocking`].
pub fn serve_blocking(
    addr: SocketAddr,
    reuse_port: bool,
    config: GatewayConfig,
    worker_threads: usize,
) -> io::Result<()> {
    serve_listener_blocking(bind_listener(addr, reuse_port)?, config, worker_threads)
}

/// Serve an already-bound listener (see [`bind_listener`]): print `listening on
/// ws://IP:PORT/` (`wss://` with TLS) to stdout, serve until SIGINT or SIGTERM (SIGUSR1
/// drops every connection, see [`super::faults`]), print a one-line summary to stderr. `worker_threads` 0 means one per core.
pub fn serve_listener_blocking(
    std_listener: std::net::TcpListener,
    config: GatewayConfig,
    worker_threads: usize,
) -> io::Result<()> {
    let stats = Arc::new(GatewayStats::default());
    serve_listener_with_stats(std_listener, config, worker_threads, stats)
}

/// [`serve_listener_blocking`] counting into `stats` (which `--metrics-listen` reads).
pub fn serve_listener_with_stats(
    std_listener: std::net::TcpListener,
    config: GatewayConfig,
    worker_threads: usize,
    stats: Arc<GatewayStats>,
) -> io::Result<()> {
    let workers = match worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let runtime = build_runtime(workers)?;
    let tls = config.tls.is_some();
    let switch = config.faults.switch.clone();
    runtime.block_on(async {
        let listener = TcpListener::from_std(std_listener)?;
        // Install the handlers before announcing the address, so a signal sent as soon as the
        // line is read is not lost.
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        // SIGUSR1 drops every connection (fault injection, see `faults`).
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let switch = config.faults.switch.clone();
        let _usr1 = tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                eprintln!("SIGUSR1: dropping every connection");
                switch.drop_all();
            }
        });
        let local = listener.local_addr()?;
        {
            let mut stdout = io::stdout().lock();
            let scheme = if tls { "wss" } else { "ws" };
            writeln!(stdout, "listening on {scheme}://{local}/")?;
            stdout.flush()?;
        }
        let shutdown = async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        };
        run(listener, config, Arc::clone(&stats), shutdown).await
    })?;
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    eprintln!("gateway stopped: {}", stats.snapshot());
    let (waves, stalls) = switch.waves();
    if waves + stalls > 0 {
        eprintln!(
            "faults: {waves} drop wave(s) resetting {} connection(s), {stalls} stall(s)",
            switch.dropped()
        );
    }
    Ok(())
}

fn build_runtime(worker_threads: usize) -> io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .thread_name("wsscale-gateway")
        .enable_all()
        .build()
}
