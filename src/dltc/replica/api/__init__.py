"""dltc.replica.api: a local, deterministic, seeded generic REST API (an issue tracker)
for tests and benchmarks; the route table is in docs/CONTRACTS.md section 7.

    generate(out_dir, orgs=2, repos_per_org=2, issues_per_repo=30, comments_per_issue=3,
             seed=0, now="2024-06-15T00:00:00Z", page_size=100, comment_page_size=10,
             body_scale=1.0, locked_rate=0.1, fast=FAST) -> meta
    advance(data_dir, new_issues=5, updated_issues=5, seed=None, minutes=60)
        -> {"added": [ids], "updated": [ids], "now": ts}
    load_records(data_dir) -> {"orgs", "repos", "issues", "comments"}
    with serve(data_dir, port=0, tls=False, latency_ms=0, jitter_ms=0, max_parallel=None,
               retry_after=None, faults=None, workers=2, token_ttl=3600, auth=None) as api:
        api.base_url, api.ca_file, api.auth, api.token_url, api.stats(), api.reload(),
        api.revoke_tokens(), api.fault_counts(), api.pids()

The CLI is `python -m dltc.replica api generate|serve|advance` (see dltc/replica/__main__.py).
"""

from dltc.replica.api.app import DEFAULT_AUTH
from dltc.replica.api.data import FAST, DataError, advance, generate, load_meta, load_records
from dltc.replica.api.server import ApiReplica, serve

__all__ = ["DEFAULT_AUTH", "FAST", "ApiReplica", "DataError", "advance", "generate", "load_meta",
           "load_records", "serve"]
