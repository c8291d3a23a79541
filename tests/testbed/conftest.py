from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench.testbed.lab import LabUnavailable, check_available
from bench.testbed.netns import lab_namespaces


@pytest.fixture
def testbed() -> Iterator[None]:
    """Skip (fail in CI) where namespaces and TAP devices cannot be made; afterwards,
    check that no namespace of this process is left."""
    try:
        check_available()
    except LabUnavailable as reason:
        # CI installs everything the lab needs, so there a missing lab is a failure.
        if os.environ.get("P2PCHAT_LAB_REQUIRED") == "1":
            pytest.fail(f"testbed unavailable: {reason}")
        pytest.skip(f"testbed unavailable: {reason}")
    yield
    mine = f"tb-{os.getpid()}-"
    assert [name for name in lab_namespaces() if name.startswith(mine)] == []
