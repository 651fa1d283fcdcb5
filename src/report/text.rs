//! The human text summary printed at the end of a run.
//!
//! Plain aligned text, no colors, no terminal control: it must read the same in a terminal, a
//! CI log and a pasted issue. Everything shown here is also in the JSON report (same numbers,
//! same category labels), so a figure seen in a log can be found in the JSON by its name.
//!
//! Choices worth knowing:
//! - The success rate is truncated, not rounded, to two decimals (computed from the integer
//!   counts): 99 999 of 100 000 shows `99.99%`, never a misleading `100.00%`.
//! - Failure categories and drop reasons list only non-zero entries, largest first; the JSON
//!   lists every fixed category.
//! - The per-source table shows the 20 source addresses with the most established
//!   connections and sums up the rest on one line.
//! - Timing rows for traffic (message, ping, heartbeat round trips, schedule lag) appear only
//!   when that traffic was configured (something was sent); fan-out and push latency only
//!   when they have samples; connect and handshake always.
//!   The Messages and Heartbeats sections likewise appear only when there was such traffic.
//! - `--tls-insecure` is flagged in the header (`TLS INSECURE`), where nobody can miss it.
//! - Thresholds come last, where a CI log's reader looks first: one line per threshold with
//!   ✓/✗, the expression and the measured value (`n/a` when the metric had no data).

use std::fmt::Write as _;
use std::time::Duration;

use super::json::{drop_counts, failure_counts, peak_ramp_rate, rfc3339_utc};
use crate::metrics::Percentiles;
use crate::metrics::outcome::RunOutcome;
use crate::metrics::verdict::{planned_peak, shortfall};
use crate::plan::redact::redact_url;

/// How many per-source rows the summary shows before summing up the rest.
const MAX_SOURCE_ROWS: usize = 20;

/// Width of the label column of `label value` lines.
const LABEL: usize = 20;

/// The line printed when every source address is out of local ports.
pub const SOURCES_EXHAUSTED_LINE: &str = "All source addresses ran out of local ports for every target at some point: the engine retried with back-off (connections.source_port_retries) while ports were held. Add source addresses (--source-ip) or targets, or widen net.ipv4.ip_local_port_range.";

/// The header line of a run with `--tls-insecure`.
pub const TLS_INSECURE_NOTE: &str = "server certificates were NOT verified (--tls-insecure): \
this run says nothing about the gateway's certificate";

/// The end-of-run text summary.
pub fn summary_text(o: &RunOutcome) -> String {
    let mut s = String::new();
    header(&mut s, o);
    connections(&mut s, o);
    failures(&mut s, o);
    drops(&mut s, o);
    s.push_str(&super::churn::churn_text(o));
    s.push_str(&super::recovery::recovery_text(o));
    if o.sources_exhausted {
        let _ = writeln!(s, "{SOURCES_EXHAUSTED_LINE}\n");
    }
    timings(&mut s, o);
    messages(&mut s, o);
    pushes_and_fanout(&mut s, o);
    heartbeats(&mut s, o);
    s.push_str(&super::misbehave::text(o));
    traffic(&mut s, o);
    memory(&mut s, o);
    s.push_str(&super::gateway::gateway_text(o));
    per_source(&mut s, o);
    s.push_str(&super::agents::agents_text(o));
    thresholds(&mut s, o);
    while s.ends_with("\n\n") {
        s.pop();
    }
    s
}

fn kv(s: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(s, "  {label:<LABEL$}{value}");
}

fn header(s: &mut String, o: &RunOutcome) {
    let _ = writeln!(s, "wsscale {} run summary", env!("CARGO_PKG_VERSION"));
    if let Some(v) = &o.verdict {
        kv(s, "VERDICT", v.headline());
        for r in &v.reasons {
            kv(s, "", format!("- {r}"));
        }
    }
    let note = if o.embedded_gateway {
        " (embedded gateway, in-process: memory figures include it)"
    } else {
        ""
    };
    match o.targets.as_slice() {
        [] => kv(s, "target", format!("(none){note}")),
        [one] => kv(s, "target", format!("{}{note}", redact_url(one))),
        many => {
            for (i, t) in many.iter().enumerate() {
                let label = if i == 0 { "targets" } else { "" };
                let n = if i + 1 == many.len() { note } else { "" };
                kv(s, label, format!("{}{n}", redact_url(t)));
            }
        }
    }
    if o.stages.is_empty() {
        kv(s, "stages", "(none)");
    }
    let mut prev = 0u64;
    for (i, st) in o.stages.iter().enumerate() {
        let rate = o
            .churn
            .as_ref()
            .and_then(|c| c.rates_per_s.get(i).copied().flatten());
        let what = if let Some(r) = rate {
            format!(
                "arrivals at {r}/s for {} (max open {})",
                fmt_duration(st.duration),
                st.target
            )
        } else if i > 0 && st.target == prev {
            format!("hold {} for {}", st.target, fmt_duration(st.duration))
        } else if st.duration.is_zero() {
            format!("jump to {}", st.target)
        } else {
            format!("ramp to {} over {}", st.target, fmt_duration(st.duration))
        };
        let label = if i == 0 { "stages" } else { "" };
        kv(s, label, format!("{}. {what}", i + 1));
        prev = st.target;
    }
    if o.tls_insecure {
        kv(s, "TLS INSECURE", TLS_INSECURE_NOTE);
    }
    let c = &o.totals.counters;
    if c.tls_handshakes > 0 {
        kv(
            s,
            "tls handshakes",
            format!("{} ({} resumed)", c.tls_handshakes, c.tls_resumed),
        );
    }
    if let Some(p) = &o.protocol {
        kv(s, "protocol", p);
    }
    kv(s, "threads", o.threads);
    kv(s, "started", rfc3339_utc(o.started_at));
    kv(s, "duration", fmt_duration(o.duration));
    if o.interrupted {
        kv(
            s,
            "INTERRUPTED",
            "the run was cut short (Ctrl-C / SIGTERM); figures cover the run until then",
        );
    }
    if o.aborted_by_threshold {
        kv(
            s,
            "ABORTED",
            "a threshold could no longer be met (--abort-on-fail); figures cover the run until then",
        );
    }
    s.push('\n');
}

fn connections(s: &mut String, o: &RunOutcome) {
    let c = &o.totals.counters;
    let _ = writeln!(s, "Connections");
    let num = |n: u64| format!("{n:>12}");
    kv(s, "planned peak", num(planned_peak(o)));
    kv(s, "attempted", num(c.attempted));
    kv(
        s,
        "established",
        format!(
            "{}  ({})",
            num(c.established),
            success_rate(c.established, c.attempted)
        ),
    );
    kv(s, "failed", num(c.failed));
    if c.aborted > 0 {
        kv(
            s,
            "aborted",
            format!(
                "{}  (still connecting or handshaking when the plan closed them)",
                num(c.aborted)
            ),
        );
    }
    kv(s, "dropped", num(c.dropped));
    kv(s, "closed", num(c.closed));
    kv(s, "reconnects", num(c.reconnects));
    match peak_ramp_rate(o) {
        Some(rate) => kv(
            s,
            "peak open",
            format!(
                "{}  (reached after {}, {rate:.1} conn/s)",
                num(o.peak_open),
                fmt_duration(o.peak_reached_after)
            ),
        ),
        None => kv(s, "peak open", num(o.peak_open)),
    }
    if let Some(why) = shortfall(o) {
        kv(s, "SHORT OF PLAN", why);
    }
    kv(s, "open at end", num(o.totals.gauges.open));
    s.push('\n');
    if o.per_target.len() > 1 || o.per_target.iter().any(|t| t.all_failed()) {
        let _ = writeln!(s, "Targets");
        for t in &o.per_target {
            let down = if t.all_failed() {
                "  DOWN: every connection to it failed"
            } else {
                ""
            };
            kv(
                s,
                "",
                format!(
                    "{}: {} established, {} failed{down}",
                    redact_url(&t.url),
                    t.established,
                    t.failed
                ),
            );
        }
        s.push('\n');
    }
}

/// `99.00% success`, truncated (not rounded) from the integer counts.
fn success_rate(established: u64, attempted: u64) -> String {
    if attempted == 0 {
        return "no attempts".to_string();
    }
    let bp = (u128::from(established) * 10_000 / u128::from(attempted)) as u64;
    format!("{}.{:02}% success", bp / 100, bp % 100)
}

/// Non-zero entries, largest count first, then by label.
fn nonzero_sorted(mut v: Vec<(String, u64)>) -> Vec<(String, u64)> {
    v.retain(|(_, n)| *n > 0);
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn counted_section(s: &mut String, title: &str, rows: Vec<(String, u64)>) {
    let _ = writeln!(s, "{title}");
    let rows = nonzero_sorted(rows);
    if rows.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for (label, n) in rows {
        kv(s, &label, format!("{n:>12}"));
    }
    s.push('\n');
}

fn failures(s: &mut String, o: &RunOutcome) {
    counted_section(s, "Failures by category", failure_counts(o));
    let examples = &o.totals.counters.examples;
    if !examples.is_empty() {
        // Replace the blank line the section ended with.
        s.pop();
        for (label, detail) in examples {
            kv(s, "", format!("{label}, e.g.: {detail}"));
        }
        s.push('\n');
    }
}

fn drops(s: &mut String, o: &RunOutcome) {
    counted_section(s, "Drops by reason", drop_counts(o));
}

fn timings(s: &mut String, o: &RunOutcome) {
    let _ = writeln!(
        s,
        "{:<22}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "Timings (ms)",
        "samples",
        "min",
        "avg",
        "p50",
        "p90",
        "p95",
        "p99",
        "p99.9",
        "p99.99",
        "max"
    );
    let c = &o.totals.counters;
    let h = &o.totals.hist;
    let any_scheduled = c.messages_sent + c.pings_sent + c.heartbeats_sent > 0;
    for (label, hist, show) in [
        ("tcp connect", &h.tcp_connect, true),
        ("tls handshake", &h.tls_handshake, false),
        ("ws handshake", &h.ws_handshake, true),
        ("message rtt", &h.message_rtt, c.messages_sent > 0),
        ("fanout latency", &h.fanout_latency, false),
        ("push latency", &h.push_latency, false),
        ("ping rtt", &h.ping_rtt, c.pings_sent > 0),
        ("heartbeat rtt", &h.heartbeat_rtt, c.heartbeats_sent > 0),
        ("schedule lag", &h.schedule_lag, any_scheduled),
    ] {
        let p = Percentiles::from_hist(hist);
        if !show && p.count == 0 {
            continue;
        }
        if p.count == 0 {
            let _ = writeln!(s, "  {label:<LABEL$}{:>9}   (no samples)", 0);
            continue;
        }
        let _ = writeln!(
            s,
            "  {label:<LABEL$}{:>9}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
            p.count, p.min, p.mean, p.p50, p.p90, p.p95, p.p99, p.p999, p.p9999, p.max
        );
    }
    // Recorded in ms, so these percentiles are seconds.
    let p = Percentiles::from_hist(&h.session_duration);
    if p.count > 0 {
        let _ = writeln!(
            s,
            "  {:<LABEL$}{:>9}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
            "session (seconds)",
            p.count,
            p.min,
            p.mean,
            p.p50,
            p.p90,
            p.p95,
            p.p99,
            p.p999,
            p.p9999,
            p.max
        );
    }
    s.push('\n');
}

fn messages(s: &mut String, o: &RunOutcome) {
    let c = &o.totals.counters;
    if c.messages_sent == 0 && c.other_messages_received == 0 && c.message_bytes_received == 0 {
        return;
    }
    let secs = o.duration.as_secs_f64();
    let per_s = |n: u64| {
        if secs > 0.0 {
            format!("  ({:.1}/s over the run)", n as f64 / secs)
        } else {
            String::new()
        }
    };
    let _ = writeln!(s, "Messages");
    kv(
        s,
        "sent",
        format!("{:>12}{}", c.messages_sent, per_s(c.messages_sent)),
    );
    kv(
        s,
        "received (echoes)",
        format!("{:>12}{}", c.messages_received, per_s(c.messages_received)),
    );
    let lost = match super::json::lost_rate(o) {
        Some(r) => format!("{:>12}  ({} of sent)", c.messages_lost, percent(r)),
        None => format!("{:>12}", c.messages_lost),
    };
    kv(s, "lost", lost);
    kv(
        s,
        "other received",
        format!("{:>12}", c.other_messages_received),
    );
    kv(
        s,
        "payload bytes sent",
        format!("{:>12}", c.message_bytes_sent),
    );
    kv(
        s,
        "payload bytes recv",
        format!("{:>12}", c.message_bytes_received),
    );
    s.push('\n');
}

/// Server pushes read (`--push-timestamp`) and fan-out deliveries, when there were any.
fn pushes_and_fanout(s: &mut String, o: &RunOutcome) {
    let c = &o.totals.counters;
    if c.pushes_received == 0 && c.fanout_received == 0 {
        return;
    }
    let _ = writeln!(s, "Pushes and fan-out");
    if c.pushes_received > 0 {
        let secs = o.duration.as_secs_f64();
        let rate = if secs > 0.0 {
            format!("  ({:.1}/s over the run)", c.pushes_received as f64 / secs)
        } else {
            String::new()
        };
        kv(
            s,
            "pushes received",
            format!("{:>12}{rate}", c.pushes_received),
        );
    }
    if c.fanout_received > 0 {
        let delivered = super::json::fanout_delivered(o);
        let of = match super::json::fanout_expected(o) {
            Some(e) if e > 0 => format!(
                "  of {e} expected ({}; sent × peak open)",
                percent(delivered as f64 / e as f64)
            ),
            _ => String::new(),
        };
        kv(s, "fan-out delivered", format!("{delivered:>12}{of}"));
    }
    s.push('\n');
}

fn heartbeats(s: &mut String, o: &RunOutcome) {
    let c = &o.totals.counters;
    if c.pings_sent == 0 && c.heartbeats_sent == 0 {
        return;
    }
    let _ = writeln!(s, "Heartbeats");
    if c.pings_sent > 0 {
        kv(s, "pings sent", format!("{:>12}", c.pings_sent));
        kv(s, "pongs received", format!("{:>12}", c.pongs_received));
    }
    if c.heartbeats_sent > 0 {
        kv(s, "heartbeats sent", format!("{:>12}", c.heartbeats_sent));
        kv(
            s,
            "heartbeat replies",
            format!("{:>12}", c.heartbeat_replies),
        );
    }
    s.push('\n');
}

fn thresholds(s: &mut String, o: &RunOutcome) {
    if o.thresholds.is_empty() {
        return;
    }
    let failed = o.thresholds.iter().filter(|t| !t.passed).count();
    if failed == 0 {
        let _ = writeln!(s, "Thresholds (all {} passed)", o.thresholds.len());
    } else {
        let _ = writeln!(s, "Thresholds ({failed} of {} FAILED)", o.thresholds.len());
    }
    let w = o
        .thresholds
        .iter()
        .map(|t| t.expr.chars().count())
        .max()
        .unwrap_or(0)
        .max(LABEL - 4);
    for t in &o.thresholds {
        let mark = if t.passed { "✓" } else { "✗" };
        let measured = match t.measured {
            Some(v) => format!("measured {}", fmt_measured(&t.metric, v)),
            None => "measured n/a (no data)".to_string(),
        };
        let _ = writeln!(s, "  {mark} {:<w$}  {measured}", t.expr);
    }
    s.push('\n');
}

/// A measured value: up to three decimals, trimmed; rates also as a percentage.
fn fmt_measured(metric: &str, v: f64) -> String {
    let mut out = format!("{v:.3}");
    if out.contains('.') {
        let t = out.trim_end_matches('0').trim_end_matches('.').len();
        out.truncate(t);
    }
    if metric.ends_with("_rate") {
        out.push_str(&format!(" ({})", percent(v)));
    } else if metric.ends_with("_ms") || metric.contains("_ms.") {
        out.push_str(" ms");
    } else if metric.starts_with("session_duration_s") {
        out.push_str(" s");
    }
    out
}

/// `0.995` → `99.50%`.
fn percent(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

fn traffic(s: &mut String, o: &RunOutcome) {
    let c = &o.totals.counters;
    let _ = writeln!(s, "Traffic");
    kv(s, "bytes sent", format!("{:>12}", c.bytes_sent));
    kv(s, "bytes received", format!("{:>12}", c.bytes_received));
    kv(s, "frames received", format!("{:>12}", c.frames_received));
    kv(s, "pings answered", format!("{:>12}", c.pings_answered));
    if c.server_pings_answered > 0 || !o.reply_rules.is_empty() {
        kv(
            s,
            "server keep-alives",
            format!("{:>12}  answered by auto-replies", c.server_pings_answered),
        );
    }
    for (i, rule) in o.reply_rules.iter().enumerate() {
        let n = c.replies.get(i).copied().unwrap_or(0);
        kv(s, "reply", format!("{n:>12}  {rule}"));
    }
    s.push('\n');
    if let Some(lines) = super::compression::summary_lines(&c.compression) {
        let _ = writeln!(s, "Compression (permessage-deflate)");
        for (k, v) in lines {
            kv(s, k, v);
        }
        s.push('\n');
    }
}

fn memory(s: &mut String, o: &RunOutcome) {
    if o.embedded_gateway {
        let _ = writeln!(s, "Memory (process RSS, includes the embedded gateway)");
    } else {
        let _ = writeln!(s, "Memory (process RSS)");
    }
    let mib = |b: u64| format!("{:>12.2} MiB  ({b} bytes)", b as f64 / (1024.0 * 1024.0));
    kv(s, "RSS before", mib(o.rss_before_bytes));
    kv(s, "RSS peak", mib(o.rss_peak_bytes));
    kv(s, "RSS at peak open", mib(o.rss_at_peak_open_bytes));
    match o.bytes_per_connection() {
        Some(b) => kv(
            s,
            "per connection",
            format!("{:>12.2} KiB  ({b:.0} bytes)", b / 1024.0),
        ),
        None => kv(s, "per connection", "n/a (no connection was open)"),
    }
    s.push('\n');
}

fn per_source(s: &mut String, o: &RunOutcome) {
    if o.per_source.is_empty() {
        return;
    }
    let mut rows: Vec<_> = o.per_source.iter().collect();
    // Stable sort: ties keep the pool order.
    rows.sort_by_key(|r| std::cmp::Reverse(r.established));
    let (shown, rest) = rows.split_at(rows.len().min(MAX_SOURCE_ROWS));
    let w = shown
        .iter()
        .map(|r| r.address.len())
        .max()
        .unwrap_or(0)
        .max(LABEL - 2);
    let _ = writeln!(s, "Per source address");
    let _ = writeln!(
        s,
        "  {:<w$}  {:>12}{:>12}{:>20}",
        "address", "established", "failed", "addr_not_available"
    );
    for r in shown {
        let _ = writeln!(
            s,
            "  {:<w$}  {:>12}{:>12}{:>20}",
            r.address, r.established, r.failed, r.addr_not_available
        );
    }
    if !rest.is_empty() {
        let sum = |f: fn(&&crate::metrics::SourceOutcome) -> u64| rest.iter().map(f).sum::<u64>();
        let _ = writeln!(
            s,
            "  … {} more (established {}, failed {}, addr_not_available {})",
            rest.len(),
            sum(|r| r.established),
            sum(|r| r.failed),
            sum(|r| r.addr_not_available)
        );
    }
    s.push('\n');
}

/// `30s`, `1.5s`, `2m30s`, `1h0m5.250s`: whole units, milliseconds only when present.
fn fmt_duration(d: Duration) -> String {
    let ms_total = d.as_millis();
    let ms = ms_total % 1000;
    let secs_total = ms_total / 1000;
    let (h, m, sec) = (secs_total / 3600, secs_total / 60 % 60, secs_total % 60);
    let sec = if ms == 0 {
        format!("{sec}s")
    } else {
        let frac = format!("{ms:03}");
        format!("{sec}.{}s", frac.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => sec,
        (0, m) => format!("{m}m{sec}"),
        (h, m) => format!("{h}h{m}m{sec}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_secs(30)), "30s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(fmt_duration(Duration::from_millis(3_605_250)), "1h0m5.25s");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn success_rate_truncates() {
        assert_eq!(success_rate(99_999, 100_000), "99.99% success");
        assert_eq!(success_rate(29, 100), "29.00% success");
        assert_eq!(success_rate(1, 3), "33.33% success");
        assert_eq!(success_rate(5, 5), "100.00% success");
        assert_eq!(success_rate(0, 0), "no attempts");
    }

    #[test]
    fn measured_values() {
        assert_eq!(fmt_measured("message_rtt_ms.p99", 1.25), "1.25 ms");
        assert_eq!(fmt_measured("dropped", 3.0), "3");
        assert_eq!(
            fmt_measured("connect_success_rate", 0.995),
            "0.995 (99.50%)"
        );
        assert_eq!(
            fmt_measured("memory.bytes_per_connection", 352.4567),
            "352.457"
        );
    }
}
