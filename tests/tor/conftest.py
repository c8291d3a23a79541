"""The private Tor network, made and started for a test and stopped after it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tor.privnet import TorNetwork, start_network


@pytest.fixture
def network(tmp_path: Path) -> Iterator[TorNetwork]:
    if shutil.which("tor") is None or shutil.which("tor-gencert") is None:
        if os.environ.get("P2PCHAT_LAB_REQUIRED") == "1":
            pytest.fail("the private Tor network needs tor (Debian package tor)")
        pytest.skip("the private Tor network needs tor (Debian package tor)")
    made, _ = start_network(tmp_path / "net")
    try:
        yield made
    finally:
        made.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that runs a private Tor network (a dozen tor processes) shares one
    worker: side by side on a busy 2-core machine their young networks starved each
    other until a client found no path for a circuit within a minute."""
    for item in items:
        path = str(item.path)
        if "/tests/tor/" in path and ("network" in getattr(item, "fixturenames", ())
                                       or path.endswith("test_onion_lab.py")):  # fmt: skip
            item.add_marker(pytest.mark.xdist_group("tor-network"))
