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


def start(host: Host, home: Path) -> Node:
    node = Node(home, "--listen", f"{host.address}:0", "--interface", host.address,
                prefix=host.exec_prefix)  # fmt: skip
    host.processes.append(node.process)
    return node


def test_doctor_on_a_healthy_host_with_a_running_node(lab: Lab, tmp_path: Path) -> None:
    host, other = lab.add_host(), lab.add_host()
    nodes = [start(host, tmp_path / "a"), start(other, tmp_path / "b")]
    try:
        code, report = doctor(host, tmp_path / "a")
    finally:
        for node in nodes:
            node.stop()
    findings = report["findings"]
    checks = {(f["check"], f["ok"]) for f in findings}  # type: ignore[attr-defined]
    assert ("mDNS", True) in checks and ("listening", True) in checks, report
    assert ("other hosts", True) in checks, report
    heard = next(f for f in findings if f["check"] == "other hosts")  # type: ignore[attr-defined]
    assert other.address in heard["detail"] and host.address + ")" not in heard["detail"]
    assert code == 0 and report["healthy"] is True


def test_doctor_alone_with_its_own_node_does_not_say_multicast_works(
    lab: Lab, tmp_path: Path
) -> None:
    """Our own node's announcements and our own probe come back through this host: they
    prove nothing about the network, so with nobody else there the verdict is a failure
    with advice (it was "ok" before)."""
    host = lab.add_host()
    node = start(host, tmp_path / "a")
    try:
        code, report = doctor(host, tmp_path / "a")
    finally:
        node.stop()
    findings = {f["check"]: f for f in report["findings"]}  # type: ignore[attr-defined]
    assert findings["mDNS"]["ok"] is True and findings["listening"]["ok"] is True
    assert findings["other hosts"]["ok"] is False, report
    assert "invite code" in findings["other hosts"]["advice"]
    assert code == 1 and report["healthy"] is False


def test_doctor_without_multicast_advises_an_invite(lab: Lab, tmp_path: Path) -> None:
    host = lab.add_host()
    subprocess.run(["ip", "-n", host.name, "link", "set", "eth0", "multicast", "off"],
                   check=True)  # fmt: skip
    code, report = doctor(host, tmp_path / "b")
    assert code == 1 and report["healthy"] is False
    advice = " ".join(f["advice"] for f in report["findings"])  # type: ignore[attr-defined]
    assert "no multicast on eth0: use an invite code" in advice
    assert "start one: p2pchat daemon" in advice
