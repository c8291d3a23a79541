"""People: contacts, contact requests, blocking and verification.

With a node running, each change goes through its chat service (which also tells the
peer what it needs to know and closes a blocked peer's session); without one, the
change is made in the store alone, where the next node finds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pchat.commands.base import CommandContext, CommandError, readable_errors
from p2pchat.identity import fingerprint, safety_number
from p2pchat.mesh.presence import text_problem
from p2pchat.store import Contact, Request
from p2pchat.wallclock import now_ms

OWN_ID = "that is your own id"


@dataclass(frozen=True, slots=True)
class Verification:
    """What two people compare to know they hold each other's real key."""

    peer: bytes
    fingerprint: str
    safety_number: str
    verified: bool


class PeopleCommands(CommandContext):
    def contacts(self) -> list[Contact]:
        """Contacts and blocked peers, by name."""
        with readable_errors():
            return self._store.contacts()

    def contact(self, peer: bytes) -> Contact | None:
        with readable_errors():
            return self._store.contact(peer)

    def requests(self) -> list[Request]:
        """Contact requests waiting for an answer, oldest first."""
        with readable_errors():
            return self._store.requests()

    def request(self, peer: bytes) -> Request | None:
        with readable_errors():
            return self._store.request(peer)

    def add_contact(self, peer: bytes, petname: str = "", *, nick: str = "") -> Contact:
        """Make ``peer`` a contact, called ``petname`` if given. ``nick``: the nick it
        gave us itself (an invite code's), if known."""
        problem = text_problem(petname, "")
        if problem:
            raise CommandError(f'"nick": {problem}')
        chat = self._running_chat()
        with readable_errors():
            if chat is not None:
                return chat.add_contact(peer, petname, nick)
            if peer == self.me:
                raise CommandError(OWN_ID)
            return self._store.add_contact(peer, petname=petname, nick=nick, now=now_ms())

    def accept(self, peer: bytes) -> Contact:
        """Accept a pending contact request (the messages it held are delivered)."""
        if self.request(peer) is None:
            raise CommandError("there is no pending request from this id")
        chat = self._running_chat()
        with readable_errors():
            if chat is not None:
                return chat.accept(peer)
            return self._store.add_contact(peer, now=now_ms())

    def set_blocked(self, peer: bytes, blocked: bool) -> None:
        """Block (nothing more from or to them, their session closed) or unblock."""
        chat = self._running_chat()
        with readable_errors():
            if chat is not None:
                chat.set_blocked(peer, blocked)
                return
            if peer == self.me:
                raise CommandError(OWN_ID)
            self._store.set_blocked(peer, blocked, now=now_ms())

    def verification(self, peer: bytes) -> Verification:
        contact = self.contact(peer)
        return Verification(
            peer,
            fingerprint(peer),
            safety_number(self.me, peer),
            bool(contact and contact.verified),
        )

    def set_verified(self, peer: bytes, verified: bool) -> Verification:
        """Mark a contact verified (the safety numbers matched) or not."""
        with readable_errors():
            if not self._store.set_verified(peer, verified):
                raise CommandError("add this id as a contact before marking it verified")
        return self.verification(peer)
