"""`python -m dltc.bench all --scale smoke`: every file is written, every figure is a finite
number, the page and the headline are generated from the figures. No speed is asserted."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dltc.bench._stats import summarize_runs

ROOT = Path(__file__).resolve().parents[1]
PNGS = ("fetch_latency.png", "goodput_limit.png", "decode_mb_s.png", "rss_archives.png",
        "storm_window.png")
SECTIONS = ("replica", "fetch", "decode", "chess", "rest_api", "chaos")

pytestmark = [
    # a benchmark smoke: its C paths have their own tests, and under ASan it would add minutes
    pytest.mark.skipif(bool(os.environ.get("DLTC_EXPECT_ASAN")), reason="benchmark smoke, not under ASan"),
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed"),
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("bench") / "out"
    # the timeout only keeps a hung run from blocking the suite; speed is not asserted;
    # --jobs 2: sections side by side (figures disturbed, fine for a smoke run)
    p = subprocess.run([sys.executable, "-m", "dltc.bench", "all", "--scale", "smoke",
                        "--jobs", "2", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text()), p


def test_every_file_is_written(smoke):
    out, results, _ = smoke
    for name in ("results.json", "raw.json", "README.md", "headline.md", *PNGS):
        f = out / name
        assert f.is_file() and f.stat().st_size > 0, name
    for name in PNGS:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 10_000, name      # a drawn plot, not an empty canvas
    page = (out / "README.md").read_text()
    for name in PNGS:
        assert f"]({name})" in page, f"{name} not linked from the page"
    json.loads((out / "raw.json").read_text())


def test_every_figure_is_a_finite_number(smoke):
    _, results, _ = smoke
    assert results["errors"] == {}
    figs = results["figures"]
    assert len(figs) > 100
    for key, f in figs.items():
        for k in ("median", "min", "max"):
            assert isinstance(f[k], (int, float)) and math.isfinite(f[k]), (key, f)
        assert f["min"] <= f["median"] <= f["max"], (key, f)
        assert f["runs"] == 1, key     # smoke: one run of everything
    for key, v in results["ratios"].items():
        assert math.isfinite(v) and v > 0, key
    # every section produced figures, and the comparisons the page is about are there
    for s in SECTIONS:
        assert any(k.startswith(s + ".") for k in figs), s
    for k in ("chess.scenarios.2.dltc.wall", "chess.scenarios.2.reference.wall",
              "chess.scenarios.2.rest_api.wall", "rest_api.a.dlt.wall_s",
              "rest_api.a.dlt_parallel.wall_s", "fetch.throughput.0ms.wrk.req_per_s",
              "fetch.throughput.25ms.dltc_concurrency_1.req_per_s",
              "fetch.goodput.limit4.goodput_req_per_s", "fetch.storm.final_window",
              "decode.replica_months.polars.mb_s", "decode.replica_months.dltc.mb_s",
              "chess.rss.archives1.peak_rss_mb",
              "chaos.rows_missing"):
        assert k in figs, k
    # the chaos run lost nothing (a correctness figure, not a speed)
    assert figs["chaos.rows_missing"]["median"] == 0 and figs["chaos.duplicates"]["median"] == 0


def test_rest_api_contenders_load_the_same_rows(smoke):
    out, _, _ = smoke
    res = json.loads((out / "raw.json").read_text())["sections"]["rest_api"]["result"]
    sc = res["scenarios"]["a"]
    assert sc["same_rows"] is True
    # every contender that ran loaded the replica's issues (40 at smoke size) twice over:
    # the page_number list and the repos' own lists
    for c in res["contenders"]:
        rows = sc[c]["runs"][0]["rows"]
        assert rows["issues"] == rows["repo_issues"] == sc["issues"], (c, rows)


def test_rest_api_bench_skips_dltc_when_it_cannot_import(monkeypatch):
    from dltc.bench import rest_api

    monkeypatch.setitem(sys.modules, "dltc.rest_api", None)   # import raises ImportError
    why = rest_api.dltc_rest_api_error()
    assert why and "dltc.rest_api" in why


def test_machine_versions_commit(smoke):
    _, results, _ = smoke
    m, v = results["machine"], results["versions"]
    assert m["cpu_model"] and m["cores"] >= 1 and m["memory_gib"] > 0 and m["kernel"]
    for k in ("python", "dlt", "pyarrow", "duckdb", "libcurl"):
        assert v[k] and v[k] != "not installed", k
    assert len(results["git"]["commit"]) == 40
    assert len(results["load_average"]["before"]) == 3 == len(results["load_average"]["after"])


def test_headline_and_page_come_from_the_figures(smoke):
    out, results, _ = smoke
    from dltc.bench._report import cell

    figs = results["figures"]
    head = (out / "headline.md").read_text()
    for k in ("chess.scenarios.2.dltc.wall", "chess.scenarios.2.reference.wall",
              "chess.scenarios.2.rest_api.wall", "rest_api.a.dlt.wall_s"):
        assert cell(figs, k, " s") in head, k
    assert head.strip() in (out / "README.md").read_text()


def test_render_gives_the_same_page_and_update_readme_replaces_only_the_marked_block(smoke, tmp_path):
    out, _, _ = smoke
    before = (out / "README.md").read_text()
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- bench:headline -->\nold table\n<!-- /bench:headline -->\nafter\n")
    p = subprocess.run([sys.executable, "-m", "dltc.bench", "all", "--render", "--out", str(out),
                        "--update-readme", str(readme)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert (out / "headline.md").read_text().strip() in text
    # re-rendered from the JSON files alone: the same page
    assert (out / "README.md").read_text() == before


def test_summarize_runs_median_min_max():
    runs = [{"a": {"x": 3, "ok": True, "s": "t"}, "b": 1.0},
            {"a": {"x": 1}, "b": 2.0},
            {"a": {"x": 2}, "b": 4.0, "c": 7}]
    s = summarize_runs(runs)
    assert s == {"a.x": {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3},
                 "b": {"median": 2.0, "min": 1.0, "max": 4.0, "runs": 3},
                 "c": {"median": 7.0, "min": 7.0, "max": 7.0, "runs": 1}}
