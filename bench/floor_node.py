"""The least a chat node on p2pchat's stack can spend per message: a baseline.

An independent, minimal node on the same libraries (trio, PyNaCl's ChaCha20-Poly1305,
SQLite in WAL mode with ``synchronous = NORMAL``, JSON lines on stdin and stdout) that
does for each message what a durable, acknowledged messenger cannot skip:

- sender: a ``send`` command read from stdin, parsed; the message stored (one commit);
  encrypted and written to the peer's TCP connection; the answer printed;
- receiver: the frame read and decrypted; the message stored (one commit); an event
  printed; a receipt sent back, encrypted;
- sender again: the receipt read and decrypted; the message marked delivered (one
  commit); an event printed.

Nothing else: no handshake (a fixed key), no mesh, presence, probes, timers, flow
control, retries, rate limits or checks of the peer. ``bench/soak.py`` runs three of
these at the same rate as the daemons, so the daemons' CPU per message can be read as a
multiple of this floor. It speaks the part of docs/api.md that ``bench/daemons.py``
drives (``add_contact``, ``connect``, ``send``, ``quit``; the events ``listening``,
``connected``, ``send``, ``message``, ``receipt``), nothing more.

Run by bench/soak.py:  python bench/floor_node.py DATABASE
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import sys
from typing import Any

import trio
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
)

KEY = bytes(32)  # the floor leaves out the handshake; each direction has its counter
LENGTH = struct.Struct(">H")


class Link:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.sent = 0
        self.received = 0
        self.lock = trio.StrictFIFOLock()  # only when the socket cannot take a frame at once


class FloorNode:
    def __init__(self, database: str) -> None:
        self.db = sqlite3.connect(database, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, msg_id BLOB UNIQUE,"
            " peer TEXT, text TEXT, state TEXT)"
        )
        self.node_id = os.urandom(8).hex()
        self.links: dict[str, Link] = {}
        self.stdout = sys.stdout

    def commit(self, sql: str, params: tuple[Any, ...]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(sql, params)
        self.db.execute("COMMIT")

    def emit(self, event: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(event) + "\n")
        self.stdout.flush()

    async def send_frame(self, link: Link, body: dict[str, Any]) -> None:
        link.sent += 1
        nonce = struct.pack("<4xQ", link.sent)
        sealed = crypto_aead_chacha20poly1305_ietf_encrypt(
            json.dumps(body).encode(), b"", nonce, KEY
        )
        frame = LENGTH.pack(len(sealed)) + sealed
        # Written at once when nothing waits (always, at chat rates), as p2pchat does.
        if not link.lock.locked():
            try:
                written = os.write(link.stream.socket.fileno(), frame)
            except BlockingIOError:
                written = 0
            frame = frame[written:]
        if frame:
            async with link.lock:
                await link.stream.send_all(frame)

    async def read_link(self, peer: str, link: Link) -> None:
        buffer = b""
        async for chunk in link.stream:
            buffer += chunk
            while len(buffer) >= 2 and len(buffer) >= 2 + LENGTH.unpack_from(buffer)[0]:
                size = LENGTH.unpack_from(buffer)[0]
                sealed, buffer = buffer[2 : 2 + size], buffer[2 + size :]
                link.received += 1
                nonce = struct.pack("<4xQ", link.received)
                plain = crypto_aead_chacha20poly1305_ietf_decrypt(sealed, b"", nonce, KEY)
                await self.on_frame(peer, link, json.loads(plain))

    async def on_frame(self, peer: str, link: Link, body: dict[str, Any]) -> None:
        if body["t"] == "message":
            self.commit(
                "INSERT INTO messages (msg_id, peer, text, state) VALUES (?, ?, ?, 'received')",
                (bytes.fromhex(body["id"]), peer, body["text"]),
            )
            self.emit({"event": "message", "from": peer, "id": body["id"], "text": body["text"]})
            await self.send_frame(link, {"t": "receipt", "id": body["id"]})
        else:
            self.commit(
                "UPDATE messages SET state = 'delivered' WHERE msg_id = ?",
                (bytes.fromhex(body["id"]),),
            )
            self.emit({"event": "receipt", "id": body["id"], "state": "delivered"})

    async def add_link(self, nursery: trio.Nursery, stream: trio.SocketStream, peer: str) -> None:
        link = self.links[peer] = Link(stream)
        self.emit({"event": "connected", "id": peer})
        nursery.start_soon(self.read_link, peer, link)

    async def command(self, nursery: trio.Nursery, command: dict[str, Any]) -> bool:
        name, tag = command.get("cmd"), command.get("tag")
        if name == "quit":
            return False
        if name == "send":
            msg_id = os.urandom(16)
            self.commit(
                "INSERT INTO messages (msg_id, peer, text, state) VALUES (?, ?, ?, 'sent')",
                (msg_id, command["to"], command["text"]),
            )
            body = {"t": "message", "id": msg_id.hex(), "text": command["text"]}
            await self.send_frame(self.links[command["to"]], body)
            self.emit({"event": "send", "tag": tag, "id": msg_id.hex()})
        elif name == "connect":
            host, port = command["target"].rsplit(":", 1)
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(self.node_id.encode())
            peer = (await stream.receive_some(16)).decode()
            await self.add_link(nursery, stream, peer)
            self.emit({"event": "connect", "tag": tag, "state": "verified"})
        else:  # add_contact: the floor admits everyone
            self.emit({"event": name, "tag": tag})
        return True

    async def serve(self, nursery: trio.Nursery, stream: trio.SocketStream) -> None:
        """An accepted connection: ids exchanged, as ``connect`` does from its side."""
        await stream.send_all(self.node_id.encode())
        peer = (await stream.receive_some(16)).decode()
        await self.add_link(nursery, stream, peer)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]

            async def serve_all() -> None:
                while True:
                    stream = await listeners[0].accept()
                    nursery.start_soon(self.serve, nursery, stream)

            nursery.start_soon(serve_all)
            self.emit(
                {"event": "listening", "id": self.node_id, "addresses": [f"127.0.0.1:{port}"]}
            )
            stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
            buffer = b""
            async for chunk in stdin:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip() and not await self.command(nursery, json.loads(line)):
                        nursery.cancel_scope.cancel()
                        return
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(FloorNode(sys.argv[1]).run)
