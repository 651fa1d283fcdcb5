#!/usr/bin/env bash
# Soak: hold N connections with pings and timed messages for a long time and watch the
# client's and the gateway's RSS for growth (a leak shows as a slope; a healthy process is
# flat within noise).
#
# Starts `wsscale serve` on a free loopback port and one `wsscale run` client that ramps to N
# connections (default 18,000) in 30 s, holds them for DURATION (default 60m) with a WebSocket
# ping every 30 s and a timed echo message every 10 s per connection, then closes them.
# Every SAMPLE (default 60s) it reads VmRSS of both processes from /proc/PID/status; at the
# end it prints the samples and, from the samples of the hold (the first 2 minutes after the
# ramp are left out: allocators settle), the least-squares slope of each RSS in bytes per
# minute and per connection, next to what the client's own report says (`drift[]`, which
# takes the gateway figures from --watch-pid).
#
# Target: each slope at most 16 KiB/min (1 MiB per hour for the whole process, under 60
# bytes per connection per hour at 18,000). Exits non-zero when a slope is above it, or when
# connections were dropped or messages lost.
#
# Usage: bench/soak.sh [CONNECTIONS] [DURATION] [SAMPLE]    e.g. bench/soak.sh 18000 60m 60s
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-18000}
DURATION=${2:-60m}
SAMPLE=${3:-60s}
TARGET_SLOPE=16384
BIN=${CARGO_TARGET_DIR:-target}/release/wsscale
echo "building wsscale (release)…"
cargo build --release --quiet
WORK=$(mktemp -d)
trap 'kill "$GW_PID" "$RUN_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
secs() { python3 -c "import re,sys;u={'ms':.001,'s':1,'m':60,'h':3600};print(sum(float(n)*u[x] for n,x in re.findall(r'([0-9.]+)(ms|s|m|h)',sys.argv[1])))" "$1"; }
SAMPLE_S=$(secs "$SAMPLE")

"$BIN" serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
GW_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || { echo "gateway did not start:"; cat "$WORK/serve.err"; exit 1; }
echo "gateway: $URL (pid $GW_PID); client: $N connections, ramp 30s, hold $DURATION, samples every $SAMPLE"

"$BIN" run --target "$URL" -c "$N" --ramp 30s --hold "$DURATION" --ramp-down 10s \
  --source-ip 127.0.0.2-127.0.0.5 --ping-interval 30s --message-rate 1/10s \
  --interval "$SAMPLE" --watch-pid "$GW_PID" --allow-failures \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/run.err" &
RUN_PID=$!
START=$(date +%s)
echo "t_s,client_rss_bytes,gateway_rss_bytes" >"$WORK/samples.csv"
rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
while kill -0 "$RUN_PID" 2>/dev/null; do
  echo "$(( $(date +%s) - START )),$(rss "$RUN_PID"),$(rss "$GW_PID")" >>"$WORK/samples.csv"
  sleep "$SAMPLE_S"
done
wait "$RUN_PID" || true
cat "$WORK/summary.txt"
cp "$WORK/samples.csv" "${SOAK_SAMPLES:-/dev/null}" 2>/dev/null || true

python3 - "$WORK/samples.csv" "$WORK/report.json" "$N" "$TARGET_SLOPE" <<'EOF'
import csv, json, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
report = json.load(open(sys.argv[2]))
n, target = int(sys.argv[3]), float(sys.argv[4])
ramp_end = 30 + 120  # ramp, then two minutes for allocators to settle
hold = [r for r in rows if int(r["t_s"]) >= ramp_end and int(r["client_rss_bytes"]) > 0]
print()
print("   t_s   client RSS   gateway RSS")
for r in rows:
    print(f"{int(r['t_s']):6d} {int(r['client_rss_bytes'])/2**20:9.2f} MiB {int(r['gateway_rss_bytes'])/2**20:9.2f} MiB")
def slope(key):
    pts = [(int(r["t_s"]) / 60, int(r[key])) for r in hold]
    if len(pts) < 3:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None
c = report["connections"]
m = report["messages"]
print()
print(f"held: {c['peak_open']} of {n}; dropped {c['dropped']}; messages sent {m['sent']}, lost {m['lost']}")
ok = c["dropped"] == 0 and m["lost"] == 0 and c["peak_open"] == n
for who, key in [("client", "client_rss_bytes"), ("gateway", "gateway_rss_bytes")]:
    s = slope(key)
    if s is None:
        print(f"{who:8s} RSS slope: not enough samples in the hold (run longer)")
        ok = False
        continue
    flag = "ok" if abs(s) <= target else "ABOVE TARGET"
    ok &= abs(s) <= target
    print(f"{who:8s} RSS slope over the hold: {s:+10.0f} bytes/min ({s / n:+.3f} bytes/min per connection; "
          f"target |slope| <= {target:.0f}) {flag}")
for d in report.get("drift", []):
    print(f"report drift, stage {d['stage']}: client {d['client_rss_bytes_per_min']} B/min, "
          f"gateway {d['gateway_rss_bytes_per_min']} B/min; notes: {d['notes']}")
sys.exit(0 if ok else 1)
EOF
