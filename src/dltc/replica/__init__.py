"""dltc.replica: a local chess.com PubAPI for offline tests, benchmarks and the demo.

    generate(out_dir, players=N, months=M, seed=S, now="YYYY-MM-DD") -> meta dict
    advance(data_dir, games=K, seed=None) -> {username: [new uuids]}
    load_games(data_dir, ...) -> the game uuids the replica holds
    with serve(data_dir, port=0, tls=False, latency_ms=0, jitter_ms=0, max_parallel=None,
               retry_after=None, faults=None) as api: api.base_url, api.ca_file, api.pid,
               api.reload(), api.fault_counts()

The CLI is `python -m dltc.replica generate|serve|advance` (see __main__.py).
"""

from dltc.replica.faults import COUNT_KEYS as FAULT_KINDS
from dltc.replica.generate import advance, generate, load_games, load_uuids
from dltc.replica.server import Replica, ReplicaError, serve

__all__ = ["FAULT_KINDS", "Replica", "ReplicaError", "advance", "generate", "load_games", "load_uuids",
           "serve"]
