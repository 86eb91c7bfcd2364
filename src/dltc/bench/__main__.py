"""`python -m dltc.bench NAME [args]`: runs the benchmark NAME (one line per benchmark)."""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "chess": "dltc.bench.chess",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in BENCHES:
        print(f"usage: python -m dltc.bench {{{','.join(sorted(BENCHES))}}} [args]", file=sys.stderr)
        return 2
    return int(importlib.import_module(BENCHES[argv[0]]).main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
