#!/usr/bin/env bash
# Server push benchmark: push latency of a feed to N held connections, and what reading the
# feed costs the client.
#
# Starts `wsscale serve --push-rate RATE` in its own process on a free loopback port (the
# client's connections and the gateway's would not fit one process's 20,000 descriptors),
# then one `wsscale run` client that opens N connections (default 18,000) over a short ramp,
# holds them for HOLD (default 30s) with `--push-timestamp json:ts`, and closes them. Prints:
#
#   - push latency p50 / p99 / max (client receive wall clock − the feed message's "ts"; both
#     processes read the same system clock) over the whole run, the same per 1 s interval of
#     the hold (median p50, median and worst p99), and how many pushes were read;
#   - client CPU per second of hold: (utime + stime) of the client process, from
#     /proc/PID/stat, sampled over a window inside the hold (from the first live line of the
#     hold stage + 1 s, for HOLD − 4 s), ÷ the window's wall time. The gateway's CPU over the
#     same window is printed for comparison.
#
# Exits non-zero when the run fails (exit code other than 0), not every connection was
# established, or no push latency sample was taken.
#
# Usage: bench/push.sh [CONNECTIONS] [HOLD_SECONDS] [RATE]     e.g. bench/push.sh 18000 30 1/s
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-18000}
HOLD=${2:-30}
RATE=${3:-1/s}
RAMP=6
BIN=target/release/wsscale
echo "building wsscale (release)…"
cargo build --release
WORK=$(mktemp -d)
GW_PID=
CPID=
trap 'for p in $CPID $GW_PID; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

TCK=$(getconf CLK_TCK)
# cpu_ticks PID: utime + stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat,
# counted after the ")" that ends the command name).
cpu_ticks() {
  sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
now() { date +%s.%N; }

echo "starting the gateway: wsscale serve --push-rate $RATE…"
"$BIN" serve --listen 127.0.0.1:0 --push-rate "$RATE" >"$WORK/serve.out" 2>"$WORK/serve.err" &
GW_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || { echo "gateway did not start:"; cat "$WORK/serve.err"; exit 1; }
echo "gateway: $URL (pid $GW_PID)"
echo "running the client: $N connections, ${RAMP}s ramp, hold ${HOLD}s, --push-timestamp json:ts…"

"$BIN" run --target "$URL" -c "$N" --ramp "${RAMP}s" --hold "${HOLD}s" --ramp-down 2s \
  --source-ip 127.0.0.2-127.0.0.5 --max-pending 512 --interval 1s \
  --push-timestamp json:ts \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/client.err" &
CPID=$!

# Wait for the hold stage (the live line of the first hold interval), then measure.
until grep -q '\] hold ' "$WORK/client.err" 2>/dev/null; do
  kill -0 "$CPID" 2>/dev/null || break
  sleep 0.2
done
WINDOW=$((HOLD - 4))
if kill -0 "$CPID" 2>/dev/null; then
  sleep 1
  t0=$(now); c0=$(cpu_ticks "$CPID"); g0=$(cpu_ticks "$GW_PID")
  sleep "$WINDOW"
  t1=$(now); c1=$(cpu_ticks "$CPID"); g1=$(cpu_ticks "$GW_PID")
else
  t0=0; t1=0; c0=0; c1=0; g0=0; g1=0
fi
rc=0
wait "$CPID" || rc=$?
CPID=
cat "$WORK/summary.txt"
echo
grep -E '\] (hold|ramp)' "$WORK/client.err" | tail -3
[ "$rc" -eq 0 ] || { echo "the client run failed (exit $rc):"; tail -20 "$WORK/client.err"; exit 1; }

python3 - "$WORK/report.json" "$N" "$t0" "$t1" "$c0" "$c1" "$g0" "$g1" "$TCK" "$RATE" "$RAMP" "$HOLD" <<'EOF'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
t0, t1 = float(sys.argv[3]), float(sys.argv[4])
c0, c1, g0, g1 = (int(x) for x in sys.argv[5:9])
tck = int(sys.argv[9])
rate = sys.argv[10]
c = r["connections"]
p = r["timings"]["push_latency_ms"]
wall = t1 - t0
print()
print(f"connections established:   {c['established']} of {n} (peak open {c['peak_open']}, dropped {c['dropped']})")
print(f"pushes read:               {r['pushes']['received']}  (other frames {r['messages']['other_received']})")
print(f"push latency p50/p99/max:  {p['p50']:.3f} / {p['p99']:.3f} / {p['max']:.3f} ms  ({p['count']} samples, whole run)")
# Hold only: the 1 s time-series rows that lie inside the hold (after the first second).
ramp, hold = float(sys.argv[11]), float(sys.argv[12])
rows = [x for x in r["timeseries"] if ramp + 2 <= x["t_s"] <= ramp + hold and x["pushes_per_s"] > 0]
if rows:
    print(f"  hold only, per 1 s row:  p50 median {statistics.median(x['push_p50_ms'] for x in rows):.3f} ms, "
          f"p99 median {statistics.median(x['push_p99_ms'] for x in rows):.3f} ms, "
          f"p99 worst {max(x['push_p99_ms'] for x in rows):.3f} ms, "
          f"{statistics.mean(x['pushes_per_s'] for x in rows):.0f} pushes/s ({len(rows)} rows)")
if wall > 0:
    client = (c1 - c0) / tck / wall
    gateway = (g1 - g0) / tck / wall
    print(f"client CPU during hold:    {client * 1000:.1f} ms/s ({client * 100:.1f}% of one core; "
          f"{client / n * 1e6:.2f} µs per connection per second) over {wall:.1f} s")
    print(f"gateway CPU (same window): {gateway * 1000:.1f} ms/s ({gateway * 100:.1f}% of one core), feed at {rate}")
else:
    print("client CPU during hold:    n/a (the hold stage was not seen)")
ok = c["established"] == n and p["count"] > 0 and wall > 0
sys.exit(0 if ok else 1)
EOF
