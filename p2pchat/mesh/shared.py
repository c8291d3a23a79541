"""What every part of the mesh core shares, and the base class that holds it for them.

The parts (:mod:`.views`, :mod:`.failure`, :mod:`.dissemination`, :mod:`.anti_entropy`,
:mod:`.intake`, :mod:`.own_record`, :mod:`.gate`) are wired together by
:class:`p2pchat.mesh.core.Mesh`. Each reads the one config, draws from the one injected
generator (in the order calls arrive, so a seeded run repeats), looks members up, and
queues messages and events for the driver in the same two queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.drain import Drain, Outgoing
from p2pchat.mesh.events import MeshEvent
from p2pchat.mesh.membership import Membership

if TYPE_CHECKING:  # the core draws from an injected generator; it never seeds one
    import random


@dataclass(frozen=True, slots=True)
class Shared:
    config: MeshConfig
    rng: random.Random
    members: Membership
    outgoing: Outgoing
    events: Drain[MeshEvent]


class Part:
    def __init__(self, shared: Shared) -> None:
        self._config = shared.config
        self._rng = shared.rng
        self._members = shared.members
        self._me = shared.members.me
        self._outgoing = shared.outgoing
        self._events = shared.events
