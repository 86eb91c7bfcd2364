"""CLI of the replica: `python -m dltc.replica generate|serve|advance ...` (issue 2), and
`python -m dltc.replica api generate|serve|advance ...` for the generic API replica.

Errors are one line on stderr saying what to do, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m dltc.replica",
                                description="A local chess.com PubAPI replica "
                                            "(`python -m dltc.replica api --help`: a generic REST API).")
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="write a deterministic data set")
    g.add_argument("--players", type=int, required=True)
    g.add_argument("--months", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--now", required=True, help="YYYY-MM-DD: the replica's today")
    g.add_argument("--out", required=True, help="data directory to write")
    g.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="generator processes (the output does not depend on it)")

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
    s.add_argument("--json", action="store_true", help="print the URLs as one JSON line")

    a = sub.add_parser("advance", help="add games to the open month; then `kill -HUP serve_pid`")
    a.add_argument("--data", required=True)
    a.add_argument("--games", type=int, required=True)
    a.add_argument("--seed", type=int, default=None)
    return p


class _Stop(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump): what is wrong and where to look."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _serve(args) -> int:
    from dltc.replica.server import Replica

    api = Replica(args.data, port=args.port, tls=args.tls, latency_ms=args.latency_ms,
                  jitter_ms=args.jitter_ms, max_parallel=args.max_parallel,
                  retry_after=args.retry_after, faults=args.faults, workers=args.workers)
    reload_asked = []

    def on_term(signum, frame):
        raise _Stop()

    def on_hup(signum, frame):
        reload_asked.append(1)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        api.start()
        info = {"base_url": api.base_url, "pub_url": api.base_url + "/pub/",
                "callback_url": api.base_url + "/callback/", "ca_file": api.ca_file,
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "api":           # the generic API replica (dltc.replica.api)
        from dltc.replica.api.cli import main as api_main

        return api_main(argv[1:])
    args = _parser().parse_args(argv)
    from dltc.replica.server import ReplicaError

    try:
        if args.cmd == "serve":
            return _serve(args)
        if args.cmd == "generate":
            from dltc.replica import generate

            meta = generate(args.out, players=args.players, months=args.months, seed=args.seed,
                            now=args.now, workers=args.workers)
            print(json.dumps({"out": str(args.out), "players": len(meta.get("players", [])),
                              "months": meta.get("months")}))
            return 0
        if args.cmd == "advance":
            from dltc.replica import advance

            added = advance(args.data, games=args.games, seed=args.seed)
            print(json.dumps({"games": sum(len(v) for v in added.values()),
                              "players": len(added)}))
            return 0
    except ReplicaError as e:
        print(f"dltc.replica: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"dltc.replica {args.cmd}: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
