"""The replica server through real HTTP clients (http.client, curl): paths and bodies,
301/404s, weak ETag + 304, gzip, 429 under parallel load, TLS + HTTP/2, latency, every
fault kind with deterministic replay, reload after advance, and bad input."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dltc.replica import ReplicaError, advance, generate, load_games, serve
from dltc.replica.faults import KINDS, parse_spec

pytestmark = pytest.mark.timeout(120)


def curl_env():
    """The environment for the curl CLI: without the ASan preload of `make test-asan`."""
    import os

    return {k: v for k, v in os.environ.items()
            if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


def get(api, path, headers=None, timeout=10.0, conn=None):
    """(status, {lower header: value}, raw body) of one GET; raises on transport errors."""
    c = conn or http.client.HTTPConnection("127.0.0.1", api.port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        if conn is None:
            c.close()


def players(data):
    return json.loads((data / "meta.json").read_text())["players"]


def month_paths(api, user):
    st, _, body = get(api, f"/pub/player/{user}/games/archives")
    assert st == 200
    return [u[len(api.base_url):] for u in json.loads(body)["archives"]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small data set of this module's own (cheap to copy for tests that mutate it)."""
    d = tmp_path_factory.mktemp("tiny") / "data"
    generate(str(d), players=4, months=2, seed=5, now="2024-03-10")
    return d


# ---- paths, bodies, headers ------------------------------------------------------------------

def test_profile_body_headers_and_weak_etag(replica, replica_data):
    user = players(replica_data)[0]
    st, h, body = get(replica, f"/pub/player/{user}")
    assert st == 200
    assert h["content-type"] == "application/json; charset=utf-8"
    assert h["cache-control"] == "public, max-age=5"
    assert h["etag"] == 'W/"%s"' % hashlib.md5(body).hexdigest()
    assert h["access-control-allow-origin"] == "*"
    prof = json.loads(body)
    assert prof["username"].lower() == user
    assert b"{{BASE}}" not in body
    raw = (replica_data / "pub" / "player" / user / "profile.json").read_bytes()
    assert body == raw.replace(b"{{BASE}}", replica.base_url.encode())


def test_archives_are_absolute_oldest_first_and_served(replica, replica_data):
    for user in players(replica_data)[:5]:
        st, _, body = get(replica, f"/pub/player/{user}/games/archives")
        assert st == 200
        urls = json.loads(body)["archives"]
        prefix = f"{replica.base_url}/pub/player/{user}/games/"
        assert all(u.startswith(prefix) for u in urls)
        months = [u[len(prefix):] for u in urls]
        assert months == sorted(months)
        for u in urls[:2]:
            st, h, body = get(replica, u[len(replica.base_url):])
            assert st == 200 and json.loads(body)["games"]
            path = u[len(replica.base_url) + 1:]
            assert body == (replica_data / (path + ".json")).read_bytes()


def test_past_month_without_games_is_empty_list(replica, replica_data):
    st, h, body = get(replica, f"/pub/player/{players(replica_data)[0]}/games/2015/01")
    assert st == 200 and json.loads(body) == {"games": []}
    assert h["etag"] == 'W/"%s"' % hashlib.md5(body).hexdigest()


def test_uppercase_username_redirects_to_lower_case(replica, replica_data):
    user = players(replica_data)[1]
    for path in (f"/pub/player/{user}", f"/pub/player/{user}/games/archives"):
        upper = path.replace(user, user.upper())
        st, h, _ = get(replica, upper + "?x=1")
        assert st == 301
        assert h["location"] == replica.base_url + path + "?x=1"


@pytest.mark.parametrize("path,message", [
    ("/pub/player/nosuchplayer", 'User "nosuchplayer" not found.'),
    ("/pub/player/nosuchplayer/games/archives", 'User "nosuchplayer" not found.'),
    ("/pub/player/nosuchplayer/games/2024/01", 'User "nosuchplayer" not found.'),
    ("/callback/user/popup/nosuchplayer", 'User "nosuchplayer" not found.'),
    ("/pub/player/{u}/games/2024/07", "Date cannot be set in the future"),
    ("/pub/player/{u}/games/2031/01", "Date cannot be set in the future"),
    ("/pub/nothing/here", 'Data provider not found for key "/pub/nothing/here"'),
    ("/pub/player/{u}/games", 'Data provider not found for key "/pub/player/{u}/games"'),
])
def test_json_404_bodies(replica, replica_data, path, message):
    u = players(replica_data)[0]
    st, h, body = get(replica, path.format(u=u))
    assert st == 404
    assert h["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body) == {"code": 0, "message": message.format(u=u)}


def test_popup_endpoint(replica, replica_data):
    user = players(replica_data)[2]
    st, h, body = get(replica, f"/callback/user/popup/{user}")
    assert st == 200 and h["content-type"] == "application/json; charset=utf-8"
    assert body == (replica_data / "callback" / "user" / "popup" / f"{user}.json").read_bytes()
    assert isinstance(json.loads(body), dict)


# ---- caching and compression -----------------------------------------------------------------

def test_if_none_match_gives_304(replica, replica_data):
    user = players(replica_data)[0]
    path = month_paths(replica, user)[0]
    st, h, body = get(replica, path)
    etag = h["etag"]
    assert etag == 'W/"%s"' % hashlib.md5(body).hexdigest()
    for inm in (etag, etag[2:], f'"0123", {etag}'):
        st2, h2, body2 = get(replica, path, {"If-None-Match": inm})
        assert (st2, body2) == (304, b"")
        assert h2["etag"] == etag and h2["cache-control"] == "public, max-age=5"
    st3, _, body3 = get(replica, path, {"If-None-Match": 'W/"00000000000000000000000000000000"'})
    assert st3 == 200 and body3 == body
    # The same validator for the gzip variant, and 304 there too.
    _, hz, _ = get(replica, path, {"Accept-Encoding": "gzip"})
    assert hz["etag"] == etag
    assert get(replica, path, {"Accept-Encoding": "gzip", "If-None-Match": etag})[0] == 304


def test_gzip_when_asked(replica, replica_data):
    user = players(replica_data)[0]
    path = month_paths(replica, user)[0]
    _, h, plain = get(replica, path)
    assert "content-encoding" not in h
    st, hz, zbody = get(replica, path, {"Accept-Encoding": "gzip, deflate"})
    assert st == 200 and hz["content-encoding"] == "gzip"
    assert "accept-encoding" in hz["vary"].lower()
    assert int(hz["content-length"]) == len(zbody)
    assert gzip.decompress(zbody) == plain
    assert len(zbody) < 0.45 * len(plain)
    # Bodies under ~200 bytes go out as they are.
    st, hs, small = get(replica, "/pub/player/nosuchplayer", {"Accept-Encoding": "gzip"})
    assert st == 404 and "content-encoding" not in hs and len(small) < 200


# ---- 429 ------------------------------------------------------------------------------------

def _parallel(api, path, n):
    barrier = threading.Barrier(n)

    def one(_):
        c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        c.connect()
        barrier.wait()
        return get(api, path, conn=c)

    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


@pytest.mark.parametrize("retry_after", [None, 3])
def test_429_beyond_max_parallel(tiny, retry_after):
    with serve(tiny, latency_ms=300, max_parallel=2, retry_after=retry_after) as api:
        path = f"/pub/player/{players(tiny)[0]}"
        res = _parallel(api, path, 8)
        codes = sorted(r[0] for r in res)
        assert codes.count(429) >= 4 and 1 <= codes.count(200) <= 3, codes
        for st, h, body in res:
            if st == 429:
                assert json.loads(body)["code"] == 0
                assert h.get("retry-after") == (str(retry_after) if retry_after else None)
        # Serial requests are never limited.
        assert [get(api, path)[0] for _ in range(5)] == [200] * 5


# ---- TLS + HTTP/2 -----------------------------------------------------------------------------

def test_tls_http2_verified_against_printed_ca(tiny):
    with serve(tiny, tls=True) as api:
        assert api.base_url.startswith("https://127.0.0.1:") and api.ca_file
        user = players(tiny)[0]
        url = f"{api.base_url}/pub/player/{user}/games/archives"
        if shutil.which("curl"):
            p = subprocess.run(["curl", "-sS", "--http2", "--cacert", api.ca_file, "-o", "/dev/null",
                                "-w", "%{http_version} %{http_code}", url],
                               capture_output=True, text=True, timeout=30, env=curl_env())
            assert p.stdout == "2 200", p.stderr
            p = subprocess.run(["curl", "-sS", "-o", "/dev/null", url], capture_output=True,
                               text=True, timeout=30, env=curl_env())
            assert p.returncode == 60     # not trusted without the CA
        ctx = ssl.create_default_context(cafile=api.ca_file)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                assert t.selected_alpn_protocol() == "h2"
        c = http.client.HTTPSConnection("127.0.0.1", api.port, timeout=10,
                                        context=ssl.create_default_context(cafile=api.ca_file))
        st, _, body = get(api, f"/pub/player/{user}/games/archives", conn=c)
        assert st == 200 and json.loads(body)["archives"][0].startswith(api.base_url + "/pub/")
        c.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            get(api, "/", conn=http.client.HTTPSConnection(
                "127.0.0.1", api.port, timeout=10, context=ssl.create_default_context()))


# ---- latency ---------------------------------------------------------------------------------

@pytest.mark.timing
def test_latency_and_jitter(tiny):
    # Lower bounds are nginx's (echo_sleep): a loaded machine only adds to them. Upper bounds
    # are on the median only (a single request may be descheduled for 100+ ms): configured
    # latency + jitter + 100 ms, which a replica that ignored the setting (or doubled it)
    # still exceeds.
    path = f"/pub/player/{players(tiny)[0]}"
    with serve(tiny, latency_ms=50) as api:
        c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        ts = []
        for _ in range(12):
            t = time.perf_counter()
            assert get(api, path, conn=c)[0] == 200
            ts.append((time.perf_counter() - t) * 1000)
        assert 45 <= statistics.median(ts) <= 150, ts
        assert min(ts) >= 45, ts
        # 304s and 404s wait as well.
        t = time.perf_counter()
        assert get(api, "/pub/player/nosuchplayer", conn=c)[0] == 404
        assert (time.perf_counter() - t) * 1000 >= 45
    with serve(tiny, latency_ms=60, jitter_ms=40) as api:
        c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        ts = []
        for _ in range(30):
            t = time.perf_counter()
            assert get(api, path, conn=c)[0] == 200
            ts.append((time.perf_counter() - t) * 1000)
        assert min(ts) >= 18 and statistics.median(ts) <= 60 + 40 + 100, ts
        # values do spread: 30 draws from 60 +- 40 ms all within 20 ms of each other has a
        # probability below 1e-15 (the spread only grows when the machine is loaded)
        assert max(ts) - min(ts) >= 20, ts


# ---- faults ----------------------------------------------------------------------------------

def _classify(api, path, clean):
    """(what a client sees for one request, seconds it took): a fault kind name, 'cut' for a
    body cut short, or 'ok' for exactly the clean body."""
    t = time.perf_counter()
    try:
        st, h, body = get(api, path, timeout=10)
    except (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError):
        return "cut", time.perf_counter() - t
    dt = time.perf_counter() - t
    if st in (500, 502):
        return f"p{st}", dt
    if st == 503:
        return ("p503ra" if h.get("retry-after") == "1" else "p503"), dt
    if st == 403:
        assert h["content-type"].startswith("text/html") and b"Just a moment" in body
        return "html403", dt
    assert st == 200, st
    if body == clean:
        return "ok", dt
    try:
        games = json.loads(body)["games"]
    except ValueError:
        return "invalid_json", dt
    ref = json.loads(clean)["games"]
    assert len(games) == len(ref)
    if all("dltc_drift_extra" in g for g in games):
        return "drift_extra", dt
    gone = set(ref[0]) - set(games[0])
    if len(gone) == 1 and all(not (gone & set(g)) for g in games):
        return "drift_missing", dt
    if all(isinstance(g[s]["rating"], str) for g in games for s in ("white", "black")):
        return "drift_type", dt
    return "unexpected", dt


def _player_with_months(data, n):
    """A player with games in the data set's last n months (2024/02, 2024/03 for tiny)."""
    for u in players(data):
        d = data / "pub" / "player" / u / "games" / "2024"
        if all((d / f"{m:02d}.json").is_file() for m in range(4 - n, 4)):
            return u
    pytest.skip("no player with games in those months")


def _fault_run(data, spec, paths):
    clean = {p: (data / (p[1:] + ".json")).read_bytes() for p in set(paths)}
    with serve(data, faults=spec) as api:
        seen = [_classify(api, p, clean[p]) for p in paths]
        counts = api.fault_counts()
    return [k for k, _ in seen], [dt for _, dt in seen], counts


def test_every_fault_kind_and_deterministic_replay(tiny):
    stall_s = 0.3
    # 13 outcomes (12 kinds + clean) at equal odds; fail_path always 500.
    p = round(1 / 13, 4)
    user = _player_with_months(tiny, 2)
    other = next(u for u in players(tiny) if u != user
                 and (tiny / f"pub/player/{u}/games/2024/03.json").is_file())
    fail = f"/pub/player/{other}/games/2024/03"
    spec = ",".join([f"seed=2,stall_s={stall_s}"] + [f"{k}={p}" for k in KINDS] + [f"fail_path={fail}"])
    plan = parse_spec(spec)
    base = [f"/pub/player/{user}/games/2024/02", f"/pub/player/{user}/games/2024/03"]
    paths = base * 30 + [fail] * 3
    # The plan's own prediction, per (path, n-th request of that path).
    nth: dict[str, int] = {}
    expected = []
    for path in paths:
        n = nth.get(path, 0)
        nth[path] = n + 1
        expected.append(plan.decide(path, n))
    assert set(KINDS) <= set(expected), "pick a seed that covers every kind"

    seen, times, counts = _fault_run(tiny, spec, paths)
    for want, got, dt, path in zip(expected, seen, times, paths):
        if want in ("reset", "short"):
            assert got == "cut", (want, got, path)
        elif want == "fail_path":
            assert got == "p500"
        elif want in (None, "stall"):
            assert got == "ok", (want, got, path)
        else:
            assert got == want, (want, got, path)
        if want == "stall":
            assert dt >= 0.9 * stall_s, (dt, path)
    exp_counts = {k: expected.count(k) for k in set(expected) if k}
    assert {k: v for k, v in counts.items() if v} == exp_counts
    # Replay: same seed, same sequence; another seed, another one.
    seen2, _, counts2 = _fault_run(tiny, spec, paths)
    assert seen2 == seen and counts2 == counts
    other = spec.replace("seed=2,", "seed=3,")
    assert _fault_run(tiny, other, paths[:40])[0] != seen[:40]


def test_drift_missing_removes_a_key_everywhere(tiny):
    user = _player_with_months(tiny, 1)
    path = f"/pub/player/{user}/games/2024/02"
    clean = json.loads((tiny / (path[1:] + ".json")).read_bytes())["games"]
    with serve(tiny, faults="seed=1,drift_missing=1") as api:
        st, h, body = get(api, path)
        assert st == 200 and h["etag"] == 'W/"%s"' % hashlib.md5(body).hexdigest()
        games = json.loads(body)["games"]
        assert len(games) == len(clean)
        gone = set(clean[0]) - set(games[0])
        assert len(gone) == 1
        assert all(not (gone & set(g)) for g in games)
        assert api.fault_counts()["drift_missing"] == 1


def test_faults_spec_errors_are_one_line(tiny):
    for bad in ("p500=2", "bogus=1", "seed=x", "p500", "p500=0.7,p502=0.7"):
        with pytest.raises(ReplicaError, match="^--faults") as e:
            with serve(tiny, faults=bad):
                pass
        assert "\n" not in str(e.value)


# ---- reload after advance --------------------------------------------------------------------

def test_reload_after_advance(tiny, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny, data)
    with serve(data) as api:
        open_month = "/pub/player/{u}/games/" + json.loads((data / "meta.json").read_text())["open_month"]
        before = {u: get(api, open_month.format(u=u)) for u in players(data)}
        added = advance(str(data), games=6, seed=3)
        assert added
        api.reload()
        for u, uuids in added.items():
            st, h, body = get(api, open_month.format(u=u))
            assert st == 200
            got = {g["uuid"] for g in json.loads(body)["games"]}
            assert set(uuids) <= got
            old = before[u]
            if old[0] == 200:
                assert h["etag"] != old[1]["etag"]
                assert get(api, open_month.format(u=u), {"If-None-Match": old[1]["etag"]})[0] == 200
            arch = json.loads(get(api, f"/pub/player/{u}/games/archives")[2])["archives"]
            assert api.base_url + open_month.format(u=u) in arch


# ---- bad input -------------------------------------------------------------------------------

def _cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "dltc.replica", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_port_in_use_is_one_clear_line(tiny):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        with pytest.raises(ReplicaError, match="already in use"):
            with serve(tiny, port=port):
                pass
        p = _cli("serve", "--data", str(tiny), "--port", str(port))
        assert p.returncode == 2
        assert p.stderr.count("\n") == 1 and "already in use" in p.stderr and "--port" in p.stderr
    finally:
        s.close()


def test_bad_arguments_are_one_clear_line(tiny, tmp_path):
    cases = [
        (["serve", "--data", str(tmp_path / "nope")], "not a replica data directory"),
        (["serve", "--data", str(tiny), "--port", "70000"], "port"),
        (["serve", "--data", str(tiny), "--faults", "p500=7"], "probability"),
        (["serve", "--data", str(tiny), "--max-parallel", "0"], "max_parallel"),
        (["serve"], "required: --data"),
        (["serve", "--data", str(tiny), "--latency-ms", "soon"], "--latency-ms"),
        (["generate", "--players", "3"], "required"),
    ]
    for args, needle in cases:
        p = _cli(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.count("\n") == 1 and needle in p.stderr, (args, p.stderr)


@pytest.mark.parametrize("var,needle", [("DLTC_NGINX", "nginx not found"),
                                        ("DLTC_NGINX_ECHO", "echo module")])
def test_missing_nginx_says_what_to_do(tiny, var, needle):
    import os

    env = dict(os.environ, **{var: "/nonexistent/nginx-thing"})
    p = _cli("serve", "--data", str(tiny), env=env)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and needle in p.stderr and "make setup" in p.stderr


def test_fault_mode_clean_answers_match_static_mode(tiny):
    """With faults on, data goes through the app: same bodies, ETags, gzip and 304."""
    user = _player_with_months(tiny, 1)
    path = f"/pub/player/{user}/games/2024/03"
    with serve(tiny) as api:
        ref = get(api, path)
        refz = get(api, path, {"Accept-Encoding": "gzip"})
    with serve(tiny, faults="seed=1,drift_extra=0") as api:
        st, h, body = get(api, path)
        assert (st, body, h["etag"]) == (200, ref[2], ref[1]["etag"])
        assert h["content-type"] == ref[1]["content-type"]
        assert h["cache-control"] == "public, max-age=5"
        st, hz, zbody = get(api, path, {"Accept-Encoding": "gzip"})
        assert hz["content-encoding"] == "gzip" and gzip.decompress(zbody) == ref[2] == gzip.decompress(refz[2]) and len(zbody) < len(body)
        assert get(api, path, {"If-None-Match": h["etag"]})[0] == 304
        assert get(api, f"/pub/player/{user.upper()}")[0] == 301
        assert get(api, "/pub/player/nosuchplayer")[0] == 404
        # Drifted bodies get compressed on the fly by nginx.
    with serve(tiny, faults="seed=1,drift_type=1") as api:
        st, hz, zbody = get(api, path, {"Accept-Encoding": "gzip"})
        games = json.loads(gzip.decompress(zbody))["games"]
        assert hz["content-encoding"] == "gzip"
        assert all(isinstance(g["white"]["rating"], str) for g in games)
        assert api.fault_counts()["drift_type"] == 1


def test_429_counts_http2_streams(tiny):
    """limit_conn counts each HTTP/2 stream: 8 multiplexed requests on one connection, 2 pass."""
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    with serve(tiny, tls=True, latency_ms=300, max_parallel=2) as api:
        url = f"{api.base_url}/pub/player/{players(tiny)[0]}"
        p = subprocess.run(["curl", "-s", "--http2", "--cacert", api.ca_file, "--parallel",
                            "--parallel-max", "8", *(["-o", "/dev/null"] * 8), "-w",
                            "%{http_version} %{http_code} %{num_connects}\n", *([url] * 8)],
                           capture_output=True, text=True, timeout=60, env=curl_env())
        rows = [ln.split() for ln in p.stdout.splitlines()]
        assert len(rows) == 8 and all(r[0] == "2" for r in rows)
        assert sum(int(r[2]) for r in rows) == 1          # one connection, 8 streams
        codes = sorted(r[1] for r in rows)
        assert codes.count("200") == 2 and codes.count("429") == 6, codes


def test_cli_serve_prints_urls_and_reloads_on_sighup(tiny, tmp_path):
    import os
    import signal

    data = tmp_path / "data"
    shutil.copytree(tiny, data)
    p = subprocess.Popen([sys.executable, "-m", "dltc.replica", "serve", "--data", str(data),
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(p.stdout.readline())
        assert info["pub_url"] == info["base_url"] + "/pub/"
        assert info["callback_url"] == info["base_url"] + "/callback/"

        class Api:
            port = int(info["base_url"].rsplit(":", 1)[1])

        added = _cli("advance", "--data", str(data), "--games", "4", "--seed", "2")
        assert added.returncode == 0, added.stderr
        meta = json.loads((data / "meta.json").read_text())
        wanted = set(load_games(str(data), start_month=meta["open_month"],
                                end_month=meta["open_month"]))
        os.kill(info["serve_pid"], signal.SIGHUP)
        end = time.monotonic() + 20
        while True:
            got = set()
            for u in players(data):
                st, _, body = get(Api, f"/pub/player/{u}/games/{meta['open_month']}")
                if st == 200:
                    got |= {g["uuid"] for g in json.loads(body)["games"]}
            if got == wanted or time.monotonic() > end:
                break
            time.sleep(0.1)
        assert got == wanted
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(15) == 0


def test_bench_replica_json_smoke(replica_data):
    """`python -m dltc.bench replica --json` runs wrk and reports rates (1 s, one point)."""
    if not shutil.which("wrk"):
        pytest.skip("wrk not installed")
    p = subprocess.run([sys.executable, "-m", "dltc.bench", "replica", "--json", "--data",
                        str(replica_data), "--duration", "1", "--concurrency", "4",
                        "--latency", "0"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    [r] = out["results"]
    assert r["concurrency"] == 4 and r["encoding"] == "gzip"
    assert r["requests_per_s"] > 100 and r["wire_MB_per_s"] > 1 and not r["errors"]
    assert out["month_files"] > 10


def test_fault_counts_over_http_and_dict_spec(tiny):
    user = _player_with_months(tiny, 1)
    path = f"/pub/player/{user}/games/2024/03"
    with serve(tiny, faults={"seed": 4, "fail_path": [path]}) as api:
        assert [get(api, path)[0] for _ in range(3)] == [500] * 3
        st, _, body = get(api, "/__dltc/faults")
        assert st == 200 and json.loads(body)["fail_path"] == 3 == api.fault_counts()["fail_path"]
    with serve(tiny) as api:
        assert get(api, path)[0] == 200
        assert set(api.fault_counts().values()) == {0}
