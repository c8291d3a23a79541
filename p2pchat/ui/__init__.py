"""The terminal UI (Textual): p2pchat with no arguments opens it."""
