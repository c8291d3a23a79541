"""What the mesh tells its caller about members: a presence changed, or a member was
forgotten. (The third kind of mesh event, :class:`~p2pchat.mesh.admission.GossipRefused`,
is made where refusals are counted, in :mod:`p2pchat.mesh.admission`.)"""

from __future__ import annotations

from dataclasses import dataclass

from p2pchat.mesh.admission import GossipRefused
from p2pchat.mesh.membership import Member, State
from p2pchat.wire.messages import PresenceRecord


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A member's record, liveness or standing changed (also emitted for our own record)."""

    record: PresenceRecord
    state: State
    accuser: bytes | None = None  # who made the claim, for suspect and dead
    proven: bool = False  # we had a session with it, or a handshake verified it

    @classmethod
    def of(cls, member: Member, accuser: bytes | None = None) -> PresenceChanged:
        return cls(member.record, member.state, accuser, member.proven)


@dataclass(frozen=True, slots=True)
class MemberForgotten:
    """A member was dropped from the full member list to make room for another."""

    record: PresenceRecord


MeshEvent = PresenceChanged | MemberForgotten | GossipRefused
