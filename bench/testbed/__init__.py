"""The real-node testbed: hosts in network namespaces joined by a userspace switch.

The network: :mod:`bench.testbed.lab` (the driver side), :mod:`bench.testbed.switch` (the
switch process) over :mod:`bench.testbed.fabric` (its pure core).

What runs on the hosts and what is measured: :mod:`bench.testbed.p2pchat_agents` and
:mod:`bench.testbed.serf_agents` (the agents), :mod:`bench.testbed.run` (the phases),
:mod:`bench.testbed.presence`, :mod:`bench.testbed.traffic`, :mod:`bench.testbed.rooms`
(the scenarios), :mod:`bench.testbed.report` (the side-by-side table);
``python -m bench.testbed`` runs it all.
"""
