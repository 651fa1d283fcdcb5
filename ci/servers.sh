#!/usr/bin/env bash
# Real protocol servers for wsscale's tests, on loopback only: python-socketio (aiohttp),
# RabbitMQ with Web-MQTT and Web-STOMP, and nats-server with its WebSocket listener; and
# headless Chromium for the HTML report's browser test (tests/report_html.rs).
#
#   ci/servers.sh start         install what is missing, start all, smoke-test them
#   ci/servers.sh install       only install what is missing (Debian packages), start nothing
#   eval "$(ci/servers.sh env)" export WSSCALE_SERVERS=1 and the WSSCALE_*_URL variables
#   ci/servers.sh check [--slow] protocol smoke test of the running servers
#   ci/servers.sh status        which are running
#   ci/servers.sh stop          stop all (safe to call twice, or when none runs)
#
# Everything (venv, data, logs, state) lives in $WSSCALE_SERVERS_DIR (default
# /tmp/wsscale-servers); two directories give two independent sets. Every port is a free
# one picked at start. See ci/README.md.
set -euo pipefail

CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${WSSCALE_SERVERS_DIR:-/tmp/wsscale-servers}
# Bound on each server's start (RabbitMQ takes ~13 s on an idle 2-core machine).
START_TIMEOUT=${WSSCALE_SERVERS_TIMEOUT:-120}
PYTHON=${PYTHON:-python3}
RABBIT_BIN=/usr/lib/rabbitmq/bin
VENV=$DIR/venv
STATE=$DIR/state
ENV_FILE=$DIR/env

log() { echo "servers: $*" >&2; }

# Print the last lines of each log given, to stderr.
show_logs() {
  local f
  for f in "$@"; do
    if [ -s "$f" ]; then
      echo "----- last lines of $f -----" >&2
      tail -n 40 "$f" >&2
      echo "-----" >&2
    else
      echo "----- $f: empty or missing -----" >&2
    fi
  done
}

# fail MESSAGE [LOG...]: report loudly, stop whatever this start had started, exit 1.
fail() {
  local msg=$1
  shift
  log "ERROR: $msg"
  show_logs "$@"
  log "stopping the servers started so far"
  stop_all || true
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "ERROR: need root (or sudo) to run: $*"
    return 1
  fi
}

# apt-get install PACKAGE... without letting their maintainer scripts start services
# (rabbitmq-server's would start a default node on port 5672).
apt_install() {
  log "installing Debian packages: $*"
  as_root bash -c '
    set -e
    guard=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      guard=1
    fi
    trap "[ -z \"\$guard\" ] || rm -f /usr/sbin/policy-rc.d" EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  ' apt_install "$@"
}

nats_bin() {
  command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; } || true
}

chromium_bin() {
  command -v chromium 2>/dev/null || true
}

epmd_bin() {
  command -v epmd 2>/dev/null || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -n 1 || true
}

install_packages() {
  local missing=()
  [ -x "$RABBIT_BIN/rabbitmq-server" ] || missing+=(rabbitmq-server)
  [ -n "$(nats_bin)" ] || missing+=(nats-server)
  [ -n "$(chromium_bin)" ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}" || fail "apt-get install ${missing[*]} failed"
  fi
  [ -x "$RABBIT_BIN/rabbitmq-server" ] || fail "rabbitmq-server is not installed"
  [ -n "$(nats_bin)" ] || fail "nats-server is not installed"
  [ -n "$(chromium_bin)" ] || fail "chromium is not installed"
}

# The venv with python-socketio, aiohttp and websocket-client, rebuilt whenever
# ci/requirements-servers.txt changes.
ensure_venv() {
  local req=$CI_DIR/requirements-servers.txt want
  want=$(sha256sum <"$req" | cut -d' ' -f1)
  if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ] &&
    "$VENV/bin/python" -c 'import socketio, aiohttp, websocket' 2>/dev/null; then
    return 0
  fi
  log "creating the Python venv $VENV ($req)"
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV" >"$DIR/venv.log" 2>&1; then
    # Debian's own python3 needs python3-venv for ensurepip.
    rm -rf "$VENV"
    apt_install python3-venv || fail "apt-get install python3-venv failed" "$DIR/venv.log"
    "$PYTHON" -m venv "$VENV" >"$DIR/venv.log" 2>&1 || fail "$PYTHON -m venv failed" "$DIR/venv.log"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req" >>"$DIR/venv.log" 2>&1 ||
    fail "pip install -r $req failed" "$DIR/venv.log"
  echo "$want" >"$VENV/.requirements.sha256"
}

# N distinct free loopback ports (all held open at once while picked, so distinct).
free_ports() {
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# spawn NAME WORKDIR LOG CMD...: start CMD in its own session (so it is one process group
# that stop can end), cwd WORKDIR, output to LOG; record NAME_PID in the state file.
spawn() {
  local name=$1 workdir=$2 logfile=$3
  shift 3
  rm -f "$DIR/$name.pid"
  (cd "$workdir" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$DIR/$name.pid" "$@" \
    </dev/null >"$logfile" 2>&1) &
  local _
  for _ in $(seq 1 50); do
    [ -s "$DIR/$name.pid" ] && break
    sleep 0.1
  done
  [ -s "$DIR/$name.pid" ] || fail "$name did not start" "$logfile"
  echo "${name^^}_PID=$(cat "$DIR/$name.pid")" >>"$STATE"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_tcp NAME PID PORT LOG...: until 127.0.0.1:PORT accepts a connection, bounded.
wait_tcp() {
  local name=$1 pid=$2 port=$3
  shift 3
  local deadline=$((SECONDS + START_TIMEOUT))
  until tcp_open "$port"; do
    alive "$pid" || fail "$name exited before listening on 127.0.0.1:$port" "$@"
    [ $SECONDS -lt $deadline ] || fail "$name not listening on 127.0.0.1:$port after ${START_TIMEOUT} s" "$@"
    sleep 0.2
  done
}

# ---------------------------------------------------------------- python-socketio
start_socketio() {
  local d=$DIR/socketio deadline pid port
  rm -rf "$d"
  mkdir -p "$d"
  spawn socketio "$d" "$d/server.log" "$VENV/bin/python" -u "$CI_DIR/socketio_server.py" \
    --host 127.0.0.1 --port 0 --port-file "$d/port"
  pid=$(cat "$DIR/socketio.pid")
  deadline=$((SECONDS + START_TIMEOUT))
  until [ -s "$d/port" ]; do
    alive "$pid" || fail "the Socket.IO server exited" "$d/server.log"
    [ $SECONDS -lt $deadline ] || fail "the Socket.IO server wrote no port in ${START_TIMEOUT} s" "$d/server.log"
    sleep 0.1
  done
  port=$(cat "$d/port")
  echo "SOCKETIO_PORT=$port" >>"$STATE"
  wait_tcp socketio "$pid" "$port" "$d/server.log"
  log "socketio: up on 127.0.0.1:$port (pid $pid)"
}

# ---------------------------------------------------------------- nats-server
start_nats() {
  local d=$DIR/nats client_port ws_port pid
  rm -rf "$d"
  mkdir -p "$d"
  read -r client_port ws_port < <(free_ports 2) || true
  [ -n "${ws_port:-}" ] || fail "could not pick free ports"
  cat >"$d/nats.conf" <<EOF
# Written by ci/servers.sh.
listen: 127.0.0.1:$client_port
# A client that does not answer PING is dropped after ping_max unanswered PINGs.
ping_interval: "2s"
ping_max: 2
websocket {
  host: 127.0.0.1
  port: $ws_port
  no_tls: true
}
EOF
  "$(nats_bin)" -t -c "$d/nats.conf" >"$d/config-test.log" 2>&1 ||
    fail "nats-server rejects $d/nats.conf" "$d/config-test.log"
  spawn nats "$d" "$d/server.log" "$(nats_bin)" -c "$d/nats.conf"
  pid=$(cat "$DIR/nats.pid")
  printf 'NATS_PORT=%s\nNATS_WS_PORT=%s\n' "$client_port" "$ws_port" >>"$STATE"
  wait_tcp nats "$pid" "$ws_port" "$d/server.log"
  log "nats: up, websocket on 127.0.0.1:$ws_port, client port $client_port (pid $pid)"
}

# ---------------------------------------------------------------- RabbitMQ
# Runs as the invoking user straight from /usr/lib/rabbitmq/bin (not the /usr/sbin wrapper,
# which would su to the rabbitmq user and cd to /var/lib/rabbitmq), with HOME, Erlang
# cookie, epmd port, data, logs and config all in $DIR/rabbitmq: no clash with a
# system RabbitMQ or another Erlang node on this machine.
launch_rabbitmq() {
  local d=$DIR/rabbitmq amqp mqtt stomp dist epmd_port node
  rm -rf "$d"
  mkdir -p "$d/log"
  read -r amqp mqtt stomp dist epmd_port < <(free_ports 5) || true
  [ -n "${epmd_port:-}" ] || fail "could not pick free ports"
  node="wsscale-$$@localhost"
  cat >"$d/rabbitmq.conf" <<EOF
# Written by ci/servers.sh.
loopback_users = none
listeners.tcp.default = 127.0.0.1:$amqp
# The MQTT and STOMP plugins' own TCP listeners (1883, 61613): off, WebSocket only.
mqtt.listeners.tcp = none
stomp.listeners.tcp = none
web_mqtt.tcp.ip = 127.0.0.1
web_mqtt.tcp.port = $mqtt
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $stomp
EOF
  echo '[rabbitmq_web_mqtt,rabbitmq_web_stomp].' >"$d/enabled_plugins"
  : >"$d/rabbitmq-env.conf"
  cat >"$d/env.sh" <<EOF
# Written by ci/servers.sh: the environment of this node and of rabbitmqctl for it, e.g.
#   (. $d/env.sh; $RABBIT_BIN/rabbitmqctl -n \$RABBITMQ_NODENAME status)
export HOME='$d'
export RABBITMQ_CONF_ENV_FILE='$d/rabbitmq-env.conf'
export RABBITMQ_NODENAME='$node'
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$amqp
export RABBITMQ_DIST_PORT=$dist
export ERL_EPMD_PORT=$epmd_port
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
export RABBITMQ_CONFIG_FILE='$d/rabbitmq.conf'
export RABBITMQ_ADVANCED_CONFIG_FILE='$d/advanced.config'
export RABBITMQ_ENABLED_PLUGINS_FILE='$d/enabled_plugins'
export RABBITMQ_FEATURE_FLAGS_FILE='$d/feature_flags'
export RABBITMQ_MNESIA_BASE='$d/mnesia'
export RABBITMQ_LOG_BASE='$d/log'
export ERL_CRASH_DUMP='$d/erl_crash.dump'
EOF
  printf 'RABBIT_NODE=%s\nRABBIT_EPMD_PORT=%s\nAMQP_PORT=%s\nMQTT_PORT=%s\nSTOMP_PORT=%s\n' \
    "$node" "$epmd_port" "$amqp" "$mqtt" "$stomp" >>"$STATE"
  # shellcheck disable=SC1091
  (. "$d/env.sh" && spawn rabbit "$d" "$d/stdout.log" "$RABBIT_BIN/rabbitmq-server")
  # spawn ran in a subshell: its line in the state file is there, its variables are not.
  log "rabbitmq: node $node booting (AMQP $amqp, Web-MQTT $mqtt, Web-STOMP $stomp)"
}

# rabbitmqctl SECONDS ARGS...: rabbitmqctl for this node, bounded in time.
rabbitmqctl() {
  local limit=$1
  shift
  # shellcheck disable=SC1091
  (. "$DIR/rabbitmq/env.sh" && timeout "$limit" "$RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@")
}

wait_rabbitmq() {
  local d=$DIR/rabbitmq pid
  # shellcheck disable=SC1090
  . "$STATE"
  pid=$RABBIT_PID
  local logs=("$d/stdout.log" "$d/log/$RABBIT_NODE.log")
  # The WebSocket listeners open last, once the plugins have started.
  wait_tcp rabbitmq "$pid" "$MQTT_PORT" "${logs[@]}"
  wait_tcp rabbitmq "$pid" "$STOMP_PORT" "${logs[@]}"
  rabbitmqctl 60 await_startup --timeout 50 >"$d/await_startup.log" 2>&1 || fail "rabbitmqctl await_startup failed" "$d/await_startup.log" "${logs[@]}"
  log "rabbitmq: up (pid $pid)"
}

# ---------------------------------------------------------------- stop
# owned PID PATTERN: PID is alive and its command line matches PATTERN (guards against a
# recycled pid in a stale state file).
owned() {
  alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}

# end_group NAME PID PATTERN: SIGTERM the process group, then SIGKILL after 15 s.
end_group() {
  local name=$1 pid=$2 pattern=$3 _
  owned "$pid" "$pattern" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$name (pid $pid) ignored SIGTERM: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  log "$name stopped"
}

stop_all() {
  if [ ! -f "$STATE" ]; then
    rm -f "$ENV_FILE"
    log "nothing to stop in $DIR"
    return 0
  fi
  local SOCKETIO_PID='' NATS_PID='' RABBIT_PID='' RABBIT_NODE='' RABBIT_EPMD_PORT='' _
  # shellcheck disable=SC1090
  . "$STATE"
  rm -f "$ENV_FILE"
  end_group socketio "$SOCKETIO_PID" socketio_server.py
  end_group nats "$NATS_PID" nats-server
  if owned "$RABBIT_PID" rabbitmq-server; then
    # A clean stop first; the process group is ended below if the node outlives it.
    rabbitmqctl 30 stop >"$DIR/rabbitmq/stop.log" 2>&1 ||
      log "rabbitmqctl stop failed (see $DIR/rabbitmq/stop.log): ending the process group"
    for _ in $(seq 1 300); do
      alive "$RABBIT_PID" || break
      sleep 0.1
    done
    if alive "$RABBIT_PID"; then
      end_group rabbitmq "$RABBIT_PID" rabbitmq-server
    else
      log "rabbitmq stopped"
    fi
  fi
  if [ -n "$RABBIT_EPMD_PORT" ] && [ -n "$(epmd_bin)" ]; then
    # Only this node's epmd: it listens on the port chosen for it at start.
    for _ in $(seq 1 50); do
      "$(epmd_bin)" -port "$RABBIT_EPMD_PORT" -kill >/dev/null 2>&1 && break
      tcp_open "$RABBIT_EPMD_PORT" || break
      sleep 0.2
    done
  fi
  rm -f "$STATE" "$DIR"/*.pid
}

# ---------------------------------------------------------------- env, status, check
write_env() {
  # shellcheck disable=SC1090
  . "$STATE"
  cat >"$ENV_FILE.tmp" <<EOF
export WSSCALE_SERVERS=1
export WSSCALE_SOCKETIO_URL='ws://127.0.0.1:$SOCKETIO_PORT/socket.io/?EIO=4&transport=websocket'
export WSSCALE_MQTT_URL='ws://127.0.0.1:$MQTT_PORT/ws'
export WSSCALE_STOMP_URL='ws://127.0.0.1:$STOMP_PORT/ws'
export WSSCALE_NATS_URL='ws://127.0.0.1:$NATS_WS_PORT'
export WSSCALE_CHROMIUM='$(chromium_bin)'
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

print_env() {
  if [ ! -s "$ENV_FILE" ]; then
    log "ERROR: no servers running in $DIR: run ci/servers.sh start first"
    exit 1
  fi
  cat "$ENV_FILE"
}

run_check() {
  [ -s "$ENV_FILE" ] || { log "ERROR: no servers running in $DIR"; return 1; }
  # shellcheck disable=SC1090
  (. "$ENV_FILE" && "$VENV/bin/python" "$CI_DIR/check_servers.py" "$@")
}

status() {
  if [ ! -f "$STATE" ]; then
    echo "no servers started in $DIR"
    return 0
  fi
  local SOCKETIO_PID='' NATS_PID='' RABBIT_PID='' down=0
  # shellcheck disable=SC1090
  . "$STATE"
  local name pid pattern
  for name in socketio nats rabbitmq; do
    case $name in
      socketio) pid=$SOCKETIO_PID pattern=socketio_server.py ;;
      nats) pid=$NATS_PID pattern=nats-server ;;
      rabbitmq) pid=$RABBIT_PID pattern=rabbitmq-server ;;
    esac
    if owned "$pid" "$pattern"; then
      echo "$name: running (pid $pid)"
    else
      echo "$name: NOT running"
      down=1
    fi
  done
  [ ! -s "$ENV_FILE" ] || cat "$ENV_FILE"
  return $down
}

start_all() {
  local t0=$SECONDS
  if [ -f "$STATE" ]; then
    log "stopping the servers of an earlier start in $DIR"
    stop_all || true
  fi
  mkdir -p "$DIR"
  : >"$STATE"
  install_packages
  launch_rabbitmq # boots in the background (~13 s) while the others start
  ensure_venv
  start_socketio
  start_nats
  wait_rabbitmq
  write_env
  log "protocol smoke test"
  run_check || fail "a server does not speak its protocol (see above)" \
    "$DIR/socketio/server.log" "$DIR/nats/server.log" "$DIR/rabbitmq/stdout.log"
  log "all servers up in $((SECONDS - t0)) s; eval \"\$(ci/servers.sh env)\" to use them"
}

case "${1:-}" in
  start) start_all ;;
  install) mkdir -p "$DIR" && install_packages ;;
  stop) stop_all ;;
  env) print_env ;;
  check) shift; run_check "$@" ;;
  status) status ;;
  *)
    echo "usage: $0 start|install|stop|env|check [--slow]|status   (state in \$WSSCALE_SERVERS_DIR, default /tmp/wsscale-servers)" >&2
    exit 2
    ;;
esac
