"""dltc benchmarks: `python -m dltc.bench NAME [--json]` runs dltc.bench.NAME.main(argv)."""
