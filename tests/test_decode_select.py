"""Records paths, dlt's auto-detection, the skeleton and row captures of the decoder,
cross-checked against dlt itself: the records dltc selects equal what dlt's
RESTClient.extract_response returns (jsonpath.find_values, then the single-match unwrap)
on json.loads of the same document, and "auto" picks the path of dlt's
find_response_page_data. Generated nested documents (hypothesis) and hand cases."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from dlt.sources.helpers.rest_client import detector
from dlt.sources.helpers.rest_client.client import RESTClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dltc import _native
from dltc.json import JSONDecodeError, compile_selector, detected_selector, records_plan, select_fallback

ASAN = bool(os.environ.get("DLTC_EXPECT_ASAN"))
# each example is one small decoder and one document: budget ~15 s release, ~30 s ASan
HSET = settings(
    max_examples=25 if ASAN else 100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _Parsed:
    def __init__(self, v: Any) -> None:
        self.v = v

    def json(self) -> Any:
        return self.v


def dlt_records(doc: Any, selector: str) -> list[Any]:
    """What dlt's rest client yields as the page's records."""
    return RESTClient.extract_response(None, _Parsed(doc), selector)  # type: ignore[arg-type]


def dltc_select(body: bytes, plan: dict[str, Any]) -> tuple[list[Any], Any]:
    """The records the decoder takes (captured whole per root record) and the decoder."""
    d = _native.Decoder({"dlt_ids": False, "infer": False, "row_captures": [[]], "skeleton": True, **plan})
    rows = d.feed(body)
    vals = [v for (v,) in d.row_values()]
    assert rows == len(vals)
    return vals, d


def same_records(ours: list[Any], theirs: list[Any]) -> bool:
    """A captured object/array is its JSON text; scalars are Python values."""
    if len(ours) != len(theirs):
        return False
    for o, t in zip(ours, theirs):
        if isinstance(t, (dict, list)):
            if not isinstance(o, str) or json.loads(o) != t:
                return False
        elif type(o) is not type(t) or o != t:
            return False
    return True


def skeleton_ref(v: Any, steps: list[str], level: int = 0) -> Any:
    """The document with every list on the records path where the path ends replaced by []."""
    if level == len(steps):
        return [] if isinstance(v, list) else v
    s = steps[level]
    if s == "*" and isinstance(v, list):
        return [skeleton_ref(e, steps, level + 1) for e in v]
    if isinstance(v, dict):
        return {k: (skeleton_ref(x, steps, level + 1) if s in ("*", k) else x) for k, x in v.items()}
    return v


def replace_at(v: Any, path: list[str]) -> Any:
    if not path:
        return [] if isinstance(v, list) else v
    return {k: (replace_at(x, path[1:]) if k == path[0] else x) for k, x in v.items()}


def selector_of(steps: list[str]) -> str:
    """A dlt data_selector for generated steps (keys are plain identifiers)."""
    out = "$"
    for s in steps:
        out += "[*]" if s == "*" else "." + s
    return out


# ---------------------------------------------------------------- strategies --------

KEYS = st.sampled_from(["data", "items", "results", "meta", "a", "b", "next", "rows", "links", "value"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
STEPS = st.lists(st.one_of(KEYS, st.just("*")), max_size=4)


# ---------------------------------------------------------------- compile_selector --


@pytest.mark.parametrize(
    "selector, steps",
    [
        ("data", ["data"]),
        ("data.items", ["data", "items"]),
        ("$.data.items", ["data", "items"]),
        ("$", []),
        ("@", []),
        ("results[*].items", ["results", "*", "items"]),
        ("[*]", ["*"]),
        ("$[*]", ["*"]),
        ("$['data']", ["data"]),
        ('$["data"].items', ["data", "items"]),
        ("data.*", ["data", "*"]),
        ("'a.b'", ["a.b"]),
        (None, "auto"),
        ("", "auto"),
        ("$..items", None),
        ("data[?(@.a > 1)]", None),
        ("data[0]", None),
        ("data[1:3]", None),
        ("$['a','b']", None),
        ("'*'", None),
        ("data.$", None),
        ("data[", None),
    ],
)
def test_compile_selector(selector: str | None, steps: Any) -> None:
    assert compile_selector(selector) == steps


def test_compile_selector_takes_compiled_jsonpath() -> None:
    from dlt.common import jsonpath

    assert compile_selector(jsonpath.compile_path("$.data[*].x")) == ["data", "*", "x"]
    assert compile_selector(jsonpath.compile_path("$..x")) is None


def test_records_plan_uses_dlt_detector_keys() -> None:
    plan = records_plan(None)
    assert plan is not None and plan["records_path"] == "auto"
    assert set(plan["auto_record_keys"]) == detector.RECORD_KEY_PATTERNS - detector.NON_RECORD_KEY_PATTERNS
    assert records_plan("data.items") == {"records_path": ["data", "items"]}
    assert records_plan("$..x") is None


# ---------------------------------------------------------------- records paths -----

HAND = [
    ({"data": [{"a": 1}, {"a": 2}], "meta": {"next": "u"}}, "data"),
    ({"data": {"items": [{"a": 1}]}, "next": None}, "data.items"),
    ({"data": {"a": 1}}, "data"),  # a single object: one record
    ({"data": 5}, "data"),  # a scalar: one record
    ({"data": None}, "data"),  # null: no records
    ({"x": 1}, "data"),  # absent: no records
    ([1, 2], "data"),  # a key on a list: no match
    ([{"a": 1}], "$"),
    ({"a": 1}, "$"),
    (None, "$"),
    ([], "$"),
    ({"r": [{"items": [1, 2]}, {"items": [3]}]}, "r[*].items"),  # two matches: two list records
    ({"r": [{"items": [1, 2]}]}, "r[*].items"),  # one match: unwrapped
    ({"r": [{"items": None}, {"items": [3]}]}, "r[*].items"),  # a null first match, then one
    ({"r": [{"items": []}, {"items": [3]}]}, "r[*].items"),
    ({"r": [{"items": [1]}, {"x": 1}]}, "r[*].items"),
    ([[1, 2]], "[*]"),  # one element that is a list: its elements
    ([[1, 2], [3]], "[*]"),
    ([None], "[*]"),
    ({"a": {"x": 1}, "b": [2]}, "$.*"),  # the wildcard on an object: member values
    ({"a": {"b": {"c": [1, 2]}}}, "a.*.c"),
    ({"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": [{"c": 3}]}]}, "a[*].b[*].c"),
]


@pytest.mark.parametrize("doc, selector", HAND)
def test_records_equal_dlt(doc: Any, selector: str) -> None:
    steps = compile_selector(selector)
    assert isinstance(steps, list)
    ours, d = dltc_select(json.dumps(doc).encode(), {"records_path": steps})
    assert same_records(ours, dlt_records(doc, selector))
    assert d.records_path() == steps
    assert json.loads(d.skeleton()) == skeleton_ref(doc, steps)


@HSET
@given(doc=DOCS, steps=STEPS)
def test_generated_records_equal_dlt(doc: Any, steps: list[str]) -> None:
    ours, d = dltc_select(json.dumps(doc).encode(), {"records_path": steps})
    assert same_records(ours, dlt_records(doc, selector_of(steps)))
    assert json.loads(d.skeleton()) == skeleton_ref(doc, steps)


def test_selector_keeps_read_json_rules() -> None:
    d = _native.Decoder({"selector": "games", "dlt_ids": False, "skeleton": True})
    assert d.feed(b'{"games": [{"a": 1}, {"a": 2}], "x": {"y": [1]}}') == 2
    assert d.skeleton() == '{"games":[],"x":{"y":[1]}}'
    assert d.records_path() == ["games"]
    with pytest.raises(JSONDecodeError, match="expected an object holding"):
        d.feed(b"[1]")
    d = _native.Decoder({"dlt_ids": False, "skeleton": True})
    assert d.feed(b"null") == 1  # the document itself: a null is one row (read_json)
    assert d.feed(b' [ {"a" : 1} ] ') == 1
    assert d.skeleton() == "[]" and d.records_path() == []


def test_plan_errors() -> None:
    with pytest.raises(ValueError, match="both"):
        _native.Decoder({"selector": "a", "records_path": ["a"]})
    with pytest.raises(ValueError, match="auto"):
        _native.Decoder({"records_path": "data"})
    with pytest.raises(TypeError):
        _native.Decoder({"records_path": [1]})
    with pytest.raises(ValueError):
        _native.Decoder({"records_path": ["a"] * 65})
    with pytest.raises(ValueError, match="json column"):
        _native.Decoder({"columns": [{"path": ["u"], "type": "json"}], "row_captures": [["u", "id"]]})


def test_errors_name_the_path_and_roll_back() -> None:
    d = _native.Decoder({"records_path": ["r", "*", "items"], "row_captures": [["a"]], "skeleton": True})
    with pytest.raises(JSONDecodeError) as e:
        d.feed(b'{"r": [{"items": [{"a": 1}]}, {"items": [{"a": tru}]}]}')
    assert e.value.path == "$.r[1].items[0].a" and e.value.code == "EPARSE"
    assert d.row_values() == [] and d.records_path() is None
    with pytest.raises(ValueError, match="last feed failed"):
        d.skeleton()
    assert d.flush() == {}
    assert d.feed(b'{"r": [{"items": [{"a": 7}]}]}') == 1
    assert d.row_values() == [(7,)]


# ---------------------------------------------------------------- auto-detection ----


def dlt_auto(doc: Any) -> tuple[list[str], list[Any]]:
    path, _ = detector.find_response_page_data(doc)
    steps = [] if path == ("$",) else list(path)
    selector = RESTClient.detect_data_selector(None, _Parsed(doc))  # type: ignore[arg-type]
    return steps, dlt_records(doc, selector)


AUTO_HAND = [
    {"data": [1, 2], "meta": {"total": 2}},
    {"meta": {"tags": ["x"]}, "results": [{"a": 1}]},  # a record key wins over an earlier list
    {"meta": {"tags": ["x"]}, "other": [{"a": 1}]},  # no record key: the first list
    {"a": {"b": {"items": [1]}}, "c": [2]},  # depth first, in document order
    {"a": {"b": {"c": {"items": [1]}}}},  # four keys down: not looked at, the whole document
    {"a": 1, "b": {"c": 2}},
    [{"a": 1}, {"a": 2}],
    None,
    "text",
    {"links": [1], "data": {"rows": [{"x": 1}, {"x": 2}]}},
    {"errors": [], "items": []},
]


@pytest.mark.parametrize("doc", AUTO_HAND)
def test_auto_equals_dlt(doc: Any) -> None:
    plan = records_plan(None)
    assert plan is not None
    ours, d = dltc_select(json.dumps(doc).encode(), plan)
    steps, theirs = dlt_auto(doc)
    assert d.records_path() == steps
    assert same_records(ours, theirs)
    assert json.loads(d.skeleton()) == (replace_at(doc, steps) if isinstance(doc, dict) else skeleton_ref(doc, []))


@HSET
@given(doc=st.dictionaries(KEYS, DOCS, max_size=6))
def test_generated_auto_equals_dlt(doc: dict[str, Any]) -> None:
    plan = records_plan(None)
    assert plan is not None
    ours, d = dltc_select(json.dumps(doc).encode(), plan)
    steps, theirs = dlt_auto(doc)
    assert d.records_path() == steps
    assert compile_selector(detected_selector(steps)) == steps  # plain keys: dlt's string means the path
    assert same_records(ours, theirs)
    assert json.loads(d.skeleton()) == replace_at(doc, steps)


def test_auto_pins_like_dlt() -> None:
    """dlt detects on the first page of a paginate() call and keeps that selector."""
    d = _native.Decoder({**records_plan(None), "dlt_ids": False, "row_captures": [["id"]]})
    d.feed(b'{"meta": {"n": [1]}, "data": [{"id": 1}]}')
    path = d.records_path()
    assert path == ["data"]
    d.set_records_path(compile_selector(detected_selector(path)))
    assert d.records_path() == ["data"]  # still the last document's
    assert d.row_values() == [(1,)]
    d.feed(b'{"data": [{"id": 2}], "items": [{"id": 3}]}')
    assert d.row_values() == [(2,)] and d.records_path() == ["data"]
    d.set_records_path("auto")
    d.feed(b'{"other": [{"id": 4}]}')
    assert d.records_path() == ["other"] and d.row_values() == [(4,)]


def test_auto_dotted_key_falls_back_as_dlt_does() -> None:
    doc = {"a.b": [{"x": 1}]}
    d = _native.Decoder({**records_plan(None), "dlt_ids": False})
    d.feed(json.dumps(doc).encode())
    path = d.records_path()
    assert path == ["a.b"]
    sel = detected_selector(path)
    assert compile_selector(sel) != path  # dlt's "a.b" means a -> b: nothing here
    body = select_fallback(json.dumps(doc).encode(), sel)
    ours, _ = dltc_select(body, {"records_path": []})
    assert same_records(ours, dlt_records(doc, sel))


# ---------------------------------------------------------------- skeleton ---------


def test_skeleton_keeps_everything_but_records() -> None:
    body = b'{ "data" : [ {"id": 1, "s": "a b"} ], "next": "http://x/?a=1 2", "meta": {"total": 10, "has_more": true}}'
    d = _native.Decoder({"records_path": ["data"], "skeleton": True})
    d.feed(body)
    assert d.skeleton() == '{"data":[],"next":"http://x/?a=1 2","meta":{"total":10,"has_more":true}}'


def test_skeleton_cap() -> None:
    d = _native.Decoder({"records_path": ["data"], "skeleton": 32})
    big = json.dumps({"data": [{"x": "y" * 1000}], "meta": {"m": "z" * 40}}).encode()
    assert d.feed(big) == 1  # the records are fine; only the skeleton is over its cap
    with pytest.raises(JSONDecodeError) as e:
        d.skeleton()
    assert e.value.code == "ELIMIT" and e.value.path == "$.meta"  # the value that did not fit
    d.feed(b'{"data": [], "next": 1}')
    assert d.skeleton() == '{"data":[],"next":1}'
    with pytest.raises(ValueError, match="no skeleton"):
        _native.Decoder({}).skeleton()


# ---------------------------------------------------------------- row captures -----


def test_row_values_types() -> None:
    d = _native.Decoder(
        {
            "records_path": ["data"],
            "row_captures": [["id"], ["user", "name"], ["tags"], ["n"], ["missing"]],
            "infer": False,  # the ids' types differ: captures do not depend on columns
        }
    )
    d.feed(
        b'{"data": [{"id": 1, "user": {"name": "\\u00e9\\n"}, "tags": [1, {"a": 2}], "n": 1.5},'
        b' {"id": 123456789012345678901234, "user": null, "tags": {"x" : null}, "n": true},'
        b' {"id": "x", "n": -0.0, "user": {"name": false}}, 7]}'
    )
    assert d.row_values() == [
        (1, "é\n", '[1,{"a":2}]', 1.5, None),
        (123456789012345678901234, None, '{"x":null}', True, None),
        ("x", False, None, -0.0, None),
        (None, None, None, None, None),  # a record that is not an object
    ]


def test_row_values_include_discarded_rows() -> None:
    """dlt resolves children from parent records before normalizing, so a record a contract
    drops still gives its row of values."""
    d = _native.Decoder(
        {
            "columns": [{"path": ["id"], "type": "bigint", "nullable": False}],
            "contract": {"columns": "evolve", "data_type": "discard_row", "tables": "evolve"},
            "row_captures": [["id"]],
            "records_path": [],
            "dlt_ids": False,
        }
    )
    assert d.feed(b'[{"id": 1}, {"id": "x"}, {"id": 3}]') == 2
    assert d.row_values() == [(1,), ("x",), (3,)]


@HSET
@given(records=st.lists(st.dictionaries(KEYS, DOCS, max_size=4), max_size=5))
def test_generated_captures_equal_lookup(records: list[dict[str, Any]]) -> None:
    paths = [["a"], ["data", "b"], ["meta", "items", "next"], []]
    d = _native.Decoder({"records_path": ["data"], "row_captures": paths, "infer": False})
    d.feed(json.dumps({"data": records}).encode())

    def look(r: Any, p: list[str]) -> Any:
        for k in p:
            if not isinstance(r, dict) or k not in r:
                return None
            r = r[k]
        return r

    want = [tuple(look(r, p) for p in paths) for r in records]
    got = d.row_values()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert same_records(list(g), list(w))


# ---------------------------------------------------------------- fallback ---------


@pytest.mark.parametrize(
    "doc, selector",
    [
        ({"data": [{"a": 1}, {"a": [2]}]}, "$..a"),
        ({"data": [{"a": 1}, {"a": 3}]}, "data[?(@.a > 1)]"),
        ({"data": [[1, 2], [3]]}, "data[0]"),
        ({"data": [1, 2, 3]}, "data[1:]"),
        ({"a": [1], "b": [2]}, "$['a','b']"),
        ({"a": None}, "$..a"),
    ],
)
def test_select_fallback_equals_dlt(doc: Any, selector: str) -> None:
    assert compile_selector(selector) is None
    body = json.dumps(doc).encode()
    ours, _ = dltc_select(select_fallback(body, selector), {"records_path": []})
    assert same_records(ours, dlt_records(doc, selector))
    # the caller that parsed the body for its paginator passes the document
    assert select_fallback(body, selector, document=json.loads(body)) == select_fallback(body, selector)


def test_select_fallback_raises_dlts_error() -> None:
    from jsonpath_ng.exceptions import JsonPathParserError

    assert compile_selector("data[") is None
    with pytest.raises(JsonPathParserError):
        select_fallback(b'{"data": []}', "data[")
