"""A machine that joins a network while running (a cable plugged in, a Wi-Fi joined)
finds the peers there, and they find it: mDNS starts again on the new interfaces and
the node's record names its new address. Two hosts on the lab's bridge; the second
one's cable is out when its daemon starts (its only interface has no carrier), and is
plugged in later. Both daemons listen on every address and choose no interface, as a
user's would."""

from __future__ import annotations

from pathlib import Path

from tests.discovery.nodes import Node
from tests.lab.netlab import Host, Lab

FOUND_WITHIN = 60.0  # s: a guard against a hang, not a speed target


def start(host: Host, home: Path, nick: str) -> Node:
    # Every interface the host has, as a user's node would: the suite's own guard (mDNS
    # on loopback alone, tests/conftest.py) is lifted inside the lab's namespaces.
    prefix = (*host.exec_prefix, "env", "-u", "P2PCHAT_INTERFACES")
    node = Node(home, "--listen", "0.0.0.0:0", "--nick", nick, prefix=prefix)
    host.processes.append(node.process)
    return node


def test_a_cable_plugged_in_while_running_brings_the_peers_on_it(
    lab: Lab, tmp_path: Path, nodes: list[Node]
) -> None:
    office, laptop = lab.add_host(), lab.add_host()
    lab.cut(laptop)  # no carrier on the laptop's eth0
    laptop.wait_link("down")
    nodes.append(ann := start(office, tmp_path / "ann", "ann"))
    nodes.append(bob := start(laptop, tmp_path / "bob", "bob"))
    assert ann.address.startswith(f"{office.address}:"), ann.address
    port = bob.address.rsplit(":", 1)[1]
    assert bob.address == f"127.0.0.1:{port}", "a down interface's address is not ours"

    lab.restore(laptop)
    changed = bob.wait_for("network_changed", timeout=FOUND_WITHIN)
    assert changed["addresses"] == [f"{laptop.address}:{port}"], changed
    # Each finds the other on the LAN and proves it with a handshake.
    seen = ann.wait_for("verified", timeout=FOUND_WITHIN, id=bob.id)
    assert seen["addresses"] == [f"{laptop.address}:{port}"], seen
    bob.wait_for("verified", timeout=FOUND_WITHIN, id=ann.id)

    # The cable out again: bob is back to loopback alone, and says so.
    lab.cut(laptop)
    bob.wait_for("network_changed", timeout=FOUND_WITHIN, addresses=[f"127.0.0.1:{port}"])
