"""Benchmarks: `python -m dltc.bench NAME ...` (not timed tests; numbers for the README)."""
