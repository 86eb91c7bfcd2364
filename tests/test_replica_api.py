"""The generic API replica (dltc.replica.api) through real HTTP clients and dlt itself:
data determinism, every route's shape, each paginator's stop condition (walked by dlt's own
paginators), auth, token expiry, since/until, advance + reload, TLS/HTTP2, latency, 429s,
faults, and cleanup of its processes."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from dltc.replica.api import advance, generate, load_records, serve
from dltc.replica.server import ReplicaError

pytestmark = pytest.mark.timeout(120)

NOW = "2024-06-15T00:00:00Z"


def req(api, method, path, body=None, headers=None, timeout=10.0):
    """(status, [(header, value)...], body bytes) of one request on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        c.close()


def get(api, path, headers=None):
    """(status, {lower header: value}, parsed JSON body or None)."""
    st, hs, body = req(api, "GET", path, headers=headers)
    return st, {k.lower(): v for k, v in hs}, (json.loads(body) if body else None)


def tree_digest(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def group(pgid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat", "rb").read()
            except OSError:
                continue
            f = stat[stat.rfind(b")") + 2:].split()
            if int(f[2]) == pgid and f[0] != b"Z":
                out.append(int(d))
    return out


def wait_gone(pids, timeout=10.0) -> list[int]:
    end = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < end:
        alive = [p for p in alive if p in group_of(p)]
        time.sleep(0.05)
    return alive


def group_of(pid: int) -> list[int]:
    try:
        stat = open(f"/proc/{pid}/stat", "rb").read()
    except OSError:
        return []
    f = stat[stat.rfind(b")") + 2:].split()
    return [] if f[0] == b"Z" else [pid]


# ---- data ---------------------------------------------------------------------------------

def test_data_is_deterministic_by_seed(tmp_path):
    args = dict(orgs=2, repos_per_org=2, issues_per_repo=12, comments_per_issue=2, now=NOW,
                page_size=5, comment_page_size=1)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, seed=7, **args)
    generate(b, seed=7, **args)
    generate(c, seed=8, **args)
    da, db, dc = tree_digest(a), tree_digest(b), tree_digest(c)
    assert da == db and len(da) > 50
    assert da["records/issues.json"] != dc["records/issues.json"]
    with pytest.raises(ValueError, match="issues_per_repo"):
        generate(tmp_path / "x", issues_per_repo=-1)
    with pytest.raises(ValueError, match="not an api replica data directory"):
        generate(tmp_path, seed=1)        # not empty, not a data dir: refused, left alone
    with pytest.raises(ReplicaError, match="api generate"):
        serve(tmp_path).__enter__()


def test_records_shape(api_replica_data):
    recs = load_records(api_replica_data)
    assert [len(recs[k]) for k in ("orgs", "repos", "issues")] == [2, 4, 120]
    issues = recs["issues"]
    assert [it["id"] for it in issues] == list(range(1, 121))
    for it in issues:
        assert set(it["user"]) == {"login", "id"}
        assert all(set(lb) == {"id", "name", "color"} for lb in it["labels"])
        assert it["created_at"] <= it["updated_at"] <= NOW
        assert it["updated_at"].endswith("Z") and len(it["updated_at"]) == 20
        assert it["comments"] == len(recs["comments"].get(f"{it['repository']}#{it['number']}", []))
    # optional fields take both forms; "priority" is sometimes absent (not null)
    for key in ("milestone", "body", "closed_at"):
        vals = [it[key] for it in issues]
        assert None in vals and any(v is not None for v in vals), key
    assert 0 < sum("priority" in it for it in issues) < len(issues)
    assert 0 < sum(it["locked"] for it in issues) < len(issues)
    assert {len(it["labels"]) for it in issues} >= {0, 1, 2}


# ---- /echo, redirects, errors ---------------------------------------------------------------

def test_echo_any_method(api_replica):
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        body = b'{"k": "v \xc3\xa9"}' if method != "GET" else None
        st, _, raw = req(api_replica, method, "/echo/a%20b?x=1&x=2&y=%C3%A9+z&empty=",
                         body=body, headers={"X-Custom": "one", "x-lower": "two",
                                             "X_Under": "3", "Content-Type": "application/json"})
        assert st == 200
        doc = json.loads(raw)
        assert doc["method"] == method
        assert doc["path"] == "/echo/a%20b"
        assert doc["query"] == [["x", "1"], ["x", "2"], ["y", "é z"], ["empty", ""]]
        assert doc["raw_query"] == "x=1&x=2&y=%C3%A9+z&empty="
        names = [h[0] for h in doc["headers"]]
        assert ["X-Custom", "one"] in doc["headers"] and ["x-lower", "two"] in doc["headers"]
        assert ["X_Under", "3"] in doc["headers"]
        assert names.index("X-Custom") < names.index("x-lower")
        assert doc["body"] == (body.decode() if body else "")
    st, hs, raw = req(api_replica, "GET", "/echo?_status=201&_header=X-One:%201&_header=X-Two:2")
    assert st == 201 and ("X-One", "1") in hs and ("X-Two", "2") in hs
    assert [h for h, _ in hs].index("X-One") < [h for h, _ in hs].index("X-Two")
    st, hs, _ = req(api_replica, "GET", "/redirect?to=/echo%3Fr%3D1&status=307")
    assert st == 307 and dict(hs)["Location"] == "/echo?r=1"


def test_error_routes(api_replica):
    st, _, doc = get(api_replica, "/errors/404")
    assert st == 404 and doc["error"] == "not_found"
    st, _, doc = get(api_replica, "/errors/422")
    assert st == 422 and doc["errors"]
    st, _, raw = req(api_replica, "GET", "/errors/204")
    assert st == 204 and raw == b""
    st, _, doc = get(api_replica, "/errors/200_error")
    assert st == 200 and doc["error"]["code"]
    st, hs, doc = get(api_replica, "/errors/429?retry_after=3")
    assert st == 429 and hs["retry-after"] == "3"
    key = f"k{time.monotonic_ns()}"
    seen = [get(api_replica, f"/errors/flaky?key={key}&fail=2&kind=200_error")[2] for _ in range(3)]
    assert "error" in seen[0] and "error" in seen[1] and seen[2]["attempt"] == 3
    assert get(api_replica, f"/errors/flaky?key={key}x&kind=503")[0] == 503
    for bad in ("/issues/page_number?page=0", "/issues/offset?limit=5000",
                "/issues/page_number?since=yesterday", "/issues/cursor?cursor=forged",
                "/issues/page_number?state=maybe"):
        st, _, doc = get(api_replica, bad)
        assert st == 422 and doc["error"] == "validation_failed", bad
    for missing in ("/nope", "/orgs/nobody", "/repos/a/b", "/issues/unknown_style"):
        st, _, doc = get(api_replica, missing)
        assert st == 404 and doc["error"] == "not_found", missing
    st, _, _ = req(api_replica, "POST", "/issues/page_number", body=b"{}")
    assert st == 405


def test_resources_and_children_404(api_replica, api_replica_data):
    recs = load_records(api_replica_data)
    st, hs, orgs = get(api_replica, "/orgs")
    assert st == 200 and orgs == recs["orgs"] and hs.get("x-replica-source") == "file"
    org = recs["orgs"][1]["login"]
    assert get(api_replica, f"/orgs/{org}")[2] == recs["orgs"][1]
    repos = get(api_replica, f"/orgs/{org}/repos")[2]["repos"]
    assert repos == [r for r in recs["repos"] if r["owner"]["login"] == org]
    assert get(api_replica, f"/repos/{repos[0]['full_name']}")[2] == repos[0]
    locked = next(it for it in recs["issues"] if it["locked"])
    free = next(it for it in recs["issues"] if not it["locked"] and it["comments"] == 3)
    assert get(api_replica, f"/repos/{free['repository']}/issues/{free['number']}")[2] == free
    st, _, doc = get(api_replica, f"/repos/{locked['repository']}/issues/{locked['number']}/comments")
    assert st == 404 and "locked" in doc["message"]
    st, hs, doc = get(api_replica, f"/repos/{free['repository']}/issues/{free['number']}/comments")
    assert st == 200 and hs.get("x-replica-source") == "file"
    # comment_page_size 10: one page, next null; per_page=1 chains three absolute links
    want = recs["comments"][f"{free['repository']}#{free['number']}"]
    assert doc == {"comments": want, "next": None}
    path, got = f"/repos/{free['repository']}/issues/{free['number']}/comments?per_page=1", []
    while path:
        doc = get(api_replica, path)[2]
        got += doc["comments"]
        path = doc["next"] and doc["next"][len(api_replica.base_url):]
        assert doc["next"] is None or doc["next"].startswith(api_replica.base_url)
    assert got == want


def test_nginx_pages_equal_app_pages(api_replica):
    """A page file and the app's rendering of the same page (state=all sends it to the app)
    are the same bytes, for every fast-path family."""
    for path in ("/issues/page_number?page=2", "/issues/page_number?page=3",
                 "/issues/offset?offset=100&limit=100", "/issues/cursor",
                 "/issues/cursor?cursor=cMi4xMDA", "/orgs"):
        st1, h1, b1 = req(api_replica, "GET", path)
        st2, h2, b2 = req(api_replica, "GET", path + ("&" if "?" in path else "?") + "state=all")
        assert st1 == st2 == 200, path
        assert dict(h1).get("X-Replica-Source") == "file" and "X-Replica-Source" not in dict(h2)
        assert b1 == b2, path


# ---- paginators, walked by dlt's own RESTClient -----------------------------------------------

PAGINATORS = [
    # (path, params, dlt paginator, data_selector, extra requests after the last data page)
    ("issues/page_number", {"per_page": 7},
     {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": "total_pages"}, "items", 0),
    ("issues/page_number_nototal", {"per_page": 7},
     {"type": "page_number", "base_page": 1, "total_path": None}, "items", 1),
    ("issues/offset", {"limit": 7}, {"type": "offset", "limit": 7, "total_path": "total"}, "items", 0),
    ("issues/offset_nototal", {}, {"type": "offset", "limit": 7, "total_path": None}, "items", 1),
    ("issues/offset_has_more", {},
     {"type": "offset", "limit": 7, "total_path": None, "has_more_path": "has_more"}, "items", 0),
    ("issues/cursor", {"per_page": 7},
     {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"}, "items", 0),
    ("issues/json_link", {"per_page": 7}, {"type": "json_link", "next_url_path": "next"}, "items", 0),
    ("issues/json_link_relative", {"per_page": 7},
     {"type": "json_link", "next_url_path": "links.next"}, "links_next", 0),
    ("issues/header_link", {"per_page": 7}, {"type": "header_link"}, None, 0),
    ("issues/nested", {"per_page": 7},
     {"type": "page_number", "base_page": 1, "total_path": "meta.pagination.total_pages"},
     "data.issues", 0),
    ("issues/header_cursor", {"per_page": 7},
     {"type": "header_cursor", "cursor_key": "X-Next-Cursor", "cursor_param": "cursor"}, None, 0),
]


def _paginate(api, path, params, paginator, selector, method="GET", json_body=None):
    from dlt.sources.helpers.rest_client import RESTClient
    from dlt.sources.rest_api.config_setup import create_paginator

    sel = {"links_next": "items"}.get(selector, selector)
    client = RESTClient(base_url=api.base_url)
    ids = []
    for page in client.paginate(path, method=method, params=dict(params), json=json_body,
                                paginator=create_paginator(paginator), data_selector=sel):
        ids += [r["id"] for r in page]
    return ids


@pytest.mark.parametrize("path,params,paginator,selector,extra", PAGINATORS,
                         ids=[p[0].split("/")[-1] for p in PAGINATORS])
def test_paginator_stop_condition(api_replica, api_replica_data, path, params, paginator,
                                  selector, extra):
    recs = load_records(api_replica_data)
    since = "2024-01-01T00:00:00Z"
    want = [it["id"] for it in recs["issues"] if it["updated_at"] >= since]
    before = api_replica.stats()["by_route"].get(path, 0)
    ids = _paginate(api_replica, path, {**params, "since": since}, paginator, selector)
    assert ids == want
    pages = -(-len(want) // 7)
    assert api_replica.stats()["by_route"].get(path, 0) - before == pages + extra


def test_post_search_pages_in_the_body(api_replica, api_replica_data):
    recs = load_records(api_replica_data)
    want = [it["id"] for it in recs["issues"] if it["state"] == "open"]
    paginator = {"type": "offset", "limit": 9, "offset_body_path": "page.offset",
                 "limit_body_path": "page.limit", "total_path": "total"}
    before = api_replica.stats()["by_route"].get("issues/search", 0)
    ids = _paginate(api_replica, "issues/search", {}, paginator, "results", method="POST",
                    json_body={"filter": {"state": "open"}})
    assert ids == want
    assert api_replica.stats()["by_route"]["issues/search"] - before == -(-len(want) // 9)
    # the same route paged by a cursor in the request body; the last page has null
    paginator = {"type": "cursor", "cursor_path": "next_cursor", "cursor_body_path": "cursor"}
    ids = _paginate(api_replica, "issues/search", {}, paginator, "results", method="POST",
                    json_body={"filter": {"state": "open"}, "page": {"limit": 9}})
    assert ids == want
    assert api_replica.stats()["by_route"]["issues/search"] - before == 2 * -(-len(want) // 9)


def test_hostile_routes(api_replica):
    a = get(api_replica, "/hostile/cursor_loop")[2]
    b = get(api_replica, "/hostile/cursor_loop?cursor=again")[2]
    assert a == b and a["next_cursor"] == "again" and len(a["items"]) == 1
    assert get(api_replica, "/hostile/offhost_json")[2]["next"].startswith("http://offhost.invalid")
    st, hs, _ = get(api_replica, "/hostile/offhost_link")
    assert "offhost.invalid" in hs["link"]
    doc = get(api_replica, "/hostile/endless_offset?offset=1000000&limit=3")[2]
    assert [r["id"] for r in doc["items"]] == [1000000, 1000001, 1000002]


# ---- since / until --------------------------------------------------------------------------

def test_since_until_filters(api_replica, api_replica_data):
    recs = load_records(api_replica_data)
    since, until = "2024-02-01T00:00:00Z", "2024-05-01T00:00:00Z"
    want = [it for it in recs["issues"] if since <= it["updated_at"] < until]
    assert 0 < len(want) < 120
    for s, u in ((since, until), ("2024-02-01T00:00:00+00:00", "2024-05-01"),
                 ("1706745600", "1714521600")):
        doc = get(api_replica, "/issues/offset?" + urlencode({"since": s, "until": u, "limit": 1000}))[2]
        assert doc["items"] == want and doc["total"] == len(want), (s, u)
    doc = get(api_replica, "/issues/page_number?" + urlencode(
        {"since": since, "sort": "updated", "direction": "desc", "per_page": 1000}))[2]
    got = [it["updated_at"] for it in doc["items"]]
    assert got == sorted(got, reverse=True) and min(got) >= since
    repo = recs["repos"][0]["full_name"]
    st, hs, page = get(api_replica, f"/repos/{repo}/issues?state=open&per_page=5")
    assert all(it["state"] == "open" and it["repository"] == repo for it in page)
    assert 'rel="next"' in hs["link"] and "state=open" in hs["link"]


# ---- auth -----------------------------------------------------------------------------------

def _basic(user, pw):
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def _token(api, **form):
    data = {"grant_type": "client_credentials", "client_id": api.auth["client_id"],
            "client_secret": api.auth["client_secret"], **form}
    st, _, raw = req(api, "POST", "/oauth/token", body=urlencode(data),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    return st, json.loads(raw)


def test_auth_accepts_and_rejects(api_replica):
    a = api_replica.auth
    cases = {
        "bearer": ({"Authorization": f"Bearer {a['bearer_token']}"}, "", {"Authorization": "Bearer x"}),
        "api_key_header": ({"X-API-Key": a["api_key"]}, "", {"X-API-Key": "x"}),
        "api_key_query": ({}, f"?api_key={a['api_key']}", {}),
        "basic": ({"Authorization": _basic(a["basic_user"], a["basic_password"])}, "",
                  {"Authorization": _basic(a["basic_user"], "wrong")}),
    }
    for kind, (good, q, bad) in cases.items():
        st, _, doc = get(api_replica, f"/auth/{kind}/issues{q}", headers=good)
        assert st == 200 and doc["total_count"] == 120, kind
        st, hs, raw = req(api_replica, "GET", f"/auth/{kind}/issues?api_key=x", headers=bad)
        assert st == 401, kind
        assert json.loads(raw)["error"] == "unauthorized"
        for secret in (a["bearer_token"], a["api_key"], a["basic_password"]):
            assert secret.encode() not in raw
    st, tok = _token(api_replica)
    assert st == 200 and tok["token_type"] == "Bearer" and tok["expires_in"] == 3600
    hdr = {"Authorization": f"Bearer {tok['access_token']}"}
    assert get(api_replica, "/auth/oauth2/issues", headers=hdr)[0] == 200
    assert get(api_replica, "/auth/oauth2/issues", headers={"Authorization": "Bearer nope"})[0] == 401
    # Basic client authentication, wrong secret, wrong grant
    st, _, raw = req(api_replica, "POST", "/oauth/token", body="grant_type=client_credentials",
                     headers={"Authorization": _basic(a["client_id"], a["client_secret"]),
                              "Content-Type": "application/x-www-form-urlencoded"})
    assert st == 200 and json.loads(raw)["access_token"]
    assert _token(api_replica, client_secret="wrong") == (401, {"error": "invalid_client"})
    assert _token(api_replica, grant_type="password")[1]["error"] == "unsupported_grant_type"


def test_oauth2_tokens_expire_and_are_counted(api_replica_data):
    """token_ttl=1 s: a token works at once and gets 401 invalid_token after 1 s; dlt's
    OAuth2ClientCredentials then fetches exactly one new token per expiry."""
    from dlt.sources.helpers.rest_client import RESTClient
    from dlt.sources.helpers.rest_client.auth import OAuth2ClientCredentials

    with serve(api_replica_data, token_ttl=1) as api:
        st, tok = _token(api)
        assert st == 200 and tok["expires_in"] == 1
        hdr = {"Authorization": f"Bearer {tok['access_token']}"}
        assert get(api, "/auth/oauth2/issues", headers=hdr)[0] == 200
        time.sleep(1.2)                       # past the 1 s lifetime
        st, hs, doc = get(api, "/auth/oauth2/issues", headers=hdr)
        assert st == 401 and doc["error"] == "invalid_token" and "invalid_token" in hs["www-authenticate"]
        assert api.stats()["tokens_issued"] == 1
        auth = OAuth2ClientCredentials(access_token_url=api.token_url,
                                       client_id=api.auth["client_id"],
                                       client_secret=api.auth["client_secret"])
        client = RESTClient(base_url=api.base_url, auth=auth)
        assert client.get("/auth/oauth2/issues").status_code == 200
        assert client.get("/auth/oauth2/issues").status_code == 200   # cached token
        assert api.stats()["tokens_issued"] == 2
        time.sleep(1.2)
        assert client.get("/auth/oauth2/issues").status_code == 200   # refreshed once
        st = api.stats()
        assert st["tokens_issued"] == 3 and st["token_requests"] == 3
        api.revoke_tokens()
        assert get(api, "/auth/oauth2/issues", headers={"Authorization": f"Bearer {auth.access_token}"})[0] == 401


# ---- dlt's rest_api_source end to end -------------------------------------------------------

def test_dlt_rest_api_source_loads_the_documented_configs(api_replica, api_replica_data, tmp_path):
    import dlt
    from dlt.sources.rest_api import rest_api_source

    recs = load_records(api_replica_data)
    a = api_replica.auth
    cfg = {
        "client": {"base_url": api_replica.base_url + "/"},
        "resource_defaults": {"primary_key": "id", "write_disposition": "replace"},
        "resources": [
            {"name": "orgs", "endpoint": {"path": "orgs", "paginator": "single_page"}},
            {"name": "issues", "endpoint": {
                "path": "issues/page_number", "data_selector": "items",
                "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                              "total_path": "total_pages"}}},
            {"name": "comments", "endpoint": {
                "path": "repos/{resources.issues.repository}/issues/{resources.issues.number}/comments",
                "params": {"per_page": 2}, "data_selector": "comments",
                "paginator": {"type": "json_link", "next_url_path": "next"},
                "response_actions": [{"status_code": 404, "action": "ignore"}]}},
            {"name": "open_issues", "endpoint": {
                "path": "issues/search", "method": "POST", "json": {"filter": {"state": "open"}},
                "data_selector": "results",
                "paginator": {"type": "offset", "limit": 50, "offset_body_path": "page.offset",
                              "limit_body_path": "page.limit", "total_path": "total"}}},
            {"name": "basic_issues", "endpoint": {
                "path": "issues/header_cursor", "params": {"per_page": 40},
                "paginator": {"type": "header_cursor", "cursor_key": "X-Next-Cursor"},
                "auth": {"type": "http_basic", "username": a["basic_user"],
                         "password": a["basic_password"]}}},
        ],
    }
    cfg["resources"][4]["endpoint"]["path"] = "auth/basic/issues"
    cfg["resources"][4]["endpoint"]["paginator"] = {"type": "page_number", "base_page": 1,
                                                    "total_path": "total_pages"}
    cfg["resources"][4]["endpoint"]["data_selector"] = "items"
    p = dlt.pipeline("api_replica_e2e", destination=dlt.destinations.duckdb(str(tmp_path / "e2e.duckdb")),
                     dataset_name="d", pipelines_dir=str(tmp_path / "pipes"))
    p.run(rest_api_source(cfg))
    with p.sql_client() as c:
        def ids(t):
            return sorted(r[0] for r in c.execute_sql(f"select id from {t}"))
        assert ids("orgs") == sorted(o["id"] for o in recs["orgs"])
        assert ids("issues") == [it["id"] for it in recs["issues"]]
        assert ids("basic_issues") == [it["id"] for it in recs["issues"]]
        assert ids("open_issues") == [it["id"] for it in recs["issues"] if it["state"] == "open"]
        locked = {f"{it['repository']}#{it['number']}" for it in recs["issues"] if it["locked"]}
        assert ids("comments") == sorted(cm["id"] for k, v in recs["comments"].items()
                                         if k not in locked for cm in v)
        # nested lists become child tables: labels of issues
        n_labels = sum(len(it["labels"]) for it in recs["issues"])
        assert c.execute_sql("select count(*) from issues__labels")[0][0] == n_labels


def test_incremental_advance_reload(tmp_path):
    """Both incremental forms load only what changed after `advance` + reload."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    data = tmp_path / "data"
    generate(data, orgs=1, repos_per_org=2, issues_per_repo=20, comments_per_issue=0, seed=3,
             now=NOW, page_size=10)
    with serve(data) as api:
        def cfg():
            return {
                "client": {"base_url": api.base_url},
                "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
                "resources": [
                    {"name": "by_param", "endpoint": {
                        "path": "/issues/offset", "data_selector": "items",
                        "paginator": {"type": "offset", "limit": 10, "total_path": "total"},
                        "params": {"since": {"type": "incremental", "cursor_path": "updated_at",
                                             "initial_value": "2024-01-01T00:00:00Z"}}}},
                    {"name": "by_endpoint", "endpoint": {
                        "path": "/issues/cursor", "data_selector": "items",
                        "paginator": {"type": "cursor", "cursor_path": "next_cursor",
                                      "cursor_param": "cursor"},
                        "incremental": {"start_param": "since", "cursor_path": "updated_at",
                                        "initial_value": "2024-01-01T00:00:00Z"}}},
                    {"name": "bounded", "endpoint": {
                        "path": "/issues/json_link", "data_selector": "items",
                        "paginator": {"type": "json_link", "next_url_path": "next"},
                        "incremental": {"start_param": "since", "end_param": "until",
                                        "cursor_path": "updated_at",
                                        "initial_value": "2024-01-01T00:00:00Z",
                                        "end_value": "2024-04-01T00:00:00Z"}}},
                ],
            }
        p = dlt.pipeline("api_replica_incr", destination=dlt.destinations.duckdb(str(tmp_path / "i.duckdb")),
                         dataset_name="d", pipelines_dir=str(tmp_path / "pipes"))
        p.run(rest_api_source(cfg()))
        first = load_records(data)["issues"]
        with p.sql_client() as c:
            got = sorted(r[0] for r in c.execute_sql("select id from bounded"))
        assert got == [it["id"] for it in first
                       if "2024-01-01T00:00:00Z" <= it["updated_at"] < "2024-04-01T00:00:00Z"]
        assert 0 < len(got) < len(first)
        changed = advance(data, new_issues=3, updated_issues=4)
        api.reload()
        assert api.stats()["generation"] == 1
        log0 = len(api.stats()["log"])
        info = p.run(rest_api_source(cfg()))
        recs = load_records(data)["issues"]
        with p.sql_client() as c:
            for t in ("by_param", "by_endpoint"):
                rows = dict(c.execute_sql(f"select id, title from {t}"))
                want = [it for it in recs if it["updated_at"] >= "2024-01-01T00:00:00Z"]
                assert sorted(rows) == [it["id"] for it in want], t
                assert all(rows[it["id"]] == it["title"] for it in want), t
        assert len(recs) == len(first) + 3
        # the second run asked only for records at or after the old maximum updated_at
        old_max = max(it["updated_at"] for it in first)
        log = api.stats()["log"][log0:]
        assert log and all("since=" in t for _, t in log)
        assert any("until=2024-04-01" in t for _, t in log)
        got = p.last_trace.last_normalize_info.row_counts
        assert got.get("by_param", 0) == got.get("by_endpoint", 0) >= len(changed["added"]) + len(changed["updated"])
        assert got["by_param"] == sum(1 for it in recs if it["updated_at"] >= old_max)


# ---- nginx options ---------------------------------------------------------------------------

def test_tls_http2_latency_and_429(api_replica_data):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    with serve(api_replica_data, tls=True, latency_ms=300, jitter_ms=50, max_parallel=2,
               retry_after=2) as api:
        url = api.base_url + "/issues/page_number?page=1"
        p = subprocess.run(["curl", "-sS", "--http2", "--cacert", api.ca_file, "-o", "/dev/null",
                            "-w", "%{http_version} %{http_code} %{time_total}", url],
                           capture_output=True, text=True, timeout=30, env=env)
        ver, code, secs = p.stdout.split()
        # every answer waits 300 +- 50 ms in echo_sleep first: 250 ms is a lower bound
        assert (ver, code) == ("2", "200") and float(secs) >= 0.25, p.stderr
        # 6 parallel streams on one connection against max_parallel=2: some get 429 +
        # Retry-After (each is held 300 ms, so they overlap however loaded the machine is)
        p = subprocess.run(["curl", "-s", "--http2", "--cacert", api.ca_file, "--parallel",
                            "--parallel-immediate", "-D", "-", "-o", "/dev/null"] +
                           [api.base_url + f"/echo?i={i}" for i in range(6)],
                           capture_output=True, text=True, timeout=60, env=env)
        heads = p.stdout.lower()
        assert heads.count(" 429") >= 1 and "retry-after: 2" in heads
        assert heads.count(" 200") >= 2


def test_faults_follow_the_plan(api_replica_data):
    """Which request gets which fault is the plan's pure function of (seed, target, n):
    predicted here with faults.parse_spec(spec).decide, then observed through nginx."""
    from dltc.replica.faults import parse_spec

    spec = "seed=5,p500=0.3,drift_extra=0.2,fail_path=/issues/offset_has_more"
    plan = parse_spec(spec)
    targets = [f"/issues/page_number?page={i % 2 + 1}" for i in range(20)]
    seen: dict[str, int] = {}
    want = []
    for t in targets:
        n = seen.get(t, 0)
        seen[t] = n + 1
        want.append(plan.decide(t, n))
    assert "p500" in want and None in want and "drift_extra" in want
    with serve(api_replica_data, faults=spec) as api:
        got = [req(api, "GET", t) for t in targets]
        assert req(api, "GET", "/issues/offset_has_more")[0] == 500
        assert req(api, "GET", "/echo")[0] == 200          # never faulted
        counts = api.fault_counts()
    for kind, (st, _, body) in zip(want, got):
        assert st == (500 if kind == "p500" else 200)
        if st == 200:
            items = json.loads(body)["items"]
            assert all(("dltc_drift_extra" in it) == (kind == "drift_extra") for it in items)
    assert counts["p500"] == want.count("p500") and counts["fail_path"] == 1
    assert counts["drift_extra"] == want.count("drift_extra")


# ---- CLI, SIGHUP reload and cleanup ----------------------------------------------------------

def test_cli_generate_advance_hup_and_cleanup(tmp_path, capsys):
    from dltc.replica.__main__ import main

    py = [sys.executable, "-m", "dltc.replica", "api"]
    data = tmp_path / "d"
    assert main(["api", "generate", "--out", str(data), "--orgs", "1", "--repos-per-org", "1",
                 "--issues-per-repo", "5", "--seed", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["issues"] == 5
    assert main(["api", "serve", "--data", str(tmp_path / "none")]) == 2
    assert "api generate" in capsys.readouterr().err
    p = subprocess.Popen(py + ["serve", "--data", str(data), "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(p.stdout.readline() or "{}")
        assert info, p.stderr.read()
        pids = group(info["pid"])
        assert len(pids) == 4 and info["app_pid"] in pids

        class A:
            port = int(info["base_url"].rsplit(":", 1)[1])

        assert get(A, "/issues/page_number")[2]["total_count"] == 5
        assert main(["api", "advance", "--data", str(data), "--new-issues", "2"]) == 0
        assert json.loads(capsys.readouterr().out)["added"] == 2
        os.kill(info["serve_pid"], signal.SIGHUP)
        end = time.monotonic() + 20
        while get(A, "/issues/page_number")[2]["total_count"] != 7:
            assert time.monotonic() < end, "no reload after SIGHUP"
            time.sleep(0.1)
        assert get(A, "/issues/page_number?state=all")[2]["total_count"] == 7
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0
        assert wait_gone(pids) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_exception_inside_serve_stops_everything(api_replica_data):
    with pytest.raises(RuntimeError, match="a failing test"):
        with serve(api_replica_data) as api:
            pids, prefix = api.pids(), api.prefix
            assert len(pids) == 4
            raise RuntimeError("a failing test")
    assert wait_gone(pids) == []
    assert not prefix.exists()
