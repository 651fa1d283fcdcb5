#!/usr/bin/env bash
# Hold benchmark: memory per connection and connection rate of one client process.
#
# Starts `wsscale serve` in its own process on a free loopback port, then one `wsscale run`
# client that opens N connections (default 18000, this machine's single-process ceiling
# under a 20,000-fd limit) as fast as it can (a 0 s ramp: the rate is the engine's, not the
# plan's), holds them, and closes them. Prints:
#
#   - client user-space memory per held connection: (RSS at peak open − RSS before the
#     first connect) ÷ connections, from the client's JSON report; target ≤ 1024 bytes;
#   - connection rate: connections ÷ time from the start until all were open (TCP +
#     WebSocket handshake, gateway on the same cores); aim ≥ 10,000/s.
#
# Exits non-zero when the memory target is missed or not every connection was established.
#
# Usage: bench/hold.sh [CONNECTIONS] [HOLD]        e.g. bench/hold.sh 18000 20s
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-18000}
HOLD=${2:-20s}
BIN=target/release/wsscale
echo "building wsscale (release)…"
cargo build --release
WORK=$(mktemp -d)
trap 'kill "$GW_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "starting the gateway…"
"$BIN" serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
GW_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || { echo "gateway did not start:"; cat "$WORK/serve.err"; exit 1; }
echo "gateway: $URL (pid $GW_PID)"
echo "running the client: $N connections, 0 s ramp, hold $HOLD, 2 s ramp-down…"

"$BIN" run --target "$URL" -c "$N" --ramp 0s --hold "$HOLD" --ramp-down 2s \
  --source-ip 127.0.0.2-127.0.0.5 --max-pending 512 --interval 2s \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" ||
  [ -s "$WORK/report.json" ] || { echo "the client run failed (see above)"; exit 1; }
cat "$WORK/summary.txt"

python3 - "$WORK/report.json" "$N" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
c = r["connections"]
m = r["memory"]
per = m["bytes_per_connection"]
t = r["timings"]["ws_handshake_ms"]
peak_after = r["connections"]["peak_reached_after_s"]
rate = c["peak_open"] / peak_after if peak_after else 0.0
print()
print(f"connections established:   {c['established']} of {n} (peak open {c['peak_open']})")
print(f"client memory per conn:    {per:.1f} bytes  (target <= 1024)  "
      f"[RSS before {m['rss_before_bytes']/2**20:.1f} MiB, at peak {m['rss_at_peak_open_bytes']/2**20:.1f} MiB]")
print(f"connection rate:           {rate:.0f} conn/s  (all {c['peak_open']} open after {peak_after:.2f} s; aim >= 10000)")
print(f"handshake p50/p99/max:     {t['p50']:.2f} / {t['p99']:.2f} / {t['max']:.2f} ms")
ok = c["established"] == n and per is not None and per <= 1024
sys.exit(0 if ok else 1)
EOF
