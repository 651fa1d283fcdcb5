#!/usr/bin/env bash
# Fuzz one target of wsscale::fuzzing with AFL++ (cargo-afl: stable Rust, no nightly).
#
#   fuzz/run.sh TARGET [SECONDS]      e.g. fuzz/run.sh frames 600
#   fuzz/run.sh list                  the targets
#
# Starts from the committed seeds (fuzz/corpus/TARGET), writes AFL++'s state to
# fuzz/out/TARGET, prints execs/s, paths found and crashes, and exits 1 when a crash or hang
# was found (its input is in fuzz/out/TARGET/default/crashes: copy it to
# fuzz/regressions/TARGET/ once fixed, so the test suite replays it forever).
# Installs cargo-afl from crates.io when it is missing. Changes no host setting: AFL++ is told
# not to insist on its preferred core_pattern and CPU governor.
set -euo pipefail
cd "$(dirname "$0")"

targets="upgrade_response frames inflate protocol_decoders wire_messages profile units"
if [[ $# -lt 1 || "$1" == "list" ]]; then
  echo "targets: $targets"
  [[ $# -ge 1 ]] && exit 0 || exit 2
fi
target=$1
secs=${2:-600}
if [[ " $targets " != *" $target "* ]]; then
  echo "unknown target '$target'; targets: $targets" >&2
  exit 2
fi

if ! cargo afl --version >/dev/null 2>&1; then
  echo "cargo-afl not found: installing it from crates.io (builds AFL++ too)"
  cargo install --locked cargo-afl
fi
cargo afl build --release --quiet

out=out/$target
mkdir -p "$out"
export WSSCALE_FUZZ_TARGET=$target
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
# Resume when a previous run left state, else start from the seeds.
input=corpus/$target
[[ -d "$out/default/queue" ]] && input=-
bin=${CARGO_TARGET_DIR:-target}/release/wsscale-fuzz
# The coverage map this binary needs (the whole crate is instrumented).
AFL_MAP_SIZE=$(AFL_DUMP_MAP_SIZE=1 "$bin" || true)
export AFL_MAP_SIZE
echo "fuzzing $target for ${secs}s (seeds: $(ls corpus/"$target" | wc -l), map size $AFL_MAP_SIZE)"
cargo afl fuzz -t "${AFL_TIMEOUT_MS:-2000}+" -V "$secs" -i "$input" -o "$out" "$bin" >"$out/afl.log" 2>&1 || {
  echo "afl-fuzz failed; its output:" >&2
  tail -30 "$out/afl.log" >&2
  exit 1
}

stats=$out/default/fuzzer_stats
get() { awk -F': *' -v k="$1" '$1 ~ "^"k" *$" {print $2}' "$stats"; }
crashes=$(get saved_crashes)
hangs=$(get saved_hangs)
echo "target            $target"
echo "run time          $(get run_time) s"
echo "executions        $(get execs_done)"
echo "execs/s           $(get execs_per_sec)"
echo "corpus (queue)    $(get corpus_count) inputs, $(get corpus_found) found by fuzzing"
echo "edges covered     $(get edges_found) of $(get total_edges) ($(get bitmap_cvg))"
echo "crashes, hangs    ${crashes:-0}, ${hangs:-0}"
if [[ "${crashes:-0}" != 0 || "${hangs:-0}" != 0 ]]; then
  echo "FINDINGS in $out/default/crashes and $out/default/hangs" >&2
  exit 1
fi
