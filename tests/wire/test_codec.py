from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.errors import LocalProtocolError, RemoteProtocolError
from p2pchat.wire.codec import Codec, UnknownMessage
from p2pchat.wire.messages import (
    Close,
    HandshakeAuth,
    HandshakeHello,
    HandshakeReject,
    Ping,
    Pong,
)
from tests.blob import Blob

codec = Codec(max_message_bytes=1 << 20)

messages = st.one_of(
    st.builds(HandshakeHello, versions=st.lists(st.integers(1, 65535), max_size=16).map(tuple)),
    st.builds(
        HandshakeAuth,
        identity_key=st.binary(min_size=32, max_size=32),
        signature=st.binary(min_size=64, max_size=64),
        version=st.integers(1, 65535),
        features=st.lists(st.text(max_size=20), max_size=10).map(tuple),
    ),
    st.builds(HandshakeReject, code=st.text(max_size=64), reason=st.text(max_size=100)),
    st.builds(Close, code=st.text(max_size=64), reason=st.text(max_size=100)),
    st.builds(Ping, nonce=st.integers(0, 2**64 - 1), data=st.binary(max_size=1024)),
    st.builds(Pong, nonce=st.integers(0, 2**64 - 1), data=st.binary(max_size=1024)),
)


@given(messages)
def test_round_trip(message: Any) -> None:
    assert codec.decode(codec.encode(message)) == message


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        codec.decode(data)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats()
        | st.text(max_size=20)
        | st.binary(max_size=20),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=30,
    ),
    st.integers(0, 8),
)
def test_well_formed_msgpack_of_any_shape_is_handled(body: Any, type_id: int) -> None:
    data = msgpack.packb([type_id, body], use_bin_type=True)
    try:
        decoded = codec.decode(data)
    except RemoteProtocolError:
        return
    assert isinstance(
        decoded,
        HandshakeHello | HandshakeAuth | HandshakeReject | Close | Ping | Pong | UnknownMessage,
    )


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def test_unknown_fields_are_ignored() -> None:
    data = pack([5, {"nonce": 7, "data": b"x", "from_the_future": [1, 2, 3]}])
    assert codec.decode(data) == Ping(7, b"x")


def test_unknown_type_is_skippable() -> None:
    assert codec.decode(pack([999, {"anything": 1}])) == UnknownMessage(999)


def test_defaults_fill_missing_optional_fields() -> None:
    assert codec.decode(pack([5, {"nonce": 1}])) == Ping(1, b"")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ([5, {}], "required"),
        ([5, {"nonce": "1"}], "integer"),
        ([5, {"nonce": True}], "integer"),
        ([5, {"nonce": 1, "data": "text"}], "bytes"),
        ([5, {"nonce": 1, "data": b"x" * 1025}], "longer than 1024"),
        ([6, {"nonce": 1, "data": b"x" * 1025}], "longer than 1024"),
        ([5, {"nonce": -1}], "nonce must be from 0 to 2\\*\\*64 - 1"),
        ([6, {"nonce": -(2**63)}], "nonce must be from 0"),
        ([2, {"identity_key": b"x" * 31, "signature": b"s" * 64, "version": 1}], "length 32"),
        ([2, {"identity_key": b"x" * 32, "signature": b"s" * 64}], "version.*required"),
        ([2, {"identity_key": b"x" * 32, "signature": b"s" * 64, "version": 0}], "1 to 65535"),
        ([2, {"identity_key": b"x" * 32, "signature": b"s" * 64, "version": 2**16}], "65535"),
        ([1, {"versions": [1, 0]}], "from 1 to 65535"),
        ([1, {"versions": [65536]}], "from 1 to 65535"),
        (
            [10, {"owner": b"o" * 32, "version": 1, "addresses": ["h" * 254 + ":65535"]}],
            "longer than 259",
        ),
        ([1, {"versions": list(range(17))}], "more than 16"),
        ([1, {"versions": [1, "2"]}], "integer"),
        ([4, {"code": "x" * 65}], "longer"),
        ([5, []], "map"),
        ({"type": 5}, "array"),
        ([5], "array"),
        (["5", {}], "array"),
        ([5, {"nonce": 1}, "extra"], "array"),
    ],
)
def test_schema_violations_are_remote_errors(value: Any, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        codec.decode(pack(value))


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(RemoteProtocolError):
        codec.decode(codec.encode(Ping(1)) + b"\x00")


def test_ext_types_are_rejected() -> None:
    data = pack([5, {"nonce": 1, "data": msgpack.ExtType(1, b"abc")}])
    with pytest.raises(RemoteProtocolError, match="ext"):
        codec.decode(data)


def test_deep_nesting_is_rejected_without_crashing() -> None:
    deep = b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(RemoteProtocolError):
        codec.decode(b"\x92\x05" + deep)


def test_oversize_input_is_rejected_before_parsing() -> None:
    small = Codec(max_message_bytes=100)
    with pytest.raises(RemoteProtocolError, match="limit"):
        small.decode(b"\x00" * 101)
    with pytest.raises(LocalProtocolError):
        small.encode(Blob(b"x" * 200))


def test_huge_declared_lengths_do_not_allocate() -> None:
    # A 4 GiB bin header with no body must fail fast.
    with pytest.raises(RemoteProtocolError):
        codec.decode(b"\x92\x05\x81\xa4data\xc6\xff\xff\xff\xff")


def test_unregistered_type_cannot_be_encoded() -> None:
    @dataclass(frozen=True)
    class NotAMessage:
        x: int

    with pytest.raises(LocalProtocolError):
        codec.encode(NotAMessage(1))


@given(messages | st.builds(Blob, data=st.binary(min_size=8192, max_size=70_000)))
def test_pieces_concatenate_to_the_encoding(message: Any) -> None:
    pieces = codec.encode_pieces(message)
    assert b"".join(pieces) == codec.encode(message)
    if isinstance(message, Blob) and len(message.data) >= 8192:
        assert any(piece is message.data for piece in pieces)  # passed by reference


def test_pieces_respect_the_size_limit() -> None:
    small = Codec(max_message_bytes=10_000)
    with pytest.raises(LocalProtocolError):
        small.encode_pieces(Blob(b"x" * 20_000))
