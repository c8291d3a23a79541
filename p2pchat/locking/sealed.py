"""A locked profile's key file: the identity seed and the database key, sealed under a
key derived from the passphrase with Argon2id (docs/architecture.md, "A locked
profile").

The file is two ASCII lines: the header and the base64 of

    salt (16) | opslimit (4, big-endian) | memlimit (8, big-endian) | nonce (24) |
    XChaCha20-Poly1305(seed (32) | database key (32))  (80 with its tag)

The header, salt and Argon2id parameters are the cipher's associated data, so none can
be changed without the unsealing failing; parameters outside sane bounds are refused
before any work (a damaged or hostile file must not make us allocate gigabytes).

Two keys, not one: the passphrase seals a random database key rather than being the
database key, so a wrong passphrase is known at once (the tag fails) instead of as a
"damaged" database, and changing it rewrites one small file.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.pwhash

from p2pchat.errors import IdentityError
from p2pchat.identity import LOCKED_KEY_FILE_HEADER

LOCKED_HEADER = LOCKED_KEY_FILE_HEADER

SALT_BYTES = 16
NONCE_BYTES = 24
SEED_BYTES = 32
DATABASE_KEY_BYTES = 32
_PARAMS = struct.Struct(">IQ")
_SEALED_BYTES = SEED_BYTES + DATABASE_KEY_BYTES + 16
_BODY_BYTES = SALT_BYTES + _PARAMS.size + NONCE_BYTES + _SEALED_BYTES

# Argon2id's cost: 3 passes over 256 MiB (libsodium's "moderate"), ~0.5 s on the
# machine of docs/performance.md ("A locked profile"). Stored in each file, so a later
# version may raise them for new files and still open old ones.
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
# What a file may ask for at most: more is damage or an attack, not a setting.
_OPSLIMIT_RANGE = (1, 32)
_MEMLIMIT_RANGE = (8 << 20, 4 << 30)


class WrongPassphrase(IdentityError):
    """The passphrase does not open the key file (or the file was altered)."""


@dataclass(frozen=True)
class Secrets:
    """What a profile keeps secret: its identity seed and, when locked, the key of its
    database (None: the database is a plain file)."""

    seed: bytes = field(repr=False)
    database_key: bytes | None = field(repr=False, default=None)


def is_locked(text: str) -> bool:
    """Whether a key file's text is a locked one (by its first line)."""
    return text.split("\n", 1)[0].strip() == LOCKED_HEADER


def seal(
    secrets: Secrets, passphrase: bytes, *, opslimit: int | None = None, memlimit: int | None = None
) -> str:
    """The key file text of ``secrets`` (which must have a database key) under
    ``passphrase``; Argon2id's cost is OPSLIMIT and MEMLIMIT unless given."""
    opslimit = OPSLIMIT if opslimit is None else opslimit
    memlimit = MEMLIMIT if memlimit is None else memlimit
    if not passphrase:
        raise ValueError("a passphrase cannot be empty")
    if secrets.database_key is None or len(secrets.database_key) != DATABASE_KEY_BYTES:
        raise ValueError("a locked profile has a 32-byte database key")
    if len(secrets.seed) != SEED_BYTES:
        raise ValueError("an identity seed has 32 bytes")
    salt = os.urandom(SALT_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    params = _PARAMS.pack(opslimit, memlimit)
    key = _derive(passphrase, salt, opslimit, memlimit)
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        secrets.seed + secrets.database_key, _associated(salt, params), nonce, key
    )
    body = salt + params + nonce + sealed
    return f"{LOCKED_HEADER}\n{base64.b64encode(body).decode('ascii')}\n"


def unseal(text: str, passphrase: bytes, *, where: str = "the key file") -> Secrets:
    """The secrets in a locked key file; WrongPassphrase if ``passphrase`` does not
    open it, IdentityError if the file is not a sound locked key file."""
    salt, params, nonce, sealed = _parse(text, where)
    opslimit, memlimit = _PARAMS.unpack(params)
    key = _derive(passphrase, salt, opslimit, memlimit)
    try:
        plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed, _associated(salt, params), nonce, key
        )
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase("wrong passphrase") from None
    return Secrets(plain[:SEED_BYTES], plain[SEED_BYTES:])


def _parse(text: str, where: str) -> tuple[bytes, bytes, bytes, bytes]:
    corrupt = IdentityError(
        f"{where} is a locked key file, but damaged; it was left untouched. Restore it "
        "from a backup: without it nothing in this profile can be opened."
    )
    lines = text.split("\n")
    if len(lines) < 2 or lines[0].strip() != LOCKED_HEADER:
        raise corrupt
    try:
        body = base64.b64decode(lines[1].strip(), validate=True)
    except (ValueError, binascii.Error):
        raise corrupt from None
    if len(body) != _BODY_BYTES:
        raise corrupt
    salt = body[:SALT_BYTES]
    params = body[SALT_BYTES : SALT_BYTES + _PARAMS.size]
    nonce = body[SALT_BYTES + _PARAMS.size : SALT_BYTES + _PARAMS.size + NONCE_BYTES]
    sealed = body[SALT_BYTES + _PARAMS.size + NONCE_BYTES :]
    opslimit, memlimit = _PARAMS.unpack(params)
    if not (
        _OPSLIMIT_RANGE[0] <= opslimit <= _OPSLIMIT_RANGE[1]
        and _MEMLIMIT_RANGE[0] <= memlimit <= _MEMLIMIT_RANGE[1]
    ):
        raise corrupt
    return salt, params, nonce, sealed


def _associated(salt: bytes, params: bytes) -> bytes:
    return LOCKED_HEADER.encode("ascii") + salt + params


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=opslimit, memlimit=memlimit)
