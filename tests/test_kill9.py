"""kill -9: the chess pipeline runs in a subprocess that is killed with SIGKILL at several
points (mid-extract after some responses and batches, at the start of normalize, during
load). The next run, in a fresh process, completes and the destination holds every game of
the replica exactly once.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

import dltc

R = pytest.importorskip("dltc.replica")
pytest.importorskip("dltc.chess")
if not hasattr(dltc, "Client") and not hasattr(dltc._native, "Client"):
    pytest.skip("the engine is not built yet", allow_module_level=True)

from dltc.bench.chaos import game_uuids, months_of, players_of  # noqa: E402

# timing: the phase kills (normalize, load) land after a delay of at most 0.2 s, which must
# be shorter than what is left of the phase (normalize + load of ~2,000 games take well over
# a second; a loaded machine only makes them longer). The extract kills hold the child.
pytestmark = [pytest.mark.timeout(180), pytest.mark.timing]

# The child: one pipeline run split into its steps, announcing each on stdout, and a line
# per response from the source's progress callback. With hold >= 0 the callback stops the
# extract (sleeps until killed) once that many games are yielded: a kill armed by a REQ
# line then lands inside extract however the two processes are scheduled (without the hold,
# a parent descheduled for the rest of the extract would kill after it).
CHILD = r"""
import json, sys, time
from dltc.bench.chaos import make_pipeline, chess_source
work, base, players, start, end, mode, hold = sys.argv[1:]
pipe, db = make_pipeline(work, "kill9")
def progress(p):
    print("REQ", p["requests"], p["games"], flush=True)
    if 0 <= int(hold) <= p["games"]:
        time.sleep(600)
src = chess_source(base, json.loads(players), start, end, max_concurrency=8, batch_rows=300,
                   progress=progress)
if mode == "run":
    pipe.run(src)
else:
    print("PHASE extract", flush=True)
    pipe.extract(src)
    print("PHASE normalize", flush=True)
    pipe.normalize()
    print("PHASE load", flush=True)
    pipe.load()
print("DONE", flush=True)
"""

RNG = random.Random(9)
# (name, line that arms the kill, games yielded before arming, delay after arming, whether a
# committed load package must be pending after the kill)
KILL_POINTS = [
    ("extract-early", "REQ", 0, 0.0, False),  # after the first responses, before any batch
    ("extract-mid", "REQ", 1000, RNG.uniform(0.0, 0.1), False),  # batches already yielded
    ("extract-end", "PHASE normalize", 0, 0.0, True),
    ("normalize", "PHASE normalize", 0, RNG.uniform(0.02, 0.1), True),
    ("load-start", "PHASE load", 0, 0.0, True),
    ("load-mid", "PHASE load", 0, RNG.uniform(0.05, 0.2), True),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill9") / "replica"
    R.generate(str(d), players=20, months=3, seed=21, now="2024-07-10")
    return d


def spawn(work, base, players, start, end, mode, hold=-1):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(work), base, json.dumps(players), start, end, mode,
         str(hold)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def lines_of(proc) -> "queue.Queue[str | None]":
    q: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(line.strip())
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def pending_packages(work) -> int:
    """Committed load packages the killed run left for the next one (extracted or
    normalized, not yet loaded)."""
    import dlt

    p = dlt.attach(pipeline_name="kill9", pipelines_dir=str(work / "pipelines"))
    return len(p.list_extracted_load_packages()) + len(p.list_normalized_load_packages())


@pytest.mark.parametrize("name,arm,games,delay,pending", KILL_POINTS,
                         ids=[k[0] for k in KILL_POINTS])
def test_kill9_then_next_run_loads_every_game_once(data, tmp_path, name, arm, games, delay,
                                                  pending):
    players = players_of(data)
    months = months_of(data, players)
    start, end = months[0], months[-1]
    expected = set(R.load_games(str(data), players, start, end))
    # Latency keeps extract long enough (~ a few seconds) to land inside it.
    with R.serve(str(data), latency_ms=20) as api:
        p = spawn(tmp_path, api.base_url, players, start, end, "steps",
                  hold=games if arm == "REQ" else -1)
        q = lines_of(p)
        seen: list[str] = []
        killed_at = None
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline:
                try:
                    line = q.get(timeout=1.0)
                except queue.Empty:
                    continue
                if line is None:
                    break
                seen.append(line)
                hit = (arm == "REQ" and line.startswith("REQ") and int(line.split()[2]) >= games
                       ) or line == arm
                if hit:
                    time.sleep(delay)
                    os.kill(p.pid, signal.SIGKILL)
                    killed_at = line
                    break
        finally:
            if p.poll() is None and killed_at is None:
                os.kill(p.pid, signal.SIGKILL)
            rc = p.wait(30)
            err = p.stderr.read()
        assert killed_at is not None, f"never reached {arm}: {seen[-5:]} {err[-2000:]}"
        assert rc == -signal.SIGKILL, f"the child ended before the kill (rc={rc}): {err[-2000:]}"
        assert "DONE" not in seen
        # The kill landed where intended: inside extract nothing is committed yet; from the
        # end of extract on, a load package waits for the next run.
        assert (pending_packages(tmp_path) > 0) == pending, (name, seen[-3:])

        # The next run, in a new process, completes...
        p2 = spawn(tmp_path, api.base_url, players, start, end, "run")
        try:
            out, err2 = p2.communicate(timeout=120)
        finally:
            if p2.poll() is None:
                os.kill(p2.pid, signal.SIGKILL)
                p2.wait()
        assert p2.returncode == 0, f"the run after a kill at {name} failed:\n{err2[-3000:]}"
        assert "DONE" in out

    # ... and every game is there exactly once.
    got = game_uuids(str(tmp_path / "kill9.duckdb"))
    dup = [u for u, c in Counter(got).items() if c > 1]
    assert not dup, f"kill at {name} ({killed_at}): {len(dup)} games twice, e.g. {dup[:3]}"
    missing = expected - set(got)
    assert not missing, f"kill at {name} ({killed_at}): {len(missing)} games missing"
    assert set(got) == expected
