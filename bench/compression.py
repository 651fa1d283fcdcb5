#!/usr/bin/env python3
"""permessage-deflate benchmarks (issue 18): what compression costs both sides.

  bench/compression.py memory [N]   bytes per held connection, client and gateway, at N
                                    connections (default 18000): compression none, browser
                                    idle, browser after one message each way — against
                                    `wsscale serve --compression deflate` and against a
                                    Python `websockets` echo server (its own venv, pinned in
                                    bench/requirements-compression.txt)
  bench/compression.py pipeline     echo msgs/s of one client thread, 1 KiB text messages,
                                    compression off vs on (gateway in its own process)
  bench/compression.py all          both

Client bytes per connection come from the client's JSON report (RSS at peak open − RSS
before the first connect, ÷ connections); the gateway's are (VmRSS of the server process
while the connections are held − VmRSS before the first connection) ÷ connections, read
from /proc/PID/status.

Targets (exit 1 when one is missed):
  - client, idle, with or without compression: ≤ 1024 B per connection — an idle
    connection holds no deflate state;
  - client, browser after one message each way: ≤ 48 KiB per connection against a gateway
    that keeps its context (one 32 KiB inflate window + zlib state per connection);
  - wsscale gateway, browser idle: within 1 KiB of the same gateway with compression none;
  - pipeline with compression: ≥ 25,000 msg/s (1 KiB text).

Binaries: $CARGO_TARGET_DIR/release/wsscale (default target/), built first.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
BIN = os.path.join(TARGET, "release", "wsscale")
VENV = os.environ.get("WSSCALE_BENCH_VENV", "/tmp/wsscale-bench-venv")
REQS = os.path.join(ROOT, "bench", "requirements-compression.txt")
MESSAGE = '{"type":"chat","room":"lobby","text":"' + "hello world " * 14 + '"}'  # ~200 B

failures = []


def say(*a):
    print(*a, flush=True)


def check(ok, what):
    if not ok:
        failures.append(what)
        say(f"  TARGET MISSED: {what}")


def python_venv():
    """The venv with websockets, (re)installed when the requirements file changed."""
    py = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, "requirements.txt")
    want = open(REQS).read()
    if not os.path.exists(stamp) or open(stamp).read() != want:
        say(f"installing the Python comparison server into {VENV}…")
        subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "-r", REQS], check=True)
        with open(stamp, "w") as f:
            f.write(want)
    return py


class Server:
    """A server process printing `listening on URL` first."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"server did not start: {argv}")
            if line.startswith("listening on "):
                self.url = line[len("listening on "):].strip()
                break
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def established(self):
        """Established TCP connections on the server's port (server side)."""
        port = f":{self.port:04X}"
        n = 0
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(path) as f:
                    next(f)
                    for line in f:
                        parts = line.split()
                        if parts[1].endswith(port) and parts[3] == "01":
                            n += 1
            except FileNotFoundError:
                pass
        return n

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def hold(server, n, compression, message, ramp_s):
    """Hold n connections against server; return (client B/conn, server B/conn, report).

    The server's figure divides by the connections it held when its RSS was read."""
    base = server.rss()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        args = [BIN, "run", "--target", server.url, "-c", str(n), "--ramp", f"{ramp_s}s",
                "--hold", "12s", "--ramp-down", "2s", "--max-pending", "512",
                "--source-ip", "127.0.0.2-127.0.0.5", "--interval", "1s",
                "--compression", compression, "--report-json", out]
        if message:
            args += ["--first-message", MESSAGE]
        client = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + ramp_s + 10
        while server.established() < n and time.time() < deadline and client.poll() is None:
            time.sleep(0.5)
        time.sleep(3)  # the messages of the last connections, and RSS settling
        held, conns = 0, 0
        for _ in range(4):
            held = max(held, server.rss())
            conns = max(conns, server.established())
            time.sleep(0.25)
        client.wait()
        rep = json.load(open(out))
    per_server = (held - base) / max(conns, 1)
    return rep["memory"]["bytes_per_connection"], per_server, rep


def memory(n):
    say(f"== bytes per held connection at {n} connections ==")
    say(f"   message: one {len(MESSAGE)}-byte text message each way (--first-message, echoed)")
    rows = []
    # Python accepts ~500 upgrades/s here (one asyncio thread): it gets a slower ramp.
    servers = [
        ("wsscale serve (default)", [BIN, "serve", "--listen", "127.0.0.1:0"], ["none"], 6),
        ("wsscale serve --compression deflate",
         [BIN, "serve", "--listen", "127.0.0.1:0", "--compression", "deflate"],
         ["none", "browser", "browser+msg"], 6),
        ("python websockets (compression on)",
         [python_venv(), os.path.join(ROOT, "bench", "ws_echo_server.py")],
         ["none", "browser", "browser+msg"], max(6, n // 300)),
    ]
    for name, argv, modes, ramp_s in servers:
        for mode in modes:
            server = Server(argv)
            try:
                comp = "none" if mode == "none" else "browser"
                say(f"  {name}, client {mode}: ramping {n} connections over {ramp_s} s, "
                    "holding 12 s…")
                client, gw, rep = hold(server, n, comp, mode == "browser+msg", ramp_s)
            finally:
                server.stop()
            c = rep["connections"]
            z = rep["compression"]
            say(f"    established {c['established']}/{n}; client {client:,.0f} B/conn; "
                f"server {gw:,.0f} B/conn; accepted {z['accepted']}, inflate windows "
                f"{z['inflate_windows']}, params {z['params']}")
            check(c["established"] == n, f"{name} {mode}: {c['established']} of {n} established")
            rows.append((name, mode, client, gw))
    say("")
    say(f"  {'server':<38} {'client mode':<12} {'client B/conn':>14} {'server B/conn':>14}")
    for name, mode, client, gw in rows:
        say(f"  {name:<38} {mode:<12} {client:>14,.0f} {gw:>14,.0f}")
    by = {(name, mode): (client, gw) for name, mode, client, gw in rows}
    wgw = "wsscale serve --compression deflate"
    for (name, mode), (client, gw) in by.items():
        if mode in ("none", "browser"):
            check(client <= 1024, f"client idle ({name}, {mode}) {client:.0f} B > 1024 B")
        elif "websockets" not in name:
            check(client <= 48 * 1024, f"client after one message ({name}) {client:.0f} B > 48 KiB")
    check(by[(wgw, "browser")][1] <= by[(wgw, "none")][1] + 1024,
          "wsscale gateway: browser idle costs more than 1 KiB over none")


def pipeline():
    say("== echo pipeline: one client thread, 1 KiB text messages, gateway in its own process ==")
    results = {}
    for comp in ("none", "browser"):
        server = Server([BIN, "serve", "--listen", "127.0.0.1:0", "--threads", "1",
                         "--compression", "deflate"])
        try:
            say(f"  compression {comp}: 200 connections x 1,000 msg/s offered (about 12 s)…")
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "r.json")
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run([
                    BIN, "run", "--target", server.url, "-c", "200", "--ramp", "1s",
                    "--hold", "10s", "--ramp-down", "1s", "--threads", "1", "--interval", "1s",
                    "--message-rate", "1000/s", "--message-size", "1024",
                    "--message-text", '{"type":"chat","ts":{ts},"m":"{marker}","text":"{pad}"}',
                    "--message-timeout", "30s", "--compression", comp, "--report-json", out,
                ], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                rep = json.load(open(out))
        finally:
            server.stop()
        # Rows inside the hold (after the 1 s ramp, before the ramp-down).
        rows = [r for r in rep["timeseries"] if 2.0 <= r["t_s"] <= 11.0]
        recv = sum(r["msgs_received_per_s"] for r in rows) / max(len(rows), 1)
        m = rep["timings"]["message_rtt_ms"]
        z = rep["compression"]
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        ratio = z["ratio_sent"]
        say(f"    {recv:>9,.0f} msg/s echoed, rtt p50 {m['p50']:.1f} ms p99 {m['p99']:.1f} ms, "
            f"wire ratio sent {ratio}, client CPU {cpu:.1f} s")
        results[comp] = recv
    say(f"  compression on: {results['browser'] / results['none'] * 100:.0f} % of the "
        f"uncompressed rate")
    check(results["browser"] >= 25_000,
          f"pipeline with compression {results['browser']:.0f} msg/s < 25,000")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    say(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(throughput figures need an otherwise idle machine)")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 18000
    say("building wsscale (release)…")
    subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    if what in ("memory", "all"):
        memory(n)
    if what in ("pipeline", "all"):
        pipeline()
    if failures:
        say(f"{len(failures)} target(s) missed")
        sys.exit(1)
    say("all targets met")


if __name__ == "__main__":
    main()
