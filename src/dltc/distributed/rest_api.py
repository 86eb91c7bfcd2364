"""Sharding a rest_api config over parent ids: a config template whose endpoints hold a
placeholder (`{item}` by default) is expanded, for the items of one shard, into one chain
of resources per item, each loading to the template's tables. So the same config file
loads any set of parent ids, and any share of them on any worker."""

from __future__ import annotations

import copy
import re
from typing import Any, Callable, Dict, List, Set

__all__ = ["expand_config", "rest_api_factory"]


def _has(v: Any, placeholder: str) -> bool:
    if isinstance(v, str):
        return placeholder in v
    if isinstance(v, dict):
        return any(_has(x, placeholder) for x in v.values())
    if isinstance(v, list):
        return any(_has(x, placeholder) for x in v)
    return False


def _sub(v: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(v, str):
        return fn(v)
    if isinstance(v, dict):
        return {k: _sub(x, fn) for k, x in v.items()}
    if isinstance(v, list):
        return [_sub(x, fn) for x in v]
    return v


def _parents(res: Dict[str, Any]) -> Set[str]:
    """Resources a resource's endpoint refers to (`{resources.NAME.field}` or dlt's older
    `{"type": "resolve", "resource": NAME}` params)."""
    ep = res.get("endpoint")
    out = set(re.findall(r"resources\.([A-Za-z0-9_\-]+)\.", repr(ep)))
    if isinstance(ep, dict):
        for p in (ep.get("params") or {}).values():
            if isinstance(p, dict) and p.get("type") == "resolve":
                out.add(p["resource"])
    return out


def expand_config(config: Dict[str, Any], items: List[Any], placeholder: str = "{item}") -> Dict[str, Any]:
    """The config for `items`: every resource that holds `placeholder` (in its endpoint,
    or in a resource it depends on) is repeated per item, named `NAME_i`, its placeholder
    replaced by the item and its parent references pointed at the same item's copies; each
    copy keeps the template's table name. A resource that depends on no item is refused:
    every shard would load it again (load it with a plain pipeline)."""
    resources = [r if isinstance(r, dict) else {"name": r} for r in config["resources"]]
    by_name = {r["name"]: r for r in resources}
    templated: Set[str] = set()
    changed = True
    while changed:  # a child of a templated resource is templated
        changed = False
        for r in resources:
            if r["name"] in templated:
                continue
            if _has(r.get("endpoint"), placeholder) or _parents(r) & templated:
                templated.add(r["name"])
                changed = True
    plain = [r["name"] for r in resources if r["name"] not in templated]
    if plain:
        raise ValueError(f"resources {plain} do not depend on {placeholder!r}: each shard would load them again")
    out_res: List[Dict[str, Any]] = []
    for i, item in enumerate(items):
        names = {n: f"{n}_{i}" for n in by_name}

        def fix(s: str, item: Any = item, names: Dict[str, str] = names) -> str:
            s = s.replace(placeholder, str(item))
            return re.sub(r"resources\.([A-Za-z0-9_\-]+)\.", lambda m: f"resources.{names.get(m.group(1), m.group(1))}.", s)

        for r in resources:
            c = copy.deepcopy(r)
            c["endpoint"] = _sub(c.get("endpoint"), fix)
            ep = c.get("endpoint")
            if isinstance(ep, dict):
                for p in (ep.get("params") or {}).values():
                    if isinstance(p, dict) and p.get("type") == "resolve":
                        p["resource"] = names.get(p["resource"], p["resource"])
            c.setdefault("table_name", r["name"])
            c["name"] = names[r["name"]]
            out_res.append(c)
    cfg = dict(config)
    cfg["resources"] = out_res
    return cfg


def rest_api_factory(config: Dict[str, Any], placeholder: str = "{item}") -> Callable[[List[Any]], Any]:
    """A `source_factory` for run_sharded: items -> dltc.rest_api.rest_api_source of the
    config expanded for them (expand_config). Tables merge on the resources' primary_key."""
    expand_config(config, ["x"], placeholder)  # refuse a bad template before any task runs

    def factory(items: List[Any]) -> Any:
        from dltc.rest_api import rest_api_source

        return rest_api_source(expand_config(config, items, placeholder))  # type: ignore[arg-type]

    return factory
