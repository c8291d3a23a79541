"""The locked key file (p2pchat.locking.sealed): only the passphrase opens it, and no
change to any byte of it goes unnoticed."""

from __future__ import annotations

import base64
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.errors import IdentityError
from p2pchat.identity import KEY_FILE_HEADER
from p2pchat.locking.sealed import (
    LOCKED_HEADER,
    MEMLIMIT,
    OPSLIMIT,
    Secrets,
    WrongPassphrase,
    is_locked,
    seal,
    unseal,
)

SECRETS = Secrets(bytes(range(32)), bytes(range(32, 64)))


def test_the_passphrase_opens_it_and_nothing_else() -> None:
    text = seal(SECRETS, b"correct horse battery")
    assert is_locked(text) and text.startswith(LOCKED_HEADER + "\n")
    assert unseal(text, b"correct horse battery") == SECRETS
    for wrong in (b"correct horse batter", b"Correct horse battery", b"x"):
        with pytest.raises(WrongPassphrase):
            unseal(text, wrong)
    # Neither secret appears in the file, raw or in base64.
    body = base64.b64decode(text.split("\n")[1])
    for secret in (SECRETS.seed, SECRETS.database_key):
        assert secret is not None
        assert secret not in body and base64.b64encode(secret).decode() not in text


def test_each_file_is_salted_apart() -> None:
    first, second = seal(SECRETS, b"same words"), seal(SECRETS, b"same words")
    assert first != second  # salt and nonce fresh each time
    assert unseal(first, b"same words") == unseal(second, b"same words")


def test_the_default_cost_is_argon2id_moderate() -> None:
    # The figures docs/architecture.md states (the autouse fixture lowers the module's
    # values for speed; the defaults of the library are what a user's file gets).
    import nacl.pwhash

    assert (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE) == (
        3,
        256 << 20,
    )
    assert (OPSLIMIT, MEMLIMIT) == (3, 256 << 20)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_changed_byte_is_refused(data: st.DataObject) -> None:
    text = seal(SECRETS, b"correct horse battery")
    header, encoded = text.split("\n")[:2]
    body = bytearray(base64.b64decode(encoded))
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] ^= data.draw(st.integers(1, 255))
    changed = f"{header}\n{base64.b64encode(bytes(body)).decode()}\n"
    with pytest.raises(IdentityError):  # WrongPassphrase is one; a bad cost another
        unseal(changed, b"correct horse battery")


@pytest.mark.parametrize(
    "damage",
    ["truncated", "empty body", "not base64", "extra bytes", "header only", "plain header"],
)
def test_a_damaged_file_is_a_clear_refusal(damage: str) -> None:
    text = seal(SECRETS, b"correct horse battery")
    header, encoded = text.split("\n")[:2]
    damaged = {
        "truncated": f"{header}\n{encoded[: len(encoded) // 2]}\n",
        "empty body": f"{header}\n\n",
        "not base64": f"{header}\n{encoded[:-4]}!!!!\n",
        "extra bytes": f"{header}\n{base64.b64encode(base64.b64decode(encoded) + b'x').decode()}\n",
        "header only": f"{header}\n",
        "plain header": f"{KEY_FILE_HEADER}\n{encoded}\n",
    }[damage]
    with pytest.raises(IdentityError) as caught:
        unseal(damaged, b"correct horse battery")
    assert not isinstance(caught.value, WrongPassphrase)
    assert "damaged" in str(caught.value) and "left untouched" in str(caught.value)


@pytest.mark.parametrize("ops, mem", [(0, 8 << 20), (33, 8 << 20), (1, 1 << 20), (1, 1 << 40)])
def test_a_cost_out_of_bounds_is_refused_before_any_work(ops: int, mem: int) -> None:
    # A hostile file asking for 1 TiB of memory must not get it: refused as damaged.
    text = seal(SECRETS, b"correct horse battery")
    header, encoded = text.split("\n")[:2]
    body = bytearray(base64.b64decode(encoded))
    body[16:28] = struct.pack(">IQ", ops, mem)
    changed = f"{header}\n{base64.b64encode(bytes(body)).decode()}\n"
    with pytest.raises(IdentityError, match="damaged"):
        unseal(changed, b"correct horse battery")


def test_seal_refuses_what_cannot_be_a_locked_profile() -> None:
    with pytest.raises(ValueError):
        seal(SECRETS, b"")
    with pytest.raises(ValueError):
        seal(Secrets(os.urandom(32), None), b"words")
    with pytest.raises(ValueError):
        seal(Secrets(os.urandom(31), os.urandom(32)), b"words")
