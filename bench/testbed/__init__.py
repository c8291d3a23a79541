"""The real-node testbed: hosts in network namespaces joined by a userspace switch.

The network: :mod:`bench.testbed.lab` (the driver side), :mod:`bench.testbed.switch` (the
switch process) over :mod:`bench.testbed.fabric` (its pure core).
"""
