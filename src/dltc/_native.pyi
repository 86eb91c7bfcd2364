"""Type stubs for dltc._native, the C extension. Each component adds its section."""

def version() -> str: ...
def curl_version() -> str: ...

class JSONDecodeError(ValueError):
    offset: int
    path: str

class FetchError(OSError): ...

# ---- engine ----

# ---- decoder ----
# Decoder: JSON documents -> Arrow tables (see CONTRACTS.md section 4 and csrc/decode.h).
#
# plan keys (all optional): "selector": str | None, "columns": [{"path": [str, ...],
# "type": "text"|"bigint"|"double"|"bool"|"timestamp"|"date"|"json", "nullable": bool,
# "json": bool}], "infer": bool (False: undeclared keys are skipped), "contract":
# {"columns": mode, "data_type": mode} with mode "evolve"|"freeze"|"discard_row"|
# "discard_value", "child_tables": bool, "dlt_ids": bool, "load_id": str | None,
# "batch_rows": int, "max_depth": int, "max_string": int, and two additions:
# "root_name": str | None and "table_names": {key tuple: str} -- the dlt table names
# used in the digest of child _dlt_id values, as dlt's relational normalizer makes them:
# digest128(f"{parent _dlt_id}_{table name}_{list idx}", 10). A child table missing from
# table_names uses root_name + "__" + "__".join(key) (raw keys: differs from dlt when a
# key needs normalising). Root _dlt_id: 10 random bytes, base64 without padding (dlt's
# generate_dlt_id).
#
# Column names in the Arrow schemas are raw key components joined by "\x1f"; variant
# columns (contract data_type=evolve, value of another type that does not coerce) add
# the component "v_<type>" (e.g. "white\x1frating\x1fv_text" -> white__rating__v_text);
# child tables of lists of scalars have a "value" column; system columns are
# "_dlt_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_load_id".

from typing import Any

TableKey = tuple[str, ...] | str  # () root, ("field", ...) child, "_dltc_rejects"

class ArrowStream:
    """One table's rows from Decoder.flush(). Each __arrow_c_stream__ call exports all
    rows again (the batches are shared, not copied), so consumers that export twice
    (DuckDB) work."""

    @property
    def key(self) -> TableKey: ...
    @property
    def num_rows(self) -> int: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

class Decoder:
    def __init__(self, plan: dict[str, Any]) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview, source_url: str = "") -> int:
        """Parse one complete JSON document; GIL released. Returns root rows added.
        Raises JSONDecodeError (.offset, .path, .code in "EPARSE", "ELIMIT",
        "ESCHEMA" for a freeze contract) and rolls the document back."""
    def flush(self) -> dict[TableKey, ArrowStream]:
        """Tables with rows -> streams; resets the row builders (schemas stay)."""
    def reset(self) -> None:
        """Back to the compiled plan as if new (inferred columns, child tables, variants,
        unflushed rows and rejects dropped; declared columns kept), but keeping memory:
        each column's buffers start at the capacity it needed before. Stats stay."""
    def stats(self) -> dict[str, int]:
        """documents, rows, child_rows, bytes, failed_documents, rejects_new_column,
        rejects_data_type, rejects_missing, rows_discarded, variants, batches,
        rejects_unrecorded (rejects beyond 65536 in one record: counted, not in the table)."""
