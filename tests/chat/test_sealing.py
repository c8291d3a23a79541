"""Sealed envelopes: relays can check them but neither read, alter nor forge them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from p2pchat.chat.sealing import MAX_CONTENT, _signed_bytes, check_signature, seal, unseal
from p2pchat.errors import RemoteProtocolError
from p2pchat.identity import Identity
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import ChatMessage, Envelopes

ALICE, BOB, MALLORY = (Identity(bytes([n]) * 32) for n in (1, 2, 3))
CONTENT = Codec().encode(ChatMessage(msg_id=bytes(16), clock=1, time=5, text="for bob only"))


def test_round_trip_and_wire_encoding() -> None:
    envelope = seal(ALICE, BOB.public_key, b"e" * 16, 10**12, CONTENT)
    check_signature(envelope)  # what a relay does
    assert b"for bob only" not in envelope.box
    codec = Codec()
    again = codec.decode(codec.encode(Envelopes((envelope,)))).envelopes[0]
    assert again == envelope
    assert unseal(BOB, again) == CONTENT


def test_only_the_recipient_can_open_it() -> None:
    envelope = seal(ALICE, BOB.public_key, b"e" * 16, 10**12, CONTENT)
    with pytest.raises(RemoteProtocolError, match="someone else"):
        unseal(MALLORY, envelope)
    # even pretending to be the recipient does not help: the box is for Bob's key
    with pytest.raises(RemoteProtocolError):
        unseal(MALLORY, dataclasses.replace(envelope, recipient=MALLORY.public_key))


@pytest.mark.parametrize("field", ["envelope_id", "recipient", "expires", "box", "signature"])
def test_any_change_breaks_the_signature(field: str) -> None:
    envelope = seal(ALICE, BOB.public_key, b"e" * 16, 10**12, CONTENT)
    value = getattr(envelope, field)
    changed: Any = value + 1 if isinstance(value, int) else bytes([value[0] ^ 1]) + value[1:]
    tampered = dataclasses.replace(envelope, **{field: changed})
    with pytest.raises(RemoteProtocolError):
        check_signature(tampered)


def test_a_resigned_envelope_is_refused_by_the_recipient() -> None:
    """Mallory cannot take Alice's box and sign it as her own: the sender inside the box
    is Alice, so Bob refuses the envelope."""
    original = seal(ALICE, BOB.public_key, b"e" * 16, 10**12, CONTENT)
    mallorys = seal(MALLORY, BOB.public_key, b"e" * 16, 10**12, b"x")
    forged = dataclasses.replace(mallorys, box=original.box)
    forged = dataclasses.replace(
        forged, signature=MALLORY.signing_key.sign(_signed_bytes(forged)).signature
    )
    check_signature(forged)  # a valid signature by Mallory...
    with pytest.raises(RemoteProtocolError, match="someone other than its signer"):
        unseal(BOB, forged)  # ...over content Mallory did not seal


def test_limits() -> None:
    with pytest.raises(ValueError):
        seal(ALICE, BOB.public_key, b"e" * 16, 10**12, bytes(MAX_CONTENT + 1))
    with pytest.raises(ValueError):
        seal(ALICE, bytes(32), b"e" * 16, 10**12, CONTENT)  # not a usable key
    seal(ALICE, BOB.public_key, b"e" * 16, 10**12, bytes(MAX_CONTENT))


def test_the_longest_message_fits_in_an_envelope() -> None:
    longest = ChatMessage(msg_id=bytes(16), clock=2**63 - 1, time=2**63 - 1, text="👋" * 4096)
    envelope = seal(ALICE, BOB.public_key, b"e" * 16, 10**12, Codec().encode(longest))
    wire = Codec().encode(Envelopes((envelope,)))
    assert Codec().decode(wire).envelopes[0] == envelope
    assert Codec().decode(unseal(BOB, envelope)) == longest


@pytest.mark.parametrize(("clock", "time"), [(2**63, 0), (0, 2**63), (-1, 0), (0, -5)])
def test_out_of_range_clocks_and_times_are_malformed(clock: int, time: int) -> None:
    with pytest.raises(ValueError):
        ChatMessage(msg_id=bytes(16), clock=clock, time=time, text="x")
