"""The disk side of files (p2pchat/node/files/disk.py): blocks written directly where
the file system allows it, through the page cache where it does not, and read back in
batches that notice a file changed under them."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import Any

import pytest

from p2pchat.files.blocks import BLOCK_SIZE, HashTree, leaf_hash, root_of
from p2pchat.node.files.disk import (
    O_DIRECT,
    RWF_NOWAIT,
    check_and_write_all,
    file_stamp,
    finish,
    hash_file,
    open_partial,
    read_blocks,
    read_cached,
    reads_without_waiting,
    write_block,
)

needs_direct = pytest.mark.skipif(not O_DIRECT, reason="this system has no O_DIRECT")


def content(size: int) -> bytes:
    return bytes((k * 7 + k // 251) % 256 for k in range(size))


def is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT)


def proofs_of(data: bytes) -> tuple[HashTree, list[bytes]]:
    blocks = [data[i : i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)]
    return HashTree(leaf_hash(block) for block in blocks), blocks


@needs_direct
def test_whole_blocks_go_direct_and_the_short_last_one_through_the_cache(tmp_path: Path) -> None:
    data = content(3 * BLOCK_SIZE + 1000)
    tree, blocks = proofs_of(data)
    part = tmp_path / "f.part"
    fd = open_partial(part, direct=True)
    try:
        if not is_direct(fd):
            pytest.fail("the test folder's file system refused O_DIRECT: run it on one that has it")
        # Out of order, the short last block first: it must not turn direct I/O off.
        order = [3, 1, 0, 2]
        verdicts = check_and_write_all(
            fd, root_of(data), len(data), [(i, blocks[i], tree.proof(i)) for i in order]
        )
        assert verdicts == [True] * 4
        assert is_direct(fd)
    finally:
        os.close(fd)
    assert part.read_bytes() == data


def test_without_direct_io_blocks_are_written_through_the_cache(tmp_path: Path) -> None:
    data = content(2 * BLOCK_SIZE)
    part = tmp_path / "f.part"
    fd = open_partial(part)
    try:
        assert not O_DIRECT or not is_direct(fd)
        write_block(fd, BLOCK_SIZE, data[BLOCK_SIZE:])
        write_block(fd, 0, data[:BLOCK_SIZE])
    finally:
        os.close(fd)
    assert part.read_bytes() == data


@needs_direct
def test_a_file_system_that_refuses_a_direct_write_is_written_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some file systems open with O_DIRECT and refuse the write (EINVAL): the block is
    written all the same, and the descriptor is a cached one from then on."""
    real_pwrite = os.pwrite
    refused = []

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if is_direct(fd):
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    data = content(2 * BLOCK_SIZE)
    part = tmp_path / "f.part"
    fd = open_partial(part, direct=True)
    try:
        write_block(fd, 0, data[:BLOCK_SIZE])
        write_block(fd, BLOCK_SIZE, data[BLOCK_SIZE:])
        assert not is_direct(fd)
    finally:
        os.close(fd)
    assert refused == [0]  # asked once, then never again
    assert part.read_bytes() == data


def test_other_write_errors_are_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def pwrite(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", pwrite)
    fd = open_partial(tmp_path / "f.part", direct=True)
    try:
        with pytest.raises(OSError) as raised:
            write_block(fd, 0, content(BLOCK_SIZE))
        assert raised.value.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_blocks_read_in_a_batch_each_say_whether_they_are_what_was_offered(
    tmp_path: Path,
) -> None:
    data = content(3 * BLOCK_SIZE + 10)
    path = tmp_path / "offered.bin"
    path.write_bytes(data)
    tree, blocks = proofs_of(data)
    wanted = [(2, tree.leaves[2]), (0, tree.leaves[0]), (3, tree.leaves[3])]
    assert read_blocks(path, len(data), wanted) == [blocks[2], blocks[0], blocks[3]]
    with open(path, "r+b") as changed:  # one block changed in place, same size
        changed.seek(BLOCK_SIZE * 2 + 5)
        changed.write(b"!")
    assert read_blocks(path, len(data), wanted) == [None, blocks[0], blocks[3]]
    path.write_bytes(data + b"more")  # another size: none of them is the file offered
    assert read_blocks(path, len(data), wanted) == [None, None, None]


def test_a_gone_partial_file_is_never_taken_for_a_different_file_of_that_name(
    tmp_path: Path,
) -> None:
    data = content(BLOCK_SIZE + 5)
    (tmp_path / "song.ogg").write_bytes(content(BLOCK_SIZE + 4) + b"!")  # same size, other
    with pytest.raises(FileNotFoundError):
        finish(tmp_path / "gone.part", tmp_path, "song.ogg", root=root_of(data), size=len(data))
    (tmp_path / "song (1).ogg").write_bytes(data)  # the one it was: found after the other
    found = finish(tmp_path / "gone.part", tmp_path, "song.ogg", root=root_of(data), size=len(data))
    assert found == tmp_path / "song (1).ogg"


def stamp_of(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return file_stamp(fd)
    finally:
        os.close(fd)


def test_a_file_hashed_whole_gets_its_stamp_and_one_changing_meanwhile_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "offered.bin"
    path.write_bytes(content(2 * BLOCK_SIZE + 3))
    size, leaves, stamp = hash_file(path)
    assert (size, len(leaves)) == (2 * BLOCK_SIZE + 3, 3 * 32)
    assert stamp == stamp_of(path)

    def leaf_hash_while_written_to(block: bytes) -> bytes:
        os.utime(path, ns=(1, 1))  # any change to the file moves its ctime
        return leaf_hash(block)

    monkeypatch.setattr("p2pchat.node.files.disk.leaf_hash", leaf_hash_while_written_to)
    assert hash_file(path)[2] == b""


def test_a_file_with_its_stamp_is_served_without_hashing_and_a_changed_one_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = content(3 * BLOCK_SIZE)
    path = tmp_path / "offered.bin"
    path.write_bytes(data)
    tree, blocks = proofs_of(data)
    stamp = hash_file(path)[2]
    wanted = [(2, tree.leaves[2]), (0, tree.leaves[0])]
    hashed: list[bytes] = []

    def counting_leaf_hash(block: bytes) -> bytes:
        hashed.append(block)
        return leaf_hash(block)

    monkeypatch.setattr("p2pchat.node.files.disk.leaf_hash", counting_leaf_hash)
    assert read_blocks(path, len(data), wanted, stamp) == [blocks[2], blocks[0]]
    assert hashed == []
    with open(path, "r+b") as changed:  # block 2 changed in place: the stamp moves
        changed.seek(2 * BLOCK_SIZE)
        changed.write(b"!")
    assert stamp_of(path) != stamp
    assert read_blocks(path, len(data), wanted, stamp) == [None, blocks[0]]
    assert len(hashed) == 2


@pytest.mark.skipif(not RWF_NOWAIT, reason="this system cannot read without waiting")
def test_blocks_in_the_page_cache_are_read_in_place_and_others_left_to_a_thread(
    tmp_path: Path,
) -> None:
    data = content(3 * BLOCK_SIZE + 10)
    path = tmp_path / "offered.bin"
    path.write_bytes(data)
    _, blocks = proofs_of(data)
    if not reads_without_waiting(path):
        pytest.fail("the test folder's file system cannot say whether a read would wait")
    stamp = stamp_of(path)
    assert read_cached(path, len(data), [3, 1], stamp) == [blocks[3], blocks[1]]
    assert read_cached(path, len(data), [0], b"") is None  # no stamp: checked in a thread
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # out of the cache
    finally:
        os.close(fd)
    assert read_cached(path, len(data), [0, 1], stamp) is None
    os.utime(path, ns=(1, 1))
    assert read_cached(path, len(data), [3], stamp) is None  # not the file stamped


def test_a_file_system_that_cannot_say_is_always_read_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "offered.bin"
    path.write_bytes(b"x")

    def preadv(*_: Any) -> int:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "preadv", preadv)
    assert not reads_without_waiting(path)
    assert not reads_without_waiting(tmp_path / "missing.bin")


@pytest.mark.parametrize("direct", [True, False])
def test_blocks_that_follow_each_other_go_in_one_write_and_bad_ones_in_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    data = content(6 * BLOCK_SIZE + 100)
    tree, blocks = proofs_of(data)
    writes: list[tuple[int, int]] = []
    real_pwrite = os.pwrite

    def pwrite(fd: int, written: Any, offset: int) -> int:
        writes.append((offset // BLOCK_SIZE, -(-len(written) // BLOCK_SIZE)))
        return real_pwrite(fd, written, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    part = tmp_path / "f.part"
    fd = open_partial(part, direct=direct)
    try:
        arrived = [(i, blocks[i], tree.proof(i)) for i in (0, 1, 2, 4, 5, 6)]
        arrived[4] = (5, blocks[5][:-1] + b"?", tree.proof(5))  # does not verify
        verdicts = check_and_write_all(fd, root_of(data), len(data), arrived)
        assert verdicts == [True, True, True, True, False, True]
        assert not direct or is_direct(fd)  # the short last block did not turn it off
    finally:
        os.close(fd)
    if direct and O_DIRECT:
        assert writes == [(0, 3), (4, 1), (6, 1)]  # blocks 0-2 in one write
    written = part.read_bytes()
    for index in (0, 1, 2, 4, 6):
        assert written[index * BLOCK_SIZE : (index + 1) * BLOCK_SIZE] == blocks[index]
    assert written[5 * BLOCK_SIZE : 6 * BLOCK_SIZE] == bytes(BLOCK_SIZE)  # never written


def test_a_write_cut_short_is_continued_and_the_next_error_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk filling up first takes part of a write, then refuses the rest: the part
    taken is never passed off as the whole block."""
    real_pwrite = os.pwrite
    room = [BLOCK_SIZE + 1000]  # bytes the disk takes before it is full

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if room[0] == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = min(len(data), room[0], 4096 * 3)  # never more than 12 KiB a call
        room[0] -= taken
        return real_pwrite(fd, memoryview(data)[:taken], offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    data = content(2 * BLOCK_SIZE)
    part = tmp_path / "f.part"
    fd = open_partial(part)
    try:
        write_block(fd, 0, data[:BLOCK_SIZE])
        assert part.read_bytes() == data[:BLOCK_SIZE]
        with pytest.raises(OSError) as raised:
            write_block(fd, BLOCK_SIZE, data[BLOCK_SIZE:])
        assert raised.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
