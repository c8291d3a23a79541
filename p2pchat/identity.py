"""Ed25519 identities: key files, the peer-id text form, fingerprints and safety numbers.

A peer id *is* the Ed25519 public key; its text form is lowercase base32 without
padding (52 characters). The Noise static key is an X25519 key derived from the
identity seed, so a profile has exactly one secret to protect and back up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.signing

from p2pchat.errors import HandshakeRefused, IdentityError

PUBLIC_KEY_BYTES = 32
PEER_ID_CHARS = 52  # base32 of 32 bytes, padding stripped
KEY_FILE_HEADER = "p2pchat-identity-v1"
# A key file locked with a passphrase (its format: p2pchat.locking.sealed).
LOCKED_KEY_FILE_HEADER = "p2pchat-identity-locked-v1"
# Domain separation: the signature in the handshake covers this prefix and the Noise
# static key, so it can never be mistaken for a signature over anything else.
STATIC_KEY_SIGNATURE_PREFIX = b"p2pchat-noise-static-key:"
_NOISE_STATIC_PERSON = b"p2pchat-x25519"  # blake2b personalisation, <= 16 bytes


def encode_peer_id(public_key: bytes) -> str:
    """Lowercase, unpadded base32 of an Ed25519 public key."""
    if type(public_key) is bytes:
        return _encoded(public_key)
    return _encode(public_key)


def _encode(public_key: bytes) -> str:
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
    return base64.b32encode(public_key).decode("ascii").rstrip("=").lower()


# Every event and log line names peers: base32 in pure Python costs ~20 us a time, and
# the same few peers come up again and again. Bounded, as every cache here.
_encoded = lru_cache(maxsize=1024)(_encode)


def decode_peer_id(text: str) -> bytes:
    """Parse the text form of a peer id; raises ValueError with a readable reason."""
    if type(text) is str and len(text) == PEER_ID_CHARS:
        return _decoded(text)  # every API command names a peer: the same few, again
    return _decode(text)


def _decode(text: str) -> bytes:
    cleaned = text.strip().lower()
    if len(cleaned) != PEER_ID_CHARS:
        raise ValueError(f"a peer id has {PEER_ID_CHARS} characters, this one has {len(cleaned)}")
    try:
        raw = base64.b32decode(cleaned.upper() + "====")
    except binascii.Error as exc:
        raise ValueError("a peer id uses only the letters a-z and digits 2-7") from exc
    if encode_peer_id(raw) != cleaned:  # rejects non-canonical trailing bits
        raise ValueError("this peer id is not in canonical form")
    return raw


_decoded = lru_cache(maxsize=1024)(_decode)


def fingerprint(public_key: bytes) -> str:
    """A short, human-comparable digest of a key: four groups of four base32 characters."""
    digest = hashlib.blake2b(public_key, digest_size=10, person=b"p2pchat-fp").digest()
    text = base64.b32encode(digest).decode("ascii").lower()
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def safety_number(key_a: bytes, key_b: bytes) -> str:
    """The 60-digit number two people compare to verify each other (12 groups of 5).

    Each key contributes 30 digits from an iterated hash of itself; the halves are
    ordered by key so both sides compute the same string.
    """
    halves = sorted((_thirty_digits(key_a), _thirty_digits(key_b)), key=lambda pair: pair[0])
    digits = "".join(half for _, half in halves)
    return " ".join(digits[i : i + 5] for i in range(0, 60, 5))


def _thirty_digits(public_key: bytes) -> tuple[bytes, str]:
    # Iterating the hash makes searching for a key with a colliding number costly.
    digest = public_key
    for _ in range(2048):
        digest = hashlib.blake2b(digest + public_key, person=b"p2pchat-sn").digest()
    groups = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return public_key, "".join(f"{group:05d}" for group in groups)


def verify_static_key_signature(identity_key: bytes, noise_static: bytes, signature: bytes) -> None:
    """Check that ``identity_key`` vouches for ``noise_static``; raise HandshakeRefused if not."""
    try:
        nacl.signing.VerifyKey(identity_key).verify(
            STATIC_KEY_SIGNATURE_PREFIX + noise_static, signature
        )
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError) as exc:
        raise HandshakeRefused(
            "the peer's identity signature over its Noise key is invalid", code="bad-signature"
        ) from exc


@dataclass(frozen=True)
class Identity:
    """A profile's long-term key pair, plus the Noise static key derived from it."""

    seed: bytes = field(repr=False)  # the secret: never in logs or tracebacks

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise IdentityError("an identity seed has 32 bytes")

    @classmethod
    def generate(cls) -> Identity:
        return cls(os.urandom(32))

    # Cached: the handshake needs these on every connection.
    @cached_property
    def signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @cached_property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def peer_id(self) -> str:
        return encode_peer_id(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @cached_property
    def noise_static_private(self) -> bytes:
        return hashlib.blake2b(self.seed, digest_size=32, person=_NOISE_STATIC_PERSON).digest()

    @cached_property
    def noise_static_public(self) -> bytes:
        return nacl.bindings.crypto_scalarmult_base(self.noise_static_private)

    @cached_property
    def static_key_signature(self) -> bytes:
        """The signature that binds our Noise static key to this identity."""
        message = STATIC_KEY_SIGNATURE_PREFIX + self.noise_static_public
        return self.signing_key.sign(message).signature


def plain_key_text(seed: bytes) -> str:
    """The text of an unlocked key file holding ``seed``."""
    return f"{KEY_FILE_HEADER}\n{base64.b64encode(seed).decode('ascii')}\n"


@dataclass(frozen=True)
class LockedKey:
    """A key file locked with a passphrase (p2pchat.locking.sealed): its text, to be
    unsealed once the passphrase is known."""

    path: Path
    text: str = field(repr=False)


def load_or_create_identity(path: Path) -> tuple[Identity, bool]:
    """Read the key file at ``path``, creating it (mode 0600) if it does not exist.

    Returns the identity and whether it was just created. A file that exists but
    cannot be read or parsed raises IdentityError and is left untouched; so does a
    locked one (see :func:`load_or_create_key`).
    """
    key, created = load_or_create_key(path)
    if isinstance(key, LockedKey):
        raise IdentityError(f"the identity key file {path} is locked with a passphrase")
    return key, created


def load_or_create_key(path: Path) -> tuple[Identity | LockedKey, bool]:
    """:func:`load_or_create_identity`, but a locked key file is an answer: its text."""
    try:
        return _read_key(path), False
    except FileNotFoundError:
        pass
    identity = Identity.generate()
    text = plain_key_text(identity.seed)
    try:
        # O_EXCL: never overwrite a key file that appeared meanwhile.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path), False
    except OSError as exc:
        raise IdentityError(f"cannot create the identity key file {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        # A full disk: an empty or partial key file would lock the profile out for good.
        path.unlink(missing_ok=True)
        raise IdentityError(f"cannot create the identity key file {path}: {exc.strerror}") from exc
    return identity, True


def _read_key(path: Path) -> Identity | LockedKey:
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IdentityError(f"cannot read the identity key file {path}: {exc.strerror}") from exc
    if stat.S_IMODE(mode) & 0o077:
        # Tighten silently: a readable key is a leak, but refusing would lock the user out.
        os.chmod(path, 0o600)
    corrupt = IdentityError(
        f"the identity key file {path} is corrupt; it was left untouched. Restore it from a "
        "backup, or move it away to create a new identity (contacts will see a new peer id)."
    )
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise corrupt from exc
    if text.split("\n", 1)[0].strip() == LOCKED_KEY_FILE_HEADER:
        return LockedKey(path, text)
    try:
        header, encoded = text.split("\n")[:2]
        seed = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise corrupt from exc
    if header != KEY_FILE_HEADER or len(seed) != 32:
        raise corrupt
    return Identity(seed)
