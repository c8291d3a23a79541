"""The attacker's side of the wire, written out by hand from docs/protocol.md.

The product's codec and session refuse to build what a hostile peer sends (a Ping
larger than the node allows, a message straight after handshake message 3 in the
same write), so the attacker encodes messages with msgpack and cuts records and
frames itself. Only the Noise engine and the identity keys come from the product: an
attacker has no reason to change those, and the handshake must be the real one.

Sans-IO: bytes in (:meth:`Session.receive`), bytes out (:meth:`Session.take_output`,
:meth:`Session.pack`), decoded messages as ``(type_id, body)`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import nacl.signing

from p2pchat.identity import Identity
from p2pchat.noise import CipherState, HandshakeState

NOISE_PROTOCOL = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
PROLOGUE = b"p2pchat/1"  # §3
VERSION = 1
MAX_FRAME = 0xFFFF  # §2
MAX_PLAINTEXT = MAX_FRAME - 16  # §4.1: the AEAD tag takes 16 bytes
RECORD_HEADER = 3  # §4.2: flags (1) || length (2)
FINAL = 0x01
PRESENCE_CONTEXT = b"p2pchat-presence-v1:"  # §11

# Type ids (§6).
HELLO, AUTH, REJECT, CLOSE, PING, PONG = 1, 2, 3, 4, 5, 6
MESH_PING, MESH_ACK, MESH_PROBE_REQUEST, MESH_PROBE_RESULT = 20, 21, 22, 23
MESH_GOSSIP, MESH_NEIGHBOR, MESH_NEIGHBOR_REPLY, MESH_DIGEST = 24, 25, 26, 28
MESH_GRAFT, MESH_PRUNE, MESH_IHAVE = 18, 19, 29
CHAT_MESSAGE, CHAT_RECEIPT = 30, 31

Message = tuple[int, dict[str, Any]]


class HandshakeFailed(Exception):
    """The victim refused or dropped us before the session opened."""


# ---------------------------------------------------------------------- messages


def encode(type_id: int, body: dict[str, Any]) -> bytes:
    """§5: a message is the msgpack array ``[type_id, body]``."""
    packed: bytes = msgpack.packb([type_id, body], use_bin_type=True)
    return packed


def ping(nonce: int, data: bytes = b"") -> bytes:
    return encode(PING, {"nonce": nonce, "data": data})


def pong(nonce: int, data: bytes = b"") -> bytes:
    return encode(PONG, {"nonce": nonce, "data": data})


def close(code: str = "bye", reason: str = "") -> bytes:
    return encode(CLOSE, {"code": code, "reason": reason})


def chat_message(msg_id: bytes, clock: int, time_ms: int, text: str) -> bytes:
    return encode(CHAT_MESSAGE, {"msg_id": msg_id, "clock": clock, "time": time_ms, "text": text})


def receipt(msg_ids: list[bytes], state: str = "delivered") -> bytes:
    """An empty receipt is a nudge (§13.2): the cheapest message that counts as traffic."""
    return encode(CHAT_RECEIPT, {"state": state, "msg_ids": msg_ids})


def gossip(records: list[dict[str, Any]]) -> bytes:
    return encode(MESH_GOSSIP, {"records": records, "claims": [], "repair": False})


def digest(summary: bytes = bytes(16)) -> bytes:
    """A digest summary that matches nobody's: the receiver answers with all its entries."""
    return encode(MESH_DIGEST, {"summary": summary, "entries": [], "full": False,
                                "want_reply": False})  # fmt: skip


def mesh_ack(seq: int) -> bytes:
    """§12: the answer to a direct probe (``MeshPing``), echoing its ``seq``."""
    return encode(MESH_ACK, {"seq": seq, "records": [], "claims": []})


def probe_request(seq: int, target: bytes) -> bytes:
    """§12.2: ask the receiver to probe ``target`` for us."""
    return encode(MESH_PROBE_REQUEST, {"seq": seq, "target": target})


def graft(owners: list[bytes], version: int = 1) -> bytes:
    """§12.3: send us these members' news in full (and push to us eagerly again)."""
    entries = [{"owner": owner, "version": version, "dead": False} for owner in owners]
    return encode(MESH_GRAFT, {"entries": entries})


def neighbor_reply(accepted: bool) -> bytes:
    return encode(MESH_NEIGHBOR_REPLY, {"accepted": accepted, "suggestions": []})


def presence_record(
    signing_key: nacl.signing.SigningKey,
    *,
    version: int,
    nick: str,
    addresses: list[str] | None = None,
    status: str = "avail",
) -> dict[str, Any]:
    """A record signed as §11 says: the context, then the fields as one msgpack array."""
    owner = bytes(signing_key.verify_key)
    fields = [owner, version, nick, status, "", addresses or [], VERSION]
    signed = PRESENCE_CONTEXT + msgpack.packb(fields, use_bin_type=True)
    return {
        "owner": owner,
        "version": version,
        "nick": nick,
        "status": status,
        "status_text": "",
        "addresses": addresses or [],
        "protocol": VERSION,
        "signature": signing_key.sign(signed).signature,
    }


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


# ---------------------------------------------------------------------- the session


@dataclass(slots=True)
class _Reader:
    """Frames out of a byte stream (§2), then records out of plaintexts (§4.2)."""

    buffer: bytearray = field(default_factory=bytearray)
    partial: bytearray = field(default_factory=bytearray)

    def frames(self, data: bytes) -> list[bytes]:
        self.buffer += data
        found = []
        while len(self.buffer) >= 2:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                break
            found.append(bytes(self.buffer[2 : 2 + size]))
            del self.buffer[: 2 + size]
        return found

    def messages(self, plaintext: bytes) -> list[Message]:
        found = []
        at = 0
        while at < len(plaintext):
            flags = plaintext[at]
            size = int.from_bytes(plaintext[at + 1 : at + 3], "big")
            self.partial += plaintext[at + 3 : at + 3 + size]
            at += RECORD_HEADER + size
            if flags & FINAL:
                found.append(_decode(bytes(self.partial)))
                self.partial.clear()
        return found


def _decode(data: bytes) -> Message:
    type_id, body = msgpack.unpackb(data, raw=False, strict_map_key=False)
    return int(type_id), body if isinstance(body, dict) else {}


class Session:
    """One end of a p2pchat session, as a peer written from the spec alone would run it."""

    def __init__(
        self,
        identity: Identity,
        *,
        initiator: bool,
        invite: bytes = b"",
        features: tuple[str, ...] = (),
    ) -> None:
        """``invite``: an invite code's token, presented in handshake message 3 (§3);
        ``features``: what we say we take (§3), ``files/1`` to be sent files."""
        self.features = features
        self.identity = identity
        self.initiator = initiator
        self.invite = invite
        self.peer_key: bytes | None = None
        self.closed_with: str | None = None  # the code of the victim's Close, if any
        self._handshake = HandshakeState(
            NOISE_PROTOCOL,
            initiator=initiator,
            prologue=PROLOGUE,
            s=identity.noise_static_private,
        )
        self._send: CipherState | None = None
        self._recv: CipherState | None = None
        self._reader = _Reader()
        self._output = bytearray()
        if initiator:
            hello = encode(HELLO, {"versions": [VERSION]})
            self._output += frame(self._handshake.write_message(hello))

    @property
    def is_open(self) -> bool:
        return self._send is not None

    def take_output(self) -> bytes:
        """Handshake bytes waiting to be written (message 1, 2 or 3)."""
        output, self._output = bytes(self._output), bytearray()
        return output

    def receive(self, data: bytes) -> list[Message]:
        """Feed bytes from the victim; the transport messages they complete."""
        messages: list[Message] = []
        for payload in self._reader.frames(data):
            if self._recv is None:
                self._handshake_frame(payload)
                continue
            plaintext = self._recv.decrypt_with_ad(b"", payload)
            for message in self._reader.messages(plaintext):
                if message[0] == CLOSE:
                    self.closed_with = str(message[1].get("code", ""))
                messages.append(message)
        return messages

    def pack(self, messages: list[bytes]) -> bytes:
        """Records packed back to back into as few frames as they fit (§4.2)."""
        assert self._send is not None, "the handshake is not finished"
        out = bytearray()
        plaintext = bytearray()
        for message in messages:
            at = 0
            while at < len(message):
                room = MAX_PLAINTEXT - len(plaintext) - RECORD_HEADER
                if room <= 0:
                    out += frame(self._send.encrypt_with_ad(b"", bytes(plaintext)))
                    plaintext.clear()
                    continue
                chunk = message[at : at + room]
                at += len(chunk)
                flags = FINAL if at == len(message) else 0
                plaintext += bytes((flags,)) + len(chunk).to_bytes(2, "big") + chunk
        if plaintext:
            out += frame(self._send.encrypt_with_ad(b"", bytes(plaintext)))
        return bytes(out)

    # ------------------------------------------------------------------ handshake

    def _auth(self) -> bytes:
        return encode(
            AUTH,
            {
                "identity_key": self.identity.public_key,
                "signature": self.identity.static_key_signature,
                "version": VERSION,
                "features": list(self.features),
                "invite": self.invite if self.initiator else b"",
            },
        )

    def _handshake_frame(self, payload: bytes) -> None:
        type_id, body = _decode(self._handshake.read_message(payload))
        if type_id == REJECT:
            raise HandshakeFailed(f"refused: {body.get('code')} {body.get('reason', '')}")
        if self.initiator:  # message 2: the victim's identity; answer with message 3
            self.peer_key = body["identity_key"]
            self._output += frame(self._handshake.write_message(self._auth()))
            self._send, self._recv = self._handshake.split()
        elif type_id == HELLO:  # message 1: answer with message 2
            self._output += frame(self._handshake.write_message(self._auth()))
        else:  # message 3
            self.peer_key = body["identity_key"]
            self._recv, self._send = self._handshake.split()
