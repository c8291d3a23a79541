from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pchat.errors import DecryptionError, LocalProtocolError, RemoteProtocolError
from p2pchat.noise import (
    HandshakeState,
    UnsupportedProtocol,
    all_pattern_names,
    parse_protocol_name,
)
from p2pchat.noise.crypto import public_key
from p2pchat.noise.patterns import pattern

SUITE = "25519_ChaChaPoly_BLAKE2b"


def modifier_sets(name: str) -> list[str]:
    count = len(pattern(name).messages)
    return ["", "psk0", f"psk{count}", "psk0+psk1" if count >= 1 else "psk0"]


CASES = [(name, mods) for name in all_pattern_names() for mods in modifier_sets(name)]


def build(name: str, mods: str) -> tuple[HandshakeState, HandshakeState]:
    shape = pattern(name, tuple(mods.split("+")) if mods else ())
    protocol = f"Noise_{name}{mods}_{SUITE}"
    init_s, resp_s = os.urandom(32), os.urandom(32)
    psks = [os.urandom(32) for _ in range(shape.psk_count)]
    init_needs_rs = "s" in shape.responder_pre
    resp_needs_rs = "s" in shape.initiator_pre
    initiator = HandshakeState(
        protocol,
        initiator=True,
        prologue=b"prologue",
        s=init_s,
        rs=public_key(resp_s) if init_needs_rs else None,
        psks=psks,
    )
    responder = HandshakeState(
        protocol,
        initiator=False,
        prologue=b"prologue",
        s=resp_s,
        rs=public_key(init_s) if resp_needs_rs else None,
        psks=psks,
    )
    return initiator, responder


@pytest.mark.parametrize(("name", "mods"), CASES)
def test_every_pattern_completes_and_interoperates(name: str, mods: str) -> None:
    initiator, responder = build(name, mods)
    step = 0
    while not initiator.is_finished:
        sender, receiver = (
            (initiator, responder) if initiator.is_my_turn else (responder, initiator)
        )
        payload = b"payload %d" % step
        assert receiver.read_message(sender.write_message(payload)) == payload
        step += 1
    assert responder.is_finished
    assert initiator.handshake_hash == responder.handshake_hash
    i_send, i_recv = initiator.split()
    r_recv, r_send = responder.split()
    assert r_recv.decrypt_with_ad(b"", i_send.encrypt_with_ad(b"", b"to responder")) == (
        b"to responder"
    )
    if not initiator.pattern.one_way:
        assert i_recv.decrypt_with_ad(b"", r_send.encrypt_with_ad(b"", b"back")) == b"back"


def test_all_deferred_and_fundamental_patterns_are_in_the_table() -> None:
    names = set(all_pattern_names())
    fundamental = {"N", "K", "X", "NN", "NK", "NX", "KN", "KK", "KX", "XN", "XK", "XX", "IN",
                   "IK", "IX"}  # fmt: skip
    deferred = {"NK1", "NX1", "X1N", "X1K", "XK1", "X1K1", "X1X", "XX1", "X1X1", "K1N", "K1K",
                "KK1", "K1K1", "K1X", "KX1", "K1X1", "I1N", "I1K", "IK1", "I1K1", "I1X", "IX1",
                "I1X1"}  # fmt: skip
    assert fundamental | deferred == names


def test_psk_modifiers_are_applied_by_rule() -> None:
    shape = pattern("XX", ("psk0", "psk3"))
    assert shape.messages[0] == ("psk", "e")
    assert shape.messages[2] == ("s", "se", "psk")
    assert shape.psk_count == 2
    with pytest.raises(UnsupportedProtocol):
        pattern("XX", ("psk4",))
    with pytest.raises(UnsupportedProtocol):
        pattern("XX", ("fallback",))


@pytest.mark.parametrize(
    "name",
    [
        "Noise_XX_448_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_AESGCM_BLAKE2b",
        "Noise_XX_25519_ChaChaPoly_SHA256",
        "Noise_ZZ_25519_ChaChaPoly_BLAKE2b",
        "NoiseXX",
    ],
)
def test_unsupported_protocols_are_named(name: str) -> None:
    with pytest.raises(UnsupportedProtocol):
        HandshakeState(name, initiator=True, s=os.urandom(32))


def test_wrong_turn_and_finished_state_are_local_errors() -> None:
    initiator, responder = build("XX", "")
    with pytest.raises(LocalProtocolError):
        responder.write_message(b"")
    with pytest.raises(LocalProtocolError):
        initiator.read_message(b"x" * 48)
    with pytest.raises(LocalProtocolError):
        initiator.split()
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    responder.read_message(initiator.write_message())
    with pytest.raises(LocalProtocolError):
        initiator.write_message()


def test_missing_keys_and_psks_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError, match="pre-shared"):
        HandshakeState(f"Noise_NNpsk0_{SUITE}", initiator=True)
    with pytest.raises(LocalProtocolError, match="in advance"):
        HandshakeState(f"Noise_NK_{SUITE}", initiator=True)
    with pytest.raises(LocalProtocolError):
        HandshakeState(f"Noise_NNpsk0_{SUITE}", initiator=True, psks=[b"short"])


def test_truncated_and_flipped_handshake_messages_are_remote_errors() -> None:
    mutations: list[Callable[[bytes], bytes]] = [
        lambda m: m[:-1],
        lambda m: m[:10],
        lambda m: m[:-5] + bytes(5),
    ]
    for mutate in mutations:
        initiator, responder = build("XX", "")
        responder.read_message(initiator.write_message())
        message = responder.write_message(b"secret payload")
        with pytest.raises(RemoteProtocolError):
            initiator.read_message(mutate(message))
        with pytest.raises(LocalProtocolError, match="already failed"):
            initiator.read_message(message)


def test_low_order_public_key_is_refused() -> None:
    initiator, responder = build("XX", "")
    initiator.write_message()
    responder.read_message(bytes(32))  # message 1 is just e: nothing to check yet
    with pytest.raises(RemoteProtocolError, match="X25519"):
        responder.write_message()  # ee with the all-zero point has no shared secret


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.integers(0, 1))
def test_arbitrary_bytes_only_raise_remote_errors(data: bytes, stage: int) -> None:
    initiator, responder = build("XX", "")
    if stage == 0:
        target = responder
    else:
        responder.read_message(initiator.write_message())
        target = initiator
    with contextlib.suppress(RemoteProtocolError):
        target.read_message(data)


XXPSK3 = f"Noise_XXpsk3_{SUITE}"


def xxpsk3(
    initiator_psk: bytes, responder_psk: bytes | None
) -> tuple[HandshakeState, HandshakeState]:
    """Two XXpsk3 sides; the responder's psk is deferred when None."""
    initiator = HandshakeState(XXPSK3, initiator=True, s=os.urandom(32), psks=[initiator_psk])
    responder = HandshakeState(
        XXPSK3,
        initiator=False,
        s=os.urandom(32),
        psks=[responder_psk] if responder_psk is not None else [],
        defer_psks=responder_psk is None,
    )
    return initiator, responder


def assert_transport_works(initiator: HandshakeState, responder: HandshakeState) -> None:
    assert initiator.handshake_hash == responder.handshake_hash
    i_send, i_recv = initiator.split()
    r_recv, r_send = responder.split()
    for i in range(3):
        assert r_recv.decrypt_with_ad(b"", i_send.encrypt_with_ad(b"", b"hi %d" % i)) == (
            b"hi %d" % i
        )
        assert i_recv.decrypt_with_ad(b"", r_send.encrypt_with_ad(b"", b"yo %d" % i)) == (
            b"yo %d" % i
        )


def test_xxpsk3_with_the_same_psk_completes_and_interoperates() -> None:
    psk = os.urandom(32)
    initiator, responder = xxpsk3(psk, psk)
    assert responder.read_message(initiator.write_message(b"one")) == b"one"
    assert initiator.read_message(responder.write_message(b"two")) == b"two"
    assert responder.read_message(initiator.write_message(b"three")) == b"three"
    assert_transport_works(initiator, responder)


def test_xxpsk3_with_different_psks_fails_at_message_3_and_splits_nothing() -> None:
    initiator, responder = xxpsk3(os.urandom(32), os.urandom(32))
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    with pytest.raises(DecryptionError):
        responder.read_message(initiator.write_message(b"three"))
    assert not responder.is_finished
    with pytest.raises(LocalProtocolError, match="not finished"):
        responder.split()


def test_in_psk_mode_the_e_token_keys_the_cipher() -> None:
    # Before ee there is no key in NN, so message 1's payload goes in clear; in psk mode
    # MixKey(e) keys the cipher at once and the payload gets a tag (§9.2).
    payload = b"payload"
    plain = HandshakeState(f"Noise_NN_{SUITE}", initiator=True).write_message(payload)
    with_psk = HandshakeState(f"Noise_NNpsk2_{SUITE}", initiator=True, psks=[os.urandom(32)])
    message = with_psk.write_message(payload)
    assert plain[32:] == payload
    assert len(message) == 32 + len(payload) + 16 and payload not in message


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_psk_of_the_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(LocalProtocolError, match="exactly 32 bytes"):
        HandshakeState(XXPSK3, initiator=True, s=os.urandom(32), psks=[bytes(size)])
    _, responder = xxpsk3(os.urandom(32), None)
    with pytest.raises(LocalProtocolError, match="exactly 32 bytes"):
        responder.set_psks([bytes(size)])


def test_the_number_of_psks_must_match_the_pattern() -> None:
    psk = os.urandom(32)
    with pytest.raises(LocalProtocolError, match="needs 2"):
        HandshakeState(f"Noise_XXpsk0+psk3_{SUITE}", initiator=True, psks=[psk])
    with pytest.raises(LocalProtocolError, match="needs 0"):
        HandshakeState(f"Noise_XX_{SUITE}", initiator=True, psks=[psk])
    with pytest.raises(LocalProtocolError, match="set_psks"):
        HandshakeState(XXPSK3, initiator=False)  # no psk, and not deferred either


def test_the_responder_can_set_its_psk_after_reading_message_1() -> None:
    psk = os.urandom(32)
    initiator, responder = xxpsk3(psk, None)
    responder.read_message(initiator.write_message(b"which psk: 7"))
    initiator.read_message(responder.write_message())
    message_3 = initiator.write_message(b"three")
    with pytest.raises(LocalProtocolError, match="set_psks"):
        responder.read_message(message_3)  # refused before touching any state...
    responder.set_psks([psk])
    assert responder.read_message(message_3) == b"three"  # ...so it can be retried
    assert_transport_works(initiator, responder)
    with pytest.raises(LocalProtocolError, match="already used"):
        responder.set_psks([psk])


def test_a_deferred_psk0_is_needed_before_message_1_is_read() -> None:
    psk = os.urandom(32)
    protocol = f"Noise_NNpsk0_{SUITE}"
    initiator = HandshakeState(protocol, initiator=True, psks=[psk])
    responder = HandshakeState(protocol, initiator=False, defer_psks=True)
    message_1 = initiator.write_message(b"one")
    with pytest.raises(LocalProtocolError, match="set_psks"):
        responder.read_message(message_1)
    responder.set_psks([psk])
    assert responder.read_message(message_1) == b"one"
    assert initiator.read_message(responder.write_message(b"two")) == b"two"
    assert_transport_works(initiator, responder)


def test_multiple_psk_modifiers_parse_in_order() -> None:
    parsed = parse_protocol_name(f"Noise_XXpsk0+psk3_{SUITE}")
    assert parsed.pattern.messages == (("psk", "e"), ("e", "ee", "s", "es"), ("s", "se", "psk"))
    assert parse_protocol_name(f"Noise_NNpsk2_{SUITE}").pattern.messages == (
        ("e",),
        ("e", "ee", "psk"),
    )
    for bad in ("psk01", "psk", "psk-1", "PSK0"):
        with pytest.raises(UnsupportedProtocol):
            parse_protocol_name(f"Noise_XX{bad}_{SUITE}")
