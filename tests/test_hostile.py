"""Hostile and broken servers against the fetch engine (dltc.Client), the decoder
(dltc.read_json / Decoder) and the chess source: every case ends in a clear error that names
the URL (or the JSON offset and path), with bounded memory and time, never a crash, and
never a leaked Authorization header or token.
"""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

import dltc
from hostile import (
    HTML_PAGE,
    INVALID_UTF8,
    NUL_BYTES,
    HostileServer,
    big_number,
    deep_array,
    deep_object,
    make_certs,
    peak_rss_kb,
    reset_peak_rss,
    rss_kb,
)

ASAN = bool(os.environ.get("DLTC_EXPECT_ASAN"))
MB = 1 << 20
SECRET = "tok-9f8e7d6c5b4a-SECRET"
COOKIE = "sid-0123456789-COOKIE"

Client = getattr(dltc, "Client", None)
needs_client = pytest.mark.skipif(Client is None, reason="dltc.Client (engine) not built yet")
Decoder = getattr(getattr(dltc, "_native", None), "Decoder", None)
needs_decoder = pytest.mark.skipif(Decoder is None, reason="Decoder not built yet")


# ---- helpers ----------------------------------------------------------------------------


class Failed:
    """What a refused submit looks like when the engine raises instead of responding."""

    def __init__(self, url: str, exc: BaseException):
        self.url, self.status, self.body, self.error = url, 0, None, f"{type(exc).__name__}: {exc}"
        self.attempts = 0


def fetch(client, url: str, wait: float = 60.0, **kw):
    """Submit one request and return its one Response (or a Failed if submit refused it).

    Also checks the engine's exactly-once promise: nothing else is delivered for it."""
    try:
        rid = client.submit(url, **kw)
    except (ValueError, OSError) as e:
        return Failed(url, e)
    end = time.monotonic() + wait
    got = None
    while time.monotonic() < end:
        r = client.next(timeout=min(1.0, max(0.01, end - time.monotonic())))
        if r is None:
            if got is not None and client.pending == 0:
                break
            continue
        assert r.id == rid, f"response for an id never submitted: {r.id}"
        assert got is None, f"response delivered twice for {url}"
        got = r
        if client.pending == 0:
            break
    assert got is not None, f"no response for {url} within {wait}s (pending={client.pending})"
    return got


def assert_clear_error(r, url: str) -> None:
    assert r.error, f"expected an error for {url}, got status {r.status}"
    assert isinstance(r.error, str)
    assert url in r.error or url.split("?")[0] in r.error, f"error does not name {url}: {r.error!r}"
    assert not r.body, "a failed response must not carry a body"


class PeakRSS:
    """Peak RSS growth (kB) of this process over a with-block, from /proc/self/status."""

    def __enter__(self):
        self.ok = reset_peak_rss()
        self.start = rss_kb()
        return self

    def __exit__(self, *exc):
        self.growth_mb = (peak_rss_kb() - self.start) / 1024 if self.ok else 0.0

    def check(self, limit_mb: float) -> None:
        if ASAN:
            limit_mb = limit_mb * 2 + 64  # shadow memory and quarantine
        assert self.growth_mb < limit_mb, f"peak RSS grew {self.growth_mb:.0f} MB > {limit_mb} MB"


@pytest.fixture
def hostile():
    with HostileServer("127.0.0.1", lifetime=90) as s:
        yield s


@pytest.fixture
def recorder():
    """A second server on another loopback address: it must receive nothing."""
    with HostileServer("127.0.0.2", lifetime=90) as s:
        yield s


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def client(**kw):
    base = dict(max_attempts=2, max_retry_time=10.0, connect_timeout=5.0, timeout=20.0)
    base.update(kw)
    return Client(**base)


# ---- size caps ----------------------------------------------------------------------------


@needs_client
@pytest.mark.parametrize("kind", ["big", "big-chunked"])
def test_body_far_over_cap_is_refused_early(hostile, kind):
    url = hostile.url(f"/{kind}/{256 * MB}")
    with PeakRSS() as mem, client(max_body=1 * MB) as c:
        r = fetch(c, url)
    assert_clear_error(r, url)
    # Refused while streaming, not after reading 256 MB: at most a few socket buffers per try.
    assert hostile.bytes_sent < 24 * MB * max(1, r.attempts), hostile.bytes_sent
    mem.check(48)


@needs_client
@pytest.mark.timing
def test_gzip_bomb_is_stopped_by_the_ratio_cap(hostile):
    # 1 GB of JSON whitespace in about 1 MB of gzip: ratio > 1000, default caps.
    url = hostile.url(f"/gzip/{1 << 30}")
    with PeakRSS() as mem, client() as c:
        t0 = time.monotonic()
        r = fetch(c, url)
        elapsed = time.monotonic() - t0
    assert_clear_error(r, url)
    # the ratio cap stops it after the first MB or so of output; inflating the whole 1 GB
    # (what a missing cap does) takes far longer on any machine: 30 s is slack, not a race
    assert elapsed < 30
    # Stopped by max_ratio long before the 256 MB default body cap.
    mem.check(128)


@needs_client
def test_gzip_body_over_cap_counts_decoded_bytes(hostile):
    url = hostile.url(f"/gzip/{64 * MB}")
    with PeakRSS() as mem, client(max_body=2 * MB, max_ratio=1e9) as c:
        r = fetch(c, url)
    assert_clear_error(r, url)
    mem.check(48)


@needs_client
def test_one_gigabyte_string_with_default_caps(hostile):
    # The server streams a 1 GB JSON string; the default 256 MB cap must end it.
    url = hostile.url(f"/string/{1 << 30}")
    with PeakRSS() as mem, client(max_attempts=1) as c:
        r = fetch(c, url, wait=90)
    assert_clear_error(r, url)
    assert hostile.bytes_sent < 320 * MB
    mem.check(256 * 1.6 + 64)  # the capped buffer, plus growth slack


@needs_client
def test_truncated_body_is_an_error_not_a_short_body(hostile):
    url = hostile.url("/truncated/1000")
    with client() as c:
        r = fetch(c, url)
    assert_clear_error(r, url)
    assert hostile.connections == r.attempts >= 2, "a truncated body is retried"


# ---- redirects and hosts ------------------------------------------------------------------


@needs_client
def test_endless_redirects_are_bounded(hostile):
    url = hostile.url("/redirect-loop/0")
    with client(max_redirects=5, max_attempts=1) as c:
        r = fetch(c, url)
    assert_clear_error(r, url)
    assert hostile.connections <= 6, hostile.connections


@needs_client
@pytest.mark.parametrize("target", ["other_ip", "localhost_name"])
def test_redirect_to_another_host_is_refused_by_default(hostile, recorder, target):
    to = recorder.url("/ok") if target == "other_ip" else f"http://localhost:{hostile.port}/ok"
    url = hostile.url("/redirect?to=" + to)
    with client(max_attempts=1) as c:
        r = fetch(c, url)
    assert_clear_error(r, url)
    assert recorder.connections == 0
    assert [q["path"] for q in hostile.requests] == ["/redirect"], "localhost was followed"


@needs_client
@pytest.mark.parametrize("via", ["direct", "redirect"])
def test_allowed_hosts_refuses_before_sending(hostile, recorder, via):
    off = recorder.url("/pub/player/x/games/2024/01")
    url = off if via == "direct" else hostile.url("/redirect?to=" + off)
    with client(allowed_hosts=["127.0.0.1"], same_host_redirects=False, max_attempts=1) as c:
        r = fetch(c, url)
    assert_clear_error(r, url)
    assert recorder.connections == 0, "a request went to a host outside allowed_hosts"


@needs_client
@pytest.mark.parametrize(
    "spelling",
    [
        "http://127.0.0.1@{rec}/x",  # userinfo that looks like the allowed host
        "http://2130706434:{port}/x",  # 127.0.0.2 as one decimal number
        "http://0x7f.0.0.2:{port}/x",  # hex first octet
        "http://127.0.0.1.:{port}/x",  # trailing dot: same host, must not crash
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (never reached here)
    ],
)
@pytest.mark.timing
def test_allowed_hosts_sees_through_url_spellings(recorder, spelling):
    url = spelling.format(rec=f"127.0.0.2:{recorder.port}", port=recorder.port)
    # connect_timeout 10 s: a connection attempted to a black hole (169.254.169.254) takes
    # that long, a refusal before any connect takes milliseconds; 3 s between the two
    # leaves a loaded machine room (the recorder's count is the check for the others)
    with client(allowed_hosts=["127.0.0.1"], max_attempts=1, connect_timeout=10.0) as c:
        t0 = time.monotonic()
        r = fetch(c, url)
        elapsed = time.monotonic() - t0
    assert recorder.connections == 0, f"{url} reached 127.0.0.2"
    if "127.0.0.1." in url:
        return  # the allowed host itself, or refused: both fine, no connection to the recorder
    assert r.error, f"{url} was not refused"
    assert elapsed < 3.0, f"refusal took {elapsed:.1f}s: was a connection attempted?"


# ---- slow and silent servers --------------------------------------------------------------


@needs_client
@pytest.mark.timing
@pytest.mark.parametrize("path", ["/drip/100000?every=0.2", "/drip-head?every=0.2", "/hang"])
def test_slow_or_silent_server_times_out(hostile, path):
    url = hostile.url(path)
    with client(timeout=2.0, max_attempts=2, max_retry_time=6.0) as c:
        t0 = time.monotonic()
        r = fetch(c, url, wait=30)
        elapsed = time.monotonic() - t0
    assert_clear_error(r, url)
    # 2 attempts x timeout 2 s + one backoff (<= backoff_base 0.1 s) = ~4.1 s; without the
    # timeout the drip lasts 100000 x 0.2 s and /hang until the server's 90 s lifetime
    assert elapsed < 12, f"took {elapsed:.1f}s with timeout=2 and 2 attempts"


@needs_client
@pytest.mark.timing
def test_low_speed_timeout_ends_a_silent_transfer(hostile):
    # The total timeout is long; the low-speed guard (no progress for 1 s) must fire.
    url = hostile.url("/hang")
    with client(timeout=60.0, low_speed_time=1.0, max_attempts=1) as c:
        t0 = time.monotonic()
        r = fetch(c, url, wait=30)
        elapsed = time.monotonic() - t0
    assert_clear_error(r, url)
    # curl checks the speed once a second: it fires after 1-2 s; the total timeout is 60 s
    assert elapsed < 20, f"low_speed_time=1 took {elapsed:.1f}s"


@needs_client
@pytest.mark.timing
def test_close_while_transfers_hang_is_prompt(hostile):
    c = client(timeout=60.0, max_attempts=1)
    for i in range(20):
        c.submit(hostile.url(f"/hang?i={i}"))
    time.sleep(0.5)
    t0 = time.monotonic()
    c.close()
    # close() aborts the transfers; one that waited for them would take the 60 s timeout
    assert time.monotonic() - t0 < 10


# ---- status codes and content --------------------------------------------------------------


@needs_client
def test_html_200_is_delivered_as_bytes_and_rejected_by_the_decoder(hostile):
    url = hostile.url("/html")
    with client() as c:
        r = fetch(c, url)
    assert r.status == 200 and r.error is None and r.body == HTML_PAGE
    if hasattr(dltc, "read_json"):
        with pytest.raises(dltc.JSONDecodeError) as ei:
            dltc.read_json(r.body)
        assert ei.value.offset == 0


@needs_client
@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_non_retryable_4xx_names_status_url_and_body(hostile, status):
    url = hostile.url(f"/status/{status}")
    with client(max_attempts=3) as c:
        r = fetch(c, url)
    assert_clear_error(r, url)
    assert str(status) in r.error
    assert "from the hostile server" in r.error  # first 200 bytes of the body
    assert hostile.connections == 1, "a non-retryable 4xx was retried"


# ---- TLS -------------------------------------------------------------------------------------


@needs_client
@pytest.mark.parametrize("which", ["good", "self_signed", "expired", "wrong_host"])
def test_tls_refused_by_default(certs, which):
    with HostileServer(tls=getattr(certs, which), lifetime=30) as s:
        url = s.url("/ok")
        with client(max_attempts=1) as c:
            r = fetch(c, url)
    # Nothing here is signed by a system CA: verification is on by default.
    assert_clear_error(r, url)


@needs_client
@pytest.mark.parametrize(
    "which,ca,ok",
    [
        ("good", "ca", True),
        ("self_signed", "self", True),
        ("expired", "ca", False),
        ("wrong_host", "ca", False),
        ("self_signed", "ca", False),
        ("good", "self", False),
    ],
)
def test_tls_accepted_only_with_the_right_ca_file(certs, which, ca, ok):
    ca_file = certs.ca if ca == "ca" else certs.self_signed[0]
    with HostileServer(tls=getattr(certs, which), lifetime=30) as s:
        url = s.url("/ok")
        with client(max_attempts=1, ca_file=ca_file) as c:
            r = fetch(c, url)
    if ok:
        assert r.error is None and r.status == 200 and b"ok1" in r.body
    else:
        assert_clear_error(r, url)


# ---- secrets ---------------------------------------------------------------------------------


@needs_client
@pytest.mark.parametrize(
    "path", ["/status/401", "/status/500", "/echo/403", "/hang", "/redirect-loop/0"]
)
def test_authorization_and_cookie_never_in_errors_or_logs(hostile, caplog, path):
    url = hostile.url(path)
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={COOKIE}"}
    caplog.set_level(logging.DEBUG)
    with client(headers=headers, timeout=2.0, max_attempts=2, max_redirects=3) as c:
        r = fetch(c, url)
        stats = repr(c.stats())
    assert r.error
    # The request did carry the header (else the test proves nothing).
    assert any(SECRET in q["headers"].get("authorization", "") for q in hostile.requests)
    for text in (r.error, repr(r), stats, caplog.text):
        assert SECRET not in text and COOKIE not in text, text[:500]


@needs_client
def test_credentials_not_forwarded_on_cross_host_redirect(hostile, recorder):
    # Even when cross-host redirects are allowed, the Authorization header and cookies stay home.
    url = hostile.url("/redirect?to=" + recorder.url("/ok"))
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={COOKIE}"}
    with client(headers=headers, same_host_redirects=False, max_attempts=1) as c:
        fetch(c, url)
    for q in recorder.requests:
        blob = repr(q)
        assert SECRET not in blob and COOKIE not in blob, f"credentials sent to {recorder.host}"


# ---- pathological JSON through the decoder -------------------------------------------------


def decode(data: bytes, **plan):
    """Run one document through a fresh Decoder with selector "games"; -> (rows, tables)."""
    p = {"selector": "games", "infer": True}
    p.update(plan)
    d = Decoder(p)
    n = d.feed(data, source_url="http://127.0.0.1/hostile")
    import pyarrow as pa

    tables = {k: pa.table(v) for k, v in d.flush().items()}
    return n, tables


def assert_json_error(ei, data: bytes, near: int | None = None, path_part: str | None = None):
    e = ei.value
    assert isinstance(e, ValueError)
    assert isinstance(e.offset, int) and 0 <= e.offset <= len(data), e.offset
    assert isinstance(e.path, str) and e.path.startswith("$"), e.path
    if near is not None:
        assert abs(e.offset - near) <= 8, f"offset {e.offset}, expected near {near}: {e}"
    if path_part is not None:
        assert path_part in e.path, e.path


@needs_decoder
@pytest.mark.parametrize("make", [deep_array, deep_object], ids=["arrays", "objects"])
def test_nesting_100000_deep_is_a_limit_error(make):
    data = make(100_000)
    with PeakRSS() as mem, pytest.raises(dltc.JSONDecodeError) as ei:
        decode(data)
    assert_json_error(ei, data)
    # Stopped at the depth cap (1024 + a few levels), not after walking the whole input.
    assert ei.value.offset < 1024 * 5 + 64, ei.value.offset
    mem.check(32)


@needs_decoder
def test_string_over_max_string_is_a_limit_error():
    n = 8 * MB
    data = b'{"games":[{"uuid":"s1","pgn":"' + b"a" * n + b'"}]}'
    with PeakRSS() as mem, pytest.raises(dltc.JSONDecodeError) as ei:
        decode(data, max_string=1 * MB)
    assert_json_error(ei, data, path_part="pgn")
    mem.check(3 * n / MB + 16)


@needs_decoder
def test_string_over_default_max_string():
    # One string just over the 64 MB default: an error, not a 64 MB column.
    n = (64 << 20) + 1024
    data = bytearray(b'{"games":[{"uuid":"s1","pgn":"')
    data += b"a" * n
    data += b'"}]}'
    with PeakRSS() as mem, pytest.raises(dltc.JSONDecodeError) as ei:
        decode(bytes(data))
    assert_json_error(ei, data, path_part="pgn")
    del data
    mem.check(2 * 64 + 32 + 64)  # the input copy and at most one string's worth


@needs_decoder
@pytest.mark.parametrize("name", sorted(INVALID_UTF8))
def test_invalid_utf8_is_an_error_at_its_offset(name):
    data = INVALID_UTF8[name]
    bad = next(i for i, b in enumerate(data) if b >= 0x80)
    with pytest.raises(dltc.JSONDecodeError) as ei:
        decode(data)
    assert_json_error(ei, data, near=bad, path_part="games")


@needs_decoder
@pytest.mark.parametrize("name", sorted(NUL_BYTES))
def test_raw_nul_bytes_are_errors(name):
    data = NUL_BYTES[name]
    with pytest.raises(dltc.JSONDecodeError) as ei:
        decode(data)
    assert_json_error(ei, data, near=data.index(b"\x00"))


@needs_decoder
def test_escaped_nul_is_kept_not_truncated():
    data = b'{"games":[{"uuid":"a\\u0000b","pgn":"x\\u0000"}]}'
    n, tables = decode(data)
    assert n == 1
    row = tables[()].to_pylist()[0]
    assert row["uuid"] == "a\x00b" and row["pgn"] == "x\x00"


@needs_decoder
@pytest.mark.timing
@pytest.mark.parametrize("mode", ["evolve", "discard_value", "discard_row", "freeze"])
def test_number_with_10000_digits_is_never_silently_wrong(mode):
    data = big_number(10_000)
    plan = {
        "columns": [{"path": ["uuid"], "type": "text"}, {"path": ["end_time"], "type": "bigint"}],
        "contract": {"columns": "evolve", "data_type": mode},
    }
    t0 = time.monotonic()
    try:
        n, tables = decode(data, **plan)
    except dltc.JSONDecodeError as e:
        assert e.path and "end_time" in e.path, e.path
        return
    finally:
        # one pass over 10 KB takes microseconds; 5 s only fails a parse that is quadratic
        # (or worse) in the digits, with three orders of magnitude of slack for a loaded box
        assert time.monotonic() - t0 < 5
    root = tables.get(())
    if root is not None and "end_time" in root.column_names:
        # An int64 cannot hold it: a wrapped or clamped value would be silent corruption.
        assert root.column("end_time").null_count == root.num_rows
    rejects = tables.get("_dltc_rejects")
    in_variant = root is not None and any(
        c.startswith("end_time\x1f") for c in root.column_names)
    assert in_variant or (rejects is not None and rejects.num_rows >= 1), (
        f"the 10,000-digit value vanished under {mode}")
    if rejects is not None and rejects.num_rows:
        rec = rejects.to_pylist()[0]
        assert rec["reason"] and rec["source_url"] == "http://127.0.0.1/hostile"
        assert "end_time" in rec["path"]


@needs_decoder
@pytest.mark.parametrize(
    "data",
    [HTML_PAGE, b"", b"   ", b'{"games":[{"uuid":"a"}', b'{"games":[{"uuid":"a"}]}{"games":[]}',
     b"\xef\xbb\xbf\xef\xbb\xbf{}", b'{"games":[{"uuid":"a",}]}', b'{"games":[{"uuid":"a"}]]'],
    ids=["html", "empty", "blank", "truncated", "two_documents", "double_bom", "trailing_comma",
         "extra_bracket"],
)
def test_malformed_documents_raise_with_offset_and_roll_back(data):
    d = Decoder({"selector": "games", "infer": True})
    with pytest.raises(dltc.JSONDecodeError) as ei:
        d.feed(data, source_url="http://127.0.0.1/x")
    assert_json_error(ei, data)
    # The failed document left nothing behind; the decoder still works.
    assert d.feed(b'{"games":[{"uuid":"ok"}]}') == 1
    out = d.flush()
    import pyarrow as pa

    assert pa.table(out[()]).column("uuid").to_pylist() == ["ok"]


@pytest.mark.skipif(not hasattr(dltc, "read_json"), reason="dltc.read_json not built yet")
@pytest.mark.parametrize(
    "data",
    [HTML_PAGE, deep_array(100_000), INVALID_UTF8["ff_fe"], NUL_BYTES["raw_nul_in_string"]],
    ids=["html", "deep", "utf8", "nul"],
)
def test_read_json_raises_clean_errors(data):
    with pytest.raises(dltc.JSONDecodeError) as ei:
        dltc.read_json(data)
    assert isinstance(ei.value.offset, int) and isinstance(ei.value.path, str)


# ---- the chess source against hostile data ---------------------------------------------------

try:
    import dltc.chess as _chess  # noqa: F401
    import dltc.replica as R
    from dltc.bench.chaos import (
        chess_source,
        error_text,
        game_uuids,
        make_pipeline,
        players_of,
        rejects,
    )

    HAVE_CHESS = Client is not None and Decoder is not None
except ImportError:
    HAVE_CHESS = False
needs_chess = pytest.mark.skipif(not HAVE_CHESS, reason="chess source / replica not built yet")


@pytest.fixture
def chess_data(tmp_path):
    d = tmp_path / "replica"
    R.generate(str(d), players=3, months=2, seed=31, now="2024-07-10")
    return d


def _archives_file(d, player):
    return d / "pub" / "player" / player / "games" / "archives.json"


@needs_chess
def test_chess_off_host_archive_urls_are_refused_and_nothing_is_sent(
        chess_data, tmp_path, recorder, caplog):
    players = players_of(chess_data)
    want = set(R.load_games(str(chess_data), players))  # before the list is made hostile
    victim = players[0]
    f = _archives_file(chess_data, victim)
    doc = json.loads(f.read_text())
    legit = list(doc["archives"])
    hostile_urls = [
        recorder.url(f"/pub/player/{victim}/games/2024/06"),  # another host
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # link-local
        "{{BASE}}/pub/player/" + players[1] + "/games/2024/06",  # another player's path
        "{{BASE}}/pub/player/" + victim + "/games/2024/06/../../../../../callback/user/popup/x",
        "{{BASE}}/pub/player/" + victim + "/games/2024/06?x=@127.0.0.2",
        f"http://127.0.0.2:{recorder.port}/pub/player/{victim}/games/2024/06#{{{{BASE}}}}",
        None, 42, {"url": "x"},
    ]
    doc["archives"] = legit + hostile_urls
    f.write_text(json.dumps(doc, separators=(",", ":")))
    caplog.set_level(logging.WARNING)
    pipe, db = make_pipeline(tmp_path / "work")
    with R.serve(str(chess_data)) as api:
        try:
            pipe.run(chess_source(api.base_url, players, None, None))
            failed = None
        except Exception as e:  # a clear error is acceptable too, if it names the URL
            failed = error_text(e)
    assert recorder.connections == 0, "an off-host archive URL was requested"
    if failed is not None:
        assert "169.254.169.254" in failed or "127.0.0.2" in failed, failed[:2000]
    else:
        # the legitimate games are loaded, and the refusal is visible in the log
        assert set(game_uuids(db)) == want
        assert "169.254.169.254" in caplog.text and "127.0.0.2" in caplog.text


@needs_chess
@pytest.mark.parametrize("kind", ["html", "deep", "bad_utf8", "nul", "truncated"])
def test_chess_hostile_archive_body_fails_naming_the_url(chess_data, tmp_path, kind):
    players = players_of(chess_data)
    victim = players[1]
    month_files = sorted((chess_data / "pub/player" / victim / "games").glob("*/*.json"))
    target = month_files[0]
    body = {
        "html": HTML_PAGE,
        "deep": deep_array(100_000),
        "bad_utf8": INVALID_UTF8["ff_fe"],
        "nul": NUL_BYTES["raw_nul_in_string"],
        "truncated": target.read_bytes()[: len(target.read_bytes()) // 2],
    }[kind]
    target.write_bytes(body)
    month = f"{target.parent.name}/{target.stem}"
    pipe, db = make_pipeline(tmp_path / "work")
    with R.serve(str(chess_data)) as api:
        url = f"{api.base_url}/pub/player/{victim}/games/{month}"
        with PeakRSS() as mem, pytest.raises(Exception) as ei:
            pipe.run(chess_source(api.base_url, players, None, None, max_attempts=2))
    text = error_text(ei.value)
    assert url in text, f"error does not name {url}:\n{text[:2000]}"
    assert game_uuids(db) == [], "a failed run committed games"
    mem.check(256)


@needs_chess
def test_chess_token_never_in_error_log_or_rejects(chess_data, tmp_path, caplog):
    players = players_of(chess_data)
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"s={COOKIE}"}
    caplog.set_level(logging.DEBUG)
    first = sorted((chess_data / "pub/player" / players[0] / "games").glob("*/*.json"))[0]
    bad = f"/pub/player/{players[0]}/games/{first.parent.name}/{first.stem}"
    pipe, db = make_pipeline(tmp_path / "work")
    # 1. a run that fails for good
    with R.serve(str(chess_data), faults=f"seed=1,fail_path={bad}") as api:
        with pytest.raises(Exception) as ei:
            pipe.run(chess_source(api.base_url, players, None, None, max_attempts=2,
                                  client_options={"headers": headers}))
    text = error_text(ei.value)
    assert bad in text
    # 2. a run whose contract discards drifted rows into _dltc_rejects
    with R.serve(str(chess_data), faults="seed=2,drift_extra=0.5") as api:
        pipe.run(chess_source(api.base_url, players, None, None,
                              client_options={"headers": headers},
                              schema_contract={"columns": "discard_row"}))
    rows = rejects(db)
    assert rows, "drift_extra=0.5 under discard_row must leave reject records"
    rej = repr(rows)
    for blob in (text, caplog.text, rej):
        assert SECRET not in blob and COOKIE not in blob


@needs_chess
def test_chess_tls_needs_the_ca_file(chess_data, tmp_path):
    players = players_of(chess_data)
    pipe, db = make_pipeline(tmp_path / "work")
    with R.serve(str(chess_data), tls=True) as api:
        assert api.base_url.startswith("https://")
        with pytest.raises(Exception) as ei:  # the replica's per-run CA is not trusted
            pipe.run(chess_source(api.base_url, players, None, None, max_attempts=1))
        assert api.base_url in error_text(ei.value)
        assert game_uuids(db) == []
        pipe.run(chess_source(api.base_url, players, None, None, ca_file=api.ca_file))
    assert set(game_uuids(db)) == set(R.load_games(str(chess_data), players))
