//! The fuzz corpus, replayed through the fuzz targets' own entry points
//! (`wsscale::fuzzing`) — no fuzzer needed: every committed seed in `fuzz/corpus/TARGET/`
//! and every reproducer of a past finding in `fuzz/regressions/TARGET/` must run through
//! its target without a panic (a target asserts its parser's invariants, too).

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn every_target_has_a_seed_corpus_and_replays_it() {
    for (name, target) in wsscale::fuzzing::TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz/corpus/{name}/ has no seeds");
        for seed in seeds {
            let data = std::fs::read(&seed).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
                panic!("{name}: {} panicked: {panic:?}", seed.display());
            }
        }
    }
}

#[test]
fn past_findings_stay_fixed() {
    let dir = fuzz_dir().join("regressions");
    for (name, target) in wsscale::fuzzing::TARGETS {
        for case in files(&dir.join(name)) {
            let data = std::fs::read(&case).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
                panic!(
                    "{name}: regression {} panics again: {panic:?}",
                    case.display()
                );
            }
        }
    }
}

#[test]
fn the_seeds_reach_past_the_first_check() {
    // A corpus of rejects would leave the fuzzer outside the parser: the valid upgrade
    // seed must be accepted with the key the target uses.
    use wsscale::engine::ws::{UpgradeResponse, connection_key, parse_upgrade_response};
    let data = std::fs::read(fuzz_dir().join("corpus/upgrade_response/accepted")).unwrap();
    assert!(matches!(
        parse_upgrade_response(&data, &connection_key(0x5eed, 7), None),
        UpgradeResponse::Accepted { .. }
    ));
    let frames = std::fs::read(fuzz_dir().join("corpus/frames/ping_pong_close")).unwrap();
    assert!(matches!(
        wsscale::engine::ws::parse_frame_header(&frames, 1 << 20, false),
        wsscale::engine::ws::FrameParse::Frame(_)
    ));
}
