"""The generic API replica's HTTP/1.1 app behind nginx (stdlib asyncio, unix socket).

It answers every route nginx does not serve from a page file: /echo, auth and the token
endpoint, filtered and dynamic pages, errors, hostile routes, and (with a fault plan) every
request, so faults can be injected. Pages nginx can serve are looked up in the served mirror
first (the same file nginx would send); otherwise they are rendered from the records with
the functions of generate.py, which wrote those files.

Run as `python -m dltc.replica.api.app CONFIG.json` by dltc.replica.api.server; not public.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import http
import json
import os
import re
import secrets
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode

from dltc.replica import faults as F
from dltc.replica.app import Response, _accepts_gzip, _head, _status_fault
from dltc.replica.api import data as G

JSON_CT = "application/json; charset=utf-8"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY = 16 << 20
LOG_KEEP = 2000

# Query strings nginx serves from page files: only numeric paging keys and a cursor.
_PAGING_KV = r"(?:(?:page|per_page|offset|limit)=[0-9]{1,9}|cursor=[A-Za-z0-9_-]{1,80})"
FAST_QUERY = re.compile(rf"^(?:{_PAGING_KV}(?:&{_PAGING_KV})*)?$")
_SLUG = r"[a-z0-9-]+"
_COMMENTS = re.compile(rf"^/repos/({_SLUG})/({_SLUG})/issues/([0-9]+)/comments$")
_REPO_ISSUES = re.compile(rf"^/repos/({_SLUG})/({_SLUG})/issues$")
_REPO_ISSUE = re.compile(rf"^/repos/({_SLUG})/({_SLUG})/issues/([0-9]+)$")
_REPO = re.compile(rf"^/repos/({_SLUG})/({_SLUG})$")
_ORG = re.compile(rf"^/orgs/({_SLUG})$")
_ORG_REPOS = re.compile(rf"^/orgs/({_SLUG})/repos$")
_AUTH = re.compile(r"^/auth/(bearer|api_key_header|api_key_query|basic|oauth2)/issues$")
NO_FAULTS = ("/echo", "/oauth/token", "/_stats", "/redirect")

DEFAULT_AUTH = {
    "bearer_token": "replica-bearer-token",
    "api_key": "replica-api-key",
    "api_key_header": "X-API-Key",
    "api_key_param": "api_key",
    "basic_user": "replica-user",
    "basic_password": "replica-password",
    "client_id": "replica-client",
    "client_secret": "replica-client-secret",
    "token_ttl": 3600.0,
}


class Reject(Exception):
    """A request the route refuses: becomes a JSON error response."""

    def __init__(self, status: int, error: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.headers = status, error, message, headers or {}


def json_response(status: int, doc, headers: dict | None = None) -> Response:
    body = doc if isinstance(doc, bytes) else G.enc(doc).encode()
    h = {"Content-Type": JSON_CT}
    h.update(headers or {})
    return Response(status, http.HTTPStatus(status).phrase, body, h)


def fast_file(method: str, path: str, query: str, meta: dict) -> str | None:
    """The mirror path (under www/) nginx serves this request from, or None. Keep in step
    with ApiReplica._conf_extra (the nginx maps)."""
    if method != "GET" or not FAST_QUERY.match(query):
        return None
    args: dict[str, str] = {}
    for part in query.split("&") if query else ():
        k, _, v = part.partition("=")
        args.setdefault(k, v)
    pp = args.get("per_page") or str(meta["page_size"])
    if path == "/orgs":
        return "pages/orgs.json"
    if path == "/issues/page_number":
        return f"pages/issues/page_number/{pp}/{args.get('page') or '1'}.json"
    if path == "/issues/offset":
        return f"pages/issues/offset/{args.get('limit') or meta['page_size']}/{args.get('offset') or '0'}.json"
    if path == "/issues/cursor":
        return f"pages/issues/cursor/{pp}/{args.get('cursor') or 'first'}.json"
    m = _COMMENTS.match(path)
    if m:
        cpp = args.get("per_page") or str(meta["comment_page_size"])
        return f"pages/comments/{m[1]}/{m[2]}/{m[3]}.{cpp}.{args.get('page') or '1'}.json"
    return None


def _first(pairs: list[tuple[str, str]]) -> dict[str, str]:
    q: dict[str, str] = {}
    for k, v in pairs:
        q.setdefault(k, v)
    return q


def _int(q: dict, name: str, default: int, lo: int, hi: int) -> int:
    v = q.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise Reject(422, "validation_failed", f"{name}={v!r} is not an integer") from None
    if not lo <= n <= hi:
        raise Reject(422, "validation_failed", f"{name}={n} is not in {lo}..{hi}")
    return n


class Api:
    def __init__(self, cfg: dict):
        self.data = Path(cfg["data_dir"])
        self.www = Path(cfg["www_dir"])
        self.base_url = cfg["base_url"]
        self.plan = F.parse_spec(cfg.get("faults"))
        self.auth = dict(DEFAULT_AUTH)
        self.auth.update(cfg.get("auth") or {})
        self.counts = {k: 0 for k in F.COUNT_KEYS}
        self.seen: dict[str, int] = {}
        self.tokens: dict[str, float] = {}           # access token -> monotonic expiry
        self.flaky: dict[str, int] = {}
        self.stats = {"requests": 0, "by_route": {}, "token_requests": 0, "tokens_issued": 0,
                      "auth_failures": {}, "reloads": 0, "log": []}
        self.reload()

    def reload(self) -> None:
        self.meta = G.load_meta(self.data)
        self._recs: dict | None = None
        self._enc: dict[int, str] = {}
        self._by_repo: dict[str, list[dict]] | None = None

    @property
    def recs(self) -> dict:
        if self._recs is None:
            self._recs = G.load_records(self.data)
            self._by_repo = {}
            for it in self._recs["issues"]:
                self._by_repo.setdefault(it["repository"], []).append(it)
        return self._recs

    def enc(self, rec: dict) -> str:
        s = self._enc.get(id(rec))
        if s is None:
            s = self._enc[id(rec)] = G.enc(rec)
        return s

    def note(self, route: str, method: str, target: str) -> None:
        st = self.stats
        st["requests"] += 1
        st["by_route"][route] = st["by_route"].get(route, 0) + 1
        st["log"].append([method, target])
        if len(st["log"]) > LOG_KEEP:
            del st["log"][: len(st["log"]) - LOG_KEEP]

    # ---- filtering -------------------------------------------------------------------

    def select(self, q: dict, issues: list[dict] | None = None) -> list[dict]:
        """Issues after since/until (on updated_at; since inclusive, until exclusive),
        state (open|closed|all) and sort (id|updated|created)."""
        items = self.recs["issues"] if issues is None else issues
        since = self._ts(q, "since")
        until = self._ts(q, "until")
        state = q.get("state") or "all"
        if state not in ("open", "closed", "all"):
            raise Reject(422, "validation_failed", f"state={state!r} is not open, closed or all")
        if since or until or state != "all":
            items = [it for it in items
                     if (since is None or it["updated_at"] >= since)
                     and (until is None or it["updated_at"] < until)
                     and (state == "all" or it["state"] == state)]
        sort = q.get("sort") or "id"
        if sort == "updated":
            items = sorted(items, key=lambda it: (it["updated_at"], it["id"]))
        elif sort == "created":
            items = sorted(items, key=lambda it: (it["created_at"], it["id"]))
        elif sort != "id":
            raise Reject(422, "validation_failed", f"sort={sort!r} is not id, updated or created")
        if (q.get("direction") or "asc") == "desc":
            items = list(reversed(items))
        return items

    @staticmethod
    def _ts(q: dict, name: str) -> str | None:
        v = q.get(name)
        if v is None or v == "":
            return None
        try:
            return G.iso(G.parse_ts(v, name))
        except (G.DataError, OverflowError, OSError, ValueError) as e:
            raise Reject(422, "validation_failed", str(e)) from None

    # ---- auth ------------------------------------------------------------------------

    def check_auth(self, kind: str, headers: dict, q: dict) -> None:
        a = self.auth
        authz = headers.get("authorization", "")
        ok = False
        challenge = 'Bearer realm="replica"'
        if kind == "bearer":
            ok = authz == f"Bearer {a['bearer_token']}"
        elif kind == "api_key_header":
            ok = headers.get(a["api_key_header"].lower()) == a["api_key"]
            challenge = ""
        elif kind == "api_key_query":
            ok = q.get(a["api_key_param"]) == a["api_key"]
            challenge = ""
        elif kind == "basic":
            challenge = 'Basic realm="replica"'
            ok = _basic(authz) == (a["basic_user"], a["basic_password"])
        elif kind == "oauth2":
            tok = authz[7:] if authz.startswith("Bearer ") else ""
            exp = self.tokens.get(tok)
            if exp is not None and exp <= time.monotonic():
                self._fail(kind)
                raise Reject(401, "invalid_token", "the access token expired",
                             {"WWW-Authenticate": 'Bearer error="invalid_token", '
                                                  'error_description="expired"'})
            ok = exp is not None
        if not ok:
            self._fail(kind)
            raise Reject(401, "unauthorized", f"missing or wrong credentials for {kind} auth",
                         {"WWW-Authenticate": challenge} if challenge else {})

    def _fail(self, kind: str) -> None:
        f = self.stats["auth_failures"]
        f[kind] = f.get(kind, 0) + 1

    def token(self, headers: dict, body: bytes) -> Response:
        self.stats["token_requests"] += 1
        ct = headers.get("content-type", "")
        try:
            if "json" in ct:
                form = {k: str(v) for k, v in json.loads(body or b"{}").items()}
            else:
                form = _first(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (ValueError, AttributeError, UnicodeDecodeError):
            return json_response(400, {"error": "invalid_request",
                                       "error_description": "body is not a form"})
        cid, csec = form.get("client_id"), form.get("client_secret")
        basic = _basic(headers.get("authorization", ""))
        if basic is not None:
            cid, csec = basic
        if form.get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type",
                                       "error_description": "grant_type must be client_credentials"})
        if (cid, csec) != (self.auth["client_id"], self.auth["client_secret"]):
            return json_response(401, {"error": "invalid_client"},
                                 {"WWW-Authenticate": 'Basic realm="replica"'})
        ttl = float(self.auth["token_ttl"])
        self.stats["tokens_issued"] += 1
        tok = f"at{self.stats['tokens_issued']}-{secrets.token_hex(12)}"
        self.tokens[tok] = time.monotonic() + ttl
        return json_response(200, {"access_token": tok, "token_type": "Bearer",
                                   "expires_in": int(ttl) if ttl == int(ttl) else ttl})

    # ---- routes ----------------------------------------------------------------------

    def route(self, method: str, path: str, query: str, headers: dict, hlist, body: bytes,
              raw_path: str | None = None) -> tuple[str, Response]:
        """(route name, response) for one request; PATH is percent-decoded, RAW_PATH not."""
        pairs = parse_qsl(query, keep_blank_values=True)
        q = _first(pairs)
        if path == "/echo" or path.startswith("/echo/"):
            return "echo", self.echo(method, raw_path or path, query, pairs, hlist, body)
        if path == "/oauth/token":
            if method != "POST":
                return "token", json_response(405, {"error": "method_not_allowed"}, {"Allow": "POST"})
            return "token", self.token(headers, body)
        if path == "/_stats":
            return "stats", json_response(200, self.public_stats())
        if path == "/redirect":
            st = _int(q, "status", 302, 300, 308)
            return "redirect", Response(st, http.HTTPStatus(st).phrase, b"",
                                        {"Location": q.get("to") or "/echo"})
        if path.startswith("/errors/"):
            return path[1:], self.errors(path, q)
        if path.startswith("/hostile/"):
            return path[1:], self.hostile(path, q)
        if path == "/issues/search":
            if method != "POST":
                return "issues/search", json_response(405, {"error": "method_not_allowed"},
                                                      {"Allow": "POST"})
            return "issues/search", self.search(body)
        if method not in ("GET", "HEAD"):
            return "method", json_response(405, {"error": "method_not_allowed",
                                                 "message": f"{method} {path}"}, {"Allow": "GET"})
        f = fast_file(method, path, query, self.meta)
        if f is not None:
            r = self.file(f)
            if r is not None:
                return "file", r
        m = _AUTH.match(path)
        if m:
            self.check_auth(m[1], headers, q)
            q2 = {k: v for k, v in q.items() if k != self.auth["api_key_param"]}
            return path[1:], self.issues("page_number", path, q2)
        if path.startswith("/issues/"):
            return path[1:], self.issues(path[len("/issues/"):], path, q)
        return self.resources(path, q)

    def file(self, rel: str) -> Response | None:
        p = self.www / rel
        try:
            body = p.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        r = json_response(200, body)
        r.gz = p.with_name(p.name + ".gz")
        return r

    def echo(self, method, path, query, pairs, hlist, body) -> Response:
        doc = {"method": method, "path": path, "query": [[k, v] for k, v in pairs],
               "raw_query": query, "headers": [[k, v] for k, v in hlist],
               "body": body.decode("utf-8", errors="replace"), "body_bytes": len(body)}
        status = 200
        extra = {}
        for k, v in pairs:
            if k == "_status":
                status = int(v) if v.isdigit() and 200 <= int(v) <= 599 else 200
            elif k == "_header" and ":" in v:
                name, _, val = v.partition(":")
                extra[name.strip()] = val.strip()
        if status in (204, 304):
            return Response(status, http.HTTPStatus(status).phrase, b"", extra)
        return json_response(status, doc, extra)

    def public_stats(self) -> dict:
        s = dict(self.stats)
        s["by_route"] = dict(s["by_route"])
        s["auth_failures"] = dict(s["auth_failures"])
        s["log"] = list(s["log"])
        s["generation"] = self.meta["generation"]
        s["live_tokens"] = sum(1 for e in self.tokens.values() if e > time.monotonic())
        return s

    def errors(self, path: str, q: dict) -> Response:
        name = path[len("/errors/"):]
        if name == "404":
            return json_response(404, {"error": "not_found", "message": "no such thing"})
        if name == "422":
            return json_response(422, {"error": "validation_failed",
                                       "errors": [{"field": "q", "message": "is invalid"}]})
        if name == "204":
            return Response(204, "No Content", b"", {})
        if name == "200_error":
            return json_response(200, {"error": {"code": "backend_unavailable",
                                                 "message": "try again later"}})
        if name == "429":
            ra = _int(q, "retry_after", 1, 0, 3600)
            return json_response(429, {"error": "rate_limited", "message": "slow down"},
                                 {"Retry-After": str(ra)})
        if name == "flaky":
            key = q.get("key") or "default"
            fail = _int(q, "fail", 1, 0, 1000)
            kind = q.get("kind") or "500"
            n = self.flaky.get(key, 0)
            self.flaky[key] = n + 1
            if n < fail:
                if kind == "429":
                    return json_response(429, {"error": "rate_limited"},
                                         {"Retry-After": str(_int(q, "retry_after", 1, 0, 3600))})
                if kind == "200_error":
                    return json_response(200, {"error": {"code": "backend_unavailable",
                                                         "message": f"attempt {n + 1}"}})
                st = _int({"s": kind}, "s", 500, 400, 599)
                return json_response(st, {"error": "flaky", "attempt": n + 1})
            return json_response(200, {"items": [{"id": i, "key": key} for i in range(1, 4)],
                                       "attempt": n + 1})
        raise Reject(404, "not_found", f"no route {path}")

    def hostile(self, path: str, q: dict) -> Response:
        name = path[len("/hostile/"):]
        first = self.recs["issues"][:1]
        one = "[" + ",".join(self.enc(it) for it in first) + "]"
        if name == "cursor_loop":
            return json_response(200, f'{{"items":{one},"next_cursor":"again"}}'.encode())
        if name == "offhost_json":
            return json_response(200, f'{{"items":{one},"next":"http://offhost.invalid:9/issues?page=2"}}'.encode())
        if name == "offhost_link":
            return json_response(200, one.encode(),
                                 {"Link": '<http://offhost.invalid:9/issues?page=2>; rel="next"'})
        if name == "endless_offset":
            off = _int(q, "offset", 0, 0, 1 << 40)
            lim = _int(q, "limit", 10, 1, G.MAX_PER_PAGE)
            items = [{"id": off + i, "n": off + i} for i in range(lim)]
            return json_response(200, {"items": items, "offset": off})
        raise Reject(404, "not_found", f"no route {path}")

    def _page(self, items: list[dict], q: dict) -> tuple[int, int, list[str]]:
        pp = _int(q, "per_page", self.meta["page_size"], 1, G.MAX_PER_PAGE)
        page = _int(q, "page", 1, 1, 1 << 31)
        return page, pp, [self.enc(it) for it in items[(page - 1) * pp: page * pp]]

    def _next_query(self, q: dict, **changes) -> str:
        d = {k: v for k, v in q.items() if k not in changes}
        d.update({k: str(v) for k, v in changes.items()})
        return urlencode(d, quote_via=quote)

    def issues(self, style: str, path: str, q: dict, items: list[dict] | None = None) -> Response:
        if style not in ("page_number", "page_number_nototal", "offset", "offset_nototal",
                         "offset_has_more", "cursor", "json_link", "json_link_relative",
                         "header_link", "header_cursor", "nested") and items is None:
            raise Reject(404, "not_found", f"no route {path}")
        items = self.select(q, items)
        total = len(items)
        if style in ("offset", "offset_nototal", "offset_has_more"):
            off = _int(q, "offset", 0, 0, 1 << 40)
            lim = _int(q, "limit", self.meta["page_size"], 1, G.MAX_PER_PAGE)
            chunk = [self.enc(it) for it in items[off: off + lim]]
            if style == "offset":
                return json_response(200, G.body_offset(chunk, off, lim, total))
            if style == "offset_nototal":
                return json_response(200, f'{{"items":[{",".join(chunk)}]}}'.encode())
            more = "true" if off + lim < total else "false"
            return json_response(200, f'{{"items":[{",".join(chunk)}],"has_more":{more}}}'.encode())
        if style in ("cursor", "header_cursor"):
            tok = q.get("cursor")
            if tok:
                dec = G.cursor_decode(tok)
                if dec is None:
                    raise Reject(422, "validation_failed", f"cursor={tok!r} is not a cursor of this API")
                page, pp = dec
            else:
                page, pp = 1, _int(q, "per_page", self.meta["page_size"], 1, G.MAX_PER_PAGE)
            chunk = [self.enc(it) for it in items[(page - 1) * pp: page * pp]]
            nxt = G.cursor_token(page + 1, pp) if page * pp < total else None
            if style == "cursor":
                return json_response(200, G.body_cursor(chunk, nxt))
            return json_response(200, f"[{','.join(chunk)}]".encode(),
                                 {"X-Next-Cursor": nxt} if nxt else {})
        page, pp, chunk = self._page(items, q)
        pages = (total + pp - 1) // pp
        more = page < pages
        if style == "page_number":
            return json_response(200, G.body_page_number(chunk, page, pp, total))
        if style == "nested":
            return json_response(200, (f'{{"data":{{"issues":[{",".join(chunk)}]}},'
                                       f'"meta":{{"pagination":{{"page":{page},"total_pages":{pages}}}}}}}').encode())
        if style == "page_number_nototal":
            return json_response(200, f'{{"items":[{",".join(chunk)}]}}'.encode())
        if style == "json_link":
            nxt = f"{self.base_url}{path}?{self._next_query(q, page=page + 1, per_page=pp)}" if more else None
            return json_response(200, f'{{"items":[{",".join(chunk)}],"next":{G.enc(nxt)}}}'.encode())
        if style == "json_link_relative":
            nxt = f"{path}?{self._next_query(q, page=page + 1, per_page=pp)}" if more else None
            return json_response(200, f'{{"items":[{",".join(chunk)}],"links":{{"next":{G.enc(nxt)}}}}}'.encode())
        # header_link (also /repos/{o}/{r}/issues)
        links = []
        if more:
            links.append(f'<{self.base_url}{path}?{self._next_query(q, page=page + 1, per_page=pp)}>; rel="next"')
        links.append(f'<{self.base_url}{path}?{self._next_query(q, page=max(1, pages), per_page=pp)}>; rel="last"')
        return json_response(200, f"[{','.join(chunk)}]".encode(), {"Link": ", ".join(links)})

    def search(self, body: bytes) -> Response:
        try:
            doc = json.loads(body or b"{}")
            if not isinstance(doc, dict):
                raise ValueError
        except ValueError:
            raise Reject(422, "validation_failed", "the body must be a JSON object") from None
        flt = doc.get("filter") or {}
        page = doc.get("page") or {}
        if not isinstance(flt, dict) or not isinstance(page, dict):
            raise Reject(422, "validation_failed", "filter and page must be objects")
        q = {k: str(v) for k, v in flt.items() if k in ("since", "until", "state", "sort")}
        items = self.select(q)
        if flt.get("label"):
            items = [it for it in items if any(lb["name"] == flt["label"] for lb in it["labels"])]
        p = {k: str(v) for k, v in page.items()}
        tok = doc.get("cursor")
        if tok:
            dec = G.cursor_decode(str(tok))
            if dec is None:
                raise Reject(422, "validation_failed", f"cursor {tok!r} is not a cursor of this API")
            off, lim = dec
        else:
            off = _int(p, "offset", 0, 0, 1 << 40)
            lim = _int(p, "limit", self.meta["page_size"], 1, G.MAX_PER_PAGE)
        chunk = [self.enc(it) for it in items[off: off + lim]]
        nxt = G.enc(G.cursor_token(off + lim, lim)) if off + lim < len(items) else "null"
        return json_response(200, (f'{{"total":{len(items)},"offset":{off},"next_cursor":{nxt},'
                                   f'"results":[{",".join(chunk)}]}}').encode())

    def resources(self, path: str, q: dict) -> tuple[str, Response]:
        recs = self.recs
        if path == "/orgs":
            return "orgs", json_response(200, f"[{','.join(self.enc(o) for o in recs['orgs'])}]".encode())
        if m := _ORG.match(path):
            for o in recs["orgs"]:
                if o["login"] == m[1]:
                    return "org", json_response(200, self.enc(o).encode())
            raise Reject(404, "not_found", f"organisation {m[1]!r} not found")
        if m := _ORG_REPOS.match(path):
            if not any(o["login"] == m[1] for o in recs["orgs"]):
                raise Reject(404, "not_found", f"organisation {m[1]!r} not found")
            rs = [self.enc(r) for r in recs["repos"] if r["owner"]["login"] == m[1]]
            return "org/repos", json_response(200, f'{{"repos":[{",".join(rs)}]}}'.encode())
        if m := _REPO.match(path):
            r = self._repo(m[1], m[2])
            return "repo", json_response(200, self.enc(r).encode())
        if m := _REPO_ISSUES.match(path):
            r = self._repo(m[1], m[2])
            return "repo/issues", self.issues("header_link", path, q, self._by_repo.get(r["full_name"], []))
        if m := _REPO_ISSUE.match(path):
            it = self._issue(m[1], m[2], int(m[3]))
            return "repo/issue", json_response(200, self.enc(it).encode())
        if m := _COMMENTS.match(path):
            it = self._issue(m[1], m[2], int(m[3]))
            if it["locked"]:
                raise Reject(404, "not_found", f"issue {it['repository']}#{it['number']} is locked: "
                                               "its comments are hidden")
            cs = recs["comments"].get(f"{it['repository']}#{it['number']}", [])
            cpp = _int(q, "per_page", self.meta["comment_page_size"], 1, G.MAX_PER_PAGE)
            page = _int(q, "page", 1, 1, 1 << 31)
            chunk = [self.enc(c) for c in cs[(page - 1) * cpp: page * cpp]]
            pages = max(1, (len(cs) + cpp - 1) // cpp)
            nxt = G.comments_url(self.base_url, it["repository"], it["number"], page + 1, cpp) \
                if page < pages else None
            return "comments", json_response(200, G.body_comments(chunk, nxt))
        raise Reject(404, "not_found", f"no route {path}")

    def _repo(self, org: str, name: str) -> dict:
        self.recs
        full = f"{org}/{name}"
        for r in self._recs["repos"]:
            if r["full_name"] == full:
                return r
        raise Reject(404, "not_found", f"repository {full!r} not found")

    def _issue(self, org: str, name: str, number: int) -> dict:
        r = self._repo(org, name)
        for it in self._by_repo.get(r["full_name"], []):
            if it["number"] == number:
                return it
        raise Reject(404, "not_found", f"issue {r['full_name']}#{number} not found")

    # ---- faults ----------------------------------------------------------------------

    def decide(self, path: str, target: str) -> tuple[str | None, int]:
        if self.plan is None or path in NO_FAULTS or path.startswith("/echo/"):
            return None, 0
        n = self.seen.get(target, 0)
        self.seen[target] = n + 1
        if path in self.plan.fail_paths:
            return "fail_path", n
        return self.plan.decide(target, n), n


def _basic(authz: str) -> tuple[str, str] | None:
    if not authz.startswith("Basic "):
        return None
    try:
        raw = base64.b64decode(authz[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, pw = raw.partition(":")
    return (user, pw) if sep else None


class Server:
    def __init__(self, api: Api):
        self.api = api

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = raw.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, _ = parts
                hlist = []
                for ln in lines[1:]:
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        hlist.append((k.strip(), v.strip()))
                headers = {}
                for k, v in hlist:
                    headers.setdefault(k.lower(), v)
                body = b""
                try:
                    if headers.get("transfer-encoding", "").lower() == "chunked":
                        body = await _read_chunked(reader)
                    else:
                        clen = int(headers.get("content-length", "0") or 0)
                        if clen > MAX_BODY:
                            return
                        if clen:
                            body = await reader.readexactly(clen)
                except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                    return
                keep = await self.respond(method, target, headers, hlist, body, writer)
                if not keep:
                    return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def respond(self, method, target, headers, hlist, body, writer) -> bool:
        api = self.api
        raw_path, _, query = target.partition("?")
        path = unquote(raw_path)                # routed decoded, as nginx's $uri
        if path.startswith("/__dltc/"):
            return await self.control(path, writer)
        kind, n = api.decide(path, target)
        plan = api.plan
        if kind is not None:
            resp = _status_fault(kind, plan)
            if resp is not None:
                api.counts[kind] += 1
                api.note("fault", method, target)
                return await self.send(writer, method, resp)
        try:
            route, resp = api.route(method, path, query, headers, hlist, body, raw_path)
        except Reject as e:
            route = "error"
            resp = json_response(e.status, {"error": e.error, "message": e.message}, e.headers)
        api.note(route, method, target)
        if resp.status == 200 and kind in ("invalid_json", "drift_extra", "drift_missing", "drift_type"):
            b = (F.invalid_json(resp.body, plan.seed, target, n) if kind == "invalid_json"
                 else F.drift(resp.body, kind, plan.seed, target, n))
            if b is not None:
                api.counts[kind] += 1
                resp.body = b
                resp.gz = None
            kind = None
        if resp.status == 200 and resp.gz is not None and _accepts_gzip(headers):
            try:
                resp.body = resp.gz.read_bytes()
                resp.headers["Content-Encoding"] = "gzip"
                resp.headers["Vary"] = "Accept-Encoding"
            except OSError:
                pass
        if kind in ("reset", "short", "stall") and resp.status == 200 and method != "HEAD" \
                and len(resp.body) > 1:
            api.counts[kind] += 1
            cut = F.cut_point(plan.seed, target, n, len(resp.body))
            writer.write(_head(resp, len(resp.body), close=kind != "stall") + resp.body[:cut])
            await writer.drain()
            if kind == "stall":
                await asyncio.sleep(plan.stall_s)
                writer.write(resp.body[cut:])
                await writer.drain()
                return True
            if kind == "reset":
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        return await self.send(writer, method, resp)

    async def send(self, writer, method: str, resp: Response) -> bool:
        if resp.status in (204, 304) or 100 <= resp.status < 200:
            lines = [f"HTTP/1.1 {resp.status} {resp.reason}"] + \
                [f"{k}: {v}" for k, v in resp.headers.items()]
            writer.write(("\r\n".join(lines) + "\r\nConnection: keep-alive\r\n\r\n").encode("latin-1"))
        else:
            writer.write(_head(resp, len(resp.body), close=False))
            if method != "HEAD" and resp.body:
                writer.write(resp.body)
        await writer.drain()
        return True

    async def control(self, path: str, writer) -> bool:
        api = self.api
        if path == "/__dltc/faults":
            body = json.dumps(api.counts).encode()
        elif path == "/__dltc/stats":
            body = json.dumps(api.public_stats()).encode()
        elif path == "/__dltc/reload":
            api.reload()
            api.stats["reloads"] += 1
            body = b'{"reloaded":true}'
        elif path == "/__dltc/revoke":
            api.tokens.clear()
            body = b'{"revoked":true}'
        elif path == "/__dltc/ping":
            body = b'{"ok":true}'
        else:
            return await self.send(writer, "GET", json_response(404, {"error": "not_found"}))
        return await self.send(writer, "GET", Response(200, "OK", body, {"Content-Type": JSON_CT,
                                                                          "Cache-Control": "no-store"}))


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(out) > MAX_BODY:
            raise ValueError("body too large")


async def _main(cfg: dict) -> None:
    srv = Server(Api(cfg))
    sock_path = cfg["socket"]
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(srv.handle, path=sock_path, backlog=1024,
                                             limit=MAX_HEADER_BYTES)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    async def watch_parent():
        # Next to PR_SET_PDEATHSIG: when the replica's owner dies (we get re-parented),
        # stop the whole process group, nginx included, and ourselves.
        while not stop.is_set():
            if os.getppid() != parent:
                try:
                    os.killpg(os.getpgrp(), signal.SIGTERM)
                except OSError:
                    pass
                stop.set()
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch_parent())
    async with server:
        await stop.wait()
    watcher.cancel()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cfg = json.loads(Path(argv[0]).read_text())
    asyncio.run(_main(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
