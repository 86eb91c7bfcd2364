"""The engine as a REST client (dltc.Client): methods, bodies, params, headers,
response headers, final_url, auth (bearer, api_key, http_basic, OAuth2 client
credentials), set_limits in flight, and no secret in any message.

Everything goes through a real HTTP server on loopback: `Api` below, a small
threaded server with an /echo route (method, path, headers and body as JSON), auth
routes and an OAuth2 token endpoint that counts its fetches and can revoke tokens.
What dlt puts on the wire is taken from dlt itself (its auth classes applied to a
requests.PreparedRequest), not restated here.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
import time
import urllib.parse

import pytest
import requests

from dlt.sources.helpers.rest_client.auth import (
    APIKeyAuth,
    BearerTokenAuth,
    HttpBasicAuth,
    OAuth2ClientCredentials,
)
from dltc import _native

Client = _native.Client
ASAN = bool(os.environ.get("DLTC_EXPECT_ASAN"))

SECRET_TOKEN = "tok-SECRET-bearer-9f8e"
SECRET_KEY = "key SECRET/+&=9f8e"  # needs form-encoding in a query
SECRET_PW = "pw-SECRET-9f8e"
CLIENT_ID = "client-ID-7c6d"
CLIENT_SECRET = "client-SECRET-5b4a"


# ---- the server ---------------------------------------------------------------------------


class Api:
    """A threaded loopback API. State is guarded by `lock`; tokens are
    "at-<n>-<client secret hash>" strings valid for `expires_in` seconds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self.inflight = 0
        self.arrivals: list[tuple[int, int]] = []  # (seq, in flight at arrival, itself included)
        self.token_requests: list[dict] = []  # form fields + headers of each token request
        self.tokens: dict[str, float] = {}  # token -> expiry (server clock)
        self.issued: list[tuple[float, float]] = []  # (issue time, expiry)
        self.expires_in: float | None = 3600
        self.token_delay = 0.0
        self.token_status = 200
        self.seen_auth: list[str] = []
        api = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, status, obj=None, headers=(), raw=None):
                out = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            def any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
                echo = {
                    "method": self.command,
                    "path": self.path,
                    "headers": list(self.headers.items()),
                    "body": base64.b64encode(body).decode(),
                }
                route = u.path
                if route == "/echo":
                    return self.reply(200, echo, headers=[("X-Multi", "a"), ("x-multi", "b"), ("X-Case", "Up")])
                if route == "/flaky":  # the first `fail` hits of key answer 503
                    key = q["key"][0]
                    with api.lock:
                        api.hits[key] = api.hits.get(key, 0) + 1
                        n_hit = api.hits[key]
                    if n_hit <= int(q.get("fail", ["1"])[0]):
                        return self.reply(503, {"error": "try again"}, headers=[("Retry-After", "0")])
                    return self.reply(200, echo)
                if route == "/redirect":
                    self.send_response(int(q["code"][0]))
                    self.send_header("Location", q["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route == "/slow":
                    with api.lock:
                        api.inflight += 1
                        api.arrivals.append((int(q["seq"][0]), api.inflight))
                    time.sleep(float(q["s"][0]))
                    with api.lock:
                        api.inflight -= 1
                    return self.reply(200, {"ok": True})
                if route == "/token":
                    form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                    with api.lock:
                        api.token_requests.append({"form": form, "headers": dict(self.headers.items()), "raw": body})
                        seq = len(api.token_requests)
                        status, delay, exp = api.token_status, api.token_delay, api.expires_in
                    time.sleep(delay)
                    if status != 200:  # an error body that quotes the request, secrets included
                        return self.reply(status, {"error": "invalid_client", "got": body.decode()})
                    tok = f"at-{seq}-{abs(hash(CLIENT_SECRET)) % 10**8}"
                    now = time.monotonic()
                    with api.lock:
                        api.tokens[tok] = now + (exp if exp is not None else 3600)
                        api.issued.append((now, now + (exp if exp is not None else 3600)))
                    out = {"access_token": tok, "token_type": "bearer"}
                    if exp is not None:
                        out["expires_in"] = exp
                    return self.reply(200, out)
                if route in ("/protected", "/always401"):
                    a = self.headers.get("Authorization", "")
                    tok = a[7:] if a.startswith("Bearer ") else ""
                    with api.lock:
                        api.seen_auth.append(tok)
                        ok = route == "/protected" and api.tokens.get(tok, 0) > time.monotonic()
                    if not ok:  # quotes the token it refused
                        return self.reply(401, {"error": "bad token", "token": tok})
                    return self.reply(200, echo)
                return self.reply(404, {"error": "no route", "path": self.path})

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = any

        class S(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # 100+ connections at once must not overflow the backlog

        self.srv = S(("127.0.0.1", 0), H)
        self.base = f"http://127.0.0.1:{self.srv.server_port}"
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def revoke_all(self):
        with self.lock:
            self.tokens.clear()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def api():
    a = Api()
    yield a
    a.close()


def run(client: Client, n: int | None = None, timeout: float = 60) -> list:
    """Every pending response (ordered by id)."""
    out = []
    deadline = time.monotonic() + timeout
    while client.pending and time.monotonic() < deadline:
        r = client.next(timeout=1)
        if r is not None:
            out.append(r)
    assert not client.pending, "responses missing"
    if n is not None:
        assert len(out) == n
    return sorted(out, key=lambda r: r.id)


def echo_of(r) -> dict:
    assert r.error is None, r.error
    e = json.loads(r.body)
    e["body"] = base64.b64decode(e["body"])
    e["hdr"] = {k.lower(): v for k, v in e["headers"]}
    return e


def prepared(method="GET", url="http://x/", **kw) -> requests.PreparedRequest:
    return requests.Request(method, url, **kw).prepare()


# ---- methods, bodies, params, headers -------------------------------------------------------


def test_methods_and_bodies_as_requests_sends_them(api):
    with Client() as c:
        cases = [
            ("GET", {}),
            ("POST", {"json": {"a": [1, 2.5, None], "é": "x"}}),
            ("PUT", {"data": {"k": "v w", "n": 3, "none": None, "l": ["a", "b"]}}),
            ("PATCH", {"body": b"raw\x00bytes", "headers": {"Content-Type": "application/octet-stream"}}),
            ("DELETE", {}),
            ("OPTIONS", {}),
            ("POST", {"data": "plain text é"}),
            ("post", {}),
            ("POST", {"json": [1], "headers": {"content-type": "application/vnd.x+json"}}),
        ]
        ids = [c.submit(api.base + "/echo", method=m, tag=i, **kw) for i, (m, kw) in enumerate(cases)]
        head = c.submit(api.base + "/echo", method="HEAD")
        rs = {r.id: r for r in run(c, len(cases) + 1)}
    for i, (m, kw) in zip(ids, cases):
        r = rs[i]
        e = echo_of(r)
        # what requests would send for the same arguments
        p = prepared(m, api.base + "/echo", **{("data" if k == "body" else k): v for k, v in kw.items()})
        assert e["method"] == p.method == r.method
        want_body = p.body.encode() if isinstance(p.body, str) else (p.body or b"")
        assert e["body"] == want_body
        assert e["hdr"].get("content-type") == p.headers.get("Content-Type")
        assert e["hdr"].get("content-length", "0" if m.upper() != "GET" else None) == p.headers.get("Content-Length")
        assert "expect" not in e["hdr"]
    assert rs[head].method == "HEAD" and rs[head].status == 200 and rs[head].body == b""
    assert rs[head].header("content-length")  # the headers of a HEAD still arrive


def test_body_kwargs_are_exclusive_and_checked(api):
    with Client() as c:
        with pytest.raises(TypeError):
            c.submit(api.base + "/echo", method="POST", json={}, data={})
        with pytest.raises(ValueError):
            c.submit(api.base + "/echo", method="GET X")
        with pytest.raises(ValueError):
            c.submit(api.base + "/echo", json={"x": float("nan")})  # allow_nan=False, as requests
        with pytest.raises(ValueError):
            c.submit(api.base + "/echo", headers={"X-A": "a\r\nX-B: b"})


PARAM_CASES = [
    ("/echo", {"q": "a b/é&=?#+", "t": True, "f": False, "x": 1.5, "i": 0, "none": None}),
    ("/echo?x=1", [("x", 2), ("l", [1, "two", None]), ("e", "")]),
    ("/echo?", {"a": "1"}),
    ("/echo?x=1#frag", {"a": "~._-"}),
    ("/echo", [(b"raw", b"by tes"), ("k", ("t", "u"))]),
    ("/echo", {}),
]


@pytest.mark.parametrize("path,params", PARAM_CASES)
def test_params_encoded_like_requests(api, path, params):
    want = prepared("GET", api.base + path, params=params).url
    with Client() as c:
        c.submit(api.base + path, params=params)
        (r,) = run(c, 1)
    assert r.url == r.final_url == want
    assert echo_of(r)["path"] == "/" + want.split("/", 3)[3].split("#")[0]


def test_headers_override_client_headers_case_insensitively(api):
    with Client(headers={"X-Client": "c", "Accept": "x/y", "X-Drop": "d"}) as c:
        c.submit(api.base + "/echo", headers={"accept": "app/json", "X-Req": "r", "X-Drop": None})
        c.submit(api.base + "/echo", headers=[("X-Req", "pairs")])
        c.submit(api.base + "/echo")
        a, b, plain = run(c, 3)
    ea, eb, ep = echo_of(a), echo_of(b), echo_of(plain)
    names_a = [k.lower() for k, _ in ea["headers"]]
    assert names_a.count("accept") == 1 and ea["hdr"]["accept"] == "app/json"
    assert ea["hdr"]["x-client"] == "c" and ea["hdr"]["x-req"] == "r" and "x-drop" not in ea["hdr"]
    assert eb["hdr"]["accept"] == "x/y" and eb["hdr"]["x-req"] == "pairs" and eb["hdr"]["x-drop"] == "d"
    assert ep["hdr"]["accept"] == "x/y" and "x-req" not in ep["hdr"]


def test_response_headers_in_order_with_case(api):
    with Client() as c:
        c.submit(api.base + "/echo")
        (r,) = run(c, 1)
    names = [k for k, _ in r.headers]
    # the server's order (BaseHTTPRequestHandler: Server, Date, then ours)
    assert names[:2] == ["Server", "Date"]
    assert [kv for kv in r.headers if kv[0].lower() == "x-multi"] == [("X-Multi", "a"), ("x-multi", "b")]
    assert r.header("X-MULTI") == "a" and r.header("x-case") == "Up"
    assert r.header("nope") is None and r.header("nope", "d") == "d"
    assert r.header("content-length") == str(len(r.body))
    assert r.headers is r.headers  # built once


def test_body_resent_on_retry_and_307_but_not_303(api):
    with Client(backoff_base=0.01) as c:
        c.submit(api.base + "/flaky?key=retry1&fail=2", method="PUT", json={"n": 1})
        to = urllib.parse.quote(api.base + "/echo", safe="")
        c.submit(api.base + f"/redirect?code=307&to={to}", method="POST", data={"a": "1"})
        c.submit(api.base + f"/redirect?code=308&to={to}", method="PATCH", body=b"xyz")
        c.submit(api.base + f"/redirect?code=303&to={to}", method="POST", json={"gone": 1})
        c.submit(api.base + f"/redirect?code=301&to={to}", method="DELETE")
        retry, r307, r308, r303, r301 = run(c, 5)
    e = echo_of(retry)
    assert retry.attempts == 3 and e["method"] == "PUT" and json.loads(e["body"]) == {"n": 1}
    e = echo_of(r307)
    assert e["method"] == "POST" and e["body"] == b"a=1" and r307.method == "POST"
    assert e["hdr"]["content-type"] == "application/x-www-form-urlencoded"
    assert echo_of(r308)["body"] == b"xyz" and r308.method == "PATCH"
    # requests' rebuild_method: 303 -> GET without body or its headers; 301 keeps DELETE
    e = echo_of(r303)
    assert e["method"] == "GET" == r303.method and e["body"] == b"" and "content-type" not in e["hdr"]
    assert echo_of(r301)["method"] == "DELETE"
    for r in (r307, r308, r303, r301):
        assert r.final_url == api.base + "/echo" and r.url.startswith(api.base + "/redirect")


# ---- auth ---------------------------------------------------------------------------------


def dlt_headers(auth, url="http://x/echo"):
    p = prepared("GET", url)
    auth(p)
    return p


def test_static_auth_types_match_dlt(api):
    specs = {
        "bearer": ({"type": "bearer", "token": SECRET_TOKEN}, BearerTokenAuth(token=SECRET_TOKEN)),
        "api_key_header": (
            {"type": "api_key", "name": "X-API-Key", "location": "header", "api_key": SECRET_KEY},
            APIKeyAuth(name="X-API-Key", api_key=SECRET_KEY, location="header"),
        ),
        "api_key_query": (
            {"type": "api_key", "name": "api key", "location": "query", "api_key": SECRET_KEY},
            APIKeyAuth(name="api key", api_key=SECRET_KEY, location="query"),
        ),
        "basic": (
            {"type": "http_basic", "username": "ü ser", "password": SECRET_PW},
            HttpBasicAuth(username="ü ser", password=SECRET_PW),
        ),
    }
    with Client(auth=specs["bearer"][0], headers={"Authorization": "Bearer client-wide", "X-API-Key": "cw"}) as c:
        handles = {k: c.add_auth(s) for k, (s, _) in specs.items()}
        assert c.add_auth(dict(specs["basic"][0])) == handles["basic"]  # same spec, same handle
        ids = {k: c.submit(api.base + "/echo?x=1", auth=h) for k, h in handles.items()}
        ids["default"] = c.submit(api.base + "/echo?x=1")
        ids["dict"] = c.submit(api.base + "/echo?x=1", auth=specs["api_key_header"][0])
        ids["none"] = c.submit(api.base + "/echo?x=1", auth=False)
        rs = {r.id: r for r in run(c, len(ids))}
    for k, (spec, dlt_auth) in specs.items():
        r = rs[ids[k]]
        e = echo_of(r)
        want = dlt_headers(dlt_auth, api.base + "/echo?x=1")
        if k == "api_key_query":
            assert e["path"] == "/" + want.url.split("/", 3)[3]
            assert r.url == r.final_url == api.base + "/echo?x=1"  # the key stays out
            assert e["hdr"]["authorization"] == "Bearer client-wide"
        else:
            name = "X-API-Key" if k == "api_key_header" else "Authorization"
            assert e["hdr"][name.lower()] == want.headers[name]
            assert [n.lower() for n, _ in e["headers"]].count(name.lower()) == 1
    assert echo_of(rs[ids["default"]])["hdr"]["authorization"] == f"Bearer {SECRET_TOKEN}"
    assert echo_of(rs[ids["dict"]])["hdr"]["x-api-key"] == SECRET_KEY
    assert echo_of(rs[ids["none"]])["hdr"]["authorization"] == "Bearer client-wide"


def test_auth_spec_errors_name_keys_not_values():
    with Client() as c:
        bad = [
            {"type": "bearer"},
            {"type": "nope", "token": SECRET_TOKEN},
            {"type": "api_key", "api_key": SECRET_KEY, "location": "cookie"},
            {"type": "bearer", "token": SECRET_TOKEN + "\r\nX: y"},
            {"type": "oauth2_client_credentials", "access_token_url": "ftp://x/t", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            {"type": "http_basic", "username": "u"},
        ]
        for spec in bad:
            with pytest.raises((ValueError, TypeError)) as ei:
                c.add_auth(spec)
            assert_no_secret(str(ei.value))
        with pytest.raises(ValueError):
            c.submit("http://127.0.0.1:9/", auth=99)
    with pytest.raises(ValueError) as ei:
        Client(allowed_hosts=["127.0.0.1"], auth={"type": "oauth2_client_credentials",
               "access_token_url": "http://evil.example/t", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert "allowed_hosts" in str(ei.value)
    assert_no_secret(str(ei.value))


def oauth_spec(api, **kw):
    return {
        "type": "oauth2_client_credentials",
        "access_token_url": api.base + "/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **kw,
    }


def reset_tokens(api, **kw):
    with api.lock:
        api.token_requests.clear()
        api.tokens.clear()
        api.issued.clear()
        api.seen_auth.clear()
        api.expires_in = kw.get("expires_in", 3600)
        api.token_delay = kw.get("token_delay", 0.0)
        api.token_status = kw.get("token_status", 200)


def test_oauth2_one_fetch_for_32_concurrent_requests(api):
    # the token endpoint answers slowly, so all 32 requests are started (and must wait)
    # before the token arrives: a second fetch would be visible in token_requests
    reset_tokens(api, token_delay=0.3)
    extra = {"scope": "read write", "audience": "x y", "grant_type": "client_credentials"}
    with Client(max_concurrency=64, initial_concurrency=64, headers={"X-Client": "c"}) as c:
        h = c.add_auth(oauth_spec(api, access_token_request_data=extra))
        for i in range(32):
            c.submit(api.base + f"/protected?i={i}", auth=h)
        rs = run(c, 32)
        assert c.stats()["token_fetches"] == 1
    assert all(r.status == 200 and r.error is None for r in rs), [r.error for r in rs]
    assert len(api.token_requests) == 1
    tr = api.token_requests[0]
    # dlt's own token request, field for field
    dlt_auth = OAuth2ClientCredentials(access_token_url=api.base + "/token", client_id=CLIENT_ID,
                                       client_secret=CLIENT_SECRET, access_token_request_data=extra)
    want = dlt_auth.build_access_token_request()
    p = prepared("POST", api.base + "/token", **want)
    assert tr["raw"] == p.body.encode()
    assert tr["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert "X-Client" not in tr["headers"]  # client headers are not sent to the token endpoint
    assert "Authorization" not in tr["headers"]
    assert echo_of(rs[0])["hdr"]["authorization"].startswith("Bearer at-1-")


def test_oauth2_client_auth_basic(api):
    reset_tokens(api)
    with Client(auth=oauth_spec(api, client_auth="basic")) as c:
        c.submit(api.base + "/protected")
        (r,) = run(c, 1)
    assert r.status == 200
    tr = api.token_requests[0]
    assert tr["form"] == {"grant_type": "client_credentials"}
    assert tr["headers"]["Authorization"] == requests.auth._basic_auth_str(CLIENT_ID, CLIENT_SECRET)


def test_oauth2_refreshed_before_expiry(api):
    # tokens live 2 s; the engine refetches once within its margin of expiry:
    # min(60, max(2/10, min(1, 2/2))) = 1 s, i.e. from 1 s after the first fetch,
    # while still using the old token. Requests every 0.1 s for 1.6 s trigger it.
    reset_tokens(api, expires_in=2)
    with Client(auth=oauth_spec(api)) as c:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.6:
            c.submit(api.base + "/protected")
            time.sleep(0.1)
        rs = run(c)
    assert all(r.status == 200 for r in rs), [r.error for r in rs]
    assert len(api.issued) >= 2
    (issued1, expiry1), (issued2, _) = api.issued[0], api.issued[1]
    # the refetch starts 1 s before expiry; it is answered well within that second
    # unless the machine stalls for a whole second
    assert issued2 < expiry1
    assert issued2 - issued1 >= 0.9  # not refetched early: refresh_at is 1 s after the fetch


def test_oauth2_refetch_once_after_401_then_error(api):
    reset_tokens(api)
    with Client(auth=oauth_spec(api)) as c:
        c.submit(api.base + "/protected")
        (first,) = run(c, 1)
        api.revoke_all()  # the server forgets the token: the next request gets a 401
        c.submit(api.base + "/protected")
        (second,) = run(c, 1)
        c.submit(api.base + "/always401")
        (bad,) = run(c, 1)
        fetches = c.stats()["token_fetches"]
    assert first.status == 200 and first.attempts == 1
    assert second.status == 200 and second.attempts == 2 and second.error is None
    assert len(api.token_requests) == 3 == fetches  # initial, after the revocation, after /always401's 401
    assert bad.status == 401 and "HTTP 401" in bad.error and bad.attempts == 2
    assert_no_secret(bad.error, extra=[t for t in api.seen_auth if t])


def test_oauth2_token_failure_fails_waiting_requests_without_secrets(api):
    reset_tokens(api, token_status=400, token_delay=0.2)
    with Client(auth=oauth_spec(api)) as c:
        for _ in range(5):
            c.submit(api.base + "/protected")
        rs = run(c, 5)
        st = c.stats()
    assert all(r.error and "OAuth2 token request" in r.error and "400" in r.error for r in rs)
    assert st["token_fetches"] == 1
    for r in rs:
        assert_no_secret(r.error, repr(r), r.url)
    assert_no_secret(repr(st))


# ---- limits -------------------------------------------------------------------------------


def test_set_limits_lowers_concurrency_in_flight(api):
    with api.lock:
        api.arrivals.clear()
    old, new, n = 16, 2, 100
    with Client(max_concurrency=old, initial_concurrency=old) as c:
        for i in range(n):
            c.submit(api.base + f"/slow?seq={i}&s=0.05")
        while True:  # wait until the old limit is in use
            with api.lock:
                if len(api.arrivals) >= old:
                    break
            time.sleep(0.005)
        c.set_limits(max_concurrency=new)
        with api.lock:
            arrived = len(api.arrivals)
        rs = run(c, n)
    assert all(r.status == 200 for r in rs)
    # Requests start in submit order (one host, no retries). When set_limits returned,
    # at most `arrived` had reached the server and at most `old` more were started;
    # every later one was started by the engine under the new limit, while no more than
    # `new` transfers were in flight, and a transfer is in flight at the server only
    # while it is in flight in the engine.
    later = [inflight for seq, inflight in api.arrivals if seq >= arrived + old]
    assert len(later) >= n - arrived - old > 0
    assert max(later) <= new
    # and before the change the old limit was really used
    assert max(f for _, f in api.arrivals) > new


def test_set_limits_rps_and_errors(api):
    with Client() as c:
        with pytest.raises(ValueError):
            c.set_limits(max_concurrency=0)
        c.set_limits(rps=10)
        t0 = time.monotonic()
        for i in range(15):
            c.submit(api.base + "/echo")
        rs = run(c, 15)
        took = time.monotonic() - t0
        c.set_limits(rps=0, max_concurrency=8)  # unlimited again
        for i in range(5):
            c.submit(api.base + "/echo")
        run(c, 5)
    assert all(r.status == 200 for r in rs)
    # token bucket: burst 10 then 10/s, so 15 requests need at least 0.5 s (a lower
    # bound: a loaded machine can only make it slower)
    assert took >= 0.45
    c2 = Client()
    c2.close()
    with pytest.raises(ValueError):
        c2.set_limits(rps=1)


def test_set_limits_from_other_threads_while_fetching(api):
    with Client(max_concurrency=8, initial_concurrency=8) as c:
        for i in range(200):
            c.submit(api.base + "/echo")
        errors = []

        def flip():
            try:
                for k in range(20):
                    c.set_limits(max_concurrency=1 + k % 4, rps=None if k % 2 else 0)
            except Exception as ex:  # noqa: BLE001
                errors.append(ex)

        ts = [threading.Thread(target=flip) for _ in range(2)]
        for t in ts:
            t.start()
        rs = run(c, 200)
        for t in ts:
            t.join()
    assert not errors and all(r.status == 200 for r in rs)


# ---- secrets ------------------------------------------------------------------------------

ALL_SECRETS = [SECRET_TOKEN, SECRET_KEY, urllib.parse.quote_plus(SECRET_KEY), SECRET_PW, CLIENT_SECRET, CLIENT_ID,
               base64.b64encode(f"u:{SECRET_PW}".encode()).decode()]


def assert_no_secret(*texts, extra=()):
    secrets = list(ALL_SECRETS) + [t for t in extra]
    for t in texts:
        for s in secrets:
            assert s not in str(t), f"secret leaked: {str(t)[:200]}"


def test_no_secret_in_errors_reprs_stats(api):
    specs = [
        {"type": "bearer", "token": SECRET_TOKEN},
        {"type": "api_key", "name": "k", "location": "query", "api_key": SECRET_KEY},
        {"type": "api_key", "name": "X-Key", "api_key": SECRET_KEY},
        {"type": "http_basic", "username": "u", "password": SECRET_PW},
    ]
    texts = []
    with Client(max_attempts=2, backoff_base=0.01) as c:
        hs = [c.add_auth(s) for s in specs]
        for h in hs:
            # 404 and 503 bodies quote the request path (with the query key); the
            # refused host and the dead port fail before/without an HTTP answer
            c.submit(api.base + "/nothing-here", auth=h)
            c.submit(api.base + "/flaky?key=sec%d&fail=9" % h, auth=h)
            c.submit("http://127.0.0.1:9/dead", auth=h)
            c.submit("ftp://127.0.0.1/x", auth=h)
        rs = run(c, 16)
        texts += [repr(c), repr(c.stats())]
    assert all(r.error for r in rs)
    for r in rs:
        texts += [r.error, repr(r), r.url, r.final_url, repr(r.headers)]
    assert_no_secret(*texts)
