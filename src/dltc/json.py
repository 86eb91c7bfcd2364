"""read_json: JSON text to Arrow tables named and typed as dlt names and types them.

The parsing is the C decoder the fetch engine uses (``dltc._native.Decoder``); this
module only builds its plan, renames the raw "\\x1f"-joined field names it exports with
dlt's own naming convention, and assembles the tables. No value is touched in Python.

Naming decisions (documented, tested in tests/test_read_json.py):

- Final names come from ``dlt.common.normalizers.naming`` (snake_case by default, or the
  ``naming`` you pass, e.g. ``pipeline.default_schema.naming``) exactly as dlt's relational
  normalizer calls it: each raw key through ``normalize_path`` (an empty or blank key
  becomes ``_empty``), joined with ``shorten_fragments``; child tables are
  ``shorten_fragments(root, *keys)``; variant columns add ``v_<type>``.
- Declared ``columns`` may be keyed by a raw path (a tuple of raw keys, or a str with
  "\\x1f" separators), or by a dlt column name (``"white__aid"``), optionally with the
  raw path in the hint ``"x-dltc-path": ["white", "@id"]``. A dlt name without a path is
  first tried as the path ``name.split("__")``; if the data shows a raw field that
  normalizes to that name at another path, the mapping is learned (cached per process)
  and the document decoded again with it. Only the first document of a new shape pays
  for that second pass; pass raw paths to avoid it.
- Collisions (two raw fields that normalize to one name, e.g. ``fooBar`` and
  ``foo_bar``): dlt merges them into one column. We do the same when both columns have
  the same type and no row has a value in both (then dlt's result is unambiguous);
  otherwise ``NameCollisionError`` (a ``ValueError``) names both raw fields.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import pyarrow as pa
import pyarrow.compute as pc

from dltc import _native
from dltc._native import JSONDecodeError

if TYPE_CHECKING:
    from dlt.common.normalizers.naming import NamingConvention

__all__ = [
    "NameCollisionError",
    "read_json",
    "JSONDecodeError",
    "REJECTS_TABLE",
    "compile_selector",
    "records_plan",
    "select_fallback",
    "detected_selector",
]

from dltc._names import DLT_TYPES, MODES, REJECTS_TABLE, SEP  # their one home
EMPTY_KEY = "_empty"  # dlt's relational normalizer: DataItemNormalizer.EMPTY_KEY_IDENTIFIER
SYSTEM_COLUMNS = ("_dlt_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_load_id", "_dlt_root_id")
_VARIANT_PREFIX = "v_"
_ARROW_TYPES = {
    "text": pa.string(),
    "json": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}
_CACHE_CAP = 1 << 16  # entries in each learned cache; cleared when full
_SCHEMA_CACHE_CAP = 1 << 10  # raw schemas (name tuples) whose renaming is cached

Data = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
ColumnsArg = Union[Mapping[Any, Any], Sequence[Mapping[str, Any]], None]


class NameCollisionError(ValueError):
    """Two raw fields normalize to one column name and cannot be merged as dlt merges them."""


# ---------------------------------------------------------------- naming --------


class _Names:
    """Raw names -> dlt names for one naming convention, cached per raw name."""

    def __init__(self, naming: NamingConvention) -> None:
        self.naming = naming
        self.label = str(naming)  # part of the learned-mapping keys
        self._keys: dict[str, str] = {}
        self._columns: dict[str, str] = {}
        self._tables: dict[tuple[str, tuple[str, ...]], str] = {}
        self._schemas: dict[tuple[str, ...], list[str]] = {}
        self._lock = threading.Lock()

    def key(self, raw: str) -> str:
        """One raw key as dlt's relational normalizer names it (_flatten: norm_k)."""
        n = self._keys.get(raw)
        if n is None:
            n = self.naming.normalize_path(raw) if raw and not raw.isspace() else EMPTY_KEY
            self._put(self._keys, raw, n)
        return n

    def column(self, raw: str) -> str:
        """A raw "\\x1f"-joined column name (as the C side exports it) -> dlt column name."""
        n = self._columns.get(raw)
        if n is None:
            if raw in SYSTEM_COLUMNS:
                n = self.naming.normalize_identifier(raw)
            else:
                comps = raw.split(SEP)
                variant = None
                if len(comps) > 1 and comps[-1].startswith(_VARIANT_PREFIX) and comps[-1][2:] in DLT_TYPES:
                    variant = comps.pop()
                norm = [self.key(c) for c in comps]
                n = norm[0] if len(norm) == 1 else self.naming.shorten_fragments(*norm)
                if variant is not None:
                    # dlt: shorten_fragments(col_name, VARIANT_FIELD_FORMAT % py_type)
                    n = self.naming.shorten_fragments(n, variant)
            self._put(self._columns, raw, n)
        return n

    def columns(self, raw: list[str]) -> list[str] | None:
        """The dlt names of a table's raw column names (cached per schema), or None when
        two of them collide (the caller merges them)."""
        key = tuple(raw)
        n = self._schemas.get(key)
        if n is None:
            new = [self.column(r) for r in raw]
            n = new if len(set(new)) == len(new) else []
            self._put(self._schemas, key, n, _SCHEMA_CACHE_CAP)
        return n or None

    def root(self, table_name: str) -> str:
        return self.naming.normalize_table_identifier(table_name)

    def table(self, root: str, key: tuple[str, ...]) -> str:
        """Child table name: dlt's shorten_fragments(*parent_path, *ident_path)."""
        ck = (root, key)
        n = self._tables.get(ck)
        if n is None:
            n = self.naming.shorten_fragments(root, *(self._table_key(c) for c in key))
            self._put(self._tables, ck, n)
        return n

    def _table_key(self, raw: str) -> str:
        # lists: normalize_tables_path(k); the dict keys above them: normalize_path(k).
        # Both are the same function for dlt's naming conventions but for the empty key.
        if not raw or raw.isspace():
            return EMPTY_KEY
        return self.naming.normalize_tables_path(raw)

    def _put(self, d: dict[Any, Any], k: Any, v: Any, cap: int = _CACHE_CAP) -> None:
        with self._lock:
            if len(d) >= cap:
                d.clear()
            d[k] = v


_names_by_convention: dict[str, _Names] = {}
_default_naming: NamingConvention | None = None


def _names_for(naming: NamingConvention | None) -> _Names:
    global _default_naming
    if naming is None:
        if _default_naming is None:
            from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCase

            _default_naming = SnakeCase()
        naming = _default_naming
    key = f"{type(naming).__module__}.{type(naming).__qualname__}:{naming.max_length}"
    names = _names_by_convention.get(key)
    if names is None:
        names = _names_by_convention.setdefault(key, _Names(naming))
    return names


# ------------------------------------------------------------ plan ----------------

# Learned mappings, per (selector, naming key): dlt column name -> raw path, and the
# child-table keys seen (their dlt names go into the plan so child _dlt_id digests match).
_learned_paths: dict[tuple[Any, ...], tuple[str, ...]] = {}
_learned_child_keys: dict[tuple[Any, ...], set[tuple[str, ...]]] = {}
_learn_lock = threading.Lock()


class _Declared:
    """One declared column: dlt name (or None), raw path, and whether the path is known."""

    __slots__ = ("name", "path", "certain", "type", "nullable")

    def __init__(self, name: str | None, path: tuple[str, ...], certain: bool, type_: str, nullable: bool):
        self.name = name
        self.path = path
        self.certain = certain
        self.type = type_
        self.nullable = nullable


def _column_type(name: Any, hint: Any) -> tuple[str, bool, dict[str, Any]]:
    if isinstance(hint, str):
        hint = {"data_type": hint}
    if not isinstance(hint, Mapping):
        raise TypeError(f"column {name!r}: hint must be a dict like {{'data_type': 'bigint'}}, not {hint!r}")
    dt = hint.get("data_type", hint.get("type"))
    if dt is None:
        raise ValueError(f"column {name!r}: no data_type (one of {', '.join(DLT_TYPES)})")
    if dt not in DLT_TYPES:
        raise ValueError(f"column {name!r}: data_type {dt!r} is not supported (one of {', '.join(DLT_TYPES)})")
    return dt, bool(hint.get("nullable", True)), hint


def _declared_columns(columns: ColumnsArg, names: _Names, learn_key: tuple[Any, ...]) -> list[_Declared]:
    if columns is None:
        return []
    items: list[tuple[Any, Any]]
    if isinstance(columns, Mapping):
        items = list(columns.items())
    else:
        items = []
        for c in columns:
            if not isinstance(c, Mapping) or "name" not in c:
                raise TypeError(f"columns as a list must hold dicts with a 'name', got {c!r}")
            items.append((c["name"], c))
    out: list[_Declared] = []
    for key, hint in items:
        dt, nullable, h = _column_type(key, hint)
        raw_path = h.get("x-dltc-path")
        if isinstance(key, tuple):
            out.append(_Declared(None, tuple(key), True, dt, nullable))
        elif isinstance(key, str) and SEP in key:
            out.append(_Declared(None, tuple(key.split(SEP)), True, dt, nullable))
        elif raw_path is not None:
            out.append(_Declared(names.naming.normalize_path(key), tuple(raw_path), True, dt, nullable))
        elif isinstance(key, str):
            name = names.naming.normalize_path(key)
            learned = _learned_paths.get(learn_key + (name,))
            if learned is not None:
                out.append(_Declared(name, learned, True, dt, nullable))
            else:
                out.append(_Declared(name, tuple(key.split("__")), False, dt, nullable))
        else:
            raise TypeError(f"column key must be a str or a tuple of raw keys, not {key!r}")
    return out


def _contract(contract: Any) -> dict[str, str]:
    """dlt's schema_contract as the plan takes it: {"tables", "columns", "data_type"} modes.
    A str sets all three (as in dlt). "tables" governs new child tables (the root table is
    always taken as existing: its columns are the declared ones)."""
    if contract is None:
        return {"tables": "evolve", "columns": "evolve", "data_type": "evolve"}
    if isinstance(contract, str):
        if contract not in MODES:
            raise ValueError(f"contract mode {contract!r} is not one of {MODES}")
        return {"tables": contract, "columns": contract, "data_type": contract}
    if not isinstance(contract, Mapping):
        raise TypeError(f"contract must be a mode or a dict, not {contract!r}")
    unknown = set(contract) - {"tables", "columns", "data_type"}
    if unknown:
        raise ValueError(f"contract has unknown entities {sorted(unknown)}")
    out = {k: contract.get(k, "evolve") for k in ("tables", "columns", "data_type")}
    for k, v in out.items():
        if v not in MODES:
            raise ValueError(f"contract {k}={v!r} is not one of {MODES}")
    return out


def _load(data: Data) -> bytes | bytearray | memoryview:
    """bytes-like as is; a path (os.PathLike, or a str that cannot start a JSON text)
    is read; any other str is JSON text."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    if isinstance(data, os.PathLike):
        return Path(data).read_bytes()
    if isinstance(data, str):
        s = data.lstrip(" \t\r\n")
        if not s or s[0] in '{["-0123456789' or s.rstrip(" \t\r\n") in ("true", "false", "null"):
            # surrogatepass: a lone surrogate reaches the strict UTF-8 check in C
            return data.encode("utf-8", "surrogatepass")
        return Path(data).read_bytes()
    raise TypeError(f"data must be bytes, str or a path, not {type(data).__name__}")


# ------------------------------------------------------------ read_json ---------


def read_json(
    data: Data,
    columns: ColumnsArg = None,
    *,
    data_selector: str | None = None,
    contract: str | Mapping[str, str] | None = None,
    tables: bool = False,
    table_name: str = "root",
    child_tables: bool = True,
    dlt_ids: bool | None = None,
    load_id: str | None = None,
    naming: NamingConvention | None = None,
    source_url: str = "",
) -> pa.Table | dict[str, pa.Table]:
    """Decode one JSON document to Arrow, as dlt would normalize the same data.

    A top-level array gives one row per element, an object one row, a scalar one row in
    a ``value`` column; ``data_selector`` picks the records array under that key of a
    top-level object. ``columns`` declares types (dlt type names) and nullability;
    anything else is inferred as dlt infers it, subject to ``contract`` (dlt's
    schema_contract: a mode, or ``{"columns": mode, "data_type": mode}``).

    Returns the root table, or with ``tables=True`` a dict of every table by dlt name:
    the root (``table_name``), child tables (``root__field``) and ``_dltc_rejects`` when
    a contract discarded something. ``dlt_ids`` (default: ``tables``) adds ``_dlt_id``,
    and ``_dlt_parent_id``/``_dlt_list_idx`` to child tables. Raises
    ``dltc.JSONDecodeError`` (``.offset``, ``.path``) on malformed JSON and on a frozen
    contract, ``NameCollisionError`` when raw names collide irreconcilably.
    """
    buf = _load(data)
    names = _names_for(naming)
    mode = _contract(contract)
    if dlt_ids is None:
        dlt_ids = tables
    root = names.root(table_name)
    learn_key = (data_selector, names.label, root)

    for attempt in range(3):
        declared = _declared_columns(columns, names, learn_key)
        plan = _plan(declared, data_selector, mode, child_tables, dlt_ids, load_id, root, names, learn_key)
        dec = _decoder(plan)
        try:
            dec.feed(buf, source_url)
        except JSONDecodeError as e:
            # A frozen contract may have tripped on a raw field a declared dlt name stands
            # for: learn the raw paths with an evolving pass, then decode again.
            if getattr(e, "code", None) == "ESCHEMA" and attempt == 0 and any(not d.certain for d in declared):
                if _discover(buf, declared, data_selector, child_tables, root, names, learn_key):
                    continue
            raise
        raw = {k: _import(s) for k, s in dec.flush().items()}
        if attempt < 2 and _learn(raw, declared, plan, dlt_ids, root, names, learn_key):
            continue  # a mapping was learned: the plan changes, decode again
        return _assemble(raw, declared, tables, root, names)
    raise AssertionError("unreachable")  # pragma: no cover


# Decoders reused per thread when the C side can reset one to its compiled plan (a
# reset decoder keeps its capacity hints, so a document does not pay first-batch growth).
_POOL_CAP = 8  # decoders kept per thread
_pool = threading.local()
_CAN_RESET = hasattr(_native.Decoder, "reset")


def _decoder(plan: dict[str, Any]) -> Any:
    """A decoder for plan, as if new: from this thread's pool (reset) when possible."""
    if not _CAN_RESET:
        return _native.Decoder(plan)
    pool = getattr(_pool, "decoders", None)
    if pool is None:
        pool = _pool.decoders = {}
    key = repr(plan)
    dec = pool.get(key)
    if dec is None:
        if len(pool) >= _POOL_CAP:
            pool.pop(next(iter(pool)))
        dec = pool[key] = _native.Decoder(plan)
    else:
        dec.reset()
    return dec


def _plan(
    declared: list[_Declared],
    selector: str | None,
    mode: dict[str, str],
    child_tables: bool,
    dlt_ids: bool,
    load_id: str | None,
    root: str,
    names: _Names,
    learn_key: tuple[Any, ...],
) -> dict[str, Any]:
    cols = [
        {"path": list(d.path), "type": d.type, "nullable": d.nullable, "json": d.type == "json"} for d in declared
    ]
    plan: dict[str, Any] = {
        "selector": selector,
        "columns": cols,
        "infer": True,
        "contract": dict(mode),
        "child_tables": child_tables,
        "dlt_ids": dlt_ids,
        "load_id": load_id,
        "root_name": root,
    }
    if dlt_ids:
        keys = _learned_child_keys.get(learn_key)
        if keys:
            plan["table_names"] = {k: names.table(root, k) for k in keys}
    return plan


def _learn(
    streams: Mapping[Any, pa.Table],
    declared: list[_Declared],
    plan: dict[str, Any],
    dlt_ids: bool,
    root: str,
    names: _Names,
    learn_key: tuple[Any, ...],
) -> bool:
    """Record what this document taught (raw paths of declared names, child-table keys
    whose dlt names differ from the raw default); True if the plan must change."""
    changed = False
    uncertain = {d.name: d for d in declared if not d.certain}
    if uncertain and () in streams:
        for raw in streams[()].column_names:
            comps = tuple(raw.split(SEP))
            n = names.column(raw)
            d = uncertain.get(n)
            if d is not None and comps != d.path:
                with _learn_lock:
                    if len(_learned_paths) >= _CACHE_CAP:
                        _learned_paths.clear()
                    _learned_paths[learn_key + (n,)] = comps
                changed = True
    if dlt_ids:
        given = plan.get("table_names") or {}
        for k in streams:
            if isinstance(k, tuple) and k and k not in given:
                dlt_name = names.table(root, k)
                with _learn_lock:
                    _learned_child_keys.setdefault(learn_key, set()).add(k)
                if dlt_name != root + "__" + "__".join(k):
                    changed = True
    return changed


def _discover(
    buf: Any,
    declared: list[_Declared],
    selector: str | None,
    child_tables: bool,
    root: str,
    names: _Names,
    learn_key: tuple[Any, ...],
) -> bool:
    """Evolving pass that only reads the raw column names of the root table."""
    dec = _native.Decoder(
        {"selector": selector, "columns": [], "infer": True, "child_tables": child_tables, "dlt_ids": False}
    )
    dec.feed(buf)
    streams = dec.flush()
    if () not in streams:
        return False
    uncertain = {d.name: d for d in declared if not d.certain}
    learned = False
    for raw in _import(streams[()]).column_names:
        n = names.column(raw)
        if n in uncertain:
            with _learn_lock:
                _learned_paths[learn_key + (n,)] = tuple(raw.split(SEP))
            learned = True
    return learned


def _import(stream: Any) -> pa.Table:
    return pa.RecordBatchReader.from_stream(stream).read_all()


def _assemble(
    streams: Mapping[Any, pa.Table],
    declared: list[_Declared],
    tables: bool,
    root: str,
    names: _Names,
) -> pa.Table | dict[str, pa.Table]:
    root_t = _rename(streams[()], names) if () in streams else _empty(declared, names)
    if not tables:
        return root_t
    out: dict[str, pa.Table] = {root: root_t}
    for k in sorted((k for k in streams if isinstance(k, tuple) and k), key=lambda k: (len(k), k)):
        name = names.table(root, k)
        t = _rename(streams[k], names)
        if name in out:  # two raw keys (e.g. "fooBar", "foo_bar") are one dlt table
            t = _concat(out[name], t, name)
        out[name] = t
    if REJECTS_TABLE in streams:
        out[REJECTS_TABLE] = streams[REJECTS_TABLE]
    return out


def _concat(a: pa.Table, b: pa.Table, name: str) -> pa.Table:
    """Rows of two raw tables that dlt names alike, in one table (columns unified by name;
    a column with two types is a NameCollisionError)."""
    try:
        return pa.concat_tables([a, b], promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise NameCollisionError(f"two raw child tables normalize to table {name!r} with conflicting columns: {e}") from None


def _empty(declared: list[_Declared], names: _Names) -> pa.Table:
    fields = []
    for d in declared:
        n = d.name if d.name is not None else names.column(SEP.join(d.path))
        fields.append(pa.field(n, _ARROW_TYPES[d.type], nullable=d.nullable))
    return pa.schema(fields).empty_table()


def _rename(t: pa.Table, names: _Names) -> pa.Table:
    raw = t.schema.names
    new = names.columns(raw)
    if new is not None:
        return t.rename_columns(new)
    return _merge_collisions(t, raw, [names.column(r) for r in raw])


def _merge_collisions(t: pa.Table, raw: list[str], new: list[str]) -> pa.Table:
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(new):
        groups.setdefault(n, []).append(i)
    arrays = []
    out_names = []
    for n, idx in groups.items():
        if len(idx) == 1:
            arrays.append(t.column(idx[0]))
            out_names.append(n)
            continue
        cols = [t.column(i) for i in idx]
        shown = " and ".join(repr(raw[i].replace(SEP, ".")) for i in idx)
        if len({c.type for c in cols}) != 1:
            raise NameCollisionError(
                f"raw fields {shown} both normalize to column {n!r} with different types "
                f"({', '.join(str(c.type) for c in cols)})"
            )
        present = pc.add(*[pc.cast(pc.is_valid(c), pa.int8()) for c in cols[:2]])
        for c in cols[2:]:
            present = pc.add(present, pc.cast(pc.is_valid(c), pa.int8()))
        if pc.max(present).as_py() and pc.max(present).as_py() > 1:
            raise NameCollisionError(f"raw fields {shown} both normalize to column {n!r} and both have values in one row")
        arrays.append(pc.coalesce(*cols))
        out_names.append(n)
    return pa.table(arrays, names=out_names)


# ------------------------------------------------------------ records paths -----
#
# dlt's data_selector (a JSONPath) compiled into the decoder's plan["records_path"]:
# a list of steps, each a key or "*" (JSONPath's wildcard: every element of an array,
# every member value of an object). The decoder then selects the records as dlt's
# RESTClient.extract_response does (a single match unwrapped; see docs/CONTRACTS.md 4.6).


def compile_selector(data_selector: Any) -> list[str] | str | None:
    """dlt's ``data_selector`` as records path steps for the decoder.

    ``"data"``, ``"data.items"``, ``"$.data.items"``, ``"$"``, ``"results[*].items"``,
    ``"[*]"``, ``"$['data']"``, ``"@"`` ... -> ``["data"]``, ``["data", "items"]``, ``[]``,
    ``["results", "*", "items"]``, ``["*"]``. The string is parsed by dlt's own parser
    (``dlt.common.jsonpath.compile_path``; a compiled JSONPath is taken as is), and its tree
    is kept only when made of the root, ``@``, single field names and the wildcard.
    ``None`` or ``""`` (dlt detects the records) gives ``"auto"``. Anything else (filters,
    recursive descent ``..``, indexes, slices, unions, a field literally named ``*``, a
    string dlt cannot parse) gives ``None``: decode that body via :func:`select_fallback`.
    """
    if data_selector is None or (isinstance(data_selector, str) and not data_selector):
        return "auto"
    if isinstance(data_selector, str):
        return _compile_str(data_selector)
    steps = _steps(data_selector)
    return list(steps) if steps is not None else None


_selector_cache: dict[str, tuple[str, ...] | None] = {}


def _compile_str(s: str) -> list[str] | None:
    if s not in _selector_cache:
        from dlt.common import jsonpath

        try:
            steps = _steps(jsonpath.compile_path(s))
        except Exception:  # dlt raises on this selector: the fallback raises dlt's error
            steps = None
        if len(_selector_cache) >= _CACHE_CAP:
            _selector_cache.clear()
        _selector_cache[s] = steps
    steps = _selector_cache[s]
    return list(steps) if steps is not None else None


def _steps(node: Any) -> tuple[str, ...] | None:
    """Steps of a parsed jsonpath_ng tree, or None outside the subset."""
    from jsonpath_ng import jsonpath as jp

    if isinstance(node, (jp.Root, jp.This)):
        return ()
    if isinstance(node, jp.Wildcard):
        return ("*",)
    if type(node) is jp.Fields:
        if len(node.fields) != 1 or node.fields[0] == "*" or node.fields[0] == jp.auto_id_field:
            return None
        return (node.fields[0],)
    if type(node) is jp.Child:
        if isinstance(node.right, jp.Root):
            return None
        left, right = _steps(node.left), _steps(node.right)
        return None if left is None or right is None else left + right
    return None


def records_plan(data_selector: Any) -> dict[str, Any] | None:
    """The decoder plan entries for a dlt ``data_selector``: ``{"records_path": steps}``,
    or for ``None``/``""`` dlt's auto-detection ``{"records_path": "auto",
    "auto_record_keys": [...]}`` with the key names from dlt's detector
    (``RECORD_KEY_PATTERNS`` minus ``NON_RECORD_KEY_PATTERNS``). ``None`` when the selector
    is beyond the subset (use :func:`select_fallback`)."""
    steps = compile_selector(data_selector)
    if steps == "auto":
        from dlt.sources.helpers.rest_client import detector

        keys = sorted(detector.RECORD_KEY_PATTERNS - detector.NON_RECORD_KEY_PATTERNS)
        return {"records_path": "auto", "auto_record_keys": keys}
    if steps is None:
        return None
    return {"records_path": steps}


def detected_selector(path: Sequence[str]) -> str:
    """The data_selector dlt makes of the path its detector found (``Decoder.records_path()``
    after an ``"auto"`` document): ``"$"`` or the keys joined by ``"."``. dlt selects by this
    string, on the first page and on the pages after it in the same paginate() call, so pin
    ``compile_selector(detected_selector(p))``; when that is not ``p`` (a key with a ``.``,
    a space, ...), dlt's string means something else: use :func:`select_fallback` with it."""
    return ".".join(path) if path else "$"


_NO_DOCUMENT: Any = object()


class _Parsed:
    """The one thing dlt's extract_response asks of a response: .json()."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def json(self) -> Any:
        return self._value


def select_fallback(
    body: bytes | bytearray | memoryview | str, data_selector: Any, *, document: Any = _NO_DOCUMENT
) -> bytes:
    """The records dlt selects from ``body`` with a selector beyond the subset, as a JSON
    array document to feed a decoder whose plan has ``"records_path": []``.

    This is the one path that parses a body in Python: ``json.loads`` (or the ``document``
    the caller already parsed for its paginator), then dlt's own
    ``RESTClient.extract_response`` (``jsonpath.find_values``, the single-match unwrap,
    None -> no records, a single value -> one record), then ``json.dumps``. Raises what dlt
    raises for a selector it cannot parse."""
    import json

    from dlt.sources.helpers.rest_client.client import RESTClient

    if document is _NO_DOCUMENT:
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        document = json.loads(body)
    records = RESTClient.extract_response(None, _Parsed(document), data_selector)  # type: ignore[arg-type]
    return json.dumps(records, separators=(",", ":")).encode("ascii")
