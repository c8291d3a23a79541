"""Who may be in our mesh at all, and whose news we take right now.

The contacts-only rule (docs/protocol.md §13.6: no record but a contact's is admitted)
and the rate limits of :mod:`p2pchat.mesh.admission` as gossip meets them (§12.6):
each refusal is counted there, and reported as an event when the log may say so.
"""

from __future__ import annotations

from collections.abc import Callable

from p2pchat.mesh.admission import Admission
from p2pchat.mesh.shared import Part, Shared


class Gate(Part):
    def __init__(
        self,
        shared: Shared,
        admission: Admission,
        *,
        protected: Callable[[bytes], bool],
        contacts_only: bool,
    ) -> None:
        super().__init__(shared)
        self._admission = admission
        self._protected = protected
        self._contacts_only = contacts_only

    def admits(self, peer: bytes) -> bool:
        """Whether ``peer`` may be a member (and a neighbour) at all."""
        return not self._contacts_only or peer == self._me or self._protected(peer)

    def may_add(self, sender: bytes, owner: bytes, now: float) -> bool:
        """May ``sender`` introduce ``owner``, a member we hold nothing about?"""
        if owner == sender or self._members.is_proven(owner):
            return True  # the session (or a handshake) vouches for it, not gossip
        # The token is taken before the signature is checked: forged records use up
        # the sender's budget, not our CPU.
        return self._admission.take_member(sender, now) or self._protected(owner)

    def may_pass(self, sender: bytes, subject: bytes, now: float) -> bool:
        """May ``sender`` pass us one more update or claim (about ``subject``)?"""
        if subject == sender or self._protected(subject):
            return True  # its own news, and news of our contacts, always get through
        return self._admission.take_item(sender, now)

    def may_answer_digest(self, sender: bytes, now: float) -> bool:
        """May we answer one more full digest from ``sender`` (up to ~450 KB) now?"""
        if self._admission.take_digest(sender, now):
            return True
        self.refused(sender, now, digests=1)
        return False

    def room_for_members(self, sender: bytes, now: float) -> int:
        """How many new members ``sender`` may introduce right now."""
        return self._admission.room_for_members(sender, now)

    def reserve_learning(self, sender: bytes, wanted: int, now: float) -> int:
        """How many of ``wanted`` members we hold nothing of we ask ``sender`` for in
        this exchange (reserved: two exchanges at once do not both get the budget)."""
        room = min(wanted, self._admission.room_for_members(sender, now))
        return self._admission.reserve_learning(room, now)

    def refused(
        self, peer: bytes, now: float, *, members: int = 0, digests: int = 0, items: int = 0
    ) -> None:
        report = self._admission.refused(peer, now, members=members, digests=digests, items=items)
        if report is not None:
            self._events.put(report)
