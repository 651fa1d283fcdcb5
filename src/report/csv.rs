//! The time series as CSV (`--report-csv FILE`): one header line, then one row per
//! live-output interval, the same rows as the JSON report's `timeseries[]`.
//!
//! Columns (units in the names, as in the JSON): `t_s` (end of the interval, seconds since the
//! start of the first stage), `open`, `connect_rate` (connections established per second),
//! `failures`, `dropped`, `msgs_sent_per_s`, `msgs_received_per_s`, `message_p50_ms`,
//! `message_p99_ms` (0 when the interval had no message sample), `pushes_per_s`,
//! `push_p50_ms`, `push_p99_ms`, `fanout_p50_ms`, `fanout_p99_ms` (server pushes and
//! fan-out, same rule), then `rss_bytes` (client), the gateway's `gateway_rss_bytes`,
//! `gateway_cpu_percent`, `gateway_fds`, `gateway_established`,
//! `gateway_bytes_per_connection`, `health_failures`, `health_latency_ms` (an empty cell when
//! nothing was watched — JSON's `null`), then `opens_per_s` and `closes_per_s` (churn, see
//! docs/churn.md), `reconnects` (re-open attempts) and `burst` (the `--message-burst` burst in
//! the interval, 0: none). Numbers only, no quoting needed; `\n` line ends;
//! written atomically like every report.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::write::write_atomic;
use crate::metrics::outcome::IntervalRow;

/// The header line (without the line end).
pub const CSV_HEADER: &str = "t_s,open,connect_rate,failures,dropped,msgs_sent_per_s,msgs_received_per_s,message_p50_ms,message_p99_ms,pushes_per_s,push_p50_ms,push_p99_ms,fanout_p50_ms,fanout_p99_ms,rss_bytes,gateway_rss_bytes,gateway_cpu_percent,gateway_fds,gateway_established,gateway_bytes_per_connection,health_failures,health_latency_ms,opens_per_s,closes_per_s,reconnects,burst";

/// The CSV text: header plus one line per row.
pub fn to_csv(rows: &[IntervalRow]) -> String {
    let mut s = String::with_capacity(CSV_HEADER.len() + 1 + rows.len() * 64);
    s.push_str(CSV_HEADER);
    s.push('\n');
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            num(r.t_s),
            r.open,
            num(r.connect_rate),
            r.failures,
            r.dropped,
            num(r.msgs_sent_per_s),
            num(r.msgs_received_per_s),
            num(r.message_p50_ms),
            num(r.message_p99_ms),
            num(r.pushes_per_s),
            num(r.push_p50_ms),
            num(r.push_p99_ms),
            num(r.fanout_p50_ms),
            num(r.fanout_p99_ms),
            r.rss_bytes,
            opt(r.gateway_rss_bytes),
            opt_num(r.gateway_cpu_percent),
            opt(r.gateway_fds),
            opt(r.gateway_established),
            opt_num(r.gateway_bytes_per_connection),
            r.health_failures,
            opt_num(r.health_latency_ms),
            num(r.opens_per_s),
            num(r.closes_per_s),
            r.reconnects,
            r.burst
        );
    }
    s
}

/// Write the time series to `path` atomically.
pub fn write_csv(path: &Path, rows: &[IntervalRow]) -> io::Result<()> {
    write_atomic(path, to_csv(rows).as_bytes())
}

/// An integer, or an empty cell for `None`.
fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// [`num`], or an empty cell for `None`.
fn opt_num(v: Option<f64>) -> String {
    v.map(num).unwrap_or_default()
}

/// Three decimals, trailing zeros trimmed (`1.5`, `2`, `0.125`); never `NaN`/`inf` text.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_string();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.1254), "0.125");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.0001), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(100.0), "100");
    }
}
