//! The HTTP side of watching a gateway: scraping a Prometheus text exposition
//! (`--gateway-metrics URL`, parsed with `prometheus-parse`) and the health check
//! (`--health-url URL`). Both use one `ureq` agent with a timeout; a failure is a figure
//! (counted in the sample), never an error that stops the run.
//!
//! From a scrape: `process_resident_memory_bytes`, `process_cpu_seconds_total` (a counter:
//! its rate × 100 is the CPU %), `process_open_fds`, and every `--gateway-metric` selector
//! (`NAME` or `NAME{label="v",…}`; every series matching it is summed): gauges (and untyped
//! series) as values, counters as rates per second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value};

use super::WatchError;
use crate::metrics::gateway::HealthCheck;

/// A `--gateway-metric` selector: a series name and the labels it must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSelector {
    /// As written (the key in the report).
    pub text: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl MetricSelector {
    /// Parse `NAME` or `NAME{label="v",other="w"}`.
    pub fn parse(text: &str) -> Result<MetricSelector, WatchError> {
        let bad = |why: &str| WatchError::Selector {
            text: text.to_string(),
            why: why.to_string(),
        };
        let t = text.trim();
        let (name, labels) = match t.split_once('{') {
            None => (t, ""),
            Some((n, rest)) => (
                n.trim(),
                rest.strip_suffix('}')
                    .ok_or_else(|| bad("missing the closing '}'"))?,
            ),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && !s.starts_with(|c: char| c.is_ascii_digit())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        };
        if !valid(name) {
            return Err(bad("a metric name is letters, digits, '_' and ':'"));
        }
        let mut out = Vec::new();
        for pair in labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("labels are written label=\"value\""))?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| bad("label values are quoted: label=\"value\""))?;
            if !valid(k.trim()) {
                return Err(bad("a label name is letters, digits and '_'"));
            }
            out.push((k.trim().to_string(), v.to_string()));
        }
        Ok(MetricSelector {
            text: t.to_string(),
            name: name.to_string(),
            labels: out,
        })
    }

    fn matches(&self, s: &Sample) -> bool {
        s.metric == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| s.labels.get(k) == Some(v.as_str()))
    }
}

/// An HTTP agent with `timeout` for the whole request; statuses are answers, not errors.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// What one scrape read (raw values: counters as totals, not yet rates).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeValues {
    pub rss_bytes: Option<f64>,
    pub cpu_seconds_total: Option<f64>,
    pub open_fds: Option<f64>,
    /// Per selector: (value, is a counter).
    pub selected: BTreeMap<String, (f64, bool)>,
}

/// GET and parse one exposition.
pub fn scrape(
    agent: &ureq::Agent,
    url: &str,
    selectors: &[MetricSelector],
) -> Result<ScrapeValues, String> {
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(format!("HTTP status {status}"));
    }
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    parse_exposition(&body, selectors)
}

/// Read the figures out of an exposition text.
pub fn parse_exposition(body: &str, selectors: &[MetricSelector]) -> Result<ScrapeValues, String> {
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| format!("not a Prometheus text exposition: {e}"))?;
    let scalar = |v: &Value| match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => Some(*x),
        _ => None,
    };
    let sum = |name: &str| -> Option<f64> {
        let vals: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| scalar(&s.value))
            .collect();
        (!vals.is_empty()).then(|| vals.iter().sum())
    };
    let mut out = ScrapeValues {
        rss_bytes: sum("process_resident_memory_bytes"),
        cpu_seconds_total: sum("process_cpu_seconds_total"),
        open_fds: sum("process_open_fds"),
        selected: BTreeMap::new(),
    };
    for sel in selectors {
        let mut total = None;
        let mut counter = false;
        for s in scrape.samples.iter().filter(|s| sel.matches(s)) {
            if let Some(v) = scalar(&s.value) {
                counter |= matches!(s.value, Value::Counter(_));
                *total.get_or_insert(0.0) += v;
            }
        }
        if let Some(v) = total {
            out.selected.insert(sel.text.clone(), (v, counter));
        }
    }
    Ok(out)
}

/// One health check: 2xx within the timeout is healthy.
pub fn health(agent: &ureq::Agent, url: &str) -> HealthCheck {
    let t0 = Instant::now();
    let status = agent.get(url).call().ok().map(|r| r.status().as_u16());
    HealthCheck {
        status,
        latency_ms: (t0.elapsed().as_secs_f64() * 1e6).round() / 1000.0,
        ok: status.is_some_and(|s| (200..300).contains(&s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let s = MetricSelector::parse(r#"ws_connections{node="a", kind="ws"}"#).unwrap();
        assert_eq!(s.name, "ws_connections");
        assert_eq!(s.labels.len(), 2);
        assert!(MetricSelector::parse("9bad").is_err());
        assert!(MetricSelector::parse("x{a=b}").is_err());
        assert!(MetricSelector::parse("x{a=\"b\"").is_err());
    }

    #[test]
    fn reads_process_metrics_and_selected_series() {
        let body = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n\
# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.5e+07\n\
# TYPE conns gauge\nconns{node=\"a\"} 10\nconns{node=\"b\"} 5\n\
# TYPE msgs_total counter\nmsgs_total 100\n";
        let sels = [
            MetricSelector::parse("conns").unwrap(),
            MetricSelector::parse("conns{node=\"b\"}").unwrap(),
            MetricSelector::parse("msgs_total").unwrap(),
        ];
        let v = parse_exposition(body, &sels).unwrap();
        assert_eq!(v.rss_bytes, Some(1.5e7));
        assert_eq!(v.cpu_seconds_total, Some(12.5));
        assert_eq!(v.open_fds, None);
        assert_eq!(v.selected["conns"], (15.0, false));
        assert_eq!(v.selected["conns{node=\"b\"}"], (5.0, false));
        assert_eq!(v.selected["msgs_total"], (100.0, true));
    }
}
