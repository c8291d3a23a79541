"""The test vectors of docs/protocol.md, read from the spec itself so the two cannot drift:
the signed presence record (§11), the digest summary and the bucket hashes (§12.3)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

import msgpack

from p2pchat.identity import Identity
from p2pchat.mesh.buckets import BUCKETS, bucket_hashes, in_mask, mask_of
from p2pchat.mesh.membership import Membership, summary_of
from p2pchat.mesh.presence import (
    SIGNATURE_CONTEXT,
    make_record,
    sign,
    signed_by_owner,
    signing_bytes,
)
from p2pchat.wire.codec import Codec

SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def vector_after(marker: str) -> dict[str, str]:
    """The ``key: value`` lines of the first fenced block after ``marker`` in the spec."""
    text = SPEC.read_text(encoding="utf-8")
    start = text.index(marker)
    match = re.search(r"```\n(.*?)\n\s*```", text[start:], re.DOTALL)
    assert match is not None, f"no vector after {marker!r}"
    pairs = (line.strip().split(":", 1) for line in match.group(1).splitlines())
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_signed_presence_record_vector() -> None:
    vector = vector_after("## 11. Presence records")
    identity = Identity(bytes(range(32)))
    record = make_record(
        identity,
        version=int(vector["version"]),
        nick=vector["nick"],
        status=vector["status"],
        status_text=vector["status_text"],
        addresses=tuple(vector["addresses"].split(", ")),
        protocol=int(vector["protocol"]),
    )
    assert record.owner.hex() == vector["owner"]
    assert signing_bytes(record).hex() == vector["signed bytes"]
    assert record.signature.hex() == vector["signature"]
    # What a receiver gets is a map inside a message; it re-encodes and still agrees.
    codec = Codec()
    assert signed_by_owner(codec.decode(codec.encode(record)))


def test_the_unlisted_record_vector() -> None:
    vector = vector_after("### 11.1 Unlisted records")
    record = make_record(
        Identity(bytes(range(32))),
        version=1_700_000_000_000,
        nick="alice",
        status="away",
        addresses=("198.18.0.2:7483",),
        unlisted=True,
    )
    assert signing_bytes(record).hex() == vector["signed bytes"]
    assert record.signature.hex() == vector["signature"]
    codec = Codec()
    assert signed_by_owner(codec.decode(codec.encode(record)))


def test_a_signature_over_a_longer_encoding_does_not_verify() -> None:
    identity = Identity(bytes(range(32)))
    record = make_record(identity, version=7, nick="bob")
    canonical = signing_bytes(record)
    assert canonical == SIGNATURE_CONTEXT + msgpack.packb(
        [record.owner, 7, "bob", "avail", "", [], 1], use_bin_type=True
    )
    # The same values, the version as uint 64 and the nick as str 8: valid msgpack,
    # equal when decoded, but not the bytes the receiver rebuilds.
    longer = canonical.replace(b"\x07\xa3bob", b"\xcf" + (7).to_bytes(8, "big") + b"\xd9\x03bob")
    assert msgpack.unpackb(longer[len(SIGNATURE_CONTEXT) :]) == msgpack.unpackb(
        canonical[len(SIGNATURE_CONTEXT) :]
    )
    signature = identity.signing_key.sign(longer).signature
    assert not signed_by_owner(replace(record, signature=signature))
    assert signed_by_owner(sign(record, identity))


ENTRIES = [
    (b"\x01" * 32, 1, False),
    (b"\x02" * 32, 1_700_000_000_000, True),
    (b"\xff" * 32, 2**63 - 1, False),
]


def test_the_digest_summary_vector() -> None:
    vector = vector_after("### 12.3 Dissemination")
    assert summary_of(ENTRIES).hex() == vector["summary"]
    assert summary_of(reversed(ENTRIES)).hex() == vector["summary"], "sorted by owner"
    assert summary_of([]).hex() == vector["no entries"]
    cut = hashlib.blake2b(person=b"p2pchat-digest")
    for owner, version, dead in ENTRIES:
        cut.update(owner + version.to_bytes(8, "big") + bytes([dead]))
    assert cut.digest()[:16].hex() == vector["wrong (64-byte cut)"] != vector["summary"]


def test_a_membership_summarises_what_it_holds() -> None:
    own = make_record(Identity(b"\x01" * 32), version=3, nick="me")
    members = Membership(own)
    assert members.summary() == summary_of([(own.owner, 3, False)])
    other = make_record(Identity(b"\x02" * 32), version=5, nick="other")
    members.offer_record(other)
    expected = summary_of([(own.owner, 3, False), (other.owner, 5, False)])
    assert members.summary() == expected


def test_the_bucket_hash_vector() -> None:
    vector = vector_after("**Buckets.**")
    hashes = bucket_hashes(ENTRIES)
    assert len(hashes) == BUCKETS * 8
    assert hashes[:8].hex() == vector["bucket 0"]
    assert hashes[8:16].hex() == vector["bucket 1 (empty)"]
    assert hashes[63 * 8 :].hex() == vector["bucket 63"]
    assert bucket_hashes(reversed(ENTRIES)) == hashes, "sorted by owner"


def test_a_mask_covers_exactly_its_buckets() -> None:
    mask = mask_of([0, 9, 63])
    assert mask == bytes([0b1, 0b10, 0, 0, 0, 0, 0, 0b10000000])
    assert in_mask(mask, b"\x03" + bytes(31)) and not in_mask(mask, b"\x04" + bytes(31))
    assert in_mask(mask, b"\x24" + bytes(31)), "0x24 >> 2 = 9"
    assert in_mask(b"", b"\x04" + bytes(31)), "an empty mask covers all"
