"""Figures over repeated runs: the median, minimum and maximum of every number.

Shared by the benchmarks that repeat a measurement (rest_api, all): a run is a nested dict;
its numbers are its numeric leaves, named by their dotted path.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterable


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def flatten(d: Any, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of nested dicts, {"a.b.c": value}; lists and text are skipped."""
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if is_number(v):
                out[name] = float(v)
            elif isinstance(v, dict):
                out.update(flatten(v, name))
    return out


def summary(values: Iterable[float]) -> dict[str, float]:
    """{median, min, max, runs} of the values (at least one)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("summary of no values")
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "runs": len(vals)}


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Every numeric leaf of the runs -> its summary over the runs that have it."""
    flat = [flatten(r) for r in runs]
    keys: dict[str, None] = {}
    for f in flat:
        keys.update(dict.fromkeys(f))
    return {k: summary(f[k] for f in flat if k in f) for k in keys}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One dict shaped as the runs: each number is its median over the runs, anything else
    is the first run's."""
    def merge(items: list[Any]) -> Any:
        first = items[0]
        if isinstance(first, dict):
            return {k: merge([i[k] for i in items if isinstance(i, dict) and k in i])
                    for k in first}
        if is_number(first) and all(is_number(i) for i in items):
            return statistics.median(items)
        return first
    return merge(runs) if runs else {}


def finite(x: Any) -> bool:
    return is_number(x) and math.isfinite(x)
