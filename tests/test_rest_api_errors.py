"""dltc.rest_api when things go wrong: invalid configs raise what dlt raises; a bad body
names its URL, byte offset and JSON path; under the replica's fault plan and 429s the
destination holds exactly the replica's records; hostile servers (an off-host next URL,
a cursor that repeats forever, an endless offset list) are refused, detected or bounded.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Dict, List

import pytest

from dltc.replica.api import generate, load_records, serve
from test_rest_api import PAGE, pipeline

BASE = "http://127.0.0.1:9/"


def _res(**ep: Any) -> Dict[str, Any]:
    return {"name": "r", "endpoint": {"path": "issues", **ep}}


INVALID: List[Any] = [
    pytest.param({"resources": ["issues"]}, id="no-client"),
    pytest.param({"client": {"base_url": BASE}}, id="no-resources"),
    pytest.param({"client": {"base_url": BASE}, "resources": [{"name": "r", "endpoint": {"pth": "x"}}]}, id="bad-key"),
    pytest.param({"client": {"base_url": BASE}, "resources": [_res(paginator="nope")]}, id="unknown-paginator"),
    pytest.param({"client": {"base_url": BASE}, "resources": [_res(paginator="offset")]}, id="paginator-needs-args"),
    pytest.param({"client": {"base_url": BASE}, "resources": [_res(paginator={"type": "offset", "limt": 1})]},
                 id="paginator-bad-arg"),
    pytest.param({"client": {"base_url": BASE, "auth": {"type": "nope"}}, "resources": ["issues"]}, id="unknown-auth"),
    pytest.param({"client": {"base_url": BASE}, "resources": [
        {"name": "c", "endpoint": {"path": "x/{resources.nope.id}"}}]}, id="missing-parent"),
    pytest.param({"client": {"base_url": BASE}, "resources": ["a", "b", {"name": "c", "endpoint": {
        "path": "x/{resources.a.id}/{resources.b.id}"}}]}, id="two-parents"),
    pytest.param({"client": {"base_url": BASE}, "resources": [
        {"name": "c", "endpoint": {"path": "x"}, "include_from_parent": ["id"]}]}, id="include-without-parent"),
    pytest.param({"client": {"base_url": BASE}, "resources": [_res(params={"since": {
        "type": "incremental", "cursor_path": "u", "initial_value": "1", "end_value": "2"}})]},
        id="incremental-param-end-value"),
    pytest.param({"client": {"base_url": BASE}, "resources": [_res(params={
        "a": {"type": "incremental", "cursor_path": "u"}, "b": {"type": "incremental", "cursor_path": "v"}})]},
        id="two-incremental-params"),
    pytest.param({"client": {"base_url": BASE}, "resources": [_res(params={"a": {"type": "whatever"}})]},
                 id="bad-param-type"),
    pytest.param({"client": {"base_url": BASE}, "resources": [{"name": "r", "endpoint": {"path": "x/{id}"}}]},
                 id="unbound-path-param"),
    pytest.param({"client": {"base_url": BASE}, "resources": [_res(params={"q": "{foo.bar}"})]},
                 id="bad-context"),
    pytest.param({"client": {"base_url": BASE}, "resources": ["issues", "issues"]}, id="duplicate-names"),
    pytest.param({"client": {"base_url": BASE}, "resources": [{"name": "c", "endpoint": {
        "path": "x/{resources.a.id}"}}, "a", {"name": "a", "endpoint": "y"}]}, id="duplicate-parent"),
]


def _raised(fn: Any, config: Dict[str, Any]) -> BaseException:
    with pytest.raises(Exception) as e:
        fn(copy.deepcopy(config))
    return e.value


@pytest.mark.parametrize("config", INVALID)
def test_invalid_configs_raise_what_dlt_raises(config):
    from dlt.sources.rest_api import rest_api_resources as dlt_resources, rest_api_source as dlt_source

    from dltc.rest_api import rest_api_resources, rest_api_source

    for ours, theirs in ((rest_api_source, dlt_source), (rest_api_resources, dlt_resources)):
        a, b = _raised(theirs, config), _raised(ours, config)
        assert type(a) is type(b), (a, b)
        assert str(a) == str(b)


def test_unknown_dltc_option():
    from dltc.rest_api import rest_api_source

    with pytest.raises(ValueError, match="unknown dltc options"):
        rest_api_source({"client": {"base_url": BASE}, "resources": ["x"], "dltc": {"max_concurency": 3}})


# ---- bad bodies, faults, 429s -----------------------------------------------------------------


@pytest.fixture(scope="module")
def fault_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("rest_api_faults") / "data"
    generate(d, orgs=1, repos_per_org=2, issues_per_repo=60, comments_per_issue=2, seed=5,
             now="2024-06-15T00:00:00Z", page_size=10)
    return d


def _faults_config(base: str) -> Dict[str, Any]:
    return {
        "client": {"base_url": base},
        "resource_defaults": {"primary_key": "id", "write_disposition": "replace"},
        "resources": [
            {"name": "issues", "endpoint": {"path": "issues/page_number", "data_selector": "items",
                                            "paginator": PAGE}},
            {"name": "by_cursor", "endpoint": {"path": "issues/cursor", "data_selector": "items",
                                               "paginator": {"type": "cursor", "cursor_path": "next_cursor",
                                                             "cursor_param": "cursor"}}},
            {"name": "comments", "endpoint": {
                "path": "repos/{resources.issues.repository}/issues/{resources.issues.number}/comments",
                "data_selector": "comments", "paginator": {"type": "json_link", "next_url_path": "next"},
                "params": {"per_page": 1},
                "response_actions": [{"status_code": 404, "action": "ignore"}]}},
        ],
        "dltc": {"max_attempts": 8},
    }


def test_faults_and_429s_load_exactly_the_records(fault_data, tmp_path):
    from dltc.rest_api import rest_api_source

    recs = load_records(fault_data)
    faults = "seed=7,p500=0.04,p503=0.04,reset=0.03,short=0.03,invalid_json=0.04"
    stats: Dict[str, Any] = {}
    # 20 ms per request and a first window of 8 requests against max_parallel=4: the
    # replica answers 429 to some of the first ones whatever the scheduling
    with serve(fault_data, faults=faults, max_parallel=4, latency_ms=20) as api:
        cfg = _faults_config(api.base_url)
        cfg["dltc"]["stats"] = stats
        p = pipeline(tmp_path, "faults")
        p.run(rest_api_source(cfg))
        counts = api.fault_counts()
    assert sum(counts.values()) > 0
    assert stats["bad_bodies"] > 0  # invalid_json pages were fetched again
    assert stats["status_429"] > 0
    with p.sql_client() as c:
        def ids(t: str) -> List[int]:
            return sorted(r[0] for r in c.execute_sql(f"select id from {t}"))

        assert ids("issues") == ids("by_cursor") == [it["id"] for it in recs["issues"]]
        locked = {f"{it['repository']}#{it['number']}" for it in recs["issues"] if it["locked"]}
        assert ids("comments") == sorted(cm["id"] for k, v in recs["comments"].items() if k not in locked for cm in v)


def test_bad_body_names_url_offset_and_path(fault_data, tmp_path):
    from dltc.rest_api import rest_api_source

    with serve(fault_data, faults="seed=1,invalid_json=1") as api:
        cfg = {"client": {"base_url": api.base_url}, "resources": [
            {"name": "issues", "endpoint": {"path": "issues/page_number", "data_selector": "items",
                                            "paginator": PAGE}}], "dltc": {"max_attempts": 2}}
        with pytest.raises(Exception) as e:
            pipeline(tmp_path, "bad").run(rest_api_source(cfg))
    msg = str(e.value)
    assert f"invalid response from {api.base_url}/issues/page_number?page=1" in msg
    assert "offset" in msg and "$" in msg


# ---- hostile servers --------------------------------------------------------------------------


def _one(base: str, path: str, paginator: Any, **opts: Any) -> Dict[str, Any]:
    cfg: Dict[str, Any] = {"client": {"base_url": base}, "resources": [
        {"name": "r", "endpoint": {"path": path, "data_selector": "items", "paginator": paginator}}]}
    if opts:
        cfg["dltc"] = opts
    return cfg


def test_offhost_next_url_is_refused(api_replica, tmp_path):
    from dltc.rest_api import rest_api_source

    for path, pag in (("hostile/offhost_json", {"type": "json_link", "next_url_path": "next"}),
                      ("hostile/offhost_link", "header_link")):
        with pytest.raises(Exception) as e:
            pipeline(tmp_path, "offhost").run(rest_api_source(_one(api_replica.base_url, path, pag)))
        assert "offhost.invalid" in str(e.value) and "refused" in str(e.value).lower(), str(e.value)[-400:]


def test_repeating_cursor_fails_naming_the_url(api_replica, tmp_path):
    from dltc.rest_api import rest_api_source

    cfg = _one(api_replica.base_url, "hostile/cursor_loop",
               {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"})
    with pytest.raises(Exception) as e:
        pipeline(tmp_path, "loop").run(rest_api_source(cfg))
    assert "same page again" in str(e.value) and "/hostile/cursor_loop" in str(e.value)


def test_pages_past_maximum_offset_are_never_requested(api_replica, tmp_path):
    from dltc.rest_api import rest_api_source

    # The replica keeps only its last LOG_KEEP requests (earlier tests on this replica may
    # have filled it), so this run's requests are found by a tag of their own, not by index.
    tag = f"t{time.monotonic_ns()}"
    cfg = _one(api_replica.base_url, "hostile/endless_offset",
               {"type": "offset", "limit": 10, "total_path": None, "maximum_offset": 50})
    cfg["resources"][0]["endpoint"]["params"] = {"tag": tag}
    p = pipeline(tmp_path, "endless")
    p.run(rest_api_source(cfg))
    targets = [t for _, t in api_replica.stats()["log"] if "endless_offset" in t and tag in t]
    offsets = sorted(int(t.split("offset=")[1].split("&")[0]) for t in targets)
    assert offsets == [0, 10, 20, 30, 40]
    with p.sql_client() as c:
        assert c.execute_sql("select count(*) from r")[0][0] == 50


def test_retry_action_for_a_200_error_body(api_replica, tmp_path):
    """dltc's `retry` response action: a 200 whose body says error is fetched again."""
    from dltc.rest_api import rest_api_source

    cfg = {"client": {"base_url": api_replica.base_url}, "resources": [
        {"name": "flaky", "endpoint": {
            "path": "errors/flaky", "params": {"key": "retry-action-test", "fail": 2, "kind": "200_error"},
            "data_selector": "items", "paginator": "single_page",
            "response_actions": [{"status_code": 200, "content": '"error"', "action": "retry"}]}}]}
    p = pipeline(tmp_path, "retry")
    p.run(rest_api_source(cfg))
    with p.sql_client() as c:
        assert c.execute_sql("select count(*) from flaky")[0][0] > 0


def test_a_failed_run_loses_nothing_already_loaded(fault_data, tmp_path):
    """A resource that cannot be loaded (a 404 nobody ignores) fails the run; what earlier
    runs loaded stays, and the next good run loads again."""
    from dltc.rest_api import rest_api_source

    n = len(load_records(fault_data)["issues"])
    p = pipeline(tmp_path, "failed")

    def cfg(base: str, broken: bool = False) -> Dict[str, Any]:
        c = _faults_config(base)
        c["resources"] = c["resources"][:2]
        c["resource_defaults"]["write_disposition"] = "append"
        if broken:
            c["resources"][1]["endpoint"]["path"] = "errors/404"
        return c

    def counts() -> List[int]:
        with p.sql_client() as c:
            return [c.execute_sql(f"select count(*) from {t}")[0][0] for t in ("issues", "by_cursor")]

    with serve(fault_data) as api:
        p.run(rest_api_source(cfg(api.base_url)))
        assert counts() == [n, n]
        with pytest.raises(Exception, match="by_cursor.*HTTP 404 from .*/errors/404"):
            p.run(rest_api_source(cfg(api.base_url, broken=True)))
        assert counts() == [n, n]
        p.run(rest_api_source(cfg(api.base_url)))
        assert counts() == [2 * n, 2 * n]
