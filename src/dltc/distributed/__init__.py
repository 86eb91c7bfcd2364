"""dltc.distributed: one load across a Ray cluster. Items go to S shards by a stable hash;
each shard is a Ray task (with retries) running its own dlt pipeline into a per-shard
parquet dataset; one committer actor merges the committed shard loads into the final
destination on their keys, recording each in the `_dltc_ledger` table; a named limiter
actor leases each worker a share of every host's (or token's) global limit. Ray is an
optional dependency (`pip install dltc[ray]`); nothing here is imported by the rest of
dltc.
"""

from dltc.distributed.commit import LEDGER_TABLE, Committer
from dltc.distributed.limiter import Lease, LeaseTable
from dltc.distributed.run import ShardedRunError, run_sharded
from dltc.distributed.shards import partition, shard_name, shard_of

__all__ = ["LEDGER_TABLE", "Committer", "Lease", "LeaseTable", "ShardedRunError", "partition", "run_sharded",
           "shard_name", "shard_of"]
