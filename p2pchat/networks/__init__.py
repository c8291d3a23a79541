"""Private networks (docs/protocol.md §17): closed groups whose members share one key."""
