"""The generic API replica (dltc.replica.api) through real HTTP clients and dlt itself:
data determinism, every route's shape, each paginator's stop condition, auth, token
expiry, since/until, advance + reload, and cleanup of its processes."""

from __future__ import annotations

import base64
import http.client
import json
import time
from urllib.parse import urlencode, urlsplit

import pytest

from dltc.replica.api import advance, generate, load_records, serve

pytestmark = pytest.mark.timeout(120)


def req(api, method, path, body=None, headers=None, timeout=10.0):
    """(status, [(header, value)...], body bytes) of one request on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        c.close()


def get_json(api, path, headers=None):
    st, hs, body = req(api, "GET", path, headers=headers)
    return st, {k.lower(): v for k, v in hs}, (json.loads(body) if body else None)


def test_echo_any_method(api_replica):
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        body = b'{"k": "v \xc3\xa9"}' if method != "GET" else None
        st, _, raw = req(api_replica, method, "/echo/a%20b?x=1&x=2&y=%C3%A9+z&empty=",
                         body=body, headers={"X-Custom": "one", "x-lower": "two",
                                             "Content-Type": "application/json"})
        assert st == 200
        doc = json.loads(raw)
        assert doc["method"] == method
        assert doc["path"] == "/echo/a%20b"
        assert doc["query"] == [["x", "1"], ["x", "2"], ["y", "é z"], ["empty", ""]]
        assert doc["raw_query"] == "x=1&x=2&y=%C3%A9+z&empty="
        names = [h[0] for h in doc["headers"]]
        assert ["X-Custom", "one"] in doc["headers"] and ["x-lower", "two"] in doc["headers"]
        assert names.index("X-Custom") < names.index("x-lower")
        assert doc["body"] == (body.decode() if body else "")
