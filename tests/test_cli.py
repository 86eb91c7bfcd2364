"""The `dltc chess` command, run as a subprocess against the local replica: help with
examples, argument errors before any request, a load into DuckDB with the progress bar on
stderr and the summary table on stdout, clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import dltc.replica as replica
from dltc.cli import api_urls, read_players, summary_table


def _dltc(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "dltc.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from dltc import _native

    if not (hasattr(_native, "Client") and hasattr(_native, "Decoder")):
        pytest.skip("the fetch engine and the decoder are not built into dltc._native yet")
    d = tmp_path_factory.mktemp("clidata")
    replica.generate(str(d), players=6, months=2, seed=4)
    return d


@pytest.fixture(scope="module")
def server(data):
    with replica.serve(str(data), tls=True) as api:
        yield api


def test_help_shows_examples(tmp_path):
    r = _dltc("chess", "--help", cwd=tmp_path)
    assert r.returncode == 0
    assert "examples:" in r.stdout and "dltc chess --players" in r.stdout and "--start-month" in r.stdout


@pytest.mark.parametrize("args, msg", [
    (["--players", "a,b", "--start-month", "2024-01"], "YYYY/MM"),
    (["--players", "../x"], "invalid chess.com username"),
    (["--players", "@/nonexistent/players.txt"], "No such file"),
])
def test_bad_arguments_exit_2_before_any_request(tmp_path, args, msg):
    r = _dltc("chess", *args, "--base-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert r.returncode == 2
    assert msg in r.stderr
    assert not list(tmp_path.glob("*.duckdb"))


def test_load_into_duckdb_with_progress_and_summary(data, server, tmp_path):
    meta = json.loads((data / "meta.json").read_text())
    players_file = tmp_path / "players.txt"
    players_file.write_text("# listed players\n" + "\n".join(meta["players"]) + "\n")
    r = _dltc(
        "chess", "--players", f"@{players_file}", "--base-url", server.base_url, "--ca-file", server.ca_file,
        "--pipeline-name", "cli_test", "--pipelines-dir", str(tmp_path / "pipelines"), "--dataset-name", "chess_data",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    # progress on stderr (not a terminal: plain lines), summary on stdout
    assert "req" in r.stderr and "games/s" in r.stderr and "429s" in r.stderr
    games = len(replica.load_games(str(data)))
    assert "players_games" in r.stdout and f"{games:,}" in r.stdout
    assert "wall time" in r.stdout and "requests" in r.stdout and "retries" in r.stdout
    con = duckdb.connect(str(tmp_path / "cli_test.duckdb"), read_only=True)
    n, distinct = con.execute("select count(*), count(distinct uuid) from chess_data.players_games").fetchall()[0]
    assert n == distinct == games
    assert con.execute("select count(*) from chess_data.players_profiles").fetchall()[0][0] == len(meta["players"])


def test_unknown_player_fails_with_its_name(data, server, tmp_path):
    r = _dltc(
        "chess", "--players", "nobody-here-42", "--base-url", server.base_url, "--ca-file", server.ca_file,
        "--pipelines-dir", str(tmp_path / "p"), "--no-progress", cwd=tmp_path,
    )
    assert r.returncode == 1
    assert "nobody-here-42" in r.stderr and "not found" in r.stderr


def test_tls_without_the_ca_is_refused(data, server, tmp_path):
    meta = json.loads((data / "meta.json").read_text())
    r = _dltc(
        "chess", "--players", meta["players"][0], "--base-url", server.base_url, "--resources", "players_profiles",
        "--pipelines-dir", str(tmp_path / "p"), "--no-progress", cwd=tmp_path,
    )
    assert r.returncode == 1
    assert "certificate" in r.stderr.lower() or "ssl" in r.stderr.lower()


def test_helpers():
    assert api_urls(None, None) == {
        "base_url": "https://api.chess.com/pub/", "callback_url": "https://www.chess.com/callback/"}
    assert api_urls("http://127.0.0.1:8123", None) == {
        "base_url": "http://127.0.0.1:8123/pub/", "callback_url": "http://127.0.0.1:8123/callback/"}
    assert api_urls("http://h/pub/", "http://c/cb/")["base_url"] == "http://h/pub/"
    assert read_players(" a, b ,c ") == ["a", "b", "c"]
    table = summary_table({"players_games": 1234}, 1.5, {"requests": 7, "retries": 1})
    assert "| players_games" in table and "1,234" in table and "1.50 s" in table
