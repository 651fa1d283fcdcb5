# shellcheck shell=bash disable=SC2034
# Shared start-up of the benches that run past the per-process descriptor limit
# (bench/hold-100k.sh, bench/watch-cost.sh, bench/ramp-100k.sh, bench/hold-1m.sh,
# bench/heartbeat-cost.sh) and of bench/message-cost.sh.
# Source it from a bench script after `cd` to the repository root:
#
#   . bench/lib.sh
#   bench_build                 # cargo build --release; sets BIN
#   P=$(bench_processes N)      # client processes for N connections (RLIMIT_NOFILE, never hard-coded)
#   bench_start_gateway P       # wsscale serve --processes P on 127.0.0.1:0; sets GW_PID URL GW_PIDS
#   bench_stop_gateway          # stops the gateway only (to start a fresh one)
#   trap bench_cleanup EXIT     # stops the gateway, removes $WORK
#
# Every function reads the limits of the shell that runs it (inside `ip netns exec` too).

WORK=${WORK:-$(mktemp -d)}
GW_PID=
# A command prefix for the processes the bench starts, e.g. (ip netns exec NS); empty: none.
BENCH_EXEC=()
BENCH_CLEANUP_MORE=

# cargo build --release; BIN is the binary under CARGO_TARGET_DIR (target/ by default).
bench_build() {
  BIN=${CARGO_TARGET_DIR:-target}/release/wsscale
  if [ -z "${BENCH_NO_BUILD:-}" ]; then
    echo "building wsscale (release)…"
    cargo build --release
  fi
  [ -x "$BIN" ] || { echo "no binary at $BIN"; exit 1; }
}

# The hard RLIMIT_NOFILE of this shell (fs.nr_open when unlimited).
bench_hard_nofile() {
  local hard
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ]; then hard=$(cat /proc/sys/fs/nr_open); fi
  echo "$hard"
}

# Connections one process holds: the hard limit minus 64 descriptors for the process itself
# (system::FD_HEADROOM).
bench_per_process() { echo $(($(bench_hard_nofile) - 64)); }

# Client processes for N connections: ceil(N / per-process), at least 2. wsscale splits a
# plan exactly, so every process gets N / P.
bench_processes() {
  local n=$1 per
  per=$(bench_per_process)
  local p=$(((n + per - 1) / per))
  [ "$p" -lt 2 ] && p=2
  echo "$p"
}

# Gateway processes for N connections. SO_REUSEPORT spreads connections over the processes
# by a hash of the 4-tuple, not evenly: a process gets N/P ± sqrt(N/P). Plan for 5 standard
# deviations so the fullest process stays under its descriptor limit:
# P = ceil(N / (per − 5·sqrt(per))), at least 2.
bench_gateway_processes() {
  local n=$1 per
  per=$(bench_per_process)
  python3 -c "import math; n, per = $n, $per; room = per - 5 * math.sqrt(per); print(max(2, math.ceil(n / room)))"
}

# Start `wsscale serve --processes P --listen ADDR --threads 1 [EXTRA…]` in the background
# and wait for its "listening on" line. Sets GW_PID, URL, GW_PIDS (the children).
bench_start_gateway() {
  local p=$1 listen=${2:-127.0.0.1:0}
  shift 2 || shift $#
  "${BENCH_EXEC[@]}" "$BIN" serve --processes "$p" --listen "$listen" --threads 1 "$@" >"$WORK/serve.out" 2>"$WORK/serve.err" &
  GW_PID=$!
  local line=
  for _ in $(seq 1 600); do
    line=$(grep '^listening on ' "$WORK/serve.out" 2>/dev/null || true)
    [ -n "$line" ] && break
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$line" ] || { echo "gateway did not start:"; cat "$WORK/serve.err"; exit 1; }
  URL=$(echo "$line" | awk '{print $3}')
  GW_PIDS=$(echo "$line" | sed 's/.*processes: \(.*\))/\1/')
}

# Create network namespace NAME with loopback up and the given net sysctls (KEY=VALUE…), run
# every process the bench starts inside it (BENCH_EXEC), and delete it in bench_cleanup —
# after killing whatever still runs there. Needs root. The host's settings are not touched:
# net.* sysctls set here belong to the namespace.
bench_netns() {
  BENCH_NS=$1
  shift
  ip netns add "$BENCH_NS"
  BENCH_EXEC=(ip netns exec "$BENCH_NS")
  "${BENCH_EXEC[@]}" ip link set lo up
  if [ $# -gt 0 ]; then "${BENCH_EXEC[@]}" sysctl -q -w "$@"; fi
}

# Sum of VmRSS (kB) of the given pids.
bench_rss_kb() {
  local total=0 kb pid
  for pid in "$@"; do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

# utime + stime (clock ticks) of a pid, 0 when gone.
bench_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# A /proc/meminfo value in kB.
bench_meminfo_kb() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }

# Stop the gateway started by bench_start_gateway (SIGTERM, then wait).
bench_stop_gateway() {
  if [ -n "$GW_PID" ]; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
  fi
}

# Stop the gateway (SIGTERM, then wait), run $BENCH_CLEANUP_MORE, delete the namespace
# (bench_netns), remove $WORK.
bench_cleanup() {
  bench_stop_gateway
  if [ -n "$BENCH_CLEANUP_MORE" ]; then eval "$BENCH_CLEANUP_MORE" || true; fi
  if [ -n "${BENCH_NS:-}" ] && ip netns list | grep -qw "$BENCH_NS"; then
    ip netns pids "$BENCH_NS" | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$BENCH_NS" && echo "namespace $BENCH_NS deleted"
  fi
  rm -rf "$WORK"
}
