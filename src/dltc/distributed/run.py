"""`run_sharded`: a load split into shards run as Ray tasks, merged by one committer."""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional

from dltc.distributed.shards import partition, shard_name

__all__ = ["ShardedRunError", "run_sharded"]

log = logging.getLogger("dltc.distributed")


class ShardedRunError(RuntimeError):
    """Some shards failed after their retries; the others were committed. `result` is the
    run's summary; running again with the same `run_id` redoes only the failed shards."""

    def __init__(self, message: str, result: Dict[str, Any]):
        super().__init__(message)
        self.result = result


def _file_url(path: str) -> str:
    return "file://" + os.path.abspath(path)


def _driver_node(soft: bool) -> Dict[str, Any]:
    """Scheduling options that place an actor on the driver's node (None in client mode)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        node = ray.get_runtime_context().get_node_id()
    except Exception:
        return {}
    if not node:
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=soft)}


def run_sharded(
    source_factory: Callable[[List[Any]], Any],
    items: Iterable[Any],
    *,
    destination: Any = "duckdb",
    dataset_name: str = "dltc_data",
    shards: int = 64,
    address: Optional[str] = None,
    limits: Optional[Dict[str, Dict[str, Any]]] = None,
    workers: Optional[int] = None,
    pipeline_name: Optional[str] = None,
    bucket_url: Optional[str] = None,
    run_id: Optional[str] = None,
    key: Optional[Callable[[Any], str]] = None,
    keys: Optional[Dict[str, Any]] = None,
    retries: int = 3,
    num_cpus: float = 1,
    lease_period: float = 1.0,
    lease_ttl: float = 5.0,
    limiter_name: Optional[str] = None,
    work_dir: Optional[str] = None,
    committer_dir: Optional[str] = None,
    run_kwargs: Optional[Dict[str, Any]] = None,
    ray_init: Optional[Dict[str, Any]] = None,
    progress: Optional[Callable[[Dict[str, Any]], Any]] = None,
) -> Dict[str, Any]:
    """Loads `source_factory(shard_items)` for every shard of `items` on a Ray cluster and
    merges the shards into `destination`/`dataset_name`, each row exactly once.

    Args:
        source_factory: items -> a dlt source (e.g. `lambda p: dltc.chess.source(p)`);
            called inside the worker, so it must be picklable (cloudpickle: lambdas are).
        items: the work items (players, parent ids); `key(item)` (default: str, or JSON of
            a dict) picks the shard by a stable hash; repeated keys are loaded once.
        destination, dataset_name: the final destination (written only by the committer,
            on the driver's node); "duckdb" is `{pipeline_name}.duckdb` in the current folder.
        shards: S, fixed for a data set: per-shard state survives a change of workers.
        address: None: a local Ray cluster (started and stopped here unless Ray is already
            initialized); "auto" or "ray://...": an existing cluster.
        limits: {host or token: {"max_parallel": n, "rps": r}}, global across all workers
            (a leased share per worker, renewed every `lease_period` s). The limiter actor
            lives for this run; with `limiter_name` it is a detached actor of that name
            shared by every run that names it (several pipelines against one API).
        workers: shard tasks running at once (default: as many as the cluster's CPUs allow).
        bucket_url: where the shard datasets live (parquet); must be reachable from every
            node (a bucket URL on a multi-node cluster). Default `./{pipeline_name}_shards`.
        keys: {table: key column(s)} to merge on, besides the primary keys the source's
            resources declare; other tables merge on `_dlt_id`.
        run_id: names the run in the ledger; a repeated run_id skips the shards it already
            loaded and commits what is missing.

    Returns a summary: run_id, shards, results per shard, commits, fan_in_s (the last
    commit after the last shard), wall_s, ledger rows, limiter snapshot.
    """
    import ray

    from dltc.distributed.commit import Committer
    from dltc.distributed.limiter import LimiterActor, normalize_limits
    from dltc.distributed.shard import run_shard

    t0 = time.monotonic()
    pipeline_name = pipeline_name or f"dltc_{dataset_name}"
    run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    limits_n = normalize_limits(limits)
    if isinstance(destination, str) and destination == "duckdb":
        import dlt

        destination = dlt.destinations.duckdb(os.path.abspath(f"{pipeline_name}.duckdb"))
    bucket_url = bucket_url or _file_url(f"{pipeline_name}_shards")
    if "://" not in bucket_url:
        bucket_url = _file_url(bucket_url)
    parts = partition(items, shards, key)

    started_ray = False
    if not ray.is_initialized():
        kw = {"include_dashboard": False, "log_to_driver": False, **(ray_init or {})}
        ray.init(address=address, **kw)
        started_ray = True
    try:
        committer = ray.remote(Committer).options(
            num_cpus=0, max_restarts=-1, max_task_retries=-1, **_driver_node(soft=False)
        ).remote(destination, dataset_name, bucket_url, pipeline_name, committer_dir, keys)
        limiter = None
        if limits_n:
            # one per run, unless named: then shared by every run (and driver) that names it,
            # so it outlives this one (detached)
            opts: Dict[str, Any] = {"name": f"dltc-limiter-{run_id}"}
            if limiter_name:
                opts = {"name": limiter_name, "get_if_exists": True, "lifetime": "detached"}
            limiter = ray.remote(LimiterActor).options(
                num_cpus=0, max_restarts=-1, max_task_retries=-1, **opts, **_driver_node(soft=True),
            ).remote(limits_n, lease_ttl)
            ray.get(limiter.configure.remote(limits_n, lease_ttl))
        task = ray.remote(run_shard).options(num_cpus=num_cpus, max_retries=retries, retry_exceptions=True)
        if workers is None:
            cpus = ray.cluster_resources().get("CPU", 1)
            workers = max(1, int(cpus // num_cpus) if num_cpus else len(parts))
        factory_ref = ray.put(source_factory)

        queue = list(parts.items())
        inflight: Dict[Any, int] = {}
        results: Dict[int, Dict[str, Any]] = {}
        failed: Dict[int, str] = {}
        to_commit: List[Dict[str, Any]] = []
        commits: List[Dict[str, Any]] = []
        commit_ref = None
        last_shard_at = last_commit_at = time.monotonic()
        while queue or inflight or to_commit or commit_ref is not None:
            while queue and len(inflight) < workers:
                s, shard_items = queue.pop(0)
                ds = shard_name(dataset_name, s, shards)
                spec = {"shard": s, "shards": shards, "items": shard_items, "run_id": run_id,
                        "pipeline_name": shard_name(pipeline_name, s, shards), "dataset": ds,
                        "bucket_url": bucket_url, "work_dir": work_dir, "run_kwargs": run_kwargs,
                        "lease_period": lease_period}
                inflight[task.remote(spec, factory_ref, limiter)] = s
            if commit_ref is None and to_commit:
                batch, to_commit = to_commit, []
                commit_ref = committer.commit.remote(run_id, batch)
            waiting = list(inflight) + ([commit_ref] if commit_ref is not None else [])
            ready, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
            for ref in ready:
                if commit_ref is not None and ref == commit_ref:
                    commits.append(ray.get(ref))
                    last_commit_at = time.monotonic()
                    commit_ref = None
                    continue
                s = inflight.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as e:  # retries exhausted
                    failed[s] = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
                    log.error("shard %d failed: %s", s, failed[s])
                    continue
                results[s] = res
                last_shard_at = time.monotonic()
                to_commit.append({"shard": s, "dataset": res["dataset"], "keys": res.get("keys") or {}})
                if progress is not None:
                    progress({"shards_done": len(results), "shards_failed": len(failed), "shards": len(parts)})
        ledger = ray.get(committer.ledger_rows.remote())
        snapshot = ray.get(limiter.snapshot.remote()) if limiter is not None else None
        out = {
            "run_id": run_id,
            "shards": shards,
            "shard_count": len(parts),
            "results": results,
            "failed": failed,
            "commits": commits,
            "fan_in_s": max(0.0, last_commit_at - last_shard_at),  # the wait for the last commit
            "commit_s": sum(c["seconds"] for c in commits),
            "wall_s": time.monotonic() - t0,
            "ledger": ledger,
            "limiter": snapshot,
            "bucket_url": bucket_url,
            "workers": workers,
        }
        ray.kill(committer)
        if limiter is not None and not limiter_name:
            ray.kill(limiter)
        if failed:
            raise ShardedRunError(
                f"{len(failed)} of {len(parts)} shards failed (run {run_id}; run again with run_id={run_id!r} "
                f"to redo them): " + "; ".join(f"shard {s}: {m}" for s, m in sorted(failed.items())), out)
        return out
    finally:
        if started_ray:
            ray.shutdown()
