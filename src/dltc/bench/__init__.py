"""dltc.bench: short, bounded benchmarks, run as `python -m dltc.bench <name> [--json] ...`.

Each benchmark is a module dltc/bench/<name>.py with `main(argv: list[str]) -> int`;
with --json it prints one JSON document on stdout.
"""
