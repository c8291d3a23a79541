from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.errors import RemoteProtocolError
from p2pchat.session.records import MAX_PLAINTEXT_BYTES, RecordReader, RecordWriter


def cut_all(writer: RecordWriter) -> list[bytes]:
    plaintexts = []
    while writer:
        plaintexts.append(writer.next_plaintext())
    return plaintexts


@given(st.lists(st.binary(min_size=1, max_size=70_000), max_size=6))
def test_round_trip_any_sizes(messages: list[bytes]) -> None:
    writer = RecordWriter()
    for message in messages:
        writer.push(message)
    assert writer.pending_bytes == sum(map(len, messages))
    plaintexts = cut_all(writer)
    assert writer.pending_bytes == 0
    assert all(0 < len(p) <= MAX_PLAINTEXT_BYTES for p in plaintexts)
    reader = RecordReader(max_message_bytes=1 << 20)
    received = [m for p in plaintexts for m in reader.feed(p)]
    assert received == messages


def test_small_messages_share_a_plaintext() -> None:
    writer = RecordWriter()
    for _ in range(500):
        writer.push(b"x" * 100)
    assert len(cut_all(writer)) == 1


def test_oversize_message_is_refused_while_arriving() -> None:
    writer = RecordWriter()
    writer.push(b"y" * 200_000)
    reader = RecordReader(max_message_bytes=100_000)
    with pytest.raises(RemoteProtocolError, match="limit"):
        for plaintext in cut_all(writer):
            reader.feed(plaintext)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"\x01",
        b"\x01\x00",
        b"\x01\x00\x00",
        b"\x01\x00\x05abc",
        b"\x03\x00\x01a",
        b"\x81\x00\x01a",
    ],
)
def test_malformed_records(plaintext: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        RecordReader(1000).feed(plaintext)
