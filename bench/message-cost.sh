#!/usr/bin/env bash
# Client CPU per echoed message: wsscale against tcpkali, side by side (issue #15, part 2).
#
# Each tool gets one client thread and its own single-threaded `wsscale serve --threads 1`
# (started by this script on a free loopback port), and sends 100 connections × 2,000 msg/s
# of 64 B for 10 s:
#
#   wsscale run --threads 1 -c 100 --ramp 0s --hold 10s --ramp-down 0s \
#       --message-rate 2000/s --message-size 64          (every message timed)
#   tcpkali --ws -w 1 -c 100 --connect-rate 10000 -m <64 B> -r 2000 -T 10s   (timing nothing)
#
# CPU is the client process's own utime + stime from /proc/PID/stat (what getrusage
# reports for it), read just before it exits — the gateway's CPU is not in it. Echoed
# messages are counted from each tool's own output: wsscale's `messages.received`
# (JSON report); tcpkali's "Total data received" bytes ÷ 66 (a 64-byte payload in an
# unmasked 2-byte-header frame; tcpkali counts bytes from the end of its connect phase).
#
# Prints µs of client CPU per echoed message for each, the ratio, and wsscale's schedule
# lag (p50, p99) and echo round trip. Targets: wsscale ≤ 0.9 × tcpkali and ≤ 4 µs; exits 1
# when one is missed, 2 when tcpkali is not available (the comparison is never skipped).
#
# Usage: TCPKALI=/path/to/tcpkali bench/message-cost.sh [RUNS]      (default 1 run each)
#        WSSCALE_BIN=/path/to/wsscale …   measures that binary instead of building this tree
#
# tcpkali is not packaged in Debian. To build 1.2.0 from source (autotools; glibc dropped
# <sys/sysctl.h>, which tcpkali includes but does not need on Linux):
#   apt-get install -y autoconf automake libtool bison flex
#   git clone https://github.com/satori-com/tcpkali /tmp/tcpkali-src && cd /tmp/tcpkali-src
#   sed -i '/#include <sys\/sysctl.h>/d' src/tcpkali_syslimits.c
#   autoreconf -i && ./configure --prefix=/tmp/tcpkali && make && make install
#   TCPKALI=/tmp/tcpkali/bin/tcpkali bench/message-cost.sh 2
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-1}
CONNS=100
RATE=2000
SIZE=64
SECS=10
TARGET_RATIO=0.9
TARGET_US=4.0

TCPKALI=${TCPKALI:-$(command -v tcpkali || true)}
if [ -z "$TCPKALI" ] || [ ! -x "$TCPKALI" ]; then
  echo "tcpkali not found: set TCPKALI=/path/to/tcpkali (how to build it: the header of $0)" >&2
  exit 2
fi

if [ -n "${WSSCALE_BIN:-}" ]; then
  BIN=$WSSCALE_BIN # a binary built elsewhere (e.g. an older commit, for a before/after)
else
  BIN=${CARGO_TARGET_DIR:-target}/release/wsscale
  echo "building wsscale (release)…"
  cargo build --release
fi
# shellcheck source=bench/lib.sh
. bench/lib.sh

trap 'bench_stop_gateway; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
TICKS=$(getconf CLK_TCK)

# Run "$@" in the background, sample its utime+stime (clock ticks) from /proc/PID/stat
# until it exits, and print the last sample in seconds. /proc/PID/stat stays readable
# until the parent reaps the child, and bash reaps only in `wait`, so the last sample is
# taken after the process is done working.
cpu_of() {
  "$@" &
  local pid=$! last=0 t
  while kill -0 "$pid" 2>/dev/null; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true)
    [ -n "$t" ] && last=$t
    # Exited but not reaped: its stat is final (state Z).
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" = Z ] && break
    sleep 0.2
  done
  local rc=0
  wait "$pid" || rc=$?
  echo "$last $TICKS" | awk '{printf "%.3f\n", $1 / $2}' >"$WORK/cpu"
  return "$rc"
}

PAYLOAD=$(head -c "$SIZE" /dev/zero | tr '\0' x)
results=()
for run in $(seq 1 "$RUNS"); do
  echo "== run $run of $RUNS: $CONNS connections × $RATE msg/s of $SIZE B for $SECS s, one client thread each =="

  bench_start_gateway 1 127.0.0.1:0
  echo "  tcpkali against its own gateway ($URL)…"
  cpu_of "$TCPKALI" --ws -w 1 -c "$CONNS" --connect-rate 10000 -m "$PAYLOAD" -r "$RATE" \
    -T "${SECS}s" "$(echo "$URL" | sed 's#^ws://##; s#/$##')" >"$WORK/tcpkali.out" 2>"$WORK/tcpkali.err" || {
    echo "tcpkali failed:"; cat "$WORK/tcpkali.err"; exit 1; }
  tk_cpu=$(cat "$WORK/cpu")
  bench_stop_gateway

  bench_start_gateway 1 127.0.0.1:0
  echo "  wsscale against its own gateway ($URL)…"
  cpu_of "$BIN" run --target "$URL" --threads 1 -c "$CONNS" --ramp 0s --hold "${SECS}s" \
    --ramp-down 0s --message-rate "$RATE/s" --message-size "$SIZE" --message-timeout 30s \
    --interval 1s --report-json "$WORK/ws.json" >"$WORK/ws.out" 2>"$WORK/ws.err" || true
  ws_cpu=$(cat "$WORK/cpu")
  bench_stop_gateway

  line=$(python3 - "$WORK/tcpkali.out" "$WORK/ws.json" "$tk_cpu" "$ws_cpu" "$SIZE" <<'PY'
import json, re, sys
tk_out, ws_json, tk_cpu, ws_cpu, size = sys.argv[1:]
text = open(tk_out).read()
m = re.search(r"Total data received:.*\((\d+) bytes\)", text)
if not m:
    sys.exit(f"no 'Total data received' line in tcpkali's output:\n{text}")
tk_msgs = int(m.group(1)) // (int(size) + 2)
r = json.load(open(ws_json))
ws_msgs = r["messages"]["received"]
lag = r["timings"]["schedule_lag_ms"]
rtt = r["timings"]["message_rtt_ms"]
tk_us = float(tk_cpu) / max(tk_msgs, 1) * 1e6
ws_us = float(ws_cpu) / max(ws_msgs, 1) * 1e6
print(f"{tk_us:.3f} {ws_us:.3f} {tk_msgs} {ws_msgs} {tk_cpu} {ws_cpu} "
      f"{lag['p50']:.3f} {lag['p99']:.3f} {rtt['p50']:.3f} {rtt['p99']:.3f} {r['duration_s']:.2f}")
PY
)
  read -r tk_us ws_us tk_msgs ws_msgs tk_s ws_s lag50 lag99 rtt50 rtt99 dur <<<"$line"
  echo "  tcpkali: $tk_msgs echoed messages, $tk_s s CPU → $tk_us µs per message"
  echo "  wsscale: $ws_msgs echoed messages, $ws_s s CPU over a ${dur} s run → $ws_us µs per message"
  echo "           schedule lag p50 $lag50 ms, p99 $lag99 ms; echo round trip p50 $rtt50 ms, p99 $rtt99 ms"
  results+=("$tk_us $ws_us $lag50")
done

printf '%s\n' "${results[@]}" | python3 -c '
import sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
tk = [r[0] for r in rows]; ws = [r[1] for r in rows]; lag = [r[2] for r in rows]
ratio = [r[1] / r[0] for r in rows]
worst = max(ratio)
print()
print(f"tcpkali:  {min(tk):.2f}–{max(tk):.2f} µs per echoed message ({len(rows)} runs)")
print(f"wsscale:  {min(ws):.2f}–{max(ws):.2f} µs per echoed message, every message timed; schedule lag p50 {min(lag):.2f}–{max(lag):.2f} ms")
print(f"ratio:    {min(ratio):.2f}–{max(ratio):.2f} × tcpkali (target <= '"$TARGET_RATIO"'), wsscale <= '"$TARGET_US"' µs")
ok = worst <= '"$TARGET_RATIO"' and max(ws) <= '"$TARGET_US"'
print("targets met" if ok else "TARGETS MISSED")
sys.exit(0 if ok else 1)
'
