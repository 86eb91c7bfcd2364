"""Conformance of dltc.read_json with JSONTestSuite's test_parsing files (read in place
from ../shared/testdata/json-test-suite relative to the repo root; never copied):
every y_ file is accepted, every n_ file rejected with dltc.JSONDecodeError (offset in
range, a JSON path), and each i_ file's decision, recorded below, is held."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import dltc

ROOT = Path(__file__).resolve().parent.parent
SUITE = (ROOT / ".." / "shared" / "testdata" / "json-test-suite" / "test_parsing").resolve()
FILES = sorted(p.name for p in SUITE.glob("*.json")) if SUITE.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"JSONTestSuite not found at {SUITE}")

# Decisions for implementation-defined inputs (shared with the C tests, test_decode.c):
# - numbers beyond int64 become float64 (as json.loads + dlt would give for a float),
#   beyond double range become +-inf, below it +-0.0: "accept" (value checked = float(text));
# - 500 nested arrays: within the depth cap (1024): "accept";
# - anything that is not valid UTF-8 (lone/inverted surrogate escapes, invalid or
#   overlong sequences, ISO-8859-1, UTF-16 with or without BOM, a UTF-8 BOM): "reject",
#   because the bytes could not be stored in an Arrow utf8 column losslessly.
I_DECISIONS = {
    "i_number_double_huge_neg_exp.json": "accept",
    "i_number_huge_exp.json": "accept",
    "i_number_neg_int_huge_exp.json": "accept",
    "i_number_pos_double_huge_exp.json": "accept",
    "i_number_real_neg_overflow.json": "accept",
    "i_number_real_pos_overflow.json": "accept",
    "i_number_real_underflow.json": "accept",
    "i_number_too_big_neg_int.json": "accept",
    "i_number_too_big_pos_int.json": "accept",
    "i_number_very_big_negative_int.json": "accept",
    "i_object_key_lone_2nd_surrogate.json": "reject",
    "i_string_1st_surrogate_but_2nd_missing.json": "reject",
    "i_string_1st_valid_surrogate_2nd_invalid.json": "reject",
    "i_string_UTF-16LE_with_BOM.json": "reject",
    "i_string_UTF-8_invalid_sequence.json": "reject",
    "i_string_UTF8_surrogate_U+D800.json": "reject",
    "i_string_incomplete_surrogate_and_escape_valid.json": "reject",
    "i_string_incomplete_surrogate_pair.json": "reject",
    "i_string_incomplete_surrogates_escape_valid.json": "reject",
    "i_string_invalid_lonely_surrogate.json": "reject",
    "i_string_invalid_surrogate.json": "reject",
    "i_string_invalid_utf-8.json": "reject",
    "i_string_inverted_surrogates_U+1D11E.json": "reject",
    "i_string_iso_latin_1.json": "reject",
    "i_string_lone_second_surrogate.json": "reject",
    "i_string_lone_utf8_continuation_byte.json": "reject",
    "i_string_not_in_unicode_range.json": "reject",
    "i_string_overlong_sequence_2_bytes.json": "reject",
    "i_string_overlong_sequence_6_bytes.json": "reject",
    "i_string_overlong_sequence_6_bytes_null.json": "reject",
    "i_string_truncated-utf-8.json": "reject",
    "i_string_utf16BE_no_BOM.json": "reject",
    "i_string_utf16LE_no_BOM.json": "reject",
    "i_structure_500_nested_arrays.json": "accept",
    "i_structure_UTF-8_BOM_empty_object.json": "reject",
}


def _read(name: str) -> bytes:
    return (SUITE / name).read_bytes()


def _reject(data: bytes) -> dltc.JSONDecodeError:
    with pytest.raises(dltc.JSONDecodeError) as ei:
        dltc.read_json(data, tables=True)
    e = ei.value
    assert isinstance(e, ValueError)
    assert isinstance(e.offset, int) and 0 <= e.offset <= len(data), (e.offset, len(data))
    assert isinstance(e.path, str) and e.path.startswith("$"), e.path
    return e


@pytest.mark.parametrize("name", [n for n in FILES if n.startswith("y_")])
def test_accepts_y(name):
    data = _read(name)
    out = dltc.read_json(data, tables=True)
    doc = json.loads(data)
    n_records = len(doc) if isinstance(doc, list) else 1
    assert out["root"].num_rows == n_records
    for t in out.values():
        t.validate(full=True)


@pytest.mark.parametrize("name", [n for n in FILES if n.startswith("n_")])
def test_rejects_n(name):
    _reject(_read(name))


def test_every_i_file_has_a_decision():
    assert sorted(n for n in FILES if n.startswith("i_")) == sorted(I_DECISIONS)


@pytest.mark.parametrize("name", sorted(I_DECISIONS))
def test_i_decision_held(name):
    if name not in FILES:
        pytest.skip("file not in this copy of the suite")
    data = _read(name)
    if I_DECISIONS[name] == "reject":
        _reject(data)
        return
    out = dltc.read_json(data, tables=True)
    for t in out.values():
        t.validate(full=True)
    if name.startswith("i_number_"):
        # a one-number array: the value is float(text), correctly rounded (json.loads agrees)
        text = data.decode().strip()[1:-1].strip()
        want = float(text)
        got = out["root"].column("value").to_pylist()
        assert len(got) == 1
        assert out["root"].schema.field("value").type == "double"
        g = got[0]
        assert g == want or (math.isnan(want) and math.isnan(g))
        assert math.copysign(1, g) == math.copysign(1, want)  # -0.0 stays negative
