//! The text summary's "Disruptions" and "Bursts" sections (the JSON `disruptions[]` and
//! `bursts[]`, see `metrics::disruption` and `metrics::bursts`). A run without drop waves
//! and without bursts shows neither.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::metrics::RunOutcome;

/// Both sections (empty when there is nothing to show).
pub fn recovery_text(o: &RunOutcome) -> String {
    let mut s = String::new();
    disruptions(&mut s, o);
    bursts(&mut s, o);
    s
}

fn disruptions(s: &mut String, o: &RunOutcome) {
    let found = o.disruptions();
    if found.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "Disruptions (drop waves of >= {}% of open connections in one interval)",
        pct(o.disruption_threshold)
    );
    for (i, d) in found.iter().enumerate() {
        let recovery = match d.recovery_s {
            Some(r) => format!("recovered in {r:.1} s"),
            None => "NOT recovered".to_string(),
        };
        let _ = writeln!(
            s,
            "  {}. at {:.1} s: {} of {} dropped ({}); {recovery}",
            i + 1,
            d.start_s,
            d.dropped,
            d.open_before,
            labels(&d.drops_by_reason)
        );
        let _ = writeln!(
            s,
            "     {} reconnect attempts, peak {:.0}/s; {} failed during recovery{}",
            d.reconnect_attempts,
            d.peak_reconnect_rate_per_s,
            d.failures_during_recovery,
            if d.failures_by_category.is_empty() {
                String::new()
            } else {
                format!(" ({})", labels(&d.failures_by_category))
            }
        );
        if let Some(note) = &d.note {
            let _ = writeln!(s, "     {note}");
        }
    }
    s.push('\n');
}

fn bursts(s: &mut String, o: &RunOutcome) {
    let found = o.bursts();
    if found.is_empty() {
        return;
    }
    let _ = writeln!(s, "Bursts (message round trip p99 per interval)");
    for b in &found {
        let base = b
            .baseline_p99_ms
            .map_or("no baseline".to_string(), |p| format!("{p:.2} ms before"));
        let recovery = match b.recovery_s {
            Some(r) => format!("back in {r:.1} s"),
            None => b.note.clone().unwrap_or_default(),
        };
        let _ = writeln!(
            s,
            "  {}. at {:.1} s: p99 {:.2} ms ({base}), {:.0} msgs/s sent; {recovery}",
            b.burst, b.start_s, b.p99_ms, b.peak_msgs_sent_per_s
        );
    }
    s.push('\n');
}

fn labels(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pct(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}
