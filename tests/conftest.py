"""Test-wide safety: nothing a test starts may use mDNS on the machine's real interfaces."""

from __future__ import annotations

import os

# Inherited by every daemon a test starts: the default interface list becomes loopback
# only. Tests that need other interfaces (the lab) pass --interface explicitly.
os.environ["P2PCHAT_INTERFACES"] = "127.0.0.1"


from collections.abc import Iterator

import pytest

from tests.discovery.nodes import Node


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """Daemons a test starts; all are stopped (SIGTERM) when it ends."""
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()
