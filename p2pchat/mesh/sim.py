"""The simulator's old command name: ``python -m p2pchat.mesh.sim`` runs
``python -m p2pchat.sim`` with the same arguments.

Kept so the command cited by older notes and shell histories still works. Importing
this module imports nothing: only running it reaches the simulator, so the mesh core
stays free of the driver (tests/test_floors.py allows this one import up a floor).
"""

if __name__ == "__main__":
    import sys

    from p2pchat.sim.__main__ import main

    sys.exit(main())
