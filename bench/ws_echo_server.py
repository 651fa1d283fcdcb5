#!/usr/bin/env python3
"""A Python `websockets` echo server, for bench/compression.py's side-by-side figures.

    ws_echo_server.py [--compression deflate|none]

Listens on a free loopback port and prints `listening on ws://127.0.0.1:PORT/` on stdout.
`deflate` (the library's default, as in many frameworks) accepts permessage-deflate with
websockets' own settings (context takeover, 12-bit windows, memLevel 5).
"""
import argparse
import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    a = p.parse_args()
    compression = "deflate" if a.compression == "deflate" else None
    async with serve(echo, "127.0.0.1", 0, compression=compression, ping_interval=None,
                     max_queue=4, backlog=4096) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}/", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
