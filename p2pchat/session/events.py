"""What a secure session reports to the layer above it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The peer proved ``peer_key`` (its Ed25519 identity); versions and features agreed."""

    peer_key: bytes
    version: int
    features: frozenset[str]
    handshake_hash: bytes


@dataclass(frozen=True, slots=True)
class MessageReceived:
    message: Any
    # Its encoded size: what the layer above counts to bound the bytes it buffers.
    size: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class PongReceived:
    nonce: int
    data: bytes


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer ended the session (or refused it) and said why."""

    code: str
    reason: str


SessionEvent = HandshakeComplete | MessageReceived | PongReceived | PeerClosed
