"""The `dltc` command: `dltc chess ...` runs the chess source (and `dltc rest-api --config
FILE` a dlt rest_api config) into a dlt destination with
a live progress bar on stderr and a summary table at the end. The progress bar and the
summary are also used by `python -m dltc.demo`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, List, Optional, TextIO

EXAMPLES = """\
examples:
  dltc chess --players magnuscarlsen,hikaru --start-month 2024/01 --end-month 2024/06
  dltc chess --players @players.txt --destination duckdb --dataset-name chess_data
  dltc chess --players hikaru --destination filesystem   # needs [destination.filesystem] bucket_url
  # a local replica (python -m dltc.replica serve --data DIR --tls):
  dltc chess --players @players.txt --base-url https://127.0.0.1:8443 --ca-file ca.pem

players: a comma-separated list, or @FILE with one username per line ('#' starts a comment).
--base-url takes the public API base (default https://api.chess.com/pub/) or a replica's
root URL; the popup endpoint is derived from it unless --callback-url is given.
"""


# ---- progress bar and summary ----------------------------------------------------------


class ProgressBar:
    """One line on a terminal, redrawn at most 10 times a second; on a non-terminal one
    plain line every few seconds. Call it with the source's progress dict."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 24, unit: str = "games"):
        self.stream = stream
        self.unit = unit
        self.width = width
        self.tty = stream.isatty()
        self.last = 0.0
        self.every = 0.1 if self.tty else 3.0
        self.info: Dict[str, Any] = {}

    def __call__(self, info: Dict[str, Any]) -> None:
        self.info = info
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._draw()

    def line(self, info: Optional[Dict[str, Any]] = None) -> str:
        i = info or self.info
        done, queued = i.get("requests", 0), i.get("queued", 0)
        total = done + queued
        frac = done / total if total else 0.0
        fill = int(frac * self.width)
        el = max(i.get("elapsed", 0.0), 1e-9)
        return (
            f"[{'#' * fill}{'-' * (self.width - fill)}] {done}/{total} req, {queued} queued, "
            f"{i.get('bytes', 0) / 1e6:.1f} MB, {i.get(self.unit, 0) / el:,.0f} {self.unit}/s, "
            f"retries {i.get('retries', 0)}, 429s {i.get('status_429', 0)}"
        )

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.info:
            self._draw()
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()


def row_counts(pipeline: Any) -> Dict[str, int]:
    """Rows per table loaded by the pipeline's last run (from its normalize step)."""
    trace = pipeline.last_trace
    info = getattr(trace, "last_normalize_info", None) if trace else None
    counts = dict(getattr(info, "row_counts", None) or {})
    return {t: n for t, n in counts.items() if not t.startswith("_dlt")}


def summary_table(counts: Dict[str, int], wall: float, stats: Dict[str, Any]) -> str:
    rows = [("table", "rows")] + [(t, f"{n:,}") for t, n in sorted(counts.items())]
    rows += [
        ("", ""),
        ("wall time", f"{wall:.2f} s"),
        ("requests", f"{stats.get('requests', 0):,}"),
        ("not modified (304)", f"{stats.get('not_modified', 0):,}"),
        ("duplicates removed", f"{stats.get('duplicates', 0):,}"),
        ("retries", f"{stats.get('retries', 0):,}"),
        ("429s", f"{stats.get('status_429', 0):,}"),
        ("MB received", f"{stats.get('bytes', 0) / 1e6:,.1f}"),
    ]
    w0 = max(len(a) for a, _ in rows)
    w1 = max(len(b) for _, b in rows)
    sep = "+" + "-" * (w0 + 2) + "+" + "-" * (w1 + 2) + "+"
    out = [sep]
    for i, (a, b) in enumerate(rows):
        if a == "" and b == "":
            out.append(sep)
            continue
        out.append(f"| {a:<{w0}} | {b:>{w1}} |")
        if i == 0:
            out.append(sep)
    out.append(sep)
    return "\n".join(out)


# ---- dltc chess --------------------------------------------------------------------------


def read_players(spec: str) -> List[str]:
    if spec.startswith("@"):
        with open(spec[1:], encoding="utf-8") as f:
            text = f.read()
        names: List[str] = []
        for ln in text.splitlines():
            ln = ln.split("#", 1)[0]
            names += [x.strip() for x in ln.split(",") if x.strip()]
        return names
    return [x.strip() for x in spec.split(",") if x.strip()]


def api_urls(base_url: Optional[str], callback_url: Optional[str]) -> Dict[str, str]:
    from dltc.chess import CALLBACK_URL, OFFICIAL_API_URL

    if not base_url:
        return {"base_url": OFFICIAL_API_URL, "callback_url": callback_url or CALLBACK_URL}
    base = base_url.rstrip("/")
    if base.endswith("/pub"):
        root = base[: -len("/pub")]
    else:
        root, base = base, base + "/pub"
    return {"base_url": base + "/", "callback_url": callback_url or root + "/callback/"}


def _chess_parser(sub: Any) -> None:
    p = sub.add_parser(
        "chess",
        help="load chess.com player profiles, games and online status",
        description="Load chess.com player profiles, games and online status with dlt.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--players", required=True, help="a,b,c or @FILE")
    p.add_argument("--start-month", help="YYYY/MM, first month of games (inclusive)")
    p.add_argument("--end-month", help="YYYY/MM, last month of games (inclusive)")
    p.add_argument("--base-url", help="API base URL (default https://api.chess.com/pub/)")
    p.add_argument("--callback-url", help="popup endpoint base (default https://www.chess.com/callback/)")
    p.add_argument("--ca-file", help="CA bundle to verify the server with")
    p.add_argument("--destination", default="duckdb", help="dlt destination (default duckdb)")
    p.add_argument("--dataset-name", default="chess_data")
    p.add_argument("--pipeline-name", default="dltc_chess")
    p.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default ~/.dlt/pipelines)")
    p.add_argument("--max-concurrency", type=int, default=64, help="requests in flight at most (default 64)")
    p.add_argument("--resources", help="comma-separated subset: players_profiles,players_games,...")
    p.add_argument("--skip-unknown", action="store_true", help="warn and skip unknown players instead of failing")
    p.add_argument("--merge", action="store_true", help="load games with merge on uuid")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _distributed_args(p)
    p.set_defaults(func=run_chess)


def _distributed_args(p: Any) -> None:
    """--workers N runs the load sharded on a Ray cluster (dltc.distributed, `pip install
    'dltc[ray]'`); --max-concurrency is then the limit of all workers together."""
    g = p.add_argument_group("across machines (Ray)")
    g.add_argument("--workers", type=int, help="run sharded on Ray with N shard tasks at once")
    g.add_argument("--ray-address", help="an existing Ray cluster ('auto', 'ray://host:10001'); default: a local one")
    g.add_argument("--shards", type=int, default=64, help="shards (keep it fixed for a data set; default 64)")
    g.add_argument("--shards-bucket", help="where the shard datasets live (default ./PIPELINE_shards; "
                                           "a bucket URL on a multi-node cluster)")


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


def run_sharded_cli(args: argparse.Namespace, name: str, factory: Any, items: List[Any],
                    limits: Dict[str, Dict[str, Any]], keys: Dict[str, Any], key: Any = None) -> int:
    """The `--workers N` path of a command: dltc.distributed.run_sharded, then a summary."""
    if args.workers < 1 or args.shards < 1:
        print(f"dltc {name}: --workers and --shards must be >= 1", file=sys.stderr)
        return 2
    try:
        import ray  # noqa: F401

        from dltc.distributed import ShardedRunError, run_sharded
    except ImportError as e:
        print(f"dltc {name}: --workers needs Ray: pip install 'dltc[ray]' ({e})", file=sys.stderr)
        return 2
    kw: Dict[str, Any] = {}
    if args.pipelines_dir:
        kw["committer_dir"] = args.pipelines_dir
    try:
        res = run_sharded(factory, items, destination=args.destination, dataset_name=args.dataset_name,
                          pipeline_name=args.pipeline_name, shards=args.shards, workers=args.workers,
                          address=args.ray_address, limits=limits, bucket_url=args.shards_bucket, keys=keys,
                          key=key, **kw)
    except ShardedRunError as e:
        print(f"dltc {name}: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"dltc {name}: failed: {e}", file=sys.stderr)
        return 1
    eng = [r.get("engine", {}) for r in res["results"].values()]
    rows = [
        ("run", res["run_id"]),
        ("shards loaded", f"{len(res['results'])} of {res['shard_count']} (S={res['shards']})"),
        ("workers", str(res["workers"])),
        ("rows merged", f"{sum(c['rows'] for c in res['commits']):,}"),
        ("wall time", f"{res['wall_s']:.2f} s"),
        ("fan-in after last shard", f"{res['fan_in_s']:.2f} s"),
        ("requests", f"{sum(e.get('requests', 0) for e in eng):,}"),
        ("429s", f"{sum(e.get('status_429', 0) for e in eng):,}"),
    ]
    w0 = max(len(a) for a, _ in rows)
    print("\n".join(f"{a:<{w0}}  {b}" for a, b in rows))
    return 0


def run_chess(args: argparse.Namespace) -> int:
    from dltc import chess

    if args.workers is not None:
        try:
            players = read_players(args.players)
            chess.validate_players(players)
        except (OSError, ValueError) as e:
            print(f"dltc chess: {e}", file=sys.stderr)
            return 2
        urls = api_urls(args.base_url, args.callback_url)
        opts: Dict[str, Any] = dict(start_month=args.start_month, end_month=args.end_month, ca_file=args.ca_file,
                                    max_concurrency=args.max_concurrency,
                                    on_unknown_player="skip" if args.skip_unknown else "raise",
                                    games_write_disposition="merge" if args.merge else "append", **urls)
        resources = [r.strip() for r in (args.resources or "").split(",") if r.strip()]

        def factory(items: List[str]) -> Any:
            src = chess.source(items, **opts)
            return src.with_resources(*resources) if resources else src

        hosts = dict.fromkeys(_host_of(u) for u in urls.values())
        return run_sharded_cli(args, "chess", factory, players, {h: {"max_parallel": args.max_concurrency} for h in hosts},
                               {"players_games": "uuid", "players_profiles": "player_id"}, key=str.lower)
    try:
        players = read_players(args.players)
        stats: Dict[str, Any] = {}
        bar = None if args.no_progress else ProgressBar()
        src = chess.source(
            players,
            start_month=args.start_month,
            end_month=args.end_month,
            ca_file=args.ca_file,
            max_concurrency=args.max_concurrency,
            on_unknown_player="skip" if args.skip_unknown else "raise",
            games_write_disposition="merge" if args.merge else "append",
            progress=bar,
            stats=stats,
            **api_urls(args.base_url, args.callback_url),
        )
        if args.resources:
            src = src.with_resources(*[r.strip() for r in args.resources.split(",") if r.strip()])
    except (OSError, ValueError) as e:
        print(f"dltc chess: {e}", file=sys.stderr)
        return 2
    return _run_pipeline("chess", args, src, bar, stats)


def _run_pipeline(command: str, args: argparse.Namespace, src: Any, bar: Any, stats: Any) -> int:
    """Run `src` into the pipeline the shared options name; print the summary (0) or the
    innermost cause of a failure (1)."""
    import dlt

    kw: Dict[str, Any] = {}
    if args.pipelines_dir:
        kw["pipelines_dir"] = args.pipelines_dir
    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline_name, destination=args.destination, dataset_name=args.dataset_name, **kw
    )
    t0 = time.perf_counter()
    try:
        pipeline.run(src)
    except Exception as e:  # dlt wraps the cause; show the innermost message
        if bar:
            bar.close()
        cause: BaseException = e
        while cause.__cause__ is not None:
            cause = cause.__cause__
        print(f"dltc {command}: failed: {cause}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    if bar:
        bar.close()
    print(summary_table(row_counts(pipeline), wall, stats))
    return 0


# ---- dltc rest-api -----------------------------------------------------------------------

REST_API_EXAMPLES = """\
examples:
  dltc rest-api --config api.toml
  dltc rest-api --config api.json --destination duckdb --dataset-name github --resources issues,comments

The config file is dlt's RESTAPIConfig (client, resource_defaults, resources) as TOML
(`[client]`, `[[resources]]`, ...) or JSON. A string value "${NAME}" is replaced by
dlt.secrets["NAME"] (dlt's providers: environment, .dlt/secrets.toml, ...); auth given
without its secret is resolved by dlt itself, as in dlt's rest_api source. dltc's own
options go under a [dltc] table (max_concurrency, rps, allowed_hosts, ca_file, ...).
"""


def read_rest_api_config(path: str) -> Dict[str, Any]:
    """A RESTAPIConfig from a .toml or .json file, "${NAME}" strings from dlt's secrets."""
    import json

    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".json"):
        cfg = json.loads(raw)
    else:
        import tomllib

        cfg = tomllib.loads(raw.decode("utf-8"))
    if not isinstance(cfg, dict) or "client" not in cfg or "resources" not in cfg:
        raise ValueError(f"{path}: a rest_api config needs `client` and `resources`")
    return _with_secrets(cfg)  # type: ignore[no-any-return]


def _with_secrets(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _with_secrets(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_with_secrets(x) for x in v]
    if isinstance(v, str) and v.startswith("${") and v.endswith("}") and len(v) > 3:
        import dlt

        try:
            return dlt.secrets[v[2:-1]]
        except KeyError:
            raise ValueError(f"secret {v[2:-1]!r} not found in dlt's config and secrets") from None
    return v


def _rest_api_parser(sub: Any) -> None:
    p = sub.add_parser(
        "rest-api",
        help="load a REST API from a dlt rest_api config file",
        description="Load a REST API described by a dlt RESTAPIConfig (TOML or JSON) with dlt.",
        epilog=REST_API_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="api.toml or api.json")
    p.add_argument("--destination", default="duckdb", help="dlt destination (default duckdb)")
    p.add_argument("--dataset-name", default="rest_api_data")
    p.add_argument("--pipeline-name", default="dltc_rest_api")
    p.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default ~/.dlt/pipelines)")
    p.add_argument("--resources", help="comma-separated subset of the resources")
    p.add_argument("--max-concurrency", type=int, help="requests in flight at most (default 64)")
    p.add_argument("--rps", type=float, help="requests per second at most, for the whole source")
    p.add_argument("--ca-file", help="CA bundle to verify the server with")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _distributed_args(p)
    p.add_argument("--items", help="with --workers: the parent ids (a,b,c or @FILE) put in place of "
                                   "--item-placeholder in the config's endpoints, sharded")
    p.add_argument("--item-placeholder", default="{item}", help="default {item}")
    p.set_defaults(func=run_rest_api)


def _run_rest_api_sharded(args: argparse.Namespace) -> int:
    from dltc.distributed.rest_api import rest_api_factory

    try:
        if not args.items:
            raise ValueError("--workers needs --items (the parent ids to shard)")
        items = read_players(args.items)
        cfg = read_rest_api_config(args.config)
        opts = dict(cfg.get("dltc") or {})
        if args.ca_file is not None:
            opts["ca_file"] = args.ca_file
        # the leased share of the global limit sets each worker's rps and concurrency
        cfg["dltc"] = {k: v for k, v in opts.items() if k != "rps"}
        factory = rest_api_factory(cfg, args.item_placeholder)
    except Exception as e:  # a bad file or template
        print(f"dltc rest-api: {e}", file=sys.stderr)
        return 2
    # --max-concurrency / --rps (or the config's) are the limits of all workers together
    limit: Dict[str, Any] = {}
    mc = args.max_concurrency if args.max_concurrency is not None else opts.get("max_concurrency")
    rps = args.rps if args.rps is not None else opts.get("rps")
    if mc is not None:
        limit["max_parallel"] = int(mc)
    if rps is not None:
        limit["rps"] = float(rps)
    base = (cfg.get("client") or {}).get("base_url", "")
    limits = {_host_of(base): limit} if limit else {}
    return run_sharded_cli(args, "rest-api", factory, items, limits, {})


def run_rest_api(args: argparse.Namespace) -> int:
    if args.workers is not None:
        return _run_rest_api_sharded(args)

    from dltc.rest_api import rest_api_source

    stats: Dict[str, Any] = {}
    bar = None if args.no_progress else ProgressBar(unit="rows")
    try:
        cfg = read_rest_api_config(args.config)
        opts = dict(cfg.get("dltc") or {})
        for key in ("max_concurrency", "rps", "ca_file"):
            if getattr(args, key) is not None:
                opts[key] = getattr(args, key)
        opts["stats"], opts["progress"] = stats, bar
        cfg["dltc"] = opts
        src = rest_api_source(cfg)  # type: ignore[arg-type]
        if args.resources:
            src = src.with_resources(*[r.strip() for r in args.resources.split(",") if r.strip()])
    except Exception as e:  # a bad file or config: dlt's message
        print(f"dltc rest-api: {e}", file=sys.stderr)
        return 2
    return _run_pipeline("rest-api", args, src, bar, stats)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dltc",
        description="dlt sources whose HTTP, JSON and Arrow work runs in C.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _chess_parser(sub)
    _rest_api_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
