"""Shared pytest fixtures. Each helper owns its own section; keep sections separate."""

from __future__ import annotations

import pytest

# ---- replica (owner: replica server) ------------------------------------------------------
# replica_data: a small generated data set (session; do not mutate it: copy it, or generate
#   your own, before `advance`). replica: a replica serving it (session; plain HTTP, no
#   latency, no limits, no faults). For other options use dltc.replica.serve(...) directly.

REPLICA_DATA_ARGS = dict(players=20, months=3, seed=1, now="2024-06-15")


@pytest.fixture(scope="session")
def replica_data(tmp_path_factory):
    from dltc.replica import generate

    d = tmp_path_factory.mktemp("replica") / "data"
    generate(str(d), **REPLICA_DATA_ARGS)
    return d


@pytest.fixture(scope="session")
def replica(replica_data):
    from dltc.replica import serve

    with serve(replica_data) as api:
        yield api


# ---- api replica (owner: apireplica) -------------------------------------------------------
# api_replica_data: a small generic-API data set (session; do not mutate it: generate your
#   own before `advance`). api_replica: the generic API replica serving it (session; plain
#   HTTP, no latency, no limits, no faults, token_ttl 3600 s). api.base_url, api.auth (the
#   credentials), api.token_url, api.stats(); routes in docs/CONTRACTS.md section 7. For
#   other options use dltc.replica.api.serve(...) directly.

API_REPLICA_ARGS = dict(orgs=2, repos_per_org=2, issues_per_repo=30, comments_per_issue=3,
                        seed=1, now="2024-06-15T00:00:00Z")


@pytest.fixture(scope="session")
def api_replica_data(tmp_path_factory):
    from dltc.replica.api import generate

    d = tmp_path_factory.mktemp("api_replica") / "data"
    generate(str(d), **API_REPLICA_ARGS)
    return d


@pytest.fixture(scope="session")
def api_replica(api_replica_data):
    from dltc.replica.api import serve

    with serve(api_replica_data) as api:
        yield api
