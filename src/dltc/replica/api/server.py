"""Runs one generic API replica: nginx + the api app (dltc.replica.api.app), with the process
handling of dltc.replica.server.Replica (one process group, PR_SET_PDEATHSIG, stopped on
every exit path).

Request path through nginx: limit_conn (429 + optional Retry-After) -> echo_sleep latency
(+- jitter) -> a page file when the request is a plain GET of a fast-path route whose query
holds only paging keys (page, per_page, offset, limit, cursor; see the maps below and
app.fast_file) -> else the app. With a fault plan every request goes to the app after the
limit and the sleep.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from dltc.replica import nginx as N
from dltc.replica.api import app as A
from dltc.replica.api import data as G
from dltc.replica.server import Replica, ReplicaError


class _PagesMirror(N.Mirror):
    """The data dir's pages/ tree under www/ ({{BASE}} rendered, .gz twins); no ETags."""

    def update(self, threads: int = 2) -> dict[str, str]:
        super().update(threads)
        return {}


_KV = A._PAGING_KV


def _maps(meta: dict) -> str:
    pp, cpp = meta["page_size"], meta["comment_page_size"]
    slug = "[a-z0-9-]+"
    return f"""
    map $args $dltc_q {{
        default x;
        "" q;
        "~^(?:{_KV}(?:&{_KV})*)?$" q;
    }}
    map $arg_per_page $dltc_pp {{ "" {pp}; default $arg_per_page; }}
    map $arg_per_page $dltc_cpp {{ "" {cpp}; default $arg_per_page; }}
    map $arg_page $dltc_pg {{ "" 1; default $arg_page; }}
    map $arg_offset $dltc_off {{ "" 0; default $arg_offset; }}
    map $arg_limit $dltc_lim {{ "" {pp}; default $arg_limit; }}
    map $arg_cursor $dltc_cur {{ "" first; default $arg_cursor; }}
    map "$request_method:$dltc_q:$uri" $dltc_file {{
        default /__dltc/none;
        "GET:q:/orgs" /pages/orgs.json;
        "GET:q:/issues/page_number" /pages/issues/page_number/$dltc_pp/$dltc_pg.json;
        "GET:q:/issues/offset" /pages/issues/offset/$dltc_lim/$dltc_off.json;
        "GET:q:/issues/cursor" /pages/issues/cursor/$dltc_pp/$dltc_cur.json;
        "~^GET:q:/repos/(?<dltc_o>{slug})/(?<dltc_r>{slug})/issues/(?<dltc_n>[0-9]+)/comments$" /pages/comments/$dltc_o/$dltc_r/$dltc_n.$dltc_cpp.$dltc_pg.json;
    }}"""


def _locations(c_latency: float, c_jitter: float, faults: bool) -> str:
    sleep = c_latency > 0 or c_jitter > 0
    delay = "$dltc_delay" if c_jitter > 0 else f"{c_latency / 1000.0:.3f}"
    head = """
        underscores_in_headers on;
        client_max_body_size 16m;"""
    if faults:
        first = f"echo_sleep {delay};\n            echo_exec @app;" if sleep else \
            "proxy_pass http://dltc_app;"
        return head + f"""
        location / {{
            {first}
        }}"""
    static = """
            try_files $dltc_file @app;
            add_header X-Replica-Source file always;"""
    if sleep:
        return head + f"""
        location / {{
            echo_sleep {delay};
            echo_exec @route;
        }}
        location @route {{{static}
        }}"""
    return head + f"""
        location / {{{static}
        }}"""


class ApiReplica(Replica):
    """A running generic API replica; use dltc.replica.api.serve() rather than this class."""

    APP_MODULE = "dltc.replica.api.app"
    GENERATE_HINT = "`python -m dltc.replica api generate --out DIR`"

    def __init__(self, data_dir, *, token_ttl: float = 3600.0, auth: dict | None = None, **kw):
        try:
            self.meta = G.load_meta(data_dir)
        except G.DataError as e:
            raise ReplicaError(str(e)) from None
        if not 0 < token_ttl <= 86400 * 365:
            raise ReplicaError(f"token_ttl must be in (0, 31536000] seconds, got {token_ttl!r}")
        unknown = set(auth or {}) - set(A.DEFAULT_AUTH)
        if unknown:
            raise ReplicaError(f"auth: unknown keys {sorted(unknown)} (known: {sorted(A.DEFAULT_AUTH)})")
        super().__init__(data_dir, **kw)
        self.auth = dict(A.DEFAULT_AUTH)
        self.auth.update(auth or {})
        self.auth["token_ttl"] = float(token_ttl)

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth/token"

    def _new_mirror(self, www: Path) -> N.Mirror:
        return _PagesMirror(self.data_dir, www, self.base_url, N.gz_store(), tops=("pages",))

    def _app_config(self) -> dict:
        return {"auth": self.auth}

    def _conf_extra(self) -> dict:
        return {"locations": _locations(self.latency_ms, self.jitter_ms, self.plan is not None),
                "http_extra": _maps(self.meta)}

    def reload(self, timeout: float = 20.0) -> None:
        """Re-read the data dir after `advance` (pages, records, meta); SIGHUP nginx."""
        try:
            self.meta = G.load_meta(self.data_dir)
        except G.DataError as e:
            raise ReplicaError(str(e)) from None
        if self._conf is not None:
            self._conf.http_extra = _maps(self.meta)
        super().reload(timeout)

    def _control(self, path: str) -> dict:
        st, body = self._app_get(path)
        if st != 200:
            raise ReplicaError(f"replica app did not answer {path} (status {st})")
        return json.loads(body)

    def stats(self) -> dict:
        """What the app saw: requests, by_route, token_requests, tokens_issued,
        auth_failures {kind: n}, reloads, live_tokens, generation, log [[method, target]]
        (the last 2000). Requests nginx serves from page files are not counted."""
        return self._control("/__dltc/stats")

    def revoke_tokens(self) -> None:
        """Invalidate every OAuth2 access token issued so far (the next use gets a 401)."""
        self._control("/__dltc/revoke")

    def __repr__(self) -> str:
        return f"<ApiReplica {self.base_url} pid={self.pid}>"


@contextmanager
def serve(data_dir, port: int = 0, tls: bool = False, latency_ms: float = 0,
          jitter_ms: float = 0, max_parallel: int | None = None, retry_after: int | None = None,
          faults: str | None = None, workers: int = 2, token_ttl: float = 3600.0,
          auth: dict | None = None):
    """Run the generic API replica on DATA_DIR (from generate()); yields the ApiReplica:
    api.base_url, api.ca_file (tls), api.auth (credentials), api.token_url, api.stats(),
    api.reload(), api.revoke_tokens(), api.fault_counts(). Stopped when the block exits."""
    r = ApiReplica(data_dir, port=port, tls=tls, latency_ms=latency_ms, jitter_ms=jitter_ms,
                   max_parallel=max_parallel, retry_after=retry_after, faults=faults,
                   workers=workers, token_ttl=token_ttl, auth=auth)
    r.start()
    try:
        yield r
    finally:
        r.stop()
