#!/usr/bin/env python3
"""Socket.IO echo server for wsscale's protocol tests (started by ci/servers.sh).

python-socketio 5.x (Engine.IO v4) on aiohttp, on 127.0.0.1 only:

* path ``/socket.io/``; a WebSocket client connects to
  ``ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket``;
* ping_interval 5 s, ping_timeout 3 s (the open packet ``0{...}`` says so, and a client
  that stops answering PING is dropped about 8 s later);
* namespaces ``/`` and ``/chat``, both accepting every connection (no auth);
* on event ``message`` the server emits ``message`` back to the sender, in the same
  namespace, with the same arguments; if the client asked for an ack, the ack carries the
  same arguments too.

The listening port is chosen by the kernel (``--port 0``, the default) and written to
``--port-file`` (atomically, once the socket is listening) and to stdout.
"""

import argparse
import asyncio
import os
import signal
import sys

import socketio
from aiohttp import web

NAMESPACES = ("/", "/chat")


def build_server() -> socketio.AsyncServer:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        ping_interval=5,
        ping_timeout=3,
        # A load generator may send any Origin (or none): accept them all.
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
    )

    for namespace in NAMESPACES:

        async def connect(sid, environ, auth=None):
            return True

        def make_echo(ns):
            async def message(sid, *args):
                # One argument is sent as itself, several as a tuple (python-socketio's
                # convention for multiple arguments), none as an event without data.
                data = args[0] if len(args) == 1 else (tuple(args) if args else None)
                await sio.emit("message", data, to=sid, namespace=ns)
                return args  # the ack, used only when the client asked for one

            return message

        sio.on("connect", namespace=namespace)(connect)
        sio.on("message", namespace=namespace)(make_echo(namespace))

    return sio


def write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--port-file", help="write the listening port here")
    args = parser.parse_args()

    sio = build_server()
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = runner.addresses[0][1]

    if args.port_file:
        write_port_file(args.port_file, port)
    print(f"socketio: listening on {args.host}:{port} path /socket.io/", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("socketio: stopping", flush=True)
    await runner.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OSError as e:
        print(f"socketio: {e}", file=sys.stderr)
        sys.exit(1)
