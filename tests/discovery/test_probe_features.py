"""The short sessions that prove an identity (an address dialled, an mDNS record
verified) carry the node's features: the peer may keep such a session as its link with
us, and must not conclude from it that we lack a feature (docs/protocol.md §16.3)."""

from __future__ import annotations

import dataclasses

from p2pchat.discovery.dial import probe
from p2pchat.discovery.known import Target
from p2pchat.discovery.verify import Verdict, verify_peer
from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.wire.messages import FILES_FEATURE
from tests.discovery.test_watch_contacts_only import seen
from tests.net.helpers import echo, running_server

BASE = ConnectionConfig()
WITH_FILES = dataclasses.replace(
    BASE, session=dataclasses.replace(BASE.session, features=frozenset({FILES_FEATURE}))
)


async def test_a_probe_and_a_verification_offer_the_nodes_features() -> None:
    features: list[frozenset[str]] = []

    async def handler(connection: SecureConnection) -> None:
        features.append(connection.features)
        await echo(connection)

    me = Identity.generate()
    async with running_server(handler, config=WITH_FILES) as server:
        target = Target("127.0.0.1", server.port, peer_id=server.identity.peer_id)
        await probe(target, me)
        await probe(target, me, config=WITH_FILES)
        record = seen(server.identity, "server", server.port).peer
        result = await verify_peer(record, me, config=WITH_FILES)
        assert result.verdict is Verdict.VERIFIED, result.detail
    assert features == [frozenset(), frozenset({FILES_FEATURE}), frozenset({FILES_FEATURE})]
