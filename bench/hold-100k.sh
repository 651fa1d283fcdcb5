#!/usr/bin/env bash
# 100,000 connections held on one host, past the per-process descriptor limit.
#
#   gateway: wsscale serve --processes P           (P processes on one SO_REUSEPORT port)
#   client:  wsscale run --processes P -c 100000 --source-ip 127.0.0.2-127.0.0.9
#            (a coordinator in the run process, P agent processes)
#
# P is computed from RLIMIT_NOFILE (read with getrlimit via `ulimit -Hn`, never hard-coded):
# P = ceil(N / (hard limit − 64)), at least 2. Ramp ≤ 30 s, hold ≥ 60 s. Prints:
#
#   - established % (target ≥ 99.9 %) and connections dropped during the hold (target 0);
#   - whether the merged report is consistent (agents sum to the totals, per-source rows sum
#     to the established count);
#   - total client memory (sum of the agents' RSS at the peak) and memory per connection,
#     the gateway processes' RSS during the hold, the kernel's TCP memory (sockstat);
#   - the ramp rate: planned, achieved up to the peak, and the best 1-second interval.
#
# Exits non-zero when a target is missed.
#
# Usage: bench/hold-100k.sh [CONNECTIONS] [RAMP] [HOLD]     e.g. bench/hold-100k.sh 100000 30s 60s
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-100000}
RAMP=${2:-30s}
HOLD=${3:-60s}
SOURCES=127.0.0.2-127.0.0.9
. bench/lib.sh
bench_build

P=$(bench_processes "$N")
echo "RLIMIT_NOFILE hard limit $(bench_hard_nofile) → at most $(bench_per_process) connections per process → $P processes per side"
trap bench_cleanup EXIT

echo "starting the gateway ($P processes)…"
bench_start_gateway "$P" 127.0.0.1:0
echo "gateway: $URL ($P processes: $GW_PIDS)"

ramp_s=$(echo "$RAMP" | sed 's/s$//')
hold_s=$(echo "$HOLD" | sed 's/s$//')
# Sample the gateway's memory and the kernel's TCP memory in the middle of the hold.
(
  sleep $((ramp_s + hold_s / 2 + 2))
  # shellcheck disable=SC2086 # GW_PIDS is a list
  bench_rss_kb $GW_PIDS >"$WORK/gw_rss_kb"
  bench_meminfo_kb Slab >"$WORK/slab_hold_kb"
  awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "inuse") print $(i + 1)}' /proc/net/sockstat >"$WORK/tcp_inuse"
) &
SAMPLER=$!

bench_meminfo_kb Slab >"$WORK/slab_before_kb"
echo "running the client: $N connections from $P processes (ramp $RAMP, hold $HOLD, ramp-down 10s;" \
  "live output in $WORK/live.txt)…"
START=$(date +%s.%N)
"$BIN" run --processes "$P" -c "$N" --ramp "$RAMP" --hold "$HOLD" --ramp-down 10s \
  --source-ip "$SOURCES" --target "$URL" --interval 1s --max-pending 2048 \
  --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/live.txt" || true
END=$(date +%s.%N)
echo "client finished; last live lines and summary:"
wait "$SAMPLER" 2>/dev/null || true
tail -n 40 "$WORK/live.txt" | grep -v '^    agent' | tail -n 6
cat "$WORK/summary.txt"

python3 - "$WORK/report.json" "$N" "$ramp_s" "$hold_s" "$(cat "$WORK/gw_rss_kb" 2>/dev/null || echo 0)" \
  "$(( $(cat "$WORK/slab_hold_kb" 2>/dev/null || echo 0) - $(cat "$WORK/slab_before_kb") ))" \
  "$(cat "$WORK/tcp_inuse" 2>/dev/null || echo 0)" \
  "$P" "$(echo "$END - $START" | bc)" <<'EOF'
import json, sys
path, n, ramp, hold, gw_kb, slab_kb, tcp_inuse, procs, wall = sys.argv[1:]
n, ramp, hold = int(n), float(ramp), float(hold)
r = json.load(open(path))
c, m, agents = r["connections"], r["memory"], r["agents"]
established_pct = 100.0 * c["established"] / n
# Drops during the hold: interval rows whose end lies inside the hold window (+1 s slack for
# the row that straddles the ramp's end). The open count is checked from the moment the
# peak was reached (the ramp may finish a little after its planned end).
hold_rows = [row for row in r["timeseries"] if ramp + 1.0 < row["t_s"] <= ramp + hold]
dropped_hold = sum(row["dropped"] for row in hold_rows)
held_rows = [row for row in hold_rows if row["t_s"] >= c["peak_reached_after_s"]]
held_min = min((row["open"] for row in held_rows), default=0)
best_rate = max((row["connect_rate"] for row in r["timeseries"]), default=0.0)
sum_agents = sum(a["established"] for a in agents)
sum_sources = sum(s["established"] for s in c["per_source"])
merged_ok = (sum_agents == c["established"] and sum_sources == c["established"]
             and len(agents) == int(procs) and not any(a["lost"] for a in agents))
client_peak = m["rss_at_peak_open_bytes"]
per_conn = m["bytes_per_connection"] or 0.0
t = r["timings"]["ws_handshake_ms"]
print()
print(f"processes:                   {procs} client + {procs} gateway (wall time {float(wall):.1f} s)")
print(f"established:                 {c['established']} of {n} = {established_pct:.3f} %  (target >= 99.9 %)")
print(f"failed / dropped (total):    {c['failed']} / {c['dropped']}   failures: "
      + (", ".join(f"{k} {v}" for k, v in c["failures"].items() if v) or "none"))
print(f"dropped during the hold:     {dropped_hold}  (target 0; lowest open count once the peak was reached: {held_min})")
print(f"merged report consistent:    {merged_ok}  (agents sum {sum_agents}, per-source sum {sum_sources}, "
      f"established {c['established']}, {len(agents)} agents)")
print(f"client memory (all agents):  {client_peak / 2**20:.1f} MiB RSS at the peak "
      f"({m['rss_before_bytes'] / 2**20:.1f} MiB before the first connect)")
print(f"client memory per conn:      {per_conn:.0f} bytes of user space")
print(f"gateway memory (mid-hold):   {int(gw_kb) / 1024:.1f} MiB RSS over {procs} processes "
      f"({int(gw_kb) * 1024 / max(held_min, 1):.0f} bytes/conn)")
print(f"kernel slab growth:          {int(slab_kb) / 1024:.1f} MiB for {tcp_inuse} TCP sockets in use "
      f"({int(slab_kb) * 1024 / max(int(tcp_inuse), 1):.0f} bytes/socket, client and gateway sides)")
print(f"ramp rate:                   planned {n / ramp:.0f}/s; achieved {c['peak_ramp_rate_per_s'] or 0:.0f}/s "
      f"(peak {c['peak_open']} after {c['peak_reached_after_s']:.1f} s); best 1-s interval {best_rate:.0f}/s")
print(f"handshake p50/p99/max:       {t['p50']:.2f} / {t['p99']:.2f} / {t['max']:.2f} ms")
ok = established_pct >= 99.9 and dropped_hold == 0 and merged_ok and ramp <= 30 and hold >= 60
print("targets met" if ok else "TARGETS MISSED")
sys.exit(0 if ok else 1)
EOF
