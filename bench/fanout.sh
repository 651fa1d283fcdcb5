#!/usr/bin/env bash
# Fan-out benchmark: a chat room of N connections, P of which publish.
#
# Starts `wsscale serve --broadcast` in its own process on a free loopback port (one room:
# every message goes to every connection, the sender included), then one `wsscale run` client
# that opens N connections (default 1,000) over a 2 s ramp, holds them for HOLD (default 30s)
# while the first P connections (default 10) each send RATE timed messages (default 1/s), and
# closes them. Prints:
#
#   - fan-out latency p50 / p99 / max: receive wall clock − the message's intended send time
#     at another connection (all in this one client process: one clock);
#   - the publishers' own round trip (message_rtt) for comparison;
#   - fan-out delivered / expected: (fan-out samples + own echoes) ÷ (messages sent × peak
#     open). Messages published while the room was still filling (the ramp) or emptying reach
#     fewer connections, so a little under 100% is expected; the shortfall from the ramp is
#     about P × rate × ramp × N/2 deliveries.
#
# Exits non-zero when the run fails (exit code other than 0), not every connection was
# established, or no fan-out sample was taken.
#
# Usage: bench/fanout.sh [CONNECTIONS] [PUBLISHERS] [RATE] [HOLD_SECONDS]
#        e.g. bench/fanout.sh 1000 10 1/s 30
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-1000}
PUBLISHERS=${2:-10}
RATE=${3:-1/s}
HOLD=${4:-30}
BIN=target/release/wsscale
echo "building wsscale (release)…"
cargo build --release
WORK=$(mktemp -d)
GW_PID=
trap 'kill "$GW_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "starting the gateway: wsscale serve --broadcast…"
"$BIN" serve --listen 127.0.0.1:0 --broadcast >"$WORK/serve.out" 2>"$WORK/serve.err" &
GW_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || { echo "gateway did not start:"; cat "$WORK/serve.err"; exit 1; }
echo "gateway: $URL (pid $GW_PID)"
echo "running the client: $N connections, 2s ramp, hold ${HOLD}s, --publishers $PUBLISHERS --message-rate $RATE…"

rc=0
"$BIN" run --target "$URL" -c "$N" --ramp 2s --hold "${HOLD}s" --ramp-down 0s \
  --publishers "$PUBLISHERS" --message-rate "$RATE" --interval 5s \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/client.err" || rc=$?
cat "$WORK/summary.txt"
[ "$rc" -eq 0 ] || { echo "the client run failed (exit $rc):"; tail -20 "$WORK/client.err"; exit 1; }

python3 - "$WORK/report.json" "$N" "$PUBLISHERS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
publishers = sys.argv[3]
c = r["connections"]
f = r["timings"]["fanout_latency_ms"]
m = r["timings"]["message_rtt_ms"]
fo = r["fanout"]
sent = r["messages"]["sent"]
print()
print(f"connections established:   {c['established']} of {n} (peak open {c['peak_open']}, dropped {c['dropped']})")
print(f"messages published:        {sent} by {publishers} publishers (lost {r['messages']['lost']})")
print(f"fan-out latency p50/p99/max: {f['p50']:.3f} / {f['p99']:.3f} / {f['max']:.3f} ms  ({f['count']} samples)")
print(f"own echo rtt p50/p99:      {m['p50']:.3f} / {m['p99']:.3f} ms  ({m['count']} samples)")
if fo["expected"]:
    print(f"fan-out delivered/expected: {fo['delivered']} / {fo['expected']} = {fo['delivered'] / fo['expected'] * 100:.2f}%")
else:
    print(f"fan-out delivered/expected: {fo['delivered']} / n/a")
ok = c["established"] == n and f["count"] > 0 and bool(fo["expected"])
sys.exit(0 if ok else 1)
EOF
