"""The reference read_json is checked against: json.loads, then dlt's own relational
normalizer (flattening, child tables, ids), then dlt's own type inference and coercion
functions, then pyarrow.Table.from_pylist with the Arrow types dlt writes.

Only the loop that applies dlt's coercions row by row is written here (dlt 1.2x keeps it
inside the jsonl items normalizer, bound to a pipeline); every rule it applies is a dlt
function: autodetect_sc_type, py_type_to_sc_type, coerce_value, shorten_fragments.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from dlt.common.data_types.type_helpers import coerce_value, py_type_to_sc_type
from dlt.common.normalizers.json.helpers import get_nested_row_hash
from dlt.common.schema import Schema
from dlt.common.schema.utils import autodetect_sc_type
from dlt.common.time import normalize_timezone
from dlt.common.typing import VARIANT_FIELD_FORMAT

ARROW_TYPES = {
    "text": pa.string(),
    "json": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}
SYSTEM = {"_dlt_id": pa.string(), "_dlt_parent_id": pa.string(), "_dlt_list_idx": pa.int64(),
          "_dlt_load_id": pa.string()}


class CannotReference(Exception):
    """dlt itself would fail on this document (e.g. a second variant of a variant)."""


class Unloadable(Exception):
    """dlt's normalizer would crash or make a value no destination can hold (an int beyond
    int64 coerced from a double, an OSError/OverflowError out of a coercion): no reference."""


def records(doc: Any, selector: str | None = None) -> list[Any]:
    """Records of a document as read_json defines them."""
    if selector is not None:
        doc = doc[selector]
    if isinstance(doc, list):
        return doc
    return [doc]


def normalize(
    doc: Any,
    *,
    table_name: str = "root",
    selector: str | None = None,
    columns: dict[str, str] | None = None,
) -> dict[str, tuple[list[str], dict[str, str], list[dict[str, Any]]]]:
    """dlt's tables for a document: {table: (column order, column types, rows)}.
    ``columns``: declared dlt column name -> dlt type, for the root table."""
    schema = Schema("reference")
    naming = schema.naming
    detections = schema._type_detections
    tables: dict[str, tuple[list[str], dict[str, str], list[dict[str, Any]]]] = {}
    root = naming.normalize_table_identifier(table_name)
    if columns:
        tables[root] = (list(columns), dict(columns), [])

    def infer(v: Any) -> str:
        return autodetect_sc_type(detections, type(v), v) or py_type_to_sc_type(type(v))

    for item in records(doc, selector):
        for (table, _parent, _ident), row in schema.normalize_data_item(item, "load", table_name):
            order, types, rows = tables.setdefault(table, ([], {}, []))
            out: dict[str, Any] = {}
            for col, v in row.items():
                if v is None:
                    if col not in types and col not in order:
                        order.append(col)  # null-only so far: dlt creates no column for it
                    continue
                py_t = py_type_to_sc_type(type(v))
                name, is_variant = col, False
                while True:
                    if name not in types:
                        types[name] = infer(v)  # dlt: _infer_column_type
                        if name not in order:
                            order.append(name)
                    try:
                        nv = coerce_value(types[name], py_t, v)
                        break
                    except (OSError, OverflowError) as e:  # dlt catches neither
                        raise Unloadable(f"{table}.{name}: {v!r} into {types[name]}: {e}")
                    except (ValueError, SyntaxError):
                        if is_variant:
                            raise CannotReference(f"{table}.{name}: {v!r} into {types[name]}")
                        name = naming.shorten_fragments(col, VARIANT_FIELD_FORMAT % py_t)
                        is_variant = True
                if types[name] == "bigint" and not -(2**63) <= nv < 2**63:
                    # dlt coerces e.g. 9.3e18 to an int no destination column holds
                    raise Unloadable(f"{table}.{name}: {v!r} beyond int64")
                if types[name] == "timestamp":
                    nv = normalize_timezone(nv, True)  # dlt: timezone hint defaults to True
                elif types[name] == "json":
                    nv = json.dumps(nv)
                out[name] = nv
            rows.append(out)
    return tables


def to_arrow(
    tables: dict[str, tuple[list[str], dict[str, str], list[dict[str, Any]]]],
    *,
    drop_null_only: bool = True,
) -> dict[str, pa.Table]:
    """The reference tables as Arrow (from_pylist) with the types dlt would give.
    Columns that never had a value have no type in dlt and are dropped."""
    out = {}
    for table, (order, types, rows) in tables.items():
        fields = []
        for c in order:
            if c in SYSTEM:
                fields.append(pa.field(c, SYSTEM[c]))
            elif c in types:
                fields.append(pa.field(c, ARROW_TYPES[types[c]]))
            elif not drop_null_only:
                fields.append(pa.field(c, pa.null()))
        schema = pa.schema(fields)
        out[table] = pa.Table.from_pylist([{f.name: r.get(f.name) for f in fields} for r in rows], schema=schema)
    return out


def reference(doc: Any, **kw: Any) -> dict[str, pa.Table]:
    return to_arrow(normalize(doc, **kw))


def relink_ids(ref: dict[str, pa.Table], actual: dict[str, pa.Table], root: str) -> dict[str, pa.Table]:
    """Replace the reference's random root _dlt_id values by the actual ones (by row), and
    recompute child ids as dlt does (digest of parent id, table name, list index), so
    tables with ids compare exactly."""
    mapping: dict[str, str] = {}
    out = dict(ref)
    if root in ref and "_dlt_id" in ref[root].column_names:
        r_ids = ref[root].column("_dlt_id").to_pylist()
        a_ids = actual[root].column("_dlt_id").to_pylist() if root in actual else []
        if len(r_ids) == len(a_ids):
            mapping.update(zip(r_ids, a_ids))
            out[root] = _set(ref[root], "_dlt_id", a_ids)
    for name in sorted((n for n in ref if n != root), key=lambda n: n.count("__")):
        t = ref[name]
        if "_dlt_parent_id" not in t.column_names:
            continue
        parents = [mapping.get(p, p) for p in t.column("_dlt_parent_id").to_pylist()]
        idx = t.column("_dlt_list_idx").to_pylist()
        new_ids = [get_nested_row_hash(p, name, i) for p, i in zip(parents, idx)]
        mapping.update(zip(t.column("_dlt_id").to_pylist(), new_ids))
        t = _set(t, "_dlt_parent_id", parents)
        out[name] = _set(t, "_dlt_id", new_ids)
    return out


def _set(t: pa.Table, col: str, values: list[Any]) -> pa.Table:
    i = t.column_names.index(col)
    return t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))
