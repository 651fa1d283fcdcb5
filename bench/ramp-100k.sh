#!/usr/bin/env bash
# How fast 100,000 connections open on this host: client and gateway processes side by side,
# no planned ramp (`--ramp 0s`: every agent opens as fast as its pending cap lets it).
#
#   namespace: one this script creates (own loopback, own counters; deleted on exit), with
#              somaxconn / tcp_max_syn_backlog 65535 and the ports 1024-65535
#   gateway:   wsscale serve --processes P --threads 1
#   client:    wsscale run --processes P -c N --ramp 0s --hold 40s --ramp-down 5s
#                --max-pending PENDING --source-ip 127.0.0.2-127.0.0.13 --interval 1s
#
# P is computed from RLIMIT_NOFILE as in bench/hold-100k.sh (6 per side for 100K here).
# Prints the time until all N were open (the merged report's peak_reached_after_s), the rate,
# the handshake p50/p99, where the CPU went during the ramp (each side's processes as a share
# of the 2 cores, from /proc/PID/stat sampled every 0.5 s) and the kernel's drop counters
# (nstat in the namespace: ListenOverflows, ListenDrops, SYN retransmits, ...), so the limit
# is visible: the CPU per connection (both sides) and the rate it allows on all cores. Target:
# all N open within TARGET_S seconds (default 20: 1.75 x faster than the 35.5 s of the 30 s
# planned ramp in bench/hold-100k.sh) with none failed; exits 1 otherwise.
#
# Usage: bench/ramp-100k.sh [CONNECTIONS] [PENDING] [TARGET_S]   e.g. bench/ramp-100k.sh 100000 1024 20
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-100000}
PENDING=${2:-1024}
TARGET_S=${3:-20}
HOLD=${HOLD:-40s}
SOURCES=127.0.0.2-127.0.0.13
[ "$(id -u)" = 0 ] || { echo "needs root (it creates a network namespace with ip netns)"; exit 3; }
. bench/lib.sh
bench_build

P=$(bench_processes "$N")
echo "RLIMIT_NOFILE hard limit $(bench_hard_nofile) → $P processes per side"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_netns "wsscale-ramp-$$" net.ipv4.ip_local_port_range="1024 65535" \
  net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 net.ipv4.tcp_tw_reuse=1

bench_start_gateway "$P" 127.0.0.1:0
echo "gateway: $URL ($P processes)"
"${BENCH_EXEC[@]}" nstat -n # reset nstat's history: the next call prints the run's deltas

echo "running the client: $N connections from $P processes, 0 s ramp, --max-pending $PENDING per process…"
START=$(date +%s.%N)
"${BENCH_EXEC[@]}" "$BIN" run --processes "$P" -c "$N" --ramp 0s --hold "$HOLD" --ramp-down 5s \
  --max-pending "$PENDING" --source-ip "$SOURCES" --target "$URL" --interval 1s \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/live.txt" &
RUN_PID=$!
# CPU ticks of the coordinator, the agents (its children) and the gateways, every 0.5 s.
(
  while kill -0 "$RUN_PID" 2>/dev/null; do
    agents=$(pgrep -P "$RUN_PID" | tr "\n" " " || true)
    a=0 g=0
    for pid in $agents; do a=$((a + $(bench_cpu_ticks "$pid"))); done
    for pid in $GW_PIDS; do g=$((g + $(bench_cpu_ticks "$pid"))); done
    echo "$(date +%s.%N) $(bench_cpu_ticks "$RUN_PID") $a $g"
    sleep 0.5
  done
) >"$WORK/cpu.txt" &
SAMPLER=$!
wait "$RUN_PID" || true
wait "$SAMPLER" || true
"${BENCH_EXEC[@]}" nstat -az >"$WORK/nstat.txt"
grep -v '^ *agent' "$WORK/summary.txt" | sed -n '1,12p'

python3 - "$WORK" "$N" "$START" "$(getconf CLK_TCK)" "$TARGET_S" "$P" <<'EOF'
import json, os, sys
work, n, start, tck, target, p = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
r = json.load(open(f"{work}/report.json"))
c = r["connections"]
t = r["timings"]["ws_handshake_ms"]
peak_s = c["peak_reached_after_s"]
print()
print(f"established:            {c['established']:,} of {n:,}; failed {c['failed']:,}: "
      + (", ".join(f"{k} {v}" for k, v in c["failures"].items() if v) or "none"))
print(f"all open after:         {peak_s:.2f} s ({c['peak_open']:,} open) = {c['peak_open'] / max(peak_s, 1e-9):,.0f}/s; "
      f"best 1-s interval {max((row['connect_rate'] for row in r['timeseries']), default=0):,.0f}/s")
rates = [f"{row['connect_rate']:,.0f}" for row in r["timeseries"][: int(peak_s) + 2]]
print(f"opened per second:      {' '.join(rates)}")
print(f"handshake p50/p99/max:  {t['p50']:.2f} / {t['p99']:.2f} / {t['max']:.2f} ms "
      f"(TCP connect p99 {r['timings']['tcp_connect_ms']['p99']:.2f} ms)")
# CPU over the ramp: from the first sample to the first sample past the peak (run start + peak_s,
# plus the ~1 s the agents take to join before their start instant).
rows = [list(map(float, l.split())) for l in open(f"{work}/cpu.txt") if l.strip()]
if len(rows) >= 2:
    first = rows[0]
    last = next((row for row in rows if row[0] >= start + 1.0 + peak_s), rows[-1])
    dt = last[0] - first[0]
    share = lambda i: 100.0 * (last[i] - first[i]) / tck / dt
    cores = os.cpu_count() or 1
    print(f"CPU during the ramp:    agents {share(2):.0f} %, gateways {share(3):.0f} %, coordinator {share(1):.0f} % "
          f"of one core over {dt:.1f} s ({cores} cores = {100 * cores} %; the rest went to other processes)")
    us = lambda i: (last[i] - first[i]) / tck * 1e6 / max(c["peak_open"], 1)
    total_us = us(1) + us(2) + us(3)
    print(f"CPU per connection:     {us(2):.0f} µs client + {us(3):.0f} µs gateway + {us(1):.0f} µs coordinator "
          f"(user + system, kernel TCP work included) = {total_us:.0f} µs: "
          f"with all {cores} cores this box opens at most ~{cores * 1e6 / max(total_us, 1e-9):,.0f}/s")
want = ["TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtTCPSynRetrans",
        "TcpExtTCPBacklogDrop", "TcpExtTCPTimeWaitOverflow", "TcpAttemptFails", "TcpExtTCPAbortOnData"]
counters = {}
for line in open(f"{work}/nstat.txt"):
    f = line.split()
    if len(f) >= 2 and f[0] in want:
        counters[f[0]] = int(f[1])
print("kernel counters:        " + ", ".join(f"{k.replace('TcpExt', '')} {counters.get(k, 0)}" for k in want))
ok = c["established"] == n and c["failed"] == 0 and peak_s <= target
print(f"target: all {n:,} open within {target:.0f} s, none failed — " + ("met" if ok else "MISSED"))
sys.exit(0 if ok else 1)
EOF
