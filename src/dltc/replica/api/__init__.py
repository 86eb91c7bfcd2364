"""dltc.replica.api: a local, deterministic, seeded generic REST API (an issue tracker)
for tests and benchmarks; the route table is in docs/CONTRACTS.md section 7.

    generate(out_dir, orgs=2, repos_per_org=2, issues_per_repo=30, comments_per_issue=3,
             seed=0, now="2024-06-15T00:00:00Z", page_size=100, comment_page_size=10,
             body_scale=1.0, locked_rate=0.1, fast=FAST) -> meta
    advance(data_dir, new_issues=5, updated_issues=5, seed=None, minutes=60)
        -> {"added": [ids], "updated": [ids], "now": ts}
    load_records(data_dir) -> {"orgs", "repos", "issues", "comments"}
    with serve(data_dir, port=0, tls=False, latency_ms=0, jitter_ms=0, max_parallel=None,
               retry_after=None, faults=None, workers=2, token_ttl=3600, auth=None) as api:
        api.base_url, api.ca_file, api.auth, api.token_url, api.stats(), api.reload(),
        api.revoke_tokens(), api.fault_counts(), api.pids()

The CLI is `python -m dltc.replica api generate|serve|advance` (see cli.py).

Routes (full table with response shapes: docs/CONTRACTS.md section 7). `*` = served by nginx
from page files when the query holds only paging keys; every issue list also takes
since/until (updated_at, since inclusive, until exclusive), state, sort, direction.

    GET /orgs*                         [org...]                        single_page
    GET /orgs/{org}/repos              {repos}                         single_page, data_selector repos
    GET /orgs/{org}, /repos/{o}/{r}, /repos/{o}/{r}/issues/{n}          one object (404 unknown)
    GET /issues/page_number*           ?page(1-based)&per_page  {page, per_page, total_pages, total_count, items}
                                       page_number base_page=1 total_path=total_pages
    GET /issues/page_number_nototal    {items}                         page_number total_path=None
    GET /issues/offset*                ?offset&limit  {offset, limit, total, items}  offset total_path=total
    GET /issues/offset_nototal         {items}                         offset total_path=None
    GET /issues/offset_has_more        {items, has_more}               offset has_more_path=has_more
    GET /issues/cursor*                ?cursor  {items, next_cursor|null}  cursor cursor_path=next_cursor
    GET /issues/json_link              {items, next: absolute|null}    json_link next_url_path=next
    GET /issues/json_link_relative     {items, links: {next: "/..."}}  json_link next_url_path=links.next
    GET /issues/header_link            [issue...] + Link rel=next      header_link
    GET /issues/header_cursor          [issue...] + X-Next-Cursor      header_cursor cursor_key=X-Next-Cursor
    GET /issues/nested                 {data: {issues}, meta: {pagination: {page, total_pages}}}
                                       page_number total_path=meta.pagination.total_pages
    POST /issues/search                {"filter": {...}, "page": {"offset", "limit"}, "cursor"}
                                       -> {total, offset, next_cursor, results}; offset with
                                       offset_body_path=page.offset limit_body_path=page.limit,
                                       or cursor with cursor_body_path=cursor
    GET /repos/{o}/{r}/issues          [issue...] + Link               header_link
    GET /repos/{o}/{r}/issues/{n}/comments*  {comments, next|null}; 404 for locked issues   json_link
    GET /auth/{bearer|api_key_header|api_key_query|basic|oauth2}/issues   as /issues/page_number; 401
    POST /oauth/token                  client_credentials form (or Basic) -> {access_token, expires_in}
    ANY /echo[/...]                    {method, path, query [[k, v]], raw_query, headers [[n, v]], body}
    GET /redirect?to=&status=          a redirect
    GET /errors/{404,422,204,200_error,429,flaky}   error answers (flaky: fails `fail` times per key)
    GET /hostile/{cursor_loop,offhost_json,offhost_link,endless_offset}   hostile paging
    GET /_stats                        the app's counters (as api.stats())
"""

from dltc.replica.api.app import DEFAULT_AUTH
from dltc.replica.api.data import FAST, DataError, advance, generate, load_meta, load_records
from dltc.replica.api.server import ApiReplica, serve

__all__ = ["DEFAULT_AUTH", "FAST", "ApiReplica", "DataError", "advance", "generate", "load_meta",
           "load_records", "serve"]
