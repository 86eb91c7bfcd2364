"""`python -m dltc.bench <name> [args...]` runs dltc.bench.<name>.main(args)."""

from __future__ import annotations

import importlib
import pkgutil
import sys


def _names() -> list[str]:
    import dltc.bench as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = _names()
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m dltc.bench <name> [--json] ...   (names: {', '.join(names)})")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"dltc.bench: unknown benchmark {name!r}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    mod = importlib.import_module(f"dltc.bench.{name}")
    return int(mod.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
