#!/usr/bin/env bash
# Client CPU of holding 100,000 connections with a WebSocket ping every 30 s and a timed
# message every 30 s per connection (issue #15, part 3).
#
#   gateway: wsscale serve --processes P --threads 1      (P processes, one SO_REUSEPORT port)
#   client:  wsscale run --processes P -c N --ramp R --hold H --ping-interval 30s
#            --message-rate 1/30s --source-ip 127.0.0.2-127.0.0.13
#            (a coordinator in the run process, P agent processes)
#
# P comes from the hard RLIMIT_NOFILE (bench/lib.sh reads it). The clients' CPU — the run
# process and its agents, utime + stime from /proc/PID/stat — is read twice inside the hold,
# once every connection is open and the schedules have settled (WINDOW seconds apart, from
# 15 s after the ramp's end), so the ramp's connects are not in the figure. Prints that CPU
# as a share of one core, per connection and per scheduled send; target ≤ 3 % of one core.
# Exits 1 when the target is missed, not every connection was established or one dropped.
#
# Usage: bench/heartbeat-cost.sh [CONNECTIONS] [RAMP] [WINDOW]
#        e.g. bench/heartbeat-cost.sh 100000 30s 90s        (a run of about 2.5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-100000}
RAMP=${2:-30s}
WINDOW=${3:-90s}
TARGET_PCT=3.0
SOURCES=127.0.0.2-127.0.0.13
BIN=${CARGO_TARGET_DIR:-target}/release/wsscale
echo "building wsscale (release)…"
cargo build --release
# shellcheck source=bench/lib.sh
. bench/lib.sh

ramp_s=${RAMP%s}
window_s=${WINDOW%s}
settle_s=15
hold_s=$((settle_s + window_s + 5))
P=$(bench_processes "$N")
echo "RLIMIT_NOFILE hard limit $(bench_hard_nofile) → $P processes per side"

trap bench_cleanup EXIT
bench_start_gateway "$P" 127.0.0.1:0
echo "gateway: $URL ($P processes: $GW_PIDS)"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"

# utime + stime (clock ticks) of the run process and its children (the agents).
client_ticks() {
  local pid=$1 total=0 t child
  t=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  total=$((total + t))
  for child in $(cat "/proc/$pid/task/$pid/children"); do
    t=$(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

echo "running the client: $N connections from $P processes (ramp $RAMP, hold ${hold_s}s, ramp-down 10s)…"
"$BIN" run --processes "$P" -c "$N" --ramp "$RAMP" --hold "${hold_s}s" --ramp-down 10s \
  --source-ip "$SOURCES" --target "$URL" --interval 1s --max-pending 2048 \
  --ping-interval 30s --message-rate 1/30s --message-size 64 \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/live.txt" &
RUN=$!
sleep $((ramp_s + settle_s))
C0=$(client_ticks "$RUN")
T0=$(date +%s.%N)
AGENTS=$(wc -w <"/proc/$RUN/task/$RUN/children")
sleep "$window_s"
C1=$(client_ticks "$RUN")
T1=$(date +%s.%N)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
wait "$RUN" || true
tail -n 3 "$WORK/live.txt" | grep -v '^    agent' || true

python3 - "$WORK/report.json" "$N" "$C0" "$C1" "$T0" "$T1" "$(getconf CLK_TCK)" "$AGENTS" "$P" \
  "$ramp_s" "$settle_s" "$window_s" "$LOAD" "$TARGET_PCT" <<'PY'
import json, sys
(path, n, c0, c1, t0, t1, hz, agents, procs, ramp, settle, window, load, target) = sys.argv[1:]
n, hz = int(n), int(hz)
cpu = (int(c1) - int(c0)) / hz
wall = float(t1) - float(t0)
pct = 100.0 * cpu / wall
r = json.load(open(path))
c = r["connections"]
rows = [row for row in r["timeseries"]
        if float(ramp) + float(settle) <= row["t_s"] <= float(ramp) + float(settle) + float(window)]
open_min = min((row["open"] for row in rows), default=0)
dropped = c["dropped"]
# Two scheduled sends per connection per 30 s (a ping and a timed message), each answered.
sends = 2 * n / 30.0
print()
print(f"established:            {c['established']} of {n}, dropped {dropped}; lowest open count in the window {open_min}")
print(f"pings / messages:       {r['heartbeats']['pings_sent']} pings sent, {r['heartbeats']['pongs_received']} pongs, {r['messages']['sent']} messages sent, "
      f"{r['messages']['lost']} lost; ping p99 {r['timings']['ping_rtt_ms']['p99']:.2f} ms, "
      f"echo p99 {r['timings']['message_rtt_ms']['p99']:.2f} ms")
print(f"window:                 {wall:.1f} s of the hold, from {float(ramp) + float(settle):.0f} s after the start; "
      f"run process + {agents} agents (of {procs})")
print(f"client CPU:             {cpu:.2f} s = {pct:.2f} % of one core "
      f"({cpu / wall / n * 1e9:.0f} ns per connection per second, "
      f"{cpu / wall / sends * 1e6:.1f} µs per scheduled send and its reply)")
print(f"load average at the end of the window: {load}")
ok = pct <= float(target) and c["established"] == n and dropped == 0 and open_min == n
print(f"target: <= {target} % of one core — " + ("met" if ok else "MISSED"))
sys.exit(0 if ok else 1)
PY
