//! The layering of `src/` (see `src/lib.rs`): each top-level module may use only the modules
//! below it. This test reads every `src/**/*.rs`, strips comments, and fails on a
//! `crate::<module>` reference that runs against the order — so the shape stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which top-level modules each module may use (besides itself).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("plan", &[][..]),
        ("metrics", &["plan"][..]),
        ("engine", &["metrics", "plan"][..]),
        ("report", &["metrics", "plan"][..]),
        ("system", &["engine", "report", "metrics", "plan"][..]),
        ("gateway", &["engine", "report", "metrics", "plan"][..]),
        (
            "cluster",
            &["system", "gateway", "engine", "report", "metrics", "plan"][..],
        ),
        (
            "cli",
            &[
                "cluster", "system", "gateway", "engine", "report", "metrics", "plan",
            ][..],
        ),
        (
            "fuzzing",
            &[
                "cluster", "system", "gateway", "engine", "report", "metrics", "plan",
            ][..],
        ),
    ])
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without `//` comments (doc comments may mention any module).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // Keep `//` inside string literals such as "ws://": only cut when the part before
            // has an even number of quotes.
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::x` references in `code`.
fn references(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + 7..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let boundary = i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if boundary && !name.is_empty() {
            out.push(name);
        }
        rest = after;
    }
    out
}

/// Every violation of the layering in `src/`.
fn violations(src: &Path) -> Vec<String> {
    let allowed = allowed();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(ok) = allowed.get(top.as_str()) else {
            // lib.rs and main.rs sit above every layer.
            assert!(
                top == "lib" || top == "main",
                "{}: module `{top}` has no place in the layering; add it to tests/layering.rs and src/lib.rs",
                f.display()
            );
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        for r in references(&code(&text)) {
            if r != top && allowed.contains_key(r.as_str()) && !ok.contains(&r.as_str()) {
                bad.push(format!("{}: `{top}` uses `crate::{r}`", rel.display()));
            }
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports against the layering (see src/lib.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_catches_an_upward_import() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plan")).unwrap();
    std::fs::create_dir_all(dir.path().join("engine")).unwrap();
    std::fs::write(
        dir.path().join("plan/mod.rs"),
        "//! docs may name crate::cli\nuse crate::cli::args::RunArgs; // upward\nconst U: &str = \"ws://x\";\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("engine/mod.rs"),
        "use crate::metrics::Snapshot;\nfn f() { crate::report::to_json(); }\n",
    )
    .unwrap();
    let bad = violations(dir.path());
    assert_eq!(
        bad,
        vec![
            "engine/mod.rs: `engine` uses `crate::report`".to_string(),
            "plan/mod.rs: `plan` uses `crate::cli`".to_string(),
        ]
    );
}
