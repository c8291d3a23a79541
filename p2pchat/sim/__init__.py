"""The deterministic simulator: the real mesh and room-broadcast cores over a simulated
network and clock, seeded and repeatable (``python -m p2pchat.sim --help``).

A driver, not a core: it seeds generators with ``random`` and reads wall time with
``time``, which is why it lives outside ``p2pchat.mesh``. ``engine`` runs the network,
``scenarios`` says what a run does, ``report`` holds and prints the figures.
"""
