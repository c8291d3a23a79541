"""Every message we can produce fits the maximum message size that peers accept."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import pytest

from p2pchat.wire.codec import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_STR_CHARS,
    Codec,
)
from p2pchat.wire.messages import (
    MAX_ADDRESS_CHARS,
    MAX_GOSSIP_ITEMS,
    MESSAGE_TYPES,
    MSG_ID_BYTES,
    DigestEntry,
    MeshClaim,
    MeshDigest,
    MeshGossip,
    PresenceRecord,
)

TEST_TYPES = range(60_000, 65_536)  # reserved for tests (docs/protocol.md §6)

# Arrays of byte strings whose items the schema leaves to a value check (an id must be
# exactly 16 or 32 bytes, which decoding enforces), or, for suggestions, ignores when
# they are not 32 bytes: what we put in them.
ITEM_BYTES = {
    "MeshNeighborReply.suggestions": 32,
    "ChatReceipt.msg_ids": MSG_ID_BYTES,
    "EnvelopesTaken.taken": MSG_ID_BYTES,
    "EnvelopesTaken.refused": MSG_ID_BYTES,
    "RoomIHave.ids": MSG_ID_BYTES,
    "RoomGraft.ids": MSG_ID_BYTES,
    "RoomDigest.ids": MSG_ID_BYTES,
    "RoomInvite.members": 32,
    "RoomKeyUpdate.members": 32,
    "FileBlock.proof": 32,
}


def _header(count: int) -> int:
    """The largest MessagePack header for a str, bin, array or map of ``count``."""
    return 1 if count < 16 else 3 if count < 0x10000 else 5


def largest_encoding(hint: Any, metadata: Any = None, path: str = "") -> int:
    """An upper bound on the encoded size of any value the schema accepts for ``hint``."""
    max_len = metadata.get("max_len") if metadata else None
    size = metadata.get("size") if metadata else None
    origin = typing.get_origin(hint)
    if hint in (int, float):
        return 9
    if hint is bool:
        return 1
    if hint is str:
        chars: int = size or max_len or DEFAULT_MAX_STR_CHARS
        return _header(4 * chars) + 4 * chars  # four UTF-8 bytes per character at most
    if hint is bytes:
        length: int | None = size or max_len
        assert length is not None, "an unbounded byte string has no largest encoding"
        return _header(length) + length
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return max(1, largest_encoding(inner, metadata))
    if origin is tuple:
        count = max_len or DEFAULT_MAX_ITEMS
        item_max = metadata.get("item_max_len") if metadata else None
        item_hint = typing.get_args(hint)[0]
        if item_hint is bytes and item_max is None:
            item_max = ITEM_BYTES[path]
        item = largest_encoding(item_hint, {"max_len": item_max})
        return _header(count) + count * item
    assert dataclasses.is_dataclass(hint) and isinstance(hint, type)
    hints = typing.get_type_hints(hint)
    fields = dataclasses.fields(hint)
    return _header(len(fields)) + sum(
        largest_encoding(str, {"max_len": len(f.name)})
        + largest_encoding(hints[f.name], f.metadata, f"{hint.__name__}.{f.name}")
        for f in fields
    )


def largest_message(cls: type[Any]) -> int:
    return 1 + 9 + largest_encoding(cls)  # [type_id, body]


@pytest.mark.parametrize(
    "cls",
    [cls for type_id, cls in sorted(MESSAGE_TYPES.items()) if type_id not in TEST_TYPES],
    ids=lambda cls: cls.__name__,
)
def test_every_message_at_its_limits_fits_the_maximum_size(cls: type[Any]) -> None:
    assert largest_message(cls) <= DEFAULT_MAX_MESSAGE_BYTES


def test_the_largest_messages_are_gossip_and_envelopes() -> None:
    """The figures docs/protocol.md §9 gives for the largest messages."""
    sizes = {
        cls.__name__: largest_message(cls)
        for type_id, cls in MESSAGE_TYPES.items()
        if type_id not in TEST_TYPES
    }
    ranked = sorted(sizes, key=sizes.__getitem__, reverse=True)
    assert ranked[:3] == ["MeshGossip", "Envelopes", "MeshDigest"]
    assert sizes["MeshGossip"] < 2_600_000 and sizes["Envelopes"] < 1_400_000


def test_the_bound_is_an_upper_bound_for_a_real_worst_case_gossip() -> None:
    """256 records at every limit, in four-byte characters, and 256 claims: encoded for
    real, under the computed bound and under the maximum."""
    wide = "\U0001f600"
    record = PresenceRecord(
        owner=bytes(32),
        version=2**63 - 1,
        nick=wide * 32,
        status=wide * 16,
        status_text=wide * 140,
        addresses=tuple(wide * MAX_ADDRESS_CHARS for _ in range(8)),
        protocol=65535,
    )
    claim = MeshClaim(bytes(32), 2**63 - 1, wide * 8, bytes(32))
    gossip = MeshGossip((record,) * MAX_GOSSIP_ITEMS, (claim,) * MAX_GOSSIP_ITEMS, True)
    encoded = Codec().encode(gossip)
    assert len(encoded) <= largest_message(MeshGossip) <= DEFAULT_MAX_MESSAGE_BYTES
    digest = MeshDigest(bytes(16), (DigestEntry(bytes(32), 2**63 - 1, True),) * 10_000, True, True)
    assert len(Codec().encode(digest)) <= largest_message(MeshDigest)
