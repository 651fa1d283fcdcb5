//! The `Gateway` and `Drift` sections of the text summary: the watched gateway's memory per
//! held connection, CPU, descriptors, its own connection count beside wsscale's, scrapes and
//! health; then the drift notes of the hold stages. Every figure is also in the JSON report
//! (`gateway`, `drift[]`).

use std::fmt::Write as _;

use crate::metrics::RunOutcome;
use crate::metrics::gateway;

fn kv(s: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(s, "  {label:<20}{value}");
}

fn mib(b: u64) -> String {
    format!("{:>12.2} MiB  ({b} bytes)", b as f64 / (1024.0 * 1024.0))
}

/// The `Gateway` section (empty when nothing was watched) and the `Drift` section (empty
/// without a hold stage).
pub fn gateway_text(o: &RunOutcome) -> String {
    let mut s = String::new();
    if let Some(g) = gateway::summary(o) {
        let _ = writeln!(s, "Gateway ({})", g.watched.join(", "));
        if let Some(b) = g.rss_before_bytes {
            kv(&mut s, "RSS before", mib(b));
        }
        if let Some(b) = g.rss_peak_bytes {
            kv(&mut s, "RSS peak", mib(b));
        }
        if let Some(b) = g.rss_at_peak_open_bytes {
            kv(&mut s, "RSS at peak open", mib(b));
        }
        match g.bytes_per_connection {
            Some(b) => kv(
                &mut s,
                "per connection",
                format!(
                    "{:>12.2} KiB  ({b:.0} bytes, {} open)",
                    b / 1024.0,
                    g.open_at_peak
                ),
            ),
            None if g.rss_before_bytes.is_some() => kv(
                &mut s,
                "per connection",
                "n/a (no connection was open at a sample)",
            ),
            None => {}
        }
        if let Some(c) = g.cpu_percent {
            kv(
                &mut s,
                "CPU",
                format!(
                    "{:>12.1} % mean, {:.1} % max (100 % = one core)",
                    c.mean, c.max
                ),
            );
        }
        if let Some(t) = g.threads_max {
            kv(&mut s, "threads (max)", format!("{t:>12}"));
        }
        if let Some(f) = g.fds_max {
            kv(&mut s, "open fds (max)", format!("{f:>12}"));
        }
        if let Some(e) = g.established_at_peak {
            kv(
                &mut s,
                "ESTABLISHED",
                format!(
                    "{e:>12}  (wsscale had {} open at that sample)",
                    g.open_at_peak
                ),
            );
        }
        if let Some(m) = &g.connection_mismatch {
            kv(&mut s, "MISMATCH", m);
        }
        if g.scrapes > 0 {
            kv(
                &mut s,
                "scrapes",
                format!("{:>12}  ({} failed)", g.scrapes, g.scrape_failures),
            );
        }
        for (name, m) in &g.metrics {
            kv(
                &mut s,
                "metric",
                format!("{name}: mean {}, max {}", m.mean, m.max),
            );
        }
        if let Some(h) = &g.health {
            let lat = h
                .latency_ms
                .map(|l| format!(", latency {:.1} ms mean, {:.1} ms max", l.mean, l.max))
                .unwrap_or_default();
            kv(
                &mut s,
                "health checks",
                format!("{:>12}  ({} failed{lat})", h.checks, h.failures),
            );
            if !h.failure_times_s.is_empty() {
                let shown: Vec<String> = h
                    .failure_times_s
                    .iter()
                    .take(10)
                    .map(|t| format!("{t:.1}s"))
                    .collect();
                let more = h.failure_times_s.len().saturating_sub(10);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                kv(
                    &mut s,
                    "health failed at",
                    format!("{}{more}", shown.join(", ")),
                );
            }
        }
        if let Some(t) = g.sample_ms {
            kv(
                &mut s,
                "watching cost",
                format!(
                    "{:>12.1} ms per sample mean, {:.1} ms max; {:.2} s CPU in all",
                    t.mean, t.max, g.watcher_cpu_s
                ),
            );
        }
        for e in &g.errors {
            kv(&mut s, "error", e);
        }
        s.push('\n');
    }
    let drift = gateway::drift(o);
    if !drift.is_empty() {
        let _ = writeln!(s, "Drift (last quarter ÷ first quarter of each hold)");
        for d in &drift {
            let mut parts = Vec::new();
            if let Some(r) = d.message_rtt_ms {
                parts.push(format!("message p50 ×{:.2} p99 ×{:.2}", r.p50, r.p99));
            }
            if let Some(r) = d.ping_rtt_ms {
                parts.push(format!("ping p99 ×{:.2}", r.p99));
            }
            if let Some(r) = d.heartbeat_rtt_ms {
                parts.push(format!("heartbeat p99 ×{:.2}", r.p99));
            }
            if let Some(r) = d.msgs_per_s {
                parts.push(format!("msgs/s ×{r:.2}"));
            }
            if let Some(v) = d.gateway_rss_bytes_per_min {
                parts.push(format!("gateway RSS {:+.2} MiB/min", v / (1024.0 * 1024.0)));
            }
            if let Some(v) = d.client_rss_bytes_per_min {
                parts.push(format!("client RSS {:+.2} MiB/min", v / (1024.0 * 1024.0)));
            }
            if parts.is_empty() {
                parts.push("no samples in its first and last quarter".into());
            }
            kv(&mut s, &format!("stage {}", d.stage), parts.join(", "));
            for n in &d.notes {
                kv(&mut s, "", format!("! {n}"));
            }
        }
        s.push('\n');
    }
    s
}
