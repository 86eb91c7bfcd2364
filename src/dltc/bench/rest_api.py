"""`python -m dltc.bench rest_api [--quick] [--json]`: dltc.rest_api against dlt's own
rest_api_source, on the generic API replica (dltc.replica.api), end to end into DuckDB.

The same RESTAPIConfig dict goes through three contenders, each run in its own subprocess
(wall time, CPU time of the run, peak RSS from wait4), after a warm-up load of one page:
  dltc          `from dltc.rest_api import rest_api_source`
  dlt           `from dlt.sources.rest_api import rest_api_source`
  dlt_parallel  the same with parallelized=True
Runs are taken round-robin (every contender sees the same noise); figures are medians.

Scenarios (default a,b):
  a  paginated issues with a total (page_number, total_pages) plus a fan-out orgs -> repos
     -> each repo's issues (header_link chains), at 50 ms of server latency;
  b  a larger nested data set: /issues/nested (data.issues, meta.pagination.total_pages),
     longer texts, nested objects and lists (child tables), no latency (CPU-bound);
  c  one cursor chain of large pages, 0 ms (CPU-bound);
  d  one cursor chain at 50 ms, where nothing can overlap;
  e  page_number with a total at 50 ms against a server allowing 8 in parallel (429s
     beyond): pages/s as a share of the limit.
Each scenario also reports the extract time over the latency floor (the longest chain of
requests that wait for each other, times the latency; for e the limit's pace).
If dltc.rest_api cannot be imported, its contender is skipped with a message. Not a timed
test: numbers for the README.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dltc.bench._stats import median_run, summarize_runs

CONTENDERS = ("dltc", "dlt", "dlt_parallel")

# data set and server settings per scenario; "quick" and "smoke" shrink the data
SCENARIOS: dict[str, dict[str, Any]] = {
    "a": {"title": "page_number with a total + orgs -> repos -> issues fan-out, 50 ms",
          "latency_ms": 50,
          "data": dict(orgs=2, repos_per_org=10, issues_per_repo=200, page_size=100),
          "child_per_page": 50},
    "b": {"title": "nested issues (data.issues, child tables), 2x texts, 0 ms",
          "latency_ms": 0,
          "data": dict(orgs=2, repos_per_org=5, issues_per_repo=1000, page_size=100,
                       body_scale=2.0)},
    # the issue-11 cases that (a) and (b) do not cover
    "c": {"title": "one cursor chain of large pages (4x texts), 0 ms (CPU-bound)",
          "latency_ms": 0,
          "data": dict(orgs=1, repos_per_org=4, issues_per_repo=1000, page_size=50,
                       body_scale=4.0)},
    "d": {"title": "one cursor chain, 50 ms (nothing can overlap)",
          "latency_ms": 50,
          "data": dict(orgs=1, repos_per_org=1, issues_per_repo=3000, page_size=50)},
    "e": {"title": "page_number with a total, 50 ms, the server allows 8 in parallel",
          "latency_ms": 50, "max_parallel": 8,
          "data": dict(orgs=1, repos_per_org=2, issues_per_repo=1000, page_size=10)},
}
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {},
    "quick": {"a": dict(orgs=1, repos_per_org=8, issues_per_repo=100, page_size=50),
              "b": dict(orgs=1, repos_per_org=4, issues_per_repo=500, page_size=100,
                        body_scale=2.0),
              "c": dict(orgs=1, repos_per_org=1, issues_per_repo=1000, page_size=50,
                        body_scale=4.0),
              "d": dict(orgs=1, repos_per_org=1, issues_per_repo=500, page_size=50),
              "e": dict(orgs=1, repos_per_org=1, issues_per_repo=500, page_size=10)},
    "smoke": {"a": dict(orgs=1, repos_per_org=2, issues_per_repo=20, page_size=10),
              "b": dict(orgs=1, repos_per_org=1, issues_per_repo=40, page_size=20,
                        body_scale=1.0),
              "c": dict(orgs=1, repos_per_org=1, issues_per_repo=40, page_size=10),
              "d": dict(orgs=1, repos_per_org=1, issues_per_repo=40, page_size=10),
              "e": dict(orgs=1, repos_per_org=1, issues_per_repo=40, page_size=5)},
}


def config(scenario: str, base_url: str, meta: dict[str, Any], child_per_page: int = 50) -> dict:
    """The RESTAPIConfig of a scenario (the same dict for every contender)."""
    defaults = {"primary_key": "id", "write_disposition": "replace"}
    page_number = {"type": "page_number", "base_page": 1, "page_param": "page"}
    if scenario == "a":
        resources: list[Any] = [
            {"name": "issues", "endpoint": {
                "path": "issues/page_number", "data_selector": "items",
                "paginator": dict(page_number, total_path="total_pages")}},
            {"name": "orgs", "endpoint": {"path": "orgs", "paginator": "single_page"}},
            {"name": "repos", "endpoint": {
                "path": "orgs/{resources.orgs.login}/repos", "data_selector": "repos",
                "paginator": "single_page"}},
            {"name": "repo_issues", "endpoint": {
                "path": "repos/{resources.repos.full_name}/issues",
                "params": {"per_page": min(child_per_page, meta["issues_per_repo"] or 1)},
                "paginator": {"type": "header_link"}}},
        ]
    elif scenario in ("c", "d"):
        resources = [
            {"name": "cursor_issues", "endpoint": {
                "path": "issues/cursor", "data_selector": "items",
                "paginator": {"type": "cursor", "cursor_path": "next_cursor",
                              "cursor_param": "cursor"}}},
        ]
    elif scenario == "e":
        resources = [
            {"name": "issues", "endpoint": {
                "path": "issues/page_number", "data_selector": "items",
                "paginator": dict(page_number, total_path="total_pages")}},
        ]
    elif scenario == "b":
        resources = [
            {"name": "nested_issues", "endpoint": {
                "path": "issues/nested", "data_selector": "data.issues",
                "paginator": dict(page_number, total_path="meta.pagination.total_pages")}},
        ]
    else:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    return {"client": {"base_url": base_url}, "resource_defaults": defaults,
            "resources": resources}


def warmup_config(base_url: str) -> dict:
    return {"client": {"base_url": base_url},
            "resources": [{"name": "warm_orgs", "endpoint": {"path": "orgs",
                                                             "paginator": "single_page"}}]}


def latency_floor_s(scenario: str, meta: dict[str, Any], latency_ms: float,
                    child_per_page: int = 50, max_parallel: int | None = None) -> float:
    """The least extract time the latency allows with unlimited parallelism: the longest
    chain of requests that each wait for the one before, times the latency."""
    lat = latency_ms / 1000.0
    if scenario == "a":
        per_repo = max(1, -(-meta["issues_per_repo"] // max(1, min(child_per_page,
                                                                   meta["issues_per_repo"] or 1))))
        chain = max(2, 2 + per_repo)   # page 1 then the rest; orgs -> repos -> page chain
    elif scenario in ("c", "d"):
        chain = pages(meta)            # each page waits for the cursor of the one before
    elif scenario == "e" and max_parallel:
        return max(2 * lat, lat + (pages(meta) - 1) * lat / max_parallel)
    else:
        chain = 2
    return chain * lat


def pages(meta: dict[str, Any]) -> int:
    """Pages of the issue list at the data set's page size."""
    n = meta["orgs"] * meta["repos_per_org"] * meta["issues_per_repo"]
    return max(1, -(-n // meta["page_size"]))


def dltc_rest_api_error() -> str | None:
    """None if dltc.rest_api imports, else why not."""
    try:
        if importlib.util.find_spec("dltc.rest_api") is None:
            return "dltc.rest_api is not installed (not merged yet?)"
        from dltc.rest_api import rest_api_source  # noqa: F401
    except Exception as e:  # an import-time error of a module being written
        return f"dltc.rest_api cannot be imported: {type(e).__name__}: {e}"
    return None


# ---- the worker (one contender, one run, in its own subprocess) --------------------------


def _source(contender: str, cfg: dict) -> Any:
    if contender == "dltc":
        from dltc.rest_api import rest_api_source

        return rest_api_source(cfg)
    from dlt.sources.rest_api import rest_api_source

    return rest_api_source(cfg, parallelized=contender == "dlt_parallel")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def worker(job_file: str) -> int:
    import dlt

    job = json.loads(Path(job_file).read_text())
    tmp, contender = Path(job["tmp"]), job["contender"]

    def pipeline(name: str) -> Any:
        return dlt.pipeline(pipeline_name=name, pipelines_dir=str(tmp / "pipelines"),
                            destination=dlt.destinations.duckdb(str(tmp / f"{name}.duckdb")),
                            dataset_name="api")

    # warm-up: imports and first-use set-up are not counted in the timed run
    if job.get("warmup", True):
        pipeline("warm").run(_source(contender, warmup_config(job["base_url"])))
    src = _source(contender, job["config"])
    p = pipeline("bench")
    cpu0, t0 = _cpu(), time.perf_counter()
    p.run(src)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    steps: dict[str, float] = {}
    for st in p.last_trace.steps:
        steps[st.step] = steps.get(st.step, 0.0) + (st.finished_at - st.started_at).total_seconds()
    with p.sql_client() as c:
        tables = [r[0] for r in c.execute_sql(
            "select table_name from information_schema.tables where table_schema = "
            "(select current_schema())") if not r[0].startswith("_dlt")]
        rows = {t: c.execute_sql(f'select count(*) from "{t}"')[0][0] for t in sorted(tables)}
    Path(job["out"]).write_text(json.dumps({
        "wall_s": wall, "cpu_s": cpu, "extract_s": steps.get("extract"),
        "normalize_s": steps.get("normalize"), "load_s": steps.get("load"), "rows": rows,
        "peak_rss_mb": _vm_hwm_mb()}))
    return 0


def _vm_hwm_mb() -> float | None:
    """This process's peak RSS since exec (VmHWM). wait4's ru_maxrss would also count the
    parent's RSS at the fork (Linux keeps the larger of the two across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the driver --------------------------------------------------------------------------


def run_contender(job: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """One contender in a subprocess; adds the CPU time of the whole process from wait4."""
    with tempfile.TemporaryDirectory(prefix="dltc-bench-rest-") as tmp:
        job = dict(job, tmp=tmp, out=os.path.join(tmp, "result.json"))
        jf = Path(tmp) / "job.json"
        jf.write_text(json.dumps(job))
        p = subprocess.Popen([sys.executable, "-m", "dltc.bench.rest_api", "--worker", str(jf)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                p.kill()
                os.wait4(p.pid, 0)
                return {"error": f"timed out after {timeout:.0f} s"}
            time.sleep(0.02)
        err = p.stderr.read().decode(errors="replace") if p.stderr else ""
        if p.stderr:
            p.stderr.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            return {"error": f"exit status {code}: {err.strip()[-600:]}"}
        res = json.loads(Path(job["out"]).read_text())
        if res.get("peak_rss_mb") is None:
            res["peak_rss_mb"] = ru.ru_maxrss / 1024
        res["process_cpu_s"] = ru.ru_utime + ru.ru_stime
        return res


def run(scenarios: list[str], contenders: list[str], runs: int = 5, size: str = "full",
        work: str | None = None, log: Any = None, timeout: float = 600.0) -> dict[str, Any]:
    """Every scenario, every contender `runs` times round-robin. Returns, per scenario and
    contender, every run and the median of each figure (errors are kept as runs)."""
    from dltc.replica.api import generate, serve

    log = log or (lambda *_: None)
    skipped: dict[str, str] = {}
    if "dltc" in contenders:
        why = dltc_rest_api_error()
        if why:
            skipped["dltc"] = why
            log(f"rest_api: skipping contender dltc: {why}")
            contenders = [c for c in contenders if c != "dltc"]
    out: dict[str, Any] = {"bench": "rest_api", "runs": runs, "size": size,
                           "contenders": contenders, "skipped": skipped, "scenarios": {}}
    tmp = tempfile.TemporaryDirectory(prefix="dltc-bench-rest-data-") if work is None else None
    root = Path(work or tmp.name)  # type: ignore[union-attr]
    try:
        for sc in scenarios:
            spec = SCENARIOS[sc]
            data_args = dict(spec["data"], **SIZES[size].get(sc, {}))
            data = root / f"api-{sc}-{size}"
            meta = generate(str(data), comments_per_issue=0, seed=1, locked_rate=0.0,
                            **data_args)
            child_pp = spec.get("child_per_page", 50)
            res: dict[str, Any] = {"title": spec["title"], "latency_ms": spec["latency_ms"],
                                   "data": data_args,
                                   "issues": meta["orgs"] * meta["repos_per_org"]
                                   * meta["issues_per_repo"],
                                   "max_parallel": spec.get("max_parallel"),
                                   "pages": pages(meta),
                                   "latency_floor_s": latency_floor_s(
                                       sc, meta, spec["latency_ms"], child_pp,
                                       spec.get("max_parallel"))}
            per: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
            with serve(data, latency_ms=spec["latency_ms"],
                       max_parallel=spec.get("max_parallel")) as api:
                cfg = config(sc, api.base_url + "/", meta, child_pp)
                res["config"] = cfg
                for i in range(runs):
                    for c in contenders:
                        job = {"contender": c, "config": cfg, "base_url": api.base_url + "/",
                               "warmup": size != "smoke"}
                        r = run_contender(job, timeout)
                        log(f"rest_api {sc}: {c} (run {i + 1}/{runs}): "
                            + (r["error"] if "error" in r else
                               f"{r['wall_s']:.2f} s, cpu {r['cpu_s']:.2f} s, "
                               f"{r['peak_rss_mb']:.0f} MB"))
                        per[c].append(r)
            for c in contenders:
                ok = [r for r in per[c] if "error" not in r]
                res[c] = {"runs": per[c], "median": median_run(ok) if ok else {},
                          "summary": summarize_runs(ok) if ok else {},
                          "errors": [r["error"] for r in per[c] if "error" in r]}
            _derive(res, contenders)
            out["scenarios"][sc] = res
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


def _derive(res: dict[str, Any], contenders: list[str]) -> None:
    """Ratios of medians, the extract time over the latency floor, and whether every
    contender loaded the same tables with the same row counts."""
    med = {c: res[c]["median"] for c in contenders if res[c]["median"]}
    d = med.get("dltc")
    for peer in ("dlt", "dlt_parallel"):
        p = med.get(peer)
        if d and p:
            res[f"speedup_vs_{peer}"] = p["wall_s"] / d["wall_s"]
            res[f"cpu_ratio_vs_{peer}"] = p["cpu_s"] / d["cpu_s"]
            res[f"rss_ratio_vs_{peer}"] = p["peak_rss_mb"] / d["peak_rss_mb"]
    floor = res["latency_floor_s"]
    for c, m in med.items():
        if floor and m.get("extract_s"):
            res.setdefault("extract_over_latency_floor", {})[c] = m["extract_s"] / floor
        if res.get("max_parallel") and m.get("extract_s"):   # pages/s against the limit
            limit = res["max_parallel"] / (res["latency_ms"] / 1000.0)
            res.setdefault("goodput_of_limit", {})[c] = res["pages"] / m["extract_s"] / limit
    rows = {c: res[c]["runs"][0].get("rows") for c in med}
    if len(rows) > 1:
        first = next(iter(rows.values()))
        res["same_rows"] = all(r == first for r in rows.values())


def table(out: dict[str, Any]) -> str:
    """A markdown table of the medians, with ratios to dltc."""
    lines = [f"median of {out['runs']} runs per contender, round-robin; size {out['size']}"]
    for c, why in out["skipped"].items():
        lines.append(f"skipped {c}: {why}")
    lines += ["", "| scenario | contender | run (s) | extract (s) | CPU (s) | peak RSS (MB) | rows |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for sc, res in out["scenarios"].items():
        name = f"({sc}) {res['title']}"
        for c in out["contenders"]:
            m = res[c]["median"]
            if not m:
                lines.append(f"| {name} | {c} | {'; '.join(res[c]['errors'])[:200]} | | | | |")
                continue
            lines.append(f"| {name} | {c} | {m['wall_s']:.2f} | {m['extract_s']:.2f} | "
                         f"{m['cpu_s']:.2f} | {m['peak_rss_mb']:.0f} | "
                         f"{sum(res[c]['runs'][0]['rows'].values()):,} |")
        extras = [f"{k} = {res[k]:.2f}" for k in ("speedup_vs_dlt", "speedup_vs_dlt_parallel",
                                                   "cpu_ratio_vs_dlt") if k in res]
        extras += [f"{c} extract / latency floor = {v:.2f}"
                   for c, v in res.get("extract_over_latency_floor", {}).items()]
        extras += [f"{c} goodput of the limit = {v:.2f}"
                   for c, v in res.get("goodput_of_limit", {}).items()]
        if "same_rows" in res:
            extras.append(f"same rows: {'yes' if res['same_rows'] else 'NO'}")
        if extras:
            lines.append(f"| {name} | derived | {'; '.join(extras)} | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dltc.bench rest_api", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--quick", action="store_true", help="smaller data sets")
    ap.add_argument("--size", choices=tuple(SIZES), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=5, help="runs per contender (median)")
    ap.add_argument("--scenarios", default="a,b", help=f"of {','.join(SCENARIOS)}")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--timeout", type=float, default=600.0, help="per contender run, seconds")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.worker)
    scen = [s for s in a.scenarios.split(",") if s]
    cont = [c for c in a.contenders.split(",") if c]
    bad = [s for s in scen if s not in SCENARIOS] + [c for c in cont if c not in CONTENDERS]
    if bad or a.runs < 1:
        ap.error(f"unknown {bad}; scenarios {', '.join(SCENARIOS)}, contenders "
                 f"{', '.join(CONTENDERS)}, --runs >= 1")
    size = a.size or ("quick" if a.quick else "full")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    out = run(scen, cont, a.runs, size, log=log, timeout=a.timeout)
    print(json.dumps(out, indent=1) if a.json else table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
