from __future__ import annotations

import os

import nacl.bindings
import pytest

from p2pchat.errors import DecryptionError, LocalProtocolError, NonceExhaustedError
from p2pchat.noise import CipherState

KEY = bytes(range(32))


def pair() -> tuple[CipherState, CipherState]:
    return CipherState(KEY), CipherState(KEY)


def test_round_trip_and_nonce_advances() -> None:
    sender, receiver = pair()
    for i in range(5):
        ciphertext = sender.encrypt_with_ad(b"ad", b"hello %d" % i)
        assert receiver.decrypt_with_ad(b"ad", ciphertext) == b"hello %d" % i
    assert sender.n == receiver.n == 5


def test_ciphertext_matches_raw_libsodium_with_noise_nonce_layout() -> None:
    cipher = CipherState(KEY)
    cipher.set_nonce(0x0102030405060708)
    expected = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
        b"msg", b"ad", b"\x00" * 4 + (0x0102030405060708).to_bytes(8, "little"), KEY
    )
    assert cipher.encrypt_with_ad(b"ad", b"msg") == expected


def test_failed_decryption_does_not_advance_the_nonce() -> None:
    sender, receiver = pair()
    good = sender.encrypt_with_ad(b"", b"first")
    bad = bytearray(good)
    bad[0] ^= 1
    with pytest.raises(DecryptionError):
        receiver.decrypt_with_ad(b"", bytes(bad))
    assert receiver.n == 0
    with pytest.raises(DecryptionError):
        receiver.decrypt_with_ad(b"other ad", good)
    assert receiver.n == 0
    assert receiver.decrypt_with_ad(b"", good) == b"first"
    assert receiver.n == 1


def test_replayed_and_reordered_ciphertexts_fail() -> None:
    sender, receiver = pair()
    first = sender.encrypt_with_ad(b"", b"1")
    second = sender.encrypt_with_ad(b"", b"2")
    with pytest.raises(DecryptionError):
        receiver.decrypt_with_ad(b"", second)
    assert receiver.decrypt_with_ad(b"", first) == b"1"
    with pytest.raises(DecryptionError):
        receiver.decrypt_with_ad(b"", first)


def test_truncated_ciphertext_fails_cleanly() -> None:
    sender, receiver = pair()
    ciphertext = sender.encrypt_with_ad(b"", b"hello")
    for cut in (0, 1, 15, 16, len(ciphertext) - 1):
        with pytest.raises(DecryptionError):
            receiver.decrypt_with_ad(b"", ciphertext[:cut])
    assert receiver.n == 0


def test_last_nonce_is_refused() -> None:
    sender, receiver = pair()
    sender.set_nonce(2**64 - 2)
    receiver.set_nonce(2**64 - 2)
    receiver.decrypt_with_ad(b"", sender.encrypt_with_ad(b"", b"last allowed"))
    with pytest.raises(NonceExhaustedError):
        sender.encrypt_with_ad(b"", b"one too many")
    with pytest.raises(NonceExhaustedError):
        receiver.decrypt_with_ad(b"", b"x" * 20)
    assert issubclass(NonceExhaustedError, LocalProtocolError)


def test_oversize_messages_are_refused() -> None:
    sender, receiver = pair()
    sender.encrypt_with_ad(b"", b"x" * 65519)
    with pytest.raises(LocalProtocolError):
        sender.encrypt_with_ad(b"", b"x" * 65520)
    with pytest.raises(Exception, match="65535"):
        receiver.decrypt_with_ad(b"", b"x" * 65536)


def test_rekey_follows_the_specification() -> None:
    sender, receiver = pair()
    sender.rekey()
    receiver.rekey()
    # §4.2: REKEY(k) = first 32 bytes of ENCRYPT(k, 2^64-1, empty ad, 32 zero bytes).
    expected_key = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
        bytes(32), b"", b"\x00" * 4 + b"\xff" * 8, KEY
    )[:32]
    reference = CipherState(expected_key)
    ciphertext = sender.encrypt_with_ad(b"", b"after rekey")
    assert ciphertext == reference.encrypt_with_ad(b"", b"after rekey")
    assert receiver.decrypt_with_ad(b"", ciphertext) == b"after rekey"
    assert sender.n == 1  # rekey keeps the nonce


def test_rekey_on_one_side_only_breaks_the_channel() -> None:
    sender, receiver = pair()
    sender.rekey()
    with pytest.raises(DecryptionError):
        receiver.decrypt_with_ad(b"", sender.encrypt_with_ad(b"", b"x"))


def test_no_key_means_plaintext_passthrough() -> None:
    cipher = CipherState()
    assert not cipher.has_key()
    assert cipher.encrypt_with_ad(b"ad", b"clear") == b"clear"
    with pytest.raises(LocalProtocolError):
        cipher.rekey()


def test_bad_key_length_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        CipherState(os.urandom(31))


@pytest.mark.parametrize("size", [0, 1, 100, 65519])
def test_in_place_paths_match_the_plain_ones(size: int) -> None:
    plaintext = os.urandom(size)
    plain, in_place = CipherState(KEY), CipherState(KEY)
    buffer = bytearray(b"HD" + plaintext + bytes(16))
    in_place.encrypt_in_place(b"ad", buffer, 2, size)
    expected = plain.encrypt_with_ad(b"ad", plaintext)
    assert bytes(buffer[2:]) == expected and buffer[:2] == b"HD"
    assert in_place.n == plain.n == 1
    receiver = CipherState(KEY)
    assert receiver.decrypt_to_buffer(b"ad", memoryview(expected)) == plaintext
    with pytest.raises(LocalProtocolError):
        in_place.encrypt_in_place(b"", bytearray(65520 + 16), 0, 65520)


def test_decrypt_to_buffer_failure_keeps_the_nonce() -> None:
    sender, receiver = pair()
    good = sender.encrypt_with_ad(b"", b"data")
    for bad in (good[:-1], b"", good[:15], bytes([good[0] ^ 1]) + good[1:]):
        with pytest.raises(DecryptionError):
            receiver.decrypt_to_buffer(b"", bad)
    assert receiver.n == 0
    assert receiver.decrypt_to_buffer(b"", good) == b"data"
