//! clap definitions of the gateway-watching flags (`--watch-pid`, `--watch-process`,
//! `--gateway-metrics`, `--gateway-metric`, `--health-url`), shared by `wsscale run` and
//! `wsscale coordinator` (flattened into `RunArgs`).

use std::time::Duration;

use clap::Args;

use crate::system::watch::{MetricSelector, WatchConfig, WatchError};

/// Watching the gateway's side during a run.
#[derive(Debug, Clone, Default, Args)]
pub struct WatchArgs {
    /// Watch this gateway process (repeatable): RSS, CPU, threads, open fds and its
    /// ESTABLISHED TCP connections, every --interval, in the report's `gateway` section.
    /// e.g. --watch-pid "$(pgrep -o nats-server)". Without --target the embedded gateway's
    /// process is watched on its own.
    #[arg(long = "watch-pid", value_name = "PID", help_heading = "Gateway view")]
    pub pids: Vec<u32>,

    /// Watch every process with this name (repeatable), e.g. --watch-process node for all
    /// node workers; names are looked up again every interval (workers may come and go).
    /// Matches /proc/PID/comm or the file name of argv[0]; this process is never included.
    #[arg(
        long = "watch-process",
        value_name = "NAME",
        help_heading = "Gateway view"
    )]
    pub names: Vec<String>,

    /// Scrape this Prometheus text endpoint every interval (repeatable; figures of several
    /// are summed): process_resident_memory_bytes, process_cpu_seconds_total and
    /// process_open_fds when present. A failed scrape is counted, never fatal.
    /// e.g. --gateway-metrics http://10.0.0.5:9100/metrics
    #[arg(
        long = "gateway-metrics",
        value_name = "URL",
        help_heading = "Gateway view"
    )]
    pub metrics_urls: Vec<String>,

    /// Also record this series from --gateway-metrics (repeatable): gauges as values,
    /// counters as rates per second; matching series are summed.
    /// e.g. --gateway-metric 'ws_connections{node="a"}'
    #[arg(
        long = "gateway-metric",
        value_name = "SERIES",
        help_heading = "Gateway view"
    )]
    pub metrics: Vec<String>,

    /// GET this URL every interval; a non-2xx answer or a timeout counts in health_failures
    /// (with its time in the series). e.g. --health-url http://10.0.0.5:8080/healthz
    #[arg(long = "health-url", value_name = "URL", help_heading = "Gateway view")]
    pub health_url: Option<String>,
}

impl WatchArgs {
    /// The watcher's configuration, sampling every `interval`, plus `extra_pids` (the
    /// embedded gateway's processes).
    pub fn config(
        &self,
        interval: Duration,
        extra_pids: &[u32],
    ) -> Result<WatchConfig, WatchError> {
        let metrics = self
            .metrics
            .iter()
            .map(|m| MetricSelector::parse(m))
            .collect::<Result<Vec<_>, _>>()?;
        if !metrics.is_empty() && self.metrics_urls.is_empty() {
            return Err(WatchError::Selector {
                text: self.metrics[0].clone(),
                why: "needs --gateway-metrics URL to scrape it from".into(),
            });
        }
        let mut pids = self.pids.clone();
        pids.extend_from_slice(extra_pids);
        Ok(WatchConfig {
            pids,
            names: self.names.clone(),
            metrics_urls: self.metrics_urls.clone(),
            metrics,
            health_url: self.health_url.clone(),
            interval,
        })
    }
}
