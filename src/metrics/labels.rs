//! Failure categories and drop reasons by their report label, with counts.
//!
//! One place turns [`Counters`] into the labelled counts the reports show: the run totals
//! (`connections.failures`, `connections.drops`, the text summary) and each interval of the
//! time series (`timeseries[].failures_by_category`, `timeseries[].drops_by_reason`).

use super::{Counters, DropReason, FailureKind, tls_alert_name};

/// Failure categories with their counts, in [`FailureKind::ALL`] order, every fixed category
/// included (0 too), `http_status` split into `http_status_<code>` (ascending code) and
/// `tls_alert` into `tls_alert_<name>` (ascending alert code); the remainders that could not
/// be attributed are `http_status_other` / `tls_alert_other` (only when non-zero).
pub fn failure_counts(c: &Counters) -> Vec<(String, u64)> {
    let mut out = Vec::with_capacity(FailureKind::ALL.len() + c.http_status.len());
    for kind in FailureKind::ALL {
        if kind == FailureKind::TlsAlert {
            let mut by_name = 0u64;
            for (code, n) in &c.tls_alerts {
                out.push((format!("tls_alert_{}", tls_alert_name(*code)), *n));
                by_name += n;
            }
            let other = c.failures_of(kind).saturating_sub(by_name);
            if other > 0 {
                out.push(("tls_alert_other".to_string(), other));
            }
            continue;
        }
        if kind != FailureKind::HttpStatus {
            out.push((kind.label().to_string(), c.failures_of(kind)));
            continue;
        }
        let mut by_code = 0u64;
        for (code, n) in &c.http_status {
            out.push((format!("http_status_{code}"), *n));
            by_code += n;
        }
        let other = c.failures_of(kind).saturating_sub(by_code);
        if other > 0 {
            out.push(("http_status_other".to_string(), other));
        }
    }
    out
}

/// Drop reasons with their counts: one `close_<code>` per close code seen, then every fixed
/// reason (0 too).
pub fn drop_counts(c: &Counters) -> Vec<(String, u64)> {
    let drops = &c.drops;
    let mut out: Vec<(String, u64)> = drops
        .iter()
        .filter(|(r, _)| matches!(r, DropReason::CloseCode(_)))
        .map(|(r, n)| (r.label(), *n))
        .collect();
    for reason in [
        DropReason::Reset,
        DropReason::Eof,
        DropReason::Protocol,
        DropReason::PingTimeout,
        DropReason::Io,
    ] {
        out.push((reason.label(), drops.get(&reason).copied().unwrap_or(0)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_is_split_by_code_and_other_keeps_the_rest() {
        let mut c = Counters::default();
        c.fail(FailureKind::HttpStatus);
        c.fail(FailureKind::HttpStatus);
        *c.http_status.entry(503).or_default() += 1;
        c.drop_with(DropReason::CloseCode(1001));
        let f: std::collections::BTreeMap<_, _> = failure_counts(&c).into_iter().collect();
        assert_eq!(f["http_status_503"], 1);
        assert_eq!(f["http_status_other"], 1);
        assert_eq!(f["refused"], 0);
        let d: std::collections::BTreeMap<_, _> = drop_counts(&c).into_iter().collect();
        assert_eq!(d["close_1001"], 1);
        assert_eq!(d["reset"], 0);
    }
}
