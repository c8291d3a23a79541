from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.netlab import Lab, LabUnavailable, leftover_namespaces


@pytest.fixture
def lab() -> Iterator[Lab]:
    try:
        made = Lab()
    except LabUnavailable as reason:
        print(f"lab skipped: {reason}")
        pytest.skip(f"network namespaces unavailable: {reason}")
    try:
        yield made
    finally:
        made.close()
        assert leftover_namespaces(made.prefix) == [], "the lab left namespaces behind"
