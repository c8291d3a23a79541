"""Local policy in the handshake: a refusal carries its own code, and the invite token of
a code reaches the responder's policy, from an initiator that dialled that identity only
(docs/protocol.md §3, §7, §10.1)."""

from __future__ import annotations

import msgpack
import pytest

from p2pchat.errors import HandshakeRefused, LocalProtocolError
from p2pchat.identity import Identity
from p2pchat.session import HandshakeComplete, PeerClosed, SecureSession
from p2pchat.session.core import Refusal
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import HandshakeAuth
from tests.session.pairs import events, pump

TOKEN = bytes(range(16))


class Policy:
    """Records what it was asked; refuses with ``refusal`` (None: accepts)."""

    def __init__(self, refusal: Refusal | None = None) -> None:
        self.refusal = refusal
        self.asked: list[tuple[bytes, bytes]] = []

    def __call__(self, key: bytes, invite: bytes) -> Refusal | None:
        self.asked.append((key, invite))
        return self.refusal


def test_a_responder_refusal_reaches_the_initiator_with_its_code() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    policy = Policy(Refusal("contacts-only", "this node talks to its contacts only"))
    a = SecureSession(alice, initiator=True)
    b = SecureSession(bob, initiator=False, authorize=policy)
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    with pytest.raises(HandshakeRefused, match="contacts only") as refused:
        b.receive_data(a.data_to_send())  # message 3: right after the identity proof
    assert refused.value.code == "contacts-only"
    assert policy.asked == [(alice.public_key, b"")]
    assert b.peer_key is None  # nothing of the stranger is kept
    a.receive_data(b.data_to_send())
    got = events(a)
    assert [type(e) for e in got] == [HandshakeComplete, PeerClosed]
    closed = got[1]
    assert isinstance(closed, PeerClosed) and closed.code == "contacts-only"
    assert closed.reason == "this node talks to its contacts only"


def test_an_initiator_refusal_goes_out_in_message_3_with_its_code() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    policy = Policy(Refusal("contacts-only", "not a contact"))
    a = SecureSession(alice, initiator=True, authorize=policy)
    b = SecureSession(bob, initiator=False)
    b.receive_data(a.data_to_send())
    with pytest.raises(HandshakeRefused) as ours:
        a.receive_data(b.data_to_send())  # message 2: the responder's identity proof
    assert ours.value.code == "contacts-only" and not ours.value.by_peer
    assert policy.asked == [(bob.public_key, b"")]
    with pytest.raises(HandshakeRefused) as theirs:
        b.receive_data(a.data_to_send())
    assert theirs.value.code == "contacts-only" and theirs.value.by_peer


def test_blocked_keeps_not_authorized() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    a = SecureSession(alice, initiator=True)
    b = SecureSession(bob, initiator=False, authorize=Policy(Refusal("not-authorized", "no")))
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    with pytest.raises(HandshakeRefused) as refused:
        b.receive_data(a.data_to_send())
    assert refused.value.code == "not-authorized"


def test_the_invite_token_reaches_the_responders_policy() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    policy = Policy()
    a = SecureSession(alice, initiator=True, expected_peer=bob.public_key, invite=TOKEN)
    b = SecureSession(bob, initiator=False, authorize=policy)
    pump(a, b)
    assert policy.asked == [(alice.public_key, TOKEN)]
    assert [type(e) for e in events(a)] == [HandshakeComplete]
    assert [type(e) for e in events(b)] == [HandshakeComplete]


def test_the_token_goes_only_to_the_identity_the_code_names() -> None:
    """An address taken over by someone else gets a refusal, never the token: message 3
    is sent only once message 2 proved the expected identity."""
    alice, bob, mallory = Identity.generate(), Identity.generate(), Identity.generate()
    a = SecureSession(alice, initiator=True, expected_peer=bob.public_key, invite=TOKEN)
    m = SecureSession(mallory, initiator=False)
    m.receive_data(a.data_to_send())
    with pytest.raises(HandshakeRefused) as refused:
        a.receive_data(m.data_to_send())
    assert refused.value.code == "unexpected-identity"
    with pytest.raises(HandshakeRefused):
        m.receive_data(a.data_to_send())  # a HandshakeReject, not our HandshakeAuth
    assert TOKEN not in a.data_to_send()


def test_the_initiators_policy_never_sees_a_responders_invite() -> None:
    """A responder has no business sending a token; ours would be ignored."""

    class Inviting(SecureSession):
        def _auth(self) -> HandshakeAuth:
            real = super()._auth()
            return HandshakeAuth(real.identity_key, real.signature, real.version, (), TOKEN)

    alice, bob = Identity.generate(), Identity.generate()
    policy = Policy()
    a = SecureSession(alice, initiator=True, authorize=policy)
    b = Inviting(bob, initiator=False)
    pump(a, b)
    assert policy.asked == [(bob.public_key, b"")]


def test_only_an_initiator_dialling_a_known_peer_presents_a_token() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    with pytest.raises(LocalProtocolError):
        SecureSession(alice, initiator=True, invite=TOKEN)  # who would get it?
    with pytest.raises(LocalProtocolError):
        SecureSession(alice, initiator=False, invite=TOKEN)
    with pytest.raises(LocalProtocolError):
        SecureSession(alice, initiator=True, expected_peer=bob.public_key, invite=bytes(33))


def test_an_auth_without_the_invite_field_decodes_as_no_token() -> None:
    """What an older peer sends (§5: new fields have defaults)."""
    identity = Identity.generate()
    old = msgpack.packb(
        [2, {"identity_key": identity.public_key, "signature": identity.static_key_signature,
             "version": 1, "features": []}],
        use_bin_type=True,
    )  # fmt: skip
    auth = Codec().decode(old)
    assert isinstance(auth, HandshakeAuth) and auth.invite == b""
