#!/usr/bin/env bash
# What one held connection costs `wsscale serve`, as wsscale's gateway view reports it
# (`--watch-pid`, the report's gateway.bytes_per_connection) next to an outside reading of
# /proc/PID/status taken by this script.
#
#   gateway: wsscale serve --listen 127.0.0.1:0 --threads 1      (a process of its own)
#   client:  wsscale run --target URL -c N --ramp 0s --hold HOLD --watch-pid GATEWAY_PID
#
# Outside reading: VmRSS of the gateway before the client starts, and again once the gateway
# holds N descriptors more than before (polled in /proc/PID/fd); (after − before) ÷ N.
#
# Targets: gateway.bytes_per_connection < 8192, every connection established, and the two
# readings within 10 % of each other. Exits non-zero when one is missed.
#
# Usage: bench/gateway-bytes.sh [CONNECTIONS] [HOLD]        e.g. bench/gateway-bytes.sh 18000 20s
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-18000}
HOLD=${2:-20s}
BIN=${CARGO_TARGET_DIR:-target}/release/wsscale
echo "building wsscale (release)…"
cargo build --release
WORK=$(mktemp -d)
GW_PID=
cleanup() {
  if [ -n "$GW_PID" ]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve --listen 127.0.0.1:0 --threads 1 >"$WORK/serve.out" 2>"$WORK/serve.err" &
GW_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || { echo "gateway did not start:"; cat "$WORK/serve.err"; exit 1; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$GW_PID/status"; }
fds() { ls "/proc/$GW_PID/fd" | wc -l; }
RSS0=$(rss_kb)
FD0=$(fds)
echo "gateway: $URL (pid $GW_PID), VmRSS before: $RSS0 kB, $FD0 descriptors"

# The outside reading: once the gateway holds N more descriptors.
(
  for _ in $(seq 1 600); do
    if [ "$(fds)" -ge $((FD0 + N)) ]; then
      rss_kb >"$WORK/rss_held_kb"
      exit 0
    fi
    sleep 0.1
  done
) &
SAMPLER=$!

echo "running the client: $N connections, 0 s ramp, hold $HOLD, watching pid $GW_PID…"
"$BIN" run --target "$URL" -c "$N" --ramp 0s --hold "$HOLD" --ramp-down 2s --interval 1s \
  --watch-pid "$GW_PID" --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/live.txt" || true
wait "$SAMPLER" || true
sed -n '/^Gateway/,/^$/p' "$WORK/summary.txt"

python3 - "$WORK/report.json" "$N" "$RSS0" "$(cat "$WORK/rss_held_kb" 2>/dev/null || echo 0)" <<'PY'
import json, sys
path, n, rss0_kb, held_kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = json.load(open(path))
g, c = r["gateway"], r["connections"]
reported = g["bytes_per_connection"]
outside = (held_kb - rss0_kb) * 1024 / n if held_kb else None
print(f"established:                  {c['established']} of {n}")
print(f"wsscale (gateway view):       {reported:.0f} bytes per held connection "
      f"(RSS {g['rss_before_bytes'] / 2**20:.1f} → {g['rss_at_peak_open_bytes'] / 2**20:.1f} MiB at {g['open_at_peak']} open)")
if outside is None:
    print("outside (/proc/PID/status):   no reading (the gateway never held N descriptors)")
else:
    print(f"outside (/proc/PID/status):   {outside:.0f} bytes per held connection "
          f"(VmRSS {rss0_kb} → {held_kb} kB)")
print(f"gateway ESTABLISHED at peak:  {g['established_at_peak']} (wsscale open {g['open_at_peak']})")
print(f"gateway CPU mean / max:       {g['cpu_percent']['mean']:.1f} / {g['cpu_percent']['max']:.1f} % of one core")
agree = outside is not None and abs(reported - outside) <= 0.10 * outside
ok = c["established"] == n and reported < 8192 and agree
print(f"readings agree within 10 %:   {agree}")
print("targets met (< 8192 bytes, all established, readings agree)" if ok else "TARGETS MISSED")
sys.exit(0 if ok else 1)
PY
