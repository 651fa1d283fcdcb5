//! Thresholds: `METRIC OP VALUE` conditions such as `message_rtt_ms.p99<200`.
//!
//! (Parsing and the list of metric names are filled in with the latency issue.)

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// One pass/fail condition on a report metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric name as written (`handshake_ms.p95`).
    pub metric: String,
    pub op: Op,
    pub value: f64,
    /// The expression as the user wrote it.
    pub expr: String,
}
