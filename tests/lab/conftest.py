from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.lab.netlab import Lab, LabUnavailable, leftover_namespaces


@pytest.fixture
def lab() -> Iterator[Lab]:
    try:
        made = Lab()
    except LabUnavailable as reason:
        # CI installs everything the lab needs, so there a missing lab is a failure.
        if os.environ.get("P2PCHAT_LAB_REQUIRED") == "1":
            pytest.fail(f"network namespaces unavailable: {reason}")
        print(f"lab skipped: {reason}")
        pytest.skip(f"network namespaces unavailable: {reason}")
    try:
        yield made
    finally:
        made.close()
        assert leftover_namespaces(made.prefix) == [], "the lab left namespaces behind"
