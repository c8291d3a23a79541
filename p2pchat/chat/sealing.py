"""Sealed envelopes: what relays carry for a recipient who is away.

The content is a libsodium sealed box to the recipient's X25519 key (converted from
its Ed25519 identity, so no extra key exchange is needed); the envelope is signed by
the sender's Ed25519 key. A relay can check who sent it and for whom, and when it
expires, but cannot read or change it; the recipient checks that the signer is also
the sender named *inside* the box, so nobody can re-sign someone else's content.
"""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from p2pchat.errors import RemoteProtocolError
from p2pchat.identity import Identity
from p2pchat.wire.messages import MAX_SEALED_BOX, MAX_WIRE_INT, Sealed

SIGNATURE_PREFIX = b"p2pchat-envelope-v1:"
CONTENT_PREFIX = b"p2pchat-sealed-v1:"
# What a sealed box adds to its plaintext: an ephemeral public key and a MAC.
BOX_OVERHEAD = nacl.bindings.crypto_box_SEALBYTES
MAX_CONTENT = MAX_SEALED_BOX - BOX_OVERHEAD - len(CONTENT_PREFIX) - 32
SEALED_PREFIX_BYTES = len(CONTENT_PREFIX) + 32  # before the content in the box's plaintext


def _signed_bytes(envelope: Sealed) -> bytes:
    return b"".join(
        (
            SIGNATURE_PREFIX,
            envelope.envelope_id,
            envelope.sender,
            envelope.recipient,
            envelope.expires.to_bytes(8, "big", signed=False),
            envelope.box,
        )
    )


def seal(
    identity: Identity, recipient: bytes, envelope_id: bytes, expires: int, content: bytes
) -> Sealed:
    """Encrypt ``content`` (an encoded wire message) to ``recipient`` and sign it."""
    if len(content) > MAX_CONTENT:
        raise ValueError(f"sealed content is limited to {MAX_CONTENT} bytes")
    if not 0 <= expires <= MAX_WIRE_INT:
        raise ValueError("expiry out of range")
    try:
        public = nacl.public.PublicKey(
            nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(recipient)
        )
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError, ValueError) as exc:
        raise ValueError("the recipient key is not a valid Ed25519 key") from exc
    box = nacl.public.SealedBox(public).encrypt(CONTENT_PREFIX + identity.public_key + content)
    unsigned = Sealed(
        envelope_id=envelope_id,
        sender=identity.public_key,
        recipient=recipient,
        expires=expires,
        box=bytes(box),
    )
    signature = identity.signing_key.sign(_signed_bytes(unsigned)).signature
    return Sealed(
        envelope_id=envelope_id,
        sender=unsigned.sender,
        recipient=recipient,
        expires=expires,
        box=unsigned.box,
        signature=signature,
    )


def check_signature(envelope: Sealed) -> None:
    """What a relay can check: the named sender signed exactly this envelope."""
    try:
        nacl.signing.VerifyKey(envelope.sender).verify(_signed_bytes(envelope), envelope.signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError) as exc:
        raise RemoteProtocolError(
            "an envelope's signature does not match its sender", code="bad-envelope"
        ) from exc


def unseal(identity: Identity, envelope: Sealed) -> bytes:
    """Check and decrypt an envelope addressed to ``identity``; the content bytes."""
    if envelope.recipient != identity.public_key:
        raise RemoteProtocolError("the envelope is for someone else", code="bad-envelope")
    check_signature(envelope)
    private = identity.signing_key.to_curve25519_private_key()
    try:
        plain = nacl.public.SealedBox(private).decrypt(envelope.box)
    except nacl.exceptions.CryptoError as exc:
        raise RemoteProtocolError("an envelope cannot be decrypted", code="bad-envelope") from exc
    head = len(CONTENT_PREFIX)
    if plain[:head] != CONTENT_PREFIX or plain[head : head + 32] != envelope.sender:
        raise RemoteProtocolError(
            "an envelope's content was sealed by someone other than its signer",
            code="bad-envelope",
        )
    return plain[head + 32 :]
