"""Finding and reaching peers: mDNS discovery, static and remembered peers, invite
codes, and the addresses the link manager dials a peer at.

A handshake that proves a peer at an address (:meth:`Dialler.verified`) makes that
address a hint for later dials, remembers it (peers.json, the store) and introduces
the peer to the mesh. An invite code's identity also becomes a contact.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from p2pchat.addresses import format_host_port, parse_host_port
from p2pchat.chat.names import line_id
from p2pchat.discovery.address_watch import wait_for_new_addresses
from p2pchat.discovery.dial import dial_all
from p2pchat.discovery.known import Target
from p2pchat.discovery.mdns import Mdns, local_addresses, on_link_first, open_mdns
from p2pchat.discovery.network_watch import watch_network
from p2pchat.discovery.records import Announcement, DiscoveredPeer, PrivateAnnouncement
from p2pchat.discovery.watch import watch
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import StoreError
from p2pchat.identity import Identity, decode_peer_id, encode_peer_id
from p2pchat.networks.keys import Network
from p2pchat.node.admission import Admission
from p2pchat.node.announce import AnnounceKeys
from p2pchat.node.chat import ChatService
from p2pchat.node.events import DiscoveryNote, NodeEvent
from p2pchat.node.meshrun import MeshRunner
from p2pchat.node.networks import NetworkMembers
from p2pchat.node.settings import NodeSettings
from p2pchat.node.xmpp.bridge import XmppBridge
from p2pchat.session.core import SUPPORTED_VERSIONS
from p2pchat.tor.onion import is_onion_address
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import PresenceRecord, Status

log = logging.getLogger("p2pchat.node")

STATIC_RETRY_MAX = 60.0


class Dialler:
    def __init__(
        self,
        identity: Identity,
        settings: NodeSettings,
        *,
        chat: ChatService | None,
        admission: Admission,
        mesh: MeshRunner,
        rng: random.Random,
        emit: Callable[[NodeEvent], None],
        announce: AnnounceKeys | None = None,
        networks: NetworkMembers | None = None,
        xmpp: XmppBridge | None = None,
    ) -> None:
        self._identity = identity
        self._xmpp = xmpp
        self._networks = networks
        self._announce = announce
        self._peer_id = identity.peer_id
        self._settings = settings
        self._store = settings.store
        self._chat = chat
        self._admission = admission
        self._mesh = mesh
        self._rng = rng
        self._emit = emit
        self._hints: dict[bytes, list[str]] = {}
        # Private records no key of ours recognises, on our service type (§10.2): people
        # nearby who show themselves to their contacts only.
        self.anonymous_nearby: Callable[[], int] = lambda: 0
        # While discovery runs: where network watchers run, and each one's scope.
        self._network_place: tuple[Mdns, trio.Nursery, int] | None = None
        self._watching: dict[bytes, trio.CancelScope] = {}
        self._verified_addresses: set[str] = set()
        # Told when a handshake proves a peer on the LAN (the node moves a session with
        # it off Tor).
        self.found_direct: Callable[[bytes], None] | None = None
        # Whether the session with a peer goes through Tor now.
        self.through_tor: Callable[[bytes], bool] | None = None
        # Told the machine's new addresses when they change (our record names them; the
        # node says so, as a ``network_changed`` note).
        self.addresses_moved: Callable[[list[str]], None] | None = None

    # ------------------------------------------------------------------ addresses

    def hint(self, peer: bytes, address: str) -> None:
        """``peer`` was last seen at ``address``: dial it there first."""
        known = self._hints.setdefault(peer, [])
        if address in known:
            known.remove(address)
        known.insert(0, address)
        del known[4:]

    def resolve(self, peer: bytes) -> list[str]:
        """Where to dial ``peer``: hints, then the store's addresses, then its record's."""
        addresses = list(self._hints.get(peer, ()))
        if self._store is not None:
            addresses += [a for a in self._store.addresses(peer) if a not in addresses]
        mesh = self._mesh.mesh
        if mesh is not None:
            member = mesh.members.get(peer)
            if member is not None:
                addresses += [a for a in member.record.addresses if a not in addresses]
        # The LAN first, Tor last: a direct session is faster and needs no tor (§19).
        return sorted(addresses, key=is_onion_address)

    # ------------------------------------------------------------------ discovery

    async def run_discovery(self, port: int, *, task_status: trio.TaskStatus[None]) -> None:
        """Announce and browse on mDNS until cancelled; when the machine's addresses
        change (a cable, another Wi-Fi), mDNS follows them (Mdns.move)."""
        settings = self._settings
        async with open_mdns(
            own_peer_id=self._peer_id,
            supported_versions=SUPPORTED_VERSIONS,
            interfaces=settings.interfaces,
        ) as mdns:
            self.anonymous_nearby = lambda: len(mdns.anonymous)
            announcement: Announcement | PrivateAnnouncement
            fresh_token = None
            if self._announce is not None:
                mdns.recognise = self._announce.recognise  # contacts' private records
            if settings.private_discovery and self._announce is not None:
                fresh_token = self._announce.token
                announcement = PrivateAnnouncement(port, SUPPORTED_VERSIONS, fresh_token())
            else:
                announcement = Announcement(
                    peer_id=self._peer_id,
                    port=port,
                    versions=SUPPORTED_VERSIONS,
                    nick=settings.nick if settings.announce_nick else None,
                    status=Status(settings.status) if settings.announce_nick else None,
                )
            async with trio.open_nursery() as nursery:
                if self._xmpp is not None:  # beside our own announcement, not before it
                    nursery.start_soon(self._xmpp.run, mdns.zeroconf, mdns.addresses)
                if not settings.interfaces:  # chosen ones stay as they are
                    nursery.start_soon(self._follow_moves, mdns)
                self._network_place = (mdns, nursery, port)
                self.networks_changed()
                try:
                    await self._watch(mdns, announcement, fresh_token, task_status)
                finally:
                    self._network_place = None
                    self._watching.clear()

    async def _follow_moves(self, mdns: Mdns) -> None:
        """Each time the machine's addresses change: mDNS moves to the interfaces it
        has now, and the node is told (our record names the addresses)."""
        while True:
            before = mdns.addresses
            moved = await wait_for_new_addresses(before, lambda: local_addresses(None))
            log.info("the network changed: now on %s (was %s)", ", ".join(moved),
                     ", ".join(before))  # fmt: skip
            if self.addresses_moved is not None:
                self.addresses_moved(moved)
            try:
                await mdns.move(moved)
            except (OSError, RuntimeError) as error:
                # zeroconf could not join the new network: discovery carries on where
                # it can; the next change tries again.
                log.warning("mDNS could not follow the change of network: %s", error)
                self.note("network_changed", f"mDNS could not follow the new network: {error}",
                          error=str(error))  # fmt: skip

    def networks_changed(self) -> None:
        """Watch each of our networks on mDNS, and no other (one joined or left while
        running): a watcher starts or stops at once."""
        if self._network_place is None:
            return  # no mDNS: nothing to announce or browse
        mdns, nursery, port = self._network_place
        networks = self._networks.all() if self._networks is not None else []
        ours = {network.network_id: network for network in networks}
        for network_id in set(self._watching) - set(ours):
            self._watching.pop(network_id).cancel()
        for network_id, network in ours.items():
            if network_id not in self._watching:
                scope = self._watching[network_id] = trio.CancelScope()
                nursery.start_soon(self._watch_network, mdns, network, port, scope)

    async def _watch_network(
        self, mdns: Mdns, network: Network, port: int, scope: trio.CancelScope
    ) -> None:
        with scope:
            await watch_network(mdns.sibling(network.service_type), network, self._identity,
                                port, SUPPORTED_VERSIONS, self.network_member,
                                config=self._settings.connection,
                                authorize=self._admission.authorize)  # fmt: skip

    async def _watch(
        self,
        mdns: Mdns,
        announcement: Announcement | PrivateAnnouncement,
        fresh_token: Callable[[], str] | None,
        task_status: trio.TaskStatus[None],
    ) -> None:
        """Our own announcement, and the peers mDNS shows on our service type."""
        settings = self._settings
        await watch(
            mdns,
            self._identity,
            self.note,
            announcement=announcement,
            fresh_token=fresh_token,
            on_verified=self.verified,
            authorize=self._admission.authorize,
            # In private discovery we dial only contacts: dialling a stranger would
            # show it who we are (our identity goes out in handshake message 3).
            wanted=self._admission.wanted
            if settings.contacts_only or settings.private_discovery
            else None,
            config=settings.connection,
            instead=self._move_off_tor,
            task_status=task_status,
        )

    def _move_off_tor(self, peer: DiscoveredPeer) -> bool:
        """A record of a peer we share a session with through Tor: that session moves
        to the record's addresses (those on one of our networks first), and the dial
        proves the id; no verification, whose connection the peer would take for the
        session's replacement and then see closed. False: verify it as usual."""
        if self.through_tor is None or self.found_direct is None:
            return False
        if not self.through_tor(peer.peer_key):
            return False
        for host in reversed(on_link_first(list(peer.addresses))):
            self.hint(peer.peer_key, format_host_port(host, peer.port))
        self.found_direct(peer.peer_key)
        return True

    async def keep_trying(self, targets: list[Target]) -> None:
        """Dial static and remembered peers until each answered once, backing off. One
        we refused (a stranger, in contacts-only mode) is not dialled again."""
        delay = 1.0
        waiting = list(targets)
        refused: set[str] = set()

        def report(name: str, text: str, **fields: Any) -> None:
            if name == "refused" and not fields.get("by_peer"):
                refused.add(fields["address"])
            self.note(name, text, **fields)

        while waiting:
            await self._dial(waiting, report)
            done = self._verified_addresses | refused
            waiting = [t for t in waiting if t.address not in done and self._dialable(t)]
            if not waiting:
                return
            await trio.sleep(delay * self._rng.uniform(0.5, 1.5))
            delay = min(STATIC_RETRY_MAX, delay * 2)

    async def connect(self, targets: list[Target]) -> list[DiscoveryNote]:
        """Dial ``targets`` now: what happened, as the notes also emitted as events."""
        notes: list[DiscoveryNote] = []

        def report(name: str, text: str, **fields: Any) -> None:
            notes.append(DiscoveryNote(name, text, fields))
            self.note(name, text, **fields)

        await self._dial(targets, report)
        return notes

    async def _dial(self, targets: list[Target], report: Any) -> None:
        """Invite codes with their token, the rest under our usual policy."""
        codes = [t for t in targets if t.source == "invite" and t.peer_id]
        others = [t for t in targets if t not in codes and self._dialable(t)]
        if self._announce is not None:
            for code in codes:
                if code.peer_id and code.invite:
                    self._announce.code_used(decode_peer_id(code.peer_id), code.invite)
        async with trio.open_nursery() as nursery:
            if codes:
                verified, policy = self._code_verified, self._admission.authorize_chosen
                nursery.start_soon(
                    partial(
                        dial_all,
                        codes,
                        self._identity,
                        report,
                        verified,
                        authorize=policy,
                        config=self._settings.connection,
                    )
                )
            if others:
                verified, policy = self.verified, self._admission.authorize
                nursery.start_soon(
                    partial(
                        dial_all,
                        others,
                        self._identity,
                        report,
                        verified,
                        authorize=policy,
                        config=self._settings.connection,
                    )
                )

    def _dialable(self, target: Target) -> bool:
        """In contacts-only mode, a target known to be a stranger (a remembered address,
        say) is not dialled; one without an id is, and refused if a stranger answers."""
        if not self._settings.contacts_only or target.peer_id is None:
            return True
        if target.source == "invite":
            return True
        return self._admission.wanted(target.peer_id)

    # ------------------------------------------------------------------ proofs

    def verified(self, peer_id: str, address: str, nick: str | None = None) -> None:
        """A handshake proved ``peer_id`` at ``address``: remember it, join it."""
        self._verified_addresses.add(address)
        key = decode_peer_id(peer_id)
        if key == self._identity.public_key:
            if self._settings.known_peers is not None:
                self._settings.known_peers.remember(peer_id, address, nick)  # never raises
            return
        self._remember(key, address, nick)
        if self.found_direct is not None and not is_onion_address(address):
            self.found_direct(key)  # a session through Tor moves to the LAN (§19)
        mesh = self._mesh.mesh
        if mesh is not None:
            mesh.mark_proven(key)
            mesh.introduce([key], trio.current_time())
            self._mesh.pump()

    def network_member(self, peer: bytes, address: str, network: Network) -> None:
        """A network handshake proved ``peer`` a member of ``network`` at ``address``."""
        if self._networks is not None:
            self._networks.joined(peer, network)
        peer_id = encode_peer_id(peer)
        self.note("verified", f"{line_id(peer_id)} at {address}: a member of {network.name}",
                  id=peer_id, addresses=[address], network=network.name)  # fmt: skip
        self.verified(peer_id, address)

    def _code_verified(self, peer_id: str, address: str, nick: str | None = None) -> None:
        """A handshake proved an invite code's identity: it becomes a contact (we used
        its code on purpose), then joins like any verified peer."""
        if self._chat is not None and peer_id != self._peer_id:
            try:
                self._chat.add_contact(decode_peer_id(peer_id), nick=nick or "")
            except (StoreError, ValueError) as error:
                log.warning("cannot add %s as a contact: %s", peer_id, error)
        self.verified(peer_id, address, nick)

    def dialled_us(self, record: PresenceRecord, host: str) -> None:
        """A contact that dialled us (from ``host``) told its listening addresses in its
        signed presence record: those on ``host`` are remembered like an address we
        proved ourselves, so that after a restart we dial it at once instead of waiting
        for its retry (an invite code's acceptor learns the dialler's port this way)."""
        key = bytes(record.owner)
        if not self._admission.is_contact(key):
            return  # a stranger's address is no reason to dial it at our next start
        for address in record.addresses:
            try:
                on_host = parse_host_port(address)[0] == host
            except ValueError:
                continue
            if on_host and address not in self._hints.get(key, ()):
                self._remember(key, address, str(record.nick) or None)

    def remember_address(self, key: bytes, address: str) -> None:
        """A contact told us where it listens (its onion address, §19.2)."""
        self._remember(key, address, None)

    def _remember(self, key: bytes, address: str, nick: str | None) -> None:
        """``key`` listens at ``address``: dial it there first, now and after a restart."""
        if self._settings.known_peers is not None:
            self._settings.known_peers.remember(encode_peer_id(key), address, nick)  # never raises
        self.hint(key, address)
        if self._store is not None:
            # Only a hint for later dials: a full disk must not stop the join (nor the
            # discovery task that called us, nor the node with it).
            try:
                self._store.remember_address(key, address, now=now_ms())
            except StoreError as error:
                if disk_fault(error) is None:
                    log.warning(
                        "cannot remember %s at %s: %s", line_id(encode_peer_id(key)), address, error
                    )

    def note(self, name: str, text: str, **fields: Any) -> None:
        self._emit(DiscoveryNote(name, text, fields))
