"""p2pchat: a peer-to-peer messenger with no server, no account and no internet."""

__version__ = "0.2.0"
