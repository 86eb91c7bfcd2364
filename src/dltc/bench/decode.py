"""Decoder throughput: JSON month archives to Arrow, single-threaded, in this process.

    python -m dltc.bench decode [--json] [--data DIR] [--files 8] [--runs 5] [--min-time 0.2]
                                [--tools dltc,orjson,msgspec,pyarrow,polars] [--no-sample]

Data sets: the biggest monthly archives of a replica data set (generated into a temporary
directory with dltc.replica.generate unless --data is given) and the recorded chess.com
sample (../shared/testdata/chesscom/games_*.json), decoded repeatedly until --min-time.
Each tool turns the same games into an Arrow table:
  dltc      dltc.read_json(doc, data_selector="games") (flattened, dlt names and types)
  orjson    orjson.loads + flatten as dlt does (a__b) + pyarrow.Table.from_pylist
  msgspec   msgspec.json.decode into typed Structs + column lists + pyarrow.table
  pyarrow   pyarrow.json.read_json on the NDJSON equivalent (use_threads=False; nested
            objects stay structs)
  polars    polars.read_json on the games array (POLARS_MAX_THREADS=1 when polars is first
            imported here)
MB/s is per tool's own input bytes (NDJSON and the bare array are a little smaller than the
documents); rows/s compares like with like. Figures are the median of --runs runs.
"""

# no "from __future__ import annotations": msgspec reads the Struct annotations of local classes

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOOLS = ("dltc", "orjson", "msgspec", "pyarrow", "polars")


def _sample_dir() -> Path | None:
    """$DLTC_TESTDATA/chesscom, else ../shared/testdata/chesscom from the repo root (the
    current directory, or the source tree this file is in when not installed)."""
    cands = []
    if os.environ.get("DLTC_TESTDATA"):
        cands.append(Path(os.environ["DLTC_TESTDATA"]) / "chesscom")
    cands += [Path.cwd() / ".." / "shared" / "testdata" / "chesscom",
              Path(__file__).resolve().parents[3] / ".." / "shared" / "testdata" / "chesscom"]
    return next((c.resolve() for c in cands if c.is_dir()), None)


# ---------------------------------------------------------------- inputs --------


class Dataset:
    """Documents ({"games": [...]}) plus the NDJSON and bare-array forms of their games."""

    def __init__(self, name: str, docs: list[bytes], repeat: int = 1) -> None:
        import orjson

        self.name = name
        self.docs = docs
        self.repeat = repeat
        self.arrays: list[bytes] = []
        self.ndjson: list[bytes] = []
        self.rows = 0
        for d in docs:
            games = orjson.loads(d)["games"]
            self.rows += len(games)
            self.arrays.append(orjson.dumps(games))
            self.ndjson.append(b"\n".join(orjson.dumps(g) for g in games) + b"\n")

    def nbytes(self, form: str) -> int:
        return sum(len(x) for x in getattr(self, form))


def _replica_months(data: Path | None, files: int) -> tuple[list[bytes], str]:
    tmp = None
    if data is None:
        from dltc.replica import generate

        tmp = tempfile.TemporaryDirectory(prefix="dltc-bench-decode-")
        data = Path(tmp.name) / "data"
        generate(str(data), players=30, months=6, seed=7, now="2024-06-15")
    paths = sorted(data.glob("pub/player/*/games/[0-9][0-9][0-9][0-9]/[0-9][0-9].json"),
                   key=lambda p: p.stat().st_size, reverse=True)[:files]
    docs = [p.read_bytes() for p in paths]
    if tmp is not None:
        tmp.cleanup()
    return docs, f"{len(docs)} biggest months of {'a generated replica (30 players, 6 months, seed 7)' if tmp else data}"


def _sample() -> list[bytes]:
    d = _sample_dir()
    return [] if d is None else [p.read_bytes() for p in sorted(d.glob("games_*.json"))]


# ---------------------------------------------------------------- tools --------


def _flatten(d: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {} if out is None else out
    for k, v in d.items():
        name = prefix + k
        if isinstance(v, dict):
            _flatten(v, name + "__", out)
        else:
            out[name] = v
    return out


def _tool_dltc() -> Callable[[Dataset], Any]:
    import dltc

    def run(ds: Dataset) -> int:
        n = 0
        for d in ds.docs:
            n += dltc.read_json(d, data_selector="games").num_rows
        return n

    return run


def _tool_orjson() -> Callable[[Dataset], Any]:
    import orjson
    import pyarrow as pa

    def run(ds: Dataset) -> int:
        n = 0
        for d in ds.docs:
            rows = [_flatten(g) for g in orjson.loads(d)["games"]]
            n += pa.Table.from_pylist(rows).num_rows
        return n

    return run


def _tool_msgspec() -> Callable[[Dataset], Any]:
    import msgspec
    import pyarrow as pa

    class Player(msgspec.Struct):
        rating: int | None = None
        result: str | None = None
        id: str | None = msgspec.field(default=None, name="@id")
        username: str | None = None
        uuid: str | None = None

    class Accuracies(msgspec.Struct):
        white: float | None = None
        black: float | None = None

    class Game(msgspec.Struct):
        url: str | None = None
        pgn: str | None = None
        time_control: str | None = None
        end_time: int | None = None
        start_time: int | None = None
        rated: bool | None = None
        tcn: str | None = None
        uuid: str | None = None
        initial_setup: str | None = None
        fen: str | None = None
        time_class: str | None = None
        rules: str | None = None
        eco: str | None = None
        tournament: str | None = None
        match: str | None = None
        white: Player | None = None
        black: Player | None = None
        accuracies: Accuracies | None = None

    class Month(msgspec.Struct):
        games: list[Game]

    top = [f for f in Game.__struct_fields__ if f not in ("white", "black", "accuracies")]
    pfields = Player.__struct_fields__
    types = {"end_time": pa.int64(), "start_time": pa.int64(), "rated": pa.bool_()}
    dec = msgspec.json.Decoder(Month)

    def run(ds: Dataset) -> int:
        n = 0
        for d in ds.docs:
            games = dec.decode(d).games
            cols: dict[str, Any] = {}
            for f in top:
                cols[f] = pa.array([getattr(g, f) for g in games], types.get(f, pa.string()))
            for side in ("white", "black"):
                ps = [getattr(g, side) for g in games]
                for f in pfields:
                    t = pa.int64() if f == "rating" else pa.string()
                    cols[f"{side}__{'aid' if f == 'id' else f}"] = pa.array(
                        [getattr(p, f) if p is not None else None for p in ps], t)
            acc = [g.accuracies for g in games]
            for f in ("white", "black"):
                cols[f"accuracies__{f}"] = pa.array([getattr(a, f) if a is not None else None for a in acc],
                                                    pa.float64())
            n += pa.table(cols).num_rows
        return n

    return run


def _tool_pyarrow() -> Callable[[Dataset], Any]:
    import pyarrow.json as pj

    opts = pj.ReadOptions(use_threads=False, block_size=1 << 26)

    def run(ds: Dataset) -> int:
        return sum(pj.read_json(io.BytesIO(b), read_options=opts).num_rows for b in ds.ndjson)

    run.form = "ndjson"  # type: ignore[attr-defined]
    return run


def _tool_polars() -> Callable[[Dataset], Any]:
    if "polars" not in sys.modules:
        os.environ.setdefault("POLARS_MAX_THREADS", "1")
    import polars as pl

    def run(ds: Dataset) -> int:
        return sum(pl.read_json(io.BytesIO(b), infer_schema_length=None).height for b in ds.arrays)

    run.form = "arrays"  # type: ignore[attr-defined]
    return run


_FACTORIES = {"dltc": _tool_dltc, "orjson": _tool_orjson, "msgspec": _tool_msgspec,
              "pyarrow": _tool_pyarrow, "polars": _tool_polars}


# ---------------------------------------------------------------- measuring --------


def _measure(run: Callable[[Dataset], int], ds: Dataset, runs: int, min_time: float) -> dict[str, Any]:
    rows = run(ds)  # warm-up (and the row count)
    # repeat the whole data set within one run until it lasts min_time (small inputs)
    t0 = time.perf_counter()
    run(ds)
    once = max(time.perf_counter() - t0, 1e-6)
    reps = max(1, int(min_time / once + 0.999)) if once < min_time else 1
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(reps):
            run(ds)
        times.append((time.perf_counter() - t0) / reps)
    form = getattr(run, "form", "docs")
    med = statistics.median(times)
    nbytes = ds.nbytes(form)
    return {"rows": rows, "input": form, "input_bytes": nbytes, "median_s": med,
            "min_s": min(times), "runs": runs, "reps_per_run": reps,
            "mb_s": nbytes / med / 1e6, "rows_s": rows / med}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dltc.bench decode", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--data", type=Path, default=None, help="replica data dir (default: generate one)")
    ap.add_argument("--files", type=int, default=8, help="how many of the biggest month files")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per run at least (repeats)")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--no-sample", action="store_true", help="skip the recorded sample")
    a = ap.parse_args(argv)
    tools = [t for t in a.tools.split(",") if t]
    for t in tools:
        if t not in _FACTORIES:
            ap.error(f"unknown tool {t!r} (one of {', '.join(TOOLS)})")
    if "polars" in tools:
        os.environ.setdefault("POLARS_MAX_THREADS", "1")

    docs, desc = _replica_months(a.data, a.files)
    datasets = [Dataset("replica_months", docs)]
    sample = [] if a.no_sample else _sample()
    if sample:
        datasets.append(Dataset("recorded_sample", sample))

    results: list[dict[str, Any]] = []
    for ds in datasets:
        for t in tools:
            try:
                run = _FACTORIES[t]()
            except ImportError as e:
                results.append({"dataset": ds.name, "tool": t, "error": f"not installed: {e}"})
                continue
            r = _measure(run, ds, a.runs, a.min_time)
            results.append({"dataset": ds.name, "tool": t, **r})
            if not a.json:
                print(f"{ds.name:16s} {t:8s} {r['mb_s']:9.1f} MB/s {r['rows_s']:12.0f} rows/s "
                      f"({r['rows']} rows, {r['input_bytes']} B {r['input']}, median of {r['runs']})",
                      file=sys.stderr, flush=True)
    summary = {}
    for ds in datasets:
        rs = {r["tool"]: r for r in results if r["dataset"] == ds.name and "error" not in r}
        if "dltc" in rs:
            others = {k: v for k, v in rs.items() if k != "dltc"}
            s: dict[str, Any] = {"dltc_mb_s": rs["dltc"]["mb_s"], "dltc_rows_s": rs["dltc"]["rows_s"]}
            if others:
                best = max(others, key=lambda k: others[k]["rows_s"])
                s.update(fastest_other=best, speedup_rows_s=rs["dltc"]["rows_s"] / others[best]["rows_s"])
            summary[ds.name] = s
    out = {"benchmark": "decode", "single_threaded": True, "replica": desc,
           "sample_files": len(sample), "results": results, "summary": summary}
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for k, s in summary.items():
            print(f"{k}: dltc {s['dltc_mb_s']:.0f} MB/s; "
                  + (f"{s['speedup_rows_s']:.2f}x rows/s of {s['fastest_other']}" if "fastest_other" in s else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
