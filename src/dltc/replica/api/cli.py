"""CLI of the generic API replica: `python -m dltc.replica api generate|serve|advance ...`.

Errors are one line on stderr saying what to do, exit status 2.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from dltc.replica.__main__ import _Parser, _Stop


def _parser() -> _Parser:
    p = _Parser(prog="python -m dltc.replica api",
                description="A local generic REST API (an issue tracker); routes: docs/CONTRACTS.md 7.")
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="write a deterministic data set")
    g.add_argument("--out", required=True, help="data directory to write")
    g.add_argument("--orgs", type=int, default=2)
    g.add_argument("--repos-per-org", type=int, default=2)
    g.add_argument("--issues-per-repo", type=int, default=30)
    g.add_argument("--comments-per-issue", type=int, default=3)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--now", default="2024-06-15T00:00:00Z", help="the replica's now (ISO 8601)")
    g.add_argument("--page-size", type=int, default=100, help="default per_page/limit of issue pages")
    g.add_argument("--comment-page-size", type=int, default=10, help="default per_page of comments")
    g.add_argument("--body-scale", type=float, default=1.0,
                   help="makes records and pages ~N times larger (longer text)")
    g.add_argument("--locked-rate", type=float, default=0.1,
                   help="share of issues whose comments 404")
    g.add_argument("--fast", default=None,
                   help="page families nginx serves from files (default all: "
                        "orgs,page_number,offset,cursor,comments)")

    s = sub.add_parser("serve", help="serve a data set until Ctrl-C")
    s.add_argument("--data", required=True, help="data directory (from generate)")
    s.add_argument("--port", type=int, default=0, help="0 (default) picks a free port")
    s.add_argument("--tls", action="store_true", help="HTTPS + HTTP/2 with a per-run CA")
    s.add_argument("--latency-ms", type=float, default=0)
    s.add_argument("--jitter-ms", type=float, default=0, help="uniform +- around the latency")
    s.add_argument("--max-parallel", type=int, default=None,
                   help="429 beyond this many requests in flight per client IP")
    s.add_argument("--retry-after", type=int, default=None, help="Retry-After (s) on 429")
    s.add_argument("--faults", default=None, help="e.g. seed=7,p500=0.02,reset=0.01,...")
    s.add_argument("--workers", type=int, default=2, help="nginx worker processes")
    s.add_argument("--token-ttl", type=float, default=3600, help="OAuth2 token lifetime (s)")
    s.add_argument("--json", action="store_true", help="print the URLs as one JSON line")

    a = sub.add_parser("advance", help="add and update issues; then `kill -HUP serve_pid`")
    a.add_argument("--data", required=True)
    a.add_argument("--new-issues", type=int, default=5)
    a.add_argument("--updated-issues", type=int, default=5)
    a.add_argument("--minutes", type=int, default=60, help="how far `now` moves")
    a.add_argument("--seed", type=int, default=None)
    return p


def _serve(args) -> int:
    from dltc.replica.api.server import ApiReplica

    api = ApiReplica(args.data, port=args.port, tls=args.tls, latency_ms=args.latency_ms,
                     jitter_ms=args.jitter_ms, max_parallel=args.max_parallel,
                     retry_after=args.retry_after, faults=args.faults, workers=args.workers,
                     token_ttl=args.token_ttl)
    reload_asked = []

    def on_term(signum, frame):
        raise _Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_asked.append(1))
    try:
        api.start()
        info = {"base_url": api.base_url, "token_url": api.token_url, "ca_file": api.ca_file,
                "pid": api.pid, "app_pid": api.app_pid, "serve_pid": os.getpid()}
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            for k, v in info.items():
                if v is not None:
                    print(f"{k} {v}", flush=True)
            print("serving; Ctrl-C to stop; `kill -HUP serve_pid` re-reads the data dir "
                  "(after advance)", file=sys.stderr, flush=True)
        while True:
            time.sleep(0.2)
            if reload_asked:
                reload_asked.clear()
                api.reload()
                print(f"reloaded {args.data}", file=sys.stderr, flush=True)
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        api.stop()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from dltc.replica.api.data import DataError
    from dltc.replica.server import ReplicaError

    try:
        if args.cmd == "serve":
            return _serve(args)
        if args.cmd == "generate":
            from dltc.replica.api.data import FAST, generate

            fast = FAST if args.fast is None else tuple(x for x in args.fast.split(",") if x)
            meta = generate(args.out, orgs=args.orgs, repos_per_org=args.repos_per_org,
                            issues_per_repo=args.issues_per_repo,
                            comments_per_issue=args.comments_per_issue, seed=args.seed,
                            now=args.now, page_size=args.page_size,
                            comment_page_size=args.comment_page_size,
                            body_scale=args.body_scale, locked_rate=args.locked_rate, fast=fast)
            print(json.dumps({"out": str(args.out), **meta["counts"]}))
            return 0
        if args.cmd == "advance":
            from dltc.replica.api.data import advance

            out = advance(args.data, new_issues=args.new_issues,
                          updated_issues=args.updated_issues, seed=args.seed,
                          minutes=args.minutes)
            print(json.dumps({"added": len(out["added"]), "updated": len(out["updated"]),
                              "now": out["now"]}))
            return 0
    except (ReplicaError, DataError) as e:
        print(f"dltc.replica api: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"dltc.replica api {args.cmd}: {e}", file=sys.stderr)
        return 2
    return 2
