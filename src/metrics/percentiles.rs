//! [`Percentiles`]: milliseconds from a microsecond HdrHistogram — the one conversion every
//! report, live line, threshold and agent table uses.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles in milliseconds, read from an HdrHistogram recorded in microseconds.
///
/// Every value is rounded to three decimals (microsecond precision). An empty histogram gives
/// `count == 0` and zeros everywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of a histogram whose values are microseconds.
    pub fn from_hist(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |quantile: f64| us_to_ms(h.value_at_quantile(quantile) as f64);
        Percentiles {
            count: h.len(),
            min: us_to_ms(h.min() as f64),
            mean: us_to_ms(h.mean()),
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: us_to_ms(h.max() as f64),
        }
    }
}

/// Microseconds to milliseconds, rounded to three decimals.
fn us_to_ms(us: f64) -> f64 {
    us.round() / 1000.0
}

/// One quantile of a microsecond histogram in milliseconds (three decimals); `0` when empty.
pub fn quantile_ms(h: &Histogram<u64>, quantile: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        us_to_ms(h.value_at_quantile(quantile) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_microseconds() {
        assert_eq!(us_to_ms(1234.4), 1.234);
        assert_eq!(us_to_ms(1234.6), 1.235);
        assert_eq!(us_to_ms(0.0), 0.0);
    }

    #[test]
    fn quantiles_of_empty_and_filled_histograms() {
        let mut h = crate::metrics::new_histogram();
        assert_eq!(quantile_ms(&h, 0.5), 0.0);
        h.record(1500).unwrap();
        assert_eq!(quantile_ms(&h, 0.5), 1.5);
        assert_eq!(Percentiles::from_hist(&h).max, 1.5);
    }
}
