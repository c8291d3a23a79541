"""HandshakeState (Noise spec §5.3) driven by the pattern tables in ``patterns``.

Patterns with psk modifiers (§9) run in psk mode: every ``e`` token also feeds the
ephemeral into MixKey, and each ``psk`` token mixes the next pre-shared key.
"""

from __future__ import annotations

from collections.abc import Sequence

from p2pchat.errors import LocalProtocolError, P2PChatError, RemoteProtocolError
from p2pchat.noise import crypto
from p2pchat.noise.cipherstate import CipherState
from p2pchat.noise.patterns import HandshakePattern, parse_protocol_name
from p2pchat.noise.symmetricstate import SymmetricState

PSK_BYTES = 32


class HandshakeState:
    """One side of a Noise handshake for any pattern of the 25519_ChaChaPoly_BLAKE2b suite.

    Keys are raw bytes: ``s`` and ``e`` are local *private* keys (public halves are
    derived), ``rs`` and ``re`` remote public keys known in advance. ``e`` is for test
    vectors; normally a fresh ephemeral is generated when the pattern needs it.

    ``psks`` are 32-byte pre-shared keys, one per ``psk`` token in the order they are
    used. A side that learns its psk only from the handshake (a responder choosing it
    by message 1) passes ``defer_psks=True`` and calls :meth:`set_psks` in time.
    """

    def __init__(
        self,
        protocol_name: str,
        *,
        initiator: bool,
        prologue: bytes = b"",
        s: bytes | None = None,
        e: bytes | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[bytes] = (),
        defer_psks: bool = False,
    ) -> None:
        parsed = parse_protocol_name(protocol_name)
        self.pattern: HandshakePattern = parsed.pattern
        self.initiator = initiator
        self._s = s
        self._s_pub = crypto.public_key(s) if s is not None else None
        self._e = e
        self._e_pub = crypto.public_key(e) if e is not None else None
        self._rs = rs
        self._re = re
        self._psks: list[bytes] | None = None
        self._psks_used = 0
        if self.pattern.psk_count and not psks and not defer_psks:
            raise LocalProtocolError(
                f"{protocol_name} needs {self.pattern.psk_count} pre-shared key(s): pass psks, "
                "or defer_psks=True and call set_psks before they are used"
            )
        if psks or not defer_psks:
            self.set_psks(psks)
        self._uses_psk = self.pattern.psk_count > 0
        self._symmetric = SymmetricState(protocol_name.encode("ascii"))
        self._symmetric.mix_hash(prologue)
        self._mix_pre_messages()
        self._message_index = 0
        self._result: tuple[CipherState, CipherState] | None = None
        self._broken = False

    def _mix_pre_messages(self) -> None:
        for owner_is_initiator, tokens in (
            (True, self.pattern.initiator_pre),
            (False, self.pattern.responder_pre),
        ):
            local = owner_is_initiator == self.initiator
            for token in tokens:
                if token == "s":
                    key = self._s_pub if local else self._rs
                elif token == "e":
                    key = self._e_pub if local else self._re
                else:  # pragma: no cover - the table holds only s and e here
                    raise LocalProtocolError(f"bad pre-message token {token}")
                if key is None:
                    whose = "local" if local else "remote"
                    raise LocalProtocolError(f"pattern needs the {whose} {token} key in advance")
                self._symmetric.mix_hash(key)
                if token == "e" and self._uses_psk:
                    self._symmetric.mix_key(key)

    # ----------------------------------------------------------------- state

    @property
    def is_finished(self) -> bool:
        return self._message_index >= len(self.pattern.messages)

    @property
    def is_my_turn(self) -> bool:
        if self.is_finished:
            return False
        initiator_turn = self._message_index % 2 == 0 or self.pattern.one_way
        return initiator_turn == self.initiator

    @property
    def handshake_hash(self) -> bytes:
        return self._symmetric.h

    @property
    def remote_static(self) -> bytes | None:
        return self._rs

    @property
    def remote_ephemeral(self) -> bytes | None:
        return self._re

    @property
    def local_static_public(self) -> bytes | None:
        return self._s_pub

    def set_psks(self, psks: Sequence[bytes]) -> None:
        """Give (or replace) the pre-shared keys; allowed until the first is used."""
        if self._psks_used:
            raise LocalProtocolError("a pre-shared key was already used in this handshake")
        needed = self.pattern.psk_count
        if len(psks) != needed:
            raise LocalProtocolError(
                f"this pattern needs {needed} pre-shared key(s), got {len(psks)}"
            )
        for psk in psks:
            if len(psk) != PSK_BYTES:
                raise LocalProtocolError(
                    f"a pre-shared key must be exactly {PSK_BYTES} bytes, got {len(psk)}"
                )
        self._psks = [bytes(psk) for psk in psks]

    def split(self) -> tuple[CipherState, CipherState]:
        """(initiator→responder, responder→initiator) ciphers; only once finished."""
        if self._result is None:
            raise LocalProtocolError("the handshake is not finished")
        return self._result

    # ------------------------------------------------------------- messages

    def write_message(self, payload: bytes = b"") -> bytes:
        self._check_turn(writing=True)
        symmetric = self._symmetric
        out: list[bytes] = []
        for token in self.pattern.messages[self._message_index]:
            if token == "e":
                if self._e is None:
                    self._e = crypto.generate_private_key()
                    self._e_pub = crypto.public_key(self._e)
                assert self._e_pub is not None
                out.append(self._e_pub)
                symmetric.mix_hash(self._e_pub)
                if self._uses_psk:
                    symmetric.mix_key(self._e_pub)
            elif token == "s":
                if self._s is None or self._s_pub is None:
                    raise LocalProtocolError("this pattern needs a local static key")
                out.append(symmetric.encrypt_and_hash(self._s_pub))
            elif token == "psk":
                symmetric.mix_key_and_hash(self._next_psk())
            else:
                symmetric.mix_key(self._dh(token))
        out.append(symmetric.encrypt_and_hash(payload))
        message = b"".join(out)
        if len(message) > crypto.MAX_MESSAGE_BYTES:
            self._broken = True
            raise LocalProtocolError("a handshake message is at most 65535 bytes")
        self._advance()
        return message

    def read_message(self, message: bytes) -> bytes:
        self._check_turn(writing=False)
        if len(message) > crypto.MAX_MESSAGE_BYTES:
            raise RemoteProtocolError("a handshake message is at most 65535 bytes")
        try:
            payload = self._read(message)
        except RemoteProtocolError:
            self._broken = True
            raise
        except P2PChatError as exc:
            self._broken = True
            raise RemoteProtocolError(
                f"bad handshake message: {exc}", code="bad-handshake"
            ) from exc
        self._advance()
        return payload

    def _read(self, message: bytes) -> bytes:
        symmetric = self._symmetric
        offset = 0
        for token in self.pattern.messages[self._message_index]:
            if token == "e":
                self._re = self._take(message, offset, crypto.DHLEN)
                offset += crypto.DHLEN
                symmetric.mix_hash(self._re)
                if self._uses_psk:
                    symmetric.mix_key(self._re)
            elif token == "s":
                size = crypto.DHLEN + (crypto.TAG_BYTES if symmetric.cipher.has_key() else 0)
                self._rs = symmetric.decrypt_and_hash(self._take(message, offset, size))
                offset += size
            elif token == "psk":
                symmetric.mix_key_and_hash(self._next_psk())
            else:
                symmetric.mix_key(self._dh(token))
        remainder = message[offset:]
        if symmetric.cipher.has_key() and len(remainder) < crypto.TAG_BYTES:
            raise RemoteProtocolError("handshake message too short", code="bad-handshake")
        return symmetric.decrypt_and_hash(remainder)

    # --------------------------------------------------------------- helpers

    @staticmethod
    def _take(message: bytes, offset: int, size: int) -> bytes:
        if len(message) < offset + size:
            raise RemoteProtocolError("handshake message too short", code="bad-handshake")
        return message[offset : offset + size]

    def _dh(self, token: str) -> bytes:
        # "es": initiator's ephemeral with responder's static; the responder mirrors it.
        local_kind, remote_kind = (token[0], token[1]) if self.initiator else (token[1], token[0])
        local = self._e if local_kind == "e" else self._s
        remote = self._re if remote_kind == "e" else self._rs
        if local is None or remote is None:
            raise LocalProtocolError(f"token {token} needs keys this side does not have")
        return crypto.dh(local, remote)

    def _next_psk(self) -> bytes:
        assert self._psks is not None  # _check_turn refused the message otherwise
        psk = self._psks[self._psks_used]
        self._psks_used += 1
        return psk

    def _check_turn(self, *, writing: bool) -> None:
        if self._broken:
            raise LocalProtocolError("this handshake already failed")
        if self.is_finished:
            raise LocalProtocolError("the handshake is already finished")
        if self.is_my_turn != writing:
            action = "write" if writing else "read"
            raise LocalProtocolError(f"it is not this side's turn to {action} a message")
        # Checked before any token is processed, so the caller can set_psks and retry.
        if self._psks is None and "psk" in self.pattern.messages[self._message_index]:
            raise LocalProtocolError("the pre-shared keys are needed now: call set_psks first")

    def _advance(self) -> None:
        self._message_index += 1
        if self.is_finished:
            self._result = self._symmetric.split()
