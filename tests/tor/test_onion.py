"""Onion addresses (p2pchat/tor/onion.py): ours derived from a seed, strict checks of
one someone gives us. That tor publishes our key under the address we derive is checked
on the private network (test_tor_process.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.tor.onion import is_onion, onion_address, parse_onion, tor_key


@given(st.binary(min_size=32, max_size=32))
def test_an_address_we_make_parses_back_to_its_key(seed: bytes) -> None:
    address = onion_address(seed)
    assert len(address) == 56 + len(".onion") and is_onion(address)
    assert address == address.lower()
    key = parse_onion(address)
    assert len(key) == 32
    assert parse_onion(address.upper()) == key
    assert parse_onion("www." + address) == key


def test_tor_key_is_the_clamped_expanded_secret() -> None:
    key = tor_key(bytes(32))
    assert key.startswith("ED25519-V3:")
    import base64

    raw = base64.b64decode(key.removeprefix("ED25519-V3:"))
    assert len(raw) == 64 and raw[0] & 7 == 0 and raw[31] & 128 == 0 and raw[31] & 64
    with pytest.raises(ValueError, match="32 bytes"):
        tor_key(b"short")


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda a: a[:-7] + ".com", "not an onion address"),
        (lambda a: a[1:], "56 characters"),
        (lambda a: "1" + a[1:], "characters base32 does not use"),
        (lambda a: ("b" if a[0] != "b" else "c") + a[1:], "mistyped"),
        (lambda a: "facebookcorewwwi.onion", "only v3"),
    ],
)
def test_a_wrong_address_says_what_is_wrong(mangle: object, reason: str) -> None:
    address = onion_address(os.urandom(32))
    assert callable(mangle)
    with pytest.raises(ValueError, match=reason):
        parse_onion(mangle(address))


def test_a_wrong_version_is_refused() -> None:
    import base64

    raw = bytearray(base64.b32decode(onion_address(bytes(32))[:56].upper()))
    raw[34] = 2
    with pytest.raises(ValueError, match="version 2"):
        parse_onion(base64.b32encode(bytes(raw)).decode().lower() + ".onion")
