"""Test-wide safety (nothing a test starts may use mDNS on the machine's real
interfaces), and how the run is spread over pytest-xdist workers."""

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

# Workers per core for ``-n auto`` (set in pyproject.toml). Many tests spend their time
# waiting on daemons, sockets and timers rather than computing, so more workers than
# cores pay: measured on 2 cores, see docs/testing.md.
WORKERS_PER_CORE = 2


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """Parallel when the run takes in a folder (the whole suite, ``tests/net``); serial
    when it names only files or tests (``tests/x.py::test``), where starting workers
    (seconds of imports each) costs more than it saves. ``-n N`` or
    PYTEST_XDIST_AUTO_NUM_WORKERS overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own hook reads it
    here = config.invocation_params.dir
    if not any((here / arg.split("::")[0]).is_dir() for arg in config.args):
        return 0
    return WORKERS_PER_CORE * len(os.sched_getaffinity(0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked slow run first. Handed out at the start, they spread over the
    workers; handed out last, one of them would keep its worker busy long after the
    others had finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """Daemons a test starts; all are stopped (SIGTERM) when it ends."""
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()
