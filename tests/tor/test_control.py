"""Tor's control protocol as our node speaks it (p2pchat/tor/control.py), without tor:
replies parsed whatever the split, events kept apart from replies (and bounded), the
cookie authentication, refusals in words, and a connection that breaks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from p2pchat.tor.control import (
    EVENTS_WAITING,
    MAX_LINE,
    ReplyParser,
    TorControl,
    TorControlError,
    quoted,
    unquoted,
)

SPOKEN = (
    b"250-PROTOCOLINFO 1\r\n"
    b'250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/x/control_auth_cookie"\r\n'
    b'250-VERSION Tor="0.4.9.11"\r\n'
    b"250 OK\r\n"
    b"650 HS_DESC UPLOADED abc UNKNOWN $F00 x\r\n"
    b"250+info/names=\r\n"
    b"a line\r\n"
    b"..starts with a dot\r\n"
    b".\r\n"
    b"250 OK\r\n"
    b"552 Unrecognized key\r\n"
)


def test_replies_and_events_are_the_same_however_the_bytes_are_split() -> None:
    whole = ReplyParser().feed(SPOKEN)
    parser = ReplyParser()
    one_by_one = [reply for byte in SPOKEN for reply in parser.feed(bytes([byte]))]
    assert whole == one_by_one
    assert [r.status for r in whole] == [250, 650, 250, 552]
    assert whole[0].lines[1].startswith("AUTH METHODS=COOKIE")
    assert whole[2].lines == ["info/names=", "a line\n.starts with a dot", "OK"]
    assert not whole[3].ok and whole[0].ok


@pytest.mark.parametrize(
    ("spoken", "reason"),
    [
        (b"25 OK\r\n", "malformed"),
        (b"250?OK\r\n", "malformed"),
        (b"250-one\r\n251 two\r\n", "mixed replies"),
        (b"250-" + b"x" * (MAX_LINE + 10), f"over {MAX_LINE} bytes"),
    ],
)
def test_a_broken_stream_is_refused(spoken: bytes, reason: str) -> None:
    with pytest.raises(TorControlError, match=reason):
        ReplyParser().feed(spoken)


def test_quoting_round_trips() -> None:
    for text in ["plain", 'with "quotes"', "back\\slash", ""]:
        assert unquoted(quoted(text)) == text


async def with_fake_tor(
    answer: Callable[[str], bytes], body: Callable[[TorControl], Awaitable[None]]
) -> list[str]:
    """Run ``body`` with a TorControl whose tor answers each command line with
    ``answer(line)``; the command lines it heard."""
    ours, theirs = trio.testing.memory_stream_pair()
    heard: list[str] = []

    async def tor() -> None:
        buffer = b""
        async for data in theirs:
            buffer += data
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                heard.append(line.decode())
                await theirs.send_all(answer(line.decode()))

    control = TorControl(ours)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tor)
        nursery.start_soon(control._read)
        await body(control)
        nursery.cancel_scope.cancel()
    return heard


async def test_the_cookie_is_read_and_sent(tmp_path: Path) -> None:
    cookie = tmp_path / "control_auth_cookie"
    cookie.write_bytes(bytes(range(32)))

    def answer(line: str) -> bytes:
        if line.startswith("PROTOCOLINFO"):
            return (b'250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="'
                    + str(cookie).encode() + b'"\r\n250 OK\r\n')  # fmt: skip
        return b"250 OK\r\n" if line == f"AUTHENTICATE {bytes(range(32)).hex()}" else b"515 no\r\n"

    heard = await with_fake_tor(answer, lambda control: control.authenticate())
    assert heard == ["PROTOCOLINFO 1", f"AUTHENTICATE {bytes(range(32)).hex()}"]


async def test_an_authentication_we_cannot_do_is_said() -> None:
    def answer(line: str) -> bytes:
        return b"250-AUTH METHODS=HASHEDPASSWORD\r\n250 OK\r\n"

    async def body(control: TorControl) -> None:
        with pytest.raises(TorControlError, match="HASHEDPASSWORD"):
            await control.authenticate()

    await with_fake_tor(answer, body)


async def test_events_go_apart_from_replies_and_the_oldest_go_when_nobody_reads() -> None:
    flood = b"".join(b"650 STATUS_CLIENT NOTICE n=%d\r\n" % i for i in range(EVENTS_WAITING + 44))

    def answer(line: str) -> bytes:
        if line == "GETINFO status/bootstrap-phase":
            phase = b'NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough"'
            return flood + b"250-status/bootstrap-phase=" + phase + b"\r\n250 OK\r\n"
        return b'552 Unrecognized command "' + line.split()[0].encode() + b'"\r\n'

    async def body(control: TorControl) -> None:
        assert await control.bootstrap_progress() == (75, "Loaded enough")
        kept = []
        while True:
            try:
                kept.append(control.events.receive_nowait())
            except trio.WouldBlock:
                break
        assert len(kept) == EVENTS_WAITING
        assert kept[0].lines == ["STATUS_CLIENT NOTICE n=44"], "the oldest 44 went"
        with pytest.raises(TorControlError, match="tor refused FROB: Unrecognized") as refused:
            await control.command("FROB")
        assert refused.value.status == 552

    await with_fake_tor(answer, body)


async def test_a_closed_connection_is_said_on_the_next_command() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    control = TorControl(ours)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(control._read)
        await theirs.aclose()
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(TorControlError, match=r"closed its control connection|broke"):
            await control.command("GETINFO version")
        with pytest.raises(ValueError, match="one line"):
            await control.command("GETINFO version\r\nSIGNAL HALT")
