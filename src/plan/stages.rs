//! Stage model: a list of `(duration, target)` pairs, k6 style.
//!
//! Each stage moves the connection target linearly from where the previous stage ended
//! (0 before the first) to its own `target` over its `duration`. A stage whose target equals
//! the previous one is a hold. [`StageClock::target_at`] gives the (fractional) number of
//! connections that should exist at an instant; a [`Slice`] turns that into the whole number a
//! shard, process or agent is responsible for, such that the slices of a partition always sum
//! to the global figure (no connection lost or doubled by rounding).

use std::time::Duration;

/// One stage: reach `target` connections, linearly, over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub duration: Duration,
    pub target: u64,
}

/// Evaluates the stage list against time since start.
#[derive(Debug, Clone)]
pub struct StageClock {
    stages: Vec<Stage>,
}

impl StageClock {
    pub fn new(stages: Vec<Stage>) -> Self {
        StageClock { stages }
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Total duration of all stages.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Index of the stage running at `elapsed`, or `None` once all stages are over.
    pub fn stage_index(&self, elapsed: Duration) -> Option<usize> {
        let mut start = Duration::ZERO;
        for (i, s) in self.stages.iter().enumerate() {
            let end = start + s.duration;
            if elapsed < end {
                return Some(i);
            }
            start = end;
        }
        None
    }

    /// Fractional connection target at `elapsed` (linear interpolation inside a stage).
    /// After the last stage it is the last stage's target.
    pub fn target_at(&self, elapsed: Duration) -> f64 {
        let mut start = Duration::ZERO;
        let mut from = 0.0f64;
        for s in &self.stages {
            let to = s.target as f64;
            let end = start + s.duration;
            if elapsed < end {
                let frac = if s.duration.is_zero() {
                    1.0
                } else {
                    (elapsed - start).as_secs_f64() / s.duration.as_secs_f64()
                };
                return from + (to - from) * frac;
            }
            from = to;
            start = end;
        }
        from
    }

    /// When the target stops being constant: the end of the stage running at `elapsed` if
    /// that stage is a hold (its target equals where the previous one ended), `None` while
    /// the target moves (or once all stages are over). A worker that holds its share may
    /// sleep until then as far as the stage clock is concerned.
    pub fn steady_until(&self, elapsed: Duration) -> Option<Duration> {
        let mut start = Duration::ZERO;
        let mut from = 0;
        for s in &self.stages {
            let end = start + s.duration;
            if elapsed < end {
                return (s.target == from).then_some(end);
            }
            from = s.target;
            start = end;
        }
        None
    }

    /// The whole number of connections that should be open at `elapsed`: [`target_at`]
    /// rounded **up**, so a linear ramp reaches every stage target — the peak at the vertex
    /// between a ramp up and a ramp down is held, not skipped (rounding down would reach `N`
    /// only at one instant, and `--stage 1s:10 --stage 1s:0` would open 9). The first
    /// connection of a ramp opens right at its start, the last one closes at its end.
    ///
    /// [`target_at`]: StageClock::target_at
    pub fn count_at(&self, elapsed: Duration) -> f64 {
        // The epsilon keeps float noise (10.000000001) from rounding up to 11.
        (self.target_at(elapsed) - 1e-9).ceil().max(0.0)
    }
}

/// The part `[lo, hi)` of every stage target that one worker owns. `lo`/`hi` are fractions
/// of the whole (0.0..=1.0); a partition of `[0, 1)` into slices gives counts that sum to
/// exactly the global count, because each slice takes `floor(t*hi) - floor(t*lo)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slice {
    pub lo: f64,
    pub hi: f64,
}

impl Slice {
    /// The whole plan.
    pub const WHOLE: Slice = Slice { lo: 0.0, hi: 1.0 };

    /// Slice `i` of `n` equal parts.
    pub fn nth(i: usize, n: usize) -> Slice {
        assert!(n > 0 && i < n, "slice {i} of {n}");
        Slice {
            lo: i as f64 / n as f64,
            hi: (i + 1) as f64 / n as f64,
        }
    }

    /// Slice `i` of `n` equal parts of this slice.
    pub fn sub(&self, i: usize, n: usize) -> Slice {
        let part = Slice::nth(i, n);
        let w = self.hi - self.lo;
        Slice {
            lo: self.lo + w * part.lo,
            hi: if i + 1 == n {
                self.hi
            } else {
                self.lo + w * part.hi
            },
        }
    }

    /// This slice's whole share of a (fractional) global target.
    pub fn count(&self, global: f64) -> u64 {
        // A tiny epsilon keeps 1000 * 0.3 from flooring to 299.
        let f = |x: f64| (global * x + 1e-9).floor() as u64;
        f(self.hi).saturating_sub(f(self.lo))
    }
}
