"""One shard, inside one Ray task attempt: builds the source from its items and a dlt
pipeline of its own (a name per shard, a fresh working folder per attempt) loading to the
shard's dataset on the filesystem destination (parquet). The shard's state lives in that
dataset (dlt restores it into the fresh folder), so an attempt after a crash or a later
run goes on from the last committed load. A marker written after a successful load makes
a repeated attempt of the same run return at once instead of loading again."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

__all__ = ["LAYOUT", "bucket_fs", "marker_path", "run_shard"]

LAYOUT = "{table_name}/{load_id}.{file_id}.{ext}"


def bucket_fs(bucket_url: str) -> Any:
    """(fsspec filesystem, root path) of a bucket URL, with dlt's credentials resolution."""
    from dlt.common.configuration import resolve_configuration
    from dlt.common.storages.configuration import FilesystemConfiguration
    from dlt.common.storages.fsspec_filesystem import fsspec_from_config

    cfg = resolve_configuration(FilesystemConfiguration(bucket_url), sections=("destination", "filesystem"))
    fs, root = fsspec_from_config(cfg)
    return fs, root.rstrip("/")


def marker_path(root: str, run_id: str, dataset: str) -> str:
    return f"{root}/_dltc_runs/{run_id}/{dataset}.json"


def _keys_of(source: Any) -> Dict[str, List[str]]:
    """Primary keys the source's resources declare (rest_api: primary_key)."""
    out: Dict[str, List[str]] = {}
    try:
        resources = source.selected_resources.values()
    except Exception:
        return out
    for r in resources:
        try:
            pk = r.compute_table_schema().get("columns", {})
            cols = [c for c, h in pk.items() if h.get("primary_key")]
        except Exception:
            cols = []
        if not cols:
            hint = getattr(r, "_hints", {}).get("primary_key")
            if isinstance(hint, str):
                cols = [hint]
            elif isinstance(hint, (list, tuple)):
                cols = list(hint)
        if cols:
            out[r.table_name if isinstance(r.table_name, str) else r.name] = cols
    return out


def run_shard(
    spec: Dict[str, Any],
    source_factory: Callable[[List[Any]], Any],
    limiter: Any = None,
) -> Dict[str, Any]:
    """Runs one shard (the body of the Ray task). spec: shard, shards, items, run_id,
    pipeline_name, dataset, bucket_url, work_dir, run_kwargs, lease_period."""
    import dlt

    t0 = time.monotonic()
    fs, root = bucket_fs(spec["bucket_url"])
    marker = marker_path(root, spec["run_id"], spec["dataset"])
    if fs.exists(marker):
        with fs.open(marker, "r") as f:
            done = json.load(f)
        done["skipped"] = True
        return done  # type: ignore[no-any-return]

    if spec.get("work_dir"):
        os.makedirs(spec["work_dir"], exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"dltc-{spec['dataset']}-", dir=spec.get("work_dir") or None)
    lease = None
    clients: List[Any] = []
    from dltc.runtime import add_client_hook

    remove_hook = add_client_hook(clients.append)  # to report the engine's counters
    try:
        if limiter is not None:
            from dltc.distributed.limiter import Lease

            worker = f"{spec['dataset']}@{socket.gethostname()}:{os.getpid()}"
            import ray

            node = ray.get_runtime_context().get_node_id() or socket.gethostname()
            lease = Lease(limiter, worker, period=spec.get("lease_period", 1.0), node=node).__enter__()
        source = source_factory(list(spec["items"]))
        keys = _keys_of(source)
        pipeline = dlt.pipeline(
            pipeline_name=spec["pipeline_name"],
            # the layout the committer reads: {table}/{load_id}.{file_id}.parquet
            destination=dlt.destinations.filesystem(spec["bucket_url"], layout=LAYOUT),
            dataset_name=spec["dataset"],
            pipelines_dir=work,
        )
        info = pipeline.run(source, loader_file_format="parquet", **(spec.get("run_kwargs") or {}))
        load_ids = list(info.loads_ids)
        engine = {"requests": 0, "status_429": 0, "retries": 0}
        for c in clients:
            st = c.stats()
            engine["requests"] += st.get("requests", 0)
            engine["status_429"] += st.get("status_429", 0)
            engine["retries"] += st.get("retries", 0)
        out = {
            "shard": spec["shard"],
            "dataset": spec["dataset"],
            "load_ids": load_ids,
            "keys": keys,
            "engine": engine,
            "lease_history": lease.history if lease else [],
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "seconds": time.monotonic() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "skipped": False,
        }
        fs.makedirs(os.path.dirname(marker), exist_ok=True)
        with fs.open(marker, "w") as f:
            json.dump(out, f)
        return out
    finally:
        remove_hook()
        if lease is not None:
            lease.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)
