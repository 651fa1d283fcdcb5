#!/usr/bin/env bash
# Churn benchmark: sustained opens per second with 10,000 connections open, each living an
# exponentially distributed session of 2 s mean (profiles/churn.toml), against the embedded
# gateway (`wsscale run` without --target starts it in its own process).
#
# Target, from Little's law: 10,000 open ÷ 2 s mean session = 5,000 opens/s; the run must
# sustain at least 90 % of it (4,500 opens/s) as `churn.opens_per_s.mean` of the JSON report
# (the mean over the hold, the steady part of the run), with every attempt established and
# no connection dropped. Prints the measured figures; exits non-zero below the target.
#
# Usage: bench/churn.sh [HOLD] [CONNECTIONS] [MEAN_SESSION]     e.g. bench/churn.sh 60s
set -euo pipefail
cd "$(dirname "$0")/.."

HOLD=${1:-60s}
N=${2:-10000}
MEAN=${3:-2s}
BIN=${CARGO_TARGET_DIR:-target}/release/wsscale
echo "building wsscale (release)…"
cargo build --release
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "running: profiles/churn.toml -c $N --session-duration exp:$MEAN --hold $HOLD" \
  "(load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
"$BIN" run profiles/churn.toml -c "$N" --session-duration "exp:$MEAN" --hold "$HOLD" \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" ||
  [ -s "$WORK/report.json" ] || { echo "the run failed"; cat "$WORK/summary.txt"; exit 1; }
sed -n '/^Churn/,/^$/p' "$WORK/summary.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$WORK/report.json" "$N" "$MEAN" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
mean_s = r["churn"]["planned_mean_s"]
target = 0.9 * n / mean_s
c, ch = r["connections"], r["churn"]
opens, closes = ch["opens_per_s"]["mean"], ch["closes_per_s"]["mean"]
steady = ch["steady_s"]
# Open connections during the hold (time-series rows inside the steady part).
stages = r["stages"]
hold_from = stages[0]["duration_s"]
hold_to = hold_from + stages[1]["duration_s"]
held = [row["open"] for row in r["timeseries"] if hold_from + 2 < row["t_s"] <= hold_to]
print()
print(f"sustained opens/s:   {opens:.0f}  (mean over {steady:.0f} s of hold; "
      f"target >= {target:.0f} = 90 % of {n} / {mean_s:g} s)")
print(f"closes/s:            {closes:.0f}  (peak opens/s {ch['opens_per_s']['peak']:.0f})")
print(f"sessions completed:  {ch['sessions_completed']}  "
      f"(observed mean {ch['observed_s']['mean']:.2f} s, p50 {ch['observed_s']['p50']:.2f} s)")
if held:
    print(f"open during hold:    min {min(held)}, mean {sum(held)/len(held):.0f} of {n}")
print(f"attempted {c['attempted']}, established {c['established']}, failed {c['failed']}, "
      f"dropped {c['dropped']}; verdict {r['verdict']['status']}")
ok = opens >= target and c["failed"] == 0 and c["dropped"] == 0
print("PASS" if ok else "FAIL: below the target (or failures/drops)")
sys.exit(0 if ok else 1)
PY
