"""Sender chains (§15.7): keys derived in order, each usable once, a bounded window
for messages out of order, and nothing kept that opens a message already read."""

from __future__ import annotations

import nacl.encoding
import nacl.hash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.chat.chains import (
    MAX_SKIP,
    MAX_SKIPPED,
    MAX_SKIPPED_PER_ROOM,
    Chain,
    ChainError,
    RoomChains,
    chained_nonce,
    first_chain_key,
    key_id,
    message_key,
    next_chain_key,
    nonce_index,
)

KEY = bytes(range(32))
ROOM = b"r" * 16
AUTHOR = b"a" * 32


def sender_keys(count: int) -> list[bytes]:
    """What the author uses: message keys 0 … count-1 of its chain."""
    chain_key = first_chain_key(KEY, ROOM, 3, AUTHOR)
    keys = []
    for _ in range(count):
        keys.append(message_key(chain_key))
        chain_key = next_chain_key(chain_key)
    return keys


def test_derivations_are_distinct_and_bound_to_room_epoch_and_author() -> None:
    firsts = {
        first_chain_key(KEY, ROOM, 3, AUTHOR),
        first_chain_key(KEY, ROOM, 4, AUTHOR),
        first_chain_key(KEY, b"s" * 16, 3, AUTHOR),
        first_chain_key(KEY, ROOM, 3, b"b" * 32),
        first_chain_key(bytes(32), ROOM, 3, AUTHOR),
    }
    assert len(firsts) == 5
    keys = sender_keys(50)
    assert len(set(keys)) == 50 and KEY not in keys
    assert key_id(KEY, True) != KEY and len(key_id(KEY, True)) == 32
    assert key_id(KEY, True) != key_id(KEY, False)  # the flag is part of the name


def test_the_nonce_carries_the_index() -> None:
    nonce = chained_nonce(70_000, b"x" * 16)
    assert len(nonce) == 24 and nonce_index(nonce) == 70_000
    with pytest.raises(ValueError):
        chained_nonce(1, b"short")


@settings(max_examples=200, deadline=None)
@given(st.permutations(range(40)), st.integers(0, 39))
def test_any_order_opens_each_message_once(order: list[int], lost: int) -> None:
    keys = sender_keys(40)
    chain = Chain(0, first_chain_key(KEY, ROOM, 3, AUTHOR))
    for index in order:
        if index == lost:
            continue  # never comes: its key waits among the skipped ones
        assert chain.key_for(index) == keys[index]
        chain.take(index)
        with pytest.raises(ChainError):
            chain.key_for(index)  # read: its key is gone
    assert set(chain.skipped) == ({lost} if lost < 39 else set())
    # What the chain holds now opens nothing it read: the keys it keeps are the lost
    # one's and those of messages still to come.
    held = set(chain.skipped.values()) | {message_key(chain.chain_key)}
    read = {keys[i] for i in range(40) if i != lost}
    assert not held & read


def test_checking_a_key_changes_nothing() -> None:
    chain = Chain(0, first_chain_key(KEY, ROOM, 3, AUTHOR))
    chain.key_for(10)
    assert chain.next_index == 0 and not chain.skipped
    assert chain.take(10) == 10 and chain.take(10) == 0  # a repeat is a no-op


def test_a_message_too_far_ahead_is_refused() -> None:
    chain = Chain(0, first_chain_key(KEY, ROOM, 3, AUTHOR))
    with pytest.raises(ChainError):
        chain.key_for(MAX_SKIP + 1)
    with pytest.raises(ChainError):
        chain.take(MAX_SKIP + 1)
    assert chain.key_for(MAX_SKIP) == sender_keys(MAX_SKIP + 1)[-1]


def test_skipped_keys_are_bounded_per_chain_the_oldest_go() -> None:
    chain = Chain(0, first_chain_key(KEY, ROOM, 3, AUTHOR))
    chain.take(MAX_SKIP)
    chain.take(2 * MAX_SKIP)
    skipped_in_all = [*range(MAX_SKIP), *range(MAX_SKIP + 1, 2 * MAX_SKIP)]
    assert set(chain.skipped) == set(skipped_in_all[-MAX_SKIPPED:])
    with pytest.raises(ChainError):
        chain.key_for(0)


def test_skipped_keys_are_bounded_per_room_the_biggest_holder_loses_first() -> None:
    """A member that skips far ahead in epoch after epoch fills the room's bound with
    its own skipped keys; an honest author's few (a late message) stay."""
    chains = RoomChains()
    honest, hostile = b"h" * 32, b"x" * 32
    epochs = MAX_SKIPPED_PER_ROOM // MAX_SKIP + 2
    for epoch in range(1, epochs + 1):
        chains.start(ROOM, epoch, KEY, frozenset((honest, hostile)))
    honest_chain = (1, key_id(KEY, True), honest)
    chains.take(honest_chain, 3)  # messages 0-2 not come yet
    for epoch in range(1, epochs + 1):
        chains.take((epoch, key_id(KEY, True), hostile), MAX_SKIP)
    assert chains.skipped() == MAX_SKIPPED_PER_ROOM
    kept = chains.get(honest_chain)
    assert kept is not None and sorted(kept.skipped) == [0, 1, 2]


def test_stored_skipped_keys_read_back() -> None:
    chain = Chain(0, first_chain_key(KEY, ROOM, 3, AUTHOR))
    chain.take(5)
    chain.take(2)
    assert Chain.decode_skipped(chain.encode_skipped()) == chain.skipped


def test_the_spec_vectors_hold_with_libsodium_as_the_second_implementation() -> None:
    """docs/protocol.md §15.7's vectors, by libsodium's BLAKE2b (personalisation padded
    with zero bytes to 16, as the spec says) and by ours."""

    def sodium(key: bytes, data: bytes, person: bytes) -> bytes:
        return nacl.hash.blake2b(data, key=key, person=person.ljust(16, b"\0"),
                                 encoder=nacl.encoding.RawEncoder)  # fmt: skip

    room, author = b"r" * 16, b"a" * 32
    chain0 = sodium(KEY, room + (3).to_bytes(8, "big") + author, b"p2pchat-chain-0")
    assert (
        sodium(b"", KEY + b"\x01", b"p2pchat-room-kid").hex()
        == key_id(KEY, True).hex()
        == ("e7c4d272116e6a279f06e24ad7457309dfcfa0a20cf48d587edd98477ae8b104")
    )
    assert chain0 == first_chain_key(KEY, room, 3, author)
    assert chain0.hex() == "a67abae669b8bb0eb08274ec52195b44809dd0a6c9930fca6a63949ea37c56b2"
    assert (
        sodium(chain0, b"\x01", b"p2pchat-chain-mk").hex()
        == message_key(chain0).hex()
        == ("5abac770e7ed620db5e727fe42a197459afe8079e913ac6957b90b1304bcac98")
    )
    chain1 = sodium(chain0, b"\x02", b"p2pchat-chain-ck")
    assert chain1 == next_chain_key(chain0)
    assert message_key(chain1).hex() == (
        "35e25dacd3e6fcc88be1efa0f102003181d2363b335e2063f1480fce23f3ea13"
    )
