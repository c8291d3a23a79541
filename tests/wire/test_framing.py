from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.errors import LocalProtocolError, RemoteProtocolError
from p2pchat.wire.framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame


def drain(decoder: FrameDecoder) -> list[bytes]:
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(bytes(frame))
    return frames


payloads = st.lists(st.binary(min_size=1, max_size=600), max_size=20)


@given(payloads)
def test_byte_at_a_time_equals_all_at_once(frames: list[bytes]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    whole = FrameDecoder()
    whole.feed(stream)
    assert drain(whole) == frames
    trickle = FrameDecoder()
    got: list[bytes] = []
    for i in range(len(stream)):
        trickle.feed(stream[i : i + 1])
        got.extend(drain(trickle))
    assert got == frames
    assert trickle.buffered == 0


@given(payloads, st.lists(st.integers(1, 50), min_size=1))
def test_any_split_gives_the_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder()
    got: list[bytes] = []
    position, index = 0, 0
    while position < len(stream):
        step = cuts[index % len(cuts)]
        decoder.feed(stream[position : position + step])
        got.extend(drain(decoder))
        position += step
        index += 1
    assert got == frames


def test_truncated_frame_waits_for_more() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"hello")[:-1])
    assert decoder.next_frame() is None
    decoder.feed(b"o")
    assert drain(decoder) == [b"hello"]


def test_zero_length_frame_is_refused() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00")
    with pytest.raises(RemoteProtocolError):
        decoder.next_frame()


def test_largest_frame_and_too_large() -> None:
    big = b"x" * MAX_FRAME_BYTES
    decoder = FrameDecoder()
    decoder.feed(encode_frame(big))
    assert drain(decoder) == [big]
    with pytest.raises(LocalProtocolError):
        encode_frame(big + b"x")


def test_borrowed_buffer_may_be_reused_after_detach() -> None:
    stream = encode_frame(b"first") + encode_frame(b"second-frame")
    reused = bytearray(stream[:12])  # all of the first frame, part of the second
    decoder = FrameDecoder()
    decoder.feed(memoryview(reused))
    assert drain(decoder) == [b"first"]
    decoder.detach()
    reused[:] = b"\xff" * len(reused)  # the caller reuses its buffer
    decoder.feed(stream[12:])
    assert drain(decoder) == [b"second-frame"]
