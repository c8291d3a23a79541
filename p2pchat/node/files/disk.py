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
import threading
from collections.abc import Sequence
from pathlib import Path

from p2pchat.files.blocks import (
    BLOCK_SIZE,
    HashTree,
    block_count,
    file_root,
    leaf_hash,
    verify_block,
)
from p2pchat.files.names import safe_name, unique_name

PARTIAL_FOLDER = ".p2pchat-partial"  # inside the downloads folder: files not yet whole


def hash_file(path: Path) -> tuple[int, bytes]:
    """(size, the leaf hashes of its blocks, 32 bytes each), reading it once."""
    leaves = bytearray()
    size = 0
    with open(path, "rb") as source:
        while block := source.read(BLOCK_SIZE):
            leaves += leaf_hash(block)
            size += len(block)
    return size, bytes(leaves)


def tree_of(leaves: bytes) -> HashTree:
    return HashTree(leaves[i : i + 32] for i in range(0, len(leaves), 32))


def read_blocks(path: Path, size: int, wanted: Sequence[tuple[int, bytes]]) -> list[bytes | None]:
    """The blocks ``(index, leaf hash)`` of the file at ``path``, each None if the file
    is not the one we hashed any more (another size, or that block changed)."""
    with open(path, "rb") as source:
        if os.fstat(source.fileno()).st_size != size:
            return [None] * len(wanted)
        blocks = [os.pread(source.fileno(), BLOCK_SIZE, index * BLOCK_SIZE) for index, _ in wanted]
    return [
        block if leaf_hash(block) == leaf else None
        for block, (_, leaf) in zip(blocks, wanted, strict=True)
    ]


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
_aligned = threading.local()  # a page-aligned block buffer per worker thread


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
    """Write ``data`` at ``offset``: directly if ``fd`` was opened so and the lengths
    allow it, else through the page cache (the short last block); a file system that
    refuses a direct write has ``fd`` written through the cache from then on."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL) if O_DIRECT else 0
    if not flags & O_DIRECT:
        os.pwrite(fd, data, offset)
        return
    if offset % DIRECT_ALIGN or len(data) % DIRECT_ALIGN or len(data) > BLOCK_SIZE:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~O_DIRECT)
        try:
            os.pwrite(fd, data, offset)
        finally:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        return
    buffer = getattr(_aligned, "buffer", None)
    if buffer is None:
        buffer = _aligned.buffer = mmap.mmap(-1, BLOCK_SIZE)  # page-aligned
    buffer[: len(data)] = data
    try:
        os.pwrite(fd, memoryview(buffer)[: len(data)], offset)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~O_DIRECT)
        os.pwrite(fd, data, offset)


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
    ``proofs_fd``: also keep its proof there (a room file's, served on to others).
    Meant for a worker thread: hashing and writing release the GIL, so this runs beside
    the event loop's decrypting of the next blocks."""
    if not verify_block(root, size, index, data, proof):
        return False
    write_block(fd, index * BLOCK_SIZE, data)
    if proofs_fd is not None:
        slot = proof_slot(block_count(size))
        os.pwrite(proofs_fd, bytes([len(proof)]) + b"".join(proof), index * slot)
    return True


# A block come for a file: its index, its bytes and its proof (§16.3 FileBlock).
Arrived = tuple[int, bytes, Sequence[bytes]]


def check_and_write_all(
    fd: int, root: bytes, size: int, blocks: Sequence[Arrived], proofs_fd: int | None = None
) -> list[bool]:
    """:func:`check_and_write` for each of ``blocks``, in order: one trip to a worker
    thread for all the blocks that came while the last ones were written (each trip
    costs the event loop a wake-up and the thread a wait for the GIL)."""
    return [check_and_write(fd, root, size, *block, proofs_fd) for block in blocks]


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
        size, leaves = hash_file(path)
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
