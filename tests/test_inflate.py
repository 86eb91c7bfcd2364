"""Client(decompress="caller") + dltc._native.inflate: the engine hands bodies over still
encoded and the consumer decodes them (libdeflate / libbrotlidec) under the same caps.

Covers: replica bodies fetched raw and inflated equal the engine-decoded ones; the
request asks for gzip and br; max_body counts wire bytes; an unsupported
Content-Encoding is an error response; inflate's caps (ratio bomb, max_size), corrupt,
truncated and multi-member gzip, identity, bad arguments; several threads at once.
"""

from __future__ import annotations

import gzip
import threading
import zlib

import pytest

from dltc import _native
from dltc import replica as R

from test_engine import drain, expected_body, month_paths, small_paths, tiny_server  # noqa: F401

Client = _native.Client
inflate = _native.inflate


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("inflate-data")
    meta = R.generate(d, players=5, months=3, seed=23, now="2024-03-20")
    return d, meta


def fetch_all(base: str, paths: list[str], **kw) -> dict:
    with Client(**kw) as c:
        for p in paths:
            c.submit(base + p, tag=p)
        out = drain(c)
    assert len(out) == len(paths)
    return {r.tag: r for r in out}


def test_caller_bodies_inflate_to_engine_bodies(data):
    d, meta = data
    paths = month_paths(d) + small_paths(meta)
    with R.serve(d) as api:
        eng = fetch_all(api.base_url, paths)
        raw = fetch_all(api.base_url, paths, decompress="caller")
    n_gzip = 0
    for p in paths:
        e, r = eng[p], raw[p]
        assert e.error is None and r.error is None, (e.error, r.error)
        assert e.content_encoding is None
        want = expected_body(d, api.base_url, p)
        assert e.body == want
        if r.content_encoding == "gzip":
            n_gzip += 1
            assert r.body != want and len(r.body) < len(want)
            assert gzip.decompress(r.body) == want  # really gzip on the wire
        else:
            assert r.content_encoding is None and r.body == want
        assert inflate(r.body, r.content_encoding) == want
    # the month archives are well above the replica's gzip threshold
    assert n_gzip >= len(month_paths(d))


def test_caller_mode_request_and_caps(data, tiny_server):  # noqa: F811
    d, meta = data
    big = max(month_paths(d), key=lambda p: len(expected_body(d, "x", p)))
    with R.serve(d) as api:
        size = len(expected_body(d, api.base_url, big))
        wire = len(gzip.compress(expected_body(d, api.base_url, big), 1))
        mid = (wire + size) // 2
        # max_body holds wire bytes: refused by the engine under "engine", passes raw under "caller"
        with Client(max_body=mid) as c:
            c.submit(api.base_url + big)
            assert "max_body" in c.next(timeout=20).error
        with Client(max_body=mid, decompress="caller") as c:
            c.submit(api.base_url + big)
            r = c.next(timeout=20)
            assert r.error is None and r.content_encoding == "gzip" and len(r.body) < mid
        with pytest.raises(ValueError, match="max_size"):
            inflate(r.body, "gzip", max_size=mid)
        assert len(inflate(r.body, "gzip", max_size=size)) == size
        with Client(max_body=wire // 2, decompress="caller") as c:
            c.submit(api.base_url + big)
            assert "max_body" in c.next(timeout=20).error

    base, h = tiny_server
    h.routes["/json"] = (200, {"Content-Encoding": "gzip"}, gzip.compress(b'{"a":1}'))
    h.routes["/zstd"] = (200, {"Content-Encoding": "zstd"}, b"(\xb5/\xfd")
    bomb = gzip.compress(b"\0" * (20 << 20), 9)
    h.routes["/bomb"] = (200, {"Content-Encoding": "gzip"}, bomb)
    h.routes["/gone"] = (404, {"Content-Encoding": "gzip"}, gzip.compress(b'{"message":"no such'
                                                                           b' player"}'))
    with Client(decompress="caller", max_ratio=100) as c:
        c.submit(base + "/gone", tag="gone")
        c.submit(base + "/json", tag="json")
        c.submit(base + "/zstd", tag="zstd")
        c.submit(base + "/bomb", tag="bomb")
        got = {r.tag: r for r in drain(c, 30)}
    assert all(hd["Accept-Encoding"] == "gzip, br" for _, hd in h.seen)
    assert got["json"].content_encoding == "gzip" and inflate(got["json"].body, "gzip") == b'{"a":1}'
    # an encoded error body is decoded for the message
    assert "HTTP 404" in got["gone"].error and '"message":"no such player"' in got["gone"].error
    z = got["zstd"]
    assert z.body is None and "unsupported Content-Encoding 'zstd'" in z.error and "/zstd" in z.error
    # the bomb passes the engine (it decodes nothing) and stops in inflate with a clear error
    b = got["bomb"]
    assert b.error is None and b.body == bomb
    with pytest.raises(ValueError, match=r"gzip body of \d+ bytes decodes to more than .*max_ratio"):
        inflate(b.body, b.content_encoding, max_ratio=100)
    assert inflate(b.body, "gzip", max_ratio=2000) == b"\0" * (20 << 20)
    with pytest.raises(ValueError, match="decompress"):
        Client(decompress="curl")


def test_inflate_formats_and_errors():
    text = b'{"games":[' + b",".join(b'{"n":%d}' % i for i in range(50000)) + b"]}"
    g = gzip.compress(text, 6)
    assert inflate(g, "gzip") == text
    assert inflate(bytearray(g), "x-gzip") == text
    assert inflate(memoryview(g), "GZIP") == text
    # multi-member (the trailer size hint covers only the last member)
    two = gzip.compress(text[:1000]) + g
    assert inflate(two, "gzip") == text[:1000] + text
    assert inflate(g + b"\0" * 16, "gzip") == text
    with pytest.raises(ValueError, match="trailing garbage"):
        inflate(g + b"junk", "gzip")
    for cut in (1, 10, len(g) // 2, len(g) - 1):
        with pytest.raises(ValueError, match="gzip body"):
            inflate(g[:cut], "gzip")
    bad = bytearray(g)
    bad[len(g) // 2] ^= 0xFF
    with pytest.raises(ValueError, match="corrupt"):
        inflate(bytes(bad), "gzip")
    with pytest.raises(ValueError, match="not gzip"):
        inflate(zlib.compress(text), "gzip")
    # identity
    assert inflate(text, None) == text and inflate(text, "identity") == text
    with pytest.raises(ValueError, match="max_size"):
        inflate(text, None, max_size=10)
    assert inflate(b"", "gzip") == b""
    with pytest.raises(ValueError, match="unsupported Content-Encoding 'deflate'"):
        inflate(g, "deflate")
    with pytest.raises(ValueError, match="br body"):
        inflate(b"\xff\xff\xff\xff garbage", "br")
    with pytest.raises(ValueError):
        inflate(g, "gzip", max_ratio=0.5)
    with pytest.raises(TypeError):
        inflate("text", "gzip")


def test_inflate_from_threads():
    bodies = [(b"%d," % k) * (20000 + k * 3000) for k in range(8)]
    comp = [gzip.compress(b, 1) for b in bodies]
    results: dict = {}

    def work(k: int) -> None:
        for _ in range(5):
            results[k] = inflate(comp[k], "gzip")

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert [results[k] for k in range(8)] == bodies


def test_caller_mode_over_tls_http2(data):
    d, meta = data
    paths = month_paths(d)[:6]
    with R.serve(d, tls=True) as api:
        got = fetch_all(api.base_url, paths, ca_file=api.ca_file, decompress="caller")
    for p, r in got.items():
        assert r.error is None and r.http_version == "2" and r.content_encoding == "gzip"
        assert inflate(r.body, "gzip") == expected_body(d, api.base_url, p)
