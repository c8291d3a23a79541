"""The receiver's side of one file (§16.3): what it asks, what it keeps, how it resumes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.files.blocks import BLOCK_SIZE, HashTree, file_root, leaf_hash
from p2pchat.files.download import Download, Verdict


class Holder:
    """A sender with the whole file: blocks and proofs on request."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.blocks = [content[i : i + BLOCK_SIZE] for i in range(0, len(content), BLOCK_SIZE)]
        self.tree = HashTree(leaf_hash(b) for b in self.blocks)
        self.root = file_root(len(content), self.tree.root)

    def block(self, index: int) -> tuple[bytes, list[bytes]]:
        return self.blocks[index], self.tree.proof(index)


# Small blocks would make these tests fast, but the block size is the wire's: keep the
# files a few blocks long and the content cheap (repeated bytes).
def content_of(blocks: int, tail: int) -> bytes:
    return b"".join(bytes([i % 256]) * BLOCK_SIZE for i in range(blocks)) + b"t" * tail


HOLDERS = {(n, t): Holder(content_of(n, t)) for n in (0, 1, 5, 11) for t in (0, 7)}


def test_an_empty_file_is_complete_at_once() -> None:
    download = Download(HOLDERS[0, 0].root, 0)
    assert download.complete and download.to_ask(0.0) == [] and download.held_map() == b""


def test_a_download_asks_within_its_window_and_completes() -> None:
    holder = HOLDERS[11, 7]
    download = Download(holder.root, len(holder.content), window=4)
    written = bytearray(len(holder.content))
    now = 0.0
    while not download.complete:
        asked = download.to_ask(now)
        assert 0 < len(asked) <= 4 and len(download.asked) <= 4
        for index in asked:
            data, proof = holder.block(index)
            assert download.receive(index, data, proof) is Verdict.STORED
            written[index * BLOCK_SIZE : index * BLOCK_SIZE + len(data)] = data
        now += 1
    assert bytes(written) == holder.content and download.held_bytes == len(holder.content)
    assert download.to_ask(now) == []


def test_bad_unasked_and_duplicate_blocks() -> None:
    holder = HOLDERS[5, 7]
    download = Download(holder.root, len(holder.content), window=2)
    assert download.to_ask(0.0) == [0, 1]
    data, proof = holder.block(0)
    assert download.receive(2, *holder.block(2)) is Verdict.UNASKED  # not asked
    assert download.receive(9, data, proof) is Verdict.UNASKED  # no such block
    assert download.receive(0, data[:-1] + b"?", proof) is Verdict.BAD
    assert download.receive(0, data, proof) is Verdict.UNASKED  # refused: not asked now
    assert download.to_ask(1.0) == [0]  # asked again
    assert download.receive(0, data, proof[:-1]) is Verdict.BAD
    assert download.receive(1, data, proof) is Verdict.BAD  # block 0 sent as block 1
    assert download.to_ask(2.0) == [0, 1]
    assert download.receive(0, data, proof) is Verdict.STORED
    assert download.receive(0, data, proof) is Verdict.DUPLICATE
    assert download.held_count == 1


def test_unanswered_and_overdue_blocks_are_asked_again() -> None:
    holder = HOLDERS[5, 0]
    download = Download(holder.root, len(holder.content), window=2, ask_again_after=10)
    assert download.to_ask(0.0) == [0, 1]
    download.not_answered([1])
    download.not_answered([])  # naming none gives back none (not every one asked)
    assert download.asked == frozenset({0})
    assert download.to_ask(1.0) == [1]
    assert download.to_ask(5.0) == []  # both wait, none overdue
    assert download.to_ask(11.0) == [0, 1]  # both overdue (asked at 0 and at 1)
    download.not_answered()  # the session ended
    assert download.asked == frozenset()
    assert download.to_ask(12.0) == [0, 1]


@pytest.mark.parametrize("bits", [b"\xff", b"\x00\x00\x00"])
def test_a_held_map_of_the_wrong_length_is_refused(bits: bytes) -> None:
    holder = HOLDERS[11, 7]
    with pytest.raises(ValueError):
        Download(holder.root, len(holder.content), bits)


def test_stray_bits_past_the_last_block_are_cleared() -> None:
    holder = HOLDERS[5, 0]
    download = Download(holder.root, len(holder.content), b"\xff")
    assert download.held_count == 5 and download.complete
    assert download.held_map() == b"\x1f"


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(HOLDERS)),
    st.integers(1, 9),
    st.integers(0, 2**32),
)
def test_any_order_of_answers_losses_and_restarts_ends_with_the_file(
    shape: tuple[int, int], window: int, seed: int
) -> None:
    holder = HOLDERS[shape]
    rng = random.Random(seed)
    size = len(holder.content)
    download = Download(holder.root, size, window=window, ask_again_after=5)
    written = bytearray(size)
    now, sent_again, stored = 0.0, 0, 0
    in_flight: list[int] = []
    for _ in range(2000):
        if download.complete:
            break
        now += rng.random()
        asked = download.to_ask(now)
        assert len(download.asked) <= window
        in_flight.extend(asked)
        rng.shuffle(in_flight)
        action = rng.random()
        if action < 0.05:  # restart: a new download from what was stored
            download = Download(holder.root, size, download.held_map(), window=window,
                                ask_again_after=5)  # fmt: skip
            in_flight.clear()
        elif action < 0.10:
            download.not_answered()
            in_flight.clear()
        elif in_flight:
            index = in_flight.pop()
            if rng.random() < 0.1:
                continue  # lost: asked again once overdue
            data, proof = holder.block(index)
            if rng.random() < 0.1:
                data = bytes([data[0] ^ 1]) + data[1:]
                assert download.receive(index, data, proof) in (Verdict.BAD, Verdict.DUPLICATE,
                                                                Verdict.UNASKED)  # fmt: skip
                continue
            verdict = download.receive(index, data, proof)
            if verdict is Verdict.STORED:
                stored += 1
                written[index * BLOCK_SIZE : index * BLOCK_SIZE + len(data)] = data
            elif verdict is Verdict.DUPLICATE:
                sent_again += 1
    assert download.complete
    assert bytes(written) == holder.content
    assert stored == holder.tree.leaves.__len__()  # each block stored exactly once


def test_a_claimed_block_counts_in_the_window_until_it_is_stored() -> None:
    holder = HOLDERS[5, 0]
    download = Download(holder.root, len(holder.content), window=2)
    assert download.to_ask(0.0) == [0, 1]
    assert download.claim(0) is Verdict.CLAIMED
    assert download.claim(0) is Verdict.UNASKED  # a second copy while the first is checked
    assert download.waiting == 2 and download.to_ask(1.0) == []
    download.not_answered()  # a lost session does not take back what is being checked
    assert download.waiting == 1
    download.stored(0)
    assert download.held(0) and download.waiting == 0
    assert download.to_ask(2.0) == [1, 2]


def test_blocks_are_asked_in_the_order_given_each_once() -> None:
    size = 10 * BLOCK_SIZE
    order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]
    download = Download(b"r" * 32, size, window=4, order=order)
    seen: list[int] = []
    while not download.complete:
        asked = download.to_ask(0.0)
        assert asked
        for index in asked:
            assert download.claim(index) is Verdict.CLAIMED
            download.stored(index)
        seen += asked
    assert seen == order
    with pytest.raises(ValueError, match="every block once"):
        Download(b"r" * 32, size, order=[0, 1, 2])
