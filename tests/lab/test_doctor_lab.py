"""`p2pchat doctor` on real (namespaced) hosts: healthy, and with multicast switched off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.discovery.nodes import Node
from tests.lab.netlab import Host, Lab


def doctor(host: Host, home: Path) -> tuple[int, dict[str, object]]:
    result = host.run(sys.executable, "-m", "p2pchat", "--home", str(home), "doctor",
                      "--interface", host.address, "--json", timeout=60)  # fmt: skip
    return result.returncode, json.loads(result.stdout)


def test_doctor_on_a_healthy_host_with_a_running_node(lab: Lab, tmp_path: Path) -> None:
    host = lab.add_host()
    node = Node(tmp_path / "a", "--listen", f"{host.address}:0", "--interface", host.address,
                prefix=host.exec_prefix)  # fmt: skip
    host.processes.append(node.process)
    try:
        code, report = doctor(host, tmp_path / "a")
    finally:
        node.stop()
    checks = {(f["check"], f["ok"]) for f in report["findings"]}  # type: ignore[attr-defined]
    assert ("mDNS", True) in checks and ("listening", True) in checks, report
    assert code == 0 and report["healthy"] is True


def test_doctor_without_multicast_advises_an_invite(lab: Lab, tmp_path: Path) -> None:
    host = lab.add_host()
    subprocess.run(["ip", "-n", host.name, "link", "set", "eth0", "multicast", "off"],
                   check=True)  # fmt: skip
    code, report = doctor(host, tmp_path / "b")
    assert code == 1 and report["healthy"] is False
    advice = " ".join(f["advice"] for f in report["findings"])  # type: ignore[attr-defined]
    assert "no multicast on eth0: use an invite code" in advice
    assert "start one: p2pchat daemon" in advice
