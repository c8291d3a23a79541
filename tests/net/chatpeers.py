"""Chat nodes for tests: real loopback sessions, a real store per node, restartable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from p2pchat.chat.relay import RelayLimits
from p2pchat.identity import Identity
from p2pchat.net.slots import LinkLimits
from p2pchat.node.chat import LINK_RETRY_MS, MAX_INPUT_BYTES, ChatService, ChatSettings
from p2pchat.node.events import MessageIn, NodeEvent, Receipt
from p2pchat.node.files import FileSettings, OfferLimits
from p2pchat.node.node import Node, NodeSettings, crashable_node
from p2pchat.store import DATABASE_FILE, Store, open_store
from p2pchat.wallclock import now_ms


@dataclass(eq=False)
class ChatPeer:
    """One person's node: identity and database survive stops and restarts."""

    name: str
    home: Path
    identity: Identity = field(default_factory=Identity.generate)
    relay: bool = True
    limits: LinkLimits = field(default_factory=LinkLimits)
    contacts_only: bool = False
    private_discovery: bool = False  # hidden from whoever cannot knock (§10.2)
    link_retry_ms: int = LINK_RETRY_MS  # the chat backstop for what went over a session
    max_input_bytes: int = MAX_INPUT_BYTES  # chat input held before more is dropped
    downloads: Path | None = None  # where accepted files go (none accepted without)
    auto_accept: int = 0  # a contact's files up to this size are accepted unasked
    events: list[NodeEvent] = field(default_factory=list)
    node: Node | None = None
    store: Store | None = None
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event | None = None

    @property
    def key(self) -> bytes:
        return self.identity.public_key

    @property
    def chat(self) -> ChatService:
        assert self.node is not None and self.node.chat is not None, f"{self.name} is stopped"
        return self.node.chat

    @property
    def address(self) -> str:
        assert self.node is not None
        return self.node.addresses[0]

    async def start(self, nursery: trio.Nursery, *, port: int = 0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.store = open_store(self.home / DATABASE_FILE)
        settings = NodeSettings(
            nick=self.name,
            host="127.0.0.1",
            port=port,
            mdns=False,
            store=self.store,
            chat=ChatSettings(
                relay=RelayLimits(enabled=self.relay),
                link_retry_ms=self.link_retry_ms,
                max_input_bytes=self.max_input_bytes,
            ),
            limits=self.limits,
            contacts_only=self.contacts_only,
            private_discovery=self.private_discovery,
            files=FileSettings(
                downloads=self.downloads, offers=OfferLimits(auto_accept=self.auto_accept)
            ),
        )
        self._stopped = trio.Event()
        await nursery.start(self._run, settings)

    async def _run(self, settings: NodeSettings, *, task_status: trio.TaskStatus[None]) -> None:
        assert self._stopped is not None and self.store is not None
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                async with crashable_node(self.identity, settings) as (node, _):
                    self.node = node
                    task_status.started()
                    async for event in node.events:
                        self.events.append(event)
        finally:
            self.node = None
            self.store.close()
            self._stopped.set()

    async def stop(self) -> None:
        """Leave the mesh the way a quitting user does, then stop."""
        assert self.node is not None
        await self.node._leave()
        await self.crash()

    async def crash(self) -> None:
        """Stop at once: no leave announced, sessions simply vanish."""
        assert self._scope is not None and self._stopped is not None
        self._scope.cancel()
        await self._stopped.wait()

    def introduce(self, other: ChatPeer) -> None:
        assert self.node is not None
        self.node.introduce(other.identity.peer_id, other.address)

    def befriend(self, other: ChatPeer) -> None:
        assert self.store is not None
        self.store.add_contact(other.key, petname=other.name, now=now_ms())

    def connected_to(self, other: ChatPeer) -> bool:
        """A session with ``other`` is up (False while this peer is not running)."""
        return self.node is not None and self.node.links.is_connected(other.key)

    def sees_online(self, other: ChatPeer) -> bool:
        """This peer's mesh has ``other`` online."""
        return self.node is not None and self.node.is_online(other.key)

    def received(self) -> list[MessageIn]:
        return [e for e in self.events if isinstance(e, MessageIn)]

    def receipts(self, state: str) -> set[bytes]:
        return {e.msg_id for e in self.events if isinstance(e, Receipt) and e.state == state}


async def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = trio.current_time()
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(0.02)
        return trio.current_time() - start
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
