"""What the node's onion service does with a contact's OnionAddress (§19.2), without
tor: keeps a contact's valid address, ignores a stranger's and refuses a bad one; and
tells a contact ours only on a session that lists onion/1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from p2pchat.identity import Identity
from p2pchat.net.transports import Transports
from p2pchat.node.onion import OnionService, onion_seed
from p2pchat.tor.onion import onion_address
from p2pchat.tor.process import TorSettings
from p2pchat.wire.messages import ONION_FEATURE, OnionAddress

CONTACT, STRANGER = b"c" * 32, b"s" * 32


def service(tmp_path: Path) -> tuple[OnionService, list[tuple[bytes, str]]]:
    made = OnionService(Identity(bytes(32)), TorSettings(tmp_path), Transports(), lambda e: None)
    kept: list[tuple[bytes, str]] = []
    made.is_contact = lambda peer: peer == CONTACT
    made.remember = lambda peer, address: kept.append((peer, address))
    return made, kept


def test_a_contacts_valid_address_is_kept_and_nothing_else(tmp_path: Path) -> None:
    onion, kept = service(tmp_path)
    theirs = onion_address(os.urandom(32)) + ":7676"
    onion.received(STRANGER, OnionAddress(theirs))
    mistyped = ("b" if theirs[0] != "b" else "c") + theirs[1:]
    for bad in (mistyped, "198.18.0.5:7676", "x.onion:7676", "not an address"):
        onion.received(CONTACT, OnionAddress(bad))
    assert kept == []
    onion.received(CONTACT, OnionAddress(theirs))
    assert kept == [(CONTACT, theirs)]


def test_the_address_is_the_identitys_and_the_key_is_not(tmp_path: Path) -> None:
    onion, _ = service(tmp_path)
    assert onion.onion == onion_address(onion_seed(Identity(bytes(32))))
    assert onion_seed(Identity(bytes(32))) != bytes(32)
    other = OnionService(Identity(bytes([1]) * 32), TorSettings(tmp_path), Transports(),
                         lambda e: None)  # fmt: skip
    assert other.onion != onion.onion


class Links:
    def __init__(self, features: dict[bytes, frozenset[str]]) -> None:
        self.links = {peer: _Link(f) for peer, f in features.items()}
        self.sent: list[tuple[bytes, Any]] = []

    def send(self, peer: bytes, message: Any) -> bool:
        self.sent.append((peer, message))
        return True


class _Link:
    def __init__(self, features: frozenset[str]) -> None:
        self.connection = type("Connection", (), {"features": features})()


def test_ours_goes_to_contacts_on_sessions_that_list_the_feature_once_published(
    tmp_path: Path,
) -> None:
    onion, _ = service(tmp_path)
    old = b"o" * 32  # a contact whose p2pchat does not know onion/1
    links = Links({CONTACT: frozenset({ONION_FEATURE}), STRANGER: frozenset({ONION_FEATURE}),
                   old: frozenset()})  # fmt: skip
    onion.links = links  # type: ignore[assignment]
    onion.is_contact = lambda peer: peer in (CONTACT, old)
    onion.session_up(CONTACT)
    assert links.sent == [], "nothing before the service is published"
    onion.address = onion.onion + ":7676"
    for peer in (CONTACT, STRANGER, old):
        onion.session_up(peer)
    assert links.sent == [(CONTACT, OnionAddress(onion.address))]
