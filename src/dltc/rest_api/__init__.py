"""dltc.rest_api: a drop-in for dlt's `rest_api_source`, with the same RESTAPIConfig, the
same resources and the same tables, whose requests all go through one C fetch engine and
whose pages are decoded once in C straight to Arrow.

    from dltc.rest_api import rest_api_source     # was: from dlt.sources.rest_api import ...
    source = rest_api_source(config)

Config validation and set-up are dlt's own functions (so config errors are dlt's); see
README.md ("Your own API: dltc.rest_api") for what is identical, what differs and why,
and docs/CONTRACTS.md section 8 for the contract. Options of dltc itself go under a
`"dltc"` key of the config (removed before dlt validates it).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import dlt
from dlt.common.schema.schema import Schema
from dlt.common.schema.typing import TSchemaContract
from dlt.extract import DltResource, DltSource
from dlt.sources.rest_api.config_setup import register_auth, register_paginator
from dlt.sources.rest_api.typing import RESTAPIConfig

from dltc.rest_api._source import RESTAPIError, create_resources, split_options, validate

__all__ = [
    "RESTAPIConfig",
    "RESTAPIError",
    "paths",
    "register_auth",
    "register_paginator",
    "rest_api",
    "rest_api_resources",
    "rest_api_source",
]


@dlt.source(name="rest_api", section="rest_api")
def rest_api(
    client: Any = dlt.config.value,
    resources: Any = dlt.config.value,
    resource_defaults: Optional[Any] = None,
    dltc: Optional[Dict[str, Any]] = None,
) -> List[DltResource]:
    """A REST API source from config (dlt's `rest_api` source, on dltc)."""
    config: Dict[str, Any] = {"client": client, "resources": resources, "resource_defaults": resource_defaults}
    if dltc:
        config["dltc"] = dltc
    return rest_api_resources(config)  # type: ignore[arg-type]


def rest_api_source(
    config: RESTAPIConfig,
    name: str = None,  # type: ignore[assignment]
    section: str = None,  # type: ignore[assignment]
    max_table_nesting: int = None,  # type: ignore[assignment]
    root_key: bool = None,  # type: ignore[assignment]
    schema: Schema = None,  # type: ignore[assignment]
    schema_contract: TSchemaContract = None,  # type: ignore[assignment]
    parallelized: bool = False,
) -> DltSource:
    """Creates a REST API source from `config`, as dlt's `rest_api_source` (same
    signature, same config, same tables). The optional `"dltc"` key of `config` holds
    dltc's own options (see README.md): engine limits (`max_concurrency`, `rps`,
    `allowed_hosts`, `ca_file`, ...), `progress`/`stats`, `dict_path`."""
    cfg, opts = split_options(dict(config))
    validate(cfg)
    opts["_nesting"] = max_table_nesting
    opts["_root_key"] = root_key
    decorated = rest_api.clone(
        name=name,
        section=section,
        max_table_nesting=max_table_nesting,
        root_key=root_key,
        schema=schema,
        schema_contract=schema_contract,
        parallelized=parallelized,
    )
    return decorated(**cfg, dltc=opts)  # type: ignore[no-any-return]


def rest_api_resources(config: RESTAPIConfig) -> List[DltResource]:
    """The resources of `config` (dlt's `rest_api_resources`), all sharing one engine."""
    cfg, opts = split_options(dict(config))
    validate(cfg)
    nesting = opts.pop("_nesting", None)
    root_key = opts.pop("_root_key", None)
    return list(create_resources(cfg, opts, nesting, root_key).values())


def paths(source: Any) -> Dict[str, str]:
    """How each resource of a dltc.rest_api source (or list of resources) is extracted:
    `"arrow"` (pages decoded in C straight to Arrow), `"dict: <reasons>"` (fetched by the
    engine, parsed to dicts that dlt normalizes: merge, incremental, processing_steps,
    max_table_nesting, custom paginators ...), `"dlt"` (a child of a dlt resource given as
    parent: dlt's own code)."""
    resources = source.resources.values() if isinstance(source, DltSource) else source
    out = {}
    for r in resources:
        gen = getattr(r._pipe, "gen", None)
        spec = getattr(gen, "dltc_spec", None) or getattr(getattr(gen, "__wrapped__", None), "dltc_spec", None)
        out[r.name] = spec.path_kind if spec is not None else "dlt"
    return out
