"""`python -m dltc.bench NAME [args]`: runs the benchmark module dltc.bench.NAME's main(argv)."""

import importlib
import pkgutil
import sys

import dltc.bench


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(dltc.bench.__path__)
                   if not m.name.startswith("_"))
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
        print(f"usage: python -m dltc.bench {{{','.join(names)}}} [--json] [options]",
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return int(importlib.import_module(f"dltc.bench.{argv[0]}").main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
