"""The attacker's tools speak the real protocol: checked against the product's own session.

If these fail, a passing adversary test would prove nothing.
"""

from __future__ import annotations

from p2pchat.identity import Identity
from p2pchat.mesh.presence import PresenceStore, Verdict
from p2pchat.session import HandshakeComplete, MessageReceived, SecureSession
from p2pchat.wire.messages import ChatMessage, ChatReceipt, Pong, PresenceRecord
from tests.adversary import wire
from tests.adversary.identities import record
from tests.adversary.memory import Memory
from tests.adversary.wire import Session


def _pair(attacker_starts: bool) -> tuple[Session, SecureSession]:
    """A hand-written session and the product's, handshaken in memory."""
    ours = Session(Identity.generate(), initiator=attacker_starts)
    theirs = SecureSession(Identity.generate(), initiator=not attacker_starts)
    for _ in range(3):
        theirs.receive_data(ours.take_output())
        ours.receive(theirs.data_to_send())
    assert ours.is_open and theirs.peer_key == ours.identity.public_key
    assert ours.peer_key == theirs.identity.public_key
    assert isinstance(theirs.next_event(), HandshakeComplete)
    return ours, theirs


def test_a_hand_written_session_talks_to_the_products() -> None:
    for attacker_starts in (True, False):
        ours, theirs = _pair(attacker_starts)
        data = b"\x01" * 1024  # the most a Ping may carry (§6)
        # A full digest of 3,000 entries spans several records and frames.
        entries = [
            {"owner": index.to_bytes(32, "big"), "version": index + 1, "dead": False}
            for index in range(3000)
        ]
        bulky = wire.encode(28, {"summary": bytes(16), "entries": entries, "full": True})
        assert len(bulky) > 2 * wire.MAX_PLAINTEXT
        theirs.receive_data(
            ours.pack([wire.chat_message(b"i" * 16, 1, 5, "hi"), bulky, wire.ping(9, data)])
        )
        event = theirs.next_event()
        assert isinstance(event, MessageReceived)
        assert event.message == ChatMessage(b"i" * 16, 1, 5, "hi")
        event = theirs.next_event()
        assert isinstance(event, MessageReceived) and len(event.message.entries) == 3000
        [(type_id, body)] = ours.receive(theirs.data_to_send())  # the product's Pong
        assert type_id == wire.PONG and body == {"nonce": 9, "data": data}
        assert Pong(9, data).TYPE_ID == wire.PONG
        theirs.send(ChatReceipt("delivered", (b"i" * 16,)))
        assert ours.receive(theirs.data_to_send()) == [
            (wire.CHAT_RECEIPT, {"state": "delivered", "msg_ids": [b"i" * 16]})
        ]


def test_hand_signed_records_are_genuine() -> None:
    store = PresenceStore()
    for index in (0, 1, 99_999):
        made = record(index)
        assert store.offer(PresenceRecord(**made)).verdict is Verdict.ACCEPTED
        again = record(index, made["signature"], made["owner"])
        assert again == made
    forged = {**record(5), "nick": "mallory"}
    assert store.offer(PresenceRecord(**forged)).verdict is Verdict.FORGED


def test_growth_counts_the_peak_since_the_baseline() -> None:
    before = Memory(rss=100, hwm=500)
    assert Memory(rss=150, hwm=500).grown_since(before) == 50  # old peak: not growth
    assert Memory(rss=120, hwm=900).grown_since(before) == 800  # a new peak, given back
