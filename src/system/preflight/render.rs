//! Preflight output: the aligned table for people ([`table`]), the JSON document for
//! machines ([`json`], schema `schema/preflight-v1.json`), and the refusal message of
//! `wsscale run` ([`refusal`]).
//!
//! The table lists every finding on one line (status, check, found, needed), then the
//! reasoning and fixes of each finding that is not a pass, wrapped to [`WIDTH`] columns.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Finding, Report, Status};
use crate::system::human::{bytes, count};

/// Wrap width of the detail paragraphs.
pub const WIDTH: usize = 100;

/// Version of the JSON document (`schema/preflight-v1.json`).
pub const SCHEMA_VERSION: u64 = 1;

fn headline(report: &Report) -> String {
    let needs = &report.needs;
    let facts = &report.facts;
    let target = if needs.role == crate::system::settings::Role::Gateway {
        "this host accepts the connections".to_owned()
    } else if needs.embedded_gateway && needs.processes > 1 {
        format!(
            "{} processes, embedded gateway as `wsscale serve` processes",
            needs.processes
        )
    } else if needs.embedded_gateway {
        "embedded gateway as a `wsscale serve` child process".to_owned()
    } else {
        format!(
            "{} destination{}",
            count(needs.destinations),
            if needs.destinations == 1 { "" } else { "s" }
        )
    };
    let mut out = format!(
        "wsscale preflight: role {}, {} connections, {target}\n",
        needs.role,
        count(needs.connections)
    );
    let _ = writeln!(
        out,
        "host: kernel {}, {} core{}, {} available, {} network namespace",
        facts.kernel_release.as_deref().unwrap_or("unknown"),
        facts.cores,
        if facts.cores == 1 { "" } else { "s" },
        facts
            .usable_memory()
            .map_or_else(|| "unknown memory".to_owned(), bytes),
        if facts.initial_netns {
            "initial"
        } else {
            "child (container)"
        }
    );
    out
}

fn upper(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Warn => "WARN",
        Status::Fail => "FAIL",
    }
}

/// Appends `label` + `text` word-wrapped at [`WIDTH`], continuation lines indented.
fn wrapped(out: &mut String, indent: &str, label: &str, text: &str) {
    let first = format!("{indent}{label}");
    let pad = " ".repeat(first.chars().count());
    let mut line = first.clone();
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = pad.clone();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn details(out: &mut String, f: &Finding) {
    wrapped(out, "  ", "why: ", &f.why);
    for (i, fix) in f.fix.iter().enumerate() {
        // Snippet lines (YAML) keep their own indentation.
        if fix.starts_with(' ') {
            let _ = writeln!(out, "       {fix}");
        } else {
            wrapped(out, "  ", if i == 0 { "fix: " } else { "     " }, fix);
        }
    }
}

/// The aligned table.
pub fn table(report: &Report) -> String {
    let mut out = headline(report);
    out.push('\n');
    let header = ["STATUS", "CHECK", "FOUND", "NEEDED"].map(str::to_owned);
    let rows: Vec<[String; 4]> = report
        .findings
        .iter()
        .map(|f| {
            [
                upper(f.status).to_owned(),
                f.name.clone(),
                f.found.clone(),
                f.needed.clone(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            std::iter::once(&header)
                .chain(rows.iter())
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for status in [Status::Fail, Status::Warn] {
        for f in report.with_status(status) {
            let _ = write!(out, "\n{} {}\n", upper(status), f.name);
            details(&mut out, f);
        }
    }
    let _ = write!(
        out,
        "\n{} failed, {} warning{}, {} passed: {}\n",
        report.count(Status::Fail),
        report.count(Status::Warn),
        if report.count(Status::Warn) == 1 {
            ""
        } else {
            "s"
        },
        report.count(Status::Pass),
        if report.failed() {
            "the plan cannot run on this host as it is (exit 2)"
        } else {
            "nothing blocks the plan (exit 0)"
        }
    );
    out
}

/// The JSON document (`schema/preflight-v1.json`).
pub fn json(report: &Report) -> Value {
    let facts = &report.facts;
    json!({
        "schema_version": SCHEMA_VERSION,
        "kind": "wsscale-preflight",
        "version": env!("CARGO_PKG_VERSION"),
        "role": report.needs.role.label(),
        "connections": report.needs.connections,
        "embedded_gateway": report.needs.embedded_gateway,
        "host": {
            "kernel": facts.kernel_release,
            "cores": facts.cores,
            "mem_available_bytes": facts.mem_available,
            "cgroup_memory_limit_bytes": facts.cgroup_memory.map(|(limit, _)| limit),
            "initial_netns": facts.initial_netns,
            "nofile_soft": facts.nofile.map(|l| l.soft),
            "nofile_hard": facts.nofile.map(|l| l.hard),
            "cap_sys_resource": facts.cap_sys_resource,
        },
        "findings": report.findings,
        "targets": report.targets,
        "summary": {
            "pass": report.count(Status::Pass),
            "warn": report.count(Status::Warn),
            "fail": report.count(Status::Fail),
        },
        "exit_code": report.exit_code(),
    })
}

/// Why `wsscale run` refuses the plan: each failing finding with found/needed, the
/// arithmetic and the fix.
pub fn refusal(report: &Report) -> String {
    let fails: Vec<&Finding> = report.with_status(Status::Fail).collect();
    let mut out = format!(
        "the plan cannot run on this host: preflight found {} blocking problem{}\n",
        fails.len(),
        if fails.len() == 1 { "" } else { "s" }
    );
    for f in fails {
        let _ = write!(
            out,
            "\n{}: found {}; needed {}\n",
            f.name, f.found, f.needed
        );
        details(&mut out, f);
    }
    out.push_str(
        "\n`wsscale preflight` with the same arguments shows every check; --skip-preflight \
         runs anyway.",
    );
    out
}
