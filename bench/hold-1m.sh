#!/usr/bin/env bash
# One million held connections on this host, client and gateway together, in a network
# namespace this script creates (its own loopback and net sysctls; the host's are not touched)
# and deletes on exit, whatever happens.
#
#   gateway: wsscale serve --processes P --listen 127.0.0.1:0 --threads 1
#   client:  wsscale run --processes Q -c N --ramp RAMP --hold HOLD --ramp-down DOWN
#              --ping-interval PING --source-ip 127.1.0.1-127.1.0.S --target URL --interval 5s
#              --process-orphan-timeout 60s   (the coordinator and its agents ride out pauses
#              of up to a minute on a crowded host; 10 s by default)
#
# Q, P and S are computed from this shell's RLIMIT_NOFILE and the namespace's port range,
# never hard-coded:
#   - Q (client processes) = ceil(N / (hard limit − 64)); wsscale splits the plan exactly;
#   - P (gateway processes) = ceil(N / (per − 5·sqrt(per))): SO_REUSEPORT hashes connections
#     over the processes, so each gets N/P ± sqrt(N/P); 5 standard deviations of room;
#   - S (source addresses) = enough that no (source, gateway) pair holds more than half the
#     ephemeral range (past half, connect() scans used ports and slows down), and a multiple
#     of Q so every client process has the same number; one gateway port then suffices.
#
# Before anything starts it checks, with the arithmetic: fs.file-max against the files open
# now + 2 descriptors per connection (client and gateway sockets both live on this host),
# fs.epoll.max_user_watches, memory (per connection: 2 kernel sockets + gateway + client
# user space, plus each process's baseline) against MemAvailable (abort below estimate × 1.2,
# and below 18 GiB for 1M), CPU (N ÷ PING × 100 µs per ping and its pong, client, gateway and
# kernel together, measured here at 200,000) against half the cores (abort above, unless
# --force: 1M with 30 s pings needs 3.3 cores, more than this 2-core machine has), and
# `wsscale preflight -c N --processes Q --ping-interval PING` run inside the namespace must
# agree (no failing check; its cpu check warns).
#
# Prints: established (target ≥ 99.9 %), dropped during the hold (target 0), client and
# gateway bytes per connection, kernel slab (Slab and SUnreclaim, before vs at the peak),
# ramp time, ping p99 and the cost of merging Q processes (the coordinator's CPU per
# interval over the hold; 5 s by default, so the coordinator merges 51 agents' snapshots every
# 5 s, not every second; see docs/benchmarks.md for what stopped the 1M runs here). Exits 1
# when a target is missed, 3 when the pre-check refuses.
#
# Usage: bench/hold-1m.sh [--report-json FILE] [--connections N] [--ramp DUR] [--hold DUR]
#                         [--ramp-down DUR] [--interval DUR] [--orphan-timeout DUR] [--ping DUR]
#                         [--force]   (start even when the CPU pre-check says the pings will not keep up)
#   Durations are whole seconds with an s (120s).
#   e.g. bench/hold-1m.sh --ping 120s --report-json /tmp/1m.json   (1,000,000; 300 s ramp, 300 s hold)
#        bench/hold-1m.sh --connections 100000 --ramp 30s --hold 60s     (a quick rehearsal)
# Needs root (ip netns). Takes ~15 minutes for 1M; run it in the background.
set -euo pipefail
# shellcheck disable=SC2086 # $GW_PIDS is a list of pids
cd "$(dirname "$0")/.."

N=1000000
RAMP=300s
HOLD=300s
DOWN=60s
PING=30s
INTERVAL=5s
ORPHAN=60s
REPORT_OUT=
FORCE=
while [ $# -gt 0 ]; do
  case $1 in
    --report-json) REPORT_OUT=$2; shift 2 ;;
    --connections) N=$2; shift 2 ;;
    --ramp) RAMP=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    --ramp-down) DOWN=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --orphan-timeout) ORPHAN=$2; shift 2 ;;
    --ping) PING=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
secs() { echo "$1" | sed 's/s$//'; }
for d in "$RAMP" "$HOLD" "$PING"; do
  [[ $d =~ ^[0-9]+s$ ]] || { echo "durations here are whole seconds with an s: $d (e.g. 120s)" >&2; exit 2; }
done
ramp_s=$(secs "$RAMP"); hold_s=$(secs "$HOLD")

[ "$(id -u)" = 0 ] || { echo "needs root (it creates a network namespace with ip netns)"; exit 3; }
command -v ip >/dev/null || { echo "needs iproute2 (ip netns)"; exit 3; }

. bench/lib.sh
bench_build

NS=wsscale-1m-$$
RUN_PID=
SAMPLER=
# shellcheck disable=SC2016,SC2034 # expanded by bench_cleanup (bench/lib.sh)
BENCH_CLEANUP_MORE='
  if [ -n "$RUN_PID" ]; then kill -TERM "$RUN_PID" 2>/dev/null || true; wait "$RUN_PID" 2>/dev/null || true; fi
  if [ -n "$SAMPLER" ]; then kill "$SAMPLER" 2>/dev/null || true; fi'
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# ---- the arithmetic ---------------------------------------------------------------------
PORT_LO=1024
PORT_HI=65535
RANGE=$((PORT_HI - PORT_LO + 1))
HARD=$(bench_hard_nofile)
PER=$(bench_per_process)
Q=$(bench_processes "$N")
P=$(bench_gateway_processes "$N")
HALF=$((RANGE / 2))
S_MIN=$(((N + HALF - 1) / HALF))
S=$(((S_MIN + Q - 1) / Q * Q))
[ "$S" -lt "$Q" ] && S=$Q
[ "$S" -le 65000 ] || { echo "too many source addresses needed ($S)"; exit 3; }
SRC_LAST="127.1.$((S / 256)).$((S % 256))"
SOURCES="127.1.0.1-$SRC_LAST"
PAIR=$(((N + S - 1) / S))
echo "plan: $N connections; RLIMIT_NOFILE hard $HARD → $PER per process"
echo "  client:  Q = ceil($N / $PER) = $Q processes of $(((N + Q - 1) / Q)) connections"
echo "  gateway: P = ceil($N / ($PER − 5·sqrt($PER))) = $P processes (SO_REUSEPORT spread ± 5 σ)"
echo "  sources: $S addresses ($SOURCES), $PAIR connections per (source, gateway) pair" \
  "≤ half of the namespace's $RANGE-port range ($HALF); one gateway port"

# ---- pre-check: host-wide limits and memory, before anything starts ----------------------
FAIL=0
FILE_MAX=$(cat /proc/sys/fs/file-max)
FILE_NOW=$(awk '{print $1}' /proc/sys/fs/file-nr)
FILES_NEEDED=$((FILE_NOW + 2 * N + (P + Q + 2) * 64))
echo "pre-check:"
printf '  fs.file-max            %s files now + 2 × %s sockets (client + gateway, both here) + %s × 64 per process = %s of %s: ' \
  "$FILE_NOW" "$N" "$((P + Q + 2))" "$FILES_NEEDED" "$FILE_MAX"
if [ "$FILES_NEEDED" -le "$FILE_MAX" ]; then echo ok; else echo "TOO FEW (host-wide; this bench never changes fs.* sysctls)"; FAIL=1; fi
WATCHES=$(cat /proc/sys/fs/epoll/max_user_watches)
printf '  epoll watches          2 × %s sockets = %s of %s: ' "$N" "$((2 * N))" "$WATCHES"
if [ $((2 * N)) -le "$WATCHES" ]; then echo ok; else echo "TOO FEW"; FAIL=1; fi
# Per-connection figures measured on this machine (docs/benchmarks.md): the kernel's slab per
# TCP socket (3,755 B in a 100K rehearsal of this script, 3.8-5.1 KB in bench/hold-100k.sh),
# the gateway's user space (bench/gateway-bytes.sh: 4,155 B), the client's with a ping every
# 30 s (571 B in the rehearsal); a process's baseline RSS before it holds a connection
# (~6.8 MiB per agent). Override with KERNEL_B=… etc.
KERNEL_B=${KERNEL_B:-4200}
GATEWAY_B=${GATEWAY_B:-4200}
CLIENT_B=${CLIENT_B:-600}
PROCESS_B=${PROCESS_B:-8000000}
AVAIL=$(($(bench_meminfo_kb MemAvailable) * 1024))
ESTIMATE=$((N * (2 * KERNEL_B + GATEWAY_B + CLIENT_B) + (P + Q + 1) * PROCESS_B))
NEED=$((ESTIMATE * 12 / 10))
FLOOR=0
[ "$N" -ge 1000000 ] && FLOOR=$((18 * 1024 * 1024 * 1024))
[ "$NEED" -lt "$FLOOR" ] && NEED=$FLOOR
gib() { python3 -c "print(f'{$1 / 2**30:.1f} GiB')"; }
printf '  memory                 %s × (2 × %s B kernel + %s B gateway + %s B client) + %s processes × %s MB = %s; with 20 %% margin %s (at least 18 GiB for 1M); available %s: ' \
  "$N" "$KERNEL_B" "$GATEWAY_B" "$CLIENT_B" "$((P + Q + 1))" "$((PROCESS_B / 1000000))" \
  "$(gib "$ESTIMATE")" "$(gib "$NEED")" "$(gib "$AVAIL")"
if [ "$AVAIL" -ge "$NEED" ]; then echo ok; else
  echo "TOO LITTLE (other processes — compilers? — use the rest; free -g, retry later or lower --connections)"
  FAIL=1
fi

# CPU to hold N with a ping every PING: every ping and its pong cost ~100 µs of CPU here
# (client, gateway and kernel; 200,000 held with 30 s pings kept 0.656 of the 2 cores busy
# for 6,667 pings/s — the figure `wsscale preflight` plans with). Past half the cores the
# pings fall behind while the ramp competes, and connections are dropped: refused unless
# --force.
PING_US=${PING_US:-100}
CORES=$(nproc)
CPU_CORES=$(python3 -c "print(f'{$N / $(secs "$PING") * $PING_US / 1e6:.2f}')")
printf '  cpu                    %s connections × 1 ping / %s × %s µs = %s cores of %s (at most half: %s): ' \
  "$N" "$PING" "$PING_US" "$CPU_CORES" "$CORES" "$(python3 -c "print($CORES / 2)")"
if python3 -c "import sys; sys.exit(0 if $CPU_CORES <= $CORES / 2 else 1)"; then echo ok
elif [ -n "$FORCE" ]; then echo "TOO MUCH (--force: trying anyway)"
else
  echo "TOO MUCH (the pings would fall behind and connections drop: a longer --ping, fewer --connections, or --force)"
  FAIL=1
fi

PER_CONN=$((2 * KERNEL_B + GATEWAY_B + CLIENT_B))
echo "  what bounds N here:    fs.file-max → ($FILE_MAX − $FILE_NOW − $((P + Q + 2)) × 64) / 2 =" \
  "$(((FILE_MAX - FILE_NOW - (P + Q + 2) * 64) / 2)) connections;" \
  "memory → ($(gib "$AVAIL") / 1.2 − processes) / $PER_CONN B = $(((AVAIL * 10 / 12 - (P + Q + 1) * PROCESS_B) / PER_CONN)) connections;" \
  "ports → $S sources × $HALF = $((S * HALF)) connections"

# ---- the namespace and its sysctls ------------------------------------------------------
bench_netns "$NS" net.ipv4.ip_local_port_range="$PORT_LO $PORT_HI" \
  net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 \
  net.ipv4.tcp_tw_reuse=1 net.ipv4.tcp_fin_timeout=15 \
  net.ipv4.tcp_max_tw_buckets=$((2 * N))
nsx() { ip netns exec "$NS" "$@"; }
echo "namespace $NS: lo up; ip_local_port_range $PORT_LO-$PORT_HI, somaxconn 65535," \
  "tcp_max_syn_backlog 65535, tcp_tw_reuse 1, tcp_fin_timeout 15, tcp_max_tw_buckets $((2 * N))"

echo "wsscale preflight -c $N --processes $Q --source-ip $SOURCES --ping-interval $PING (in the namespace; the embedded gateway's layout):"
set +e
nsx "$BIN" preflight -c "$N" --processes "$Q" --source-ip "$SOURCES" --ping-interval "$PING" >"$WORK/preflight.txt" 2>&1
PF=$?
set -e
grep -Ei 'fail|memory|file-max|epoll|open files|ephemeral|source split|cpu' "$WORK/preflight.txt" | sed 's/^/  /' | head -n 20
if [ "$PF" != 0 ]; then echo "  preflight refuses (exit $PF); full output:"; sed 's/^/    /' "$WORK/preflight.txt"; FAIL=1; fi
if [ "$FAIL" != 0 ]; then echo "pre-check failed: not starting"; exit 3; fi

# ---- the run ------------------------------------------------------------------------------
SLAB0=$(bench_meminfo_kb Slab)
SUNR0=$(bench_meminfo_kb SUnreclaim)
echo "starting the gateway ($P processes)…"
bench_start_gateway "$P" 127.0.0.1:0
echo "gateway: $URL ($P processes)"
GW_RSS0=$(bench_rss_kb $GW_PIDS)

TCK=$(getconf CLK_TCK)
echo "running the client: $N connections from $Q processes (ramp $RAMP, hold $HOLD, ramp-down $DOWN," \
  "ping every $PING; live output in $WORK/live.txt)…"
START=$(date +%s.%N)
"${BENCH_EXEC[@]}" "$BIN" run --processes "$Q" -c "$N" --ramp "$RAMP" --hold "$HOLD" --ramp-down "$DOWN" \
  --ping-interval "$PING" --source-ip "$SOURCES" --target "$URL" --interval "$INTERVAL" \
  --process-orphan-timeout "$ORPHAN" --report-json "$WORK/report.json" >"$WORK/summary.txt" 2>"$WORK/live.txt" &
RUN_PID=$!

# Samples: the coordinator's CPU when the hold starts and when it ends; memory, slab and
# sockets in the middle of the hold.
(
  at() { sleep "$(python3 -c "print(max(0.0, $START + $1 - $(date +%s.%N)))")"; }
  at "$ramp_s"
  echo "$(date +%s.%N) $(bench_cpu_ticks "$RUN_PID")" >"$WORK/coord0"
  at "$((ramp_s + hold_s / 2))"
  bench_rss_kb $GW_PIDS >"$WORK/gw_rss_kb"
  bench_meminfo_kb Slab >"$WORK/slab_kb"
  bench_meminfo_kb SUnreclaim >"$WORK/sunr_kb"
  nsx awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "inuse") print $(i + 1)}' /proc/net/sockstat >"$WORK/tcp_inuse"
  nsx ss -Htn state established | wc -l >"$WORK/established"
  at "$((ramp_s + hold_s))"
  echo "$(date +%s.%N) $(bench_cpu_ticks "$RUN_PID")" >"$WORK/coord1"
) &
SAMPLER=$!
while kill -0 "$RUN_PID" 2>/dev/null; do
  sleep 30
  line=$(grep -a 'open' "$WORK/live.txt" | grep -v '^ *agent' | tail -n 1 || true)
  echo "  $(date -u +%H:%M:%S) ${line:0:150}"
done
wait "$RUN_PID" || true
RUN_PID=
END=$(date +%s.%N)
# The sampler sleeps until the planned end of the hold; a run that ended early does not wait.
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=
echo "client finished; summary:"
cat "$WORK/summary.txt"
[ -n "$REPORT_OUT" ] && cp "$WORK/report.json" "$REPORT_OUT" && echo "merged report written to $REPORT_OUT"

python3 - "$WORK" "$N" "$ramp_s" "$hold_s" "$P" "$Q" "$S" "$TCK" "$SLAB0" "$SUNR0" "$GW_RSS0" \
  "$(echo "$END - $START" | bc)" "$(secs "$INTERVAL")" <<'EOF'
import json, os, sys
work, n, ramp, hold, p, q, s, tck, slab0, sunr0, gw0, wall, interval = sys.argv[1:]
interval = float(interval)
n, ramp, hold, p, q, s, tck = int(n), float(ramp), float(hold), int(p), int(q), int(s), int(tck)
def num(name, default=0):
    try:
        return open(os.path.join(work, name)).read().split()
    except OSError:
        return None
r = json.load(open(os.path.join(work, "report.json")))
c, m, agents = r["connections"], r["memory"], r["agents"]
pct = 100.0 * c["established"] / n
hold_rows = [row for row in r["timeseries"] if ramp + interval < row["t_s"] <= ramp + hold]
dropped_hold = sum(row["dropped"] for row in hold_rows)
held_rows = [row for row in hold_rows if row["t_s"] >= c["peak_reached_after_s"]]
held_min = min((row["open"] for row in held_rows), default=0)
gw_kb = int((num("gw_rss_kb") or ["0"])[0])
slab, sunr = int((num("slab_kb") or ["0"])[0]), int((num("sunr_kb") or ["0"])[0])
inuse = int((num("tcp_inuse") or ["0"])[0])
est_sockets = int((num("established") or ["0"])[0])
gw_conns = est_sockets // 2 or max(held_min, 1)
print()
print(f"processes:                 {q} client + {p} gateway, {s} source addresses, 1 gateway port (wall {float(wall):.0f} s)")
print(f"established:               {c['established']:,} of {n:,} = {pct:.3f} %  (target >= 99.9 %); failed {c['failed']:,}: "
      + (", ".join(f"{k} {v}" for k, v in c["failures"].items() if v) or "none"))
print(f"dropped during the hold:   {dropped_hold}  (target 0; lowest open count once the peak was reached: {held_min:,})")
print(f"ESTABLISHED sockets:       {est_sockets:,} in the namespace mid-hold ({inuse:,} TCP sockets in use)")
print(f"client bytes/connection:   {m['bytes_per_connection'] or 0:.0f} B of user space "
      f"({m['rss_at_peak_open_bytes'] / 2**30:.2f} GiB RSS over {q} agents at the peak)")
print(f"gateway bytes/connection:  {(gw_kb - int(gw0)) * 1024 / gw_conns:.0f} B of user space "
      f"({int(gw0) / 1024:.0f} MiB -> {gw_kb / 2**20:.2f} GiB RSS over {p} processes mid-hold, {gw_conns:,} connections)")
print(f"kernel slab:               Slab {int(slab0) / 2**20:.2f} -> {slab / 2**20:.2f} GiB (+{(slab - int(slab0)) / 2**20:.2f} GiB), "
      f"SUnreclaim {int(sunr0) / 2**20:.2f} -> {sunr / 2**20:.2f} GiB; "
      f"{(slab - int(slab0)) * 1024 / max(inuse, 1):.0f} B of slab per TCP socket")
print(f"ramp:                      all {c['peak_open']:,} open {c['peak_reached_after_s']:.1f} s after the start "
      f"(planned {ramp:.0f} s, {n / ramp:.0f}/s; achieved {c['peak_ramp_rate_per_s'] or 0:.0f}/s)")
pt = r["timings"].get("ping_rtt_ms")
if pt and pt.get("count"):
    print(f"ping rtt p50/p99/max:      {pt['p50']:.2f} / {pt['p99']:.2f} / {pt['max']:.2f} ms over {pt['count']:,} pings (whole run, ramp included)")
    p99s = sorted(row["latency_ms"]["ping_rtt_ms"]["p99"] for row in held_rows
                  if (row.get("latency_ms") or {}).get("ping_rtt_ms"))
    if p99s:
        print(f"ping p99 during the hold:  median {p99s[len(p99s) // 2]:.2f} ms, max {p99s[-1]:.2f} ms "
              f"(p99 of each {interval:.0f}-s interval, {len(p99s)} intervals)")
else:
    print("ping rtt:                  no pings timed")
c0, c1 = num("coord0"), num("coord1")
if c0 and c1:
    dt = float(c1[0]) - float(c0[0])
    cpu = (int(c1[1]) - int(c0[1])) / tck
    print(f"merging {q} processes:      coordinator {cpu:.2f} s CPU over {dt:.0f} s of hold = {100 * cpu / dt:.1f} % of one core, "
          f"{1000 * cpu / dt * interval:.1f} ms per {interval:.0f}-s interval ({q} snapshots merged each)")
ok = pct >= 99.9 and dropped_hold == 0
print("targets met" if ok else "TARGETS MISSED")
sys.exit(0 if ok else 1)
EOF
