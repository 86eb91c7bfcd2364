"""The page of `python -m dltc.bench all`: markdown tables built from the run's figures
(results.json), dltc against each peer with ratios, and the headline table."""

from __future__ import annotations

import math
from typing import Any

from dltc.bench._plots import LABELS, PLOTS


def num(x: float | None, unit: str = "") -> str:
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "-"
    a = abs(x)
    if float(x).is_integer() and a < 1e15:
        return f"{int(x):,}{unit}"
    if a >= 1000:
        s = f"{x:,.0f}"
    elif a >= 100:
        s = f"{x:.0f}"
    elif a >= 10:
        s = f"{x:.1f}"
    elif a >= 1:
        s = f"{x:.2f}"
    else:
        s = f"{x:.3g}"
    return s + unit


def cell(figs: dict[str, Any], key: str, unit: str = "") -> str:
    """'median (min-max)' of a figure; the median alone for one run."""
    f = figs.get(key)
    if not f:
        return "-"
    if f["runs"] > 1:
        return f"{num(f['median'], unit)} ({num(f['min'])}-{num(f['max'])})"
    return num(f["median"], unit)


def med(figs: dict[str, Any], key: str) -> float | None:
    f = figs.get(key)
    return f["median"] if f else None


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    r = a / b
    return f"{r:.1f}x" if r >= 0.95 else f"{r:.2g}x"


def _chess_info(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["sections"].get("chess", {}).get("params", {})


def headline(results: dict[str, Any], raw: dict[str, Any]) -> str:
    figs, n = results["figures"], results["runs"]
    s = _headline_scenario(raw)
    lines = [f"One run of `{results['command']}` ({results['started']}, git "
             f"{results['git']['commit'][:10]}): `pipeline.run` into DuckDB, wall time, median of "
             f"{n} run{'s' if n > 1 else ''} per contender taken round-robin, each in its own "
             "process; the speed-up is the peer's median over dltc's.", "",
             "| workload | dltc | dlt's verified chess logic | dlt rest_api | dlt rest_api, parallelized | dltc faster by |",
             "|---|---:|---:|---:|---:|---|"]
    ci = _chess_info(raw)
    if s and f"chess.scenarios.{s}.dltc.wall" in figs:
        k = f"chess.scenarios.{s}"
        d = med(figs, f"{k}.dltc.wall")
        ref, ra = med(figs, f"{k}.reference.wall"), med(figs, f"{k}.rest_api.wall")
        sc = raw["sections"]["chess"]["runs"][0]["scenarios"][s]
        what = (f"chess.com replica, {ci.get('players')} players x {ci.get('months')} months "
                f"({ci.get('games', 0):,} games, {ci.get('json_mb')} MB JSON), "
                f"{sc['latency_ms']:g} ms latency")
        lines.append(f"| {what} | {cell(figs, f'{k}.dltc.wall', ' s')} | "
                     f"{cell(figs, f'{k}.reference.wall', ' s')} | - | "
                     f"{cell(figs, f'{k}.rest_api.wall', ' s')} | "
                     f"{ratio(ref, d)} vs verified logic, {ratio(ra, d)} vs rest_api |")
    ra_sec = raw["sections"].get("rest_api", {}).get("result")
    if ra_sec:
        for scn, res in ra_sec["scenarios"].items():
            if scn not in ("a", "b"):      # the headline: the two main workloads
                continue
            k = f"rest_api.{scn}"
            d = med(figs, f"{k}.dltc.wall_s")
            p, pp = med(figs, f"{k}.dlt.wall_s"), med(figs, f"{k}.dlt_parallel.wall_s")
            dl = cell(figs, f"{k}.dltc.wall_s", " s") if d else \
                f"skipped ({ra_sec['skipped'].get('dltc', 'failed')})"
            what = f"generic API replica ({scn}): {res['title']}, {res['issues']:,} issues"
            lines.append(f"| {what} | {dl} | - | {cell(figs, f'{k}.dlt.wall_s', ' s')} | "
                         f"{cell(figs, f'{k}.dlt_parallel.wall_s', ' s')} | "
                         + (f"{ratio(p, d)} vs rest_api, {ratio(pp, d)} vs parallelized |" if d
                            else "- |"))
    lines += ["", "dlt's rest_api on the chess replica is configured as dlt users would (every "
              "resource `parallelized: True`, a transformer for the archive list); `(min-max)` "
              "over the runs."]
    return "\n".join(lines)


def _headline_scenario(raw: dict[str, Any]) -> str | None:
    chess = raw["sections"].get("chess")
    if not chess or "runs" not in chess:
        return None
    scs = list(chess["runs"][0]["scenarios"])
    return "2" if "2" in scs else (scs[0] if scs else None)


def _machine(results: dict[str, Any]) -> list[str]:
    m, v, g, la = results["machine"], results["versions"], results["git"], results["load_average"]
    lines = [
        f"- machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"{m['system']} {m['kernel']} ({m['machine']})",
        f"- load average (1, 5, 15 min): before {', '.join(f'{x:.2f}' for x in la['before'])}; "
        f"after {', '.join(f'{x:.2f}' for x in la['after'])}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- git commit {g['commit']}" + (f" ({g['branch']})" if g.get("branch") else "")
        + (" with uncommitted changes" if g.get("dirty") else ""),
        f"- duration {results['duration_s']:.0f} s: " + ", ".join(
            f"{k} {s:.0f} s" for k, s in results["section_seconds"].items()),
    ]
    if results.get("note"):
        lines.append(f"- note: {results['note']}")
    return lines


def _chess(results: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    figs = results["figures"]
    sec = raw["sections"].get("chess")
    if not sec or "runs" not in sec:
        return []
    p = sec["params"]
    lines = ["## The chess pipeline (`python -m dltc.bench chess`)", "",
             f"{p['players']} players x {p['months']} months of the chess.com replica "
             f"({p['games']:,} games, {p['game_refs']:,} archive entries, {p['json_mb']} MB JSON); "
             "`pipeline.run` into DuckDB, each contender in its own process after a warm-up load of "
             "one player. `reference` is the verified source's logic (tests/chess_reference.py: "
             "dlt's requests helper, dicts, five `dlt.defer` threads); `rest_api` is dlt's "
             "rest_api_source for the same endpoints; `dltc_seq` is dltc with one request at a "
             "time (the earlier Rust attempt's design); `fetch_only` is the floor (every URL known "
             "up front, fetched and dropped).", "",
             "| scenario | contender | run (s) | extract (s) | peak RSS (MB) | run time / dltc's |",
             "|---|---|---:|---:|---:|---:|"]
    names = {"1": "(1) latency 0", "2": "(2) 50 ms", "3": "(3) 50 ms, server allows 8 in parallel"}
    for s, sc in sec["runs"][0]["scenarios"].items():
        k = f"chess.scenarios.{s}"
        d = med(figs, f"{k}.dltc.wall")
        for c in p["contenders"]:
            if f"{k}.{c}.extract" not in figs:
                lines.append(f"| {names.get(s, s)} | {c} | failed | | | |")
                continue
            run = "-" if c == "fetch_only" else cell(figs, f"{k}.{c}.wall")
            rel = "-" if c in ("fetch_only", "dltc") else ratio(med(figs, f"{k}.{c}.wall"), d)
            lines.append(f"| {names.get(s, s)} | {c} | {run} | {cell(figs, f'{k}.{c}.extract')} | "
                         f"{cell(figs, f'{k}.{c}.peak_rss_mb')} | {rel} |")
        extra = []
        if f"{k}.extract_over_floor" in figs:
            extra.append(f"dltc's extract over the floor: {cell(figs, f'{k}.extract_over_floor')}")
        if f"{k}.goodput_of_limit" in figs:
            extra.append(f"goodput of the limit: {cell(figs, f'{k}.goodput_of_limit')}")
        if f"{k}.network_goodput_of_limit" in figs:
            extra.append(f"over the network phase: {cell(figs, f'{k}.network_goodput_of_limit')}")
        if extra:
            lines.append(f"| {names.get(s, s)} | derived | {'; '.join(extra)} | | | |")
    for e in sec["extra"].get("errors", []):
        lines.append(f"\nfailed: {e}")
    rp = p["rss"]
    lines += ["", f"**Peak RSS against the number of archives** (`chess.rss_sweep`: dltc, "
              f"{rp['players']} players, months {rp['months']}, latency 0; {rp['runs']} run(s) each):",
              "", "| archives | JSON (MB) | peak RSS, extract (MB) | peak RSS, whole run (MB) |",
              "|---:|---:|---:|---:|"]
    arch = sorted({int(k.split(".")[2][8:]) for k in figs if k.startswith("chess.rss.archives")})
    for a in arch:
        k = f"chess.rss.archives{a}"
        lines.append(f"| {a} | {cell(figs, f'{k}.json_mb')} | {cell(figs, f'{k}.peak_rss_extract_mb')} | "
                     f"{cell(figs, f'{k}.peak_rss_mb')} |")
    lines += ["", f"![peak RSS against archives]({PLOTS[3]})", ""]
    return lines


def _rest_api(results: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    figs = results["figures"]
    sec = raw["sections"].get("rest_api", {}).get("result")
    if not sec:
        return []
    lines = ["## dlt's rest_api against dltc.rest_api (`python -m dltc.bench rest_api`)", "",
             "The same RESTAPIConfig dict through `dltc.rest_api.rest_api_source` (dltc), dlt's "
             "`rest_api_source` (dlt) and the same with `parallelized=True` (dlt_parallel), on the "
             "generic API replica, `pipeline.run` into DuckDB, each run in its own process after a "
             "warm-up load of one page; CPU is the run's user+system time of all threads."]
    for c, why in sec["skipped"].items():
        lines.append(f"\nSkipped **{c}**: {why}.")
    lines += ["", "| scenario | contender | run (s) | extract (s) | CPU (s) | peak RSS (MB) | rows | run time / dltc's |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for scn, res in sec["scenarios"].items():
        k = f"rest_api.{scn}"
        d = med(figs, f"{k}.dltc.wall_s")
        name = f"({scn}) {res['title']}; {res['issues']:,} issues"
        for c in sec["contenders"]:
            if not res[c]["median"]:
                lines.append(f"| {name} | {c} | failed: {'; '.join(res[c]['errors'])[:300]} | | | | | |")
                continue
            rows = sum(res[c]["runs"][0]["rows"].values())
            rel = "-" if c == "dltc" else ratio(med(figs, f"{k}.{c}.wall_s"), d)
            lines.append(f"| {name} | {c} | {cell(figs, f'{k}.{c}.wall_s')} | "
                         f"{cell(figs, f'{k}.{c}.extract_s')} | {cell(figs, f'{k}.{c}.cpu_s')} | "
                         f"{cell(figs, f'{k}.{c}.peak_rss_mb')} | {rows:,} | {rel} |")
        notes = [f"latency floor {num(res['latency_floor_s'], ' s')}"] if res["latency_floor_s"] else []
        for c, v in res.get("extract_over_latency_floor", {}).items():
            notes.append(f"{c} extract / floor {v:.1f}")
        for c, v in res.get("goodput_of_limit", {}).items():
            notes.append(f"{c} pages/s of the limit {v:.2f}")
        if "same_rows" in res:
            notes.append("the same tables and row counts" if res["same_rows"] else
                         "**row counts differ between contenders**")
        lines.append(f"| {name} | derived | {'; '.join(notes)} | | | | | |")
    lines.append("")
    return lines


def _fetch(results: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    figs = results["figures"]
    sec = raw["sections"].get("fetch")
    if not sec or "runs" not in sec:
        return []
    p = sec["params"]
    lines = ["## Fetching (`python -m dltc.bench fetch`)", "",
             f"The replica's monthly archives (gzip), {p['seconds']:g} s per client and latency "
             "(wrk: at least 1 s), clients alternating within each round. CPU is this process's "
             "(wrk: its own) per request.", "",
             "| latency | client | req/s | MB/s (decoded) | CPU-us/req | dltc's req/s / client's |",
             "|---:|---|---:|---:|---:|---:|"]
    for lat in p["latencies"]:
        k = f"fetch.throughput.{lat:g}ms"
        d = med(figs, f"{k}.dltc.req_per_s")
        for c, label in LABELS.items():
            if f"{k}.{c}.req_per_s" not in figs:
                continue
            rel = "-" if c == "dltc" else ratio(d, med(figs, f"{k}.{c}.req_per_s"))
            lines.append(f"| {lat:g} ms | {label} | {cell(figs, f'{k}.{c}.req_per_s')} | "
                         f"{cell(figs, f'{k}.{c}.mb_per_s')} | {cell(figs, f'{k}.{c}.cpu_us_per_req')} | {rel} |")
    lines += ["", "wrk's MB/s counts wire (gzip) bytes; it decodes nothing.", "",
              f"![throughput against latency]({PLOTS[0]})", "",
              "**Goodput against the server's parallel limit** (`fetch.run_adaptive`: the default "
              "client, window 8..256, against a replica that answers 429 beyond the limit, 50 ms):",
              "", "| limit | goodput (req/s) | the limit (req/s) | share of the limit | share answered 429 |",
              "|---:|---:|---:|---:|---:|"]
    for lim in p["limits"]:
        k = f"fetch.goodput.limit{lim}"
        lines.append(f"| {lim} | {cell(figs, f'{k}.goodput_req_per_s')} | {num(med(figs, f'{k}.ideal_req_per_s'))} | "
                     f"{cell(figs, f'{k}.goodput_share')} | {cell(figs, f'{k}.share_429')} |")
    lines += ["", f"![goodput against the limit]({PLOTS[1]})", "",
              f"**A 429 storm**: a client starting at 64 in flight against a server allowing "
              f"{p['storm_limit']} (50 ms): final window {cell(figs, 'fetch.storm.final_window')}, "
              f"{cell(figs, 'fetch.storm.status_429')} responses 429 "
              f"({cell(figs, 'fetch.storm.share_429')} of requests), goodput "
              f"{cell(figs, 'fetch.storm.goodput_share')} of the limit; every request succeeded: "
              f"{cell(figs, 'fetch.storm.ok')} of {cell(figs, 'fetch.storm.requests')}.", "",
              f"![window in a 429 storm]({PLOTS[4]})", ""]
    return lines


def _decode(results: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    figs = results["figures"]
    sec = raw["sections"].get("decode")
    if not sec or "runs" not in sec:
        return []
    p = sec["params"]
    lines = ["## Decoding (`python -m dltc.bench decode`)", "",
             f"JSON to an Arrow table, one thread, tools alternating within each round. Inputs: "
             f"{p['replica']}; the recorded chess.com sample ({p['sample_files']} files). MB/s is of "
             "each tool's own input form (pyarrow reads NDJSON, polars the bare array).", "",
             "| input | decoder | MB/s | rows/s | dltc's rows/s / decoder's |", "|---|---|---:|---:|---:|"]
    for ds in ("replica_months", "recorded_sample"):
        d = med(figs, f"decode.{ds}.dltc.rows_s")
        for t in ("dltc", "orjson", "msgspec", "pyarrow", "polars"):
            if f"decode.{ds}.{t}.mb_s" not in figs:
                continue
            rel = "-" if t == "dltc" else ratio(d, med(figs, f"decode.{ds}.{t}.rows_s"))
            lines.append(f"| {ds} | {t} | {cell(figs, f'decode.{ds}.{t}.mb_s')} | "
                         f"{cell(figs, f'decode.{ds}.{t}.rows_s')} | {rel} |")
    for t, why in sec["extra"].get("missing", {}).items():
        lines.append(f"\n{t}: {why}")
    lines += ["", f"![decode MB/s]({PLOTS[2]})", ""]
    return lines


def _replica(results: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    figs = results["figures"]
    sec = raw["sections"].get("replica")
    if not sec or "runs" not in sec:
        return []
    p = sec["params"]
    lines = ["## The replica's ceiling (`python -m dltc.bench replica`, wrk)", "",
             f"wrk on the same machine, {p['duration']} s per run, 2 nginx workers, gzip, "
             f"median of {len(sec['runs'])} rounds: what the server can give, which no client "
             "above can exceed.", "",
             "| URLs | latency | connections | req/s | wire MB/s | p99 (ms) |", "|---|---:|---:|---:|---:|---:|"]
    keys = sorted({".".join(k.split(".")[:-1]) for k in figs if k.startswith("replica.")
                   and k.endswith(".requests_per_s")})
    for k in keys:
        parts = k.split(".")
        what = "chess month archives" if parts[1] == "chess" else f"api: {parts[2]}"
        lat, c = parts[-2], parts[-1][1:]
        lines.append(f"| {what} | {lat} | {c} | {cell(figs, f'{k}.requests_per_s')} | "
                     f"{cell(figs, f'{k}.wire_MB_per_s')} | {cell(figs, f'{k}.p99_ms')} |")
    lines.append("")
    return lines


def _chaos(results: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    figs = results["figures"]
    sec = raw["sections"].get("chaos")
    if not sec or "runs" not in sec:
        return []
    r0 = sec["runs"][0]
    lines = ["## Chaos (`python -m dltc.bench chaos`)", "",
             f"The chess pipeline, {r0['players']} players x {r0['months']} months, through the "
             f"fault plan `{r0['fault_plan']}` with the server allowing {r0['max_parallel']} in "
             "parallel (429s), then schema drift under `columns: discard_row`.", "",
             "| figure | value |", "|---|---:|"]
    for k in ("requests", "requests_retried", "faults_injected.429", "rows_served", "rows_loaded",
              "rows_rejected", "rows_missing", "duplicates", "rows_unexpected", "wall_s",
              "peak_rss_mb"):
        if f"chaos.{k}" in figs:
            lines.append(f"| {k} | {cell(figs, f'chaos.{k}')} |")
    inj = ", ".join(f"{k} {v}" for k, v in r0["faults_injected"].items())
    ok = all(r["rows_missing"] == 0 and r["duplicates"] == 0 and r["rows_unexpected"] == 0
             and r["loaded_plus_rejected_equals_served"] for r in sec["runs"])
    lines += ["", f"Faults injected (first run): {inj}. Every run lost nothing and loaded nothing "
              f"twice: **{'yes' if ok else 'NO'}**.", ""]
    return lines


def page(results: dict[str, Any], raw: dict[str, Any], plots: list[str]) -> str:
    lines = ["# dltc benchmarks", "",
             f"Generated by `{results['command']}` (scale `{results['scale']}`, median of "
             f"{results['runs']} run{'s' if results['runs'] > 1 else ''} per figure, `(min-max)` "
             "over the runs). Every figure on this page comes from that one run "
             "([results.json](results.json); run by run: [raw.json](raw.json)); nothing is typed "
             "by hand. Servers are the local replicas on loopback: read ratios measured side by "
             "side, not absolute claims.", ""]
    lines += _machine(results)
    if results.get("jobs", 1) > 1:
        lines += ["", f"**{results['jobs']} sections ran at a time: the figures disturbed each "
                  "other (a smoke run, to check that everything runs; not for reading).**"]
    if results["errors"]:
        lines += ["", "**Sections that failed:** " + "; ".join(
            f"{k}: {v}" for k, v in results["errors"].items())]
    lines += ["", "## Headline", "", headline(results, raw), ""]
    for part in (_chess, _rest_api, _fetch, _decode, _replica, _chaos):
        lines += part(results, raw)
    lines += ["## Ratios", "", "dltc against each peer, from the medians above (above 1: dltc "
              "better).", "", "| ratio | value |", "|---|---:|"]
    for k, v in results["ratios"].items():
        lines.append(f"| {k} | {v:.2f} |")
    lines.append("")
    return "\n".join(lines)
