"""The disk side of files: hashing a file to offer, reading a block to serve, writing a
block received, and putting a finished file under its name. Blocking calls, each meant
for a worker thread (``trio.to_thread.run_sync``) or, for one block, the event loop."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import shutil
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from p2pchat.files.blocks import (
    BLOCK_SIZE,
    HashTree,
    block_count,
    block_length,
    file_root,
    leaf_hash,
    verify_block,
)
from p2pchat.files.names import safe_name, unique_name

PARTIAL_FOLDER = ".p2pchat-partial"  # inside the downloads folder: files not yet whole


def hash_file(path: Path) -> tuple[int, bytes, bytes]:
    """(size, the leaf hashes of its blocks, 32 bytes each, its stamp), reading it once.
    The stamp is empty if the file changed while it was read (its blocks are then
    checked against their leaves whenever they are served)."""
    leaves = bytearray()
    size = 0
    with open(path, "rb") as source:
        before = file_stamp(source.fileno())
        while block := source.read(BLOCK_SIZE):
            leaves += leaf_hash(block)
            size += len(block)
        after = file_stamp(source.fileno())
    return size, bytes(leaves), before if before == after else b""


def file_stamp(fd: int) -> bytes:
    """What tells a file changed without reading it: device, inode, size, and the times
    of the last change of its content (mtime) and of the file in any way (ctime, which
    no program can set back), each to the nanosecond."""
    stat = os.fstat(fd)
    return struct.pack(
        ">QQQqq", stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns
    )


def tree_of(leaves: bytes) -> HashTree:
    return HashTree(leaves[i : i + 32] for i in range(0, len(leaves), 32))


def read_blocks(
    path: Path, size: int, wanted: Sequence[tuple[int, bytes]], stamp: bytes = b""
) -> list[bytes | None]:
    """The blocks ``(index, leaf hash)`` of the file at ``path``, each None if the file
    is not the one we hashed any more (another size, or that block changed). A file
    whose ``stamp`` (:func:`file_stamp`, taken when it was hashed) is still the same is
    taken to be unchanged; any other is checked block by block against the leaves."""
    with open(path, "rb") as source:
        fd = source.fileno()
        if os.fstat(fd).st_size != size:
            return [None] * len(wanted)
        unchanged = bool(stamp) and file_stamp(fd) == stamp
        blocks = [os.pread(fd, BLOCK_SIZE, index * BLOCK_SIZE) for index, _ in wanted]
    if unchanged:
        return list(blocks)
    return [
        block if leaf_hash(block) == leaf else None
        for block, (_, leaf) in zip(blocks, wanted, strict=True)
    ]


# Reading in the event loop. A block read from the page cache costs less than the trip
# to a worker thread and back (two wake-ups; docs/performance.md, "Files"). RWF_NOWAIT
# makes the kernel answer from the cache or say it cannot; only then is a thread used.
RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)


def reads_without_waiting(path: Path) -> bool:
    """Whether the file system of ``path`` tells a read that would wait apart from one
    that would not (local ones do; network and FUSE ones refuse the flag). Only such
    files are read in the event loop. Blocking: for a worker thread."""
    if not RWF_NOWAIT:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        os.preadv(fd, [bytearray(1)], 0, RWF_NOWAIT)
    except BlockingIOError:
        return True  # understood, and not in the cache now
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def read_cached(path: Path, size: int, indices: Sequence[int], stamp: bytes) -> list[bytes] | None:
    """Blocks ``indices`` of the file at ``path``, all from the page cache, in the event
    loop; None if any would wait for the disk, or the file does not have ``stamp`` any
    more (each then read by :func:`read_blocks`, in a worker thread). Only for files of
    which :func:`reads_without_waiting` said yes."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if not stamp or file_stamp(fd) != stamp:
            return None
        blocks: list[bytes] = []
        for index in indices:
            block = bytearray(block_length(size, index))
            if os.preadv(fd, [block], index * BLOCK_SIZE, RWF_NOWAIT) != len(block):
                return None
            # Read in place, so a bytearray; bytes would cost a copy of each block. It
            # is never changed after this, and the codec sends it as it would bytes.
            blocks.append(cast(bytes, block))
        return blocks
    except OSError:  # BlockingIOError: not all in the cache; the rest: the thread says
        return None
    finally:
        os.close(fd)


def partial_path(downloads: Path, offer_id: bytes) -> Path:
    return downloads / PARTIAL_FOLDER / f"{offer_id.hex()}.part"


# Direct I/O: a received block goes from our memory to the disk without a copy into the
# page cache. That copy is most of what writing costs the receiver (on the machine of
# docs/performance.md, "Files", about 1 s of CPU per GiB against 0.2 s direct), and a
# large download does not push the user's other files out of the cache. Offsets and
# lengths must be multiples of the device's block size (4096 covers every common one)
# and the memory aligned as well; a file system without direct I/O is written through
# the cache as before.
O_DIRECT = getattr(os, "O_DIRECT", 0)
DIRECT_ALIGN = 4096
RUN_BLOCKS = 8  # blocks written in one call at most (the writer's batch)
DIRECT_RUN_BYTES = RUN_BLOCKS * BLOCK_SIZE
_aligned = threading.local()  # a page-aligned buffer for a run, per worker thread


def open_partial(part: Path, *, direct: bool = False) -> int:
    """A descriptor to write the partial file with (made if missing); ``direct``: with
    direct I/O where the file system has it."""
    if direct and O_DIRECT:
        try:
            return os.open(part, os.O_WRONLY | os.O_CREAT | O_DIRECT, 0o600)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
    return os.open(part, os.O_WRONLY | os.O_CREAT, 0o600)


def write_block(fd: int, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` (see :func:`write_run`)."""
    write_run(fd, offset, [data])


def write_run(fd: int, offset: int, pieces: Sequence[bytes]) -> None:
    """Write ``pieces`` one after the other from ``offset``, in one call: directly if
    ``fd`` was opened so and the lengths allow it, else through the page cache (a run
    ending with the short last block); a file system that refuses a direct write has
    ``fd`` written through the cache from then on."""
    total = sum(len(piece) for piece in pieces)
    flags = fcntl.fcntl(fd, fcntl.F_GETFL) if O_DIRECT else 0
    if not flags & O_DIRECT:
        _write_pieces(fd, offset, pieces)
        return
    if offset % DIRECT_ALIGN or total % DIRECT_ALIGN or total > DIRECT_RUN_BYTES:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~O_DIRECT)
        try:
            _write_pieces(fd, offset, pieces)
        finally:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        return
    buffer = getattr(_aligned, "buffer", None)
    if buffer is None:
        buffer = _aligned.buffer = mmap.mmap(-1, DIRECT_RUN_BYTES)  # page-aligned
    position = 0
    for piece in pieces:
        buffer[position : position + len(piece)] = piece
        position += len(piece)
    try:
        _write_all(fd, offset, memoryview(buffer)[:total])
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~O_DIRECT)
        _write_all(fd, offset, memoryview(buffer)[:total])


def _write_pieces(fd: int, offset: int, pieces: Sequence[bytes]) -> None:
    for piece in pieces:  # through the cache: a call each costs little beside the copy
        _write_all(fd, offset, piece)
        offset += len(piece)


def _write_all(fd: int, offset: int, data: bytes | memoryview) -> None:
    """pwrite until all of ``data`` is written: a write cut short (the disk filling up)
    is continued, and the next one says why it cannot be."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.EIO, "the disk took none of the block")
        view, offset = view[written:], offset + written


def check_and_write(
    fd: int,
    root: bytes,
    size: int,
    index: int,
    data: bytes,
    proof: Sequence[bytes],
    proofs_fd: int | None = None,
) -> bool:
    """Write block ``index`` if it is the file's (§16.1); False, writing nothing, if not.
    ``proofs_fd``: also keep its proof there (a room file's, served on to others)."""
    return check_and_write_all(fd, root, size, [(index, data, proof)], proofs_fd)[0]


# A block come for a file: its index, its bytes and its proof (§16.3 FileBlock).
Arrived = tuple[int, bytes, Sequence[bytes]]


def check_and_write_all(
    fd: int, root: bytes, size: int, blocks: Sequence[Arrived], proofs_fd: int | None = None
) -> list[bool]:
    """Check each of ``blocks`` (§16.1) and write those that are the file's, saying
    which were: blocks that follow each other go in one write (fewer calls and, with
    direct I/O, fewer waits for the disk), and all in one trip to a worker thread (each
    trip costs the event loop a wake-up and the thread a wait for the GIL). Hashing and
    writing release the GIL, so this runs beside the event loop's decrypting of the
    next blocks. ``proofs_fd``: also keep each block's proof there (a room file's,
    served on to others)."""
    verdicts = [verify_block(root, size, index, data, proof) for index, data, proof in blocks]
    good = [block for block, verdict in zip(blocks, verdicts, strict=True) if verdict]
    run: list[bytes] = []
    start = 0
    for index, data, _ in good:
        follows = run and index == start + len(run) and len(run) < RUN_BLOCKS
        if run and not follows:
            write_run(fd, start * BLOCK_SIZE, run)
            run = []
        if not run:
            start = index
        run.append(data)
    if run:
        write_run(fd, start * BLOCK_SIZE, run)
    if proofs_fd is not None:
        slot = proof_slot(block_count(size))
        for index, _, proof in good:
            os.pwrite(proofs_fd, bytes([len(proof)]) + b"".join(proof), index * slot)
    return verdicts


def proofs_path(downloads: Path, offer_id: bytes) -> Path:
    """Where a room file's proofs are kept (beside its partial file, also once done)."""
    return downloads / PARTIAL_FOLDER / f"{offer_id.hex()}.proofs"


def proof_slot(count: int) -> int:
    """Bytes per block in a proofs file: a length byte and the longest proof."""
    return 1 + (count - 1).bit_length() * 32


def read_held_block(
    path: Path, proofs: Path, root: bytes, size: int, index: int
) -> tuple[bytes, tuple[bytes, ...]] | None:
    """Block ``index`` of a file we fetched, with the proof that came with it; None if
    either is not there or they do not verify (the file changed, or went away)."""
    try:
        with open(path, "rb") as source:
            data = os.pread(source.fileno(), BLOCK_SIZE, index * BLOCK_SIZE)
        with open(proofs, "rb") as kept:
            slot = proof_slot(block_count(size))
            record = os.pread(kept.fileno(), slot, index * slot)
    except OSError:
        return None
    if not record or 1 + record[0] * 32 > len(record):
        return None
    proof = tuple(record[1 + 32 * i : 33 + 32 * i] for i in range(record[0]))
    return (data, proof) if verify_block(root, size, index, data, proof) else None


def finish(
    part: Path,
    downloads: Path,
    offered_name: str,
    *,
    chosen: bool = False,
    root: bytes | None = None,
    size: int | None = None,
) -> Path:
    """Make the partial file durable and give it a free name in ``downloads`` (never
    replacing a file there); the path it got. ``offered_name`` comes from the network
    and is made safe; a name our user ``chosen`` is kept as it is.

    Safe to run again after a stop at any point: a file of that name that already is
    this file (the partial file linked to it, or, given ``root`` and ``size``, the
    same content copied or moved there) is the answer, not a reason for a second copy;
    and with the partial file gone, such a file is looked for before giving up."""
    name = offered_name if chosen else safe_name(offered_name)
    if not part.exists():
        earlier = _saved_before(part, downloads, name, root, size)
        if earlier is None:
            raise FileNotFoundError(errno.ENOENT, "the partial file is gone", str(part))
        return earlier
    fd = os.open(part, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    while True:
        final = _saved_before(part, downloads, name, root, size)
        if final is not None:
            break
        final = downloads / unique_name(name, lambda n: (downloads / n).exists())
        try:
            os.link(part, final)  # fails if the name was taken meanwhile: never replaces
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno == errno.EXDEV:  # saved to another file system: copied there
                if not _copy_in(part, final):
                    continue
            elif error.errno in (errno.EPERM, errno.ENOTSUP):
                if final.exists():
                    continue
                os.rename(part, final)  # a file system without hard links
                _sync_folder(downloads)
                return final
            else:
                raise
        break
    os.unlink(part)
    _sync_folder(downloads)
    return final


def _saved_before(
    part: Path, downloads: Path, name: str, root: bytes | None, size: int | None
) -> Path | None:
    """A file among ``name``, ``name (1)``, … in ``downloads`` (up to the first free
    one) that is the partial file already: linked to it, or of the same size and
    root. A run that stopped between putting the file there and recording it."""
    found: list[Path] = []

    def taken(candidate: str) -> bool:
        path = downloads / candidate
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            if os.path.samefile(part, path):
                found.append(path)
                return False
        if root is not None and stat.st_size == size and content_root(path) == root:
            found.append(path)
            return False
        return True

    unique_name(name, taken)
    return found[0] if found else None


def content_root(path: Path) -> bytes | None:
    """The root (§16.1) of the file at ``path`` as it is now; None if it cannot be read."""
    try:
        size, leaves, _ = hash_file(path)
    except OSError:
        return None
    return file_root(size, tree_of(leaves).root)


def _copy_in(part: Path, final: Path) -> bool:
    """Copy ``part`` to ``final`` on another file system: first under a hidden name
    beside it, made durable, then linked (so never a half file under the final name,
    and never replacing one); False if ``final`` was taken meanwhile."""
    hidden = final.with_name(f".{final.name}.p2pchat-copy")
    try:
        with open(part, "rb") as source, open(hidden, "wb") as copy:
            shutil.copyfileobj(source, copy, BLOCK_SIZE)
            copy.flush()
            os.fsync(copy.fileno())
        os.link(hidden, final)
    except FileExistsError:
        return False
    finally:
        hidden.unlink(missing_ok=True)
    return True


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some file systems cannot sync a folder
            os.fsync(fd)
    finally:
        os.close(fd)
