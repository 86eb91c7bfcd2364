"""`make demo`: a local chess.com replica (HTTPS, HTTP/2, 50 ms latency) with a few dozen
generated players and a year of games, loaded into DuckDB by the chess source with the
progress bar; then the summary, a query on the games, and the replica stops.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

PLAYERS, MONTHS, SEED = 36, 12, 2024


def main() -> int:
    import dlt
    import duckdb

    import dltc.replica as replica
    from dltc import chess
    from dltc.cli import ProgressBar, row_counts, summary_table

    with tempfile.TemporaryDirectory(prefix="dltc-demo-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        meta = replica.generate(str(work / "data"), players=PLAYERS, months=MONTHS, seed=SEED)
        print(
            f"generated {len(meta['players'])} players x {MONTHS} months: {meta['games']:,} games, "
            f"{meta['bytes'] / 1e6:.0f} MB of JSON ({time.perf_counter() - t:.1f} s)"
        )
        with replica.serve(str(work / "data"), tls=True, latency_ms=50) as api:
            print(f"replica: {api.base_url} (TLS, 50 ms per request)")
            stats: dict = {}
            bar = ProgressBar()
            src = chess.source(
                meta["players"],
                base_url=api.base_url + "/pub/",
                callback_url=api.base_url + "/callback/",
                ca_file=api.ca_file,
                progress=bar,
                stats=stats,
            )
            db = work / "chess.duckdb"
            pipeline = dlt.pipeline(
                pipeline_name="dltc_demo",
                destination=dlt.destinations.duckdb(str(db)),
                dataset_name="chess_data",
                pipelines_dir=str(work / "pipelines"),
            )
            t0 = time.perf_counter()
            pipeline.run(src)
            wall = time.perf_counter() - t0
            bar.close()
        print(summary_table(row_counts(pipeline), wall, stats))
        con = duckdb.connect(str(db), read_only=True)
        print("\ngames per time class:")
        for tc, n, rating in con.execute(
            "select time_class, count(*), avg((white__rating + black__rating) / 2) from chess_data.players_games "
            "group by 1 order by 2 desc"
        ).fetchall():
            print(f"  {tc:<8} {n:>7,} games, average rating {rating:.0f}")
        print("\nmost common openings:")
        q = (
            "select regexp_extract(eco, '/openings/([A-Za-z-]*[A-Za-z])', 1) as opening, count(*) as n "
            "from chess_data.players_games where eco is not null group by 1 order by 2 desc limit 8"
        )
        for opening, n in con.execute(q).fetchall():
            print(f"  {n:>6,}  {opening.replace('-', ' ')}")
        con.close()
        print("\nreplica stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
