"""Padding (padding/1, docs/protocol.md §4.2): transport plaintexts padded to Padmé
sizes with a PADDING record the receiver skips; only when both sides offered it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.errors import RemoteProtocolError
from p2pchat.session import SessionConfig, SessionState
from p2pchat.session.events import MessageReceived
from p2pchat.session.records import (
    MAX_PLAINTEXT_BYTES,
    PADDING,
    RECORD_HEADER_BYTES,
    RecordReader,
    RecordWriter,
    padded_size,
)
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import PADDING_FEATURE, ChatMessage
from p2pchat.wire.padding import padme
from tests.session.pairs import events, make_pair, pump
from tests.session.test_handshake_errors import frames


def test_padme_matches_the_papers_examples_and_bounds() -> None:
    # Worked by hand from the definition: E = floor(log2 L), S = floor(log2 E) + 1,
    # the low E - S bits rounded up.
    assert [padme(n) for n in (0, 1, 2, 3, 9, 100, 1000, 1025, 65519)] == [
        0, 1, 2, 3, 10, 104, 1024, 1088, 65536,
    ]  # fmt: skip
    previous = 0
    sizes = set()
    for length in range(1, MAX_PLAINTEXT_BYTES + 1):
        padded = padme(length)
        assert length <= padded <= length * 1.12 + 1 and padded >= previous
        previous = padded
        sizes.add(padded)
    # 65,519 lengths fall into a few hundred classes.
    assert len(sizes) < 700


def test_padded_sizes_leave_room_for_a_padding_record_or_none() -> None:
    for size in range(1, MAX_PLAINTEXT_BYTES + 1):
        padded = padded_size(size)
        assert padded == size or padded - size > RECORD_HEADER_BYTES
        assert padded <= MAX_PLAINTEXT_BYTES


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=150_000), min_size=1, max_size=12))
def test_padded_plaintexts_carry_the_same_messages(messages: list[bytes]) -> None:
    writer = RecordWriter()
    writer.pad = True
    for message in messages:
        writer.push(message)
    reader = RecordReader(1 << 22)
    reader.padding_allowed = True
    out: list[bytes] = []
    while writer:
        buffer, sizes = writer.pop_plaintexts(4)
        position = 0
        for size in sizes:
            plaintext = bytes(buffer[position : position + size])
            position += size
            assert size in (padded_size(size), MAX_PLAINTEXT_BYTES) or size == padme(size)
            out.extend(bytes(m) for m in reader.feed(plaintext))
    assert out == messages


def test_a_padding_record_without_the_feature_is_refused() -> None:
    reader = RecordReader(1 << 20)
    plaintext = bytes([PADDING, 0, 2, 0, 0])
    with pytest.raises(RemoteProtocolError) as caught:
        reader.feed(plaintext)
    assert caught.value.code == "bad-record"
    reader.padding_allowed = True
    assert reader.feed(plaintext) == []
    # PADDING with FINAL, or any other bit, is still unknown.
    with pytest.raises(RemoteProtocolError):
        reader.feed(bytes([PADDING | 1, 0, 1, 0]))


def frame_sizes(data: bytes) -> list[int]:
    return [len(frame) for frame in frames(data)]


@pytest.mark.parametrize("both", [True, False])
def test_sessions_pad_only_when_both_offered_it(both: bool) -> None:
    plain = SessionConfig(features=frozenset())
    a, b, _, _ = make_pair(None, None if both else plain)
    pump(a, b)
    assert a.state is b.state is SessionState.OPEN
    assert (PADDING_FEATURE in a.features) is both
    events(a), events(b)
    sizes = []
    for length in (1, 40, 300, 700, 4000):
        message = ChatMessage(bytes(16), 1, 1, "x" * length)
        a.send(message)
        data = a.data_to_send()
        sizes.extend(frame_sizes(data))
        b.receive_data(data)
        [received] = [e for e in events(b) if isinstance(e, MessageReceived)]
        assert received.message == message
    tag = 16
    if both:
        assert all(size - tag == padme(size - tag) for size in sizes), sizes
    else:
        assert any(size - tag != padme(size - tag) for size in sizes), sizes


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=4096), st.integers(0, 100))
def test_a_padded_encoding_decodes_to_the_same_message_at_a_padme_size(
    text: str, overhead: int
) -> None:
    # What sealed envelopes carry (§13.4): the extra "pad" field is ignored as unknown.
    codec = Codec()
    message = ChatMessage(bytes(16), 3, 4, text)
    padded = codec.encode_padded(message, overhead)
    assert codec.decode(padded) == message
    size = len(padded) + overhead
    assert padme(size) == size or padme(size - 1) == size - 1 or padme(size - 2) == size - 2
    # At most Padmé's 12 % over the message with an empty pad field (6 bytes more).
    assert size <= (len(codec.encode(message)) + 6 + overhead) * 1.12 + 3
