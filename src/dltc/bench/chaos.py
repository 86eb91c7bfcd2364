"""`python -m dltc.bench chaos [--json]`: the chess pipeline through a bad night of the API.

Runs the chess source (60 players x 4 months) into DuckDB against the local replica with a
10% fault plan (5xx, Retry-After, resets, truncated and invalid bodies, stalls) and a
connection limit that turns excess parallel requests into 429 storms, then a second run
over the newer months with schema drift under `columns: discard_row` (given to the source).
Compares game uuids with what the replica serves and prints faults by kind, retries, rows
served/loaded/rejected, duplicates, rows missing, peak RSS.
The helpers here are shared with tests/test_faults_pipeline.py and tests/test_kill9.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

# 10% of requests fail transiently (5xx, Retry-After, resets, truncated or invalid bodies,
# stalls); none of these is a client error, so every one must be retried to success.
TRANSIENT_FAULTS = ("p500=0.02,p502=0.01,p503=0.02,p503ra=0.01,reset=0.01,short=0.01,"
                    "invalid_json=0.01,stall=0.01,stall_s=1")
DRIFT_FAULTS = "drift_extra=0.15,drift_missing=0.1,drift_type=0.1"
DATASET = "chess"


# ---- pipeline helpers ------------------------------------------------------------------


def months_of(data_dir: str | os.PathLike, players: Iterable[str]) -> list[str]:
    """Sorted "YYYY/MM" months in which any of `players` has games."""
    from dltc.replica.generate import player_months

    out: set[str] = set()
    for p in players:
        out.update(player_months(str(data_dir), p))
    return sorted(out)


def players_of(data_dir: str | os.PathLike) -> list[str]:
    meta = json.loads((Path(data_dir) / "meta.json").read_text())
    names = meta["players"]
    return [n if isinstance(n, str) else n["username"] for n in names]


def make_pipeline(workdir: str | os.PathLike, name: str = "chaos"):
    """A dlt pipeline with its own pipelines dir and DuckDB file under `workdir`.
    -> (pipeline, path of the DuckDB file)."""
    import dlt

    w = Path(workdir)
    w.mkdir(parents=True, exist_ok=True)
    db = str(w / f"{name}.duckdb")
    p = dlt.pipeline(pipeline_name=name, pipelines_dir=str(w / "pipelines"),
                     destination=dlt.destinations.duckdb(db), dataset_name=DATASET)
    return p, db


def chess_source(base_url: str, players: list[str], start_month: str | None,
                 end_month: str | None, **kw: Any):
    import dltc.chess

    return dltc.chess.source(players, start_month=start_month, end_month=end_month,
                             base_url=base_url + "/pub/", callback_url=base_url + "/callback/",
                             **kw)


def query(db_path: str, sql: str) -> list[tuple]:
    """Rows of `sql` on the DuckDB file (read-only); [] if a table in it does not exist."""
    import duckdb

    if not os.path.exists(db_path):
        return []
    con = duckdb.connect(db_path, read_only=True)
    try:
        return con.execute(sql).fetchall()
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


def game_uuids(db_path: str) -> list[str]:
    """Every uuid row of players_games, duplicates included."""
    return [r[0] for r in query(db_path, f"select uuid from {DATASET}.players_games")]


def columns(db_path: str, table: str) -> list[str]:
    return [r[0] for r in query(
        db_path, "select column_name from information_schema.columns where table_schema = "
        f"'{DATASET}' and table_name = '{table}'")]


def rejects(db_path: str) -> list[dict[str, Any]]:
    cols = columns(db_path, "_dltc_rejects")
    if not cols:
        return []
    rows = query(db_path, f"select * from {DATASET}._dltc_rejects")
    return [dict(zip(cols, r)) for r in rows]


def compare(expected: Iterable[str], loaded: list[str],
            rejected: Iterable[str] = ()) -> dict[str, int]:
    """served / loaded / rejected / duplicates / missing / unexpected for two uuid lists."""
    exp = set(expected)
    counts = Counter(loaded)
    rej = set(rejected)
    return {
        "served": len(exp),
        "loaded": len(loaded),
        "rejected": len(rej),
        "duplicates": sum(c - 1 for c in counts.values() if c > 1),
        "missing": len(exp - set(counts) - rej),
        "unexpected": len(set(counts) - exp),
    }


def error_text(exc: BaseException) -> str:
    """The message of an exception and of everything it was raised from."""
    parts = []
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        parts.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    return "\n".join(parts)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the benchmark ---------------------------------------------------------------------


def run(players: int = 60, months: int = 4, seed: int = 7, latency_ms: float = 5,
        max_parallel: int = 6, work: str | None = None) -> dict[str, Any]:
    import dltc.replica as R

    tmp = tempfile.TemporaryDirectory(prefix="dltc-chaos-") if work is None else None
    root = Path(work or tmp.name)  # type: ignore[union-attr]
    try:
        data = root / "data"
        R.generate(str(data), players=players, months=months, seed=seed, now="2024-07-10")
        names = players_of(data)
        all_months = months_of(data, names)
        split = all_months[len(all_months) // 2]
        first = (all_months[0], split)
        second = (all_months[all_months.index(split) + 1], all_months[-1])
        pipe, db = make_pipeline(root / "work")
        out: dict[str, Any] = {"players": len(names), "months": len(all_months),
                               "fault_plan": f"seed={seed},{TRANSIENT_FAULTS}",
                               "max_parallel": max_parallel}
        t0 = time.monotonic()

        # 1. transient faults and 429 storms over the first half of the months
        stats1: dict[str, Any] = {}
        with R.serve(str(data), latency_ms=latency_ms, max_parallel=max_parallel,
                     faults=f"seed={seed},{TRANSIENT_FAULTS}") as api:
            pipe.run(chess_source(api.base_url, names, *first, max_concurrency=32,
                                  stats=stats1))
            faults1 = api.fault_counts()
        exp1 = set(R.load_games(str(data), names, *first))
        cmp1 = compare(exp1, game_uuids(db))

        # 2. schema drift on the second half, columns: discard_row
        stats2: dict[str, Any] = {}
        with R.serve(str(data), latency_ms=latency_ms,
                     faults=f"seed={seed + 1},{DRIFT_FAULTS}") as api:
            pipe.run(chess_source(api.base_url, names, *second, max_concurrency=32,
                                  stats=stats2, schema_contract={"columns": "discard_row",
                                                                 "data_type": "evolve"}))
            faults2 = api.fault_counts()
        rej = rejects(db)
        rej_rows: set[tuple[str, str]] = set()  # (archive URL, record index)
        rej_uuids: set[str] = set()
        for r in rej:
            url, path = str(r.get("source_url", "")), str(r.get("path", ""))
            if "/games/" not in url:
                continue
            rej_rows.add((url, path.split("]")[0]))
            try:
                rej_uuids.add(json.loads(r["record"])["uuid"])
            except (ValueError, KeyError, TypeError):
                pass
        exp_all = exp1 | set(R.load_games(str(data), names, *second))
        loaded = game_uuids(db)
        # a game of two listed players is served twice; if one copy was rejected and the
        # other loaded, it is loaded: "rejected" counts games that only live in rejects
        rejected_only = rej_uuids - set(loaded)
        cmp_all = compare(exp_all, loaded, rejected_only)
        faults = Counter({k: v for k, v in faults1.items() if v})
        faults.update({k: v for k, v in faults2.items() if v})
        faults["429"] = stats1.get("status_429", 0) + stats2.get("status_429", 0)
        out.update({
            "faults_injected": dict(sorted(faults.items())),
            "requests": stats1.get("requests", 0) + stats2.get("requests", 0),
            "requests_retried": stats1.get("retries", 0) + stats2.get("retries", 0),
            "rows_served": cmp_all["served"],
            "rows_loaded": cmp_all["loaded"],
            "rows_rejected": cmp_all["rejected"],
            "loaded_plus_rejected_equals_served":
                len(set(loaded)) + cmp_all["rejected"] == cmp_all["served"],
            "rejected_records": len(rej_rows),
            "reject_table_rows": len(rej),
            "reject_reasons": dict(Counter(str(r.get("reason")) for r in rej)),
            "duplicates": cmp_all["duplicates"],
            "rows_missing": cmp_all["missing"],
            "rows_unexpected": cmp_all["unexpected"],
            "first_run": cmp1,
            "wall_s": round(time.monotonic() - t0, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        })
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dltc.bench chaos", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--players", type=int, default=60)
    ap.add_argument("--months", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--latency-ms", type=float, default=5)
    ap.add_argument("--max-parallel", type=int, default=6,
                    help="replica connection limit (excess requests get 429)")
    a = ap.parse_args(argv)
    res = run(players=a.players, months=a.months, seed=a.seed, latency_ms=a.latency_ms,
              max_parallel=a.max_parallel)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        for k, v in res.items():
            print(f"{k:>18}: {v}")
    ok = res["duplicates"] == 0 and res["rows_missing"] == 0 and res["rows_unexpected"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
