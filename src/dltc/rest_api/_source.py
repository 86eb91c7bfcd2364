"""dltc.rest_api on dltc.runtime: the resources of one RESTAPIConfig, their requests all
through one shared dltc.Client, every page decoded once in C straight to Arrow (or, on the
dict path, handed to dlt as dicts), paginated by dlt's own paginator objects.

A *chain* is what one `RESTClient.paginate()` call of dlt walks: the pages of one root
resource, or of one child resource for one parent record. Pages of a chain are handled in
order (so dlt's paginator sees them as dlt would); pages that can be addressed up front
(`offset`, `page_number`) are fetched ahead: all of them once a total is known, a bounded
speculative window without one; what comes back past the last page is dropped. Reference
chains (`json_link`, `header_link`, `cursor`, `header_cursor`) go one page after another,
but every chain runs at once, and a child chain starts as soon as its parent's page is
decoded. REST API knowledge lives here; the pipelining is dltc.runtime's.
"""

from __future__ import annotations

import copy
from functools import partial
import json
import logging
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple, cast

import dlt
import pyarrow as pa
from dlt.common import jsonpath
from dlt.common.schema.detections import is_iso_timestamp
from dlt.common.utils import exclude_keys
from dlt.extract import DltResource, Incremental
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import (
    BasePaginator,
    HeaderCursorPaginator,
    HeaderLinkPaginator,
    JSONLinkPaginator,
    JSONResponseCursorPaginator,
    JSONResponsePaginator,
    OffsetPaginator,
    PageNumberPaginator,
    SinglePagePaginator,
)
from dlt.sources.rest_api import _validate_config, _validate_param_type
from dlt.sources.rest_api.config_setup import (
    _handle_response_action,
    _set_incremental_params,
    build_resource_dependency_graph,
    convert_incremental_values,
    create_auth,
    create_paginator,
    create_response_hooks,
    expand_placeholders,
    paginate_dependent_resource,
    process_parent_data_item,
    record_endpoint_input,
    setup_incremental_object,
)

from dltc import JSONDecodeError
from dltc._names import DLT_TYPES
from dltc.json import compile_selector, detected_selector, records_plan, select_fallback
from dltc.rest_api._http import engine_auth, page_response, request_key, submit_kwargs
from dltc.runtime import (
    BadBody,
    Request,
    Run,
    SourceError,
    body as response_body,
    contract,
    flush_decoder,
    load_id,
    rejects_item,
    selected_resources,
    source_contract,
)

log = logging.getLogger("dltc.rest_api")

# dlt's own paginator classes: driven on the skeleton of a decoded page. Any other
# paginator (a subclass, a registered class) is handed the parsed records (dict path).
_BUILTIN_PAGINATORS = (
    SinglePagePaginator,
    JSONLinkPaginator,
    JSONResponsePaginator,
    HeaderLinkPaginator,
    HeaderCursorPaginator,
    JSONResponseCursorPaginator,
    OffsetPaginator,
    PageNumberPaginator,
)
_RANGE_PAGINATORS = (OffsetPaginator, PageNumberPaginator)

# pages fetched ahead of the one being handled, per chain of a range paginator
WINDOW_TOTAL = 64  # once a total is known: every page up to it, this many at a time
WINDOW_SPECULATIVE = 4  # no total (yet): speculative requests, filling idle capacity only

DLTC_OPTIONS = {
    "max_concurrency", "initial_concurrency", "max_attempts", "rps", "allowed_hosts", "ca_file",
    "verify", "http2", "timeout", "connect_timeout", "max_inflight", "window_total", "window_speculative",
    "batch_rows", "batch_bytes", "dict_path", "client_options", "progress", "stats", "resources", "on_client",
    "_nesting", "_root_key",  # rest_api_source's max_table_nesting and root_key, passed on
}


class RESTAPIError(SourceError):
    """A failed request or an invalid response of a rest_api resource (after retries)."""


class RESTAPIHardError(RuntimeError):
    """Raised on the worker for what must not be retried as a bad body: an HTTP error
    status, a paginator that repeats a request, a parent record without a resolved field."""


class _Spec:
    """One endpoint resource, as dlt's create_resources sees it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.table: str = name
        self.parent: Optional[str] = None
        self.children: List[str] = []
        self.dict_reasons: List[str] = []
        self.captures: List[List[str]] = []  # row captures (arrow path): its children's fields
        self.steps: List[Dict[str, Any]] = []
        self.table_steps: List[Tuple[str, Any]] = []  # dltc's own: ("filter", Expression), ("table_filter"|"table_map", fn)
        self.actions: Optional[List[Any]] = None
        self.empty_on: Tuple[int, ...] = ()
        self.incremental: Optional[Incremental[Any]] = None
        self.incremental_param: Any = None
        self.convert: Any = None
        self.bound_inc: Optional[Incremental[Any]] = None
        self.columns: List[Dict[str, Any]] = []
        self.resolved_params: List[Any] = []
        self.include: List[str] = []
        self.custom = False  # user classes see the prepared request
        # set by create_resources
        self.endpoint: Dict[str, Any] = {}
        self.client: Any = None  # dlt's RESTClient: requests, selectors and detection, never sends
        self.paginator: Optional[BasePaginator] = None
        self.data_selector: Any = None
        self.auth_spec: Optional[Dict[str, Any]] = None
        self.custom_auth: Any = None
        self.base_params: Dict[str, Any] = {}
        self.write_disposition: Any = "append"
        self.path_kind = "arrow"

    @property
    def arrow(self) -> bool:
        return not self.dict_reasons


class _Chain:
    """The pages of one paginate() call, handled in order."""

    __slots__ = ("spec", "request", "paginator", "parent_record", "holds", "next", "sent", "ready", "keys",
                 "seen", "done", "records_path", "fallback", "selector", "total", "gen", "range")

    def __init__(self, spec: _Spec, request: Any, paginator: Optional[BasePaginator], parent_record: Dict[str, Any],
                 holds: Set[str]):
        self.spec = spec
        self.request = request
        self.paginator = paginator
        self.parent_record = parent_record
        self.holds = holds
        self.next = 0  # the page to handle next
        self.sent: Dict[int, Request] = {}  # submitted, not answered
        self.ready: Dict[int, Tuple[Request, Any]] = {}  # answered ahead of order
        self.keys: Dict[int, str] = {}
        self.seen: Set[int] = set()
        self.done = False
        self.records_path: Any = None
        self.fallback: Optional[str] = None
        self.selector: Any = None  # dict path: dlt's data_selector for this chain
        self.total: Optional[int] = None
        self.gen: Any = None  # (paginator copy, request copy, seq of that request)
        self.range = type(paginator) in _RANGE_PAGINATORS


def _simple_steps(field: str) -> Optional[List[str]]:
    """A dotted field path (`id`, `user.login`) as keys, else None."""
    steps = compile_selector(field)
    if not isinstance(steps, list) or not steps or "*" in steps:
        return None
    return steps


def _nest(paths: Sequence[Sequence[str]], values: Sequence[Any]) -> Dict[str, Any]:
    """A parent record rebuilt from its captured fields (objects come as JSON text)."""
    item: Dict[str, Any] = {}
    for path, v in zip(paths, values):
        if isinstance(v, str) and v[:1] in ("{", "[") and v[-1:] in ("}", "]"):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        d = item
        for k in path[:-1]:
            nxt = d.get(k)
            if not isinstance(nxt, dict):
                nxt = d[k] = {}
            d = nxt
        d[path[-1]] = v
    return item


def _column_array(values: List[Any]) -> pa.Array:
    """A column of include_from_parent values typed as dlt's dict path types them."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, str) and is_iso_timestamp(type(first), first) is not None:
        try:
            return pa.array(values, pa.string()).cast(pa.timestamp("us", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    if isinstance(first, (dict, list)):
        return pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


class _Api:
    """The resources of one source instance on one Run (one Client)."""

    def __init__(self, opts: Dict[str, Any], base_url: str, auth_hosts: Sequence[str]):
        self.opts = opts
        self.specs: Dict[str, _Spec] = {}
        client = dict(opts.get("client_options") or {})
        for k in ("max_concurrency", "initial_concurrency", "max_attempts", "ca_file", "verify", "http2",
                  "timeout", "connect_timeout"):
            if k in opts:
                client.setdefault(k, opts[k])
        client.setdefault("max_concurrency", 64)
        client.setdefault("initial_concurrency", min(8, client["max_concurrency"]))
        self.run = Run(
            "rest_api",
            client,
            max_inflight=int(opts.get("max_inflight", max(4 * client["max_concurrency"], 16))),
            max_attempts=int(client.get("max_attempts", 5)),
            error=RESTAPIError,
            progress=opts.get("progress"),
            stats=opts.get("stats"),
            counters=("rows", "pages"),
            on_reset=self.reset,
        )
        self.base_url = base_url
        self.auth_hosts = auth_hosts  # token URLs, filled while the resources are made
        self.rps = opts.get("rps")
        self.window_total = int(opts.get("window_total", WINDOW_TOTAL))
        self.window_spec = int(opts.get("window_speculative", WINDOW_SPECULATIVE))
        self.batch_rows = int(opts.get("batch_rows", 50_000))
        self.batch_bytes = int(opts.get("batch_bytes", 16 << 20))
        self.load_id: Optional[str] = None
        self.contract: Dict[str, str] = contract(None)
        self.holds: Dict[str, Set[str]] = {}
        self.child_hints: Dict[str, Any] = {}
        self.reset()

    # -- registration (source creation)
    def add(self, spec: _Spec) -> None:
        self.specs[spec.name] = spec
        self.run.resource(spec.name, self.plan, flush=None, batch_rows=self.batch_rows, batch_bytes=self.batch_bytes)

    def family_root(self, name: str) -> str:
        while self.specs[name].parent is not None:
            name = cast(str, self.specs[name].parent)
        return name

    def subtree(self, name: str) -> List[str]:
        out = [name]
        for c in self.specs[name].children:
            out.extend(self.subtree(c))
        return out

    def reset(self) -> None:
        self.decoders: Dict[str, Any] = {}
        self.includes: Dict[str, List[Tuple[int, Dict[str, Any]]]] = {}
        self.planned: Set[str] = set()
        self.params: Dict[str, Dict[str, Any]] = {}
        self.formats: Dict[str, Dict[str, Any]] = {}

    # -- dlt's thread
    def begin(self, name: str) -> None:
        run = self.run
        if run.fresh():
            self.load_id = load_id()
            sc = source_contract()
            self.contract = contract(sc if isinstance(sc, (str, dict)) else None, RESTAPIError)
            self.allow_hosts()
            names = ({n for n in selected_resources() if n in self.specs}) | {name}
            run.start(names, prepare=self.prepare)
        elif name not in run.started:
            run.start({name}, prepare=self.prepare)

    def allow_hosts(self) -> None:
        """Only the base URL's host and the token URLs' hosts are fetched (a next URL
        pointing elsewhere is refused by the engine), plus the `allowed_hosts` option;
        `"*"` allows any host, as dlt does."""
        hosts = self.opts.get("allowed_hosts", ())
        if hosts == "*":
            self.run.client_options.pop("allowed_hosts", None)
            return
        from urllib.parse import urlparse

        allowed = {*(hosts or ()), *(urlparse(u).hostname for u in [self.base_url, *self.auth_hosts])} - {None}
        self.run.client_options["allowed_hosts"] = sorted(allowed)

    def prepare(self) -> None:
        """Before the plans, on dlt's thread: incremental values (dlt's state) -> params."""
        for spec in self.specs.values():
            params = dict(spec_params(spec))
            fmt: Dict[str, Any] = {}
            inc = spec.bound_inc
            if inc is not None:
                params = _set_incremental_params(params, inc, spec.incremental_param, spec.convert)
                fmt["incremental"] = inc
                if spec.convert:
                    fmt.update(convert_incremental_values(inc, spec.convert))
            self.params[spec.name] = params
            self.formats[spec.name] = fmt
        if self.rps is not None and self.run.client is not None:
            self.run.client.set_limits(rps=float(self.rps))
        hook = self.opts.get("on_client")
        if hook is not None and self.run.client is not None:
            hook(self.run.client)  # e.g. a limit shared across workers: client.set_limits(...)

    # -- the worker
    def plan(self, run: Run) -> None:
        started = run.started
        for spec in self.specs.values():  # what a chain of each resource holds open
            self.holds[spec.name] = {n for n in self.subtree(spec.name) if n in started}
        for name in list(started):
            root = self.family_root(name)
            if root in self.planned:
                continue
            self.planned.add(root)
            spec = self.specs[root]
            fmt = self.formats[root]
            ep = spec.endpoint
            request = spec.client._create_request(
                path_or_url=expand_placeholders(ep.get("path"), fmt),
                method=ep.get("method", "GET"),
                headers=expand_placeholders(ep.get("headers"), fmt),
                params=expand_placeholders(self.params[root], fmt),
                json=expand_placeholders(ep.get("json"), fmt, preserve_value_type=True),
                data=expand_placeholders(ep.get("data"), fmt),
            )
            self.start_chain(run, spec, request, {})

    def start_chain(self, run: Run, spec: _Spec, request: Any, parent_record: Dict[str, Any]) -> None:
        holds = self.holds.get(spec.name) or set()
        if not holds:
            return
        pag = spec.paginator
        pag = copy.deepcopy(pag) if pag is not None else None
        chain = _Chain(spec, request, pag, parent_record, holds)
        sel = spec.data_selector
        if spec.arrow:
            steps = compile_selector(sel)
            if steps is None:
                chain.fallback = sel
            else:
                chain.records_path = steps
        else:
            chain.selector = sel
        if pag is not None:
            pag.init_request(request)
        self.send(run, chain, 0, request)
        if chain.range:
            chain.gen = (copy.deepcopy(pag), copy.deepcopy(request), 0)
            self.top_up(run, chain)

    def send(self, run: Run, chain: _Chain, seq: int, request: Any, *, speculative: bool = False) -> None:
        spec = chain.spec
        url, kw = submit_kwargs(request, spec.auth_spec, spec.custom_auth)
        if spec.empty_on:
            kw["empty_on"] = spec.empty_on
        req = Request(url, self.on_page, chain.holds, data=(chain, seq), on_error=self.on_page,
                      speculative=speculative, **kw)
        chain.sent[seq] = req
        chain.keys[seq] = request_key(request)
        run.submit(req)

    def top_up(self, run: Run, chain: _Chain) -> None:
        """Range paginators: request the pages after the newest one sent, up to the window."""
        pag, req, seq = chain.gen
        total = chain.total
        if total is None and pag.total_path is not None and chain.next == 0:
            return  # the first page tells the total: no speculation before it
        window = self.window_total if total is not None else self.window_spec
        while seq < chain.next + window:
            pag.current_value += pag.value_step
            v = pag.current_value
            if (total is not None and v >= total + pag.base_index) or (
                pag.maximum_value is not None and v >= pag.maximum_value
            ):
                break
            pag.update_request(req)
            seq += 1
            self.send(run, chain, seq, copy.deepcopy(req), speculative=total is None)
        chain.gen = (pag, req, seq)

    def drop_ahead(self, run: Run, chain: _Chain) -> None:
        for s in [s for s in chain.sent if s >= chain.next]:
            run.cancel(chain.sent.pop(s))
        for s in [s for s in chain.ready if s >= chain.next]:
            del chain.ready[s]

    def on_page(self, run: Run, req: Request, resp: Any) -> None:
        chain, seq = req.data
        if chain.done or chain.sent.get(seq) is not req:
            return
        del chain.sent[seq]
        chain.ready[seq] = (req, resp)
        while not chain.done and chain.next in chain.ready:
            s = chain.next
            r, rs = chain.ready.pop(s)
            try:
                self.page(run, chain, r, rs)
            except ValueError:
                if r is req:  # the runtime fetches it again
                    chain.sent[s] = r
                    raise
                if r.tries >= run.max_attempts:
                    raise
                again = Request(r.url, self.on_page, chain.holds, data=(chain, s), on_error=self.on_page, **r.submit)
                again.tries = r.tries + 1
                run.count("bad_bodies")
                chain.sent[s] = run.submit(again)
                return

    def finish(self, run: Run, chain: _Chain) -> None:
        chain.done = True
        chain.next += 1
        self.drop_ahead(run, chain)

    def page(self, run: Run, chain: _Chain, req: Request, resp: Any) -> None:
        spec = chain.spec
        if not any(run.active(n) for n in chain.holds):
            return self.finish(run, chain)  # nobody takes its rows any more (add_limit, a closed generator)
        if resp.error is not None:
            raise RESTAPIHardError(f"rest_api: resource {spec.name!r}: request for {req.url} failed: {resp.error}")
        body = response_body(resp)
        r = page_response(resp, body, chain.request if spec.custom else None)
        if spec.actions:
            for action in spec.actions:
                kind, hooks = _handle_response_action(r, action)
                if hooks:
                    for hook in hooks:
                        hook(r)
                elif kind == "ignore":
                    log.info("rest_api: ignoring response %s from %s (response action)", resp.status, req.url)
                    return self.finish(run, chain)
                elif kind == "retry":
                    raise BadBody(f"response action 'retry' matched (status {resp.status})")
            if r.content_changed(body):
                body = r.content
        if resp.status >= 400:
            raise RESTAPIHardError(
                f"rest_api: resource {spec.name!r}: {resp.status} error for {req.url}: {r.text[:200]!r}"
            )
        if spec.arrow:
            n, data, items = self.decode(run, chain, req, r, body)
        else:
            n, data, items = self.parse(chain, r)
        pag = chain.paginator
        if pag is None:
            pag = chain.paginator = spec.client.detect_paginator(r, data)
            chain.range = False  # detected: followed page by page
        pag.update_state(r, data)
        pag.update_request(chain.request)
        # the page is good: hand it on
        run.count("pages")
        run.count("rows", n)
        if spec.arrow:
            if chain.parent_record and n:
                self.includes.setdefault(spec.name, []).append((n, chain.parent_record))
            if run.active(spec.name):
                run.added(spec.name, n, len(body))
            else:
                self.decoders[spec.name].flush()  # rows of a resource not loaded (a parent only)
        for cname in spec.children:
            if self.holds.get(cname):
                self.fan_out(run, spec, self.specs[cname], items)
        if not spec.arrow and n:
            if chain.parent_record:
                for rec in data:
                    if isinstance(rec, dict):
                        rec.update(chain.parent_record)
            run.emit(spec.name, data)
        if not pag.has_next_page:
            return self.finish(run, chain)
        chain.keys.pop(chain.next, None)
        chain.next += 1
        key = request_key(chain.request)
        if chain.range:
            if pag.total_path is not None and chain.total is None:
                vals = jsonpath.find_values(pag.total_path, r.json())
                try:
                    chain.total = int(vals[0]) if vals else None
                except (TypeError, ValueError):
                    chain.total = None
            if (chain.next in chain.sent or chain.next in chain.ready) and chain.keys.get(chain.next) != key:
                self.drop_ahead(run, chain)  # not the page dlt asks for next: start over from it
            if chain.next not in chain.sent and chain.next not in chain.ready:
                self.send(run, chain, chain.next, copy.deepcopy(chain.request))
                chain.gen = (copy.deepcopy(pag), copy.deepcopy(chain.request), chain.next)
            self.top_up(run, chain)
        else:
            hkey = hash(key)  # a hash per page, not the key: memory stays small on long chains
            if hkey in chain.seen:
                raise RESTAPIHardError(
                    f"rest_api: resource {spec.name!r}: the paginator asks for the same page again after"
                    f" {req.url} ({pag}); stopping instead of looping forever"
                )
            chain.seen.add(hkey)
            self.send(run, chain, chain.next, copy.deepcopy(chain.request))

    def decode(self, run: Run, chain: _Chain, req: Request, r: Any, body: bytes) -> Tuple[int, Any, List[Any]]:
        spec = chain.spec
        dec = self.decoder(spec)
        if chain.fallback is not None:
            doc = json.loads(body)
            dec.set_records_path([])
            n = dec.feed(select_fallback(body, chain.fallback, document=doc), source_url=req.url)
            r.set_doc(doc)
        else:
            dec.set_records_path(chain.records_path)
            n = dec.feed(body, source_url=req.url)
            if chain.records_path == "auto":  # pinned as dlt pins its detected selector
                found = dec.records_path() or []
                sel = detected_selector(found)
                steps = compile_selector(sel)
                if steps == list(found):
                    chain.records_path = steps
                else:
                    chain.fallback = sel
            try:
                r.set_skeleton(dec.skeleton())
            except JSONDecodeError:  # the document outside the records is over the cap
                r.set_doc(json.loads(body))
        items: List[Any] = []
        if spec.captures:
            paths = spec.captures
            items = [_nest(paths, row) for row in dec.row_values()]
        return n, [None] * n, items

    def parse(self, chain: _Chain, r: Any) -> Tuple[int, Any, List[Any]]:
        spec = chain.spec
        try:
            r.set_doc(json.loads(r.content))
        except ValueError as e:
            raise BadBody(f"not JSON: {e}") from e
        if not chain.selector:
            chain.selector = spec.client.detect_data_selector(r)
        records = spec.client.extract_response(r, chain.selector)
        items = records
        if spec.steps and spec.children:
            items = _apply_steps(spec.steps, copy.deepcopy(records))
        return len(records), records, items

    def fan_out(self, run: Run, parent: _Spec, child: _Spec, items: List[Any]) -> None:
        ep = child.endpoint
        inc = child.bound_inc
        for item in items:
            if not isinstance(item, dict):
                item = {"value": item}
            try:
                p = process_parent_data_item(
                    path=ep.get("path"), item=item, resolved_params=child.resolved_params,
                    headers=ep.get("headers"), params=self.params[child.name], request_json=ep.get("json"),
                    request_data=ep.get("data"), include_from_parent=child.include, incremental=inc,
                    incremental_value_convert=child.convert,
                )
            except ValueError as e:
                raise RESTAPIHardError(f"rest_api: resource {child.name!r}: {e}") from e
            request = child.client._create_request(
                path_or_url=p.path, method=ep.get("method", "get"), headers=p.headers, params=p.params,
                json=p.json, data=p.data,
            )
            self.start_chain(run, child, request, p.parent_record)

    def decoder(self, spec: _Spec) -> Any:
        dec = self.decoders.get(spec.name)
        if dec is None:
            from dltc import _native

            plan: Dict[str, Any] = {
                "root_name": spec.table,
                "columns": spec.columns,
                "infer": True,
                "contract": self.contract,
                "child_tables": True,
                "dlt_ids": True,
                "load_id": self.load_id,
                "skeleton": True,
                **(records_plan(None) or {}),
            }
            plan["records_path"] = []
            if spec.captures:
                plan["row_captures"] = spec.captures
            dec = self.decoders[spec.name] = _native.Decoder(plan)
        return dec

    def flush(self, run: Run, name: str) -> None:
        dec = self.decoders.get(name)
        spec = self.specs[name]
        if dec is not None and run.active(name):
            tables, rejects = flush_decoder(dec, spec.table, "rest_api")
            incl = self.includes.pop(name, None)
            items: List[Any] = []
            root = tables.get(spec.table)
            if root is not None and incl:
                tables[spec.table] = _add_includes(root, incl)
            if spec.table_steps and root is not None:
                tables = _table_steps(spec, tables)
            for tname, tbl in tables.items():
                if not tbl.num_rows:
                    continue
                tbl = run.prune(tname, tbl)
                items.append(tbl if tname == spec.table else self.child_item(spec, tname, tbl))
            if rejects is not None:
                items.append(rejects_item(rejects))
            if items:
                run.emit(name, *items)


    def child_item(self, spec: _Spec, tname: str, tbl: pa.Table) -> Any:
        """A child table under dlt's name, with the resource's disposition and none of its
        key or column hints (dlt gives a nested table neither)."""
        hints = self.child_hints.get(tname)
        if hints is None:
            hints = self.child_hints[tname] = dlt.mark.make_hints(
                table_name=tname, write_disposition=spec.write_disposition, columns={}, primary_key=[],
                merge_key=[])
        return dlt.mark.with_hints(tbl, hints, create_table_variant=True)


def _flush(api: _Api, name: str, run: Run) -> None:
    api.flush(run, name)


def _add_includes(tbl: pa.Table, incl: List[Tuple[int, Dict[str, Any]]]) -> pa.Table:
    keys: List[str] = []
    for _, rec in incl:
        for k in rec:
            if k not in keys:
                keys.append(k)
    for k in keys:
        values: List[Any] = []
        for n, rec in incl:
            values.extend([rec.get(k)] * n)
        if len(values) != tbl.num_rows:  # pragma: no cover - rows and pages out of step
            raise RuntimeError("rest_api: include_from_parent rows do not match the decoded rows")
        tbl = tbl.append_column(_norm(k), _column_array(values))
    return tbl


def _norm(name: str) -> str:
    from dltc.runtime import column_name

    return column_name(name)


def _table_steps(spec: _Spec, tables: Dict[str, pa.Table]) -> Dict[str, pa.Table]:
    """dltc's table steps on the root table of a flush (an Arrow expression or callable
    filter, a callable map); the child rows of dropped root rows are dropped with them."""
    root = tables[spec.table]
    before = root.num_rows
    for kind, step in spec.table_steps:
        if kind == "filter":
            root = root.filter(step)
        elif kind == "table_filter":
            mask = step(root)
            root = root.filter(mask) if mask is not None else root
        elif kind == "table_map":
            root = step(root)
            if not isinstance(root, pa.Table):
                raise TypeError(f"rest_api: table_map of {spec.name!r} must return a pyarrow.Table")
    out = dict(tables)
    out[spec.table] = root
    if root.num_rows == before or len(tables) == 1 or "_dlt_id" not in root.column_names:
        return out
    import pyarrow.compute as pc

    # drop child rows whose parent is gone, level after level (ids are unique across tables)
    kept = root.column("_dlt_id")
    changed = True
    while changed:
        changed = False
        ids = [kept] + [t.column("_dlt_id") for n, t in out.items() if n != spec.table and "_dlt_id" in t.column_names]
        alive = pa.chunked_array([c for ch in ids for c in ch.chunks], pa.string())
        for n, t in out.items():
            if n == spec.table or "_dlt_parent_id" not in t.column_names or not t.num_rows:
                continue
            f = t.filter(pc.is_in(t.column("_dlt_parent_id"), value_set=alive.combine_chunks()))
            if f.num_rows != t.num_rows:
                out[n] = f
                changed = True
    return out


def _apply_steps(steps: List[Dict[str, Any]], records: List[Any]) -> List[Any]:
    """A parent's processing steps, for its children's fan-out (dlt's child sees the
    parent's items after them)."""
    out = records
    for step in steps:
        if "filter" in step:
            out = [r for r in out if step["filter"](r)]
        if "map" in step:
            out = [step["map"](r) for r in out]
        if "yield_map" in step:
            out = [x for r in out for x in step["yield_map"](r)]
    return out


def spec_params(spec: _Spec) -> Dict[str, Any]:
    return spec.base_params


def _simple_columns(columns: Any) -> Optional[List[Dict[str, Any]]]:
    """Column hints the decoder can declare (plain names with a dlt type); None if there
    are others (the dict path applies them as dlt does)."""
    if not columns:
        return []
    if not isinstance(columns, (dict, list)):
        return None
    from dlt.extract.utils import ensure_table_schema_columns

    try:
        cols = ensure_table_schema_columns(columns)
    except Exception:
        return None
    out = []
    for name, hint in cols.items():
        dt = hint.get("data_type")
        if dt is None:
            continue
        if dt not in DLT_TYPES or "__" in name or set(hint) - {"name", "data_type", "nullable", "description"}:
            return None
        if _norm(name) != name:
            return None
        if dt == "json":
            out.append({"path": [name], "type": "json", "nullable": True, "json": True})
        else:
            out.append({"path": [name], "type": dt, "nullable": True})
    return out


def _is_merge(wd: Any) -> bool:
    return wd == "merge" or (isinstance(wd, dict) and wd.get("disposition") == "merge")


def create_resources(config: Dict[str, Any], opts: Dict[str, Any], source_nesting: Any = None,
                     root_key: Any = None) -> Dict[str, DltResource]:
    """dlt's create_resources, with the data of every endpoint resource from one _Api."""
    client_config = config["client"]
    resource_defaults = config.get("resource_defaults") or {}
    dependency_graph, endpoint_resource_map, resolved_param_map = build_resource_dependency_graph(
        resource_defaults, config["resources"]
    )
    client_auth = client_config.get("auth")
    auth_hosts = []
    api = _Api(opts, client_config["base_url"], auth_hosts)
    resources: Dict[str, DltResource] = {}
    force_dict = set(opts.get("dict_path") or ()) if not isinstance(opts.get("dict_path"), bool) else None
    order = [cast(str, n) for n in dependency_graph.static_order()]
    client_paginator = client_config.get("paginator")
    for name in order:
        endpoint_resource = endpoint_resource_map[name]
        if isinstance(endpoint_resource, DltResource):
            resources[name] = endpoint_resource
            continue
        ep = cast(Dict[str, Any], endpoint_resource["endpoint"])
        request_params = ep.get("params", {})
        paginator = create_paginator(ep.get("paginator"))
        processing_steps = endpoint_resource.pop("processing_steps", [])
        resolved_params = resolved_param_map[name]
        include_from_parent: List[str] = endpoint_resource.get("include_from_parent", [])
        if not resolved_params and include_from_parent:
            raise ValueError(
                f"Resource `{name}` has `include_from_parent` but is not dependent on another resource"
            )
        _validate_param_type(request_params)
        inc, inc_param, convert = setup_incremental_object(request_params, ep.get("incremental"))
        auth = create_auth(ep.get("auth", client_auth))
        if getattr(auth, "access_token_url", None):
            auth_hosts.append(auth.access_token_url)
        client = RESTClient(
            base_url=client_config["base_url"],
            headers=client_config.get("headers"),
            auth=auth,
            paginator=create_paginator(client_paginator),
            session=client_config.get("session"),
        )
        hooks = create_response_hooks(ep.get("response_actions"))
        resource_kwargs = exclude_keys(endpoint_resource, {"endpoint", "include_from_parent"})
        parallelized = resource_kwargs.pop("parallelized", False)

        if resolved_params is not None and isinstance(endpoint_resource_map[resolved_params[0].resolve_config["resource"]], DltResource):
            # a dlt resource as the parent: its items reach this resource through dlt's pipe,
            # so it runs on dlt's own code
            resources[name] = dlt.resource(paginate_dependent_resource, data_from=resources[resolved_params[0].resolve_config["resource"]], parallelized=parallelized, **resource_kwargs)(
                method=ep.get("method", "get"), path=ep.get("path"), headers=ep.get("headers"),
                params=exclude_keys(request_params, {x.param_name for x in resolved_params}),
                json=ep.get("json"), data=ep.get("data"), paginator=paginator, data_selector=ep.get("data_selector"),
                hooks=hooks, client=client, resolved_params=resolved_params, include_from_parent=include_from_parent,
                incremental_object=inc, incremental_param=inc_param, incremental_cursor_transform=convert,
            )
            _add_steps(resources[name], processing_steps)
            record_endpoint_input(resources[name], client, ep.get("path"))
            continue

        spec = _Spec(name)
        spec.endpoint = ep
        spec.client = client
        spec.paginator = paginator if paginator is not None else create_paginator(client_paginator)
        spec.data_selector = ep.get("data_selector")
        spec.auth_spec, spec.custom_auth = engine_auth(auth)
        spec.custom = spec.custom_auth is not None
        spec.actions = ep.get("response_actions") or None
        if spec.actions:
            codes = sorted({a.get("status_code") for a in spec.actions if isinstance(a, dict)
                            and isinstance(a.get("status_code"), int) and a.get("status_code") >= 400})
            spec.empty_on = tuple(codes[:16])
        spec.incremental, spec.incremental_param, spec.convert = inc, inc_param, convert
        spec.steps = processing_steps
        spec.include = include_from_parent
        spec.resolved_params = resolved_params or []
        spec.base_params = (exclude_keys(request_params, {x.param_name for x in resolved_params})
                            if resolved_params else request_params)
        if resolved_params:
            spec.parent = resolved_params[0].resolve_config["resource"]
            api.specs[spec.parent].children.append(name)
        tn = resource_kwargs.get("table_name", name)
        spec.write_disposition = resource_kwargs.get("write_disposition", "append")
        # why a resource goes the dict path (dlt normalizes dicts) instead of Arrow
        reasons = spec.dict_reasons
        if force_dict is None and opts.get("dict_path"):
            reasons.append("dict_path option")
        elif force_dict and name in force_dict:
            reasons.append("dict_path option")
        if _is_merge(resource_kwargs.get("write_disposition")):
            reasons.append("merge write disposition (child tables merged by dlt's root key)")
        if inc is not None:
            reasons.append("incremental (dlt's cursor filter on dicts)")
        if processing_steps:
            reasons.append("processing_steps")
        if resource_kwargs.get("max_table_nesting") is not None or source_nesting is not None:
            reasons.append("max_table_nesting")
        if root_key:
            reasons.append("root_key")
        if not isinstance(tn, str):
            reasons.append("table_name is not a string")
        cols = _simple_columns(resource_kwargs.get("columns"))
        if cols is None:
            reasons.append("column hints beyond plain names and types")
        else:
            spec.columns = cols
        pag = spec.paginator
        if pag is not None and type(pag) not in _BUILTIN_PAGINATORS:
            reasons.append(f"custom paginator {type(pag).__name__}")
            spec.custom = True
        if spec.custom_auth is not None:
            spec.custom = True
        if isinstance(tn, str):
            spec.table = _table_norm(tn)
        spec.table_steps = _table_step_options(name, (opts.get("resources") or {}).get(name))
        api.add(spec)
        resources[name] = _make_resource(api, spec, resource_kwargs, parallelized)
        if not spec.arrow:
            _add_steps(resources[name], processing_steps)
        record_endpoint_input(resources[name], client, ep.get("path"))

    unknown = set(opts.get("resources") or ()) - set(api.specs)
    if unknown:
        raise ValueError(f"dltc options for unknown resources {sorted(unknown)}")
    # children read their parents' fields: from row captures (Arrow) or the dicts
    for spec in api.specs.values():
        if spec.parent is None:
            continue
        parent = api.specs[spec.parent]
        fields = [rp.resolve_config["field"] for rp in spec.resolved_params] + list(spec.include)
        for f in fields:
            steps = _simple_steps(f) if f not in spec.include else [f]
            if steps is None:
                if parent.arrow:
                    parent.dict_reasons.append(f"child {spec.name!r} resolves field {f!r}")
                continue
            if steps not in parent.captures:
                parent.captures.append(steps)
    for spec in api.specs.values():
        if not spec.arrow:
            spec.captures = []
            api.run.resources[spec.name].flush = None
        else:
            api.run.resources[spec.name].flush = partial(_flush, api, spec.name)
        if spec.table_steps and not spec.arrow:
            raise ValueError(f"rest_api: resource {spec.name!r} has dltc table steps but goes the dict path"
                             f" ({'; '.join(spec.dict_reasons)}); use dlt's processing_steps there")
        if spec.dict_reasons:
            log.info("rest_api: resource %r goes the dict path: %s", spec.name, "; ".join(spec.dict_reasons))
        spec.path_kind = "arrow" if spec.arrow else "dict: " + "; ".join(spec.dict_reasons)

    return resources


TABLE_STEPS = ("filter", "table_filter", "table_map")


def _table_step_options(name: str, ropts: Any) -> List[Tuple[str, Any]]:
    """`"dltc": {"resources": {name: {"filter": pyarrow.compute.Expression, "table_filter": fn,
    "table_map": fn}}}` (or a list of such one-key dicts, applied in order)."""
    if not ropts:
        return []
    items = ropts if isinstance(ropts, list) else [{k: v} for k, v in ropts.items()]
    out: List[Tuple[str, Any]] = []
    for d in items:
        for k, v in d.items():
            if k not in TABLE_STEPS:
                raise ValueError(f"dltc resource option {k!r} of {name!r} is not one of {TABLE_STEPS}")
            if k == "filter":
                import pyarrow.compute as pc

                if not isinstance(v, pc.Expression):
                    raise TypeError(f"dltc filter of {name!r} must be a pyarrow.compute.Expression")
            elif not callable(v):
                raise TypeError(f"dltc {k} of {name!r} must be callable")
            out.append((k, v))
    return out


def _table_norm(name: str) -> str:
    from dltc.runtime import _NAMING

    return _NAMING.normalize_table_identifier(name)  # type: ignore[no-any-return]


def _add_steps(resource: DltResource, steps: List[Dict[str, Any]]) -> None:
    for step in steps:
        if "filter" in step:
            resource.add_filter(step["filter"])
        if "map" in step:
            resource.add_map(step["map"])
        if "yield_map" in step:
            resource.add_yield_map(step["yield_map"])


def _make_resource(api: _Api, spec: _Spec, kwargs: Dict[str, Any], parallelized: bool) -> DltResource:
    run = api.run
    name = spec.name

    def rest_api_resource(incremental_object: Optional[Incremental[Any]] = None) -> Iterator[Any]:
        """(dltc.rest_api)"""
        # called (by dlt) for every resource before any generator body runs, with the
        # incremental bound to this resource's state
        spec.bound_inc = incremental_object
        return _items()

    def _items() -> Iterator[Any]:
        api.begin(name)
        yield from run.items(name)

    rest_api_resource.dltc_spec = spec  # type: ignore[attr-defined]  # for dltc.rest_api.paths()
    # real annotations (this module has postponed ones): dlt finds the incremental argument by its type
    rest_api_resource.__annotations__ = {"incremental_object": Optional[Incremental[Any]], "return": Iterator[Any]}
    kw = dict(kwargs)
    if parallelized:
        kw["parallelized"] = True
    return dlt.resource(rest_api_resource, **kw)(incremental_object=spec.incremental)  # type: ignore[no-any-return]


def split_options(config: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(dlt's config without the `dltc` key, dltc options)."""
    cfg = dict(config)
    opts = dict(cfg.pop("dltc", None) or {})
    unknown = set(opts) - DLTC_OPTIONS
    if unknown:
        raise ValueError(f"unknown dltc options {sorted(unknown)}; known: {sorted(DLTC_OPTIONS)}")
    return cfg, opts


def validate(config: Dict[str, Any]) -> None:
    _validate_config(config)  # type: ignore[arg-type]
