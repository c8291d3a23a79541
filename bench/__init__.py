"""Benchmarks (run as scripts, e.g. ``python bench/mesh.py``) and the testbed package."""
