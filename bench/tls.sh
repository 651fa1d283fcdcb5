#!/usr/bin/env bash
# TLS benchmark: what a held wss:// connection costs the load generator, and how fast TLS
# connections arrive compared with plain ones.
#
# 1. Memory: starts `wsscale serve --tls-self-signed` in its own process on a free loopback
#    port, then one `wsscale run` client that opens N wss connections (default 10,000) and
#    holds them idle. Client user-space memory per held connection = (RSS at peak open − RSS
#    before the first connect) ÷ connections, from the client's JSON report (client process
#    only: the gateway is another process). Target ≤ 12 KiB (12288 bytes).
#    Then `examples/tls_conn_heap` shows what that is made of: the live heap of one idle
#    rustls ClientConnection driven the way the engine drives it (counting allocator).
# 2. Rate: R connections (default 10,000) opened as fast as the engine can (a 0 s ramp) against
#    a plain `ws://` gateway, a `wss://` gateway with full handshakes, and the same with
#    `--tls-resume` (TLS 1.3 session tickets). Rate = connections ÷ time until all were
#    open. Client and gateway share this machine's cores, so the gateway's TLS work
#    (ECDSA P-256 signatures for full handshakes) is in the figure too.
#
# Exits non-zero when the memory target is missed or a run did not establish every connection.
#
# Usage: bench/tls.sh [N] [HOLD] [RATE_N]        e.g. bench/tls.sh 10000 10s 10000
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-10000}
HOLD=${2:-10s}
RATE_N=${3:-10000}
BIN=target/release/wsscale
echo "building wsscale (release)…"
cargo build --release
echo "building examples/tls_conn_heap (release)…"
cargo build --release --example tls_conn_heap
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

# start_gateway NAME [serve flags...]: starts `wsscale serve`, sets URL.
start_gateway() {
  local name=$1
  shift
  "$BIN" serve --listen 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    grep -q '^listening on ' "$WORK/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  URL=$(sed -n 's/^listening on //p' "$WORK/$name.out")
  [ -n "$URL" ] || { echo "gateway $name did not start:"; cat "$WORK/$name.err"; exit 1; }
}

stop_gateways() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

RUSTLS=$(awk '/^name = "rustls"$/{getline; gsub(/"/,"",$3); print $3; exit}' Cargo.lock)
echo "rustls $RUSTLS (ring provider), $(nproc) cores"
echo

# ---- 1. memory per held idle wss connection ---------------------------------------------
echo "1/4 memory: $N idle wss:// connections held for $HOLD…"
start_gateway tls --tls-self-signed
echo "    gateway: $URL (self-signed, separate process)"
"$BIN" run --target "$URL" --tls-insecure -c "$N" --ramp 0s --hold "$HOLD" --ramp-down 2s \
  --max-pending 512 --interval 5s --skip-preflight \
  --report-json "$WORK/mem.json" >"$WORK/mem.txt" 2>"$WORK/mem.err" ||
  [ -s "$WORK/mem.json" ] || { echo "the client run failed:"; cat "$WORK/mem.err"; exit 1; }
stop_gateways

# ---- 2. connection rate: plain, TLS, TLS with resumption --------------------------------
rate_run() { # NAME URL [client flags...]
  local name=$1 url=$2
  shift 2
  # The hold only has to outlast the ramp (the rate is measured up to the peak).
  "$BIN" run --target "$url" -c "$RATE_N" --ramp 0s --hold 15s --ramp-down 0s \
    --max-pending 512 --interval 5s --skip-preflight \
    --report-json "$WORK/$name.json" "$@" >"$WORK/$name.txt" 2>"$WORK/$name.err" ||
    [ -s "$WORK/$name.json" ] || { echo "the $name client run failed:"; cat "$WORK/$name.err"; exit 1; }
}
echo "2/4 rate: $RATE_N plain ws:// connections, 0 s ramp, 15 s hold…"
start_gateway plain
rate_run plain "$URL"
stop_gateways
echo "3/4 rate: $RATE_N wss:// connections, full handshakes…"
start_gateway tls_full --tls-self-signed
rate_run tls_full "$URL" --tls-insecure
stop_gateways
echo "4/4 rate: $RATE_N wss:// connections with --tls-resume…"
start_gateway tls_resume --tls-self-signed
rate_run tls_resume "$URL" --tls-insecure --tls-resume
stop_gateways
echo

echo "what one idle client connection's TLS state holds (live heap, counting allocator):"
./target/release/examples/tls_conn_heap | sed 's/^/  /'
echo

python3 - "$WORK" "$N" "$RATE_N" <<'EOF'
import json, sys
work, n, rate_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = True

r = json.load(open(f"{work}/mem.json"))
c, m = r["connections"], r["memory"]
per = m["bytes_per_connection"]
print(f"held idle wss connections:  {c['established']} of {n} established (peak open {c['peak_open']})")
print(f"client memory per conn:     {per:.0f} bytes = {per/1024:.2f} KiB  (target <= 12 KiB)  "
      f"[RSS before {m['rss_before_bytes']/2**20:.1f} MiB, at peak {m['rss_at_peak_open_bytes']/2**20:.1f} MiB]")
ok &= c["established"] == n and per is not None and per <= 12 * 1024
print()
print(f"connection rate, {rate_n} connections, 0 s ramp (client and gateway on the same cores):")
print(f"  {'':<22}{'conn/s':>9}{'all open after':>16}{'tls p50':>10}{'tls p99':>10}{'resumed':>9}")
for name, label in [("plain", "ws:// (plain)"), ("tls_full", "wss:// full handshake"),
                    ("tls_resume", "wss:// --tls-resume")]:
    r = json.load(open(f"{work}/{name}.json"))
    c = r["connections"]
    after = c["peak_reached_after_s"]
    rate = c["peak_open"] / after if after else 0.0
    t = r["timings"]["tls_handshake_ms"]
    tls = r["tls"]
    tls_cols = f"{t['p50']:>8.2f}ms{t['p99']:>8.2f}ms{tls['resumed']:>9}" if t["count"] else f"{'-':>10}{'-':>10}{'-':>9}"
    print(f"  {label:<22}{rate:>9.0f}{after:>15.2f}s{tls_cols}")
    ok &= c["established"] == rate_n
sys.exit(0 if ok else 1)
EOF
