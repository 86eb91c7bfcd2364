"""Every process the replica starts (nginx master + workers, the app) is gone after a normal
end, Ctrl-C, SIGTERM, an exception inside `serve`, and after its parent is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

# No dltc C code runs in this file (the replica is Python and nginx): under the ASan+UBSan
# build (DLTC_EXPECT_ASAN) it would only repeat the release run, several times slower.
NO_C_CODE = pytest.mark.skipif(bool(os.environ.get("DLTC_EXPECT_ASAN")),
                               reason="no dltc C code runs here; the release run covers it")
pytestmark = [pytest.mark.timeout(120), NO_C_CODE]


def group(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group pgid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            out.append(int(d))
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_gone(pids, timeout=10.0) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and _not_zombie(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def start_cli(data) -> tuple[subprocess.Popen, dict, list[int]]:
    p = subprocess.Popen([sys.executable, "-m", "dltc.replica", "serve", "--data", str(data),
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line, p.stderr.read()
    info = json.loads(line)
    pids = group(info["pid"])
    # master + 2 workers + the app, all ours.
    assert len(pids) == 4, [cmdline(x) for x in pids]
    assert info["app_pid"] in pids and info["pid"] in pids
    assert sum("nginx: worker" in cmdline(x) for x in pids) == 2
    return p, info, pids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_stops_everything_on_signal(replica_data, sig):
    p, info, pids = start_cli(replica_data)
    p.send_signal(sig)
    assert p.wait(15) == 0
    assert wait_gone(pids) == []
    assert group(info["pid"]) == []


def test_children_die_with_a_killed_parent(replica_data):
    p, info, pids = start_cli(replica_data)
    p.kill()                                   # no clean-up code runs in the parent
    p.wait(10)
    assert wait_gone(pids) == [], [cmdline(x) for x in pids]


def test_exception_inside_serve_and_normal_exit(replica_data, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        from dltc.replica import serve
        with serve({str(replica_data)!r}) as api:
            print(json.dumps(api.pids()), flush=True)
            if sys.argv[1] == "raise":
                raise RuntimeError("a failing test")
    """))
    for mode, code in (("raise", 1), ("normal", 0)):
        r = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == code, r.stderr
        pids = json.loads(r.stdout.splitlines()[0])
        assert len(pids) == 4
        assert wait_gone(pids) == []


def test_context_manager_stops_and_removes_prefix(replica_data):
    from dltc.replica import serve

    with serve(replica_data) as api:
        pids = api.pids()
        prefix = api.prefix
        assert prefix.is_dir() and len(pids) == 4
    assert wait_gone(pids) == []
    assert not prefix.exists()


def test_started_from_a_thread_outlives_the_thread_not_the_process(replica_data, tmp_path):
    script = tmp_path / "t.py"
    script.write_text(textwrap.dedent(f"""
        import json, threading, time, urllib.request
        from dltc.replica.server import Replica
        box = []
        t = threading.Thread(target=lambda: box.append(Replica({str(replica_data)!r}).start()))
        t.start(); t.join()
        api = box[0]
        time.sleep(0.5)        # the starting thread is gone; nginx must still answer
        st = urllib.request.urlopen(api.base_url + "/__dltc/gen", timeout=5).status
        print(json.dumps({{"pids": api.pids(), "status": st}}), flush=True)
        time.sleep(60)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        info = json.loads(line)
        assert info["status"] == 200 and len(info["pids"]) == 4
    finally:
        p.kill()
        p.wait(10)
    assert wait_gone(info["pids"]) == [], [cmdline(x) for x in info["pids"]]
