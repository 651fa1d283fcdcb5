//! One AFL++ binary for every fuzz target of `wsscale::fuzzing`; the target is chosen with
//! `WSSCALE_FUZZ_TARGET` (run.sh sets it). Persistent mode: the target function is called
//! in a loop on each input AFL++ hands over.

fn main() {
    let name = std::env::var("WSSCALE_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = wsscale::fuzzing::target(&name) else {
        let names: Vec<&str> = wsscale::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "set WSSCALE_FUZZ_TARGET to one of: {} (got {name:?})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
