//! Outputs that watch a run while it happens, beside the live line: `--metrics-listen` (the
//! Prometheus endpoint, [`crate::report::prometheus::LiveMetrics`] served by
//! [`crate::gateway::metrics_http::MetricsServer`]) and `--report-hdr` (the HdrHistogram
//! interval log, [`crate::report::hdr_log::HdrLog`]). Both are interval sinks; [`LiveOutputs::start`]
//! makes them and [`Started::sink`] puts them behind one sink with the live printer
//! ([`Started::extra`] hands them to a coordinator or an agent).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::gateway::metrics_http::MetricsServer;
use crate::metrics::timeseries::{ExtraSinks, IntervalSink};
use crate::report::hdr_log::HdrLog;
use crate::report::prometheus::{self, LiveMetrics};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct LiveOutputs {
    /// `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--report-hdr`.
    pub report_hdr: Option<PathBuf>,
    /// The `role` label of the metrics: `run`, `coordinator` or `agent`.
    pub role: &'static str,
}

impl Default for LiveOutputs {
    fn default() -> Self {
        LiveOutputs {
            metrics_listen: None,
            report_hdr: None,
            role: "run",
        }
    }
}

/// The running outputs; the metrics endpoint stops when this is dropped.
#[derive(Default)]
pub struct Started {
    /// The Prometheus metrics (fed as a sink; the coordinator also feeds per-agent series).
    pub metrics: Option<Arc<LiveMetrics>>,
    /// The HDR log.
    pub hdr: Option<Arc<HdrLog>>,
    server: Option<MetricsServer>,
}

impl LiveOutputs {
    /// From `wsscale run`'s (or `coordinator`'s) flags.
    pub fn from_run(a: &crate::cli::args::RunArgs) -> LiveOutputs {
        LiveOutputs {
            metrics_listen: a.metrics_listen,
            report_hdr: a.report_hdr.clone(),
            role: "run",
        }
    }

    /// Bind the endpoint (printing `metrics on http://ADDR/metrics` on stderr) and create the
    /// HDR log.
    pub fn start(&self) -> anyhow::Result<Started> {
        let mut started = Started::default();
        if let Some(addr) = self.metrics_listen {
            let metrics = Arc::new(LiveMetrics::new(self.role));
            let m = metrics.clone();
            let server = MetricsServer::start(
                addr,
                prometheus::CONTENT_TYPE,
                Arc::new(move || m.render()),
            )
            .with_context(|| {
                format!(
                    "cannot listen on --metrics-listen {addr} (is the port taken? port 0 picks a free one)"
                )
            })?;
            eprintln!("metrics on {}", server.url());
            started.metrics = Some(metrics);
            started.server = Some(server);
        }
        if let Some(path) = &self.report_hdr {
            started.hdr = Some(Arc::new(HdrLog::create(path)?));
        }
        Ok(started)
    }
}

impl Started {
    /// The metrics and the HDR log as sinks to add beside the live printer.
    pub fn extra(&self) -> ExtraSinks {
        let mut v: Vec<Arc<dyn IntervalSink>> = Vec::new();
        if let Some(m) = &self.metrics {
            v.push(m.clone());
        }
        if let Some(h) = &self.hdr {
            v.push(h.clone());
        }
        ExtraSinks(v)
    }

    /// One sink for `live` (the live printer) and these outputs (`None` when there is
    /// nothing to feed).
    pub fn sink(&self, live: Option<Arc<dyn IntervalSink>>) -> Option<Arc<dyn IntervalSink>> {
        self.extra().with(live)
    }
}
