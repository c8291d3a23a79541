"""Onion addresses (Tor's v3 onion services), pure: the address of a key of ours, the
key tor wants for it, and a strict check of an address someone gave us.

A v3 address is the base32 of the service's Ed25519 public key, a two-byte checksum and
the version (3), followed by ``.onion``; the checksum is the first two bytes of
SHA3-256(".onion checksum" ‖ key ‖ version). Tor takes our key as the 64-byte expanded
Ed25519 secret (SHA-512 of the seed, clamped), base64, after ``ED25519-V3:``.
"""

from __future__ import annotations

import base64
import hashlib

import nacl.bindings
import nacl.signing

from p2pchat.addresses import parse_host_port

VERSION = 3
SUFFIX = ".onion"
ADDRESS_CHARS = 56  # base32 of 32 + 2 + 1 bytes
SEED_BYTES = 32


def _checksum(public_key: bytes) -> bytes:
    return hashlib.sha3_256(b".onion checksum" + public_key + bytes([VERSION])).digest()[:2]


def onion_address(seed: bytes) -> str:
    """The address (``….onion``) of the onion service whose key comes from ``seed``."""
    public_key = bytes(nacl.signing.SigningKey(seed).verify_key)
    raw = public_key + _checksum(public_key) + bytes([VERSION])
    return base64.b32encode(raw).decode().lower() + SUFFIX


def tor_key(seed: bytes) -> str:
    """The key as ADD_ONION takes it: ``ED25519-V3:`` and the expanded secret key."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"an onion key seed is {SEED_BYTES} bytes")
    expanded = bytearray(nacl.bindings.crypto_hash_sha512(seed))
    expanded[0] &= 248
    expanded[31] &= 127
    expanded[31] |= 64
    return "ED25519-V3:" + base64.b64encode(bytes(expanded)).decode()


def is_onion(host: str) -> bool:
    """Whether ``host`` names an onion service (checked or not: see parse_onion)."""
    return host.lower().endswith(SUFFIX)


def is_onion_address(address: str) -> bool:
    """Whether ``address`` (``host:port``) is an onion service's; False if malformed."""
    try:
        return is_onion(parse_host_port(address)[0])
    except ValueError:
        return False


def parse_onion(host: str) -> bytes:
    """The public key of the v3 onion address ``host``; ValueError saying what is wrong
    (a mistyped or truncated address fails its checksum)."""
    name = host.lower()
    if not name.endswith(SUFFIX):
        raise ValueError(f"{host!r} is not an onion address (it ends in .onion)")
    label = name[: -len(SUFFIX)].rpartition(".")[2]  # a subdomain is allowed, and ignored
    if len(label) != ADDRESS_CHARS:
        raise ValueError(f"an onion address has {ADDRESS_CHARS} characters before .onion, this "
                         f"one {len(label)}: only v3 onion services are supported")  # fmt: skip
    try:
        raw = base64.b32decode(label.upper())
    except ValueError:
        raise ValueError("this onion address has characters base32 does not use") from None
    public_key, checksum, version = raw[:32], raw[32:34], raw[34]
    if version != VERSION:
        raise ValueError(f"this onion address is of version {version}: only 3 is supported")
    if checksum != _checksum(public_key):
        raise ValueError("this onion address is mistyped (its checksum does not match)")
    return public_key
