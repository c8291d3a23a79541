"""Our onion service (--tor, docs/protocol.md §19): the node's own tor, started with it,
publishing one onion service that leads to the node's listener, and lending its SOCKS
port to the node's dials (net/transports.py) for as long as it runs.

The service's key is derived from the profile's identity key, so the address stays the
same from one start to the next and is sealed whenever the identity is (a locked
profile), with no second secret to keep; the derivation is one way, so the onion key
tells nothing of the identity key. The address goes only into invite codes and to
contacts inside their encrypted sessions (onion/1), never into mDNS or the mesh's gossip.

If tor is missing or fails, the node says so (a TorState event) and goes on without it:
the LAN side never depends on Tor.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import trio

from p2pchat.addresses import format_host_port, parse_host_port
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.net.links import LinkManager
from p2pchat.net.transports import Transports
from p2pchat.node.events import NodeEvent, TorState
from p2pchat.tor.control import Reply, TorControl, TorControlError
from p2pchat.tor.onion import onion_address, parse_onion, tor_key
from p2pchat.tor.process import TorError, TorSettings, run_tor
from p2pchat.wire.messages import ONION_FEATURE, OnionAddress

log = logging.getLogger("p2pchat.tor")

ONION_PORT = 7676  # the port our onion service offers (any will do: it is ours alone)
BOOTSTRAP_WITHIN = 300.0  # s for tor to join the Tor network before we give up
PROGRESS_EVERY = 0.5  # s between looks at tor's bootstrap progress


def onion_seed(identity: Identity) -> bytes:
    """The onion service's key seed: one way from the identity's."""
    return hashlib.blake2b(identity.seed, digest_size=32, person=b"p2pchat-onion").digest()


class OnionService:
    def __init__(
        self,
        identity: Identity,
        settings: TorSettings,
        transports: Transports,
        emit: Callable[[NodeEvent], None],
    ) -> None:
        self._seed = onion_seed(identity)
        self._settings = settings
        self._transports = transports
        self._emit = emit
        self.onion = onion_address(self._seed)  # known before tor runs: it is ours
        self.address = ""  # ``onion:port`` once published
        self.state = TorState("starting")
        # Set by the node: whom we tell our address (contacts in session), and where a
        # contact's own address goes (remembered to dial it there, after the LAN).
        self.links: LinkManager | None = None
        self.is_contact: Callable[[bytes], bool] = lambda peer: False
        self.remember: Callable[[bytes, str], None] = lambda peer, address: None

    def _say(self, state: TorState) -> None:
        self.state = state
        self._emit(state)

    async def run(self, local: tuple[str, int]) -> None:
        """Until cancelled: tor started, bootstrapped, our service published for the
        listener at ``local``. A failure is said, logged, and ends only this."""
        self._say(TorState("starting"))
        try:
            async with run_tor(self._settings.folder, self._settings) as tor:
                self._transports.tor_socks = tor.socks
                await self._bootstrap(tor.control)
                await tor.control.command("SETEVENTS HS_DESC")
                service = await tor.control.add_onion(tor_key(self._seed), ONION_PORT, local)
                # "on" only once a directory has our descriptor: until then nobody can
                # reach us (tor retries the upload by itself; we wait as long as it takes).
                self._say(TorState("connecting", 100, "publishing our onion service"))
                await _uploaded(tor.control.events, service)
                self.address = format_host_port(f"{service}.onion", ONION_PORT)
                self._say(TorState("on", 100, address=self.address))
                self._tell_everyone()
                await trio.sleep_forever()
        except (TorError, TorControlError) as error:
            log.warning("Tor is off: %s", error)
            self._say(TorState("failed", reason=str(error)))
        finally:
            self._transports.tor_socks = None
            self.address = ""

    # ---------------------------------------------------------------- contacts

    def session_up(self, peer: bytes) -> None:
        """A session opened: a contact learns our onion address over it (§19.2), if the
        session lists onion/1 and our service is published."""
        links = self.links
        if not self.address or links is None or not self.is_contact(peer):
            return
        link = links.links.get(peer)
        if link is not None and ONION_FEATURE in link.connection.features:
            links.send(peer, OnionAddress(self.address))

    def _tell_everyone(self) -> None:
        for peer in list(self.links.links) if self.links is not None else []:
            self.session_up(peer)

    def received(self, peer: bytes, message: OnionAddress) -> None:
        """A contact's onion address: remembered (after its LAN addresses) if it is a
        valid v3 one; a stranger's is ignored (it would let strangers make us dial)."""
        if not self.is_contact(peer):
            log.debug("ignoring an onion address from %s: not a contact", encode_peer_id(peer))
            return
        try:
            host, _ = parse_host_port(message.address)
            parse_onion(host)
        except ValueError as error:
            log.debug("ignoring an onion address from %s: %s", encode_peer_id(peer), error)
            return
        self.remember(peer, message.address)

    async def _bootstrap(self, control: TorControl) -> None:
        said = -1
        with trio.move_on_after(BOOTSTRAP_WITHIN):
            while True:
                progress, step = await control.bootstrap_progress()
                if progress != said:
                    said = progress
                    self._say(TorState("connecting", progress, step))
                if progress >= 100:
                    return
                await trio.sleep(PROGRESS_EVERY)
        raise TorError(f"tor has not connected to the Tor network in {BOOTSTRAP_WITHIN:g} s "
                       f"(its last step: {self.state.step or 'none'})")  # fmt: skip


async def _uploaded(events: trio.MemoryReceiveChannel[Reply], service: str) -> None:
    """Until tor says our service's descriptor reached a directory."""
    async for event in events:
        words = event.lines[0].split() if event.lines else []
        if words[:3] == ["HS_DESC", "UPLOADED", service]:
            return
