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
    check_and_write_all,
    finish,
    open_partial,
    read_blocks,
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
