"""Whatever a peer sends, the log gets one line per peer (or host) and kind per minute."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import trio

from p2pchat.identity import Identity
from p2pchat.net.connection import SecureConnection
from p2pchat.wire.messages import ChatMessage
from tests.net.chatpeers import wait_for
from tests.net.helpers import raw_handshake, read_until_closed, running_server
from tests.net.test_chat import friends, peers, state_of


async def test_two_hundred_rule_breaking_messages_make_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ann, eve = peers(tmp_path, "ann", "eve")
    caplog.set_level(logging.INFO, logger="p2pchat")
    async with trio.open_nursery() as nursery:
        await friends(nursery, ann, eve)
        assert eve.node is not None
        for _ in range(200):
            hostile = ChatMessage(os.urandom(16), 1, 0, "\x1b[31mred alert\x1b[0m")
            eve.node.links.send(ann.key, hostile)
            await trio.sleep(0)
        good = eve.chat.send_text(ann.key, "a normal line")
        await wait_for(lambda: state_of(eve, good.msg_id) == "delivered", 20, "the good one")
        lines = [r for r in caplog.records if "chat input from" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        nursery.cancel_scope.cancel()


async def test_fifty_connections_that_break_the_protocol_make_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="p2pchat")

    async def ignore(connection: SecureConnection) -> None:
        async for _ in connection:
            pass

    async with running_server(ignore) as server:
        for _ in range(50):
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            session = await raw_handshake(stream, Identity.generate())
            session._records_out.push(b"\xc1")  # 0xc1 is never valid MessagePack
            await stream.send_all(session.data_to_send())
            await read_until_closed(stream)
            await stream.aclose()
        # Some are refused during the handshake (the bad bytes came with message 3).
        assert all(c.closed is not None for c in server.connections)
    for kind in ("closing connection to", "handshake with"):
        lines = [r.getMessage() for r in caplog.records if kind in r.getMessage()]
        assert len(lines) <= 1, lines
