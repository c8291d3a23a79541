"""The sans-IO secure session: Noise XX handshake with identity binding, then transport.

Bytes go in with :meth:`SecureSession.receive_data`; bytes to write come out of
:meth:`SecureSession.data_to_send`; what happened comes out of
:meth:`SecureSession.next_event`. No sockets, no clock, no randomness: the I/O layer
in :mod:`p2pchat.net` drives it. See docs/protocol.md for the normative description.

Why one module of over 500 lines: it is one state machine. The handshake's checks and
the transport's limits read and change the same state (the cipher states, the pending
replies, the pause, the closing code), and a reader following a frame from
``receive_data`` to an event should not have to jump between objects. What does stand
apart already does: record packing (:mod:`.records`) and the events (:mod:`.events`).
"""

from __future__ import annotations

import enum
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2pchat.errors import (
    HandshakeRefused,
    LocalProtocolError,
    P2PChatError,
    RemoteProtocolError,
)
from p2pchat.identity import Identity, encode_peer_id, verify_static_key_signature
from p2pchat.networks.keys import Network
from p2pchat.noise import CipherState, HandshakeState, crypto
from p2pchat.noise.crypto import TAG_BYTES
from p2pchat.ratelimit import TokenBucket
from p2pchat.session.events import (
    HandshakeComplete,
    MessageReceived,
    PeerClosed,
    PongReceived,
    SessionEvent,
)
from p2pchat.session.knock import knock, knocked
from p2pchat.session.records import RecordReader, RecordWriter
from p2pchat.wire.codec import DEFAULT_MAX_MESSAGE_BYTES, Codec, UnknownMessage
from p2pchat.wire.framing import HEADER_BYTES as FRAME_HEADER_BYTES
from p2pchat.wire.framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame
from p2pchat.wire.messages import (
    MAX_INVITE_TOKEN,
    MAX_PING_DATA,
    PADDING_FEATURE,
    Close,
    HandshakeAuth,
    HandshakeHello,
    HandshakeReject,
    Ping,
    Pong,
)

NOISE_PROTOCOL = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
# Between members of a private network (§17): the network's pre-shared key is mixed in
# before message 1, so no one without it reads or writes any message of the handshake,
# and neither side's static key reaches anyone without it (docs/architecture.md says why
# not XXpsk3, whose key comes in only at message 3).
NETWORK_NOISE_PROTOCOL = "Noise_XXpsk0_25519_ChaChaPoly_BLAKE2b"
PROTOCOL_NAME = b"p2pchat"
# Version of the handshake layout itself (prologue, payloads, records). Bumping it makes
# old and new peers fail the handshake, so it changes only for incompatible redesigns;
# ordinary evolution goes through the negotiated protocol version and features.
HANDSHAKE_VERSION = 1
PROLOGUE = PROTOCOL_NAME + b"/" + str(HANDSHAKE_VERSION).encode("ascii")
# Outgoing frame buffers above this size are reused rather than allocated per write.
BULK_BUFFER_THRESHOLD = 64 * 1024
# Handshake messages are small; a larger length is someone speaking another protocol.
MAX_HANDSHAKE_FRAME_BYTES = 4096
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (PROTOCOL_VERSION,)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why local policy refuses a peer: a close code (docs/protocol.md §7) and a sentence."""

    code: str
    reason: str


# The local-policy hook, asked once the peer's identity is proven (docs/protocol.md §3):
# given its identity key and the invite token it presented (b"" if none; only a
# responder ever sees one), a Refusal or None to accept it.
Authorizer = Callable[[bytes, bytes], Refusal | None]


class SessionState(enum.Enum):
    HANDSHAKING = "handshaking"
    OPEN = "open"
    CLOSING = "closing"  # we sent Close; nothing more may be sent
    CLOSED = "closed"  # the peer closed, or the session failed


@dataclass(frozen=True, slots=True)
class SessionConfig:
    versions: tuple[int, ...] = SUPPORTED_VERSIONS
    # Every session offers padding (§4.2); other features are added by what the node
    # can serve (files/1 with a store).
    features: frozenset[str] = frozenset({PADDING_FEATURE})
    # Knocks (§3, §10.2). An initiator's key to knock with, given whom it dials and the
    # invite token it presents (None: no knock); a hiding responder's keys that a knock
    # must match before it says who it is (None: it answers anyone, as by default).
    knock_key: Callable[[bytes | None, bytes], bytes | None] | None = None
    knock_keys: Callable[[], list[bytes]] | None = None
    # A responder that does not hide still recognises these knocks (a contact's, an
    # invite holder's): not to answer anyone less, but so that its handshake slots keep
    # such a handshake when a flood makes room (net/handshakes.py, §9).
    known_knocks: Callable[[], list[bytes]] | None = None
    # Private networks (§17): the network an initiator dials a peer under (None: none),
    # and the networks a responder belongs to: it reads message 1 under each one's key.
    network_for: Callable[[bytes | None], Network | None] | None = None
    networks: Callable[[], list[Network]] | None = None
    # The policy for a peer that proved it holds one of our networks' keys (None: the
    # session's ``authorize``): a member is taken as a contact is (§17.3).
    authorize_member: Authorizer | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # Replies the peer asked for (Pongs) and has not taken yet: above this many bytes
    # the session stops reading its input until they drain (docs/protocol.md §4.3).
    max_reply_bytes: int = 64 * 1024
    # Pings the peer may send: a burst, then a steady rate; beyond, Close{rate-limited}.
    ping_burst: int = 20
    ping_rate: float = 10.0  # per second


class SecureSession:
    """One end of an authenticated, encrypted p2pchat session."""

    def __init__(
        self,
        identity: Identity,
        *,
        initiator: bool,
        config: SessionConfig | None = None,
        expected_peer: bytes | None = None,
        authorize: Authorizer | None = None,
        codec: Codec | None = None,
        ephemeral_key: bytes | None = None,
        invite: bytes = b"",
        network: Network | None = None,
    ) -> None:
        """``ephemeral_key`` fixes the Noise ephemeral: for deterministic tests only.

        ``network``: an initiator dials as a member of this private network (§17), under
        its pre-shared key (default: what ``config.network_for`` says).

        ``invite``: the token of the invite code an initiator dials (docs/protocol.md
        §10.1). It goes out in handshake message 3, encrypted to the responder, and only
        once the responder has proven to be ``expected_peer``.
        """
        if invite and (not initiator or expected_peer is None):
            raise LocalProtocolError("only an initiator dialling a known peer presents an invite")
        if len(invite) > MAX_INVITE_TOKEN:
            raise LocalProtocolError(f"an invite token has at most {MAX_INVITE_TOKEN} bytes")
        self.identity = identity
        self.initiator = initiator
        self.config = config or SessionConfig()
        self.expected_peer = expected_peer
        self._authorize = authorize
        self._invite = invite
        self._codec = codec or Codec(max_message_bytes=self.config.max_message_bytes)
        self.state = SessionState.HANDSHAKING
        self.peer_key: bytes | None = None
        self.version: int | None = None
        # A responder's: message 1 knocked with a key we know (§3, §10.2).
        self.knocked_in = False
        self.features: frozenset[str] = frozenset()
        self.handshake_hash: bytes | None = None
        self.unknown_messages_skipped = 0
        if initiator and network is None and self.config.network_for is not None:
            network = self.config.network_for(expected_peer)
        self.network = network if initiator else None  # a responder learns it in message 1
        self._awaiting_hello = not initiator
        hello_knock = b""
        knock_key = None
        if initiator and network is None and self.config.knock_key is not None:
            knock_key = self.config.knock_key(expected_peer, invite)
        if knock_key is not None:
            ephemeral_key = ephemeral_key or os.urandom(32)  # the knock is bound to it
            hello_knock = knock(knock_key, crypto.public_key(ephemeral_key))
        self.noise_protocol = NETWORK_NOISE_PROTOCOL if network is not None else NOISE_PROTOCOL
        self._handshake = HandshakeState(
            self.noise_protocol,
            initiator=initiator,
            prologue=PROLOGUE,
            s=identity.noise_static_private,
            e=ephemeral_key,
            psks=(network.psk,) if network is not None else (),
        )
        self._send_cipher: CipherState | None = None
        self._recv_cipher: CipherState | None = None
        self._frames = FrameDecoder(max_frame_bytes=MAX_HANDSHAKE_FRAME_BYTES)
        self._frames.oversize_hint = " (this is not a p2pchat node, or not this version of one)"
        self._records_in = RecordReader(self.config.max_message_bytes)
        self._records_out = RecordWriter()
        self._ready_frames: list[bytes] = []
        self._bulk_buffer: bytearray | None = None
        self._ready_bytes = 0
        self._events: deque[SessionEvent] = deque()
        # Backpressure: the queue positions and sizes of replies not yet taken for
        # sending, their total, and the received messages held back meanwhile.
        self._replies: deque[tuple[int, int]] = deque()
        self._reply_bytes = 0
        self._held: list[memoryview | bytes] = []
        self._now = 0.0
        self._pings: TokenBucket | None = None
        if initiator:
            hello = HandshakeHello(versions=self.config.versions, knock=hello_knock)
            self._emit_frame(self._handshake.write_message(self._codec.encode(hello)))

    # ----------------------------------------------------------------- outputs

    def next_frame_to_send(self, max_frames: int = 1) -> bytes | bytearray | memoryview | None:
        """The next frames to write (encrypted and framed), or None when there are none.

        Writers call this in a loop and make one socket write per result. Up to
        ``max_frames`` transport frames come back in one buffer built in place, so a
        bulk transfer costs one write per few hundred KiB without joining (copying)
        frames. The result is valid until the next call (large results share a
        reused buffer).
        """
        if self._ready_frames:
            ready = self._ready_frames.pop(0)
            self._ready_bytes -= len(ready)
            return ready
        if not self._records_out or self._send_cipher is None:
            self._bulk_buffer = None
            return None
        buffer, sizes = self._records_out.pop_plaintexts(
            max_frames, head=FRAME_HEADER_BYTES, tail=TAG_BYTES, allocate=self._frame_buffer
        )
        if self._replies:
            self._release_replies()
        encrypt_in_place = self._send_cipher.encrypt_in_place
        position = 0
        for size in sizes:
            encrypt_in_place(b"", buffer, position + FRAME_HEADER_BYTES, size)
            buffer[position] = (size + TAG_BYTES) >> 8
            buffer[position + 1] = (size + TAG_BYTES) & 0xFF
            position += FRAME_HEADER_BYTES + size + TAG_BYTES
        if buffer is self._bulk_buffer:
            return memoryview(buffer)[:position]
        return buffer

    def _frame_buffer(self, size: int) -> bytearray:
        """A buffer for outgoing frames: fresh when small, reused when large.

        Large fresh buffers come from mmap and cost a page fault per 4 KiB on first
        write, as much as the copy itself; a bulk transfer therefore reuses one. It is
        kept only while there is more to send, so idle sessions hold nothing.
        """
        if size <= BULK_BUFFER_THRESHOLD:
            return bytearray(size)
        if self._bulk_buffer is None or len(self._bulk_buffer) < size:
            self._bulk_buffer = bytearray(size)
        return self._bulk_buffer

    def handshake_data_to_send(self) -> bytes:
        """The handshake messages ready to write, as one buffer; transport data (such as
        Pongs for Pings that came with the last handshake message) stays queued."""
        frames, self._ready_frames, self._ready_bytes = self._ready_frames, [], 0
        return b"".join(frames)

    def data_to_send(self) -> bytes:
        """Everything ready to write, as one buffer; b"" when there is nothing."""
        chunks = []
        while (chunk := self.next_frame_to_send(max_frames=64)) is not None:
            chunks.append(bytes(chunk))  # copied: the next call may reuse the buffer
        return b"".join(chunks)

    @property
    def pending_bytes(self) -> int:
        """Bytes queued but not yet taken by :meth:`data_to_send` (for backpressure)."""
        return self._records_out.pending_bytes + self._ready_bytes

    @property
    def partial_bytes(self) -> int:
        """Bytes of an incoming message not yet complete (held until it is)."""
        return self._records_in.partial_bytes

    @property
    def reply_bytes(self) -> int:
        """Bytes of replies the peer asked for (Pongs) still queued: its unread debt."""
        return self._reply_bytes

    @property
    def paused(self) -> bool:
        """Whether the session holds its input back until queued replies drain.

        While paused, the caller should stop reading from the peer; once
        :meth:`data_to_send` (or :meth:`next_frame_to_send`) has taken enough, call
        :meth:`receive_data` with ``b""`` to go on with what is held.
        """
        return self._reply_bytes > self.config.max_reply_bytes

    @property
    def is_closed(self) -> bool:
        return self.state is SessionState.CLOSED

    def next_event(self) -> SessionEvent | None:
        return self._events.popleft() if self._events else None

    @property
    def peer_id(self) -> str | None:
        return encode_peer_id(self.peer_key) if self.peer_key else None

    # ------------------------------------------------------------------ inputs

    def send(self, message: Any) -> None:
        """Queue an application message (any registered wire message)."""
        if self.state is not SessionState.OPEN:
            raise LocalProtocolError(f"cannot send in state {self.state.value}")
        self._records_out.push_pieces(self._codec.encode_pieces(message))

    def ping(self, nonce: int, data: bytes = b"") -> None:
        if len(data) > MAX_PING_DATA:
            raise LocalProtocolError(f"ping data is at most {MAX_PING_DATA} bytes")
        self.send(Ping(nonce=nonce, data=data))

    def close(self, code: str = "bye", reason: str = "") -> None:
        """Queue a Close message; after this nothing more can be sent."""
        if self.state is SessionState.OPEN:
            self._records_out.push(self._codec.encode(Close(code=code, reason=reason[:512])))
        if self.state is not SessionState.CLOSED:
            self.state = SessionState.CLOSING

    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Feed bytes from the peer. Raises RemoteProtocolError if they break the protocol.

        ``data`` may be a view of a buffer the caller reuses after this returns.
        ``now`` (seconds, any origin; the last value stands when omitted) is the time
        Ping rate limits are judged by.

        While :attr:`paused`, the input is kept, not processed; ``receive_data(b"")``
        goes on with it.

        After an error the session is CLOSED; :meth:`data_to_send` may still hold a
        last message telling the peer why.
        """
        if now is not None:
            self._now = now
        if self.is_closed:
            return
        self._frames.feed(data)
        try:
            self._process_frames()
        finally:
            self._frames.detach()  # the caller may reuse ``data`` once we return

    def _process_frames(self) -> None:
        try:
            while not self.is_closed:
                if self.state is SessionState.HANDSHAKING:
                    frame = self._frames.next_frame()
                    if frame is None:
                        break
                    self._handshake_frame(frame)
                elif self._reply_bytes > self.config.max_reply_bytes:
                    break  # the peer does not read our replies: stop reading it
                elif self._held:
                    held, self._held = self._held, []
                    self._dispatch_messages(held)
                else:
                    frame = self._frames.next_frame()
                    if frame is None:
                        break
                    self._transport_frame(frame)
        except RemoteProtocolError as error:
            self._fail(error)
            raise
        except P2PChatError as error:  # e.g. a Noise engine refusal on bad input
            wrapped = RemoteProtocolError(str(error), code="protocol-error")
            self._fail(wrapped)
            raise wrapped from error

    # --------------------------------------------------------------- handshake

    # A handshake message Noise cannot process (too short, failed decryption, an
    # unusable key) ends the attempt without an answer: there is no key to say it in.
    # A payload that is malformed or of the wrong type is answered with the code
    # bad-handshake: in message 2 or 3 as a HandshakeReject, or, once message 3 has
    # completed the handshake, in a Close (docs/protocol.md §3).

    def _handshake_frame(self, frame: memoryview) -> None:
        if self._awaiting_hello:
            self._awaiting_hello = False
            networks = self.config.networks() if self.config.networks is not None else []
            if networks and self._network_hello(bytes(frame), networks):
                return
        plaintext = self._handshake.read_message(bytes(frame))
        if self.initiator:
            self._initiator_reads_auth(plaintext)
        elif self._handshake.is_finished:
            self._responder_reads_auth(plaintext)
        else:
            self._responder_reads_hello(plaintext)

    def _decode_payload(self, plaintext: bytes, message: int, expected: tuple[type, ...]) -> Any:
        try:
            payload = self._codec.decode(plaintext)
        except RemoteProtocolError as error:
            raise RemoteProtocolError(
                f"malformed handshake message {message}: {error}", code="bad-handshake"
            ) from error
        if not isinstance(payload, expected):
            names = " or ".join(cls.__name__ for cls in expected)
            raise RemoteProtocolError(
                f"handshake message {message} must carry {names}, not {type(payload).__name__}",
                code="bad-handshake",
            )
        return payload

    def _reject(self, code: str, reason: str) -> HandshakeRefused:
        """Answer with a HandshakeReject in the next handshake message; what to raise."""
        reject = HandshakeReject(code=code, reason=reason[:512])
        self._emit_frame(self._handshake.write_message(self._codec.encode(reject)))
        return HandshakeRefused(reason, code=code)

    def _network_hello(self, frame: bytes, networks: list[Network]) -> bool:
        """Whether message 1 opens a handshake of one of our networks (§17.1): it reads
        as ``XXpsk0`` under that network's pre-shared key (its payload is encrypted under
        a key the pre-shared key goes into: no other key opens it, and an ``XX`` message
        1, plaintext, opens under none). If none of ours opens it, the plain handshake
        reads it (and a hiding responder then sends nothing)."""
        for network in networks:
            candidate = HandshakeState(
                NETWORK_NOISE_PROTOCOL,
                initiator=False,
                prologue=PROLOGUE,
                s=self.identity.noise_static_private,
                psks=(network.psk,),
            )
            try:
                plaintext = candidate.read_message(frame)
            except RemoteProtocolError:
                continue
            self._handshake = candidate
            self.network = network
            self.noise_protocol = NETWORK_NOISE_PROTOCOL
            self._responder_reads_hello(plaintext)
            return True
        return False

    def _hide(self, reason: str) -> HandshakeRefused:
        """Close without message 2: it would carry our static key (§3, §10.2)."""
        self.state = SessionState.CLOSED
        return HandshakeRefused(reason, code="hidden")

    def _responder_reads_hello(self, plaintext: bytes) -> None:
        knock_keys = self.config.knock_keys if self.network is None else None
        hiding = knock_keys is not None
        try:
            hello = self._decode_payload(plaintext, 1, (HandshakeHello,))
        except RemoteProtocolError as error:
            if hiding:  # a reject would go in message 2, with our static key
                raise self._hide(f"{error} (we hide from strangers)") from error
            raise self._reject(error.code, str(error)) from error
        if knock_keys is not None:
            ephemeral = self._handshake.remote_ephemeral
            assert ephemeral is not None
            if not knocked(knock_keys(), ephemeral, hello.knock):
                # Hiding: nothing is sent at all; the initiator sees the connection
                # close, and learns no one.
                raise self._hide("an initiator without a knock we know (we hide from strangers)")
            self.knocked_in = True
        elif hello.knock and self.network is None and self.config.known_knocks is not None:
            ephemeral = self._handshake.remote_ephemeral
            assert ephemeral is not None
            self.knocked_in = knocked(self.config.known_knocks(), ephemeral, hello.knock)
        common = set(hello.versions) & set(self.config.versions)
        if not common:
            raise self._reject(
                "unsupported-version",
                f"no common protocol version: peer speaks {sorted(hello.versions)}, "
                f"we speak {sorted(self.config.versions)}",
            )
        self.version = max(common)
        self._emit_frame(self._handshake.write_message(self._codec.encode(self._auth())))

    def _initiator_reads_auth(self, plaintext: bytes) -> None:
        try:
            payload = self._decode_payload(plaintext, 2, (HandshakeAuth, HandshakeReject))
            self._raise_if_rejected(payload)
            self._check_auth(payload, version_ok=lambda v: v in self.config.versions)
        except HandshakeRefused as refusal:
            if refusal.by_peer:
                raise
            raise self._reject(refusal.code, str(refusal)) from refusal
        except RemoteProtocolError as error:
            raise self._reject(error.code, str(error)) from error
        self.version = payload.version
        self._emit_frame(self._handshake.write_message(self._codec.encode(self._auth())))
        self._finish_handshake()

    def _responder_reads_auth(self, plaintext: bytes) -> None:
        # The handshake is finished whatever the payload, so from here on a refusal
        # goes out encrypted, as the session's one and only Close (sent by _fail).
        self._finish_handshake(announce=False)
        payload = self._decode_payload(plaintext, 3, (HandshakeAuth, HandshakeReject))
        if isinstance(payload, HandshakeReject):
            self.state = SessionState.CLOSED  # the peer refused us: nothing to answer
        self._raise_if_rejected(payload)
        self._check_auth(payload, version_ok=lambda v: v == self.version)
        self._announce_open()

    def _raise_if_rejected(self, payload: HandshakeAuth | HandshakeReject) -> None:
        if isinstance(payload, HandshakeReject):
            raise HandshakeRefused(
                f"the peer refused the connection: {payload.reason or payload.code}",
                code=payload.code,
                by_peer=True,
            )

    def _auth(self) -> HandshakeAuth:
        assert self.version is not None
        return HandshakeAuth(
            identity_key=self.identity.public_key,
            signature=self.identity.static_key_signature,
            version=self.version,
            features=tuple(sorted(self.config.features)),
            invite=self._invite if self.initiator else b"",
        )

    def _check_auth(self, auth: HandshakeAuth, *, version_ok: Callable[[int], bool]) -> None:
        remote_static = self._handshake.remote_static
        assert remote_static is not None  # XX: known once message 2 (or 3) is read
        verify_static_key_signature(auth.identity_key, remote_static, auth.signature)
        if not version_ok(auth.version):
            raise HandshakeRefused(
                f"the peer chose protocol version {auth.version}, which we do not speak",
                code="unsupported-version",
            )
        if self.expected_peer is not None and auth.identity_key != self.expected_peer:
            raise HandshakeRefused(
                f"expected peer {encode_peer_id(self.expected_peer)} but "
                f"{encode_peer_id(auth.identity_key)} answered",
                code="unexpected-identity",
            )
        if auth.identity_key == self.identity.public_key:
            raise HandshakeRefused("this is a connection to ourselves", code="self-connection")
        authorize = self._authorize
        if self.network is not None and self.config.authorize_member is not None:
            authorize = self.config.authorize_member
        if authorize is not None:
            # A responder's HandshakeAuth carries no invite that means anything to us.
            invite = b"" if self.initiator else auth.invite
            refusal = authorize(auth.identity_key, invite)
            if refusal is not None:
                raise HandshakeRefused(refusal.reason, code=refusal.code)
        self.peer_key = auth.identity_key
        self.features = self.config.features & frozenset(auth.features)
        padded = PADDING_FEATURE in self.features
        self._records_out.pad = self._records_in.padding_allowed = padded

    def _finish_handshake(self, *, announce: bool = True) -> None:
        initiator_to_responder, responder_to_initiator = self._handshake.split()
        if self.initiator:
            self._send_cipher, self._recv_cipher = initiator_to_responder, responder_to_initiator
        else:
            self._send_cipher, self._recv_cipher = responder_to_initiator, initiator_to_responder
        self.handshake_hash = self._handshake.handshake_hash
        self._frames.max_frame_bytes = MAX_FRAME_BYTES
        self._frames.oversize_hint = ""
        if announce:
            self._announce_open()
        else:
            self.state = SessionState.OPEN

    def _announce_open(self) -> None:
        assert self.peer_key is not None and self.version is not None
        assert self.handshake_hash is not None
        self.state = SessionState.OPEN
        self._events.append(
            HandshakeComplete(self.peer_key, self.version, self.features, self.handshake_hash)
        )

    # --------------------------------------------------------------- transport

    def _transport_frame(self, frame: memoryview) -> None:
        assert self._recv_cipher is not None
        plaintext = self._recv_cipher.decrypt_to_buffer(b"", frame)
        self._dispatch_messages(self._records_in.feed(plaintext))

    def _dispatch_messages(self, messages: list[memoryview | bytes]) -> None:
        limit = self.config.max_reply_bytes
        for index, encoded in enumerate(messages):
            if self._reply_bytes > limit:
                # One Pong at most beyond the limit: the rest waits until they drain.
                self._held = messages[index:]
                return
            self._dispatch(self._codec.decode(encoded), len(encoded))
            if self.is_closed:
                return

    def _dispatch(self, message: Any, size: int) -> None:
        if isinstance(message, Ping):
            if self.state is SessionState.OPEN:
                self._check_ping_rate()
                self._queue_reply(self._codec.encode(Pong(message.nonce, message.data)))
        elif isinstance(message, Pong):
            self._events.append(PongReceived(message.nonce, message.data))
        elif isinstance(message, Close):
            self.state = SessionState.CLOSED
            self._events.append(PeerClosed(message.code, message.reason))
        elif isinstance(message, UnknownMessage):
            self.unknown_messages_skipped += 1
        elif isinstance(message, HandshakeHello | HandshakeAuth | HandshakeReject):
            raise RemoteProtocolError("handshake message after the handshake", code="bad-message")
        else:
            self._events.append(MessageReceived(message, size))

    def _check_ping_rate(self) -> None:
        config = self.config
        if self._pings is None:
            self._pings = TokenBucket(config.ping_rate, config.ping_burst, self._now)
        if not self._pings.take(self._now):
            raise RemoteProtocolError(
                f"more than {config.ping_burst} pings at once or {config.ping_rate:g} per second",
                code="rate-limited",
            )

    def _queue_reply(self, encoded: bytes) -> None:
        records = self._records_out
        records.push(encoded)
        self._replies.append((records.popped_bytes + records.pending_bytes, len(encoded)))
        self._reply_bytes += len(encoded)

    def _release_replies(self) -> None:
        replies, popped = self._replies, self._records_out.popped_bytes
        while replies and replies[0][0] <= popped:
            self._reply_bytes -= replies.popleft()[1]

    # ----------------------------------------------------------------- helpers

    def _emit_frame(self, noise_message: bytes) -> None:
        frame = encode_frame(noise_message)
        self._ready_frames.append(frame)
        self._ready_bytes += len(frame)

    def _fail(self, error: RemoteProtocolError) -> None:
        """Tell the peer why we are closing, if there is still a channel to say it on."""
        if self.state is SessionState.OPEN and self._send_cipher is not None:
            self._records_out.push(
                self._codec.encode(Close(code=error.code, reason=str(error)[:512]))
            )
        self.state = SessionState.CLOSED
