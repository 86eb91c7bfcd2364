"""The five plots of `python -m dltc.bench all`, drawn with matplotlib (Agg) from the run's
figures: one message per plot, axes with units, a legend, min-max bars over the runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOTS = ("fetch_latency.png", "goodput_limit.png", "decode_mb_s.png", "rss_archives.png",
         "storm_window.png")

LABELS = {
    "dltc": "dltc (64 in flight, inflate in the caller as the sources do)",
    "dltc_libcurl_inflate": "dltc, the engine inflates (64)",  # key kept from when libcurl did
    "dltc_concurrency_1": "dltc, 1 in flight",
    "dlt_requests_5_threads": "dlt requests helper, 5 threads",
    "wrk": "wrk (64; parses nothing)",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fig(figs: dict[str, Any], key: str) -> tuple[float, float, float] | None:
    f = figs.get(key)
    return (f["median"], f["min"], f["max"]) if f else None


def _errbars(vals: list[tuple[float, float, float]]) -> list[list[float]]:
    return [[m - lo for m, lo, _ in vals], [hi - m for m, _, hi in vals]]


def _empty(ax: Any, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)


def _finish(plt: Any, fig: Any, ax: Any, path: Path, subtitle: str, below: bool = False) -> Path:
    if ax.get_legend_handles_labels()[0]:
        if below:     # many lines: the legend under the axes, not over the data
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        else:
            ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.text(0.99, 0.01, subtitle, ha="right", va="bottom", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(out: Path, results: dict[str, Any], raw: dict[str, Any]) -> list[Path]:
    plt = _plt()
    figs = results["figures"]
    runs = results["runs"]
    sub = (f"dltc.bench all --scale {results['scale']}, {results['started']}, "
           f"{results['git']['commit'][:10]}; points: medians of up to {runs} runs, bars: min-max")
    paths = []
    secs = raw["sections"]

    # 1. throughput against injected latency, per client
    fig, ax = plt.subplots(figsize=(7, 5.5))
    lats = sorted({float(k.split(".")[2][:-2]) for k in figs if k.startswith("fetch.throughput.")})
    for client, label in LABELS.items():
        pts = [(lat, _fig(figs, f"fetch.throughput.{lat:g}ms.{client}.req_per_s")) for lat in lats]
        pts = [(x, v) for x, v in pts if v]
        if pts:
            ax.errorbar([x for x, _ in pts], [v[0] for _, v in pts],
                        yerr=_errbars([v for _, v in pts]), marker="o", capsize=3, label=label)
    if not lats:
        _empty(ax, "fetch section did not run")
    else:
        ax.set_yscale("log")
    ax.set_xlabel("injected server latency (ms)")
    ax.set_ylabel("requests per second (log scale)")
    title = "Requests per second against the server's latency"
    if lats:
        top = lats[-1]
        d = _fig(figs, f"fetch.throughput.{top:g}ms.dltc.req_per_s")
        py = _fig(figs, f"fetch.throughput.{top:g}ms.dlt_requests_5_threads.req_per_s")
        if d and py:
            title = (f"At {top:g} ms dltc does {d[0] / py[0]:.1f}x the requests/s of dlt's "
                     "requests helper")
    ax.set_title(title)
    paths.append(_finish(plt, fig, ax, out / PLOTS[0], sub, below=True))

    # 2. goodput against the server's parallel limit
    fig, ax = plt.subplots(figsize=(7, 4.5))
    limits = sorted({int(k.split(".")[2][5:]) for k in figs if k.startswith("fetch.goodput.limit")})
    pts = [(lim, _fig(figs, f"fetch.goodput.limit{lim}.goodput_req_per_s")) for lim in limits]
    pts = [(x, v) for x, v in pts if v]
    if pts:
        ax.errorbar([x for x, _ in pts], [v[0] for _, v in pts], yerr=_errbars([v for _, v in pts]),
                    marker="o", capsize=3, label="dltc goodput (adaptive window, default client)")
        ideal = [(lim, _fig(figs, f"fetch.goodput.limit{lim}.ideal_req_per_s")) for lim in limits]
        ax.plot([x for x, v in ideal if v], [v[0] for _, v in ideal if v], "k--",
                label="the server's limit: parallel limit / 50 ms")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(limits, [str(x) for x in limits])
        ys = [v[0] for _, v in ideal if v]
        ax.set_yticks(ys, [f"{y:g}" for y in ys])
        ax.minorticks_off()
    else:
        _empty(ax, "fetch section did not run")
    ax.set_xlabel("server's parallel limit (requests in flight; more get 429)")
    ax.set_ylabel("successful requests per second (log scale)")
    shares = [f["median"] for k, f in figs.items()
              if k.startswith("fetch.goodput.limit") and k.endswith(".goodput_share")]
    ax.set_title(f"Goodput is {min(shares):.0%}-{max(shares):.0%} of the server's limit "
                 "(50 ms latency)" if shares else "Goodput against the server's limit")
    paths.append(_finish(plt, fig, ax, out / PLOTS[1], sub))

    # 3. decode MB/s per decoder
    fig, ax = plt.subplots(figsize=(7, 4.5))
    tools = ["dltc", "orjson", "msgspec", "pyarrow", "polars"]
    names = {"dltc": "dltc.read_json", "orjson": "orjson+flatten\n+pyarrow",
             "msgspec": "msgspec typed\n+pyarrow", "pyarrow": "pyarrow.json\n(NDJSON)",
             "polars": "polars\nread_json"}
    datasets = [d for d in ("replica_months", "recorded_sample")
                if any(k.startswith(f"decode.{d}.") for k in figs)]
    width = 0.8 / max(1, len(datasets))
    for j, ds in enumerate(datasets):
        vals = [_fig(figs, f"decode.{ds}.{t}.mb_s") for t in tools]
        xs = [i + (j - (len(datasets) - 1) / 2) * width for i, v in enumerate(vals) if v]
        got = [v for v in vals if v]
        ax.bar(xs, [v[0] for v in got], width, yerr=_errbars(got), capsize=3,
               label={"replica_months": "replica month archives",
                      "recorded_sample": "recorded chess.com sample"}[ds])
    if not datasets:
        _empty(ax, "decode section did not run")
    ax.set_xticks(range(len(tools)), [names[t] for t in tools], fontsize=8)
    ax.set_ylabel("MB of JSON per second, one thread")
    title = "Decoding JSON to Arrow, one thread"
    d = _fig(figs, "decode.replica_months.dltc.mb_s")
    others = [(t, _fig(figs, f"decode.replica_months.{t}.mb_s")) for t in tools[1:]]
    others = [(t, v) for t, v in others if v]
    if d and others:
        t, v = max(others, key=lambda x: x[1][0])
        title = f"JSON to Arrow: dltc {d[0] / v[0]:.1f}x the MB/s of {t}, the fastest other"
    ax.set_title(title)
    paths.append(_finish(plt, fig, ax, out / PLOTS[2], sub))

    # 4. peak RSS against the number of archives
    fig, ax = plt.subplots(figsize=(7, 4.5))
    arch = sorted({int(k.split(".")[2][8:]) for k in figs if k.startswith("chess.rss.archives")})
    if arch:
        for key, label, style in (("peak_rss_mb", "dltc peak RSS, whole run", "o-"),
                                  ("peak_rss_extract_mb", "dltc peak RSS, extract", "s-"),
                                  ("json_mb", "JSON served (MB)", "k--")):
            pts = [(a, _fig(figs, f"chess.rss.archives{a}.{key}")) for a in arch]
            pts = [(x, v) for x, v in pts if v]
            if pts:
                ax.errorbar([x for x, _ in pts], [v[0] for _, v in pts],
                            yerr=_errbars([v for _, v in pts]), fmt=style, capsize=3, label=label)
    else:
        _empty(ax, "chess section did not run")
    ax.set_xlabel("monthly archives loaded (players x months)")
    ax.set_ylabel("MB")
    title = "Peak RSS against the input"
    if len(arch) > 1:      # the message, from the figures: how much each grew
        j0, j1 = (_fig(figs, f"chess.rss.archives{a}.json_mb") for a in (arch[0], arch[-1]))
        r0, r1 = (_fig(figs, f"chess.rss.archives{a}.peak_rss_mb") for a in (arch[0], arch[-1]))
        if j0 and j1 and r0 and r1:
            title = (f"{j1[0] / j0[0]:.1f}x the JSON, {r1[0] / r0[0]:.2f}x the peak RSS "
                     f"({arch[0]} -> {arch[-1]} archives)")
    ax.set_title(title)
    paths.append(_finish(plt, fig, ax, out / PLOTS[3], sub))

    # 5. the concurrency window over time in a 429 storm
    fig, ax = plt.subplots(figsize=(7, 4.5))
    traces = secs.get("fetch", {}).get("extra", {}).get("storm_window_history", [])
    if traces:
        storm = secs["fetch"]["runs"][0]["storm"]
        for i, tr in enumerate(traces):
            if tr:
                ax.step([t for t, _ in tr], [w for _, w in tr], where="post", lw=2, zorder=3,
                        alpha=1.0 if i == 0 else 0.35, color="C0",
                        label="dltc window (each run)" if i == 0 else None)
        ax.axhline(storm["limit"], color="C3", ls="--", zorder=2,
                   label=f"server's parallel limit ({storm['limit']}); excess gets 429")
        s429 = figs.get("fetch.storm.status_429", {}).get("median")
        final = figs.get("fetch.storm.final_window", {}).get("median")
        ax.set_title(f"A 429 storm: the window goes from 64 to {final:g} "
                     f"(limit {storm['limit']}; median {s429:.0f} x 429)"
                     if s429 is not None and final is not None else "A 429 storm")
        ax.set_yscale("log", base=2)
        ticks = [2 ** i for i in range(0, 9)]
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
    else:
        _empty(ax, "fetch section did not run")
        ax.set_title("A 429 storm")
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("concurrency window (requests in flight, log scale)")
    paths.append(_finish(plt, fig, ax, out / PLOTS[4], sub))
    return paths
