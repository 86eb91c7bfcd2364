"""dltc.rest_api against dlt's own rest_api_source on the generic API replica
(docs/CONTRACTS.md section 7): the same RESTAPIConfig through both, each into its own
DuckDB pipeline, compared table by table: table names, columns with their DuckDB types,
and rows (ignoring dlt's ids and load ids and the row order; a child row is compared
together with the rows it hangs from, so dlt's links are checked too). The harness at
the top is shared with tests/test_rest_api_errors.py.
"""


from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import dlt

IGNORED = {"_dlt_load_id", "_dlt_id", "_dlt_parent_id", "_dlt_root_id"}

# Under the ASan build only the tests whose dltc side runs C code paths that no other test
# here runs are repeated (the dlt side is pure Python, and the suite runs twice in CI).
ASAN = bool(os.environ.get("DLTC_EXPECT_ASAN"))


def pipeline(tmp_path: Any, tag: str) -> Any:
    return dlt.pipeline(
        f"rest_api_{tag}",
        destination=dlt.destinations.duckdb(str(tmp_path / f"{tag}.duckdb")),
        dataset_name="d",
        pipelines_dir=str(tmp_path / f"pipes_{tag}"),
    )


def snapshot(p: Any) -> Tuple[Dict[str, Dict[str, str]], Dict[str, List[str]]]:
    """({table: {column: DuckDB type}}, {table: sorted canonical rows})."""
    cols: Dict[str, Dict[str, str]] = {}
    with p.sql_client() as c:
        for t, col, typ in c.execute_sql(
            "select table_name, column_name, data_type from information_schema.columns"
            f" where table_schema = '{c.dataset_name}' and table_name not like '_dlt_%'"
        ):
            cols.setdefault(t, {})[col] = typ
        raw: Dict[str, List[Dict[str, Any]]] = {}
        for t, cs in cols.items():
            names = sorted(cs)
            raw[t] = [dict(zip(names, r)) for r in c.execute_sql(f'select {", ".join(names)} from "{t}"')]
    by_id: Dict[str, Dict[str, Any]] = {}
    for rows in raw.values():
        for r in rows:
            if r.get("_dlt_id") is not None:
                by_id[r["_dlt_id"]] = r

    def canon(r: Dict[str, Any], depth: int = 0) -> str:
        own = repr(sorted((k, v) for k, v in r.items() if k not in IGNORED))
        pid = r.get("_dlt_parent_id")
        if pid is not None and depth < 8:
            parent = by_id.get(pid)
            return own + " <- " + (canon(parent, depth + 1) if parent else "MISSING PARENT")
        return own

    return cols, {t: sorted(canon(r) for r in rows) for t, rows in raw.items()}


def load(source: Any, tmp_path: Any, tag: str, p: Any = None) -> Any:
    p = p or pipeline(tmp_path, tag)
    p.run(source)
    return p


def both(make_config: Callable[[], Dict[str, Any]], tmp_path: Any, *, source_kwargs: Optional[Dict[str, Any]] = None,
         dltc_options: Optional[Dict[str, Any]] = None, dict_path: Any = ()) -> Tuple[Any, Any]:
    """Runs the config through dlt and through dltc (fresh config objects each, as
    dlt's set-up mutates some) and returns the two pipelines. Every resource of the dltc
    source must take the Arrow path, except those named in `dict_path` (which must not)."""
    from dlt.sources.rest_api import rest_api_source as dlt_source

    from dltc.rest_api import paths, rest_api_source as dltc_source

    kw = source_kwargs or {}
    pa = load(dlt_source(make_config(), **kw), tmp_path, "dlt")
    cfg = make_config()
    if dltc_options:
        cfg = copy.copy(cfg)
        cfg["dltc"] = dltc_options
    src = dltc_source(cfg, **kw)
    kinds = paths(src)
    for name, kind in kinds.items():
        assert (kind != "arrow") == (name in dict_path), f"{name}: {kind}"
    pb = load(src, tmp_path, "dltc")
    return pa, pb


def assert_same(pa: Any, pb: Any, expect_tables: Optional[List[str]] = None) -> Dict[str, int]:
    ca, ra = snapshot(pa)
    cb, rb = snapshot(pb)
    assert sorted(ca) == sorted(cb), "table names"
    for t in ca:
        assert ca[t] == cb[t], f"columns of {t}: dlt {ca[t]} dltc {cb[t]}"
        if ra[t] != rb[t]:
            only_a = sorted(set(ra[t]) - set(rb[t]))[:3]
            only_b = sorted(set(rb[t]) - set(ra[t]))[:3]
            raise AssertionError(f"rows of {t}: dlt {len(ra[t])} dltc {len(rb[t])}\n dlt only: {only_a}\n dltc only: {only_b}")
    for t in expect_tables or ():
        assert ra.get(t), f"table {t} is empty or missing"
    return {t: len(r) for t, r in ra.items()}


# ---- configs ------------------------------------------------------------------------------

import pytest  # noqa: E402

NOT_UNDER_ASAN = pytest.mark.skipif(ASAN, reason="dict path / engine features covered by other tests: "
                                    "the ASan run repeats only the Arrow-path tests")

from dltc.replica.api import load_records  # noqa: E402

PAGE = {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": "total_pages"}


def paginator_config(base: str, recs: Dict[str, Any]) -> Dict[str, Any]:
    """One resource per dlt paginator (by name, dict and instance), data selectors of
    each form, POST bodies, the auto-detected paginator and selector."""
    from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator, OffsetPaginator

    def r(name: str, path: str, **ep: Any) -> Dict[str, Any]:
        return {"name": name, "endpoint": {"path": path, **ep}}

    org1, org2 = recs["orgs"][0]["login"], recs["orgs"][1]["login"]
    repo = recs["repos"][0]["full_name"]
    return {
        "client": {"base_url": base},
        "resource_defaults": {"primary_key": "id", "write_disposition": "replace"},
        "resources": [
            r("orgs", "orgs", paginator="single_page", data_selector="$"),
            r("org_repos", f"orgs/{org1}/repos", data_selector="repos", paginator={"type": "single_page"}),
            r("one_issue", f"repos/{repo}/issues/3", data_selector="$"),
            {"name": "one_repo", "endpoint": {"path": "repos/{org}/{repo}",  # single entity: dlt's guess
                                              "params": {"org": repo.split("/")[0], "repo": repo.split("/")[1]}}},
            r("page_number", "issues/page_number", params={"per_page": 7}, data_selector="items", paginator=PAGE),
            r("page_nototal", "issues/page_number_nototal", params={"per_page": 9}, data_selector="$.items",
              paginator={"type": "page_number", "base_page": 1, "total_path": None}),
            r("offset", "issues/offset", data_selector="items",
              paginator=OffsetPaginator(limit=11, total_path="total")),
            r("offset_nototal", "issues/offset_nototal", data_selector="items",
              paginator={"type": "offset", "limit": 13, "total_path": None}),
            r("offset_has_more", "issues/offset_has_more", data_selector="items",
              paginator={"type": "offset", "limit": 8, "total_path": None, "has_more_path": "has_more"}),
            r("cursor", "issues/cursor", params={"per_page": 9}, data_selector="items",
              paginator={"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"}),
            r("json_link", "issues/json_link", params={"per_page": 12}, data_selector="items",
              paginator={"type": "json_link", "next_url_path": "next"}),
            r("json_link_rel", "issues/json_link_relative", params={"per_page": 12}, data_selector="items",
              paginator={"type": "json_link", "next_url_path": "links.next"}),
            r("header_link", "issues/header_link", params={"per_page": 10}, paginator=HeaderLinkPaginator()),
            r("header_cursor", "issues/header_cursor", params={"per_page": 10},
              paginator={"type": "header_cursor", "cursor_key": "X-Next-Cursor", "cursor_param": "cursor"}),
            r("search_offset", "issues/search", method="POST", json={"filter": {"state": "open"}},
              data_selector="results",
              paginator={"type": "offset", "limit": 6, "offset_body_path": "page.offset",
                         "limit_body_path": "page.limit", "total_path": "total"}),
            r("search_cursor", "issues/search", method="POST",
              json={"filter": {"state": "closed"}, "page": {"limit": 5}}, data_selector="results",
              paginator={"type": "cursor", "cursor_path": "next_cursor", "cursor_body_path": "cursor"}),
            r("nested", "issues/nested", params={"per_page": 15}, data_selector="data.issues",
              paginator={"type": "page_number", "base_page": 1, "total_path": "meta.pagination.total_pages"}),
            r("auto", "issues/json_link", params={"per_page": 25}),  # paginator and selector detected
            r("auto_repos", f"orgs/{org2}/repos", paginator="single_page"),  # selector detected
            r("wildcard", "issues/page_number", params={"per_page": 40}, paginator="single_page",
              data_selector="items[*]"),
        ],
    }


def test_every_paginator_and_selector(api_replica, api_replica_data, tmp_path):
    recs = load_records(api_replica_data)
    pa, pb = both(lambda: paginator_config(api_replica.base_url, recs), tmp_path)
    n = assert_same(pa, pb, ["orgs", "org_repos", "one_issue", "page_number", "page_nototal", "offset",
                             "offset_nototal", "offset_has_more", "cursor", "json_link", "json_link_rel",
                             "header_link", "header_cursor", "search_offset", "search_cursor", "nested",
                             "auto", "auto_repos", "wildcard", "page_number__labels", "one_repo"])
    issues = recs["issues"]
    assert n["page_number"] == n["cursor"] == n["header_link"] == len(issues)
    assert n["search_offset"] == sum(1 for it in issues if it["state"] == "open")


def auth_config(api: Any) -> Dict[str, Any]:
    """Every auth type, on the client and on endpoints."""
    a = api.auth
    by = {"data_selector": "items", "paginator": PAGE, "params": {"per_page": 16}}
    return {
        "client": {"base_url": api.base_url, "auth": {"type": "bearer", "token": a["bearer_token"]}},
        "resources": [
            {"name": "bearer", "endpoint": {"path": "auth/bearer/issues", **by}},
            {"name": "api_key_header", "endpoint": {"path": "auth/api_key_header/issues", **by, "auth": {
                "type": "api_key", "name": a["api_key_header"], "api_key": a["api_key"], "location": "header"}}},
            {"name": "api_key_query", "endpoint": {"path": "auth/api_key_query/issues", **by, "auth": {
                "type": "api_key", "name": a["api_key_param"], "api_key": a["api_key"], "location": "query"}}},
            {"name": "basic", "endpoint": {"path": "auth/basic/issues", **by, "auth": {
                "type": "http_basic", "username": a["basic_user"], "password": a["basic_password"]}}},
            {"name": "oauth2", "endpoint": {"path": "auth/oauth2/issues", **by, "auth": {
                "type": "oauth2_client_credentials", "access_token_url": api.token_url,
                "client_id": a["client_id"], "client_secret": a["client_secret"]}}},
        ],
    }


@NOT_UNDER_ASAN
def test_every_auth_type(api_replica, tmp_path):
    pa, pb = both(lambda: auth_config(api_replica), tmp_path)
    n = assert_same(pa, pb, ["bearer", "api_key_header", "api_key_query", "basic", "oauth2"])
    assert len(set(n[t] for t in ("bearer", "api_key_header", "api_key_query", "basic", "oauth2"))) == 1


def children_config(base: str) -> Dict[str, Any]:
    """Parents and children in both resolve forms, placeholders in path, params, json and
    headers, include_from_parent, ignore on 404 (locked issues), a parent not loaded."""
    return {
        "client": {"base_url": base},
        "resources": [
            {"name": "orgs", "endpoint": {"path": "orgs", "data_selector": "$", "paginator": "single_page"}},
            {"name": "repos", "endpoint": {  # resolve param form
                "path": "orgs/{org}/repos", "data_selector": "repos", "paginator": "single_page",
                "params": {"org": {"type": "resolve", "resource": "orgs", "field": "login"}}},
             "include_from_parent": ["login", "created_at"]},
            {"name": "issues", "selected": False, "endpoint": {  # placeholder form, a parent only
                "path": "repos/{resources.repos.full_name}/issues", "params": {"per_page": 9},
                "paginator": "header_link"}},
            {"name": "comments", "endpoint": {
                "path": "repos/{resources.issues.repository}/issues/{resources.issues.number}/comments",
                "params": {"per_page": 2}, "data_selector": "comments",
                "paginator": {"type": "json_link", "next_url_path": "next"},
                "response_actions": [{"status_code": 404, "action": "ignore"}]},
             "include_from_parent": ["id", "title"]},
            {"name": "org_search", "endpoint": {  # placeholders in json and headers
                "path": "issues/search", "method": "POST", "data_selector": "results",
                "headers": {"X-Org": "{resources.orgs.login}"},
                "json": {"filter": {"since": "{resources.orgs.created_at}", "state": "open"},
                         "page": {"limit": 7}},
                "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_body_path": "cursor"}},
             "include_from_parent": ["id"]},
            {"name": "org_offsets", "endpoint": {  # a placeholder in params
                "path": "issues/offset", "data_selector": "items",
                "params": {"since": "{resources.orgs.updated_at}", "limit": 5},
                "paginator": {"type": "offset", "limit": 5, "total_path": "total"}}},
        ],
    }


@pytest.mark.parametrize("parallelized", [False, pytest.param(True, marks=NOT_UNDER_ASAN)],
                         ids=["sequential", "parallelized"])
def test_parents_and_children(api_replica, api_replica_data, tmp_path, parallelized):
    pa, pb = both(lambda: children_config(api_replica.base_url), tmp_path,
                  source_kwargs={"parallelized": parallelized})
    n = assert_same(pa, pb, ["repos", "comments", "org_search", "org_offsets", "repos__topics"])
    recs = load_records(api_replica_data)
    locked = {f"{it['repository']}#{it['number']}" for it in recs["issues"] if it["locked"]}
    assert locked and n["comments"] == sum(len(v) for k, v in recs["comments"].items() if k not in locked)
    assert "issues" not in n


def _open_only(item: Dict[str, Any]) -> bool:
    return item["state"] == "open"


def _shout(item: Dict[str, Any]) -> Dict[str, Any]:
    item["title"] = item["title"].upper()
    return item


def shapes_config(base: str) -> Dict[str, Any]:
    """Processing steps, nesting, column hints, JSONPath beyond dltc's subset, table
    names, a record whose lists hold lists of records."""
    pg = {"data_selector": "items", "paginator": PAGE, "params": {"per_page": 20}}
    return {
        "client": {"base_url": base},
        "resources": [
            {"name": "steps", "endpoint": {"path": "issues/page_number", **pg},
             "processing_steps": [{"filter": _open_only}, {"map": _shout}]},
            {"name": "nesting", "max_table_nesting": 1, "endpoint": {"path": "issues/nested",
             "data_selector": "data", "paginator": "single_page", "params": {"per_page": 5}}},
            {"name": "deep", "endpoint": {"path": "issues/nested", "data_selector": "data",
                                          "paginator": "single_page", "params": {"per_page": 5}}},
            {"name": "hinted", "endpoint": {"path": "issues/page_number", **pg},
             "columns": {"labels": {"data_type": "json"}, "priority": {"data_type": "text"},
                         "score": {"data_type": "double"}}},
            {"name": "jsonpath", "table_name": "open_by_jsonpath", "endpoint": {
                "path": "issues/page_number", "paginator": PAGE, "params": {"per_page": 20},
                "data_selector": "items[?(@.state == 'open')]"}},
            {"name": "descent", "endpoint": {"path": "issues/nested", "paginator": "single_page",
                                             "data_selector": "$..issues", "params": {"per_page": 6}}},
        ],
    }


@NOT_UNDER_ASAN
def test_processing_steps_nesting_hints_and_selectors(api_replica, api_replica_data, tmp_path):
    pa, pb = both(lambda: shapes_config(api_replica.base_url), tmp_path, dict_path={"steps", "nesting"})
    n = assert_same(pa, pb, ["steps", "nesting", "deep", "deep__issues", "deep__issues__labels", "hinted",
                             "open_by_jsonpath", "descent"])
    issues = load_records(api_replica_data)["issues"]
    assert n["steps"] == n["open_by_jsonpath"] == sum(1 for it in issues if it["state"] == "open")
    assert "hinted__labels" not in n and "hinted__assignees" in n


@NOT_UNDER_ASAN
def test_max_table_nesting_on_the_source(api_replica, tmp_path):
    def cfg() -> Dict[str, Any]:
        return {"client": {"base_url": api_replica.base_url}, "resources": [
            {"name": "issues", "endpoint": {"path": "issues/page_number", "data_selector": "items",
                                            "paginator": PAGE}}]}

    pa, pb = both(cfg, tmp_path, source_kwargs={"max_table_nesting": 0}, dict_path={"issues"})
    n = assert_same(pa, pb, ["issues"])
    assert list(n) == ["issues"]


def incremental_config(base: str) -> Dict[str, Any]:
    """dlt's incremental in every form: a param, the endpoint form with start/end params
    and convert, a dlt.sources.incremental object; merge and append."""
    return {
        "client": {"base_url": base},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {"name": "by_param", "endpoint": {
                "path": "issues/offset", "data_selector": "items",
                "paginator": {"type": "offset", "limit": 10, "total_path": "total"},
                "params": {"since": {"type": "incremental", "cursor_path": "updated_at",
                                     "initial_value": "2024-01-01T00:00:00Z"}}}},
            {"name": "by_endpoint", "write_disposition": "append", "endpoint": {
                "path": "issues/cursor", "data_selector": "items",
                "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
                "incremental": {"start_param": "since", "cursor_path": "updated_at",
                                "initial_value": "2024-01-01T00:00:00Z"}}},
            {"name": "bounded", "endpoint": {
                "path": "issues/json_link", "data_selector": "items",
                "paginator": {"type": "json_link", "next_url_path": "next"},
                "incremental": {"start_param": "since", "end_param": "until", "cursor_path": "updated_at",
                                "initial_value": "2024-01-01T00:00:00Z", "end_value": "2024-04-01T00:00:00Z",
                                "convert": lambda v: v.replace("Z", "+00:00")}}},
            {"name": "by_object", "endpoint": {
                "path": "issues/page_number", "data_selector": "items", "paginator": PAGE,
                "params": {"since": dlt.sources.incremental("updated_at", initial_value="2024-02-01T00:00:00Z")}}},
        ],
    }


INCREMENTAL = {"by_param", "by_endpoint", "bounded", "by_object"}


@pytest.fixture
def advancing_api(tmp_path):
    """A replica of its own data set (it is advanced between runs)."""
    from dltc.replica.api import generate, serve

    data = tmp_path / "data"
    generate(data, orgs=1, repos_per_org=2, issues_per_repo=20, comments_per_issue=0, seed=3,
             now="2024-06-15T00:00:00Z", page_size=10)
    with serve(data) as api:
        yield api, data


@NOT_UNDER_ASAN
def test_incremental_over_two_runs(advancing_api, tmp_path):
    from dlt.sources.rest_api import rest_api_source as dlt_source

    from dltc.replica.api import advance
    from dltc.rest_api import rest_api_source as dltc_source

    api, data = advancing_api
    pa, pb = pipeline(tmp_path, "dlt"), pipeline(tmp_path, "dltc")
    pa.run(dlt_source(incremental_config(api.base_url)))
    pb.run(dltc_source(incremental_config(api.base_url)))
    assert_same(pa, pb, sorted(INCREMENTAL))
    advance(data, new_issues=3, updated_issues=4)
    api.reload()
    log0 = len(api.stats()["log"])
    pa.run(dlt_source(incremental_config(api.base_url)))
    dlt_log = api.stats()["log"][log0:]
    log1 = len(api.stats()["log"])
    pb.run(dltc_source(incremental_config(api.base_url)))
    dltc_log = api.stats()["log"][log1:]
    n = assert_same(pa, pb, sorted(INCREMENTAL))
    recs = load_records(data)["issues"]
    assert n["by_param"] == sum(1 for it in recs if it["updated_at"] >= "2024-01-01T00:00:00Z")
    # the same requests: the state (last values) is dlt's
    assert sorted(t for _, t in dltc_log) == sorted(t for _, t in dlt_log)
    assert pa.state["sources"]["rest_api"]["resources"] == pb.state["sources"]["rest_api"]["resources"]


@NOT_UNDER_ASAN
def test_switch_from_dlt_to_dltc_carries_on(advancing_api, tmp_path):
    """A pipeline loaded by dlt's source, then by dltc's: it continues from dlt's state."""
    from dlt.sources.rest_api import rest_api_source as dlt_source

    from dltc.replica.api import advance
    from dltc.rest_api import rest_api_source as dltc_source

    api, data = advancing_api
    pa, pb = pipeline(tmp_path, "dlt"), pipeline(tmp_path, "mixed")
    pa.run(dlt_source(incremental_config(api.base_url)))
    pb.run(dlt_source(incremental_config(api.base_url)))
    advance(data, new_issues=2, updated_issues=3)
    api.reload()
    pa.run(dlt_source(incremental_config(api.base_url)))
    pb.run(dltc_source(incremental_config(api.base_url)))
    assert_same(pa, pb, sorted(INCREMENTAL))
    assert pa.state["sources"]["rest_api"]["resources"] == pb.state["sources"]["rest_api"]["resources"]


def _open_items_only(response: Any, *args: Any, **kwargs: Any) -> Any:
    """A response action as dlt documents them: rewrites the body."""
    import json

    payload = response.json()
    payload["items"] = [it for it in payload["items"] if it["state"] == "open"]
    response._content = json.dumps(payload).encode("utf-8")
    return response


def custom_config(api: Any) -> Dict[str, Any]:
    """User code: response action callables, a custom paginator class (registered by
    name, and as an instance), a custom auth class; ignore on 404 for a root resource."""
    from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
    from dlt.sources.helpers.rest_client.paginators import BasePaginator

    class PagesUntilEmpty(BasePaginator):
        def __init__(self, page_param: str = "page") -> None:
            super().__init__()
            self.page_param, self.page = page_param, 1

        def init_request(self, request: Any) -> None:
            self.page = 1
            request.params = {**(request.params or {}), self.page_param: self.page}

        def update_state(self, response: Any, data: Any = None) -> None:
            self.page += 1
            self._has_next_page = bool(data) and all(isinstance(d, dict) and "id" in d for d in data)

        def update_request(self, request: Any) -> None:
            request.params[self.page_param] = self.page

    from dlt.common.configuration import configspec

    @configspec
    class HeaderBearer(BearerTokenAuth):
        def __call__(self, request: Any) -> Any:
            request.headers["Authorization"] = f"Bearer {self.token}"
            return request

    from dltc.rest_api import register_paginator

    register_paginator("pages_until_empty", PagesUntilEmpty)
    return {
        "client": {"base_url": api.base_url},
        "resources": [
            {"name": "rewritten", "endpoint": {"path": "issues/page_number", "data_selector": "items",
                                               "paginator": PAGE, "params": {"per_page": 15},
                                               "response_actions": [_open_items_only]}},
            {"name": "gone", "endpoint": {"path": "errors/404", "paginator": "single_page",
                                          "response_actions": [{"status_code": 404, "action": "ignore"}]}},
            {"name": "by_name", "endpoint": {"path": "issues/page_number_nototal", "data_selector": "items",
                                             "params": {"per_page": 11},
                                             "paginator": {"type": "pages_until_empty"}}},
            {"name": "by_instance", "endpoint": {"path": "issues/page_number_nototal", "data_selector": "items",
                                                 "params": {"per_page": 14}, "paginator": PagesUntilEmpty()}},
            {"name": "custom_auth", "endpoint": {"path": "auth/bearer/issues", "data_selector": "items",
                                                 "paginator": PAGE, "params": {"per_page": 30},
                                                 "auth": HeaderBearer(token=api.auth["bearer_token"])}},
        ],
    }


@NOT_UNDER_ASAN
def test_user_code_response_actions_custom_classes(api_replica, api_replica_data, tmp_path):
    pa, pb = both(lambda: custom_config(api_replica), tmp_path, dict_path={"by_name", "by_instance"})
    n = assert_same(pa, pb, ["rewritten", "by_name", "by_instance", "custom_auth"])
    issues = load_records(api_replica_data)["issues"]
    assert n["rewritten"] == sum(1 for it in issues if it["state"] == "open")
    assert n["by_name"] == n["by_instance"] == n["custom_auth"] == len(issues) and "gone" not in n


# ---- dltc's own additions -------------------------------------------------------------------


def _title_len(item: Dict[str, Any]) -> Dict[str, Any]:
    item["title_len"] = len(item["title"])
    return item


@NOT_UNDER_ASAN
def test_arrow_table_steps_equal_dlt_processing_steps(api_replica, api_replica_data, tmp_path):
    """An Arrow expression filter and a map over the whole page table give what dlt's
    dict filter and map give (child rows of filtered rows go with them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from dlt.sources.rest_api import rest_api_source as dlt_source

    from dltc.rest_api import paths, rest_api_source

    def cfg(steps: bool) -> Dict[str, Any]:
        res: Dict[str, Any] = {"name": "issues", "endpoint": {"path": "issues/page_number", "data_selector": "items",
                                                             "paginator": PAGE, "params": {"per_page": 25}}}
        if steps:
            res["processing_steps"] = [{"filter": _open_only}, {"map": _title_len}]
        return {"client": {"base_url": api_replica.base_url}, "resources": [res]}

    def title_len(tbl: pa.Table) -> pa.Table:
        return tbl.append_column("title_len", pc.utf8_length(tbl.column("title")).cast(pa.int64()))

    pa_ = load(dlt_source(cfg(True)), tmp_path, "dlt")
    ours = cfg(False)
    ours["dltc"] = {"resources": {"issues": [{"filter": pc.field("state") == "open"}, {"table_map": title_len}]}}
    src = rest_api_source(ours)
    assert paths(src) == {"issues": "arrow"}
    pb = load(src, tmp_path, "dltc")
    n = assert_same(pa_, pb, ["issues", "issues__labels"])
    assert 0 < n["issues"] < len(load_records(api_replica_data)["issues"])


def test_contract_rejects_go_to_dltc_rejects(api_replica, api_replica_data, tmp_path):
    """What a schema contract drops while decoding is a row of `_dltc_rejects`."""
    from dltc.rest_api import rest_api_source

    cfg = {"client": {"base_url": api_replica.base_url}, "resources": [
        {"name": "issues", "columns": {"score": {"data_type": "bigint"}},
         "endpoint": {"path": "issues/page_number", "data_selector": "items", "paginator": PAGE}}]}
    p = pipeline(tmp_path, "rejects")
    p.run(rest_api_source(cfg, schema_contract={"data_type": "discard_value"}))
    issues = load_records(api_replica_data)["issues"]
    fractional = [it for it in issues if isinstance(it["score"], float) and not it["score"].is_integer()]
    assert fractional
    with p.sql_client() as c:
        rej = c.execute_sql("select path, reason, source_url from _dltc_rejects")
        assert len(rej) == len(fractional) and all(r[1] == "data_type" for r in rej)
        assert all(r[0].startswith("$.items[") and r[0].endswith("].score") and "/issues/page_number" in r[2]
                   for r in rej)
        assert c.execute_sql("select count(*) from issues")[0][0] == len(issues)


@NOT_UNDER_ASAN
@pytest.mark.timing
def test_one_rate_limit_for_the_source(api_replica, api_replica_data, tmp_path):
    """`rps` is one token bucket for the source's host (burst = rps): N requests take at
    least (N - rps) / rps seconds whatever the concurrency."""
    import time

    from dltc.rest_api import rest_api_source

    stats: Dict[str, Any] = {}
    cfg = {"client": {"base_url": api_replica.base_url}, "resources": [
        {"name": f"r{i}", "endpoint": {"path": "issues/page_number", "data_selector": "items", "paginator": PAGE,
                                       "params": {"per_page": 12}}} for i in range(3)],
        "dltc": {"rps": 20, "stats": stats}}
    p = pipeline(tmp_path, "rps")
    t0 = time.monotonic()
    p.extract(rest_api_source(cfg))
    wall = time.monotonic() - t0
    n = stats["requests"]
    assert n == 3 * -(-len(load_records(api_replica_data)["issues"]) // 12)
    assert wall >= (n - 20) / 20 * 0.95


def test_what_can_be_fetched_at_once_is(api_replica, api_replica_data, tmp_path):
    """Pages of a paginator with a total are all requested once the first page gave it;
    a json_link chain has one page in flight; children are requested as parents decode.
    Checked on the runtime's counters after each response, not on time."""
    from dltc.rest_api import rest_api_source

    recs = load_records(api_replica_data)
    pages = -(-len(recs["issues"]) // 4)

    def queued(tag: str, resources: List[Dict[str, Any]]) -> List[int]:
        seen: List[int] = []
        cfg = {"client": {"base_url": api_replica.base_url}, "resources": resources,
               "dltc": {"progress": lambda d: seen.append(d["queued"])}}
        pipeline(tmp_path, tag).extract(rest_api_source(cfg))
        return seen

    q = queued("p", [{"name": "p", "endpoint": {"path": "issues/page_number", "data_selector": "items",
                                                "paginator": PAGE, "params": {"per_page": 4}}}])
    assert len(q) == pages and q[0] == pages - 1  # after page 1: all the others at once
    q = queued("j", [{"name": "j", "endpoint": {"path": "issues/json_link", "data_selector": "items",
                                                "params": {"per_page": 4},
                                                "paginator": {"type": "json_link", "next_url_path": "next"}}}])
    assert len(q) == pages and max(q) == 1  # one chain: one page after another
    q = queued("c", [{"name": "repos", "endpoint": {"path": "orgs/{resources.orgs.login}/repos",
                                                    "data_selector": "repos"}},
                     {"name": "orgs", "endpoint": {"path": "orgs", "data_selector": "$",
                                                   "paginator": "single_page"}}])
    assert q[0] == len(recs["orgs"])  # the children of every org are in flight at once


def test_add_limit_stops_the_requests(api_replica, api_replica_data, tmp_path):
    """A generator closed early (dlt's add_limit) stops its chains: no page is fetched
    for rows nobody takes (add_limit counts Arrow tables here, dlt counts pages)."""
    from dltc.rest_api import rest_api_source

    stats: Dict[str, Any] = {}
    pages = -(-len(load_records(api_replica_data)["issues"]) // 4)
    cfg = {"client": {"base_url": api_replica.base_url}, "resources": [
        {"name": "j", "endpoint": {"path": "issues/json_link", "data_selector": "items", "params": {"per_page": 4},
                                   "paginator": {"type": "json_link", "next_url_path": "next"}}}],
        "dltc": {"stats": stats, "batch_rows": 4}}
    pipeline(tmp_path, "limit").extract(rest_api_source(cfg).add_limit(1))
    # one page per batch; the worker may be a few pages ahead of dlt's generator
    assert stats["requests"] < pages // 2


def test_a_dlt_resource_as_parent_and_form_bodies(api_replica, api_replica_data, tmp_path):
    """A DltResource given as a parent (its child runs on dlt's own code), string
    resources, and `data` (form) bodies: what reaches the server is what dlt sends."""
    names = [o["login"] for o in load_records(api_replica_data)["orgs"]]

    def cfg() -> Dict[str, Any]:
        @dlt.resource(name="logins", selected=False)
        def logins() -> Any:
            yield [{"login": o} for o in names]

        return {
            "client": {"base_url": api_replica.base_url},
            "resources": [
                logins(),
                {"name": "org_repos", "endpoint": {"path": "orgs/{resources.logins.login}/repos",
                                                   "data_selector": "repos", "paginator": "single_page"}},
                "orgs",
                {"name": "form", "endpoint": {"path": "echo/form", "method": "POST", "data_selector": "$",
                                              "paginator": "single_page", "params": {"q": "a b", "r": "x/y"},
                                              "data": {"a": "1 2", "b": "x/y&z"}},
                 "columns": {"headers": {"data_type": "json"}, "query": {"data_type": "json"}}},
            ],
        }

    from dltc.rest_api import paths, rest_api_source

    assert paths(rest_api_source(cfg())) == {"logins": "dlt", "org_repos": "dlt", "orgs": "arrow", "form": "arrow"}
    pa, pb = both(cfg, tmp_path, dict_path={"logins", "org_repos"})
    with pa.sql_client() as a, pb.sql_client() as b:
        q = "select method, path, raw_query, body from form"
        assert a.execute_sql(q) == b.execute_sql(q)
        assert b.execute_sql(q)[0][3] == "a=1+2&b=x%2Fy%26z"
        for t in ("org_repos", "orgs"):
            q = f"select count(*), sum(id) from {t}"
            assert a.execute_sql(q) == b.execute_sql(q) and b.execute_sql(q)[0][0] > 0
