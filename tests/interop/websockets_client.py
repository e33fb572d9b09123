#!/usr/bin/env python3
"""Interop: the Python `websockets` client (not written here) against our servers.

    python3 tests/interop/websockets_client.py ws://127.0.0.1:9001/ [CONNECTIONS]

Opens CONNECTIONS (default 200) concurrent connections; each sends text and binary
messages of several sizes, a fragmented message and a ping, checks every echo, and
closes with 1000. Exits non-zero on the first mismatch.

`websockets` offers permessage-deflate (RFC 7692) by default and compresses what it
sends; the server must accept it (its Sec-WebSocket-Extensions answer is checked), and
so every message goes compressed both ways.
"""
import asyncio
import os
import sys

import websockets


async def one(url, index):
    async with websockets.connect(url, max_size=2**24) as ws:
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
    url = sys.argv[1]
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    await asyncio.gather(*(one(url, i) for i in range(connections)))
    print("websockets %s: %d connections with permessage-deflate echoed correctly by %s"
          % (websockets.__version__, connections, url))


asyncio.run(main())
