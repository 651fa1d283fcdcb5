//! The HTML report (`--report-html`, `wsscale report html`), through the real binary against
//! the embedded gateway.
//!
//! One short run (with timed messages and pings, so every kind of chart has data) is made
//! once per test process and shared (`tests/util/run_report.rs`). The browser test loads the page in headless Chromium
//! from a file URL; it is gated like the protocol tests (`tests/util/servers.rs`): skipped
//! with a notice when `WSSCALE_SERVERS` is unset, failing loudly when it is set and Chromium
//! (`WSSCALE_CHROMIUM`, or `chromium` on PATH; `ci/servers.sh install` installs it) is
//! missing.

#[path = "util/servers.rs"]
mod servers;

#[path = "util/run_report.rs"]
mod run_report;

use std::path::{Path, PathBuf};
use std::process::Command;

use run_report::{fixture, read_json, text, variant, write_json, wsscale};
use serde_json::{Value, json};

/// `(data-chart, data-series, data-points)` of every chart on a page.
fn charts(html: &str) -> Vec<(String, usize, usize)> {
    html.split("<figure class=\"chart\"")
        .skip(1)
        .map(|f| {
            let attr = |name: &str| {
                let start = f.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                f[start..start + f[start..].find('"').unwrap()].to_string()
            };
            (
                attr("data-chart"),
                attr("data-series").parse().unwrap(),
                attr("data-points").parse().unwrap(),
            )
        })
        .collect()
}

const EXPECTED_CHARTS: [&str; 7] = [
    "connections",
    "connect-rate",
    "messages",
    "latency-tcp_connect_ms",
    "latency-ws_handshake_ms",
    "latency-message_rtt_ms",
    "percentiles",
];

#[test]
fn run_writes_a_self_contained_html_report_with_every_chart() {
    let f = fixture();
    let html = std::fs::read_to_string(&f.html).unwrap();
    let found = charts(&html);
    let ids: Vec<&str> = found.iter().map(|c| c.0.as_str()).collect();
    for id in EXPECTED_CHARTS.iter().chain(&["latency-ping_rtt_ms"]) {
        assert!(ids.contains(id), "chart {id} missing; charts: {ids:?}");
    }
    for (id, series, points) in &found {
        assert!(*series > 0 && *points > 0, "chart {id} has no data");
        let figure = html.split(&format!("data-chart=\"{id}\"")).nth(1).unwrap();
        let figure = &figure[..figure.find("</figure>").unwrap()];
        assert_eq!(
            figure.matches("stroke-width=\"2\"").count(),
            *series,
            "chart {id}: one drawn line per series"
        );
    }
    // Self-contained: nothing is loaded from anywhere.
    for needle in ["src=", "href=\"http", "@import", "url("] {
        assert!(!html.contains(needle), "the page references {needle}");
    }
    for section in ["Thresholds", "Parameters", "Latencies", "Source addresses"] {
        assert!(
            html.contains(&format!(">{section}</h2>")),
            "{section} missing"
        );
    }
    assert!(html.contains("✓</td><td><code>failed&gt;=0</code>"));
    assert!(!html.contains(">Agents</h2>"), "no agents in a single run");
}

#[test]
fn report_html_from_json_draws_the_same_charts() {
    let f = fixture();
    let out_path = f.dir.join("from-json.html");
    let out = wsscale(&[
        "report",
        "html",
        f.json.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let from_json = std::fs::read_to_string(&out_path).unwrap();
    let direct = std::fs::read_to_string(&f.html).unwrap();
    assert_eq!(charts(&from_json), charts(&direct));
}

#[test]
fn report_html_of_merged_and_progressive_reports() {
    let f = fixture();
    let base = read_json(&f.json);
    // A merged report of two processes: per-agent table, same chart kinds.
    let (a, b, merged) = (
        f.dir.join("a.json"),
        f.dir.join("b.json"),
        f.dir.join("merged.json"),
    );
    write_json(&a, &base);
    write_json(&b, &base);
    let out = wsscale(&[
        "report",
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = f.dir.join("merged.html");
    let out = wsscale(&[
        "report",
        "html",
        merged.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(">Agents</h2>"));
    assert!(html.contains("a.json") && html.contains("b.json"));
    let ids: Vec<String> = charts(&html).into_iter().map(|c| c.0).collect();
    for id in EXPECTED_CHARTS {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }

    // A progressive document: one section per step, chart ids unique per step.
    let steps = f.dir.join("steps.json");
    write_json(&steps, &json!({"schema_version": 1, "steps": [base, base]}));
    let page = f.dir.join("steps.html");
    let out = wsscale(&[
        "report",
        "html",
        steps.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"step-1\"") && html.contains("id=\"step-2\""));
    let ids: Vec<String> = charts(&html).into_iter().map(|c| c.0).collect();
    assert!(ids.contains(&"step1-connections".to_string()), "{ids:?}");
    assert!(ids.contains(&"step2-percentiles".to_string()), "{ids:?}");
}

/// The report's time series without any failure or drop.
fn clear_failures(doc: &mut Value) {
    for row in doc["timeseries"].as_array_mut().unwrap() {
        row["failures"] = json!(0);
        row["dropped"] = json!(0);
        row["failures_by_category"] = json!({});
        row["drops_by_reason"] = json!({});
    }
}

#[test]
fn failures_chart_shows_each_category_and_only_when_there_were_any() {
    let f = fixture();
    let clean = variant("clean.json", clear_failures);
    let page = f.dir.join("clean.html");
    let out = wsscale(&[
        "report",
        "html",
        clean.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        charts(&html).iter().all(|c| c.0 != "failures"),
        "no failures: the chart is omitted, not drawn empty"
    );

    // Three intervals with refused attempts: one line, named after the category.
    let page = f.dir.join("refused.html");
    let json = variant("refused.json", |doc| {
        clear_failures(doc);
        for row in doc["timeseries"].as_array_mut().unwrap().iter_mut().take(3) {
            row["failures"] = json!(2);
            row["failures_by_category"] = json!({"refused": 2});
        }
    });
    let out = wsscale(&[
        "report",
        "html",
        json.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    let failures = charts(&html)
        .into_iter()
        .find(|c| c.0 == "failures")
        .expect("a failures chart");
    assert_eq!(failures.1, 1, "one series: refused");
    assert!(html.contains("failed: refused"));
}

#[test]
fn report_html_refuses_what_is_not_a_report() {
    let f = fixture();
    let bad = f.dir.join("not-a-report.json");
    std::fs::write(&bad, "{\"hello\": 1}").unwrap();
    let out = wsscale(&[
        "report",
        "html",
        bad.to_str().unwrap(),
        "-o",
        f.dir.join("x.html").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("not-a-report.json") && err.contains("not a wsscale JSON report"),
        "{err}"
    );
}

/// The Chromium binary, or `None` (with the notice) when browser tests are not wanted.
fn chromium() -> Option<PathBuf> {
    if !servers::enabled() {
        eprintln!(
            "skipped: WSSCALE_SERVERS not set (this test needs headless Chromium: ci/servers.sh install; \
             then WSSCALE_SERVERS=1)"
        );
        return None;
    }
    let candidate = std::env::var_os("WSSCALE_CHROMIUM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("chromium"))
                    .find(|p| p.is_file())
            })
        });
    match candidate {
        Some(p) if p.is_file() => Some(p),
        _ => panic!(
            "WSSCALE_SERVERS is set but Chromium was not found (WSSCALE_CHROMIUM or `chromium` on \
             PATH): install it with `ci/servers.sh install` (Debian package chromium), or unset \
             WSSCALE_SERVERS to skip the browser test"
        ),
    }
}

/// Headless Chromium on `page` with `extra` arguments: (stdout, stderr).
fn headless(chromium: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    let url = format!("file://{}", page.display());
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,5000",
        ])
        .args(extra)
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

/// The value of attribute `name` on the first element that has it.
fn attr(dom: &str, name: &str) -> Option<String> {
    let start = dom.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(dom[start..start + dom[start..].find('"')?].to_string())
}

#[test]
fn chromium_draws_every_chart_without_console_errors() {
    let Some(chromium) = chromium() else { return };
    let f = fixture();
    let (dom, stderr) = headless(&chromium, &f.html, &["--dump-dom"]);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert_eq!(
        attr(&dom, "data-errors").as_deref(),
        Some("0"),
        "script errors"
    );
    let on_page = charts(&std::fs::read_to_string(&f.html).unwrap());
    assert_eq!(
        attr(&dom, "data-charts"),
        Some(on_page.len().to_string()),
        "the page's check script did not run"
    );
    assert_eq!(
        attr(&dom, "data-charts-drawn"),
        Some(on_page.len().to_string())
    );
    // Each chart: as many laid-out data lines as it has series.
    for (id, series, _) in &on_page {
        let figure = dom
            .split(&format!("data-chart=\"{id}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("chart {id} not in the DOM"));
        let head = &figure[..figure.find('>').unwrap()];
        assert!(
            head.contains(&format!("data-drawn=\"{series}\"")),
            "chart {id}: {head}"
        );
    }
    eprintln!(
        "page loaded in {} ms (performance.now() at the load event)",
        attr(&dom, "data-load-ms").unwrap_or_default()
    );

    let shot = f.dir.join("report.png");
    let arg = format!("--screenshot={}", shot.display());
    headless(&chromium, &f.html, &[&arg]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot too small"
    );
    eprintln!("screenshot kept at {}", shot.display());
}

#[test]
fn preflight_warnings_get_a_section_only_when_present() {
    let f = fixture();
    let html = std::fs::read_to_string(&f.html).unwrap();
    let has_warnings = !read_json(&f.json)["preflight"]
        .as_array()
        .unwrap()
        .is_empty();
    assert_eq!(html.contains(">Preflight warnings</h2>"), has_warnings);
    let json = variant("preflight.json", |doc| {
        doc["preflight"] = json!([{"check": "ephemeral_ports", "name": "ephemeral ports",
            "status": "warn", "found": "28,232", "needed": "30,000"}]);
    });
    let page = f.dir.join("preflight.html");
    let out = wsscale(&[
        "report",
        "html",
        json.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(">Preflight warnings</h2>"));
    assert!(html.contains("<td>ephemeral ports</td><td>28,232</td><td>30,000</td>"));
}

#[test]
fn progressive_run_writes_one_page_with_a_section_per_step() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["one.toml", "two.toml"] {
        std::fs::write(
            dir.path().join(name),
            format!(
                "description = \"{name}\"\nconnections = 5\nramp = \"200ms\"\nhold = \"200ms\"\n\
                 ramp_down = \"0s\"\ninterval = \"100ms\"\nthreads = 1\nmessage_rate = \"5/s\"\n"
            ),
        )
        .unwrap();
    }
    // The page's path from the progressive profile (`report_html`, relative to it).
    let prof = dir.path().join("prog.toml");
    std::fs::write(
        &prof,
        "steps = [\"one.toml\", \"two.toml\"]\ncool_down = \"0s\"\nreport_html = \"steps.html\"\n",
    )
    .unwrap();
    let out = wsscale(&["run", prof.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("HTML report (2 step(s)) written to"));
    let html = std::fs::read_to_string(dir.path().join("steps.html")).unwrap();
    assert!(html.contains("<h2>Step 1/2</h2>") && html.contains("<h2>Step 2/2</h2>"));
    let ids: Vec<String> = charts(&html).into_iter().map(|c| c.0).collect();
    for step in ["step1", "step2"] {
        for chart in ["connections", "latency-message_rtt_ms", "percentiles"] {
            let id = format!("{step}-{chart}");
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
    }
}
