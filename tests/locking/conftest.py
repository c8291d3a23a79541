from __future__ import annotations

import pytest

from p2pchat.locking import sealed


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests seal with Argon2id's cheapest allowed cost (the file records
    it, so unsealing follows); the real cost is measured in bench/locking.py and used
    by the tests that run p2pchat as a process."""
    monkeypatch.setattr(sealed, "OPSLIMIT", 1)
    monkeypatch.setattr(sealed, "MEMLIMIT", 8 << 20)
