"""The one exception hierarchy of p2pchat.

Every error we raise on purpose derives from :class:`P2PChatError`. The split that
matters most is *who is at fault*: :class:`LocalProtocolError` means our own code
misused an API (a bug, or a caller asking for something impossible), while
:class:`RemoteProtocolError` means the peer sent something wrong. A remote error
closes that one connection; the node keeps running.
"""

from __future__ import annotations


class P2PChatError(Exception):
    """Root of every error p2pchat raises on purpose."""


class LocalProtocolError(P2PChatError):
    """We used a protocol object in a way it does not allow (a bug on our side)."""


class RemoteProtocolError(P2PChatError):
    """The remote side sent bytes that break the protocol.

    ``code`` is a short machine-readable reason that can be sent back in a close
    message; ``str(error)`` is the human explanation.
    """

    def __init__(self, message: str, *, code: str = "protocol-error") -> None:
        super().__init__(message)
        self.code = code


class DecryptionError(RemoteProtocolError):
    """A ciphertext failed authentication (tampered, replayed, reordered or wrong key)."""

    def __init__(
        self,
        message: str = "authentication failed: message was tampered with, "
        "replayed, reordered or encrypted under another key",
    ) -> None:
        super().__init__(message, code="decrypt-failed")


class NonceExhaustedError(LocalProtocolError):
    """A cipher reached nonce 2^64-1, which Noise reserves; the session must end."""


class HandshakeRefused(RemoteProtocolError):
    """No session: we refused the peer (bad signature, wrong identity, no common version),
    or, with ``by_peer``, the peer refused us and said why."""

    def __init__(self, message: str, *, code: str, by_peer: bool = False) -> None:
        super().__init__(message, code=code)
        self.by_peer = by_peer


class IdentityError(P2PChatError):
    """The profile's identity key cannot be read or created."""


class ProfileError(P2PChatError):
    """The profile directory or its configuration is unusable."""


class ConnectionClosed(P2PChatError):
    """The connection is closed; ``reason`` says why and ``by_peer`` who closed it."""

    def __init__(self, reason: str, *, by_peer: bool, code: str = "closed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.by_peer = by_peer
        self.code = code


class StoreError(P2PChatError):
    """The message database cannot be opened, is corrupt, or is from a newer version.

    Also raised when a statement on an open database fails (disk full, locked by
    another process for longer than the busy timeout): callers never see sqlite3.
    ``code`` says which: ``disk-full`` and ``io-error`` (the disk failed us: nothing of
    the failed statement or transaction was stored), ``damaged``, ``empty``, ``newer``,
    ``busy``, or ``store-error`` for anything else.
    """

    def __init__(self, message: str, *, code: str = "store-error") -> None:
        super().__init__(message)
        self.code = code
