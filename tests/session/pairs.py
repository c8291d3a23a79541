"""Helpers: two sans-IO sessions wired back to back in memory."""

from __future__ import annotations

from p2pchat.identity import Identity
from p2pchat.session import SecureSession, SessionConfig, SessionEvent


def pump(a: SecureSession, b: SecureSession, *, rounds: int = 20) -> None:
    """Move bytes both ways until neither side has anything to say."""
    for _ in range(rounds):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            data = sender.data_to_send()
            if data:
                receiver.receive_data(data)
                moved = True
        if not moved:
            return


def events(session: SecureSession) -> list[SessionEvent]:
    out = []
    while (event := session.next_event()) is not None:
        out.append(event)
    return out


def make_pair(
    config_a: SessionConfig | None = None, config_b: SessionConfig | None = None
) -> tuple[SecureSession, SecureSession, Identity, Identity]:
    alice, bob = Identity.generate(), Identity.generate()
    initiator = SecureSession(alice, initiator=True, config=config_a)
    responder = SecureSession(bob, initiator=False, config=config_b)
    return initiator, responder, alice, bob
