"""Fixtures: short profile folders, victim daemons, the sybil identities."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.adversary.bounds import SYBILS
from tests.adversary.daemon import Daemon
from tests.adversary.identities import sybil_records


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path: a control socket's path must stay under 100 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="p2padv-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def daemons(short_tmp: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons by name (``start("victim", "--peer", ...)``); all stop at the end."""
    started: list[Daemon] = []

    def start(name: str, *args: str, **options: Any) -> Daemon:
        options.setdefault("log", short_tmp / f"{name}.stderr")
        daemon = Daemon(options.pop("home", short_tmp / name), *args, **options)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def sybils() -> list[dict[str, Any]]:
    """SYBILS self-signed records of fresh identities (cached across runs in /tmp)."""
    return sybil_records(SYBILS)
