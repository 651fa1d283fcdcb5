//! wsscale — how many WebSocket connections can your gateway hold, and what happens to
//! heartbeats and latency while it does.
//!
//! # Layout
//!
//! - [`cli`] — clap definitions, human-unit parsers (`100k`, `30s`, `10/s`), command bodies
//!   (`run`, `serve`, `preflight`/`tune`, `coordinator`/`agent`, `report merge`, progressive
//!   profiles).
//! - [`plan`] — profile (TOML) + flags → validated [`plan::Plan`]; the stage model; thresholds.
//! - [`engine`] — the data plane: mio shards, slab of compact connections, WebSocket client,
//!   TLS client for `wss://` (rustls, sans I/O: [`engine::tls`]), heartbeats and timed
//!   messages with intended-time latency, source-address pool, timer wheel with a `timerfd`
//!   for sub-millisecond wake-ups, and the controller that merges snapshots.
//! - [`metrics`] — counters, failure categories, histograms, [`metrics::Snapshot`] and merge;
//!   its wire form for agents.
//! - [`report`] — text summary, versioned JSON report (written atomically), CSV time series,
//!   threshold evaluation, exact merge of reports.
//! - [`cluster`] — coordinator and agents (`wsscale coordinator`/`agent`, `--processes`):
//!   typed control messages, plan splitting, exact merging of agent snapshots.
//! - [`gateway`] — the embedded reference gateway (tokio + tokio-tungstenite; `wss://` with
//!   tokio-rustls, self-signed certificates with rcgen: [`gateway::tls`]).
//! - [`system`] — host facts (rlimits, capabilities, memory, `/proc/sys`), `preflight` checks
//!   and `tune` (recommended sysctls, apply / revert).
//!
//! The control plane (gateway, signals) runs on tokio; the sockets under test run on mio with
//! plain structs in a slab. The engine never awaits; the control plane never touches a test
//! socket.

pub mod cli;
pub mod cluster;
pub mod engine;
pub mod gateway;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod system;
