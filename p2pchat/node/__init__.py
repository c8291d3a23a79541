"""The node and its application services: what runs on top of the transport (`net`),
discovery and the store — the `Node` (one nursery), chat and rooms."""
