#!/usr/bin/env bash
# Protocol presets vs raw WebSocket: client memory per held idle connection.
#
# One `wsscale run` client process per mode holds N connections (default 18,000) against a
# server in another process, idle but with the protocol's keep-alive running:
#
#   raw       `wsscale serve` (the embedded echo gateway, its own process), no --protocol
#   socketio  python-socketio 5 on aiohttp (ci/socketio_server.py), --protocol socketio:
#             the server's Engine.IO pings (`2`) are answered (`3`)
#   mqtt      RabbitMQ 3.10 Web-MQTT (ci/servers.sh), --protocol mqtt --heartbeat-interval
#             30s: CONNECT/CONNACK, then a PINGREQ every 30 s
#
# and, for reference (not checked against the target), `raw+hb`: raw WebSocket against
# `wsscale serve` with the keep-alive the mqtt preset runs, in generic form
# (--heartbeat-text hb --heartbeat-interval 30s --heartbeat-expect hb: a text frame every
# 30 s whose echo is awaited): it separates what a client-driven keep-alive costs from
# what the protocol preset itself costs (REFERENCE=0 skips it).
#
# each with `--ramp 20s --hold 30s --ramp-down 0s --allow-failures --report-json`, spread
# over loopback source addresses (default 127.0.0.2-127.0.0.5) so that no (source,
# destination) pair uses more than half the ephemeral port range. The figure is the
# client's `memory.bytes_per_connection` = (RSS at peak open − RSS before the first
# connect) ÷ peak open, of the client process only (the servers are other processes).
#
# What the servers need to hold 18,000 here (2 cores, RLIMIT_NOFILE 20,000 per process):
#
#   - RabbitMQ sizes its socket budget from its descriptor limit: 0.9 × (20,000 − 97) − 2
#     = 17,910 sockets, so 90 of 18,000 MQTT connections get no CONNACK. This script
#     raises the budget at run time (file_handle_cache:set_limit, so that 0.9 × limit − 2
#     ≥ N + 100; still under the real 20,000-descriptor limit) and lowers the node's log
#     level to warning (it otherwise logs every connection's open and close). After the
#     run it waits (≤ 3 min) for the node to finish closing the connections: a
#     `rabbitmqctl stop` meanwhile fails (noproc).
#   - One python-socketio process with ci/servers.sh's ping interval of 5 s cannot hold
#     18,000 on 2 shared cores (900 handshakes/s during the ramp, 3,600 pings/s at 18,000):
#     it fell behind and dropped connections from ~6,500 on. The socketio run therefore uses its own
#     instances of ci/socketio_server.py (SIO_PROCS, default 3, each on its own port; the
#     client spreads connections round-robin over them), with Engine.IO's usual ping
#     interval 25 s / timeout 20 s (SIO_PING_INTERVAL, SIO_PING_TIMEOUT) set through a
#     small wrapper, since the script has no option for it.
#
# Prints a table (mode, connections established, dropped, client bytes per connection,
# difference vs raw) and exits 1 when a protocol run costs more than raw + MARGIN bytes
# (default 64) per connection, or when a run did not establish all N connections or
# dropped any; 2 when the servers or a run could not be started.
#
# Usage: bench/protocols.sh [CONNECTIONS]          e.g. bench/protocols.sh 18000
#
# Environment:
#   WSSCALE_BIN=PATH        use this wsscale binary instead of building one
#   WSSCALE_BUILD=head      build HEAD in a temporary git worktree instead of the working tree
#                           (also the fallback when the working tree does not compile)
#   SOURCES=SPEC            --source-ip of every run [127.0.0.2-127.0.0.(1+k), k ≥ 4 so that
#                           each source/destination pair stays under half the port range]
#   RAMP=20s HOLD=30s       load shape;  MARGIN=64  allowed bytes/connection over raw
#   SIO_PROCS=3 SIO_PING_INTERVAL=25 SIO_PING_TIMEOUT=20   the Socket.IO servers
#   SERVERS_DIR=DIR         ci/servers.sh state and venv [/tmp/wsscale-bench-protocols;
#                           never the tests' /tmp/wsscale-servers]
#   RESULTS=DIR             where the JSON reports and logs are kept [a new /tmp directory]
#   REFERENCE=0             skip the raw+hb reference run
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

N=${1:-18000}
RAMP=${RAMP:-20s}
HOLD=${HOLD:-30s}
MARGIN=${MARGIN:-64}
SIO_PROCS=${SIO_PROCS:-3}
SIO_PING_INTERVAL=${SIO_PING_INTERVAL:-25}
SIO_PING_TIMEOUT=${SIO_PING_TIMEOUT:-20}
SERVERS_DIR=${SERVERS_DIR:-/tmp/wsscale-bench-protocols}
REFERENCE=${REFERENCE:-1}
RABBIT_BIN=/usr/lib/rabbitmq/bin
T0=$SECONDS

step() { printf '\n==> [%4ds] %s\n' $((SECONDS - T0)) "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
  echo "bench/protocols.sh: ERROR: $*" >&2
  exit 2
}

if [ "$SERVERS_DIR" = /tmp/wsscale-servers ]; then
  die "SERVERS_DIR must not be /tmp/wsscale-servers (the tests' servers)"
fi
WORK=$(mktemp -d /tmp/wsscale-protocols-work.XXXXXX)
RESULTS=${RESULTS:-$(mktemp -d /tmp/wsscale-protocols.XXXXXX)}
mkdir -p "$RESULTS"

# ---------------------------------------------------------------- cleanup
GW_PID=
SIO_PIDS=()
SERVERS_STARTED=
WT=
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  if [ -n "$GW_PID$SERVERS_STARTED$WT" ] || [ ${#SIO_PIDS[@]} -gt 0 ]; then
    echo
    echo "==> stopping what this script started"
  fi
  if [ -n "$GW_PID" ]; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
  fi
  for p in "${SIO_PIDS[@]}"; do
    # Each Socket.IO server is a session (and process group) leader: end the group.
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${SIO_PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ -n "$SERVERS_STARTED" ]; then
    WSSCALE_SERVERS_DIR=$SERVERS_DIR ci/servers.sh stop || true
  fi
  if [ -n "$WT" ]; then
    git -C "$REPO" worktree remove --force "$WT" 2>/dev/null || rm -rf "$WT"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- binary
step "building wsscale (release)…"
if [ -n "${WSSCALE_BIN:-}" ]; then
  [ -x "$WSSCALE_BIN" ] || die "WSSCALE_BIN=$WSSCALE_BIN is not executable"
  BIN_SRC=$WSSCALE_BIN
  BUILT="given binary $WSSCALE_BIN"
else
  BIN_SRC=
  if [ "${WSSCALE_BUILD:-tree}" != head ]; then
    if cargo build --release; then
      BIN_SRC=$REPO/target/release/wsscale
      dirty=$(git status --porcelain -- src Cargo.toml Cargo.lock | wc -l)
      BUILT="working tree at $(git rev-parse --short HEAD)"
      [ "$dirty" -eq 0 ] || BUILT="$BUILT + $dirty uncommitted file(s) in src/, Cargo.*"
    else
      note "the working tree does not compile (someone's edit in progress?): building HEAD instead"
    fi
  fi
  if [ -z "$BIN_SRC" ]; then
    WT=$(mktemp -d /tmp/wt-bench-protocols.XXXXXX)
    git worktree add --detach "$WT" HEAD >/dev/null
    note "worktree of HEAD ($(git rev-parse --short HEAD)) in $WT"
    TARGET_DIR=${WSSCALE_BENCH_TARGET:-/tmp/wt-bench-protocols-target}
    (cd "$WT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release) || die "HEAD does not build either"
    BIN_SRC=$TARGET_DIR/release/wsscale
    BUILT="HEAD $(git rev-parse --short HEAD) (clean worktree)"
  fi
fi
# A private copy: a concurrent `cargo build` must not replace the binary between runs.
cp "$BIN_SRC" "$WORK/wsscale"
BIN=$WORK/wsscale
note "binary: $BUILT — $("$BIN" --version 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- sources
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
HALF=$(((PORT_HI - PORT_LO + 1) / 2))
K=$(((N + HALF - 1) / HALF))
[ "$K" -ge 4 ] || K=4
[ "$K" -le 253 ] || die "$N connections need $K source addresses per destination"
SOURCES=${SOURCES:-127.0.0.2-127.0.0.$((1 + K))}
note "ephemeral ports $PORT_LO–$PORT_HI (half: $HALF per source/destination pair) → --source-ip $SOURCES"
note "reports and logs: $RESULTS"

# ---------------------------------------------------------------- servers
step "starting servers: RabbitMQ (Web-MQTT) and the Python venv via ci/servers.sh ($SERVERS_DIR)…"
SERVERS_STARTED=1
WSSCALE_SERVERS_DIR=$SERVERS_DIR ci/servers.sh start || die "ci/servers.sh start failed"
eval "$(WSSCALE_SERVERS_DIR=$SERVERS_DIR ci/servers.sh env)"
MQTT_URL=$WSSCALE_MQTT_URL

rabbitmqctl() {
  # shellcheck disable=SC1091
  (. "$SERVERS_DIR/rabbitmq/env.sh" && timeout 60 "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" "$@")
}
# The socket budget: file_handle_cache allows trunc(0.9 × limit − 2) sockets.
FH_LIMIT=$(((N + 102) * 10 / 9 + 1))
RABBIT_LIMITS=$(rabbitmqctl eval 'file_handle_cache:info([total_limit, sockets_limit]).' | tr -d '\n')
note "rabbitmq: $RABBIT_LIMITS"
if [ "$(echo "$RABBIT_LIMITS" | sed -n 's/.*total_limit,\([0-9]*\).*/\1/p')" -lt "$FH_LIMIT" ]; then
  rabbitmqctl eval "file_handle_cache:set_limit($FH_LIMIT)." >/dev/null || die "could not raise RabbitMQ's socket limit"
fi
rabbitmqctl set_log_level warning >/dev/null || die "could not set RabbitMQ's log level"
RABBIT_LIMITS=$(rabbitmqctl eval 'file_handle_cache:info([total_limit, sockets_limit]).' | tr -d '\n')
note "rabbitmq: raised to $RABBIT_LIMITS, log level warning; Web-MQTT at $MQTT_URL"
SOCKETS_LIMIT=$(echo "$RABBIT_LIMITS" | sed -n 's/.*sockets_limit,\([0-9]*\).*/\1/p')
[ "${SOCKETS_LIMIT:-0}" -ge "$N" ] || die "RabbitMQ allows only ${SOCKETS_LIMIT:-?} sockets"
RABBIT_PROCS=$(rabbitmqctl eval 'erlang:system_info(process_count).' | tr -dc 0-9)
RABBIT_VERSION=$(rabbitmqctl version 2>/dev/null | tr -d '\n' || true)
SIO_VERSION=$("$SERVERS_DIR/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("python-socketio"))')

step "starting $SIO_PROCS Socket.IO servers (ci/socketio_server.py, ping interval ${SIO_PING_INTERVAL} s, timeout ${SIO_PING_TIMEOUT} s)…"
# ci/socketio_server.py has the ping settings built in: wrap it, overriding the keyword
# arguments of socketio.AsyncServer (and a deeper listen backlog for aiohttp's TCPSite).
cat >"$WORK/sio_wrap.py" <<'EOF'
import os, runpy, sys
import socketio
from aiohttp import web

INTERVAL = float(os.environ["SIO_PING_INTERVAL"])
TIMEOUT = float(os.environ["SIO_PING_TIMEOUT"])


class AsyncServer(socketio.AsyncServer):
    def __init__(self, *args, **kwargs):
        kwargs.update(ping_interval=INTERVAL, ping_timeout=TIMEOUT)
        super().__init__(*args, **kwargs)


class TCPSite(web.TCPSite):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("backlog", 4096)
        super().__init__(*args, **kwargs)


socketio.AsyncServer = AsyncServer
web.TCPSite = TCPSite
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
EOF
SIO_TARGETS=()
for i in $(seq 1 "$SIO_PROCS"); do
  SIO_PING_INTERVAL=$SIO_PING_INTERVAL SIO_PING_TIMEOUT=$SIO_PING_TIMEOUT \
    setsid "$SERVERS_DIR/venv/bin/python" -u "$WORK/sio_wrap.py" "$REPO/ci/socketio_server.py" \
    --host 127.0.0.1 --port 0 --port-file "$WORK/sio$i.port" \
    </dev/null >"$RESULTS/socketio-server-$i.log" 2>&1 &
  SIO_PIDS+=($!)
done
for i in $(seq 1 "$SIO_PROCS"); do
  for _ in $(seq 1 100); do
    [ -s "$WORK/sio$i.port" ] && break
    kill -0 "${SIO_PIDS[$((i - 1))]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -s "$WORK/sio$i.port" ] || { cat "$RESULTS/socketio-server-$i.log" >&2; die "Socket.IO server $i did not start"; }
  SIO_TARGETS+=("ws://127.0.0.1:$(cat "$WORK/sio$i.port")/socket.io/?EIO=4&transport=websocket")
done
# Check on the wire that the ping settings took: the Engine.IO open packet says them.
"$SERVERS_DIR/venv/bin/python" - "${SIO_TARGETS[@]}" <<'EOF' || die "a Socket.IO server does not answer as expected"
import json, sys
import websocket
for url in sys.argv[1:]:
    ws = websocket.create_connection(url, timeout=10)
    frame = ws.recv()
    ws.close()
    assert frame.startswith("0{"), frame
    o = json.loads(frame[1:])
    print(f"    {url}: pingInterval {o['pingInterval']} ms, pingTimeout {o['pingTimeout']} ms")
EOF

step "starting the raw gateway (wsscale serve, its own process)…"
"$BIN" serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$RESULTS/serve.err" &
GW_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
RAW_URL=$(sed -n 's/^listening on //p' "$WORK/serve.out" | awk '{print $1}')
[ -n "$RAW_URL" ] || { cat "$RESULTS/serve.err" >&2; die "wsscale serve did not start"; }
note "gateway: $RAW_URL (pid $GW_PID)"

# ---------------------------------------------------------------- runs
# run_mode MODE FLAGS...: one client run; its JSON report goes to $RESULTS/MODE.json.
run_mode() {
  local mode=$1 rc
  shift
  step "$mode: $N connections, ramp $RAMP, hold $HOLD, ramp-down 0s…"
  local cmd=("$BIN" run "$@" -c "$N" --ramp "$RAMP" --hold "$HOLD" --ramp-down 0s
    --source-ip "$SOURCES" --interval 5s --allow-failures --report-json "$RESULTS/$mode.json")
  note "wsscale run $(printf '%q ' "$@")-c $N --ramp $RAMP --hold $HOLD --ramp-down 0s --source-ip $SOURCES --allow-failures --report-json $mode.json"
  set +e
  "${cmd[@]}" >"$RESULTS/$mode.out" 2>"$RESULTS/$mode.err" &
  local pid=$! shown=0 lines
  # Live progress: the run's interval lines (on stderr) as they come.
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    lines=$(grep -c '^\[' "$RESULTS/$mode.err" 2>/dev/null)
    if [ "${lines:-0}" -gt "$shown" ]; then
      grep '^\[' "$RESULTS/$mode.err" | sed -n "$((shown + 1)),${lines}p" | sed "s/^/    $mode /"
      shown=$lines
    fi
  done
  wait "$pid"
  rc=$?
  set -e
  grep '^\[' "$RESULTS/$mode.err" | sed -n "$((shown + 1)),\$p" | sed "s/^/    $mode /"
  if [ ! -s "$RESULTS/$mode.json" ]; then
    cat "$RESULTS/$mode.err" >&2
    die "$mode: the run wrote no report (exit code $rc)"
  fi
  sleep 5 # let the server finish closing before the next run
}

run_mode raw --target "$RAW_URL"
if [ "$REFERENCE" != 0 ]; then
  run_mode raw+hb --target "$RAW_URL" --heartbeat-text hb --heartbeat-interval 30s --heartbeat-expect hb
fi
SIO_FLAGS=()
for u in "${SIO_TARGETS[@]}"; do SIO_FLAGS+=(--target "$u"); done
run_mode socketio "${SIO_FLAGS[@]}" --protocol socketio
run_mode mqtt --target "$MQTT_URL" --protocol mqtt --heartbeat-interval 30s

# RabbitMQ takes a minute or more to tear down 18,000 MQTT connections closed at once; a
# `rabbitmqctl stop` meanwhile fails (noproc) and ci/servers.sh would have to kill the node.
step "waiting for RabbitMQ to finish closing the connections (processes back near $RABBIT_PROCS)…"
for _ in $(seq 1 36); do
  procs=$(rabbitmqctl eval 'erlang:system_info(process_count).' 2>/dev/null | tr -dc 0-9)
  note "rabbitmq: ${procs:-?} processes"
  [ -n "$procs" ] && [ "$procs" -le $((RABBIT_PROCS + 100)) ] && break
  sleep 5
done

# ---------------------------------------------------------------- table
step "results"
set +e
python3 - "$RESULTS" "$N" "$MARGIN" "$SIO_VERSION" "${RABBIT_VERSION:-3}" "$SIO_PING_INTERVAL" <<'EOF'
import json, os, sys

results, n, margin = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
servers = {
    "raw": "wsscale serve",
    "raw+hb": "wsscale serve",
    "socketio": f"python-socketio {sys.argv[4]}, ping {sys.argv[6]} s",
    "mqtt": f"RabbitMQ {sys.argv[5]} Web-MQTT",
}
rows, ok = [], True
raw_bpc = None
for mode in ("raw", "raw+hb", "socketio", "mqtt"):
    path = os.path.join(results, f"{mode}.json")
    if mode == "raw+hb" and not os.path.exists(path):
        continue
    r = json.load(open(path))
    c, m, t, h = r["connections"], r["memory"], r["traffic"], r["heartbeats"]
    bpc = m["bytes_per_connection"]
    held = sum(s["duration_s"] for s in r["stages"]) - c["peak_reached_after_s"]
    if mode == "raw":
        raw_bpc = bpc
        keep = "—"
    elif mode == "socketio":
        keep = f"{t['server_pings_answered']:,} server pings answered"
    elif mode == "mqtt":
        keep = f"{h['heartbeat_replies']:,} of {h['heartbeats_sent']:,} PINGREQ answered"
    else:
        keep = f"{h['heartbeat_replies']:,} of {h['heartbeats_sent']:,} heartbeats echoed"
    problems = []
    if c["established"] != n or c["peak_open"] != n:
        problems.append(f"established {c['established']}, peak {c['peak_open']} of {n}")
    if c["dropped"]:
        problems.append(f"{c['dropped']} dropped")
    if bpc is None:
        problems.append("no memory figure")
    diff = None
    if mode != "raw" and bpc is not None and raw_bpc is not None:
        diff = bpc - raw_bpc
        if diff > margin:
            problems.append(f"over raw + {margin:g} B")
    if mode == "raw+hb":
        # A reference: only a run that did not hold its connections is a failure.
        problems = [p for p in problems if not p.startswith("over raw")]
    ok &= not problems
    rows.append([
        mode,
        servers[mode] + (f", {len(r['targets'])} processes" if len(r["targets"]) > 1 else ""),
        f"{c['established']:,} / {n:,}",
        f"{c['dropped']:,}",
        f"{c['peak_reached_after_s']:.1f} s / {held:.1f} s",
        keep,
        f"{m['rss_before_bytes'] / 2**20:.2f} → {m['rss_at_peak_open_bytes'] / 2**20:.2f} MiB",
        "—" if bpc is None else f"{bpc:.0f}",
        "—" if mode == "raw" else ("—" if diff is None else f"{diff:+.0f}"),
        "FAIL: " + "; ".join(problems) if problems else ("reference" if mode == "raw+hb" else "ok"),
    ])
head = ["mode", "server", "established / planned", "dropped", "all open after / held",
        "keep-alive", "client RSS before → at peak", "client B/conn", "vs raw (B)", "result"]
print("| " + " | ".join(head) + " |")
print("|" + "|".join("---" for _ in head) + "|")
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
print(f"target: each protocol ≤ raw + {margin:g} B per connection; every run {n:,} established, 0 dropped")
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
STATUS=$?
set -e
echo
echo "reports and logs kept in $RESULTS"
exit "$STATUS"
