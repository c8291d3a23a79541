"""The 25519_ChaChaPoly_BLAKE2b primitives (Noise spec §4, §12) on PyNaCl and the stdlib."""

from __future__ import annotations

import hashlib
import hmac
import os

import nacl.bindings
import nacl.exceptions
from nacl._sodium import ffi, lib  # type: ignore[import-not-found]  # PyNaCl's own libsodium binding, for in-place AEAD

from p2pchat.errors import DecryptionError

DHLEN = 32
HASHLEN = 64
BLOCKLEN = 128
TAG_BYTES = 16
MAX_MESSAGE_BYTES = 65535
MAX_NONCE = 2**64 - 1  # reserved by §5.1: never used for encryption

_aead_encrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
_aead_decrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt
_scalarmult = nacl.bindings.crypto_scalarmult
_scalarmult_base = nacl.bindings.crypto_scalarmult_base


def public_key(private_key: bytes) -> bytes:
    return _scalarmult_base(private_key)


def generate_private_key() -> bytes:
    return os.urandom(DHLEN)


def dh(private_key: bytes, public: bytes) -> bytes:
    """X25519. A low-order public key yields an all-zero secret, which libsodium refuses."""
    try:
        return _scalarmult(private_key, public)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.TypeError, ValueError) as exc:
        raise DecryptionError("invalid X25519 public key from the peer") from exc


def _nonce(n: int) -> bytes:
    # ChaChaPoly (§12.3): 32 bits of zeros followed by the 64-bit little-endian counter.
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


def encrypt(key: bytes, n: int, ad: bytes, plaintext: bytes) -> bytes:
    return _aead_encrypt(plaintext, ad, _nonce(n), key)


def decrypt(key: bytes, n: int, ad: bytes, ciphertext: bytes) -> bytes:
    try:
        return _aead_decrypt(ciphertext, ad, _nonce(n), key)
    except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError, ValueError) as exc:
        raise DecryptionError() from exc


def encrypt_in_place(
    key: bytes, n: int, ad: bytes, buffer: bytearray, start: int, size: int
) -> None:
    """Encrypt ``buffer[start:start+size]`` in place, writing the tag after it.

    The transport hot path: PyNaCl's wrapper allocates, zeroes and copies its output,
    which costs as much as the cipher itself for 64 KiB messages. libsodium allows the
    ciphertext to overwrite the plaintext exactly.
    """
    if len(buffer) < start + size + TAG_BYTES:
        raise ValueError("no room for the tag")
    with ffi.from_buffer(buffer) as pointer:
        rc = lib.crypto_aead_chacha20poly1305_ietf_encrypt(
            pointer + start, ffi.NULL, pointer + start, size, ad, len(ad), ffi.NULL, _nonce(n), key
        )
    if rc != 0:  # pragma: no cover - libsodium only fails on impossible lengths
        raise RuntimeError("ChaCha20-Poly1305 encryption failed")


def decrypt_to_buffer(key: bytes, n: int, ad: bytes, ciphertext: bytes | memoryview) -> bytearray:
    """Decrypt into a new bytearray without the wrapper's extra allocation and copy."""
    size = len(ciphertext) - TAG_BYTES
    if size < 0:
        raise DecryptionError()
    plaintext = bytearray(size)
    with ffi.from_buffer(plaintext) as out, ffi.from_buffer(ciphertext) as source:
        rc = lib.crypto_aead_chacha20poly1305_ietf_decrypt(
            out, ffi.NULL, ffi.NULL, source, len(ciphertext), ad, len(ad), _nonce(n), key
        )
    if rc != 0:
        raise DecryptionError()
    return plaintext


def hash_(data: bytes) -> bytes:
    return hashlib.blake2b(data).digest()


def hkdf(chaining_key: bytes, input_key_material: bytes, outputs: int) -> tuple[bytes, ...]:
    """HKDF per §4.3 with HMAC-BLAKE2b; returns 2 or 3 outputs of HASHLEN bytes."""
    temp_key = hmac.new(chaining_key, input_key_material, hashlib.blake2b).digest()
    output1 = hmac.new(temp_key, b"\x01", hashlib.blake2b).digest()
    output2 = hmac.new(temp_key, output1 + b"\x02", hashlib.blake2b).digest()
    if outputs == 2:
        return output1, output2
    output3 = hmac.new(temp_key, output2 + b"\x03", hashlib.blake2b).digest()
    return output1, output2, output3
