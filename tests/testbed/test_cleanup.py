"""A driver stopped mid-run leaves nothing behind; a killed one leaves leftovers that make
the next lab refuse to start until ``--clean`` removes them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from bench.testbed.lab import CLEAN_COMMAND, Lab, LabLeftovers
from bench.testbed.netns import lab_links, lab_namespaces, running

pytestmark = [pytest.mark.xdist_group("testbed"), pytest.mark.usefixtures("testbed")]

REPO = Path(__file__).resolve().parents[2]


def start_driver() -> tuple[subprocess.Popen[str], dict[str, object]]:
    """``tests.testbed.driver`` with its lab open: the process and what it reported."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "tests.testbed.driver"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None
    line = driver.stdout.readline()
    assert line, f"the driver exited with {driver.wait()} before its lab was open"
    return driver, json.loads(line)


def made_by(prefix: object) -> list[str]:
    assert isinstance(prefix, str)
    return [name for name in lab_namespaces() + lab_links() if name.startswith(prefix)]


async def gone(pid: object) -> None:
    assert isinstance(pid, int)
    while running(pid):  # an orphan dies on its own (SIGTERM from the kernel), soon
        await trio.sleep(0.01)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_a_driver_stopped_by_a_signal_removes_everything_it_made(
    stop: signal.Signals,
) -> None:
    driver, report = start_driver()
    assert len(made_by(report["prefix"])) == 2
    assert running(report["switch"]) and running(report["sleeper"])  # type: ignore[arg-type]
    driver.send_signal(stop)
    driver.wait(timeout=60)
    assert made_by(report["prefix"]) == []
    assert not running(report["switch"])  # type: ignore[arg-type]
    assert not running(report["sleeper"])  # type: ignore[arg-type]


async def test_after_a_killed_driver_a_lab_refuses_to_start_until_cleaned() -> None:
    driver, report = start_driver()
    driver.kill()  # no cleanup at all
    driver.wait(timeout=60)
    await gone(report["switch"])  # the switch follows its driver; its TAP devices vanish
    leftovers = made_by(report["prefix"])
    assert len(leftovers) == 2 and running(report["sleeper"])  # type: ignore[arg-type]

    with pytest.raises(LabLeftovers, match="left 2 network namespaces") as refusal:
        async with Lab(1):
            pass
    assert CLEAN_COMMAND in str(refusal.value)
    assert made_by(report["prefix"]) == leftovers  # refusing touched nothing

    cleaned = subprocess.run(
        [sys.executable, "-m", "bench.testbed.lab", "--clean"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "removed 2 network namespaces" in cleaned.stdout
    assert made_by(report["prefix"]) == []
    assert not running(report["sleeper"])  # type: ignore[arg-type]
    async with Lab(1) as lab:
        assert len(lab.hosts) == 1
