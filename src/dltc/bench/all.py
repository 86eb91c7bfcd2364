"""`python -m dltc.bench all --out docs/benchmarks [--scale smoke|quick|full] [--headline]`:
every benchmark in one run, written as one page.

Runs the scenarios of replica (wrk, the server's ceiling), fetch (clients against injected
latency, goodput against the server's parallel limit, a 429 storm), decode (dltc against
orjson, msgspec, pyarrow.json, polars), chess (dltc against the verified source's logic,
dlt's rest_api, dltc at concurrency 1, the fetch-only floor; peak RSS against the number of
archives), rest_api (dltc.rest_api against dlt's rest_api_source, plain and parallelized)
and chaos (faults and 429s), by calling those modules' own functions, all in this process
tree, contenders alternating within each round. Every figure keeps its median, minimum and
maximum over the runs (at least 5, except at --scale smoke). Writes into --out:
  results.json  every figure, the ratios, machine, versions, git commit, load average
  raw.json      what each module returned, run by run
  README.md     tables (dltc against each peer in the same run, with ratios) and the plots
  headline.md   the headline table (also printed with --headline)
  *.png         five plots (matplotlib, Agg)
--headline runs only the headline comparisons (chess at 50 ms: dltc, the verified logic,
dlt's rest_api; rest_api scenario a) and prints their table. --render re-renders the page
and plots from an existing results.json/raw.json. --update-readme FILE puts headline.md
between the markers `<!-- bench:headline -->` and `<!-- /bench:headline -->` of FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from dltc.bench._stats import summarize_runs

# ---- scales ----------------------------------------------------------------------------
# measured on the 2-core machine: quick 4.4 min idle (6.8 min under load), full 27 min; smoke
# (~25 s idle with --jobs 2) only proves that every
# path runs (one run of each, the smallest data).

SCALES: dict[str, dict[str, Any]] = {
    "smoke": {
        "runs": 1,
        "chess_data": dict(players=4, months=2),
        "replica": dict(concurrency=[16], latencies=[0], duration=1, families=["page_number"],
                        api_data=dict(repos_per_org=1, issues_per_repo=100, comments_per_issue=0)),
        "fetch": dict(latencies=[0, 25], seconds=0.2, concurrency=32,
                      limits=[4, 8], goodput_s=0.3, storm_limit=4, storm_s=0.5),
        "decode": dict(files=2, min_time=0.01),
        "chess": dict(players=2, months=1, scenarios=[2],
                      contenders=["dltc", "reference", "rest_api"]),
        "rss": dict(players=1, months=[1], runs=1),
        "rest_api": dict(size="smoke", scenarios=["a"]),
        "chaos": dict(players=2, months=3, runs=1),
    },
    "quick": {
        "runs": 5,
        "chess_data": dict(players=12, months=3),
        "replica": dict(concurrency=[64], latencies=[0, 50], api_latencies=[0], duration=1,
                        families=["page_number", "app"], runs=3,
                        api_data=dict(repos_per_org=2, issues_per_repo=500, comments_per_issue=0)),
        "fetch": dict(latencies=[0, 10, 50], seconds=0.3, concurrency=64,
                      limits=[2, 8, 32], goodput_s=0.5, storm_limit=4, storm_s=1.0),
        "decode": dict(files=4, min_time=0.05),
        "chess": dict(players=6, months=2, scenarios=[2],
                      contenders=["dltc", "reference", "rest_api", "dltc_seq", "fetch_only"]),
        "rss": dict(players=4, months=[1, 2, 4], runs=1),
        "rest_api": dict(size="quick", scenarios=["a", "b"]),
        "chaos": dict(players=10, months=3, runs=1),
    },
    "full": {
        "runs": 5,
        "chess_data": dict(players=20, months=3),
        "replica": dict(concurrency=[8, 64, 256], latencies=[0, 50], api_latencies=[0],
                        duration=1, families=["page_number", "cursor", "comments", "app"], runs=3,
                        api_data=dict(repos_per_org=4, issues_per_repo=500, comments_per_issue=1)),
        "fetch": dict(latencies=[0, 10, 25, 50, 100], seconds=1.0, concurrency=64,
                      limits=[1, 2, 4, 8, 16, 32, 64], goodput_s=1.0, storm_limit=8, storm_s=3.0),
        "decode": dict(files=8, min_time=0.2),
        "chess": dict(players=24, months=4, scenarios=[1, 2, 3],
                      contenders=["dltc", "reference", "rest_api", "dltc_seq", "fetch_only"]),
        "rss": dict(players=24, months=[1, 2, 4, 8, 16], runs=3),
        "rest_api": dict(size="full", scenarios=["a", "b", "c", "d", "e"]),
        "chaos": dict(players=60, months=4, runs=3),
    },
}
SECTIONS = ("replica", "fetch", "decode", "chess", "rest_api", "chaos")
HEADLINE_CHESS_SCENARIO = 2


def _log(msg: str) -> None:
    print(f"[bench all {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- the machine, the versions, the commit ----------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {"cpu_model": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "system": platform.system(),
            "machine": platform.machine()}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import dltc

    out = {"python": platform.python_version(), "dltc": dltc.__version__,
           "libcurl": dltc.curl_version()}
    for pkg in ("dlt", "pyarrow", "duckdb", "orjson", "msgspec", "polars", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        p = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
        words = (p.stdout or p.stderr).split()
        out["wrk"] = words[1] if len(words) > 1 else "?"
    except (OSError, subprocess.SubprocessError):
        out["wrk"] = "not installed"
    try:
        p = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10)
        out["nginx"] = (p.stderr or p.stdout).strip().split("/")[-1]
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        p = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
        return p.stdout.strip() if p.returncode == 0 else ""
    commit = git("rev-parse", "HEAD")
    return {"commit": commit or "unknown", "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


# ---- sections: each returns {"params", "runs" [one dict per round], "extra"} --------------


def _chess_data(work: Path, players: int, months: int) -> tuple[Path, list[str], list[str]]:
    """A chess replica data set -> (dir, month archive paths, small paths)."""
    from dltc import replica as R

    data = work / f"chess-p{players}-m{months}"
    if not (data / "meta.json").is_file():
        R.generate(str(data), players=players, months=months, seed=1, now="2024-03-20")
    meta = json.loads((data / "meta.json").read_text())
    months_p = sorted("/" + f.relative_to(data).with_suffix("").as_posix()
                      for f in data.glob("pub/player/*/games/*/*.json"))
    small = [f"/pub/player/{u}" for u in meta["players"]]
    small += [f"/pub/player/{u}/games/archives" for u in meta["players"]]
    return data, months_p, small


def section_replica(work: Path, sc: dict[str, Any], runs: int) -> dict[str, Any]:
    from dltc.bench import replica as B
    from dltc.replica.api import generate

    p = sc["replica"]
    data, _, _ = _chess_data(work, **sc["chess_data"])
    api_data = work / "api-capacity"
    # comment pages are one file each (comment_page_size 1): the app's start-up grows with them
    generate(str(api_data), orgs=1, comment_page_size=1, seed=1, locked_rate=0.0,
             **p["api_data"])
    runs = p.get("runs", runs)      # the ceiling, not a comparison: fewer rounds at quick scale
    rounds: list[dict[str, Any]] = [{"chess": {}, "api": {}} for _ in range(runs)]
    for i in range(runs):
        r = B.run(data, p["concurrency"], p["latencies"], ["gzip"], p["duration"], 2)
        for x in r["results"]:
            rounds[i]["chess"].setdefault(f"{x['latency_ms']:g}ms", {})[f"c{x['concurrency']}"] = x
        r = B.run_api(api_data, p["families"], p["concurrency"],
                      p.get("api_latencies", p["latencies"]), ["gzip"], p["duration"], 2)
        for x in r["results"]:
            rounds[i]["api"].setdefault(x["family"], {}).setdefault(
                f"{x['latency_ms']:g}ms", {})[f"c{x['concurrency']}"] = x
        _log(f"replica: round {i + 1}/{runs} done")
    return {"params": p, "runs": rounds}


def storm_trace(data: Path, paths: list[str], limit: int, latency_ms: float,
                seconds: float) -> dict[str, Any]:
    """A 429 storm: a client that starts at 64 in flight against a server that allows
    `limit`; the engine's window over time (stats()["window_history"])."""
    from dltc import replica as R
    from dltc._native import Client

    n = max(20, int(seconds * limit / (latency_ms / 1000.0)))
    with R.serve(data, latency_ms=latency_ms, max_parallel=limit) as api:
        with Client(initial_concurrency=64) as c:
            t0 = time.monotonic()
            for i in range(n):
                c.submit(api.base_url + paths[i % len(paths)])
            ok = sum(r.error is None for r in c)
            wall = time.monotonic() - t0
            st = c.stats()
    hist = [(float(t), float(w)) for t, w in st["window_history"]]
    hist.append((wall, float(st["window"])))     # the window holds until the end
    ideal = limit / (latency_ms / 1000.0)
    return {"limit": limit, "latency_ms": latency_ms, "requests": n, "ok": ok,
            "seconds": wall, "goodput_req_per_s": ok / wall, "goodput_share": ok / wall / ideal,
            "status_429": st["status_429"], "share_429": st["status_429"] / max(1, st["requests"]),
            "initial_window": 64, "final_window": st["window"],
            "max_window": max((w for _, w in hist), default=0.0), "window_history": hist}


def section_fetch(work: Path, sc: dict[str, Any], runs: int) -> dict[str, Any]:
    from dltc import replica as R
    from dltc.bench import fetch as F

    p = sc["fetch"]
    data, months, small = _chess_data(work, **sc["chess_data"])
    conc = p["concurrency"]
    rounds: list[dict[str, Any]] = [{"throughput": {}, "goodput": {}, "storm": {}}
                                    for _ in range(runs)]
    tmp = work / "fetch-tmp"
    tmp.mkdir(exist_ok=True)
    clients: dict[str, Callable[[list[str], str], Any]] = {
        # decompress="caller" is how dltc's runtime (every source) uses the engine
        "dltc": lambda urls, base: F.run_dltc(urls, p["seconds"], conc, decompress="caller"),
        "dltc_libcurl_inflate": lambda urls, base: F.run_dltc(urls, p["seconds"], conc),
        "dltc_concurrency_1": lambda urls, base: F.run_dltc(urls, p["seconds"], 1,
                                                            decompress="caller"),
        "dlt_requests_5_threads": lambda urls, base: F.run_python(urls, p["seconds"]),
        "wrk": lambda urls, base: F.run_wrk(base, months, p["seconds"], conc, tmp),
    }
    for lat in p["latencies"]:
        with R.serve(data, latency_ms=lat) as api:
            urls = [api.base_url + m for m in months]
            for i in range(runs):
                for name, fn in clients.items():      # alternating, round by round
                    r = fn(urls, api.base_url)
                    if r is not None:
                        rounds[i]["throughput"].setdefault(f"{lat:g}ms", {})[name] = r
        _log(f"fetch: latency {lat:g} ms done")
    for limit in p["limits"]:
        n = max(20, int(p["goodput_s"] * limit / 0.05))
        for i in range(runs):
            rounds[i]["goodput"][f"limit{limit}"] = F.run_adaptive(data, small, limit, 50.0, n)
        _log(f"fetch: goodput at limit {limit} done")
    traces = []
    for i in range(runs):
        t = storm_trace(data, small, p["storm_limit"], 50.0, p["storm_s"])
        traces.append(t.pop("window_history"))
        rounds[i]["storm"] = t
    _log("fetch: 429 storm done")
    return {"params": p, "runs": rounds, "extra": {"storm_window_history": traces}}


def section_decode(work: Path, sc: dict[str, Any], runs: int) -> dict[str, Any]:
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    from dltc.bench import decode as D

    p = sc["decode"]
    data, _, _ = _chess_data(work, **sc["chess_data"])
    docs, _ = D._replica_months(data, p["files"])
    datasets = [D.Dataset("replica_months", docs)]
    sample = D._sample()
    if sample:
        datasets.append(D.Dataset("recorded_sample", sample))
    tools: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for t in D.TOOLS:
        try:
            tools[t] = D._FACTORIES[t]()
        except ImportError as e:
            missing[t] = f"not installed: {e}"
    rounds: list[dict[str, Any]] = [{} for _ in range(runs)]
    for i in range(runs):
        for ds in datasets:
            for t, fn in tools.items():              # alternating tools within each round
                r = D._measure(fn, ds, 1, p["min_time"])
                rounds[i].setdefault(ds.name, {})[t] = {
                    "mb_s": r["mb_s"], "rows_s": r["rows_s"], "seconds": r["median_s"],
                    "rows": r["rows"], "input_bytes": r["input_bytes"]}
    _log("decode: done")
    desc = (f"the {len(docs)} biggest monthly archives of the generated chess replica "
            f"({sc['chess_data']['players']} players x {sc['chess_data']['months']} months)")
    return {"params": dict(p, replica=desc, sample_files=len(sample)), "runs": rounds,
            "extra": {"missing": missing,
                      "inputs": {ds.name: {t: getattr(fn, "form", "docs") for t, fn in tools.items()}
                                 for ds in datasets}}}


def section_chess(work: Path, sc: dict[str, Any], runs: int) -> dict[str, Any]:
    from dltc.bench import chess as C

    p = sc["chess"]
    data = work / f"chess-bench-p{p['players']}-m{p['months']}"
    rounds = []
    for i in range(runs):   # one round: every scenario, every contender once, round-robin
        r = C.run(p["players"], p["months"], p["scenarios"], p["contenders"], data_dir=str(data),
                  repeat=1, log=lambda m: None)
        rounds.append(r)
        _log(f"chess: round {i + 1}/{runs}: " + ", ".join(
            f"s{s} {c} {o[c].get('wall', o[c].get('extract', float('nan'))):.2f}s"
            for s, o in r["scenarios"].items() for c in p["contenders"] if "error" not in o[c]))
    rss_rounds = []
    for i in range(sc["rss"]["runs"]):
        rows = C.rss_sweep(sc["rss"]["players"], sc["rss"]["months"])
        rss_rounds.append({f"archives{r['archives']}": r for r in rows})
    _log("chess: peak RSS sweep done")
    info = {k: rounds[0][k] for k in ("players", "months", "games", "game_refs", "json_mb")}
    return {"params": dict(p, **info, rss=sc["rss"]), "runs": rounds,
            "extra": {"rss_runs": rss_rounds,
                      "errors": [f"s{s} {c}: {o[c]['error']}" for r in rounds
                                 for s, o in r["scenarios"].items() for c in p["contenders"]
                                 if "error" in o.get(c, {})]}}


def section_rest_api(work: Path, sc: dict[str, Any], runs: int) -> dict[str, Any]:
    from dltc.bench import rest_api as RA

    p = sc["rest_api"]
    out = RA.run(p["scenarios"], list(RA.CONTENDERS), runs, p["size"], work=str(work), log=_log)
    return {"params": p, "result": out}


def section_chaos(work: Path, sc: dict[str, Any], runs: int) -> dict[str, Any]:
    from dltc.bench import chaos as X

    p = sc["chaos"]
    rounds = []
    for i in range(p["runs"]):
        r = X.run(players=p["players"], months=p["months"], work=str(work / f"chaos-{i}"))
        rounds.append(r)
        _log(f"chaos: run {i + 1}/{p['runs']}: missing {r['rows_missing']}, "
             f"duplicates {r['duplicates']}, {r['wall_s']} s")
    return {"params": p, "runs": rounds}


# sections that start contender processes run in a fresh process of their own: a child's
# ru_maxrss includes its parent's RSS at the fork, so the parent must stay small
OWN_PROCESS = ("chess", "rest_api")


def run_section(name: str, work: Path, sc: dict[str, Any], runs: int,
                own_process: bool = False) -> dict[str, Any]:
    if name not in OWN_PROCESS and not own_process:
        return RUNNERS[name](work, sc, runs)
    job, res = work / "section-job.json", work / "section-result.json"
    job.write_text(json.dumps({"name": name, "scale": sc, "runs": runs}))
    p = subprocess.run([sys.executable, "-m", "dltc.bench.all", "--section-job", str(job)],
                       stdout=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"section process exited with status {p.returncode}")
    return json.loads(res.read_text())


def _section_job(job_file: str) -> int:
    job = json.loads(Path(job_file).read_text())
    work = Path(job_file).parent
    out = RUNNERS[job["name"]](work, job["scale"], job["runs"])
    (work / "section-result.json").write_text(json.dumps(out, default=str))
    return 0


RUNNERS = {"replica": section_replica, "fetch": section_fetch, "decode": section_decode,
           "chess": section_chess, "rest_api": section_rest_api, "chaos": section_chaos}


# ---- figures -----------------------------------------------------------------------------


def figures_of(raw: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Every figure of every section: {"section.path": {median, min, max, runs}}."""
    figs: dict[str, dict[str, float]] = {}
    for name, sec in raw["sections"].items():
        if "error" in sec:
            continue
        if name == "rest_api":
            for scn, res in sec["result"]["scenarios"].items():
                for c in sec["result"]["contenders"]:
                    for k, s in res[c]["summary"].items():
                        figs[f"rest_api.{scn}.{c}.{k}"] = s
            continue
        for k, s in summarize_runs(sec["runs"]).items():
            figs[f"{name}.{k}"] = s
        if name == "chess":
            for k, s in summarize_runs(sec["extra"]["rss_runs"]).items():
                figs[f"chess.rss.{k}"] = s
    return figs


def ratios_of(figs: dict[str, dict[str, float]]) -> dict[str, float]:
    """dltc against each peer, from the medians of the same run (>1: dltc better)."""
    def med(k: str) -> float | None:
        f = figs.get(k)
        return f["median"] if f else None

    out: dict[str, float] = {}

    def put(key: str, num: float | None, den: float | None) -> None:
        if num and den:
            out[key] = num / den

    for k in sorted(figs):
        parts = k.split(".")
        # chess: scenario wall times, peers over dltc
        if parts[0] == "chess" and parts[1] == "scenarios" and parts[3] == "dltc" and parts[4] == "wall":
            for peer in ("reference", "rest_api", "dltc_seq"):
                put(f"chess.s{parts[2]}.{peer}_wall_over_dltc",
                    med(f"chess.scenarios.{parts[2]}.{peer}.wall"), med(k))
        if parts[0] == "fetch" and parts[1] == "throughput" and parts[3] == "dltc" and parts[4] == "req_per_s":
            for peer in ("dlt_requests_5_threads", "dltc_concurrency_1", "wrk"):
                put(f"fetch.{parts[2]}.dltc_req_per_s_over_{peer}", med(k),
                    med(f"fetch.throughput.{parts[2]}.{peer}.req_per_s"))
        if parts[0] == "decode" and parts[2] == "dltc" and parts[3] == "rows_s":
            for peer in ("orjson", "msgspec", "pyarrow", "polars"):
                put(f"decode.{parts[1]}.dltc_rows_s_over_{peer}", med(k),
                    med(f"decode.{parts[1]}.{peer}.rows_s"))
        if parts[0] == "rest_api" and parts[2] == "dltc" and parts[3] == "wall_s":
            for peer in ("dlt", "dlt_parallel"):
                put(f"rest_api.{parts[1]}.{peer}_wall_over_dltc",
                    med(f"rest_api.{parts[1]}.{peer}.wall_s"), med(k))
                put(f"rest_api.{parts[1]}.{peer}_cpu_over_dltc",
                    med(f"rest_api.{parts[1]}.{peer}.cpu_s"), med(f"rest_api.{parts[1]}.dltc.cpu_s"))
    return out


# ---- the command -------------------------------------------------------------------------


def run_all(out_dir: Path, scale: str, sections: list[str], headline_only: bool = False,
            work: str | None = None, jobs: int = 1) -> dict[str, Any]:
    """Runs the sections one after another (jobs=1), or `jobs` at a time, each in its own
    process: figures measured so are disturbed by each other (smoke tests only)."""
    sc = json.loads(json.dumps(SCALES[scale]))
    runs = sc["runs"]
    if headline_only:
        sections = ["chess", "rest_api"]
        sc["chess"]["scenarios"] = [HEADLINE_CHESS_SCENARIO]
        sc["chess"]["contenders"] = ["dltc", "reference", "rest_api"]
        sc["rss"]["months"] = []
        sc["rest_api"]["scenarios"] = ["a"]
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    raw: dict[str, Any] = {"scale": scale, "runs": runs, "headline_only": headline_only,
                           "jobs": jobs, "sections": {}}
    tmp = tempfile.TemporaryDirectory(prefix="dltc-bench-all-") if work is None else None
    root = Path(work or tmp.name)  # type: ignore[union-attr]
    try:
        def one(name: str) -> dict[str, Any]:
            _log(f"{name} ...")
            s0 = time.monotonic()
            sec_dir = root / name
            sec_dir.mkdir(parents=True, exist_ok=True)
            try:
                sec = run_section(name, sec_dir, sc, runs, own_process=jobs > 1)
            except Exception as e:      # one section failing must not lose the others
                import traceback

                traceback.print_exc()
                sec = {"error": f"{type(e).__name__}: {e}"}
            sec["seconds"] = time.monotonic() - s0
            _log(f"{name}: {sec['seconds']:.0f} s")
            return sec

        if jobs > 1:    # sections side by side: only to check that everything runs
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(jobs) as ex:
                done = dict(zip(sections, ex.map(one, sections)))
        else:
            done = {name: one(name) for name in sections}
        raw["sections"] = {name: done[name] for name in sections}
    finally:
        if tmp is not None:
            tmp.cleanup()
    figs = figures_of(raw)
    results = {
        "command": "python -m dltc.bench all " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["all"]
                                                          else sys.argv[1:]),
        "scale": scale, "runs": runs, "headline_only": headline_only, "sections": sections,
        "jobs": jobs,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - t0,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "machine": machine(), "versions": versions(), "git": git_commit(),
        "section_seconds": {k: v["seconds"] for k, v in raw["sections"].items()},
        "errors": {k: v["error"] for k, v in raw["sections"].items() if "error" in v},
        "figures": figs, "ratios": ratios_of(figs),
    }
    return {"results": results, "raw": raw}


def write(out_dir: Path, results: dict[str, Any], raw: dict[str, Any]) -> list[Path]:
    from dltc.bench import _plots, _report

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in (("results.json", results), ("raw.json", raw)):
        f = out_dir / name
        f.write_text(json.dumps(doc, indent=1, sort_keys=False, default=str) + "\n")
        written.append(f)
    plots = _plots.plot_all(out_dir, results, raw)
    written += plots
    head = out_dir / "headline.md"
    head.write_text(_report.headline(results, raw) + "\n")
    page = out_dir / "README.md"
    page.write_text(_report.page(results, raw, [p.name for p in plots]))
    return written + [head, page]


def update_readme(readme: Path, headline_md: str, link: str) -> None:
    start, end = "<!-- bench:headline -->", "<!-- /bench:headline -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: markers {start} ... {end} not found")
    a, rest = text.split(start, 1)
    _, b = rest.split(end, 1)
    block = (f"{start}\n<!-- generated by `python -m dltc.bench all --update-readme`; "
             f"do not edit -->\n{headline_md.strip()}\n\nAll tables and plots: [{link}]({link})\n{end}")
    readme.write_text(a + block + b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dltc.bench all", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None,
                    help="output directory (default docs/benchmarks; with --headline: none, "
                         "the table is printed)")
    ap.add_argument("--scale", choices=tuple(SCALES), default="quick")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="a subset, comma-separated")
    ap.add_argument("--headline", action="store_true",
                    help="only the headline comparisons; print their table")
    ap.add_argument("--render", action="store_true",
                    help="re-render README.md, headline.md and plots from --out's JSON files")
    ap.add_argument("--update-readme", metavar="FILE",
                    help="put --out's headline.md between the markers of FILE (after a run or "
                         "--render)")
    ap.add_argument("--note", help="a sentence for the page (e.g. what else ran on the machine)")
    ap.add_argument("--work", help="keep the generated data sets here (default: a temp dir)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="sections at a time (>1 disturbs the figures: for smoke tests)")
    ap.add_argument("--section-job", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.section_job:
        return _section_job(a.section_job)
    keep = None
    if a.out:
        out = Path(a.out)
    elif a.headline and not a.render:    # do not overwrite the full page with a partial run
        keep = tempfile.TemporaryDirectory(prefix="dltc-bench-headline-")
        out = Path(keep.name)
    else:
        out = Path("docs/benchmarks")
    secs = [s for s in a.sections.split(",") if s]
    bad = [s for s in secs if s not in SECTIONS]
    if bad:
        ap.error(f"unknown sections {bad} (known: {', '.join(SECTIONS)})")
    if a.render:
        results = json.loads((out / "results.json").read_text())
        raw = json.loads((out / "raw.json").read_text())
    else:
        doc = run_all(out, a.scale, secs, a.headline, a.work, max(1, a.jobs))
        results, raw = doc["results"], doc["raw"]
    if a.note:
        results["note"] = a.note
    for f in write(out, results, raw):
        _log(f"wrote {f}")
    if a.update_readme:
        rel = os.path.relpath(out / "README.md", Path(a.update_readme).resolve().parent)
        update_readme(Path(a.update_readme), (out / "headline.md").read_text(), rel)
        _log(f"updated {a.update_readme}")
    if a.headline:
        print((out / "headline.md").read_text())
    for k, v in results["errors"].items():
        print(f"dltc.bench all: section {k} failed: {v}", file=sys.stderr)
    if keep is not None:
        keep.cleanup()
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
