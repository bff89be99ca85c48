"""Benchmarks of fhe_gpu (pytest-benchmark) and the side-by-side comparison with peers.

Not part of the default test run: ``pytest bench --benchmark-json out.json``.
"""
