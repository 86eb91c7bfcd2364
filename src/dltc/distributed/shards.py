"""Work items to shards by a stable hash. The shard of an item depends only on the item's
key and the number of shards S, never on the number of workers, so each shard's pipeline
(and its incremental state) is the same whatever the cluster size."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Dict, Iterable, List, Optional

__all__ = ["default_key", "partition", "shard_name", "shard_of"]


def default_key(item: Any) -> str:
    """`str` of a scalar; canonical JSON (sorted keys) of a dict or list (parent rows)."""
    if isinstance(item, (dict, list, tuple)):
        return json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return str(item)


def shard_of(key: str, shards: int) -> int:
    """The shard (0..shards-1) of a key: SHA-256, so it is the same in every process and
    on every machine (Python's hash() is salted per process)."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards!r}")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def partition(items: Iterable[Any], shards: int, key: Optional[Callable[[Any], str]] = None) -> Dict[int, List[Any]]:
    """{shard: items} for the non-empty shards, items in their given order; an item whose
    key came before is dropped (it would be loaded twice)."""
    key = key or default_key
    out: Dict[int, List[Any]] = {}
    seen = set()
    for item in items:
        k = key(item)
        if k in seen:
            continue
        seen.add(k)
        out.setdefault(shard_of(k, shards), []).append(item)
    return dict(sorted(out.items()))


def shard_name(base: str, shard: int, shards: int) -> str:
    """Pipeline and dataset name of one shard. S is part of it: with another S a shard
    holds other items, so it starts with state of its own."""
    return f"{base}_s{shards}_{shard:04d}"
