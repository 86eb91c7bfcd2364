"""Fetch benchmark: dltc's engine against wrk and a Python baseline, on the local replica.

    python -m dltc.bench fetch [--json] [--seconds 3] [--concurrency 64] [--players 20]

For 0 ms and 50 ms server latency, over the replica's monthly archives (the bodies the
chess source spends its time on), it measures requests/s, MB/s (decoded) and CPU-µs per
request of this process (getrusage; no JSON decoding happens here) for:
  * dltc: dltc.Client at a fixed concurrency (window pinned: initial = max = concurrency);
  * dltc_caller: the same with decompress="caller": the engine thread only moves gzip
    bytes and this (consumer) thread inflates each body with dltc._native.inflate (GIL
    released, libdeflate), timed and CPU-counted in the same process;
  * wrk: the same URLs, same concurrency, same Accept-Encoding (wrk parses nothing: the
    ceiling); its CPU is measured as a child process;
  * python: dlt's own requests helper (`from dlt.sources.helpers import requests`) on a
    5-thread pool (what dlt.defer gives the verified source).
Then, small bodies (profiles) at 0 ms for the per-request overhead alone, and the
adaptive window against `max_parallel=8` (50 ms): goodput as a share of 8/latency and the
share of requests answered 429. Runs are a few seconds each; traffic is loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dltc import replica as R
from dltc._native import Client, inflate


def _cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _result(n: int, nbytes: int, wall: float, cpu: float, **extra) -> dict:
    out = {
        "requests": n,
        "seconds": round(wall, 3),
        "req_per_s": round(n / wall, 1) if wall > 0 else 0.0,
        "mb_per_s": round(nbytes / wall / 1e6, 1) if wall > 0 else 0.0,
        "cpu_us_per_req": round(cpu / n * 1e6, 1) if n else None,
        "cpu_us_per_mb": round(cpu / (nbytes / 1e6) * 1e6, 1) if nbytes else None,
    }
    out.update(extra)
    return out


def run_dltc(urls: list[str], seconds: float, conc: int, **client_kw) -> dict:
    """Keep `conc` requests in flight for `seconds`, consuming every response."""
    n = nbytes = errors = 0
    i = 0
    with Client(max_concurrency=conc, initial_concurrency=conc, queue_size=max(64, conc),
                **client_kw) as c:
        cpu0, t0 = _cpu_self(), time.monotonic()
        end = t0 + seconds
        while True:
            now = time.monotonic()
            if now < end:
                while c.pending < 2 * conc:
                    c.submit(urls[i % len(urls)])
                    i += 1
            elif not c.pending:
                break
            r = c.next()
            if r is None:
                continue
            n += 1
            if r.error:
                errors += 1
            elif r.content_encoding:
                nbytes += len(inflate(r.body, r.content_encoding))
            else:
                nbytes += len(r.body)
        wall, cpu = time.monotonic() - t0, _cpu_self() - cpu0
        st = c.stats()
    return _result(n, nbytes, wall, cpu, errors=errors, wire_mb=round(st["wire_bytes"] / 1e6, 1),
                   latency_p50_ms=round(st["latency_p50"] * 1e3, 2),
                   latency_p99_ms=round(st["latency_p99"] * 1e3, 2))


_WRK_LUA = """
local paths = {%s}
local i = 0
%s
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  io.write(string.format("DLTC %%d %%d %%d %%d %%d\\n", summary.requests, summary.bytes,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(base: str, paths: list[str], seconds: float, conc: int, tmp: Path,
            gzip: bool = True) -> dict | None:
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    script = tmp / "paths.lua"
    enc = 'wrk.headers["Accept-Encoding"] = "gzip, deflate, br, zstd"' if gzip else ""
    script.write_text(_WRK_LUA % (",".join(json.dumps(p) for p in paths), enc))
    threads = max(1, min(2, conc))
    cpu0 = _cpu_children()
    p = subprocess.run([wrk, f"-t{threads}", f"-c{conc}", f"-d{max(1, round(seconds))}s",
                        "-s", str(script), base + paths[0]], capture_output=True, text=True,
                       timeout=seconds + 60)
    cpu = _cpu_children() - cpu0
    m = re.search(r"DLTC (\d+) (\d+) (\d+) (\d+) (\d+)", p.stdout)
    if not m:
        return {"error": (p.stdout + p.stderr)[-300:]}
    n, nbytes, dur_us, p50, p99 = (int(x) for x in m.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    # wrk's bytes are wire bytes (gzip, headers included); it decodes nothing
    return _result(n, nbytes, dur_us / 1e6, cpu, errors=int(non2xx.group(1)) if non2xx else 0,
                   wire_mb=round(nbytes / 1e6, 1), latency_p50_ms=round(p50 / 1e3, 2),
                   latency_p99_ms=round(p99 / 1e3, 2), note="MB/s counts wire (gzip) bytes")


def run_python(urls: list[str], seconds: float, threads: int = 5) -> dict:
    """dlt's requests helper on a thread pool, for `seconds`."""
    from dlt.sources.helpers import requests  # the helper the verified source uses

    stop = time.monotonic() + seconds
    lock = threading.Lock()
    totals = {"n": 0, "bytes": 0, "errors": 0}

    def worker(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            try:
                resp = requests.get(urls[i % len(urls)], timeout=30)
                body = resp.content
                ok = resp.status_code == 200
            except Exception:
                body, ok = b"", False
            with lock:
                totals["n"] += 1
                totals["bytes"] += len(body)
                totals["errors"] += 0 if ok else 1
            i += threads

    cpu0, t0 = _cpu_self(), time.monotonic()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(worker, range(threads)))
    wall, cpu = time.monotonic() - t0, _cpu_self() - cpu0
    return _result(totals["n"], totals["bytes"], wall, cpu, errors=totals["errors"],
                   threads=threads)


def run_adaptive(data_dir: Path, paths: list[str], limit: int, latency_ms: float,
                 n: int) -> dict:
    """Default Client (window 8..256, adaptive) against a server allowing `limit` in parallel."""
    with R.serve(data_dir, latency_ms=latency_ms, max_parallel=limit) as api:
        with Client() as c:
            t0 = time.monotonic()
            for i in range(n):
                c.submit(api.base_url + paths[i % len(paths)])
            ok = 0
            for r in c:
                ok += r.error is None
            wall = time.monotonic() - t0
            st = c.stats()
    ideal = limit / (latency_ms / 1e3)
    windows = [w for _, w in st["window_history"]]
    return {
        "limit": limit, "latency_ms": latency_ms, "requests": n, "ok": ok,
        "seconds": round(wall, 3), "goodput_req_per_s": round(ok / wall, 1),
        "ideal_req_per_s": ideal, "goodput_share": round(ok / wall / ideal, 3),
        "http_requests": st["requests"], "status_429": st["status_429"],
        "share_429": round(st["status_429"] / max(1, st["requests"]), 4),
        "final_window": st["window"], "max_window": max(windows) if windows else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dltc.bench fetch", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--players", type=int, default=20)
    ap.add_argument("--months", type=int, default=3)
    ap.add_argument("--latencies", default="0,50", help="server latencies in ms, comma-separated")
    ap.add_argument("--skip", default="",
                    help="comma-separated: dltc,caller,wrk,python,small (identity+small bodies),"
                         "adaptive")
    ap.add_argument("--loop", choices=("poll", "epoll"), default=None,
                    help="engine event loop (default: the engine's default)")
    a = ap.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    kw = {"loop": a.loop} if a.loop else {}
    out: dict = {"concurrency": a.concurrency, "seconds": a.seconds, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="dltc-bench-") as tmp:
        tmp = Path(tmp)
        meta = R.generate(tmp / "data", players=a.players, months=a.months, seed=1,
                          now="2024-03-20")
        data = tmp / "data"
        months = sorted("/" + f.relative_to(data).with_suffix("").as_posix()
                        for f in data.glob("pub/player/*/games/*/*.json"))
        small = [f"/pub/player/{u}" for u in meta["players"]]
        sizes = [f.stat().st_size for f in data.glob("pub/player/*/games/*/*.json")]
        out["archives"] = {"count": len(months), "mean_kb": round(sum(sizes) / len(sizes) / 1e3, 1)}
        for lat in (float(x) for x in a.latencies.split(",")):
            key = f"{lat:g}ms"
            with R.serve(data, latency_ms=lat) as api:
                urls = [api.base_url + p for p in months]
                run: dict = {}
                if "dltc" not in skip:
                    run["dltc"] = run_dltc(urls, a.seconds, a.concurrency, **kw)
                if "caller" not in skip:
                    run["dltc_caller"] = run_dltc(urls, a.seconds, a.concurrency,
                                                  decompress="caller", **kw)
                if "wrk" not in skip:
                    run["wrk"] = run_wrk(api.base_url, months, a.seconds, a.concurrency, tmp)
                if "python" not in skip:
                    run["python_dlt_requests_5_threads"] = run_python(urls, a.seconds)
                if run.get("dltc") and run.get("wrk") and run["wrk"].get("req_per_s"):
                    run["dltc_vs_wrk"] = round(run["dltc"]["req_per_s"] / run["wrk"]["req_per_s"], 3)
                if run.get("dltc") and run.get("python_dlt_requests_5_threads"):
                    py = run["python_dlt_requests_5_threads"]["req_per_s"]
                    run["dltc_vs_python"] = round(run["dltc"]["req_per_s"] / py, 1) if py else None
                if "small" not in skip:
                    surls = [api.base_url + p for p in small]
                    # same bytes both sides, nothing to inflate: the HTTP machinery alone
                    ident = {"headers": {"Accept-Encoding": "identity"}}
                    run["identity"] = {"dltc": run_dltc(urls, a.seconds, a.concurrency,
                                                        **ident, **kw)}
                    if "wrk" not in skip:
                        run["identity"]["wrk"] = run_wrk(api.base_url, months, a.seconds,
                                                         a.concurrency, tmp, gzip=False)
                    run["small_bodies"] = {"dltc": run_dltc(surls, a.seconds, a.concurrency, **kw)}
                    if "wrk" not in skip:
                        run["small_bodies"]["wrk"] = run_wrk(api.base_url, small, a.seconds,
                                                             a.concurrency, tmp)
                    for sub in (run["identity"], run["small_bodies"]):
                        if sub.get("wrk") and sub["wrk"].get("req_per_s"):
                            sub["dltc_vs_wrk"] = round(sub["dltc"]["req_per_s"]
                                                       / sub["wrk"]["req_per_s"], 3)
                out["runs"][key] = run
        if "adaptive" not in skip:
            small_paths = small + [f"/pub/player/{u}/games/archives" for u in meta["players"]]
            out["max_parallel_8"] = run_adaptive(data, small_paths, 8, 50.0, 600)
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for key, run in out["runs"].items():
            for name, r in run.items():
                print(key, name, r)
        if "max_parallel_8" in out:
            print("max_parallel_8", out["max_parallel_8"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
