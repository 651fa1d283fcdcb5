//! The terminal form of the live view: the live line of [`super::live::render`] with a
//! progress bar of the stage clock under it (elapsed / total, ETA, current stage), drawn with
//! `indicatif` on stderr. Only used when stderr is a terminal ([`super::LiveMode::Tty`]);
//! CI logs keep the plain lines of [`super::LivePrinter`].
//!
//! The bar moves once per interval (that is when the view gets new figures); at the end it is
//! cleared and the last live line stays on the terminal, as before.

use std::time::Duration;

use humantime::format_duration;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::timeseries::{IntervalSink, IntervalView};

/// The progress bar sink.
pub struct ProgressView {
    bar: ProgressBar,
}

impl Default for ProgressView {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressView {
    /// A bar drawing on stderr (indicatif hides it when stderr is not a terminal).
    pub fn new() -> ProgressView {
        Self::with_target(ProgressDrawTarget::stderr())
    }

    /// A bar drawing on `target` (tests use a hidden one).
    pub fn with_target(target: ProgressDrawTarget) -> ProgressView {
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let style = ProgressStyle::with_template("{msg}\n[{bar:40.cyan/blue}] {prefix}")
            .expect("a valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        ProgressView { bar }
    }

    /// The bar's length and position (milliseconds of the stage clock) and its prefix text.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

/// The text beside the bar: `1m 10s / 5m ETA 3m 50s | hold 2/3`.
pub fn prefix(elapsed: Duration, total: Duration, stage: &str) -> String {
    let left = total.saturating_sub(elapsed);
    format!(
        "{} / {} ETA {} | {stage}",
        format_duration(round_s(elapsed)),
        format_duration(round_s(total)),
        format_duration(round_s(left)),
    )
}

fn round_s(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs_f64().round() as u64)
}

impl IntervalSink for ProgressView {
    fn interval(&self, v: &IntervalView<'_>) {
        let line = super::live::render(v);
        if v.last {
            self.bar.finish_and_clear();
            eprintln!("{line}");
            return;
        }
        let total_ms = v.total.as_millis() as u64;
        self.bar.set_length(total_ms);
        self.bar
            .set_position((v.elapsed.as_millis() as u64).min(total_ms));
        self.bar.set_prefix(prefix(v.elapsed, v.total, &v.stage));
        self.bar.set_message(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::outcome::IntervalRow;
    use crate::metrics::{Counters, Gauges, Snapshot};

    #[test]
    fn prefix_shows_elapsed_total_eta_and_stage() {
        let p = prefix(
            Duration::from_secs(70),
            Duration::from_secs(300),
            "hold 2/3",
        );
        assert_eq!(p, "1m 10s / 5m ETA 3m 50s | hold 2/3");
        let p = prefix(Duration::from_secs(400), Duration::from_secs(300), "done");
        assert!(p.contains("ETA 0s"), "{p}");
    }

    #[test]
    fn bar_follows_the_stage_clock() {
        let view = ProgressView::with_target(ProgressDrawTarget::hidden());
        let snap = Snapshot::default();
        let totals = Counters::default();
        let row = IntervalRow::default();
        let mut v = IntervalView {
            elapsed: Duration::from_secs(30),
            stage: "ramp-up 1/2".into(),
            target: 50,
            peak_plan: 100,
            total: Duration::from_secs(120),
            gauges: Gauges {
                open: 48,
                ..Gauges::default()
            },
            interval: &snap,
            totals: &totals,
            row: &row,
            last: false,
        };
        view.interval(&v);
        let bar = view.bar();
        assert_eq!(bar.length(), Some(120_000));
        assert_eq!(bar.position(), 30_000);
        assert!(bar.prefix().ends_with("| ramp-up 1/2"), "{}", bar.prefix());
        assert!(bar.message().contains("open 48/50"), "{}", bar.message());
        v.last = true;
        view.interval(&v);
        assert!(bar.is_finished());
    }
}
