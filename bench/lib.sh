# shellcheck shell=bash disable=SC2034  # the BENCH_* variables are for the sourcing script
# Shared start-up of the bench/ scripts (source it: `. bench/lib.sh`).
#
#   bench_processes N          how many processes N connections need per side, from the hard
#                              RLIMIT_NOFILE (read, never hard-coded): ceil(N / (limit − 64)),
#                              at least 2. Sets BENCH_FD_LIMIT and BENCH_PROCS.
#   bench_start_gateway BIN P [serve flags…]
#                              `BIN serve --processes P` (P = 1: one process) on a free
#                              loopback port; waits for its "listening on" line. Sets
#                              BENCH_URL, BENCH_GW_PID (the process started) and
#                              BENCH_GW_PIDS (every serving process).
#   bench_stop_gateway         SIGTERM the gateway started above and wait for it.

bench_processes() {
  BENCH_FD_LIMIT=$(ulimit -Hn)
  if [ "$BENCH_FD_LIMIT" = unlimited ]; then BENCH_FD_LIMIT=$(cat /proc/sys/fs/nr_open); fi
  local per=$((BENCH_FD_LIMIT - 64))
  BENCH_PROCS=$((($1 + per - 1) / per))
  if [ "$BENCH_PROCS" -lt 2 ]; then BENCH_PROCS=2; fi
}

bench_start_gateway() {
  local bin=$1 procs=$2
  shift 2
  BENCH_GW_OUT=$(mktemp)
  BENCH_GW_ERR=$(mktemp)
  local extra=()
  if [ "$procs" -gt 1 ]; then extra=(--processes "$procs"); fi
  "$bin" serve "${extra[@]}" --listen 127.0.0.1:0 "$@" >"$BENCH_GW_OUT" 2>"$BENCH_GW_ERR" &
  BENCH_GW_PID=$!
  local _
  for _ in $(seq 1 200); do
    grep -q '^listening on ' "$BENCH_GW_OUT" 2>/dev/null && break
    kill -0 "$BENCH_GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  local line
  line=$(grep '^listening on ' "$BENCH_GW_OUT" || true)
  if [ -z "$line" ]; then
    echo "gateway did not start:" >&2
    cat "$BENCH_GW_ERR" >&2
    return 1
  fi
  BENCH_URL=$(echo "$line" | awk '{print $3}')
  if [ "$procs" -gt 1 ]; then
    BENCH_GW_PIDS=$(echo "$line" | sed 's/.*processes: \(.*\))/\1/')
  else
    BENCH_GW_PIDS=$BENCH_GW_PID
  fi
}

bench_stop_gateway() {
  if [ -n "${BENCH_GW_PID:-}" ]; then
    kill -TERM "$BENCH_GW_PID" 2>/dev/null || true
    wait "$BENCH_GW_PID" 2>/dev/null || true
    BENCH_GW_PID=
  fi
  rm -f "${BENCH_GW_OUT:-}" "${BENCH_GW_ERR:-}"
}
