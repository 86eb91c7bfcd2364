"""The fan-in: one committer, the only writer of the final destination. For each finished
shard it lists the shard dataset's committed loads (those with a `_dlt_loads` entry),
removes the files of loads that never committed (orphans of a killed attempt), reads the
committed loads not yet in the ledger, keeps one row per key (the newest load wins), and
loads them with dlt, merging on the key, together with their ledger rows
(`_dltc_ledger`: run, shard, dataset, load_id). A load already in the ledger is never read
again, so a repeated fan-in changes nothing; a fan-in interrupted half-way redoes only
keyed merges, which give the same rows. The committer's pipeline folder (on the driver's
node) keeps an interrupted load package until it is finished."""

from __future__ import annotations

import logging
import os
import posixpath
import time
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

from dltc.distributed.shard import bucket_fs

__all__ = ["LEDGER_TABLE", "Committer", "committed_loads", "parent_of"]

LEDGER_TABLE = "_dltc_ledger"
_IDX = "__dltc_row"
log = logging.getLogger("dltc.distributed")


def _load_id_of(filename: str) -> str:
    # dlt's default layout: {table_name}/{load_id}.{file_id}.{ext}; a load id is "secs.frac"
    parts = filename.split(".")
    return ".".join(parts[:2])


def committed_loads(fs: Any, ds_path: str) -> Set[str]:
    """Load ids with an entry in the dataset's `_dlt_loads` folder ({schema}__{load_id}.jsonl)."""
    out: Set[str] = set()
    loads = f"{ds_path}/_dlt_loads"
    if not fs.exists(loads):
        return out
    for p in fs.ls(loads, detail=False):
        name = posixpath.basename(p)
        if name.endswith(".jsonl") and "__" in name:
            out.add(name[:-len(".jsonl")].rsplit("__", 1)[1])
    return out


def parent_of(table: str, tables: Sequence[str]) -> Optional[str]:
    """A child table's parent: the longest other table name that prefixes it before `__`."""
    best = None
    for t in tables:
        if t != table and table.startswith(t + "__") and (best is None or len(t) > len(best)):
            best = t
    return best


def _dedup(tbl: pa.Table, key: Sequence[str]) -> pa.Table:
    """One row per key: the last in the table's order (loads are read oldest first); rows
    with a null key component are kept."""
    if tbl.num_rows < 2 or not all(k in tbl.column_names for k in key):
        return tbl
    t = tbl.append_column(_IDX, pa.array(range(tbl.num_rows), pa.int64()))
    nulls = None
    for k in key:
        m = pa.compute.is_null(t.column(k))
        nulls = m if nulls is None else pa.compute.or_(nulls, m)
    keyed = t.filter(pa.compute.invert(nulls))
    last = keyed.group_by(list(key), use_threads=False).aggregate([(_IDX, "max")]).column(f"{_IDX}_max")
    keep = pa.compute.or_(nulls, pa.compute.is_in(t.column(_IDX), value_set=last))
    return t.filter(keep).drop_columns([_IDX])


class Committer:
    """The fan-in (as a Ray actor, restartable; also usable in-process)."""

    def __init__(self, destination: Any, dataset_name: str, bucket_url: str, pipeline_name: str,
                 work_dir: Optional[str] = None, keys: Optional[Dict[str, Any]] = None):
        self.destination = destination
        self.dataset_name = dataset_name
        self.bucket_url = bucket_url
        self.pipeline_name = pipeline_name
        self.work_dir = work_dir
        self.keys: Dict[str, List[str]] = {t: ([k] if isinstance(k, str) else list(k)) for t, k in (keys or {}).items()}
        self._pipeline: Any = None
        self._ledger: Optional[Set[Tuple[str, str]]] = None
        self.stats: Dict[str, Any] = {"commits": 0, "loads": 0, "rows": 0, "orphans_removed": 0, "seconds": 0.0}

    def pipeline(self) -> Any:
        if self._pipeline is None:
            import dlt

            kw = {"pipelines_dir": self.work_dir} if self.work_dir else {}
            self._pipeline = dlt.pipeline(pipeline_name=self.pipeline_name, destination=self.destination,
                                          dataset_name=self.dataset_name, **kw)
            if self._pipeline.has_pending_data:  # a committer that died mid-load: finish it
                self._pipeline.load()
        return self._pipeline

    def ledger(self) -> Set[Tuple[str, str]]:
        """(dataset, load_id) of every shard load already merged (read once, then kept)."""
        if self._ledger is None:
            self._ledger = set()
            try:
                with self.pipeline().sql_client() as c:
                    name = c.make_qualified_table_name(LEDGER_TABLE)
                    for ds, lid in c.execute_sql(f"SELECT dataset, load_id FROM {name}") or []:
                        self._ledger.add((ds, lid))
            except Exception as e:  # no ledger yet (first fan-in)
                log.debug("no ledger in %s: %s", self.dataset_name, e)
        return self._ledger

    def ledger_rows(self) -> List[Dict[str, Any]]:
        try:
            with self.pipeline().sql_client() as c:
                name = c.make_qualified_table_name(LEDGER_TABLE)
                rows = c.execute_sql(f"SELECT run, shard, dataset, load_id FROM {name} ORDER BY shard, load_id") or []
        except Exception as e:  # nothing committed yet, or not a SQL destination
            log.debug("ledger of %s not readable: %s", self.dataset_name, e)
            return []
        return [dict(zip(("run", "shard", "dataset", "load_id"), r)) for r in rows]

    def _scan(self, fs: Any, root: str, dataset: str) -> Tuple[Dict[str, List[str]], List[str], int]:
        """({load_id: data files} of committed loads not in the ledger, committed ids, orphans removed)."""
        ds_path = f"{root}/{dataset}"
        if not fs.exists(ds_path):
            return {}, [], 0
        committed = committed_loads(fs, ds_path)
        done = self.ledger()
        pending: Dict[str, List[str]] = {}
        removed = 0
        for d in fs.ls(ds_path, detail=False):
            table = posixpath.basename(d.rstrip("/"))
            if table.startswith("_dlt") or not fs.isdir(d):
                continue
            for p in fs.ls(d, detail=False):
                name = posixpath.basename(p)
                lid = _load_id_of(name)
                if lid not in committed:
                    fs.rm(p)  # an orphan: a load that never committed
                    removed += 1
                elif (dataset, lid) not in done and name.endswith(".parquet"):
                    pending.setdefault(lid, []).append(p)
        # a state file of an uncommitted load would never be read by dlt: removed as well
        state_dir = f"{ds_path}/_dlt_pipeline_state"
        if fs.exists(state_dir):
            for p in fs.ls(state_dir, detail=False):
                parts = posixpath.basename(p).split("__")
                if len(parts) >= 3 and parts[1] not in committed:
                    fs.rm(p)
                    removed += 1
        return pending, sorted(committed), removed

    def commit(self, run_id: str, shards: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        """Merges the committed, not yet merged loads of `shards` (dicts with shard,
        dataset, keys). Returns what it did."""
        import dlt

        t0 = time.monotonic()
        fs, root = bucket_fs(self.bucket_url)
        parts: Dict[str, List[pa.Table]] = {}
        ledger: List[Dict[str, Any]] = []
        removed = 0
        for sh in shards:
            for t, k in (sh.get("keys") or {}).items():
                self.keys.setdefault(t, [k] if isinstance(k, str) else list(k))
            pending, _, n = self._scan(fs, root, sh["dataset"])
            removed += n
            for lid in sorted(pending, key=float):
                for p in sorted(pending[lid]):
                    table = posixpath.basename(posixpath.dirname(p))
                    with fs.open(p, "rb") as f:
                        parts.setdefault(table, []).append(pq.read_table(f))
                ledger.append({"run": run_id, "shard": int(sh["shard"]), "dataset": sh["dataset"], "load_id": lid,
                               "committed_at": time.time()})
        tables = {t: pa.concat_tables(v, promote_options="permissive") for t, v in parts.items()}
        rows = 0
        resources = []
        names = list(tables)
        # parents first: a child row whose parent row was dropped as a duplicate goes too
        for t in sorted(names, key=lambda n: n.count("__")):
            tbl = tables[t]
            key = self.keys.get(t)
            parent = parent_of(t, names)
            if key:
                tbl = _dedup(tbl, key)
            elif parent is not None and "_dlt_parent_id" in tbl.column_names and "_dlt_id" in tables[parent].column_names:
                keep = pa.compute.is_in(tbl.column("_dlt_parent_id"), value_set=tables[parent].column("_dlt_id"))
                tbl = tbl.filter(keep)
            if not key and "_dlt_id" in tbl.column_names:
                key = ["_dlt_id"]
                tbl = _dedup(tbl, key)
            tables[t] = tbl
            rows += tbl.num_rows
            if key:
                resources.append(dlt.resource(tbl, name=t, table_name=t, write_disposition="merge", primary_key=key))
            else:  # no key at all (rejects): each load is read once, by the ledger
                resources.append(dlt.resource(tbl, name=t, table_name=t, write_disposition="append"))
        if ledger:
            resources.append(dlt.resource(ledger, name=LEDGER_TABLE, table_name=LEDGER_TABLE,
                                          write_disposition="merge", primary_key=["dataset", "load_id"]))
            # rows and their ledger rows in one load package: a committer that dies
            # mid-load finishes that package when it restarts (pipeline()), before it
            # reads the ledger
            self.pipeline().run(resources)
            self._clean_children(names)
            for r in ledger:
                self.ledger().add((r["dataset"], r["load_id"]))
        dt = time.monotonic() - t0
        self.stats["commits"] += 1
        self.stats["loads"] += len(ledger)
        self.stats["rows"] += rows
        self.stats["orphans_removed"] += removed
        self.stats["seconds"] += dt
        return {"loads": len(ledger), "rows": rows, "orphans_removed": removed, "seconds": dt,
                "shards": [int(s["shard"]) for s in shards]}

    def _clean_children(self, names: Sequence[str]) -> None:
        """Child rows whose parent row a merge replaced (a parent's new row has a new
        _dlt_id) are deleted, where the destination speaks SQL."""
        pairs = [(t, parent_of(t, names)) for t in names]
        pairs = [(t, p) for t, p in pairs if p is not None and t not in self.keys]
        if not pairs:
            return
        try:
            with self.pipeline().sql_client() as c:
                for child, parent in sorted(pairs, key=lambda x: x[0].count("__")):
                    ct, pt = c.make_qualified_table_name(child), c.make_qualified_table_name(parent)
                    c.execute_sql(f"DELETE FROM {ct} WHERE _dlt_parent_id NOT IN (SELECT _dlt_id FROM {pt})")
        except Exception as e:  # not a SQL destination
            log.debug("child clean-up skipped: %s", e)

    def get_stats(self) -> Dict[str, Any]:
        return dict(self.stats)

    def ping(self) -> int:
        return os.getpid()
