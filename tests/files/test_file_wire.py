"""File messages on the wire (§16.3): round trips, and every out-of-range value is a
malformed message, not a crash later on."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.errors import RemoteProtocolError
from p2pchat.files.blocks import BLOCK_SIZE, HashTree, file_root, leaf_hash, verify_block
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    FILE_ANSWERS,
    FileAnswer,
    FileBlock,
    FileOffer,
    FileRequest,
    FileUnavailable,
)

codec = Codec()
ids = st.binary(min_size=16, max_size=16)
roots = st.binary(min_size=32, max_size=32)
wire_ints = st.integers(0, 2**63 - 1)
indices = st.lists(wire_ints, max_size=64).map(tuple)

file_messages = st.one_of(
    st.builds(
        FileOffer,
        offer_id=ids,
        root=roots,
        size=wire_ints,
        name=st.text(max_size=255),
        media_type=st.text(max_size=127),
        thumbnail=st.binary(max_size=300),
        time=wire_ints,
    ),
    st.builds(
        FileAnswer, offer_id=ids, state=st.sampled_from(FILE_ANSWERS), reason=st.text(max_size=256)
    ),
    st.builds(FileRequest, root=roots, blocks=indices),
    st.builds(
        FileBlock,
        root=roots,
        index=wire_ints,
        data=st.binary(max_size=2000),
        proof=st.lists(roots, max_size=64).map(tuple),
    ),
    st.builds(FileUnavailable, root=roots, blocks=indices, reason=st.text(max_size=64)),
)


@given(file_messages)
def test_round_trip(message: Any) -> None:
    assert codec.decode(codec.encode(message)) == message


def test_a_whole_block_with_its_proof_travels_and_verifies() -> None:
    content = bytes(range(256)) * (3 * BLOCK_SIZE // 256) + b"tail"
    blocks = [content[i : i + BLOCK_SIZE] for i in range(0, len(content), BLOCK_SIZE)]
    tree = HashTree(leaf_hash(b) for b in blocks)

    root = file_root(len(content), tree.root)
    sent = FileBlock(root=root, index=3, data=blocks[3], proof=tuple(tree.proof(3)))
    got = codec.decode(codec.encode(sent))
    assert verify_block(got.root, len(content), got.index, got.data, got.proof)


OFFER = {"offer_id": bytes(16), "root": bytes(32), "size": 1, "name": "a"}


@pytest.mark.parametrize(
    ("type_id", "body"),
    [
        (50, {**OFFER, "size": 2**63}),
        (50, {**OFFER, "size": -1}),
        (50, {**OFFER, "root": bytes(31)}),
        (50, {**OFFER, "offer_id": bytes(17)}),
        (50, {**OFFER, "name": "x" * 256}),
        (50, {**OFFER, "thumbnail": bytes(16 * 1024 + 1)}),
        (50, {**OFFER, "time": 2**63}),
        (51, {"offer_id": bytes(16), "state": "maybe"}),
        (51, {"offer_id": bytes(16), "state": "accept", "reason": "x" * 257}),
        (52, {"root": bytes(32), "blocks": [-1]}),
        (52, {"root": bytes(32), "blocks": [0] * 65}),
        (53, {"root": bytes(32), "index": 0, "data": bytes(BLOCK_SIZE + 1)}),
        (53, {"root": bytes(32), "index": 0, "proof": [bytes(31)]}),
        (53, {"root": bytes(32), "index": 0, "proof": [bytes(32)] * 65}),
        (53, {"root": bytes(32), "index": 2**63}),
        (54, {"root": bytes(32), "blocks": [2**64 - 1]}),
    ],
)
def test_bad_file_messages_are_remote_errors(type_id: int, body: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError):
        codec.decode(msgpack.packb([type_id, body], use_bin_type=True))
