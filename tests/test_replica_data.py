"""The replica's data set: shapes against the recorded chess.com samples, optional-field
rates, heavy tail, shared games, archives, `now`, determinism and `advance`.
"""

from __future__ import annotations

import calendar
import collections
import datetime as dt
import hashlib
import importlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

# No dltc C code runs in this file (the replica is Python and nginx): under the ASan+UBSan
# build (DLTC_EXPECT_ASAN) it would only repeat the release run, several times slower.
NO_C_CODE = pytest.mark.skipif(bool(os.environ.get("DLTC_EXPECT_ASAN")),
                               reason="no dltc C code runs here; the release run covers it")
pytestmark = NO_C_CODE

# the package re-exports the function `generate`, which shadows the module attribute
gen = importlib.import_module("dltc.replica.generate")

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "chesscom"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/testdata/chesscom")

NOW = "2024-03-10"
NOW_TS = calendar.timegm(dt.date(2024, 3, 10).timetuple())
DAY_END = NOW_TS + 86399


def _sample(name):
    return json.loads((SAMPLES / name).read_text())


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _month_files(root: Path):
    return sorted(root.glob("pub/player/*/games/*/*.json"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("replica_data")
    meta = gen.generate(str(out), players=30, months=3, seed=11, now=NOW)
    return out, meta


@pytest.fixture(scope="module")
def games(data):
    """(username, month, game, raw file bytes) for every month file."""
    out, _meta = data
    rows = []
    for f in _month_files(out):
        raw = f.read_bytes()
        u = f.parts[-4]
        month = f"{f.parts[-2]}/{f.stem}"
        for g in json.loads(raw)["games"]:
            rows.append((u, month, g))
    return rows


def _order_ok(keys, ref):
    """Keys shared with the reference appear in the reference's order."""
    common = [k for k in keys if k in ref]
    return common == [k for k in ref if k in common]


# ---------------------------------------------------------------- files and JSON form

def test_layout_and_compact_json(data):
    out, meta = data
    on_disk = json.loads((out / "meta.json").read_bytes())
    assert on_disk["format"] == 1 and on_disk["seed"] == 11 and on_disk["now"] == NOW
    assert on_disk["months"] == 3 and len(on_disk["players"]) == 30
    for u in on_disk["players"]:
        assert u == u.lower()
        assert (out / "pub/player" / u / "profile.json").is_file()
        assert (out / "pub/player" / u / "games/archives.json").is_file()
        assert (out / "callback/user/popup" / f"{u}.json").is_file()
    for f in list(out.rglob("*.json"))[:400]:
        raw = f.read_bytes()
        assert not raw.endswith(b"\n")
        assert json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode() == raw
    # the month files are compact too (checked on all of them, they are hand-joined)
    for f in _month_files(out):
        raw = f.read_bytes()
        assert json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode() == raw


# ---------------------------------------------------------------- profiles and popups

def test_profiles_match_recorded_shape(data):
    out, meta = data
    recs = [_sample(n) for n in ("profile_fabianocaruana.json", "profile_farzyplayschess.json",
                                 "profile_hikaru_2023.json")]
    always = ["@id", "url", "username", "player_id", "status", "country", "joined",
              "last_online", "followers", "is_streamer"]
    optional = {"avatar", "name", "title", "location", "twitch_url", "fide", "league",
                "verified", "streaming_platforms"}
    types = {}
    for rec in recs:
        for k, v in rec.items():
            types[k] = type(v)
    seen = collections.Counter()
    for u in meta["players"]:
        prof = json.loads((out / "pub/player" / u / "profile.json").read_bytes())
        for k in always:
            assert k in prof, (u, k)
        assert set(prof) <= set(always) | optional
        for rec in recs:
            assert _order_ok(list(prof), list(rec)), list(prof)
        for k, v in prof.items():
            if k in types:
                assert type(v) is types[k], (k, v)
        assert prof["username"] == u
        assert prof["@id"] == "{{BASE}}/pub/player/" + u
        assert prof["url"].lower() == "https://www.chess.com/member/" + u
        assert prof["country"].startswith("{{BASE}}/pub/country/")
        assert prof["joined"] <= prof["last_online"] <= NOW_TS
        assert isinstance(prof.get("fide", 0), int)
        for sp in prof.get("streaming_platforms", []):
            assert list(sp) == ["type", "channel_url"]
        if "twitch_url" in prof:
            assert prof["is_streamer"] is True
        seen.update(list(prof))
        pop = json.loads((out / "callback/user/popup" / f"{u}.json").read_bytes())
        assert isinstance(pop["onlineStatus"], str) and isinstance(pop["lastLoginDate"], str)
        assert pop["lastLoginDate"].startswith(
            dt.datetime.fromtimestamp(prof["last_online"], dt.timezone.utc).strftime("%Y-%m-%dT%H:%M"))
        assert pop["userId"] == prof["player_id"]
    n = len(meta["players"])
    # optional keys occur, but not always (30 players: coarse bounds)
    for k in ("avatar", "name", "location", "league"):
        assert 0 < seen[k] < n, (k, seen[k])


def test_profile_optional_rates_large(tmp_path):
    """Over many players the optional profile keys come near their target rates."""
    meta = gen.generate(str(tmp_path), players=400, months=1, seed=5, now="2024-01-02")
    seen = collections.Counter()
    for u in meta["players"]:
        seen.update(list(json.loads((tmp_path / "pub/player" / u / "profile.json").read_bytes())))
    n = len(meta["players"])
    for k, rate in gen.PROFILE_RATES.items():
        assert abs(seen[k] / n - rate) < 0.08 + 0.2 * rate, (k, seen[k] / n, rate)
    assert 0 < seen["title"] < n * 0.15
    assert seen["twitch_url"] <= sum(
        json.loads((tmp_path / "pub/player" / u / "profile.json").read_bytes())["is_streamer"]
        for u in meta["players"])


# ---------------------------------------------------------------- games

def test_games_match_recorded_shape(games):
    live = _sample("games_fabianocaruana_2020_05.json")["games"]
    daily = _sample("erik_2009_10_games.json")["games"]
    ref_order = ["url", "pgn", "time_control", "end_time", "rated", "accuracies", "tcn", "uuid",
                 "initial_setup", "fen", "start_time", "time_class", "rules", "white", "black",
                 "eco", "tournament", "match"]
    assert _order_ok(list(live[0]), ref_order) and _order_ok(list(daily[1]), ref_order)
    required = ["url", "pgn", "time_control", "end_time", "rated", "tcn", "uuid",
                "initial_setup", "fen", "time_class", "rules", "white", "black"]
    optional = {"accuracies", "eco", "start_time", "tournament", "match"}
    types = {}
    for g in live + daily:
        for k, v in g.items():
            types[k] = type(v)
    side_types = {k: type(v) for k, v in live[0]["white"].items()}
    assert len(games) > 3000
    for _u, _m, g in games:
        keys = list(g)
        assert [k for k in keys if k in required] == required
        assert set(keys) <= set(required) | optional
        assert keys == [k for k in ref_order if k in keys]
        for k, v in g.items():
            if k in types:
                assert type(v) is types[k], (k, v)
        for side in ("white", "black"):
            s = g[side]
            assert list(s) == list(side_types)
            assert all(type(s[k]) is t for k, t in side_types.items())
            assert s["@id"] == "https://api.chess.com/pub/player/" + s["username"].lower()
        if "accuracies" in g:
            assert list(g["accuracies"]) == ["white", "black"]
            assert all(isinstance(x, float) and 0 < x <= 100 for x in g["accuracies"].values())
        assert ("start_time" in g) == (g["time_class"] == "daily")
        if "start_time" in g:
            assert g["start_time"] < g["end_time"]
        assert g["url"].startswith("https://www.chess.com/game/" +
                                   ("daily/" if g["time_class"] == "daily" else "live/"))
        assert g["time_class"] in ("bullet", "blitz", "rapid", "daily")
        assert len(g["tcn"]) % 2 == 0 and g["tcn"]
        results = {g["white"]["result"], g["black"]["result"]}
        assert "win" in results or g["white"]["result"] == g["black"]["result"]


def test_game_optional_rates(games):
    n = len(games)
    live = [g for _u, _m, g in games if g["time_class"] != "daily"]
    rate = lambda key, gs: sum(key in g for g in gs) / len(gs)  # noqa: E731
    assert 0.30 <= rate("accuracies", live) <= 0.50
    assert 0.85 <= rate("eco", [g for _u, _m, g in games]) <= 0.995
    assert 0.005 <= rate("tournament", [g for _u, _m, g in games]) <= 0.06
    assert 0.002 <= rate("match", [g for _u, _m, g in games]) <= 0.05
    assert sum(g["time_class"] == "daily" for _u, _m, g in games) > 0
    setups = collections.Counter(g["initial_setup"] == "" for _u, _m, g in games)
    assert setups[True] > n * 0.5 and setups[False] > 0
    forms = collections.Counter(len(g["fen"].split(" ")) for _u, _m, g in games)
    assert set(forms) == {4, 6} and min(forms.values()) > n * 0.2
    assert collections.Counter(g["rules"] for _u, _m, g in games)["chess"] > n * 0.9
    assert len({g["rules"] for _u, _m, g in games}) > 1


def test_pgn_size_clocks_and_headers(games):
    rec = _sample("games_fabianocaruana_2020_05.json")["games"][0]["pgn"]
    rec_tags = [line.split(" ")[0][1:] for line in rec.split("\n\n")[0].split("\n")]
    sizes = []
    for _u, _m, g in games:
        pgn = g["pgn"]
        sizes.append(len(pgn.encode()))
        head, moves = pgn.split("\n\n", 1)
        tags = [line.split(" ")[0][1:] for line in head.split("\n")]
        extra = {"Variant", "SetUp", "FEN"}
        assert [t for t in tags if t not in extra] == [
            t for t in rec_tags if t in tags or t not in ("ECO", "ECOUrl")], tags
        assert f'[CurrentPosition "{g["fen"]}"]' in head
        assert f'[Link "{g["url"]}"]' in head
        assert f'[White "{g["white"]["username"]}"]' in head
        assert f'[WhiteElo "{g["white"]["rating"]}"]' in head
        assert f'[TimeControl "{g["time_control"]}"]' in head
        assert "{[%clk " in moves and moves.startswith("1. ")
        assert moves.endswith(("1-0\n", "0-1\n", "1/2-1/2\n"))
        end = dt.datetime.fromtimestamp(g["end_time"], dt.timezone.utc)
        assert f'[EndDate "{end:%Y.%m.%d}"]' in head and f'[EndTime "{end:%H:%M:%S}"]' in head
    assert min(sizes) >= 1024 and max(sizes) <= 6 * 1024
    assert 2000 <= statistics.mean(sizes) <= 4500


def test_games_ordered_unique_and_before_now(data, games):
    out, meta = data
    by_file = collections.defaultdict(list)
    for u, m, g in games:
        by_file[(u, m)].append(g)
        assert g["end_time"] < NOW_TS
        assert f"{dt.datetime.fromtimestamp(g['end_time'], dt.timezone.utc):%Y/%m}" == m
    for gs in by_file.values():
        ends = [g["end_time"] for g in gs]
        assert ends == sorted(ends)
        assert len({g["uuid"] for g in gs}) == len(gs)
    # one uuid = one body, and one url
    body = {}
    for u, m, g in games:
        s = json.dumps(g, sort_keys=True)
        assert body.setdefault(g["uuid"], s) == s
    assert len({g["url"] for _u, _m, g in games}) == len(body) == meta["games"]


def test_archives_oldest_first_only_months_with_games(data):
    out, meta = data
    months = meta["month_list"]
    assert months == ["2024/01", "2024/02", "2024/03"]
    for u in meta["players"]:
        arch = json.loads((out / "pub/player" / u / "games/archives.json").read_bytes())["archives"]
        prefix = "{{BASE}}/pub/player/" + u + "/games/"
        assert all(a.startswith(prefix) for a in arch)
        listed = [a[len(prefix):] for a in arch]
        assert listed == sorted(listed) and len(set(listed)) == len(listed)
        on_disk = sorted(p.relative_to(out / "pub/player" / u / "games").as_posix()[:-5]
                         for p in (out / "pub/player" / u / "games").glob("*/*.json"))
        assert listed == on_disk
        for mo in listed:
            assert mo in months
            assert gen.read_month(str(out), u, mo)  # only months with games


def test_heavy_tail(games):
    per = collections.Counter((u, m) for u, m, _g in games if m != "2024/03")
    counts = sorted(per.values())
    assert max(counts) >= 500
    assert max(counts) <= gen.MONTH_CAP + 200  # cap plus games others started
    assert 5 <= statistics.median(counts) <= 120


def test_shared_games_in_both_archives(data, games):
    out, meta = data
    players = set(meta["players"])
    where = collections.defaultdict(set)
    raw = {}
    for u, m, g in games:
        where[g["uuid"]].add((u, m))
        raw.setdefault(g["uuid"], []).append(g)
    shared = 0
    for uuid, places in where.items():
        g = raw[uuid][0]
        ours = {g["white"]["username"].lower(), g["black"]["username"].lower()} & players
        assert {u for u, _m in places} == ours
        assert len(places) == len(ours)
        if len(ours) == 2:
            shared += 1
            assert raw[uuid][0] == raw[uuid][1]
    assert 0.10 <= shared / len(where) <= 0.35
    assert shared == meta["shared_games"]


def test_load_games_helpers(data, games):
    out, meta = data
    allg = gen.load_games(str(out))
    assert gen.load_uuids(str(out)) == set(allg) and len(allg) == meta["games"]
    assert set(allg) == {g["uuid"] for _u, _m, g in games}
    u = meta["players"][0]
    mine = gen.load_games(str(out), players=[u.upper()], start_month="2024/02", end_month="2024/02")
    assert set(mine) == {g["uuid"] for uu, m, g in games if uu == u and m == "2024/02"}
    assert gen.player_months(str(out), u) == [m for m in meta["month_list"]
                                              if (out / "pub/player" / u / "games" / f"{m}.json").exists()]


# ---------------------------------------------------------------- determinism

def test_deterministic_and_seed_sensitive(tmp_path):
    a, b, c, w = (tmp_path / x for x in "abcw")
    args = dict(players=12, months=2, now="2024-05-20")
    gen.generate(str(a), seed=3, **args)
    gen.generate(str(b), seed=3, **args)
    gen.generate(str(w), seed=3, workers=2, **args)
    gen.generate(str(c), seed=4, **args)
    ta, tb, tw, tc = _tree(a), _tree(b), _tree(w), _tree(c)
    assert len(ta) > 30
    assert ta == tb == tw
    assert ta != tc
    # regenerating into an existing data set replaces it exactly
    gen.generate(str(a), seed=3, players=5, months=1, now="2024-05-20")
    gen.generate(str(a), seed=3, **args)
    assert _tree(a) == tb


def test_cli_matches_in_process_whatever_the_hash_seed(tmp_path):
    """`python -m dltc.replica generate/advance` in fresh processes (other hash seeds) write
    the same bytes as the in-process calls."""
    args = ["--players", "8", "--months", "2", "--seed", "6", "--now", "2024-07-03"]
    for name, hs in (("p1", "1"), ("p2", "12345")):
        env = dict(os.environ, PYTHONHASHSEED=hs)
        for cmd in (["generate", *args, "--out", str(tmp_path / name)],
                    ["advance", "--data", str(tmp_path / name), "--games", "7", "--seed", "3"]):
            r = subprocess.run([sys.executable, "-m", "dltc.replica", *cmd], env=env,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
    gen.generate(str(tmp_path / "in"), players=8, months=2, seed=6, now="2024-07-03")
    gen.advance(str(tmp_path / "in"), games=7, seed=3)
    assert _tree(tmp_path / "p1") == _tree(tmp_path / "p2") == _tree(tmp_path / "in")


def test_bad_arguments(tmp_path):
    (tmp_path / "x.txt").write_text("not a data set")
    with pytest.raises(ValueError, match="not empty"):
        gen.generate(str(tmp_path), players=2, months=1)
    with pytest.raises(ValueError, match="now"):
        gen.generate(str(tmp_path / "n"), players=2, months=1, now="2024-13-01")
    with pytest.raises(ValueError, match="players"):
        gen.generate(str(tmp_path / "n"), players=0, months=1)
    with pytest.raises(ValueError, match="months"):
        gen.generate(str(tmp_path / "n"), players=2, months=0)
    assert gen.main(["generate", "--players", "0", "--months", "1", "--out", str(tmp_path / "m")]) == 2


# ---------------------------------------------------------------- advance

def test_advance_adds_k_games_in_order(tmp_path):
    out = tmp_path / "d"
    gen.generate(str(out), players=10, months=2, seed=8, now="2024-03-01")  # open month empty
    before = gen.load_games(str(out))
    open_month = "2024/03"
    assert not list(out.glob("pub/player/*/games/2024/03.json"))
    added = gen.advance(str(out), games=40, seed=1)
    new = {x for v in added.values() for x in v}
    assert len(new) == 40 and not new & set(before)
    after = gen.load_games(str(out))
    assert set(after) == set(before) | new
    meta = json.loads((out / "meta.json").read_bytes())
    day_end = calendar.timegm(dt.date.fromisoformat(meta["now"]).timetuple()) + 86399
    for u, uuids in added.items():
        assert open_month in gen.player_months(str(out), u)
        gs = gen.read_month(str(out), u, open_month)
        assert [g["uuid"] for g in gs][-len(uuids):] == uuids
        ends = [g["end_time"] for g in gs]
        assert ends == sorted(ends) and ends[-1] <= day_end
        assert json.loads((out / "pub/player" / u / "profile.json").read_bytes())["last_online"] >= ends[-1]
    for uuid in new:
        g = after[uuid]
        assert f"{dt.datetime.fromtimestamp(g['end_time'], dt.timezone.utc):%Y/%m}" == open_month
        assert g["end_time"] > max(x["end_time"] for x in before.values())
    # a second advance appends after the first, to existing files
    added2 = gen.advance(str(out), games=25)
    new2 = {x for v in added2.values() for x in v}
    assert len(new2) == 25 and not new2 & set(after)
    last1 = max(after[x]["end_time"] for x in new)
    final = gen.load_games(str(out))
    assert min(final[x]["end_time"] for x in new2) > last1
    for u in added2:
        ends = [g["end_time"] for g in gen.read_month(str(out), u, open_month)]
        assert ends == sorted(ends)
    assert json.loads((out / "meta.json").read_bytes())["games"] == len(final)


def test_advance_deterministic(tmp_path):
    trees = []
    for name in ("a", "b"):
        out = tmp_path / name
        gen.generate(str(out), players=6, months=1, seed=2, now="2024-02-10")
        r1 = gen.advance(str(out), games=15, seed=9)
        r2 = gen.advance(str(out), games=5)
        trees.append((_tree(out), r1, r2))
    assert trees[0] == trees[1]
    out = tmp_path / "c"
    gen.generate(str(out), players=6, months=1, seed=2, now="2024-02-10")
    assert gen.advance(str(out), games=15, seed=10) != trees[0][1]


def test_advance_moves_now_when_the_day_is_full(tmp_path):
    out = tmp_path / "d"
    gen.generate(str(out), players=3, months=1, seed=1, now="2024-02-10")
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_bytes())
    day = calendar.timegm(dt.date(2024, 2, 10).timetuple())
    meta["clock"] = day + 86399 - 5  # only 5 seconds left today
    meta_path.write_bytes(json.dumps(meta, separators=(",", ":")).encode())
    added = gen.advance(str(out), games=20)
    assert len({x for v in added.values() for x in v}) == 20
    meta = json.loads(meta_path.read_bytes())
    assert meta["now"] == "2024-02-11"
    ends = [g["end_time"] for g in gen.load_games(str(out)).values()]
    assert max(ends) <= day + 2 * 86400 - 1
    meta["now"], meta["clock"] = "2024-02-29", calendar.timegm(dt.date(2024, 3, 1).timetuple()) - 3
    meta_path.write_bytes(json.dumps(meta, separators=(",", ":")).encode())
    with pytest.raises(ValueError, match="no room"):
        gen.advance(str(out), games=5)
