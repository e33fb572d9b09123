#!/usr/bin/env python3
"""Interop: the Python `websockets` client (not written here) against our servers.

    python3 tests/interop/websockets_client.py ws://127.0.0.1:9001/ [CONNECTIONS]
    python3 tests/interop/websockets_client.py wss://localhost:9443/ [CONNECTIONS] --ca CA.pem

Opens CONNECTIONS (default 200) concurrent connections; each sends text and binary
messages of several sizes, a fragmented message and a ping, checks every echo, and
closes with 1000. Exits non-zero on the first mismatch.

`websockets` offers permessage-deflate (RFC 7692) by default and compresses what it
sends; the server must accept it (its Sec-WebSocket-Extensions answer is checked), and
so every message goes compressed both ways.
"""
import asyncio
import os
import ssl
import sys

import websockets


async def one(url, index, context):
    async with websockets.connect(url, max_size=2**24, ssl=context) as ws:
        answer = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert answer.startswith("permessage-deflate"), "deflate not accepted: %r" % answer
        for size in (0, 1, 125, 126, 65535, 65536, 200_000):
            text = ("é%d-" % index * (size // 4 + 1))[:size]
            await ws.send(text)
            echo = await ws.recv()
            assert echo == text, "text of %d chars came back different" % size
            data = os.urandom(size)
            await ws.send(data)
            echo = await ws.recv()
            assert echo == data, "binary of %d bytes came back different" % size
        # A fragmented message: an iterable is sent as fragments.
        await ws.send(["frag", "men", "ted ", "✓"])
        assert await ws.recv() == "fragmented ✓"
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        await ws.close(1000, "done")
        assert ws.close_code == 1000, "close code %r" % ws.close_code


async def main():
    args = sys.argv[1:]
    context = None
    if "--ca" in args:
        # wss://: Python's own TLS (OpenSSL), verifying the server against this CA only.
        at = args.index("--ca")
        context = ssl.create_default_context(cafile=args[at + 1])
        del args[at:at + 2]
    url = args[0]
    connections = int(args[1]) if len(args) > 1 else 200
    await asyncio.gather(*(one(url, i, context) for i in range(connections)))
    if context is not None:
        print("(over TLS, verified with the CA given)")
    print("websockets %s: %d connections with permessage-deflate echoed correctly by %s"
          % (websockets.__version__, connections, url))


asyncio.run(main())
