"""`python -m dltc.bench chess`: the chess source against the local replica, end to end
into DuckDB, for dltc, the reference (the verified source's logic), dlt's rest_api source
and dltc with one request at a time. Each contender runs in its own subprocess so its
peak RSS (ru_maxrss from wait4) is its own. Not a timed test: numbers for the README.

Scenarios: (1) latency 0; (2) latency 50 ms; (3) latency 50 ms with --max-parallel 8.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

SCENARIOS = {
    1: {"latency_ms": 0, "max_parallel": None},
    2: {"latency_ms": 50, "max_parallel": None},
    3: {"latency_ms": 50, "max_parallel": 8},
}
CONTENDERS = ("dltc", "reference", "rest_api", "dltc_seq", "fetch_only")


# ---- the contenders (run inside a worker subprocess) ---------------------------------------


def _reference_module() -> Any:
    """tests/chess_reference.py from the checkout (or $DLTC_REFERENCE)."""
    import importlib.util

    cands = [os.environ.get("DLTC_REFERENCE"), os.path.join(os.getcwd(), "tests", "chess_reference.py")]
    here = Path(__file__).resolve()
    cands += [str(p / "tests" / "chess_reference.py") for p in here.parents]
    for c in cands:
        if c and os.path.exists(c):
            spec = importlib.util.spec_from_file_location("chess_reference", c)
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            sys.modules["chess_reference"] = mod
            spec.loader.exec_module(mod)
            return mod
    raise SystemExit("bench: tests/chess_reference.py not found; run from the repository or set DLTC_REFERENCE")


def _rest_api_source(players: List[str], base: str, callback: str, ca_file: Optional[str]) -> Any:
    """dlt's rest_api source configured for the verified source's endpoints."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    @dlt.resource(name="players", selected=False)
    def seed() -> Any:
        for u in players:  # one-item pages: rest_api's parallel children iterate pages
            yield [{"username": u}]

    # rest_api cannot fan out over a list of strings ({"archives": [url, ...]}): the one
    # adapter is this transformer, through dlt's requests helper as rest_api's own client
    @dlt.transformer(data_from=seed, name="players_archives", selected=False, parallelized=True)
    def archives(page: List[Dict[str, Any]]) -> Any:
        from dlt.sources.helpers import requests

        (player,) = page
        r = requests.get(f"{base}player/{player['username']}/games/archives", verify=ca_file or True)
        yield [{"url": u} for u in r.json().get("archives", [])]
    single = {"type": "single_page"}
    config: Dict[str, Any] = {
        "client": {"base_url": base},  # a CA file comes in through REQUESTS_CA_BUNDLE
        "resource_defaults": {"endpoint": {"paginator": single}},
        "resources": [
            seed,
            {
                "name": "players_profiles",
                "write_disposition": "replace",
                "parallelized": True,
                "columns": {"last_online": {"data_type": "timestamp"}, "joined": {"data_type": "timestamp"}},
                "endpoint": {"path": "player/{resources.players.username}", "data_selector": "$"},
            },
            archives,
            {
                "name": "players_games",
                "parallelized": True,
                "columns": {"end_time": {"data_type": "timestamp"}},
                "endpoint": {
                    "path": "{resources.players_archives.url}",
                    "data_selector": "games",
                    "response_actions": [{"status_code": 404, "action": "ignore"}],
                },
            },
            {
                "name": "players_online_status",
                "parallelized": True,
                "include_from_parent": ["username"],
                "endpoint": {"path": callback + "user/popup/{resources.players.username}", "data_selector": "$"},
                "processing_steps": [
                    {
                        "map": lambda s: {
                            "username": s["_players_username"],
                            "onlineStatus": s["onlineStatus"],
                            "lastLoginDate": s["lastLoginDate"],
                        }
                    }
                ],
            },
        ],
    }
    return rest_api_source(config, name="chess")


def _fetch_only(players: List[str], urls: List[str], ca_file: Optional[str]) -> Dict[str, Any]:
    """The floor: every URL the load needs, known up front, fetched by the engine and
    dropped (no dependency chain, no decoding, no dlt)."""
    from dltc import _native

    kw: Dict[str, Any] = {"max_concurrency": 64}
    if ca_file:
        kw["ca_file"] = ca_file
    with _native.Client(**kw) as c:  # warm-up: one request, as the others warm up
        c.submit(urls[0], empty_on=(404,))
        list(c)
    t = time.perf_counter()
    n = 0
    nbytes = 0
    with _native.Client(**kw) as c:
        for u in urls:
            c.submit(u, empty_on=(404,))
        for r in c:
            if r.error:
                raise RuntimeError(r.error)
            n += 1
            nbytes += len(r.body or b"")
    dt = time.perf_counter() - t
    return {"wall": dt, "extract": dt, "requests": n, "bytes": nbytes}


def worker(args: argparse.Namespace) -> int:
    import dlt

    job = json.loads(Path(args.worker).read_text())
    players, base, callback, ca = job["players"], job["base_url"], job["callback_url"], job.get("ca_file")
    contender, out = job["contender"], Path(job["out"])
    if ca:
        os.environ["REQUESTS_CA_BUNDLE"] = ca
    if job.get("duckdb_memory_limit"):
        os.environ["DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"] = json.dumps(
            {"memory_limit": job["duckdb_memory_limit"]}
        )
    if contender == "fetch_only":
        res = _fetch_only(players, job["urls"], ca)
        out.write_text(json.dumps(res))
        return 0
    def make_source(names: List[str], stats: Dict[str, Any]) -> Any:
        if contender in ("dltc", "dltc_seq"):
            from dltc import chess

            kw: Dict[str, Any] = {"max_concurrency": 64}
            if contender == "dltc_seq":
                kw = {"max_concurrency": 1, "initial_concurrency": 1}
            return chess.source(names, base_url=base, callback_url=callback, ca_file=ca, stats=stats, **kw)
        if contender == "reference":
            return _reference_module().source(names, base_url=base, callback_url=callback, ca_file=ca)
        return _rest_api_source(names, base, callback, ca)

    tmp = Path(job["tmp"])

    def make_pipeline(name: str) -> Any:
        return dlt.pipeline(
            pipeline_name=name,
            destination=dlt.destinations.duckdb(str(tmp / f"{name}.duckdb")),
            dataset_name="chess_data",
            pipelines_dir=str(tmp / "pipelines"),
        )

    # warm-up, the same for every contender: one player loaded first, so lazy imports and
    # first-use set-up are not counted in the timed run
    if not job.get("cold"):
        make_pipeline(f"warm_{contender}").run(make_source(players[:1], {}))
    stats: Dict[str, Any] = {}
    src = make_source(players, stats)
    pipeline = make_pipeline(f"bench_{contender}")
    import resource

    t = time.perf_counter()
    if job.get("split"):  # the same run step by step, to see the RSS of extract alone
        pipeline.extract(src)
        rss_extract = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        pipeline.normalize()
        pipeline.load()
    else:
        pipeline.run(src)
        rss_extract = None
    wall = time.perf_counter() - t
    steps: Dict[str, float] = {}
    for st in pipeline.last_trace.steps:
        steps[st.step] = steps.get(st.step, 0.0) + (st.finished_at - st.started_at).total_seconds()
    norm = pipeline.last_trace.last_normalize_info
    rows = {k: v for k, v in (norm.row_counts if norm else {}).items() if not k.startswith("_dlt")}
    out.write_text(
        json.dumps(
            {
                "wall": wall,
                "extract": steps.get("extract"),
                "normalize": steps.get("normalize"),
                "load": steps.get("load"),
                "rows": rows,
                "requests": stats.get("requests"),
                "retries": stats.get("retries"),
                "status_429": stats.get("status_429"),
                "network_s": stats.get("network_s"),
                "peak_rss_extract_mb": round(rss_extract, 1) if rss_extract else None,
            }
        )
    )
    return 0


# ---- the driver --------------------------------------------------------------------------


def _run_contender(job: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """Runs one contender in a subprocess; adds its own peak RSS (MB) from wait4."""
    with tempfile.TemporaryDirectory(prefix="dltc-bench-") as tmp:
        job = dict(job, tmp=tmp, out=os.path.join(tmp, "result.json"))
        jf = Path(tmp) / "job.json"
        jf.write_text(json.dumps(job))
        p = subprocess.Popen([sys.executable, "-m", "dltc.bench.chess", "--worker", str(jf)])
        t = time.monotonic()
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t > timeout:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                return {"error": f"timed out after {timeout:.0f} s"}
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            return {"error": f"exit status {p.returncode}"}
        res = json.loads(Path(job["out"]).read_text())
        res["peak_rss_mb"] = round(ru.ru_maxrss / 1024, 1)
        return res


def _all_urls(data_dir: str, players: List[str], base: str, callback: str) -> List[str]:
    import importlib

    gen = importlib.import_module("dltc.replica.generate")

    urls = []
    for u in players:
        urls += [f"{base}player/{u}", f"{base}player/{u}/games/archives", f"{callback}user/popup/{u}"]
        urls += [f"{base}player/{u}/games/{m}" for m in gen.player_months(data_dir, u)]
    return urls


def run(
    players: int,
    months: int,
    scenarios: List[int],
    contenders: List[str],
    tls: bool = False,
    timeout: float = 600.0,
    data_dir: Optional[str] = None,
    log: Any = None,
    repeat: int = 3,
) -> Dict[str, Any]:
    import dltc.replica as replica

    log = log or (lambda *_: None)
    result: Dict[str, Any] = {"players": players, "months": months, "tls": tls, "repeat": repeat,
                              "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="dltc-bench-data-") as tmp:
        data = data_dir or os.path.join(tmp, "data")
        if not os.path.exists(os.path.join(data, "meta.json")):
            replica.generate(data, players=players, months=months, seed=7)
        meta = json.loads(Path(data, "meta.json").read_text())
        result.update(games=meta["games"], game_refs=meta["game_refs"], json_mb=round(meta["bytes"] / 1e6, 1))
        for sc in scenarios:
            spec = SCENARIOS[sc]
            out: Dict[str, Any] = {"latency_ms": spec["latency_ms"], "max_parallel": spec["max_parallel"]}
            with replica.serve(data, tls=tls, latency_ms=spec["latency_ms"], max_parallel=spec["max_parallel"]) as api:
                base, cb = api.base_url + "/pub/", api.base_url + "/callback/"
                urls = _all_urls(data, meta["players"], base, cb)
                out["requests_needed"] = len(urls)
                runs: Dict[str, List[Dict[str, Any]]] = {c: [] for c in contenders}
                for rep in range(repeat):  # round-robin, so every contender sees the same noise
                    for c in contenders:
                        job = {"contender": c, "players": meta["players"], "base_url": base, "callback_url": cb,
                               "ca_file": api.ca_file, "urls": urls if c == "fetch_only" else None}
                        log(f"scenario {sc}: {c} (run {rep + 1}/{repeat}) ...")
                        res = _run_contender(job, timeout)
                        log(f"scenario {sc}: {c}: {res}")
                        runs[c].append(res)
                for c in contenders:
                    out[c] = _median_of(runs[c])
            _derive(out, len(urls))
            result["scenarios"][str(sc)] = out
    return result


def _median_of(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One contender's figures over several runs: the median of each number (times, RSS),
    the first run's value for anything else, and every run's wall time under `walls`."""
    if not runs:
        return {}
    out: Dict[str, Any] = dict(runs[0])
    for k, v in runs[0].items():
        vals = [r.get(k) for r in runs]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and all(
                isinstance(x, (int, float)) for x in vals):
            out[k] = statistics.median(vals)
    out["walls"] = [r.get("wall") for r in runs]
    return out


def _derive(out: Dict[str, Any], n_requests: int) -> None:
    """Speed-ups and the floor: the time the replica needs to serve every request at this
    latency and concurrency limit, or its capacity (fetch_only at the same settings)."""
    lat = out["latency_ms"] / 1000.0
    dl, ref = out.get("dltc", {}), out.get("reference", {})
    if dl.get("wall") and ref.get("wall"):
        out["speedup_vs_reference"] = round(ref["wall"] / dl["wall"], 1)
    rest = out.get("rest_api", {})
    if dl.get("wall") and rest.get("wall"):
        out["speedup_vs_rest_api"] = round(rest["wall"] / dl["wall"], 1)
    fo = out.get("fetch_only", {})
    if fo.get("extract") and dl.get("extract"):
        out["floor_s"] = round(fo["extract"], 3)
        out["extract_over_floor"] = round(dl["extract"] / fo["extract"], 2)
    if out["max_parallel"] and dl.get("extract"):
        limit = out["max_parallel"] / lat  # requests/s the replica allows
        out["goodput_rps"] = round(n_requests / dl["extract"], 1)
        out["goodput_of_limit"] = round(n_requests / dl["extract"] / limit, 3)
        if dl.get("network_s"):  # the same over the network phase (first to last request)
            out["network_goodput_of_limit"] = round(n_requests / dl["network_s"] / limit, 3)


def rss_sweep(players: int, months: List[int], tls: bool = False,
              duckdb_memory_limit: Optional[str] = None) -> List[Dict[str, Any]]:
    """dltc's peak RSS as the number of archives grows (latency 0): for the whole run, and
    for extract alone (the same run step by step)."""
    import dltc.replica as replica

    rows = []
    for m in months:
        with tempfile.TemporaryDirectory(prefix="dltc-bench-rss-") as tmp:
            data = os.path.join(tmp, "data")
            meta = replica.generate(data, players=players, months=m, seed=7, workers=2)
            with replica.serve(data, tls=tls) as api:
                job = {"contender": "dltc", "players": meta["players"], "base_url": api.base_url + "/pub/",
                       "callback_url": api.base_url + "/callback/", "ca_file": api.ca_file, "split": True,
                       "duckdb_memory_limit": duckdb_memory_limit}
                res = _run_contender(job, 900)
            rows.append({"players": players, "months": m, "archives": players * m,
                         "json_mb": round(meta["bytes"] / 1e6, 1), **res})
    return rows


def _table(result: Dict[str, Any]) -> str:
    lines = [
        f"replica: {result['players']} players x {result['months']} months, {result['games']:,} games "
        f"({result['game_refs']:,} archive entries), {result['json_mb']} MB JSON; "
        f"median of {result.get('repeat', 1)} runs per contender",
        "",
        "| scenario | contender | run (s) | extract (s) | peak RSS (MB) |",
        "|---|---|---:|---:|---:|",
    ]
    for sc, out in result["scenarios"].items():
        name = {"1": "(1) latency 0", "2": "(2) 50 ms", "3": "(3) 50 ms, max 8 parallel"}[sc]
        for c in CONTENDERS:
            r = out.get(c)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {name} | {c} | {r['error']} | | |")
                continue
            run_s = "-" if c == "fetch_only" else f"{r['wall']:.2f}"
            lines.append(f"| {name} | {c} | {run_s} | {r['extract']:.2f} | {r.get('peak_rss_mb', 0):.0f} |")
        extras = [f"{k} = {out[k]}" for k in ("speedup_vs_reference", "speedup_vs_rest_api", "floor_s",
                                              "extract_over_floor", "goodput_rps", "goodput_of_limit",
                                              "network_goodput_of_limit") if k in out]
        if extras:
            lines.append(f"| {name} | derived | {'; '.join(extras)} | | |")
    sc2, sc3 = result["scenarios"].get("2", {}), result["scenarios"].get("3", {})
    checks = [
        ("(2) dltc at least 10x faster than the reference end to end", sc2.get("speedup_vs_reference"), 10.0, True),
        ("(2) dltc extract within 1.25x of the floor", sc2.get("extract_over_floor"), 1.25, False),
        ("(3) goodput at least 90% of the limit", sc3.get("goodput_of_limit"), 0.9, True),
    ]
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for name, value, bound, at_least in checks:
        if value is None:
            continue
        met = value >= bound if at_least else value <= bound
        lines.append(f"| {name} | {value} | {'yes' if met else 'no'} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dltc.bench chess", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--players", type=int, default=48)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--scenarios", default="1,2,3")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--timeout", type=float, default=600.0, help="per contender run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender; figures are medians")
    ap.add_argument("--data", help="reuse a generated data directory")
    ap.add_argument("--rss-sweep", help="instead: dltc peak RSS for these month counts, e.g. 3,12")
    ap.add_argument("--duckdb-memory-limit", help="with --rss-sweep: DuckDB memory_limit, e.g. 256MB")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.rss_sweep:
        res: Any = rss_sweep(args.players, [int(x) for x in args.rss_sweep.split(",")], args.tls,
                             args.duckdb_memory_limit)
        print(json.dumps(res, indent=2) if args.json else "\n".join(map(str, res)))
        return 0
    res = run(args.players, args.months, [int(x) for x in args.scenarios.split(",")],
              [c for c in args.contenders.split(",") if c], args.tls, args.timeout, args.data, log,
              args.repeat)
    print(json.dumps(res, indent=2) if args.json else _table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
