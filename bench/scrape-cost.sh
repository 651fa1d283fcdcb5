#!/usr/bin/env bash
# What `--metrics-listen` costs: the client's CPU while it holds N connections (default
# 18,000, this machine's single-process ceiling under a 20,000-fd limit), without the
# endpoint, and with it scraped once a second.
#
# Starts `wsscale serve` in its own process on a free loopback port, then runs the same
# `wsscale run` twice (5 s ramp, HOLD hold, --interval 1s, four loopback source addresses):
#   A. without --metrics-listen;
#   B. with --metrics-listen 127.0.0.1:0 and `curl` fetching /metrics every second.
# For each it samples the client's utime+stime (/proc/PID/stat) over the hold, after the ramp,
# and prints CPU % of one core; for B also the number of scrapes, the size of a scrape and
# the CPU per scrape ((B − A) ÷ scrapes). The last scrape must show every connection open.
#
# Target: the 1 s scrape adds at most 1 % of one core (10 ms of CPU per second) to the
# client; exits non-zero above it, when a scrape fails, or when a run does not establish
# every connection. The machine's other load adds noise to both runs alike; run it twice.
#
# Usage: bench/scrape-cost.sh [CONNECTIONS] [HOLD]       e.g. bench/scrape-cost.sh 18000 60s
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-18000}
HOLD=${2:-60s}
TARGET_PCT=1.0
echo "building wsscale (release)…"
cargo build --release
BIN=${CARGO_TARGET_DIR:-target}/release/wsscale
WORK=$(mktemp -d)
GW_PID=
RUN_PID=
SCRAPER_PID=
cleanup() {
  for p in $SCRAPER_PID $RUN_PID $GW_PID; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $SCRAPER_PID $RUN_PID $GW_PID; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

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

hold_s=${HOLD%s}
RAMP_S=5
SETTLE_S=3                       # after the ramp, before sampling
SAMPLE_S=$((hold_s - SETTLE_S - 2))
[ "$SAMPLE_S" -ge 10 ] || { echo "HOLD must be at least 15s"; exit 2; }
TCK=$(getconf CLK_TCK)

# run NAME [extra run flags…]: runs the client, samples its CPU over the hold; writes
# $WORK/NAME.cpu (ticks seconds) and $WORK/NAME.json.
run_case() {
  local name=$1
  shift
  "$BIN" run --target "$URL" -c "$N" --ramp "${RAMP_S}s" --hold "$HOLD" --ramp-down 2s \
    --source-ip 127.0.0.2-127.0.0.5 --max-pending 512 --interval 1s \
    --report-json "$WORK/$name.json" "$@" >"$WORK/$name.summary" 2>"$WORK/$name.err" &
  RUN_PID=$!
  if [ "$name" = scraped ]; then
    local addr=
    for _ in $(seq 1 100); do
      addr=$(sed -n 's|^metrics on http://\(.*\)/metrics$|\1|p' "$WORK/$name.err" 2>/dev/null || true)
      [ -n "$addr" ] && break
      sleep 0.1
    done
    [ -n "$addr" ] || { echo "no 'metrics on' line:"; cat "$WORK/$name.err"; exit 1; }
    echo "  scraping http://$addr/metrics every second"
    (
      n=0
      while kill -0 "$RUN_PID" 2>/dev/null; do
        if curl -sf -o "$WORK/last.scrape" "http://$addr/metrics"; then
          n=$((n + 1))
          cp "$WORK/last.scrape" "$WORK/good.scrape"
          echo "$n" >"$WORK/scrapes"
        fi
        sleep 1
      done
    ) &
    SCRAPER_PID=$!
  fi
  sleep $((RAMP_S + SETTLE_S))
  local t0 c0 t1 c1 s0=0 s1=0
  [ -f "$WORK/scrapes" ] && s0=$(cat "$WORK/scrapes")
  t0=$(date +%s.%N)
  c0=$(awk '{print $14 + $15}' "/proc/$RUN_PID/stat")
  sleep "$SAMPLE_S"
  t1=$(date +%s.%N)
  c1=$(awk '{print $14 + $15}' "/proc/$RUN_PID/stat")
  [ -f "$WORK/scrapes" ] && s1=$(cat "$WORK/scrapes")
  [ "$name" = scraped ] && cp "$WORK/good.scrape" "$WORK/hold.scrape"
  echo "$((c1 - c0)) $t0 $t1 $((s1 - s0))" >"$WORK/$name.cpu"
  wait "$RUN_PID" || [ -s "$WORK/$name.json" ] || { echo "the $name run failed:"; cat "$WORK/$name.err"; exit 1; }
  RUN_PID=
  if [ -n "$SCRAPER_PID" ]; then wait "$SCRAPER_PID" 2>/dev/null || true; SCRAPER_PID=; fi
}

echo "run A: $N connections, no --metrics-listen (sampling ${SAMPLE_S} s of the hold)…"
run_case plain
echo "run B: $N connections, --metrics-listen scraped every second…"
run_case scraped --metrics-listen 127.0.0.1:0

python3 - "$WORK" "$N" "$TCK" "$TARGET_PCT" <<'EOF'
import json, sys
work, n, tck, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def case(name):
    ticks, t0, t1, scrapes = open(f"{work}/{name}.cpu").read().split()
    dt = float(t1) - float(t0)
    cpu_s = int(ticks) / tck
    r = json.load(open(f"{work}/{name}.json"))
    return cpu_s, dt, int(scrapes), r["connections"]
a_cpu, a_dt, _, a_c = case("plain")
b_cpu, b_dt, scrapes, b_c = case("scraped")
a_pct, b_pct = a_cpu / a_dt * 100, b_cpu / b_dt * 100
scrape = open(f"{work}/hold.scrape").read()
open_line = [l for l in scrape.splitlines() if l.startswith("wsscale_open_connections")]
print()
print(f"connections established:  A {a_c['established']} / B {b_c['established']} of {n}")
print(f"client CPU over the hold:  A (no endpoint) {a_pct:.2f} % of one core ({a_cpu:.2f} s in {a_dt:.0f} s)")
print(f"                           B (1 s scrape)  {b_pct:.2f} % of one core ({b_cpu:.2f} s in {b_dt:.0f} s)")
extra = b_pct - a_pct
per = (b_cpu - a_cpu * b_dt / a_dt) / scrapes * 1000 if scrapes else float("nan")
print(f"scrape cost:               {extra:+.2f} % of one core; {per:.2f} ms CPU per scrape "
      f"({scrapes} scrapes of {len(scrape)} bytes)  (target <= {target} %)")
print(f"last scrape in the hold:   {open_line[0] if open_line else 'NO wsscale_open_connections'}")
ok = (a_c["established"] == n and b_c["established"] == n and scrapes > 0
      and open_line and open_line[0].endswith(f" {n}") and extra <= target)
sys.exit(0 if ok else 1)
EOF
