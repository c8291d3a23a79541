"""CipherState (Noise spec §5.1): a key and a nonce counter."""

from __future__ import annotations

from p2pchat.errors import LocalProtocolError, NonceExhaustedError, RemoteProtocolError
from p2pchat.noise import crypto

MAX_PLAINTEXT_BYTES = crypto.MAX_MESSAGE_BYTES - crypto.TAG_BYTES


class CipherState:
    __slots__ = ("_k", "_n")

    def __init__(self, key: bytes | None = None) -> None:
        self._k: bytes | None = None
        self._n = 0
        self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        if key is not None and len(key) != 32:
            raise LocalProtocolError("a cipher key has 32 bytes")
        self._k = key
        self._n = 0

    def has_key(self) -> bool:
        return self._k is not None

    @property
    def n(self) -> int:
        return self._n

    def set_nonce(self, nonce: int) -> None:
        if not 0 <= nonce <= crypto.MAX_NONCE:
            raise LocalProtocolError("a nonce is a 64-bit unsigned integer")
        self._n = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        _check_plaintext_size(len(plaintext))
        if self._k is None:
            return plaintext
        ciphertext = crypto.encrypt(self._k, self._usable_nonce(), ad, plaintext)
        self._n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        _check_ciphertext_size(len(ciphertext))
        if self._k is None:
            return ciphertext
        plaintext = crypto.decrypt(self._k, self._usable_nonce(), ad, ciphertext)
        self._n += 1  # only after authentication succeeded
        return plaintext

    def encrypt_in_place(self, ad: bytes, buffer: bytearray, start: int, size: int) -> None:
        """Like :meth:`encrypt_with_ad` for ``buffer[start:start+size]``, in place.

        ``buffer`` must hold 16 more bytes after the plaintext for the tag.
        """
        _check_plaintext_size(size)
        crypto.encrypt_in_place(self._key(), self._usable_nonce(), ad, buffer, start, size)
        self._n += 1

    def decrypt_to_buffer(self, ad: bytes, ciphertext: bytes | memoryview) -> bytearray:
        """Like :meth:`decrypt_with_ad`, returning a fresh mutable buffer (the fast path)."""
        _check_ciphertext_size(len(ciphertext))
        plaintext = crypto.decrypt_to_buffer(self._key(), self._usable_nonce(), ad, ciphertext)
        self._n += 1  # only after authentication succeeded
        return plaintext

    def _key(self) -> bytes:
        if self._k is None:
            raise LocalProtocolError("this operation needs a cipher key")
        return self._k

    def _usable_nonce(self) -> int:
        if self._n >= crypto.MAX_NONCE:
            raise NonceExhaustedError("nonce 2^64-1 is reserved; this session must end")
        return self._n

    def rekey(self) -> None:
        """§4.2: k = first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, 32 zero bytes)."""
        if self._k is None:
            raise LocalProtocolError("cannot rekey a cipher without a key")
        self._k = crypto.encrypt(self._k, crypto.MAX_NONCE, b"", bytes(32))[:32]


def _check_plaintext_size(size: int) -> None:
    if size > MAX_PLAINTEXT_BYTES:
        raise LocalProtocolError(
            f"a Noise message holds at most {MAX_PLAINTEXT_BYTES} bytes of plaintext"
        )


def _check_ciphertext_size(size: int) -> None:
    if size > crypto.MAX_MESSAGE_BYTES:
        raise RemoteProtocolError("a Noise message is at most 65535 bytes", code="too-large")
