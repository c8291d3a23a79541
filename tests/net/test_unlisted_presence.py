"""A node in private discovery is seen by its contacts and by nobody else through them
(docs/protocol.md §11.1): three real nodes on loopback, the third a stranger meshed
with the hidden node's contact."""

from __future__ import annotations

from pathlib import Path

import trio

from p2pchat.node.node import Node
from tests.net.chatpeers import ChatPeer, wait_for
from tests.net.test_chat import peers


def mesh_of(peer: ChatPeer) -> Node:
    assert peer.node is not None and peer.node.mesh is not None
    return peer.node


async def test_a_hidden_nodes_presence_reaches_its_contact_and_stops_there(
    tmp_path: Path,
) -> None:
    ann = ChatPeer("ann", tmp_path / "ann", private_discovery=True)
    bob, cat = peers(tmp_path, "bob", "cat")
    async with trio.open_nursery() as nursery:
        for peer in (ann, bob, cat):
            await peer.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        ann.introduce(bob)
        cat.introduce(bob)  # a stranger to ann, an ordinary mesh neighbour of bob's
        await wait_for(lambda: bob.sees_online(ann) and cat.sees_online(bob), 30, "the mesh")
        bob_mesh = mesh_of(bob).mesh
        cat_mesh = mesh_of(cat).mesh
        assert bob_mesh is not None and cat_mesh is not None

        await mesh_of(ann).set_presence(status_text="behind a curtain")
        await wait_for(
            lambda: (
                (m := bob_mesh.members.get(ann.key)) is not None
                and m.record.status_text == "behind a curtain"
            ),
            30,
            "bob sees ann's new status",
        )
        # Bob's and cat's views agree (the digest summaries match: anti-entropy has
        # nothing left to send), and cat's holds no trace of ann.
        await wait_for(
            lambda: bob_mesh.members.summary() == cat_mesh.members.summary(), 60, "views agree"
        )
        assert cat_mesh.members.get(ann.key) is None
        assert not cat.sees_online(ann) and not cat.connected_to(ann)
        assert len(cat_mesh.members) == 2  # cat and bob

        # Ann leaves without a word: bob, who held her session, shows her offline.
        await ann.crash()
        await wait_for(lambda: not bob.sees_online(ann), 60, "bob sees ann go")
        assert cat_mesh.members.get(ann.key) is None
        for peer in (bob, cat):
            await peer.stop()
