//! The report's tables: headline figures, the run's parameters, thresholds, latencies,
//! failures, per-target, per-source and per-agent rows. Each function returns an empty
//! string when its data is absent, so missing sections are left out, never shown empty.

use std::fmt::Write as _;

use super::escape;
use super::figures::{LATENCIES, latency_name};
use crate::metrics::Percentiles;
use crate::report::json::{JsonReport, JsonTimings};

/// The headline figures as a row of cards.
pub fn headline(r: &JsonReport) -> String {
    let c = &r.connections;
    let mut cards: Vec<(String, String)> = vec![
        (
            "peak open".into(),
            format!("{} / {}", group(c.peak_open), group(c.planned_peak)),
        ),
        (
            "connect success".into(),
            format!("{:.2}%", c.success_rate * 100.0),
        ),
        ("failed".into(), group(c.failed)),
        ("dropped".into(), group(c.dropped)),
    ];
    if let Some(rate) = c.peak_ramp_rate_per_s {
        cards.push(("ramp rate".into(), format!("{rate:.0}/s")));
    }
    let hs = &r.timings.ws_handshake_ms;
    if hs.count > 0 {
        cards.push(("handshake p99".into(), format!("{} ms", ms(hs.p99))));
    }
    let m = &r.timings.message_rtt_ms;
    if m.count > 0 {
        cards.push(("message RTT p99".into(), format!("{} ms", ms(m.p99))));
    }
    if let Some(b) = r.memory.bytes_per_connection {
        cards.push(("memory / connection".into(), format!("{b:.0} B")));
    }
    let mut s = String::from("<div class=\"cards\">");
    for (k, v) in cards {
        let _ = write!(
            s,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>",
            escape(&k),
            escape(&v)
        );
    }
    s.push_str("</div>");
    s
}

/// The verdict line and its reasons.
pub fn verdict(r: &JsonReport) -> String {
    let Some(v) = &r.verdict else {
        return String::new();
    };
    let class = if v.status == "passed" { "pass" } else { "fail" };
    let mut s = format!(
        "<p class=\"verdict {class}\">{} — exit code {}</p>",
        escape(&v.status.replace('_', " ")),
        v.exit_code
    );
    if !v.reasons.is_empty() {
        s.push_str("<ul class=\"reasons\">");
        for reason in &v.reasons {
            let _ = write!(s, "<li>{}</li>", escape(reason));
        }
        s.push_str("</ul>");
    }
    s
}

/// The run's parameters: targets, stages, threads, protocol and flags.
pub fn parameters(r: &JsonReport) -> String {
    let stages: Vec<String> = r
        .stages
        .iter()
        .map(|s| format!("{}s → {}", number(s.duration_s), group(s.target)))
        .collect();
    let mut rows: Vec<(&str, String)> = vec![
        ("started", r.started_at.clone()),
        ("duration", format!("{} s", number(r.duration_s))),
        ("targets", r.targets.join(", ")),
        ("stages", stages.join(", ")),
        ("threads", r.threads.to_string()),
        (
            "protocol",
            r.protocol.clone().unwrap_or_else(|| "raw WebSocket".into()),
        ),
        ("wsscale", r.version.clone()),
    ];
    if r.embedded_gateway {
        rows.push((
            "gateway",
            "embedded (in this process; memory figures include it)".into(),
        ));
    }
    if r.tls_insecure {
        rows.push(("TLS", "certificates NOT verified (--tls-insecure)".into()));
    }
    if r.interrupted {
        rows.push(("interrupted", "yes (Ctrl-C / SIGTERM)".into()));
    }
    if r.aborted_by_threshold {
        rows.push(("aborted", "by a threshold (--abort-on-fail)".into()));
    }
    if r.sources_exhausted {
        rows.push(("sources", "every source address ran out of ports".into()));
    }
    if let Some(why) = &r.connections.shortfall {
        rows.push(("shortfall", why.clone()));
    }
    let mut s = String::from("<table class=\"kv\">");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v));
    }
    s.push_str("</table>");
    s
}

/// Thresholds with ✓/✗.
pub fn thresholds(r: &JsonReport) -> String {
    if r.thresholds.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<table><thead><tr><th></th><th>threshold</th><th>measured</th></tr></thead><tbody>",
    );
    for t in &r.thresholds {
        let (mark, class) = if t.passed {
            ("✓", "pass")
        } else {
            ("✗", "fail")
        };
        let measured = t.measured.map_or("no data".to_string(), number);
        let _ = write!(
            s,
            "<tr class=\"{class}\"><td class=\"mark\">{mark}</td><td><code>{}</code></td><td class=\"n\">{}</td></tr>",
            escape(&t.expr),
            escape(&measured)
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// Preflight checks that warned before the run.
pub fn preflight(r: &JsonReport) -> String {
    if r.preflight.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<table><thead><tr><th></th><th>check</th><th>found</th><th>needed</th></tr></thead><tbody>",
    );
    for p in &r.preflight {
        let _ = write!(
            s,
            "<tr class=\"fail\"><td class=\"mark\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.status),
            escape(&p.name),
            escape(&p.found),
            escape(&p.needed)
        );
    }
    s.push_str("</tbody></table><p class=\"note\">Details and fixes: <code>wsscale preflight</code> with the same plan.</p>");
    s
}

/// Percentiles of every latency histogram with samples.
pub fn latencies(r: &JsonReport) -> String {
    let rows: Vec<(&str, &Percentiles)> = LATENCIES
        .iter()
        .map(|(key, _)| (*key, timing(&r.timings, key)))
        .filter(|(_, p)| p.count > 0)
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<table><thead><tr><th>latency (ms)</th><th>count</th><th>min</th><th>p50</th>\
         <th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr></thead><tbody>",
    );
    for (key, p) in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td>",
            escape(latency_name(key)),
            group(p.count)
        );
        for v in [p.min, p.p50, p.p90, p.p95, p.p99, p.p999, p.max] {
            let _ = write!(s, "<td class=\"n\">{}</td>", ms(v));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// A `timings` histogram by its JSON name.
pub fn timing<'a>(t: &'a JsonTimings, key: &str) -> &'a Percentiles {
    match key {
        "tcp_connect_ms" => &t.tcp_connect_ms,
        "tls_handshake_ms" => &t.tls_handshake_ms,
        "ws_handshake_ms" => &t.ws_handshake_ms,
        "message_rtt_ms" => &t.message_rtt_ms,
        "ping_rtt_ms" => &t.ping_rtt_ms,
        "heartbeat_rtt_ms" => &t.heartbeat_rtt_ms,
        "schedule_lag_ms" => &t.schedule_lag_ms,
        "fanout_latency_ms" => &t.fanout_latency_ms,
        _ => &t.push_latency_ms,
    }
}

/// Connection counts, then failures and drops by category (non-zero ones).
pub fn connections(r: &JsonReport) -> String {
    let c = &r.connections;
    let mut s = String::from("<table class=\"kv\">");
    for (k, v) in [
        ("attempted", c.attempted),
        ("established", c.established),
        ("failed", c.failed),
        ("dropped", c.dropped),
        ("closed", c.closed),
        ("reconnects", c.reconnects),
        ("open at end", c.open_at_end),
    ] {
        let _ = write!(s, "<tr><th>{k}</th><td class=\"n\">{}</td></tr>", group(v));
    }
    s.push_str("</table>");
    let failures: Vec<_> = c.failures.iter().filter(|(_, n)| **n > 0).collect();
    let drops: Vec<_> = c.drops.iter().filter(|(_, n)| **n > 0).collect();
    if !failures.is_empty() || !drops.is_empty() {
        s.push_str(
            "<table><thead><tr><th>kind</th><th>category</th><th>count</th><th>example</th></tr></thead><tbody>",
        );
        for (label, n) in failures {
            let example = c.failure_examples.get(label).map_or("", String::as_str);
            let _ = write!(
                s,
                "<tr><td>failed</td><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td></tr>",
                escape(label),
                group(*n),
                escape(example)
            );
        }
        for (label, n) in drops {
            let _ = write!(
                s,
                "<tr><td>dropped</td><td><code>{}</code></td><td class=\"n\">{}</td><td></td></tr>",
                escape(label),
                group(*n)
            );
        }
        s.push_str("</tbody></table>");
    }
    s
}

/// Per-target rows (only when there are several targets).
pub fn per_target(r: &JsonReport) -> String {
    let t = &r.connections.per_target;
    if t.len() < 2 {
        return String::new();
    }
    let mut s = String::from(
        "<table><thead><tr><th>target</th><th>established</th><th>failed</th></tr></thead><tbody>",
    );
    for row in t {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&row.url),
            group(row.established),
            group(row.failed)
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// Per-source-address rows.
pub fn per_source(r: &JsonReport) -> String {
    let rows = &r.connections.per_source;
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<table><thead><tr><th>source address</th><th>established</th><th>failed</th>\
         <th>out of ports</th></tr></thead><tbody>",
    );
    for row in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&row.address),
            group(row.established),
            group(row.failed),
            group(row.addr_not_available)
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// Per-agent rows of a distributed or merged run.
pub fn per_agent(r: &JsonReport) -> String {
    if r.agents.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<table><thead><tr><th>agent</th><th>host</th><th>planned</th><th>peak open</th>\
         <th>established</th><th>failed</th><th>dropped</th><th>msg RTT p99 (ms)</th>\
         <th>RSS</th><th>status</th></tr></thead><tbody>",
    );
    for a in &r.agents {
        let p99 = a
            .timings
            .get("message_rtt_ms")
            .filter(|p| p.count > 0)
            .map_or("—".to_string(), |p| ms(p.p99));
        let status = if a.lost {
            format!("lost: {}", a.lost_reason.as_deref().unwrap_or("?"))
        } else {
            "ok".to_string()
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{:.1} MiB</td><td>{}</td></tr>",
            escape(&a.name),
            escape(&a.host),
            group(a.planned_connections),
            group(a.peak_open),
            group(a.established),
            group(a.failed),
            group(a.dropped),
            p99,
            a.rss_bytes as f64 / (1024.0 * 1024.0),
            escape(&status)
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// `12,345`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Milliseconds with three decimals.
pub fn ms(v: f64) -> String {
    format!("{v:.3}")
}

/// A number without trailing zeros (up to four decimals).
pub fn number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(number(0.95), "0.95");
        assert_eq!(number(200.0), "200");
    }
}
