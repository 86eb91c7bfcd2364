"""Capacity of the local replica: `wrk` against monthly archive URLs (a Lua script rotates
over every month file of the data set) at several concurrencies and latencies.

    python -m dltc.bench replica [--json] [--data DIR] [--duration 5] [--concurrency 8,64,256]
                                 [--latency 0,50] [--encodings gzip] [--workers 2]
                                 [--tls] [--faults SPEC]
    python -m dltc.bench replica --scenario api [--families page_number,cursor,comments,app]
                                 [--body-scale 1] [same options]

`--scenario api` measures the generic API replica (dltc.replica.api): per family of URLs,
page files served by nginx (page_number, cursor, comments: json_link child pages) and
pages rendered by the Python app (app: /issues/json_link, filtered), each rotated by wrk.

Without --data a data set is generated once into ~/.cache/dltc/bench-data/ and reused.
wrk runs on the same machine, so the figures are a lower bound of what nginx can do.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LUA = r"""
local paths = {%(paths)s}
local n = #paths
local counter = 0
wrk.headers["Accept-Encoding"] = "%(encoding)s"
function setup(thread)
  thread:set("start", counter * 7919)
  counter = counter + 1
end
function init(args)
  i = (start or 0) %% n
end
function request()
  i = i + 1
  if i > n then i = 1 end
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nDLTC_JSON {"requests":%%d,"bytes":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d,"mean_us":%%.1f}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def _default_data(players: int, months: int, seed: int, now: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = Path(base) / "dltc" / "bench-data" / f"p{players}-m{months}-s{seed}-{now}"
    if not (d / "meta.json").is_file():
        from dltc.replica import generate

        print(f"generating {d} ...", file=sys.stderr, flush=True)
        generate(str(d), players=players, months=months, seed=seed, now=now,
                 workers=os.cpu_count() or 1)
    return d


def _month_paths(data: Path) -> tuple[list[str], float]:
    """(URI of every month file, mean body size in bytes), in a seeded shuffled order."""
    paths, sizes = [], []
    root = data / "pub" / "player"
    for f in root.glob("*/games/[0-9][0-9][0-9][0-9]/[0-9][0-9].json"):
        rel = f.relative_to(data).as_posix()[:-5]
        paths.append("/" + rel)
        sizes.append(f.stat().st_size)
    if not paths:
        raise SystemExit(f"dltc.bench replica: no month files under {root}")
    order = list(range(len(paths)))
    random.Random(1).shuffle(order)
    return [paths[i] for i in order], sum(sizes) / len(sizes)


def _wrk(wrk: str, url: str, script: Path, conns: int, duration: float) -> dict:
    threads = max(1, min(2, conns))
    cmd = [wrk, "-t", str(threads), "-c", str(conns), "-d", f"{duration:g}s", "--timeout", "10s",
           "-s", str(script), url]
    env = {k: v for k, v in os.environ.items()          # no sanitizer preload for wrk
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=env)
    for line in p.stdout.splitlines():
        if line.startswith("DLTC_JSON "):
            return json.loads(line[len("DLTC_JSON "):])
    raise RuntimeError(f"wrk failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-300:]}")


def run(data: Path, concurrency: list[int], latencies: list[float], encodings: list[str],
        duration: float, workers: int, tls: bool = False, faults: str | None = None) -> dict:
    from dltc.replica import serve

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("dltc.bench replica: wrk not found: run `make setup` (apt-get install wrk)")
    paths, mean_size = _month_paths(data)
    results = []
    with tempfile.TemporaryDirectory(prefix="dltc-bench-") as tmp:
        scripts = {}
        for enc in encodings:
            s = Path(tmp) / f"rotate-{enc}.lua"
            s.write_text(_LUA % {"paths": ",".join(json.dumps(p) for p in paths),
                                 "encoding": enc})
            scripts[enc] = s
        for lat in latencies:
            t0 = time.perf_counter()
            with serve(data, latency_ms=lat, workers=workers, tls=tls, faults=faults) as api:
                start_s = time.perf_counter() - t0
                for enc in encodings:
                    for c in concurrency:
                        r = _wrk(wrk, api.base_url, scripts[enc], c, duration)
                        secs = r["duration_us"] / 1e6
                        rps = r["requests"] / secs
                        results.append({
                            "latency_ms": lat, "encoding": enc, "concurrency": c,
                            "requests_per_s": round(rps, 1),
                            "wire_MB_per_s": round(r["bytes"] / secs / 1e6, 1),
                            "decoded_MB_per_s": round(rps * mean_size / 1e6, 1),
                            "p50_ms": round(r["p50_us"] / 1000, 1),
                            "p99_ms": round(r["p99_us"] / 1000, 1),
                            "errors": {k: r[k] for k in ("connect", "read", "write", "status",
                                                         "timeout") if r[k]},
                            "replica_start_s": round(start_s, 2),
                        })
    meta = json.loads((data / "meta.json").read_text())
    return {"bench": "replica", "data": str(data), "month_files": len(paths),
            "mean_month_bytes": round(mean_size), "players": len(meta.get("players", [])),
            "nginx_workers": workers, "duration_s": duration, "cpus": os.cpu_count(),
            "tls": tls, "faults": faults,
            "results": results}


API_DATA_ARGS = dict(orgs=1, repos_per_org=10, issues_per_repo=2000, comments_per_issue=3,
                     comment_page_size=1, seed=1, locked_rate=0.0)
API_FAMILIES = ("page_number", "cursor", "comments", "app")


def _default_api_data(body_scale: float) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    a = API_DATA_ARGS
    d = Path(base) / "dltc" / "bench-data" / (
        f"api-o{a['orgs']}-r{a['repos_per_org']}-i{a['issues_per_repo']}-c{a['comments_per_issue']}"
        f"-s{a['seed']}-b{body_scale:g}")
    if not (d / "meta.json").is_file():
        from dltc.replica.api import generate

        print(f"generating {d} ...", file=sys.stderr, flush=True)
        generate(str(d), body_scale=body_scale, **a)
    return d


def _api_paths(data: Path, family: str) -> tuple[list[str], float]:
    """(URIs of one family, mean body bytes), in a seeded shuffled order."""
    from dltc.replica.api import load_meta

    meta = load_meta(data)
    pages = data / "pages"
    paths, sizes = [], []
    if family in ("page_number", "app"):
        d = pages / "issues" / "page_number" / str(meta["page_size"])
        for f in d.glob("*.json"):
            n = int(f.stem)
            if family == "page_number":
                paths.append(f"/issues/page_number?page={n}")
            else:   # rendered by the app: json_link pages, filtered (state=all keeps all)
                paths.append(f"/issues/json_link?page={n}&state=all")
            sizes.append(f.stat().st_size)
    elif family == "cursor":
        d = pages / "issues" / "cursor" / str(meta["page_size"])
        for f in d.glob("*.json"):
            paths.append("/issues/cursor" + ("" if f.stem == "first" else f"?cursor={f.stem}"))
            sizes.append(f.stat().st_size)
    elif family == "comments":
        for f in (pages / "comments").glob("*/*/*.json"):
            number, _pp, page = f.name[:-5].split(".")
            repo = f.parent.relative_to(pages / "comments").as_posix()
            paths.append(f"/repos/{repo}/issues/{number}/comments?page={page}")
            sizes.append(f.stat().st_size)
    else:
        raise ValueError(f"unknown family {family!r} (known: {', '.join(API_FAMILIES)})")
    if not paths:
        raise SystemExit(f"dltc.bench replica: no {family} pages under {pages}")
    order = list(range(len(paths)))
    random.Random(1).shuffle(order)
    return [paths[i] for i in order], sum(sizes) / len(sizes)


def run_api(data: Path, families: list[str], concurrency: list[int], latencies: list[float],
            encodings: list[str], duration: float, workers: int, tls: bool = False,
            faults: str | None = None) -> dict:
    from dltc.replica.api import load_meta, serve

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("dltc.bench replica: wrk not found: run `make setup` (apt-get install wrk)")
    fam = {f: _api_paths(data, f) for f in families}
    results = []
    with tempfile.TemporaryDirectory(prefix="dltc-bench-") as tmp:
        scripts = {}
        for f, (paths, _) in fam.items():
            for enc in encodings:
                s = Path(tmp) / f"{f}-{enc}.lua"
                s.write_text(_LUA % {"paths": ",".join(json.dumps(p) for p in paths),
                                     "encoding": enc})
                scripts[f, enc] = s
        for lat in latencies:
            t0 = time.perf_counter()
            with serve(data, latency_ms=lat, workers=workers, tls=tls, faults=faults) as api:
                start_s = time.perf_counter() - t0
                for f, (paths, mean_size) in fam.items():
                    for enc in encodings:
                        for c in concurrency:
                            r = _wrk(wrk, api.base_url, scripts[f, enc], c, duration)
                            secs = r["duration_us"] / 1e6
                            rps = r["requests"] / secs
                            results.append({
                                "family": f, "latency_ms": lat, "encoding": enc, "concurrency": c,
                                "requests_per_s": round(rps, 1),
                                "wire_MB_per_s": round(r["bytes"] / secs / 1e6, 1),
                                "decoded_MB_per_s": round(rps * mean_size / 1e6, 1),
                                "mean_page_bytes": round(mean_size),
                                "p50_ms": round(r["p50_us"] / 1000, 1),
                                "p99_ms": round(r["p99_us"] / 1000, 1),
                                "errors": {k: r[k] for k in ("connect", "read", "write", "status",
                                                             "timeout") if r[k]},
                                "replica_start_s": round(start_s, 2),
                            })
    meta = load_meta(data)
    return {"bench": "replica", "scenario": "api", "data": str(data),
            "pages": {f: len(p) for f, (p, _) in fam.items()}, "page_size": meta["page_size"],
            "body_scale": meta["body_scale"], "nginx_workers": workers, "duration_s": duration,
            "cpus": os.cpu_count(), "tls": tls, "faults": faults, "results": results}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m dltc.bench replica", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--data", help="replica data dir (default: generated and cached)")
    ap.add_argument("--players", type=int, default=100)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--now", default="2024-06-15")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (max 30)")
    ap.add_argument("--concurrency", default="8,64,256")
    ap.add_argument("--latency", default="0,50", help="ms, comma-separated")
    ap.add_argument("--encodings", default="gzip", help="gzip and/or identity")
    ap.add_argument("--workers", type=int, default=2, help="nginx worker processes")
    ap.add_argument("--tls", action="store_true", help="HTTPS (wrk speaks HTTP/1.1 over TLS)")
    ap.add_argument("--faults", default=None, help="fault SPEC: every request goes through the app")
    ap.add_argument("--scenario", choices=("chess", "api"), default="chess",
                    help="chess: the chess.com replica; api: the generic API replica")
    ap.add_argument("--families", default=",".join(API_FAMILIES),
                    help="api: URL families (page_number, cursor, comments, app)")
    ap.add_argument("--body-scale", type=float, default=1.0,
                    help="api: text length multiplier of the generated data (4: ~4x pages)")
    a = ap.parse_args(argv)
    try:
        conc = [int(x) for x in a.concurrency.split(",") if x]
        lats = [float(x) for x in a.latency.split(",") if x]
        encs = [x for x in a.encodings.split(",") if x]
    except ValueError:
        print("dltc.bench replica: --concurrency/--latency take comma-separated numbers", file=sys.stderr)
        return 2
    if not 0 < a.duration <= 30 or any(c < 1 or c > 4096 for c in conc) or \
            any(e not in ("gzip", "identity") for e in encs):
        print("dltc.bench replica: --duration in (0, 30], --concurrency in 1..4096, "
              "--encodings gzip|identity", file=sys.stderr)
        return 2
    from dltc.replica import ReplicaError

    try:
        if a.scenario == "api":
            fams = [x for x in a.families.split(",") if x]
            data = Path(a.data) if a.data else _default_api_data(a.body_scale)
            out = run_api(data, fams, conc, lats, encs, a.duration, a.workers, a.tls, a.faults)
        else:
            data = Path(a.data) if a.data else _default_data(a.players, a.months, a.seed, a.now)
            out = run(data, conc, lats, encs, a.duration, a.workers, a.tls, a.faults)
    except (ReplicaError, RuntimeError, ValueError) as e:
        print(f"dltc.bench replica: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(out, indent=1))
    elif a.scenario == "api":
        print(f"api replica capacity: pages {out['pages']}, page_size {out['page_size']}, "
              f"body_scale {out['body_scale']:g}, {out['nginx_workers']} nginx workers, "
              f"{out['duration_s']:g}s per run")
        print(f"{'family':>11} {'lat ms':>6} {'enc':>8} {'conc':>5} {'req/s':>9} {'wire MB/s':>10} "
              f"{'json MB/s':>10} {'page B':>7} {'p50 ms':>7} {'p99 ms':>7}  errors")
        for r in out["results"]:
            print(f"{r['family']:>11} {r['latency_ms']:>6g} {r['encoding']:>8} {r['concurrency']:>5} "
                  f"{r['requests_per_s']:>9.0f} {r['wire_MB_per_s']:>10.1f} "
                  f"{r['decoded_MB_per_s']:>10.1f} {r['mean_page_bytes']:>7} {r['p50_ms']:>7.1f} "
                  f"{r['p99_ms']:>7.1f}  {r['errors'] or ''}")
    else:
        print(f"replica capacity: {out['month_files']} month files, mean {out['mean_month_bytes']} B, "
              f"{out['nginx_workers']} nginx workers, {out['duration_s']:g}s per run")
        print(f"{'lat ms':>6} {'enc':>8} {'conc':>5} {'req/s':>9} {'wire MB/s':>10} "
              f"{'json MB/s':>10} {'p50 ms':>7} {'p99 ms':>7}  errors")
        for r in out["results"]:
            print(f"{r['latency_ms']:>6g} {r['encoding']:>8} {r['concurrency']:>5} "
                  f"{r['requests_per_s']:>9.0f} {r['wire_MB_per_s']:>10.1f} "
                  f"{r['decoded_MB_per_s']:>10.1f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}  "
                  f"{r['errors'] or ''}")
    return 0
