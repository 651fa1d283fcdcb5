#!/usr/bin/env python3
"""Protocol smoke test of the servers that ci/servers.sh started (run by `ci/servers.sh check`).

Reads the WSSCALE_*_URL variables (as printed by `ci/servers.sh env`) and, over WebSocket:

* socketio: the Engine.IO open packet ``0{...}`` arrives with pingInterval 5000 and
  pingTimeout 3000; connecting to ``/`` and ``/chat`` succeeds, and ``message`` is echoed;
* mqtt: MQTT 3.1.1 CONNECT (guest/guest) is answered by CONNACK ``20 02 00 00``;
* stomp: STOMP 1.2 CONNECT (guest/guest) is answered by a CONNECTED frame;
* nats: the server's first message is ``INFO {...}``; with --slow also: a client that never
  answers PING is closed (ping_interval 2s, ping_max 2: after about 6 s), within 14 s.

Exit status 0 when every check passed; otherwise each failure is printed and the status is 1.
"""

import json
import os
import sys
import time

import websocket  # websocket-client

TIMEOUT = 10.0


def need(name):
    url = os.environ.get(name)
    if not url:
        raise RuntimeError(f"{name} is not set (eval \"$(ci/servers.sh env)\" first)")
    return url


def recv_text(ws):
    op, data = ws.recv_data()
    if op == websocket.ABNF.OPCODE_CLOSE:
        raise RuntimeError("server closed the connection")
    return data.decode() if isinstance(data, bytes) else data


def sio_expect(ws, prefix):
    """Next Socket.IO packet that starts with prefix, answering Engine.IO pings meanwhile."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        msg = recv_text(ws)
        if msg == "2":  # Engine.IO PING: answer PONG
            ws.send("3")
            continue
        if msg.startswith(prefix):
            return msg
        raise RuntimeError(f"expected a packet starting with {prefix!r}, got {msg!r}")
    raise RuntimeError(f"no packet starting with {prefix!r} within {TIMEOUT} s")


def check_socketio():
    url = need("WSSCALE_SOCKETIO_URL")
    ws = websocket.create_connection(url, timeout=TIMEOUT)
    try:
        opening = recv_text(ws)
        if not opening.startswith("0{"):
            raise RuntimeError(f"expected the open packet 0{{...}}, got {opening!r}")
        info = json.loads(opening[1:])
        if (info.get("pingInterval"), info.get("pingTimeout")) != (5000, 3000):
            raise RuntimeError(f"unexpected ping settings in {opening!r}")
        for ns, prefix in (("/", ""), ("/chat", "/chat,")):
            ws.send(f"40{prefix}")
            sio_expect(ws, f"40{prefix}{{")
            payload = {"ns": ns, "n": 42, "text": "héllo"}
            ws.send(f"42{prefix}" + json.dumps(["message", payload]))
            echoed = sio_expect(ws, f"42{prefix}")
            if json.loads(echoed[len(prefix) + 2 :]) != ["message", payload]:
                raise RuntimeError(f"namespace {ns}: echo mismatch: {echoed!r}")
        return f"open packet {opening}; echo on / and /chat"
    finally:
        ws.close()


def mqtt_string(s):
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def check_mqtt():
    url = need("WSSCALE_MQTT_URL")
    ws = websocket.create_connection(url, timeout=TIMEOUT, subprotocols=["mqtt"])
    try:
        # CONNECT, protocol MQTT level 4 (3.1.1), flags: username, password, clean session.
        variable = mqtt_string("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big")
        payload = mqtt_string("wsscale-ci-check") + mqtt_string("guest") + mqtt_string("guest")
        body = variable + payload
        assert len(body) < 128
        ws.send_binary(bytes([0x10, len(body)]) + body)
        op, data = ws.recv_data()
        if data[:4] != b"\x20\x02\x00\x00":
            raise RuntimeError(f"expected CONNACK 20 02 00 00, got {data.hex(' ')}")
        ws.send_binary(b"\xe0\x00")  # DISCONNECT
        return f"CONNACK {data[:4].hex(' ')} (subprotocol {ws.getsubprotocol()})"
    finally:
        ws.close()


def check_stomp():
    url = need("WSSCALE_STOMP_URL")
    ws = websocket.create_connection(url, timeout=TIMEOUT, subprotocols=["v12.stomp"])
    try:
        ws.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00")
        frame = recv_text(ws)
        if not frame.startswith("CONNECTED\n"):
            raise RuntimeError(f"expected CONNECTED, got {frame!r}")
        ws.send("DISCONNECT\n\n\x00")
        return frame.split("\n\n")[0].replace("\n", " | ")
    finally:
        ws.close()


def check_nats(slow):
    url = need("WSSCALE_NATS_URL")
    ws = websocket.create_connection(url, timeout=TIMEOUT)
    try:
        first = recv_text(ws)
        if not first.startswith("INFO {"):
            raise RuntimeError(f"expected INFO {{...}}, got {first!r}")
        info = json.loads(first[5:].strip())
        result = f"INFO server {info.get('version')} (headers={info.get('headers')})"
        if not slow:
            return result
        # Never answer PING: the server must close the connection (ping_interval 2s,
        # ping_max 2), well within 15 s.
        ws.send('CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n')
        ws.settimeout(15)
        start = time.monotonic()
        pings = 0
        while True:
            try:
                op, data = ws.recv_data(control_frame=True)
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                break
            if op == websocket.ABNF.OPCODE_CLOSE:
                break
            text = data.decode(errors="replace")
            pings += text.count("PING")
            if "Stale Connection" in text:
                break
        elapsed = time.monotonic() - start
        if elapsed > 14:
            raise RuntimeError(f"not dropped after {elapsed:.1f} s without PONG")
        return f"{result}; unanswered PINGs: {pings}, dropped after {elapsed:.1f} s"
    finally:
        ws.close()


def main():
    slow = "--slow" in sys.argv[1:]
    checks = [
        ("socketio", check_socketio),
        ("mqtt", check_mqtt),
        ("stomp", check_stomp),
        ("nats", lambda: check_nats(slow)),
    ]
    failed = 0
    for name, check in checks:
        try:
            print(f"check {name}: ok: {check()}")
        except Exception as e:  # noqa: BLE001 - report every failure, then exit 1
            failed += 1
            print(f"check {name}: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
