//! wsscale — how many WebSocket connections can your gateway hold, and what happens to
//! heartbeats and latency while it does.
//!
//! # Layout
//!
//! - [`cli`] — clap definitions, human-unit parsers (`100k`, `30s`, `10/s`), command dispatch.
//! - [`plan`] — profile (TOML) + flags → validated [`plan::Plan`]; the stage model.
//! - [`engine`] — the data plane: mio shards, slab of compact connections, WebSocket client,
//!   TLS client for `wss://` (rustls, sans I/O: [`engine::tls`]), source-address pool, timer
//!   wheel, and the controller that runs the stage clock.
//! - [`metrics`] — counters, failure categories, histograms, [`metrics::Snapshot`] and merge.
//! - [`report`] — text summary and versioned JSON report, written atomically.
//! - [`cluster`] — coordinator and agents (`wsscale coordinator`/`agent`, `--processes`):
//!   typed control messages, plan splitting, exact merging of agent snapshots.
//! - [`gateway`] — the embedded reference gateway (tokio + tokio-tungstenite; `wss://` with
//!   tokio-rustls, self-signed certificates with rcgen: [`gateway::tls`]).
//! - [`system`] — rlimits, `/proc/sys` reads, process memory.
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
