"""The mesh across network namespaces: a cut link is noticed on both sides and heals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.discovery.nodes import Node
from tests.lab.netlab import Lab
from tests.lab.test_discovery_lab import start


@pytest.mark.slow
def test_a_cut_link_is_marked_offline_on_both_sides_and_the_mesh_heals(
    lab: Lab, tmp_path: Path, nodes: list[Node]
) -> None:
    hosts = [lab.add_host() for _ in range(3)]
    names = ["ann", "bob", "cy"]
    daemons = [start(h, tmp_path / n, "--nick", n) for h, n in zip(hosts, names, strict=True)]
    nodes.extend(daemons)
    ann, bob, cy = daemons
    for observer in daemons:
        for subject in daemons:
            if subject is not observer:
                observer.wait_for("presence", id=subject.id, status="avail", timeout=60)

    # Generous guards: on a busy machine daemons are slow. How fast a cut is noticed
    # and healed is the simulator's test and bench/mesh.py's figure; here, that it is.
    lab.cut(hosts[2])  # cy's cable is pulled: no goodbye reaches anyone
    for observer in (ann, bob):
        observer.wait_for("presence", id=cy.id, status="offline", state="dead", timeout=60)
    for subject in (ann, bob):
        cy.wait_for("presence", id=subject.id, status="offline", state="dead", timeout=60)
    # ann and bob still see each other: only the far side went offline.
    assert not [e for e in ann.seen if e["event"] == "presence" and e["id"] == bob.id
                and e["status"] == "offline"]  # fmt: skip

    for daemon in daemons:
        daemon.seen.clear()  # wait for presence shown after the repair, not before the cut
    lab.restore(hosts[2])
    for observer in (ann, bob):
        observer.wait_for("presence", id=cy.id, status="avail", timeout=90)
    for subject in (ann, bob):
        cy.wait_for("presence", id=subject.id, status="avail", timeout=90)
