"""The mesh: membership, failure detection and presence, as sans-IO cores."""
