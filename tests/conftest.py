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
