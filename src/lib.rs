//! wsscale — how many WebSocket connections can your gateway hold, and what happens to
//! heartbeats and latency while it does.
//!
//! # Layout: layers, each using only those below it
//!
//! ```text
//! cli            clap definitions → plan::Overrides; command bodies; finishing a run (exit codes)
//! cluster        coordinator, agents, `--processes`, wire messages
//! system         host facts, preflight, tune        gateway   the embedded reference gateway
//! engine         the data plane (mio shards)        report    text / JSON / CSV / live rendering, merge
//! metrics        counters, histograms, Snapshot, Aggregator, RunOutcome, time series, threshold rules
//! plan           Plan, stages, units, thresholds, source specs, TLS files, Overrides (no clap)
//! ```
//!
//! - [`plan`] — profile (TOML) + [`plan::Overrides`] → validated [`plan::Plan`]; the stage
//!   model; human units; thresholds; source-address specs; TLS material ([`plan::tls`]).
//! - [`metrics`] — counters, failure categories, histograms, [`metrics::Snapshot`] and merge,
//!   the [`metrics::Aggregator`], [`metrics::RunOutcome`] and [`metrics::build_outcome`], the
//!   interval time series ([`metrics::timeseries`]), threshold verdicts and the one
//!   `--abort-on-fail` rule ([`metrics::thresholds::AbortRule`]); its wire form for agents.
//! - [`engine`] — the data plane: mio shards, slab of compact connections, WebSocket client,
//!   TLS client for `wss://` (rustls, sans I/O), heartbeats and timed messages with
//!   intended-time latency, source-address pool, timer wheel. It emits snapshots and hands
//!   each interval to a sink; it never renders.
//! - [`report`] — text summary, versioned JSON report (written atomically, read back with the
//!   same types by `report merge`), CSV, the live line. It never touches a socket.
//! - [`system`] — host facts (rlimits, capabilities, memory, `/proc/sys`), `preflight` checks
//!   (which probe targets with the engine's own client), `tune`, and `watch` (the gateway's
//!   side of a run: `/proc`, `sock_diag`, its metrics endpoint and health URL).
//! - [`gateway`] — the embedded reference gateway (tokio + tokio-tungstenite).
//! - [`cluster`] — coordinator and agents (`wsscale coordinator`/`agent`, `--processes`).
//!   It sits above `system` because agents run preflight on their own host before accepting
//!   a share, and above `gateway` because `--processes` starts gateway processes.
//! - [`cli`] — clap definitions, command bodies, and finishing a run.
//! - [`fuzzing`] — beside `cli` at the top: the entry points of the fuzz targets (every
//!   parser of untrusted input), shared by `fuzz/` and the corpus replay in the tests.
//!
//! `engine` and `report` sit side by side and neither imports the other: the seam is
//! [`metrics::timeseries::IntervalSink`]. `tests/layering.rs` fails on an import that runs
//! upward.
//!
//! The control plane (gateway, coordinator link, signals) runs on tokio; the sockets under
//! test run on mio with plain structs in a slab. The engine never awaits; the control plane
//! never touches a test socket.

pub mod cli;
pub mod cluster;
pub mod engine;
pub mod fuzzing;
pub mod gateway;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod system;
