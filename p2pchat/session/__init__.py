"""Sans-IO secure sessions: the Noise XX handshake bound to Ed25519 identities."""

from p2pchat.session.core import (
    NOISE_PROTOCOL,
    PROLOGUE,
    PROTOCOL_VERSION,
    SecureSession,
    SessionConfig,
    SessionState,
)
from p2pchat.session.events import (
    HandshakeComplete,
    MessageReceived,
    PeerClosed,
    PongReceived,
    SessionEvent,
)

__all__ = [
    "NOISE_PROTOCOL",
    "PROLOGUE",
    "PROTOCOL_VERSION",
    "HandshakeComplete",
    "MessageReceived",
    "PeerClosed",
    "PongReceived",
    "SecureSession",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
]
