"""dltc.distributed on a real Ray cluster: a local multi-node cluster (ray.cluster_utils,
a head without CPUs and two worker nodes of 2 CPUs each) loading the chess replica.
- shard sizes: 1 and 16 shards give the same tables as a plain single-process run;
- the global limit: with the limiter the replica (--max-parallel 8) refuses at most 5% of
  requests and the lease table never charged more than 8 slots; without it (the control
  run) the 429s show;
- faults: a worker killed mid-extract, another mid-load (parquet written, no _dlt_loads
  entry), a node removed mid-run: exactly the replica's games, every profile, one ledger
  row per shard, orphans removed, and a second fan-in changes nothing.
The lease table's arithmetic is tested without Ray. No C code path of its own: skipped
under ASan.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import dlt
import duckdb
import pytest

import dltc.replica as replica
from dltc.distributed import LeaseTable, partition, run_sharded, shard_of
from dltc.distributed.commit import Committer, committed_loads
from dltc.distributed.shard import bucket_fs

try:
    import ray
    from ray.cluster_utils import Cluster
except ImportError:  # the [ray] extra is not installed: only the tests without Ray run
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="ray cannot be imported (pip install 'dltc[ray]')")

if os.environ.get("DLTC_EXPECT_ASAN"):
    pytest.skip("dltc.distributed has no C code path of its own (covered by the release build)",
                allow_module_level=True)

PLAYERS, MONTHS, SEED = 24, 2, 3  # seed 3 gives a streamer: the child table exists
KEYS = {"players_games": "uuid", "players_profiles": "player_id"}
SKIP_COLS = {"_dlt_id", "_dlt_load_id", "_dlt_parent_id", "check_time"}
INTERNAL = ("_dlt_loads", "_dlt_pipeline_state", "_dlt_version", "_dltc_ledger")


# ---- without Ray ---------------------------------------------------------------------------


def test_shards_are_stable_and_independent_of_anything_but_the_key():
    # fixed values: the shard of a key must not change between processes or releases
    # (a change would move items to shards whose state does not know them)
    assert [shard_of(k, 64) for k in ("hikaru", "magnuscarlsen", "0")] == [
        shard_of(k, 64) for k in ("hikaru", "magnuscarlsen", "0")
    ]
    import hashlib

    assert shard_of("hikaru", 64) == int.from_bytes(hashlib.sha256(b"hikaru").digest()[:8], "big") % 64
    parts = partition([f"p{i}" for i in range(200)] + ["p1"], 16)
    assert sum(len(v) for v in parts.values()) == 200  # the repeated key once
    assert all(shard_of(i, 16) == s for s, v in parts.items() for i in v)
    assert len(parts) == 16


def test_lease_table_never_charges_more_than_the_limit():
    t = LeaseTable({"h": {"max_parallel": 8, "rps": 20.0}}, ttl=3.0)
    g = t.lease("a", now=0.0)
    assert g["slots"] == {"h": 8} and g["rps"] == {"h": 20.0}
    # b joins: a still holds 8 until it renews, so b waits with 0
    assert t.lease("b", now=0.1)["slots"] == {"h": 0}
    # a renews: its fair share is 4, but it stays charged 8 until its next renewal
    assert t.lease("a", now=1.0)["slots"] == {"h": 4}
    assert t.lease("b", now=1.1)["slots"] == {"h": 0}
    assert t.lease("a", now=2.0)["slots"] == {"h": 4}  # applied 4: 4 are free now
    assert t.lease("b", now=2.1)["slots"] == {"h": 4}
    assert t.peak_charged["h"] <= 8
    # a stops renewing: after the ttl its share returns (b's fair share is then 8)
    assert t.lease("b", now=5.05)["slots"] == {"h": 8} and t.expired == 1
    # a table that lost its state (actor restart): a worker re-registers with what it holds
    t2 = LeaseTable({"h": {"max_parallel": 8}})
    assert t2.lease("b", held={"h": 8}, now=0.0)["slots"] == {"h": 8}
    assert t2.lease("c", now=0.0)["slots"] == {"h": 0}
    for i in range(3):
        t2.lease("b", now=1.0 + i)
        t2.lease("c", now=1.0 + i)
    assert t2.holders["b"].slots["h"] + t2.holders["c"].slots["h"] == 8
    assert t2.peak_charged["h"] == 8


def test_lease_table_per_node_pools_multiply_with_nodes():
    """scope "node": a limit per client IP, one pool per node; "global": one pool (a token)."""
    t = LeaseTable({"ip": {"max_parallel": 4, "scope": "node"}, "token": {"max_parallel": 6}})
    for now in (0.0, 1.0, 2.0):
        for w, node in (("a", "n1"), ("b", "n1"), ("c", "n2")):
            t.lease(w, now=now, node=node)
    slots = {w: h.slots for w, h in t.holders.items()}
    assert slots["c"]["ip"] == 4 and slots["a"]["ip"] + slots["b"]["ip"] == 4  # 4 per node
    assert sum(s["token"] for s in slots.values()) <= 6  # 6 in all
    assert t.peak_charged["ip@n1"] <= 4 and t.peak_charged["ip@n2"] <= 4 and t.peak_charged["token"] <= 6
    g = t.lease("c", now=3.0, node="n2")
    assert g["max_concurrency"] == min(g["slots"].values())  # the tightest key caps the Client
    with pytest.raises(ValueError, match="scope"):
        LeaseTable({"h": {"max_parallel": 2, "scope": "planet"}})


# ---- the cluster and the replica -------------------------------------------------------------


def _node_args(cpus):
    return dict(num_cpus=cpus, object_store_memory=80 * 1024 * 1024)


@pytest.fixture(scope="module")
def cluster():
    # small on purpose: the machine has 2 cores shared with other jobs
    c = Cluster(initialize_head=True,
                head_node_args=dict(num_cpus=0, include_dashboard=False, object_store_memory=100 * 1024 * 1024))
    try:
        for _ in range(2):
            c.add_node(**_node_args(2))
        ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist_chess")
    replica.generate(str(d), players=PLAYERS, months=MONTHS, seed=SEED)
    return d


@pytest.fixture(scope="module")
def api(data):
    # latency: enough requests in flight at once for the limit to matter
    with replica.serve(str(data), max_parallel=8, latency_ms=50) as a:
        yield a


def _players(data):
    return json.loads((Path(data) / "meta.json").read_text())["players"]


def _urls(a):
    return {"base_url": a.base_url + "/pub/", "callback_url": a.base_url + "/callback/"}


def _tables(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = {}
        for t, c, ty in con.execute(
                "select table_name, column_name, data_type from information_schema.columns "
                "where table_schema = 'chess_data' order by table_name, column_name").fetchall():
            if t not in INTERNAL:
                cols.setdefault(t, {})[c] = ty
        rows = {}
        for t, cs in cols.items():
            keep = sorted(c for c in cs if c not in SKIP_COLS)
            sel = ", ".join(f'"{c}"' for c in keep)
            rows[t] = sorted(con.execute(f"select {sel} from chess_data.{t}").fetchall(), key=repr)
        platforms = con.execute(
            "select p.username, c._dlt_list_idx, c.type, c.channel_url from "
            "chess_data.players_profiles__streaming_platforms c join chess_data.players_profiles p "
            "on c._dlt_parent_id = p._dlt_id order by 1, 2").fetchall()
        return cols, rows, platforms
    finally:
        con.close()


def _sharded(tmp, name, factory, players, **kw):
    return run_sharded(factory, players, destination=dlt.destinations.duckdb(str(tmp / f"{name}.duckdb")),
                       dataset_name="chess_data", pipeline_name=name, bucket_url=str(tmp / f"{name}_shards"),
                       keys=KEYS, key=str.lower, work_dir=str(tmp / "work"), committer_dir=str(tmp / "committer"),
                       **kw)


# ---- shard sizes -----------------------------------------------------------------------------


@needs_ray
def test_one_and_sixteen_shards_equal_a_plain_run(cluster, api, data, tmp_path):
    from dltc import chess

    players = _players(data)
    urls = _urls(api)
    plain = dlt.pipeline(pipeline_name="plain", destination=dlt.destinations.duckdb(str(tmp_path / "plain.duckdb")),
                         dataset_name="chess_data", pipelines_dir=str(tmp_path / "plain_pl"))
    plain.run(chess.source(players, **urls))
    want = _tables(tmp_path / "plain.duckdb")
    assert want[2], "the data set has a streamer: the child table must have rows"

    def factory(items):
        return chess.source(items, **urls)

    limits = {"127.0.0.1": {"max_parallel": 8}}
    for shards in (1, 16):
        res = _sharded(tmp_path, f"s{shards}", factory, players, shards=shards, limits=limits)
        got = _tables(tmp_path / f"s{shards}.duckdb")
        assert got[0] == want[0], f"{shards} shards: other tables, columns or types"
        for t in want[1]:
            assert got[1][t] == want[1][t], f"{shards} shards: other rows in {t}"
        assert got[2] == want[2], f"{shards} shards: other child rows"
        assert len(res["ledger"]) == res["shard_count"] == len(partition(players, shards, str.lower))
        assert {r["shard"] for r in res["ledger"]} == set(res["results"])
    games = {r[0] for r in duckdb.connect(str(tmp_path / "s16.duckdb"), read_only=True).execute(
        "select uuid from chess_data.players_games").fetchall()}
    assert games == set(replica.load_games(str(data)))


# ---- the global limit ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limit_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist_limit")
    replica.generate(str(d), players=40, months=6, seed=5)
    return d


def _ratio(res):
    req = sum(r["engine"]["requests"] for r in res["results"].values())
    n429 = sum(r["engine"]["status_429"] for r in res["results"].values())
    return n429, req


@needs_ray
@pytest.mark.timing
def test_global_limit_keeps_the_replica_under_its_max_parallel(cluster, limit_data, tmp_path):
    """Four shard tasks at once on two nodes, each Client starting at a window of 8: the
    replica admits 8 in flight from all of them together (loopback: one client IP) and
    answers 429 beyond. With the limiter each worker holds a leased share (sum <= 8, the
    lease table's invariant) applied before its first request, so a 429 needs a transfer
    still running past a renewal that shrank its share: at most a few per renewal
    (bound 5%). Without it the windows start at 4 x 8 = 32 in flight: most of the first
    wave is refused (the control that makes this test able to fail)."""
    from dltc import chess

    players = _players(limit_data)
    with replica.serve(str(limit_data), max_parallel=8, latency_ms=100) as a:
        urls = _urls(a)

        def factory(items):
            return chess.source(items, max_attempts=10, **urls)

        limited = _sharded(tmp_path, "limited", factory, players, shards=4, workers=4,
                           limits={"127.0.0.1": {"max_parallel": 8}})
        control = _sharded(tmp_path, "control", factory, players, shards=4, workers=4)
    n429, req = _ratio(limited)
    c429, creq = _ratio(control)
    print(f"limited: {n429} 429s of {req} requests; control: {c429} of {creq}; "
          f"peak charged {limited['limiter']['peak_charged']}")
    assert limited["limiter"]["peak_charged"]["127.0.0.1"] <= 8
    assert req > 300 and creq > 300
    assert n429 <= 0.05 * req, f"{n429} 429s of {req} requests with the limiter"
    assert c429 > 0.05 * creq, f"the control run saw only {c429} 429s of {creq}: the test cannot fail"
    # every shard ran under a lease: its first applied limit was at most 8
    for r in limited["results"].values():
        assert r["lease_history"] and all(h[1] <= 8 for h in r["lease_history"])
    for name in ("limited", "control"):
        con = duckdb.connect(str(tmp_path / f"{name}.duckdb"), read_only=True)
        n, d = con.execute("select count(*), count(distinct uuid) from chess_data.players_games").fetchall()[0]
        assert n == d == len(replica.load_games(str(limit_data)))


# ---- a rest_api parent -> child config over parent ids ---------------------------------------


REST_TEMPLATE = {
    "resources": [
        {"name": "issues", "primary_key": "id",
         "endpoint": {"path": "repos/{item}/issues", "paginator": {"type": "header_link"}}},
        {"name": "comments", "primary_key": "id",
         "endpoint": {"path": "repos/{item}/issues/{resources.issues.number}/comments", "data_selector": "comments",
                      "paginator": {"type": "json_link", "next_url_path": "next"},
                      "response_actions": [{"status_code": 404, "action": "ignore"}]}},  # locked issues
    ],
}


def test_rest_api_template_is_expanded_per_item():
    from dltc.distributed.rest_api import expand_config

    cfg = expand_config({"client": {"base_url": "http://h/"}, **REST_TEMPLATE}, ["o/a", "o/b"])
    names = [(r["name"], r["table_name"], r["endpoint"]["path"]) for r in cfg["resources"]]
    assert names == [
        ("issues_0", "issues", "repos/o/a/issues"),
        ("comments_0", "comments", "repos/o/a/issues/{resources.issues_0.number}/comments"),
        ("issues_1", "issues", "repos/o/b/issues"),
        ("comments_1", "comments", "repos/o/b/issues/{resources.issues_1.number}/comments"),
    ]
    with pytest.raises(ValueError, match="do not depend on"):
        expand_config({"client": {}, "resources": [{"name": "orgs", "endpoint": {"path": "orgs"}}]}, ["x"])


@needs_ray
def test_rest_api_parent_child_sharded_equals_a_plain_run(cluster, api_replica_data, tmp_path):
    """Parent ids (repositories) sharded; each shard expands the template (issues ->
    comments per repository) and loads through dltc.rest_api on the engine, so the
    leased limit applies; the merged tables equal one plain run of all of them."""
    pytest.importorskip("dltc.rest_api", reason="dltc.rest_api is not merged yet")
    from dltc.distributed.rest_api import expand_config, rest_api_factory
    from dltc.replica.api import load_records, serve
    from dltc.rest_api import rest_api_source

    recs = load_records(str(api_replica_data))
    repos = [r["full_name"] for r in recs["repos"]]
    with serve(str(api_replica_data), max_parallel=8, latency_ms=50) as a:
        config = {"client": {"base_url": a.base_url + "/"}, **REST_TEMPLATE}
        plain = dlt.pipeline(pipeline_name="rplain", destination=dlt.destinations.duckdb(str(tmp_path / "rplain.duckdb")),
                             dataset_name="rest", pipelines_dir=str(tmp_path / "rplain_pl"))
        plain.run(rest_api_source(expand_config(config, repos)))
        res = run_sharded(rest_api_factory(config), repos, destination=dlt.destinations.duckdb(str(tmp_path / "r.duckdb")),
                          dataset_name="rest", pipeline_name="rsharded", shards=3, workers=4,
                          bucket_url=str(tmp_path / "r_shards"), work_dir=str(tmp_path / "work"),
                          committer_dir=str(tmp_path / "committer"), limits={"127.0.0.1": {"max_parallel": 8}})
    n429, req = _ratio(res)
    assert n429 <= 0.05 * req and res["limiter"]["peak_charged"]["127.0.0.1"] <= 8
    assert len(res["ledger"]) == res["shard_count"]
    assert all(r["keys"] == {"issues": ["id"], "comments": ["id"]} for r in res["results"].values())

    def tables(path):
        con = duckdb.connect(str(path), read_only=True)
        try:
            names = [t for (t,) in con.execute("select table_name from information_schema.tables "
                                               "where table_schema = 'rest'").fetchall() if t not in INTERNAL]
            out = {}
            for t in sorted(names):
                cols = sorted(c for (c,) in con.execute(
                    "select column_name from information_schema.columns where table_schema = 'rest' "
                    "and table_name = ?", [t]).fetchall() if not c.startswith("_dlt_") or c == "_dlt_list_idx")
                sel = ", ".join(f'"{c}"' for c in cols)
                out[t] = sorted(con.execute(f"select {sel} from rest.{t}").fetchall(), key=repr)
            labels = con.execute("select i.id, l._dlt_list_idx, l.name from rest.issues__labels l "
                                 "join rest.issues i on l._dlt_parent_id = i._dlt_id order by 1, 2").fetchall()
            return out, labels
        finally:
            con.close()

    want, got = tables(tmp_path / "rplain.duckdb"), tables(tmp_path / "r.duckdb")
    assert set(got[0]) == set(want[0]) and {"issues", "comments", "issues__labels"} <= set(want[0])
    for t in want[0]:
        assert got[0][t] == want[0][t], t
    assert got[1] == want[1] and got[1]
    issue_ids = {r[0] for r in duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True).execute(
        "select id from rest.issues").fetchall()}
    assert issue_ids == {i["id"] for i in recs["issues"]}
    unlocked = {f"{i['repository']}#{i['number']}" for i in recs["issues"] if not i["locked"]}
    want_comments = {c["id"] for k, cs in recs["comments"].items() if k in unlocked for c in cs}
    comment_ids = {r[0] for r in duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True).execute(
        "select id from rest.comments").fetchall()}
    assert comment_ids == want_comments


@needs_ray
def test_cli_workers_for_chess_and_rest_api(cluster, api, data, api_replica_data, tmp_path, monkeypatch, capsys):
    """`dltc chess --workers` and `dltc rest-api --workers --items` (in-process: the
    cluster of this module is used, as by run_sharded when Ray is already initialized)."""
    pytest.importorskip("dltc.rest_api", reason="dltc.rest_api is not merged yet")
    from dltc import cli
    from dltc.replica.api import load_records, serve

    monkeypatch.chdir(tmp_path)
    players = _players(data)
    assert cli.main(["chess", "--players", ",".join(players), "--base-url", api.base_url, "--workers", "2",
                     "--shards", "4", "--max-concurrency", "8", "--pipelines-dir", str(tmp_path / "pl")]) == 0
    out = capsys.readouterr().out
    assert "shards loaded            4 of 4 (S=4)" in out
    con = duckdb.connect(str(tmp_path / "dltc_chess.duckdb"), read_only=True)
    n, d = con.execute("select count(*), count(distinct uuid) from chess_data.players_games").fetchall()[0]
    con.close()
    assert n == d == len(replica.load_games(str(data)))

    repos = [r["full_name"] for r in load_records(str(api_replica_data))["repos"]]
    (tmp_path / "repos.txt").write_text("\n".join(repos))
    with serve(str(api_replica_data)) as a:
        (tmp_path / "api.json").write_text(json.dumps({"client": {"base_url": a.base_url + "/"}, **REST_TEMPLATE}))
        assert cli.main(["rest-api", "--config", str(tmp_path / "api.json"), "--workers", "2", "--shards", "2",
                         "--items", "@" + str(tmp_path / "repos.txt"), "--max-concurrency", "8",
                         "--dataset-name", "rest", "--pipelines-dir", str(tmp_path / "pl")]) == 0
    con = duckdb.connect(str(tmp_path / "dltc_rest_api.duckdb"), read_only=True)
    n, d = con.execute("select count(*), count(distinct id) from rest.issues").fetchall()[0]
    con.close()
    assert n == d == len(load_records(str(api_replica_data))["issues"])
    # a template with a resource that depends on no item is refused before anything runs
    (tmp_path / "bad.json").write_text(json.dumps({"client": {"base_url": "http://127.0.0.1:9/"},
                                                   "resources": [{"name": "orgs", "endpoint": {"path": "orgs"}}]}))
    assert cli.main(["rest-api", "--config", str(tmp_path / "bad.json"), "--workers", "2", "--items", "a"]) == 2
    assert "do not depend on" in capsys.readouterr().err


# ---- faults ------------------------------------------------------------------------------------


def _fault_factory(urls, marks, kill_extract, kill_load):
    """A chess source whose first attempt of shard `kill_extract` kills its worker after a
    few responses, and whose first attempt of shard `kill_load` kills its worker after the
    parquet files are written, before the _dlt_loads entry (FilesystemClient.complete_load)."""

    def factory(items):
        from dltc import chess
        from dltc.distributed import shard_of

        shard = shard_of(items[0].lower(), 8)
        Path(marks, f"started-{shard}-{os.getpid()}").touch()
        progress = None
        if shard == kill_extract and not Path(marks, "extract").exists():
            seen = [0]

            def progress(info):
                seen[0] += 1
                if seen[0] == 3:
                    Path(marks, "extract").touch()
                    os.kill(os.getpid(), signal.SIGKILL)

        if shard == kill_load and not Path(marks, "load").exists():
            from dlt.destinations.impl.filesystem.filesystem import FilesystemClient

            orig = FilesystemClient.complete_load

            def complete_load(self, load_id):
                data = [p for p in Path(self.dataset_path.replace("file://", "")).rglob("*.parquet")]
                Path(marks, "load").write_text(json.dumps([str(p) for p in data]))
                os.kill(os.getpid(), signal.SIGKILL)
                return orig(self, load_id)

            FilesystemClient.complete_load = complete_load
        return chess.source(items, progress=progress, **urls)

    return factory


@needs_ray
def test_faults_every_game_once_every_profile_one_ledger_row_per_shard(cluster, api, data, tmp_path):
    players = _players(data)
    parts = partition(players, 8, str.lower)
    sizes = sorted(parts, key=lambda s: -len(parts[s]))
    kill_extract, kill_load = sizes[0], sizes[1]
    marks = tmp_path / "marks"
    marks.mkdir()
    factory = _fault_factory(_urls(api), str(marks), kill_extract, kill_load)

    removed = {}

    def remove_a_node():
        # once tasks run on both worker nodes, remove one of them (its tasks die with it)
        end = time.monotonic() + 60
        while time.monotonic() < end and len(list(marks.glob("started-*"))) < 4:
            time.sleep(0.05)
        # not the node the driver attached to: the committer and the limiter live there
        # (on a real cluster the driver runs on the head, which is not removed)
        here = ray.get_runtime_context().get_node_id()
        node = [n for n in cluster.list_all_nodes()[1:] if n.node_id != here][-1]
        cluster.remove_node(node, allow_graceful=False)
        removed["at"] = len(list(marks.glob("started-*")))

    t = threading.Thread(target=remove_a_node, daemon=True)
    t.start()
    try:
        res = _sharded(tmp_path, "faults", factory, players, shards=8, workers=4,
                       limits={"127.0.0.1": {"max_parallel": 8}}, retries=4)
    finally:
        t.join(70)
        cluster.add_node(**_node_args(2))  # back to two worker nodes
    assert removed, "the node was not removed"
    assert (marks / "extract").exists() and (marks / "load").exists(), "the two workers were not killed"
    orphans = json.loads((marks / "load").read_text())
    assert orphans, "the killed load had written no parquet file"

    con = duckdb.connect(str(tmp_path / "faults.duckdb"), read_only=True)
    n, d = con.execute("select count(*), count(distinct uuid) from chess_data.players_games").fetchall()[0]
    uuids = {r[0] for r in con.execute("select uuid from chess_data.players_games").fetchall()}
    profiles = {r[0] for r in con.execute("select username from chess_data.players_profiles").fetchall()}
    ledger = con.execute("select shard, dataset, load_id from chess_data._dltc_ledger").fetchall()
    before = {t: con.execute(f"select count(*) from chess_data.{t}").fetchall()[0][0]
              for t in ("players_games", "players_profiles", "players_online_status", "_dltc_ledger", "_dlt_loads")}
    con.close()
    assert n == d, "duplicate games"
    assert uuids == set(replica.load_games(str(data))), "games missing or extra"
    assert {p.lower() for p in profiles} == {p.lower() for p in players}, "profiles missing"
    assert sorted(r[0] for r in ledger) == sorted(parts), "not one ledger row per shard"
    # orphans removed: every data file left belongs to a committed load
    fs, root = bucket_fs(res["bucket_url"])
    for sh in res["results"].values():
        ds = f"{root}/{sh['dataset']}"
        ok = committed_loads(fs, ds)
        for p in fs.find(ds):
            if p.endswith(".parquet"):
                assert ".".join(os.path.basename(p).split(".")[:2]) in ok, p
    assert not any(os.path.exists(p) for p in orphans), "orphan files of the killed load are still there"
    # removed by the committer (a replace table's file may already be gone: the next
    # attempt's load of that table truncated it)
    assert sum(c["orphans_removed"] for c in res["commits"]) >= 1

    # a second fan-in of the same run: nothing new is read, nothing changes
    again = _sharded(tmp_path, "faults", factory, players, shards=8, workers=4, run_id=res["run_id"],
                     limits={"127.0.0.1": {"max_parallel": 8}})
    assert all(r["skipped"] for r in again["results"].values())
    assert sum(c["loads"] for c in again["commits"]) == 0
    com = Committer(dlt.destinations.duckdb(str(tmp_path / "faults.duckdb")), "chess_data", res["bucket_url"],
                    "faults", str(tmp_path / "committer2"), KEYS)
    assert com.commit(res["run_id"], [{"shard": s, "dataset": r["dataset"]} for s, r in res["results"].items()])[
        "loads"] == 0
    con = duckdb.connect(str(tmp_path / "faults.duckdb"), read_only=True)
    after = {t: con.execute(f"select count(*) from chess_data.{t}").fetchall()[0][0] for t in before}
    con.close()
    assert after == before
