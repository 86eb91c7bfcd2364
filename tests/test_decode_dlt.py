"""The recorded chess.com samples (../shared/testdata/chesscom: games_*.json, profile_*.json)
loaded by dlt into DuckDB twice -- once as the dicts json.loads gives, once as the Arrow
tables dltc.read_json gives (root and child tables) -- end up with the same tables,
columns, DuckDB types and rows (ids compared through the parent links they encode)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import dltc

dlt = pytest.importorskip("dlt")
duckdb = pytest.importorskip("duckdb")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = (ROOT / ".." / "shared" / "testdata" / "chesscom").resolve()
GAMES = sorted(SAMPLES.glob("games_*.json")) + sorted(SAMPLES.glob("*_games.json"))
PROFILES = sorted(SAMPLES.glob("profile_*.json"))

# Under the ASan build (libasan LD_PRELOADed into an uninstrumented python) DuckDB's first C++
# exception aborts in ASan's __cxa_throw interceptor unless libstdc++ is preloaded too (then
# the interceptor finds the real __cxa_throw); dlt's DuckDB client relies on such exceptions.
_ASAN_NO_CXX = bool(os.environ.get("DLTC_EXPECT_ASAN")) and "libstdc++" not in os.environ.get("LD_PRELOAD", "")

pytestmark = [pytest.mark.skipif(not GAMES or not PROFILES, reason=f"no samples in {SAMPLES}"),
              pytest.mark.skipif(_ASAN_NO_CXX, reason="ASan run without libstdc++ in LD_PRELOAD: DuckDB "
                                 "exceptions abort (CHECK real___cxa_throw); see NOTES-decode.md 9"),
              pytest.mark.timeout(180)]

IDS = ("_dlt_id", "_dlt_parent_id", "_dlt_load_id")
GAME_HINTS = {"end_time": {"data_type": "timestamp"}, "start_time": {"data_type": "timestamp"}}


def _run(tmp_path: Path, name: str, resources: list) -> Path:
    db = tmp_path / f"{name}.duckdb"
    p = dlt.pipeline(pipeline_name=f"dltc_{name}", pipelines_dir=str(tmp_path / f"pipes_{name}"),
                     destination=dlt.destinations.duckdb(str(db)), dataset_name="chess")
    info = p.run(resources)
    assert not info.has_failed_jobs
    return db


def _dict_resources(hints: dict | None):
    @dlt.resource(name="players_games", write_disposition="append", columns=hints)
    def games():
        for f in GAMES:
            yield json.loads(f.read_bytes())["games"]

    @dlt.resource(name="players_profiles", write_disposition="append")
    def profiles():
        for f in PROFILES:
            yield json.loads(f.read_bytes())

    return [games(), profiles()]


def _arrow_resources(hints: dict | None):
    def tables(data: bytes, table: str, **kw):
        # dlt's load id, as the dict path's rows get it (root table only, as dlt does)
        load_id = dlt.current.load_package_state()["load_id"]
        out = dltc.read_json(data, tables=True, table_name=table, load_id=load_id, **kw)
        assert "_dltc_rejects" not in out
        for name, t in out.items():
            yield dlt.mark.with_table_name(t, name)

    @dlt.resource(name="players_games", write_disposition="append", columns=hints)
    def games():
        for f in GAMES:
            yield from tables(f.read_bytes(), "players_games", data_selector="games", columns=hints)

    @dlt.resource(name="players_profiles", write_disposition="append")
    def profiles():
        for f in PROFILES:
            yield from tables(f.read_bytes(), "players_profiles")

    return [games(), profiles()]


def _snapshot(db: Path) -> dict[str, tuple[dict[str, str], list[tuple]]]:
    """{table: ({column: duckdb type}, sorted rows)}; child rows carry their parent's row
    (without ids) in place of _dlt_parent_id, so links are compared, not random ids."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema='chess' "
            "and table_name not like '\\_dlt\\_%' escape '\\' order by table_name").fetchall()]
        out: dict[str, tuple[dict[str, str], list[tuple]]] = {}
        by_id: dict[str, tuple] = {}
        for name in sorted(names, key=lambda n: n.count("__")):
            cols = con.execute(
                "select column_name, data_type from information_schema.columns where table_schema='chess' "
                "and table_name=? order by column_name", [name]).fetchall()
            types = dict(cols)
            names_sorted = [c for c, _ in cols]
            rows = con.execute(
                "select " + ", ".join(f'"{c}"' for c in names_sorted) + f' from chess."{name}"').fetchall()
            recs = []
            for r in rows:
                d = dict(zip(names_sorted, r))
                plain = tuple((c, repr(d[c])) for c in names_sorted if c not in IDS)
                if "_dlt_parent_id" in d:
                    plain = plain + (("parent", by_id[d["_dlt_parent_id"]]),)
                by_id[d["_dlt_id"]] = plain
                assert ("_dlt_parent_id" in d) != bool(d.get("_dlt_load_id"))  # root rows only
                recs.append(plain)
            out[name] = (types, sorted(recs))
        return out
    finally:
        con.close()


@pytest.mark.parametrize("hints", [None, GAME_HINTS], ids=["inferred", "timestamp_hints"])
def test_samples_load_the_same_through_dlt(tmp_path, hints):
    a = _snapshot(_run(tmp_path, "dicts", _dict_resources(hints)))
    b = _snapshot(_run(tmp_path, "arrow", _arrow_resources(hints)))
    assert sorted(a) == sorted(b)
    assert "players_profiles__streaming_platforms" in a
    for name in a:
        ta, ra = a[name]
        tb, rb = b[name]
        assert ta == tb, (name, {c: (ta.get(c), tb.get(c)) for c in set(ta) | set(tb) if ta.get(c) != tb.get(c)})
        assert len(ra) == len(rb), name
        for x, y in zip(ra, rb):
            assert x == y, (name, [(p, q) for p, q in zip(x, y) if p != q][:3])
    # what was loaded is what the samples hold
    n_games = sum(len(json.loads(f.read_bytes())["games"]) for f in GAMES)
    assert len(a["players_games"][1]) == n_games
    assert len(a["players_profiles"][1]) == len(PROFILES)
    if hints:
        assert a["players_games"][0]["end_time"] == "TIMESTAMP WITH TIME ZONE"
    else:
        assert a["players_games"][0]["end_time"] == "BIGINT"
    assert a["players_games"][0]["white__aid"] == "VARCHAR"
