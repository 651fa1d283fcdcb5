#!/usr/bin/env bash
# The cost of watching a 100,000-connection gateway: time per sample and the watcher's share
# of the client's CPU.
#
# Set-up of bench/hold-100k.sh (one host, past the per-process descriptor limit):
#   gateway: wsscale serve --processes P                      (P processes, one SO_REUSEPORT port)
#   client:  wsscale run --processes P -c N --source-ip 127.0.0.2-127.0.0.9 --interval 1s
#            --watch-pid PID1 --watch-pid PID2 …              (every gateway process)
#
# Every second the watcher (a thread of the client's coordinator process) reads each gateway
# process's /proc/PID/{status,stat,fd} — one readlink per descriptor, N in all — and dumps
# the ESTABLISHED TCP sockets with sock_diag (client and gateway sides: 2N sockets). The
# report carries the time of each sample (gateway.sample_ms) and the watcher thread's CPU
# time (gateway.watcher_cpu_s); the client's CPU time (coordinator + agents, all children of
# `wsscale run`) comes from bash's `times`.
#
# Targets: a sample takes under 10 % of the interval on average (< 100 ms), the watcher uses
# under 5 % of the client's CPU, and the gateway's ESTABLISHED count matches the open count.
# Exits non-zero when one is missed.
#
# Usage: bench/watch-cost.sh [CONNECTIONS] [RAMP] [HOLD]      e.g. bench/watch-cost.sh 100000 30s 30s
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-100000}
RAMP=${2:-30s}
HOLD=${3:-30s}
SOURCES=127.0.0.2-127.0.0.9
BIN=${CARGO_TARGET_DIR:-target}/release/wsscale
echo "building wsscale (release)…"
cargo build --release

HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ]; then HARD=$(cat /proc/sys/fs/nr_open); fi
PER=$((HARD - 64))
P=$(((N + PER - 1) / PER))
[ "$P" -lt 2 ] && P=2
echo "RLIMIT_NOFILE hard limit $HARD → $P processes per side"

WORK=$(mktemp -d)
GW_PID=
cleanup() {
  if [ -n "$GW_PID" ]; then kill -TERM "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve --processes "$P" --listen 127.0.0.1:0 --threads 1 >"$WORK/serve.out" 2>"$WORK/serve.err" &
GW_PID=$!
for _ in $(seq 1 200); do
  grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
LINE=$(grep '^listening on ' "$WORK/serve.out" || true)
[ -n "$LINE" ] || { echo "gateway did not start:"; cat "$WORK/serve.err"; exit 1; }
URL=$(echo "$LINE" | awk '{print $3}')
GW_PIDS=$(echo "$LINE" | sed 's/.*processes: \(.*\))/\1/')
WATCH=()
for pid in $GW_PIDS; do WATCH+=(--watch-pid "$pid"); done
echo "gateway: $URL ($P processes: $GW_PIDS)"

# Children's CPU time (user + system, seconds) as bash's `times` reports it.
child_cpu() { times | tail -n 1 | awk '{
  split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }'; }
CPU0=$(child_cpu)
echo "running the client: $N connections from $P processes (ramp $RAMP, hold $HOLD), watching $P gateway processes every 1 s…"
"$BIN" run --processes "$P" -c "$N" --ramp "$RAMP" --hold "$HOLD" --ramp-down 10s \
  --source-ip "$SOURCES" --target "$URL" --interval 1s --max-pending 2048 "${WATCH[@]}" \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/live.txt" || true
CPU1=$(child_cpu)
sed -n '/^Gateway/,/^$/p' "$WORK/summary.txt"

python3 - "$WORK/report.json" "$N" "$CPU0" "$CPU1" <<'PY'
import json, sys
path, n, cpu0, cpu1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
r = json.load(open(path))
g, c = r["gateway"], r["connections"]
client_cpu = cpu1 - cpu0
share = 100.0 * g["watcher_cpu_s"] / client_cpu if client_cpu > 0 else float("inf")
t = g["sample_ms"]
# Samples taken while the peak was held (gateway_established at the peak count).
held = [row for row in r["timeseries"] if row["gateway_established"] == c["peak_open"]]
print(f"established / peak open:      {c['established']} / {c['peak_open']} of {n}")
print(f"gateway ESTABLISHED at peak:  {g['established_at_peak']} (wsscale open {g['open_at_peak']})")
print(f"samples:                      {g['samples']} ({len(held)} interval rows at the full peak)")
print(f"time per sample:              {t['mean']:.1f} ms mean, {t['max']:.1f} ms max (interval 1000 ms)")
print(f"watcher CPU:                  {g['watcher_cpu_s']:.2f} s of the client's {client_cpu:.2f} s "
      f"= {share:.2f} % (run of {r['duration_s']:.0f} s)")
print(f"gateway bytes per connection: {g['bytes_per_connection'] or 0:.0f} "
      f"(RSS {(g['rss_at_peak_open_bytes'] or 0) / 2**20:.1f} MiB over the gateway processes at the peak)")
ok = (t["mean"] < 100 and share < 5 and g["established_at_peak"] == g["open_at_peak"]
      and c["peak_open"] >= 0.999 * n)
print("targets met (< 100 ms per sample, < 5 % of the client's CPU, counts agree)" if ok else "TARGETS MISSED")
sys.exit(0 if ok else 1)
PY
