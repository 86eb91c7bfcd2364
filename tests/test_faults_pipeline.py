"""The chess pipeline under the replica's fault plans: at 10% transient faults and 429 storms
it completes with exactly the replica's games (uuids compared: none missing, none twice); an
archive that always fails fails the run naming its URL, commits nothing, and the next run
loads exactly what is missing; schema drift under each contract mode has dlt's documented
outcome, with every discarded row or value in `_dltc_rejects` and loaded + rejected = served.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

import dltc

R = pytest.importorskip("dltc.replica")
pytest.importorskip("dltc.chess")
if not hasattr(dltc, "Client") and not hasattr(dltc._native, "Client"):
    pytest.skip("the engine is not built yet", allow_module_level=True)

from dltc.bench.chaos import (  # noqa: E402
    TRANSIENT_FAULTS,
    chess_source,
    columns,
    error_text,
    game_uuids,
    make_pipeline,
    months_of,
    players_of,
    query,
    rejects,
)
from dltc.replica import faults as F  # noqa: E402

pytestmark = pytest.mark.timeout(180)
NOW = "2024-07-10"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults-data") / "replica"
    R.generate(str(d), players=40, months=3, seed=11, now=NOW)
    return d


def assert_exact(db: str, expected: set[str]) -> None:
    got = game_uuids(db)
    dup = [u for u, c in Counter(got).items() if c > 1]
    assert not dup, f"{len(dup)} games loaded twice, e.g. {dup[:3]}"
    missing = expected - set(got)
    assert not missing, f"{len(missing)} games missing, e.g. {sorted(missing)[:3]}"
    extra = set(got) - expected
    assert not extra, f"{len(extra)} games not served for this range, e.g. {sorted(extra)[:3]}"


# ---- transient faults --------------------------------------------------------------------


@pytest.mark.timing
def test_ten_percent_faults_and_429_storms_load_exactly_the_replica(data, tmp_path):
    players = players_of(data)
    months = months_of(data, players)
    start, end = months[0], months[-1]
    spec = f"seed=7,{TRANSIENT_FAULTS}"
    stats: dict = {}
    pipe, db = make_pipeline(tmp_path)
    # latency 20 ms: the engine starts its first window of 8 (initial_concurrency) within one
    # loop turn, far inside the 20 ms nginx holds each, so > 4 are in flight at once and a
    # 429 storm is certain on every run, not only when the app happens to be slow
    with R.serve(str(data), max_parallel=4, faults=spec, latency_ms=20) as api:
        pipe.run(chess_source(api.base_url, players, start, end, max_concurrency=32,
                              stats=stats))
        counts = api.fault_counts()
    assert_exact(db, set(R.load_games(str(data), players, start, end)))
    # Every player's profile and status, once (replace / one run).
    assert query(db, "select count(*), count(distinct username) from chess.players_profiles"
                 ) == [(len(players), len(players))]
    assert query(db, "select count(distinct username) from chess.players_online_status"
                 ) == [(len(players),)]
    # The faults really happened: the test is not a clean run in disguise.
    injected = {k: v for k, v in counts.items() if v}
    assert sum(injected.values()) >= 0.05 * stats.get("requests", 240), (injected, stats)
    assert len(injected) >= 4, injected
    assert stats.get("status_429", 0) > 0, f"no 429 storm under max_parallel=4: {stats}"
    assert stats.get("retries", 0) >= sum(injected.values()), (injected, stats)


# ---- unrecoverable fault -----------------------------------------------------------------


def test_unrecoverable_archive_fails_the_run_and_the_next_run_heals(data, tmp_path):
    players = players_of(data)[:10]
    months = months_of(data, players)
    first, rest = (months[0], months[0]), (months[1], months[-1])
    bad_player = players[3]
    bad_path = f"/pub/player/{bad_player}/games/{months[1]}"
    pipe, db = make_pipeline(tmp_path)

    with R.serve(str(data)) as api:  # run 0: the first month, cleanly
        pipe.run(chess_source(api.base_url, players, *first))
    exp0 = set(R.load_games(str(data), players, *first))
    assert_exact(db, exp0)

    with R.serve(str(data), faults=f"seed=3,fail_path={bad_path}") as api:
        with pytest.raises(Exception) as ei:
            pipe.run(chess_source(api.base_url, players, *rest, max_attempts=3))
        bad_url = api.base_url + bad_path
        assert api.fault_counts().get("fail_path", 0) >= 3
    text = error_text(ei.value)
    assert bad_url in text, f"the error does not name {bad_url}:\n{text[:2000]}"
    # Nothing of the failed run was committed: the destination holds run 0 exactly.
    assert_exact(db, exp0)

    with R.serve(str(data)) as api:  # the fault is gone
        pipe.run(chess_source(api.base_url, players, *rest))
    assert_exact(db, exp0 | set(R.load_games(str(data), players, *rest)))


def test_html_403_challenge_fails_naming_the_url(data, tmp_path):
    """A Cloudflare-style HTML 403 is not JSON and not retryable: a clear error, no data."""
    players = players_of(data)[:3]
    pipe, db = make_pipeline(tmp_path)
    with R.serve(str(data), faults="seed=1,html403=1.0") as api:
        with pytest.raises(Exception) as ei:
            pipe.run(chess_source(api.base_url, players, None, None, max_attempts=2))
        base = api.base_url
    text = error_text(ei.value)
    assert "403" in text and base + "/" in text, text[:2000]
    assert game_uuids(db) == []


# ---- schema drift under contracts ----------------------------------------------------------


def drift_setup(tmp_path, seed_base: int):
    """Data for 8 players, a clean first run over the first two months, and a drift fault
    plan for the last month chosen so that at least one archive of it gets extra fields and
    at least one stays clean. -> a dict of what the tests need."""
    d = tmp_path / "replica"
    R.generate(str(d), players=8, months=3, seed=5, now=NOW)
    players = players_of(d)
    months = months_of(d, players)
    last = months[-1]
    archives = {p: f"/pub/player/{p}/games/{last}" for p in players
                if (d / f"pub/player/{p}/games/{last}.json").exists()}
    for seed in range(seed_base, seed_base + 500):
        spec = f"seed={seed},drift_extra=0.3,drift_missing=0.15,drift_type=0.15"
        plan = F.parse_spec(spec)
        kinds = {p: plan.decide(path, 0) for p, path in archives.items()}
        # popups lose a key under drift_missing; that case has its own test
        popups_ok = all(plan.decide(f"/callback/user/popup/{p}", 0) != "drift_missing"
                        for p in players)
        if "drift_extra" in kinds.values() and None in kinds.values() and popups_ok:
            break
    else:  # pragma: no cover
        pytest.fail("no seed gives both drifted and clean archives")
    pipe, db = make_pipeline(tmp_path / "work")
    with R.serve(str(d)) as api:
        pipe.run(chess_source(api.base_url, players, months[0], months[1]))
    before = set(game_uuids(db))
    assert before == set(R.load_games(str(d), players, months[0], months[1]))
    # what each archive of the last month serves (a game of two listed players is in both)
    served = {p: [g["uuid"] for g in _month_games(d, p, last)] for p in archives}
    return dict(d=d, players=players, last=last, spec=spec, kinds=kinds, served=served,
                pipe=pipe, db=db, before=before)


def _month_games(d: Path, player: str, month: str) -> list[dict]:
    return json.loads((d / f"pub/player/{player}/games/{month}.json").read_text())["games"]


def _game_rejects(rows: list[dict], last: str) -> dict[str, Counter]:
    """Rejected rows of monthly archives: {player: Counter(uuid)}. A row discarded for two
    reasons (two new columns) may have two reject records; it counts once here (same
    archive, same record index in `path`)."""
    out: dict[str, Counter] = {}
    seen: set = set()
    for r in rows:
        url = str(r.get("source_url", ""))
        if f"/games/{last}" not in url:
            continue
        player = url.split("/pub/player/")[1].split("/")[0]
        m = re.match(r"^\$\.games\[(\d+)\]", str(r.get("path", "")))
        row = (url, m.group(1) if m else r.get("record"))
        if row in seen:
            continue
        seen.add(row)
        try:
            rec = json.loads(r["record"])
            key = rec["uuid"] if isinstance(rec, dict) and "uuid" in rec else None
        except (TypeError, ValueError):
            key = None
        out.setdefault(player, Counter())[key] += 1
    return out


def _split(served: dict[str, list[str]], bad: list[str]) -> tuple[set, set]:
    """uuids served only in the bad archives, and uuids served in some good archive."""
    good = set().union(*(set(v) for p, v in served.items() if p not in bad))
    in_bad = set().union(*(set(served[p]) for p in bad))
    return in_bad - good, good


def run_with_contract(pipe, api, s, contract, via):
    """One run over the last month with the contract given to the source (dltc's own
    argument, applied while decoding) or to pipeline.run (dlt's documented way)."""
    if via == "source":
        src = chess_source(api.base_url, s["players"], s["last"], s["last"],
                           schema_contract=contract)
        return pipe.run(src)
    src = chess_source(api.base_url, s["players"], s["last"], s["last"])
    return pipe.run(src, schema_contract=contract)


@pytest.mark.parametrize("mode,via", [
    ("evolve", "source"), ("freeze", "source"), ("discard_row", "source"),
    ("discard_value", "source"),
    ("discard_row", "pipeline"),
])
def test_drift_columns_contract(tmp_path, mode, via):
    s = drift_setup(tmp_path, 1)
    d, last, kinds, served, pipe, db, before = (s["d"], s["last"], s["kinds"], s["served"],
                                               s["pipe"], s["db"], s["before"])
    extra_p = [p for p, k in kinds.items() if k == "drift_extra"]
    only_bad, good = _split(served, extra_p)
    all_rows = only_bad | good
    contract = {"columns": mode, "data_type": "evolve"}
    with R.serve(str(d), faults=s["spec"]) as api:
        if mode == "freeze":
            with pytest.raises(Exception) as ei:
                run_with_contract(pipe, api, s, contract, via)
            text = error_text(ei.value)
            assert "dltc_drift_extra" in text or "frozen" in text.lower(), text[:2000]
            assert set(game_uuids(db)) == before, "a frozen contract loaded part of the run"
            return
        run_with_contract(pipe, api, s, contract, via)
    got = game_uuids(db)
    assert not [u for u, c in Counter(got).items() if c > 1], "duplicates"
    new = set(got) - before
    cols = columns(db, "players_games")
    drift_cols = [c for c in cols if c.startswith("dltc_drift_extra")]
    rej = rejects(db)
    by_player = _game_rejects(rej, last)
    for r in rej:
        assert r.get("reason") and r.get("path"), f"a reject without reason or path: {r}"
        # no game is discarded but for what the fault plan changed (profiles: see
        # test_contract_on_unchanged_data_changes_nothing)
        if "/games/" in str(r["source_url"]):
            assert "dltc_drift_extra" in str(r["path"]), f"unexpected reject: {r}"
    assert set(by_player) <= set(extra_p), f"rejects from archives that did not drift: {by_player}"
    if mode == "evolve":
        assert new == all_rows
        assert drift_cols, f"evolve must add the new columns, got {cols}"
        n = query(db, "select count(*) from chess.players_games where "
                      f"{drift_cols[0]} is not null")[0][0]
        in_bad_all = set().union(*(set(served[p]) for p in extra_p))
        assert len(only_bad) <= n <= len(in_bad_all), (n, len(only_bad), len(in_bad_all))
        assert not by_player, "evolve discarded nothing, yet rejects were recorded"
    elif mode == "discard_row":
        assert not drift_cols
        # rows of drifted archives are discarded; their games still arrive via clean archives
        assert new == good, "rows with new columns must be discarded, the others loaded"
        for p in extra_p:  # every served record of a drifted archive is one reject record
            assert by_player.get(p) == Counter(served[p]), f"rejects of {p} != served"
        # loaded + rejected = served, counted in records
        n_rej = sum(sum(c.values()) for c in by_player.values())
        n_ok = sum(len(v) for p, v in served.items() if p not in extra_p)
        assert n_ok + n_rej == sum(len(v) for v in served.values())
    elif mode == "discard_value":
        assert new == all_rows, "discard_value keeps the rows"
        assert not drift_cols, "discard_value must not add the new columns"
        for p in extra_p:  # at least one reject (the discarded value) per served record
            assert set(by_player.get(p, {})) == set(served[p]), f"values of {p} not all recorded"
    # drift_type (ratings as numeric strings) coerces to the existing bigint, as dlt does
    for p, k in kinds.items():
        if k == "drift_type":
            want = {g["uuid"]: g["white"]["rating"] for g in _month_games(d, p, last)}
            rows = dict(query(db, "select uuid, white__rating from chess.players_games where "
                                  f"uuid in ({','.join(repr(u) for u in want)})"))
            assert rows == want, f"ratings of {p} not coerced back to integers"


@pytest.mark.parametrize("mode", ["evolve", "freeze", "discard_row", "discard_value"])
def test_drift_non_coercible_type(tmp_path, mode):
    """A rating that is not a number ("unrated") cannot be coerced to bigint."""
    s = drift_setup(tmp_path, 1000)
    d, last, served, pipe, db, before = (s["d"], s["last"], s["served"], s["pipe"], s["db"],
                                         s["before"])
    victim = next(iter(served))
    path = d / f"pub/player/{victim}/games/{last}.json"
    doc = json.loads(path.read_text())
    for g in doc["games"]:
        g["white"]["rating"] = "unrated"
    path.write_text(json.dumps(doc, separators=(",", ":")))
    only_bad, good = _split(served, [victim])
    all_rows = only_bad | good
    contract = {"columns": "evolve", "data_type": mode}
    with R.serve(str(d)) as api:  # no fault plan: only the edited archive drifts
        if mode == "freeze":
            with pytest.raises(Exception) as ei:
                run_with_contract(pipe, api, s, contract, "source")
            assert "rating" in error_text(ei.value)
            assert set(game_uuids(db)) == before
            return
        run_with_contract(pipe, api, s, contract, "source")
    got = game_uuids(db)
    assert not [u for u, c in Counter(got).items() if c > 1], "duplicates"
    new = set(got) - before
    cols = columns(db, "players_games")
    by_player = _game_rejects(rejects(db), last)
    variant = [c for c in cols if c.startswith("white__rating__v_")]
    if mode == "evolve":
        assert new == all_rows and variant, cols
        vals = {r[0] for r in query(db, f"select {variant[0]} from chess.players_games "
                                        f"where {variant[0]} is not null")}
        assert vals == {"unrated"}
        assert not by_player
    elif mode == "discard_row":
        assert new == good and not variant
        assert by_player.get(victim) == Counter(served[victim])
        assert set(by_player) == {victim}
    elif mode == "discard_value":
        assert new == all_rows and not variant
        nulls = query(db, "select count(*) from chess.players_games where white__rating is null"
                          f" and uuid in ({','.join(repr(u) for u in only_bad)})")[0][0]
        assert nulls == len(only_bad)
        assert set(by_player.get(victim, {})) == set(served[victim])


@pytest.mark.parametrize("mode,runs", [("freeze", 1), ("freeze", 2), ("discard_row", 2),
                                       ("discard_value", 2)])
def test_contract_on_unchanged_data_changes_nothing(tmp_path, mode, runs):
    """dlt applies `columns`/`data_type` contracts to tables that exist: on a first run every
    table is new (and a new child table falls under `tables`, here evolve), and a second run
    over the same data brings nothing new. Either way nothing fails, nothing is discarded."""
    d = tmp_path / "replica"
    R.generate(str(d), players=8, months=2, seed=5, now=NOW)
    players = players_of(d)
    platforms = sum(len(json.loads(f.read_text()).get("streaming_platforms") or [])
                    for f in d.glob("pub/player/*/profile.json"))
    assert platforms > 0, "the data set needs a profile with streaming platforms"
    pipe, db = make_pipeline(tmp_path / "work")
    contract = {"columns": mode, "data_type": mode}
    with R.serve(str(d)) as api:
        if runs == 2:
            pipe.run(chess_source(api.base_url, players, None, None))
        pipe.run(chess_source(api.base_url, players, None, None, schema_contract=contract))
    assert rejects(db) == [], f"{mode} discarded data that fits the schema"
    assert query(db, "select count(*) from chess.players_profiles")[0][0] == len(players)
    assert query(db, "select count(*) from chess.players_profiles__streaming_platforms"
                 ) == [(platforms,)]
    assert_exact(db, set(R.load_games(str(d), players)))


def test_rejects_table_has_the_contract_columns(tmp_path):
    """_dltc_rejects holds source_url, path, reason, record (+ dlt's own columns) and
    nothing borrowed from the table the rejects came from."""
    d = tmp_path / "replica"
    R.generate(str(d), players=4, months=1, seed=8, now=NOW)
    players = players_of(d)
    pipe, db = make_pipeline(tmp_path / "work")
    with R.serve(str(d), faults="seed=3,drift_extra=1.0") as api:
        pipe.run(chess_source(api.base_url, players, None, None,
                              schema_contract={"columns": "discard_value"}))
    rows = rejects(db)
    assert rows, "drift_extra=1.0 under discard_value must leave rejects"
    cols = set(columns(db, "_dltc_rejects"))
    assert {"source_url", "path", "reason", "record"} <= cols
    assert cols - {"source_url", "path", "reason", "record"} <= {"_dlt_load_id", "_dlt_id"}, cols


def test_popup_missing_field_does_not_crash(tmp_path):
    """drift_missing on the popup endpoint: a missing key is a NULL, not a KeyError."""
    d = tmp_path / "replica"
    R.generate(str(d), players=6, months=1, seed=2, now=NOW)
    players = players_of(d)
    spec = "seed=4,drift_missing=1.0"
    pipe, db = make_pipeline(tmp_path / "work")
    with R.serve(str(d), faults=spec) as api:
        pipe.run(chess_source(api.base_url, players, None, None))
    assert query(db, "select count(*) from chess.players_online_status")[0][0] == len(players)
    assert_exact(db, set(R.load_games(str(d), players)))
