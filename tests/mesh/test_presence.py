from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.identity import Identity
from p2pchat.mesh.presence import (
    SIGNATURE_CONTEXT,
    PresenceStore,
    Verdict,
    make_record,
    next_version,
    sign,
    signing_bytes,
)
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import PresenceRecord

ALICE = Identity(b"\x0a" * 32)
MALLORY = Identity(b"\x0b" * 32)


def record(version: int = 1, **changes: object) -> PresenceRecord:
    fields: dict[str, Any] = {
        "version": version, "nick": "alice", "status": "avail",
        "status_text": "in the lab", "addresses": ("198.18.0.2:7483",),
    }  # fmt: skip
    fields.update(changes)
    return make_record(ALICE, **fields)


def test_a_signed_record_is_accepted_and_kept() -> None:
    store = PresenceStore()
    assert store.offer(record()).verdict is Verdict.ACCEPTED
    held = store.get(ALICE.public_key)
    assert held is not None and held.nick == "alice" and len(store) == 1


def test_newer_versions_replace_older_ones_and_replays_are_stale() -> None:
    store = PresenceStore()
    first, second = record(1), record(2, status="away")
    assert store.offer(first).verdict is Verdict.ACCEPTED
    assert store.offer(second).verdict is Verdict.ACCEPTED
    assert store.offer(first).verdict is Verdict.STALE  # a replay of the old record
    assert store.offer(second).verdict is Verdict.DUPLICATE
    held = store.get(ALICE.public_key)
    assert held is not None and held.status == "away"


@pytest.mark.parametrize(
    "field", ["nick", "status", "status_text", "addresses", "version", "protocol", "owner"]
)
def test_any_altered_field_breaks_the_signature(field: str) -> None:
    genuine = record(5)
    altered_values: dict[str, Any] = {
        "nick": "mallory", "status": "dnd", "status_text": "pwned",
        "addresses": ("198.18.0.66:1",), "version": 6, "protocol": 2,
        "owner": MALLORY.public_key,
    }  # fmt: skip
    tampered = replace(genuine, **{field: altered_values[field]})
    assert PresenceStore().offer(tampered).verdict is Verdict.FORGED


def test_only_the_owner_can_sign_and_a_forger_cannot_supersede() -> None:
    with pytest.raises(ValueError):
        sign(record(), MALLORY)
    store = PresenceStore()
    store.offer(record(1))
    # Mallory signs a higher version of "Alice's" record with her own key.
    fake = replace(record(1), version=99, status="offline")
    fake = replace(fake, signature=MALLORY.signing_key.sign(signing_bytes(fake)).signature)
    assert store.offer(fake).verdict is Verdict.FORGED
    held = store.get(ALICE.public_key)
    assert held is not None and held.version == 1


def test_same_version_with_other_content_is_a_conflict() -> None:
    store = PresenceStore()
    store.offer(record(3, status="avail"))
    assert store.offer(record(3, status="away")).verdict is Verdict.CONFLICT


@pytest.mark.parametrize(
    "changes",
    [{"status": "sleeping"}, {"nick": "bell\x07"}, {"addresses": ("nowhere",)}],
)
def test_invalid_content_is_refused_even_when_signed(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        record(**changes)  # we never make one...
    sneaky = sign(replace(record(1), **changes), ALICE)  # ...but a peer could
    assert PresenceStore().offer(sneaky).verdict is Verdict.INVALID


@pytest.mark.parametrize("changes", [{"version": 0}, {"version": 2**63}, {"protocol": 0}])
def test_out_of_range_numbers_are_not_a_record_at_all(changes: dict[str, Any]) -> None:
    # Malformed, not invalid: decoding refuses them (bad-message, tests/mesh/test_wire_ranges.py).
    with pytest.raises(ValueError):
        replace(record(1), **changes)


def test_the_store_is_bounded() -> None:
    store = PresenceStore(capacity=3)
    for seed in range(5):
        owner = Identity(bytes([seed + 1]) * 32)
        store.offer(make_record(owner, version=1, nick=f"n{seed}"))
    assert len(store) == 3
    assert {r.nick for r in store.records()} == {"n2", "n3", "n4"}


def test_versions_always_increase() -> None:
    assert next_version(0, 1_000) == 1_000
    assert next_version(1_000, 1_000) == 1_001  # same millisecond
    assert next_version(5_000, 1_000) == 5_001  # the clock went backwards


def test_the_signed_bytes_are_the_documented_array() -> None:
    genuine = record(7)
    expected = SIGNATURE_CONTEXT + msgpack.packb(
        [ALICE.public_key, 7, "alice", "avail", "in the lab", ["198.18.0.2:7483"], 1],
        use_bin_type=True,
    )
    assert signing_bytes(genuine) == expected


def test_records_survive_the_wire() -> None:
    codec = Codec()
    genuine = record(9)
    received = codec.decode(codec.encode(genuine))
    assert received == genuine
    assert PresenceStore().offer(received).verdict is Verdict.ACCEPTED


@given(st.binary(min_size=64, max_size=64), st.integers(1, 2**63 - 1))
def test_random_signatures_never_pass(signature: bytes, version: int) -> None:
    forged = replace(record(1), version=version, signature=signature)
    assert PresenceStore().offer(forged).verdict is Verdict.FORGED
