"""The whole testbed, smallest scenario end to end: 3 hosts, p2pchat (with a room) and
Serf, every phase for a moment. Whether it is fast is the bench's figure; here, that
every phase runs and measures something on both systems."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import trio

from bench.testbed.__main__ import measure, parse_args
from bench.testbed.run import Durations

# The idle and soak windows outlast two quiet periods of a 3-node mesh (each pair is
# probed once per 0.75 s x 3, docs/protocol.md §12.2): a 1 s idle window, and later a
# 1.2 s soak window, once held no frame at all.
TINY = Durations(
    first_window=2, ready_timeout=120, settle=0.5, idle=5, churn=1, loss_window=1,
    changes=2, changes_at_loss=1, silent_hosts=1, change_timeout=30, crash_timeout=60,
    room_messages=2,
)  # fmt: skip


@pytest.mark.slow
def test_three_hosts_run_every_phase_on_both_systems(testbed: None, tmp_path: Path) -> None:
    if shutil.which("serf") is None:
        if os.environ.get("P2PCHAT_LAB_REQUIRED") == "1":
            pytest.fail("serf is not installed (.ci/run installs it)")
        pytest.skip("serf is not installed")
    args = parse_args(["--nodes", "3", "--seed", "7", "--soak-minutes", "0.1"])
    results = trio.run(measure, args, tmp_path, TINY)
    for name in ("p2pchat", "serf"):
        result = results[name]
        spread = result["presence"]["seen_by_100pct_s"]
        assert spread["n"] == 2 and spread["median"] is not None, name
        assert isinstance(result["presence"]["misses"], list), name  # who missed what
        assert result["cold_start"]["all_see_all_s"] is not None, name
        assert result["idle"]["out_bytes_per_s"] > 0, name
        assert result["idle"]["rss_mib"] > 0, name
        assert set(result["loss"]) == {"0.01", "0.05", "0.1"}, name
        assert result["crash"]["silent_hosts"] == 1, name
        assert result["crash"]["offline_everywhere_s"]["median"] is not None, name
        assert result["false_offline_marks"]["total"] == 0, name
        assert result["soak"]["loss"] == 0.05 and result["soak"]["out_bytes_per_s"] > 0, name
        assert result["false_offline_marks"]["soak"] == 0, name
    room = results["p2pchat"]["rooms"]["3"]
    assert room["delivered_pct"] == 100.0
    assert room["bytes_per_member_per_message"] > 0


def test_the_command_refuses_what_it_does_not_know(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--only", "consul"])
    with pytest.raises(SystemExit):
        parse_args(["--nodes", "2"])
    assert parse_args(["--quick"]).nodes == 20
    assert parse_args([]).nodes == 100
    assert parse_args(["--only", "serf"]).only == {"serf"}
