"""`python -m dltc.bench scale [--json]`: one chess replica data set (latency 50 ms, a
per-client-IP limit of --max-parallel in flight, 429 beyond) loaded with
dltc.distributed.run_sharded on a local Ray cluster with 1, 2 and 4 workers under the same
global limit. Per run: wall time, goodput (games and MB per second of wall time), the
fan-in after the last shard, the committer's total time, duplicate and missing games
(both must be 0), 429s, and the peak RSS of each Ray worker process. Not a timed test:
figures for the README (the machine may be shared; say so with the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional


def _one(data: str, base: Dict[str, str], workers: int, shards: int, limit: int, tmp: Path) -> Dict[str, Any]:
    import dlt
    import duckdb

    import dltc.replica as replica
    from dltc import chess
    from dltc.distributed import run_sharded

    players = json.loads((Path(data) / "meta.json").read_text())["players"]
    name = f"scale_w{workers}"

    def factory(items: List[str]) -> Any:
        return chess.source(items, **base)

    db = tmp / f"{name}.duckdb"
    res = run_sharded(factory, players, destination=dlt.destinations.duckdb(str(db)), dataset_name="chess_data",
                      pipeline_name=name, shards=shards, workers=workers, bucket_url=str(tmp / f"{name}_shards"),
                      keys={"players_games": "uuid", "players_profiles": "player_id"}, key=str.lower,
                      limits={"127.0.0.1": {"max_parallel": limit}}, work_dir=str(tmp / "work"),
                      committer_dir=str(tmp / "committer"))
    con = duckdb.connect(str(db), read_only=True)
    try:
        n, distinct = con.execute("select count(*), count(distinct uuid) from chess_data.players_games").fetchall()[0]
        got = {r[0] for r in con.execute("select uuid from chess_data.players_games").fetchall()}
        profiles = con.execute("select count(*) from chess_data.players_profiles").fetchall()[0][0]
    finally:
        con.close()
    want = set(replica.load_games(data))
    results = list(res["results"].values())
    rss: Dict[str, float] = {}
    for r in results:
        k = f"{r['host']}:{r['pid']}"
        rss[k] = max(rss.get(k, 0.0), r["peak_rss_mb"])
    wall = res["wall_s"]
    requests = sum(r["engine"]["requests"] for r in results)
    return {
        "workers": workers,
        "shards": shards,
        "wall_s": round(wall, 2),
        "games": n,
        "games_per_s": round(n / wall, 1),
        "requests": requests,
        "requests_per_s": round(requests / wall, 1),
        "status_429": sum(r["engine"]["status_429"] for r in results),
        "fan_in_s": round(res["fan_in_s"], 2),
        "commit_s_total": round(res["commit_s"], 2),
        "commits": len(res["commits"]),
        "duplicates": n - distinct,
        "missing": len(want - got),
        "unexpected": len(got - want),
        "profiles": profiles,
        "ledger_rows": len(res["ledger"]),
        "peak_charged": (res["limiter"] or {}).get("peak_charged"),
        "peak_rss_mb_per_worker": sorted(round(v, 1) for v in rss.values()),
        "shard_seconds_median": round(sorted(r["seconds"] for r in results)[len(results) // 2], 2),
    }


def _plain(data: str, base: Dict[str, str], limit: int, tmp: Path) -> Dict[str, Any]:
    """The baseline: one pipeline.run in this process, the engine capped at the same limit."""
    import resource

    import dlt

    from dltc import chess

    players = json.loads((Path(data) / "meta.json").read_text())["players"]
    stats: Dict[str, Any] = {}
    p = dlt.pipeline(pipeline_name="scale_plain", destination=dlt.destinations.duckdb(str(tmp / "plain.duckdb")),
                     dataset_name="chess_data", pipelines_dir=str(tmp / "plain_pl"))
    t0 = time.monotonic()
    p.run(chess.source(players, max_concurrency=limit, stats=stats, **base))
    wall = time.monotonic() - t0
    games = stats.get("games", 0)
    return {"wall_s": round(wall, 2), "games": games, "games_per_s": round(games / wall, 1),
            "requests": stats.get("requests", 0), "status_429": stats.get("status_429", 0),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}


def run(players: int, months: int, latency_ms: float, max_parallel: int, shards: int, workers: List[int],
        cpus: int, data: Optional[str], log: Any) -> Dict[str, Any]:
    import ray

    import dltc.replica as replica

    tmp = Path(tempfile.mkdtemp(prefix="dltc-bench-scale-"))
    try:
        if data is None:
            data = str(tmp / "data")
            log(f"generating {players} players x {months} months ...")
            replica.generate(data, players=players, months=months, seed=11)
        meta = json.loads((Path(data) / "meta.json").read_text())
        out: Dict[str, Any] = {"players": len(meta["players"]), "games": meta["games"], "months": months,
                               "latency_ms": latency_ms, "max_parallel": max_parallel, "ray_cpus": cpus,
                               "machine_cpus": os.cpu_count(), "runs": []}
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=100 * 1024 * 1024)
        try:
            with replica.serve(data, latency_ms=latency_ms, max_parallel=max_parallel) as api:
                base = {"base_url": api.base_url + "/pub/", "callback_url": api.base_url + "/callback/"}
                log("plain (one process, no Ray) ...")
                out["plain"] = _plain(data, base, max_parallel, tmp)
                log(f"  {out['plain']['wall_s']} s, {out['plain']['games_per_s']} games/s")
                for w in workers:
                    log(f"workers={w} ...")
                    r = _one(data, base, w, shards, max_parallel, tmp)
                    log(f"  {r['wall_s']} s, {r['games_per_s']} games/s, fan-in {r['fan_in_s']} s, "
                        f"dup {r['duplicates']} missing {r['missing']}, 429s {r['status_429']}")
                    out["runs"].append(r)
        finally:
            ray.shutdown()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dltc.bench scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--players", type=int, default=64)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--max-parallel", type=int, default=16, help="the replica's limit and the global limit")
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--cpus", type=int, default=4, help="CPUs the local Ray cluster advertises")
    ap.add_argument("--data", help="reuse a generated data directory")
    a = ap.parse_args(argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        print("bench scale: needs Ray: pip install 'dltc[ray]'", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    res = run(a.players, a.months, a.latency_ms, a.max_parallel, a.shards,
              [int(x) for x in a.workers.split(",") if x], a.cpus, a.data, log)
    res["bench_s"] = round(time.monotonic() - t0, 1)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        for r in res["runs"]:
            print(f"workers {r['workers']}: {r['wall_s']} s wall, {r['games_per_s']} games/s, "
                  f"{r['requests_per_s']} req/s, fan-in {r['fan_in_s']} s, dup {r['duplicates']}, "
                  f"missing {r['missing']}, peak RSS/worker {r['peak_rss_mb_per_worker']} MB")
    ok = all(r["duplicates"] == 0 and r["missing"] == 0 for r in res["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
