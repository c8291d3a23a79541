"""Many fresh identities, each with a self-signed presence record, generated once.

Identity ``i`` has the seed ``BLAKE2b(i, person="p2pchat-sybil")``, so the set is the
same every time and a cache file can be checked by regenerating a few of its records.
Signing costs ~60 µs per record on this machine (about 6 s of CPU for 100,000), so the
records are generated in a process pool, once, into a file in the temporary directory
that later tests and benchmark runs reuse (~9.6 MB for 100,000: owner and signature).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import nacl.signing

from tests.adversary import wire

VERSION = 1  # any version >= 1 is valid for a record nobody has seen
LOOKALIKES = ("ann", "Ann", "ann ", "anne", "bob", "Bob", "carol", "dave")
ENTRY = 32 + 64  # owner, signature
CACHE_FORMAT = 1


def nick(index: int) -> str:
    """Names that look like the real people's: every NEARBY list fills with them."""
    return f"{LOOKALIKES[index % len(LOOKALIKES)]}{index // len(LOOKALIKES) or ''}".strip()[:32]


def signing_key(index: int) -> nacl.signing.SigningKey:
    seed = hashlib.blake2b(index.to_bytes(8, "big"), digest_size=32, person=b"p2pchat-sybil")
    return nacl.signing.SigningKey(seed.digest())


def record(
    index: int, signature: bytes | None = None, owner: bytes | None = None
) -> dict[str, Any]:
    """Record ``index``; from the cache's owner and signature when given, else signed now."""
    if signature is None or owner is None:
        return wire.presence_record(signing_key(index), version=VERSION, nick=nick(index))
    return {
        "owner": owner,
        "version": VERSION,
        "nick": nick(index),
        "status": "avail",
        "status_text": "",
        "addresses": [],
        "protocol": wire.VERSION,
        "signature": signature,
    }


def _generate(bounds: tuple[int, int]) -> bytes:
    out = bytearray()
    for index in range(*bounds):
        made = record(index)
        out += made["owner"] + made["signature"]
    return bytes(out)


def cache_path(count: int, folder: Path | None = None) -> Path:
    folder = folder or Path(tempfile.gettempdir()) / "p2pchat-adversary"
    return folder / f"sybil-v{CACHE_FORMAT}-{count}.bin"


def sybil_records(count: int, folder: Path | None = None) -> list[dict[str, Any]]:
    """Records 0 … count-1, from the cache file if it holds them, else generated (and
    cached)."""
    path = cache_path(count, folder)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    if len(raw) != count * ENTRY or not _spot_check(raw, count):
        raw = _generate_all(count)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(raw)
        partial.replace(path)
    return [
        record(i, raw[i * ENTRY + 32 : (i + 1) * ENTRY], raw[i * ENTRY : i * ENTRY + 32])
        for i in range(count)
    ]


def _generate_all(count: int) -> bytes:
    workers = max(1, os.cpu_count() or 1)
    step = -(-count // (workers * 4))
    chunks = [(start, min(count, start + step)) for start in range(0, count, step)]
    # Spawned, not forked: the caller may be a trio run with reader threads.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return b"".join(pool.map(_generate, chunks))


def _spot_check(raw: bytes, count: int) -> bool:
    for index in {0, count // 2, count - 1}:
        if raw[index * ENTRY : (index + 1) * ENTRY] != _generate((index, index + 1)):
            return False
    return True
