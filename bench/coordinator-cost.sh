#!/usr/bin/env bash
# What a coordinator costs: CPU and memory of the coordinating process while 8 agents report
# a snapshot (counters + serialized histograms) every second.
#
# Runs `wsscale run --processes 8` (the coordinator lives in the run process; 8 agent
# processes) against `wsscale serve --processes 2`, with message traffic so every snapshot
# carries non-empty histograms, and samples /proc/PID/stat and /proc/PID/status of the
# coordinating process over the hold. Prints CPU % of one core, RSS and peak RSS.
#
# Usage: bench/coordinator-cost.sh [AGENTS] [CONNECTIONS] [HOLD]    e.g. bench/coordinator-cost.sh 8 8000 60s
set -euo pipefail
cd "$(dirname "$0")/.."

AGENTS=${1:-8}
N=${2:-8000}
HOLD=${3:-60s}
BIN=target/release/wsscale
echo "building wsscale (release)…"
cargo build --release
WORK=$(mktemp -d)
GW_PID=
trap 'if [ -n "$GW_PID" ]; then kill -TERM "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT

echo "starting the gateway (wsscale serve --processes 2)…"
"$BIN" serve --processes 2 --listen 127.0.0.1:0 --threads 1 >"$WORK/serve.out" 2>"$WORK/serve.err" &
GW_PID=$!
for _ in $(seq 1 100); do grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(awk '/^listening on / {print $3}' "$WORK/serve.out")
[ -n "$URL" ] || { cat "$WORK/serve.err"; exit 1; }
echo "gateway: $URL"

hold_s=$(echo "$HOLD" | sed 's/s$//')
echo "running wsscale run --processes $AGENTS -c $N (5 s ramp, $HOLD hold, 2 s ramp-down)…"
"$BIN" run --processes "$AGENTS" -c "$N" --ramp 5s --hold "$HOLD" --ramp-down 2s --target "$URL" \
  --interval 1s --message-rate 1/s --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/live.txt" &
RUN_PID=$!
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$RUN_PID/stat"; }
sleep 8 # ramp done, every agent reporting
echo "sampling the coordinator's CPU over the hold ($((hold_s - 8)) s)…"
T0=$(date +%s.%N); C0=$(ticks)
sleep $((hold_s - 8))
T1=$(date +%s.%N); C1=$(ticks)
RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$RUN_PID/status")
HWM=$(awk '/^VmHWM:/ {print $2}' "/proc/$RUN_PID/status")
THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$RUN_PID/status")
echo "waiting for the ramp-down and the merged report…"
wait "$RUN_PID" || true
echo
SNAPS=$(python3 -c "import json; r = json.load(open('$WORK/report.json')); print(len(r['agents']), r['connections']['established'], r['messages']['received'])")
python3 - "$T0" "$T1" "$C0" "$C1" "$TCK" "$RSS" "$HWM" "$THREADS" "$AGENTS" "$SNAPS" <<'EOF'
import sys
t0, t1, c0, c1, tck, rss, hwm, threads, agents = sys.argv[1:10]
n_agents, established, msgs = sys.argv[10].split()
dt = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck) / dt * 100
print(f"coordinator with {agents} agents reporting every second ({n_agents} in the report, "
      f"{established} connections, {msgs} echoed messages)")
print(f"  CPU:    {cpu:.2f} % of one core over {dt:.0f} s of hold (merging, live lines, heartbeats)")
print(f"  memory: {int(rss) / 1024:.1f} MiB RSS at the end of the hold, peak {int(hwm) / 1024:.1f} MiB; {threads} threads")
EOF
