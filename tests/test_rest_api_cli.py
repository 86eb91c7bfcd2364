"""`dltc rest-api --config FILE`, run as a subprocess against the generic API replica: a
TOML config with a secret taken from dlt's secrets (an environment variable here), a JSON
config with a parent and a child, the progress bar on stderr and the summary on stdout;
a bad config exits 2 with dlt's message before any request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dltc.replica.api import load_records

# subprocesses of the release build's Python code; the C paths are the other tests'
pytestmark = pytest.mark.skipif(bool(os.environ.get("DLTC_EXPECT_ASAN")), reason="CLI only: no C code path of its own")


def _dltc(*args: str, cwd: Path, env: dict = None, timeout: float = 120) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "dltc.cli", "rest-api", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def test_toml_config_with_a_secret(api_replica, api_replica_data, tmp_path):
    cfg = tmp_path / "api.toml"
    cfg.write_text(f"""
[client]
base_url = "{api_replica.base_url}"
auth = {{ type = "bearer", token = "${{REPLICA_TOKEN}}" }}

[[resources]]
name = "issues"
endpoint = {{ path = "auth/bearer/issues", data_selector = "items", paginator = {{ type = "page_number", base_page = 1, total_path = "total_pages" }} }}

[dltc]
max_concurrency = 8
""")
    r = _dltc("--config", str(cfg), "--pipeline-name", "cli_rest", "--pipelines-dir", str(tmp_path / "pipes"),
              "--dataset-name", "api", cwd=tmp_path, env={"REPLICA_TOKEN": api_replica.auth["bearer_token"]})
    assert r.returncode == 0, r.stderr[-2000:]
    n = len(load_records(api_replica_data)["issues"])
    assert "req" in r.stderr and "rows/s" in r.stderr and "429s" in r.stderr
    assert "issues" in r.stdout and f"{n:,}" in r.stdout and "wall time" in r.stdout
    con = duckdb.connect(str(tmp_path / "cli_rest.duckdb"), read_only=True)
    assert con.execute("select count(distinct id) from api.issues").fetchall()[0][0] == n


def test_json_config_parent_child_and_resources_subset(api_replica, api_replica_data, tmp_path):
    cfg = tmp_path / "api.json"
    cfg.write_text(json.dumps({
        "client": {"base_url": api_replica.base_url},
        "resources": [
            {"name": "orgs", "endpoint": {"path": "orgs", "data_selector": "$", "paginator": "single_page"}},
            {"name": "repos", "endpoint": {"path": "orgs/{resources.orgs.login}/repos", "data_selector": "repos",
                                           "paginator": "single_page"}},
        ]}))
    r = _dltc("--config", str(cfg), "--resources", "repos", "--no-progress", "--pipeline-name", "cli_rest2",
              "--pipelines-dir", str(tmp_path / "pipes"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    con = duckdb.connect(str(tmp_path / "cli_rest2.duckdb"), read_only=True)
    tables = {t for (t,) in con.execute("select table_name from information_schema.tables"
                                        " where table_schema = 'rest_api_data'").fetchall()}
    assert "repos" in tables and "orgs" not in tables
    assert con.execute("select count(*) from rest_api_data.repos").fetchall()[0][0] == len(
        load_records(api_replica_data)["repos"])


def test_bad_config_exits_2(tmp_path, capsys, monkeypatch):
    from dltc.cli import main

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "api.json"
    cfg.write_text(json.dumps({"client": {"base_url": "http://127.0.0.1:9"},
                               "resources": [{"name": "r", "endpoint": {"path": "x", "paginator": "nope"}}]}))
    assert main(["rest-api", "--config", str(cfg)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["rest-api", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "No such file" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.duckdb"))
