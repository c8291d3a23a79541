"""Test-wide safety: nothing a test starts may use mDNS on the machine's real interfaces."""

from __future__ import annotations

import os

# Inherited by every daemon a test starts: the default interface list becomes loopback
# only. Tests that need other interfaces (the lab) pass --interface explicitly.
os.environ["P2PCHAT_INTERFACES"] = "127.0.0.1"


from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.discovery.nodes import Node
from tests.timeouts import pytest_pyfunc_call, pytest_timeout_set_timer  # noqa: F401

# Hypothesis' per-example deadline (200 ms) and its too-slow health check are wall-clock
# bounds: on a busy machine they fail correct code. Properties are about results, and
# a hang is pytest-timeout's business.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """Daemons a test starts; all are stopped (SIGTERM) when it ends."""
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()
