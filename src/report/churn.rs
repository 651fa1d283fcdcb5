//! The text summary's Churn section and the live line's churn part (the JSON `churn`
//! section is [`crate::metrics::churn::ChurnSummary`], serialized as it is).

use std::fmt::Write as _;

use crate::metrics::Counters;
use crate::metrics::churn::summary;
use crate::metrics::outcome::{IntervalRow, RunOutcome};

/// The Churn section (empty when the plan had neither churn nor rate stages). Every figure
/// is in the JSON `churn` object under the same name.
pub fn churn_text(o: &RunOutcome) -> String {
    let Some(c) = summary(o) else {
        return String::new();
    };
    let mut s = String::from("Churn\n");
    let mut kv = |label: &str, value: String| {
        let _ = writeln!(s, "  {label:<20}{value}");
    };
    if let Some(planned) = &c.session_duration {
        let observed = if c.observed_s.count > 0 {
            format!(
                "mean {:.2}s, p50 {:.2}s, p99 {:.2}s",
                c.observed_s.mean, c.observed_s.p50, c.observed_s.p99
            )
        } else {
            "none ended".to_string()
        };
        kv(
            "session",
            format!(
                "{planned} (mean {:.2}s) | observed {observed}",
                c.planned_mean_s.unwrap_or(0.0)
            ),
        );
    }
    kv("sessions completed", c.sessions_completed.to_string());
    kv(
        "opens/s",
        format!(
            "mean {:.1} (steady {:.1}s), peak {:.1}",
            c.opens_per_s.mean, c.steady_s, c.opens_per_s.peak
        ),
    );
    kv(
        "closes/s",
        format!(
            "mean {:.1}, peak {:.1}",
            c.closes_per_s.mean, c.closes_per_s.peak
        ),
    );
    kv("peak open+opening", c.peak_open_or_opening.to_string());
    if let Some(a) = &c.arrival {
        let rates: Vec<String> = a
            .rates_per_s
            .iter()
            .map(|r| r.map_or_else(|| "count".to_string(), |r| format!("{r}/s")))
            .collect();
        kv(
            "arrival",
            format!(
                "rates [{}], max open {}, skipped {}",
                rates.join(", "),
                a.max_open,
                a.skipped
            ),
        );
    }
    s.push('\n');
    s
}

/// `churn +510/s -498/s` (opens and churn closes per second this interval, and skipped
/// arrivals so far); `None` before anything churned or was skipped.
pub fn live_part(totals: &Counters, row: &IntervalRow) -> Option<String> {
    if totals.churn_closes == 0 && totals.arrivals_skipped == 0 && row.closes_per_s == 0.0 {
        return None;
    }
    let mut part = format!("churn +{:.0}/s -{:.0}/s", row.opens_per_s, row.closes_per_s);
    if totals.arrivals_skipped > 0 {
        let _ = write!(part, " skipped {}", totals.arrivals_skipped);
    }
    Some(part)
}
