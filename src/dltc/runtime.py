"""The runtime every dltc source runs on: one extraction of one source instance, with all
its requests through one shared `dltc.Client`, responses decoded on one worker thread
(decoders release the GIL) while dlt's thread writes the previous batches, and record
batches handed to dlt's generators through bounded per-resource queues. It knows no API:
a source supplies plans, response handlers and flushes. Contract: docs/CONTRACTS.md,
section 6.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Type, Union

import dlt
import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from dltc._names import DLT_TYPES, MODES, REJECTS_TABLE, SEP

__all__ = [
    "BadBody",
    "Batch",
    "Dedup",
    "Request",
    "Run",
    "SourceError",
    "add_client_hook",
    "body",
    "column_name",
    "column_values",
    "contract",
    "decoder_items",
    "flush_decoder",
    "keep_rows",
    "load_id",
    "new_client",
    "new_decoder",
    "rejects_item",
    "selected_resources",
    "source_contract",
    "table_name",
    "to_table",
    "tune_heap",
]

_NAMING = NamingConvention()


class SourceError(ValueError):
    """A bad argument or a failed request of a source, with a clear message."""


class BadBody(ValueError):
    """Raised by a handler: the response is valid JSON but not what the source expects.
    Like any ValueError from a handler, the request is fetched again (max_attempts)."""


# ---- requests -------------------------------------------------------------------------

_QUEUED, _INFLIGHT, _DONE = 0, 1, 2
Handler = Callable[["Run", "Request", Any], None]


class Request:
    """One request of the graph: where it goes (`url` and `client.submit` keywords, passed
    on unchanged), what handles its response, and which resources it holds open."""

    __slots__ = ("url", "handler", "resources", "submit", "high", "speculative", "data", "on_error",
                 "tries", "cancelled", "state")

    def __init__(
        self,
        url: str,
        handler: Handler,
        resources: Union[str, Iterable[str]] = (),
        *,
        high: bool = False,
        speculative: bool = False,
        data: Any = None,
        on_error: Optional[Handler] = None,
        **submit: Any,
    ):
        self.url = url
        self.handler = handler
        self.resources: Set[str] = {resources} if isinstance(resources, str) else set(resources)
        self.submit = submit
        self.high = high
        self.speculative = speculative
        self.data = data
        self.on_error = on_error
        self.tries = 1  # fetches of this request; a bad body is fetched again
        self.cancelled = False
        self.state = _DONE  # not submitted yet

    def __repr__(self) -> str:  # the URL only: headers, bodies and auth may hold secrets
        return f"Request({self.url!r}, tries={self.tries})"


class Batch:
    """One queue entry of a resource: items yielded in order, then `commit()` (if any)
    once dlt took them all."""

    __slots__ = ("items", "commit")

    def __init__(self, items: Sequence[Any], commit: Optional[Callable[[], None]] = None):
        self.items = items
        self.commit = commit


class _Resource:
    __slots__ = ("name", "plan", "flush", "batch_rows", "batch_bytes", "max_queued")

    def __init__(self, name: str, plan: Callable[["Run"], None], flush: Optional[Callable[["Run"], None]],
                 batch_rows: Optional[int], batch_bytes: Optional[int], max_queued: Optional[int]):
        self.name = name
        self.plan = plan
        self.flush = flush
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.max_queued = max_queued


_UNSET: Any = object()


# ---- one extraction ---------------------------------------------------------------------


class Run:
    """Drives one Client for all resources of one source instance. A worker thread takes
    responses from the Client and calls the source's handlers (which decode, with the GIL
    released, and may submit child requests at once); dlt's thread takes batches from the
    per-resource queues meanwhile: network, decoding and writing overlap. Memory is
    bounded: the worker pauses while a bounded queue is full (unless a generator dlt is
    pulling has nothing yet), and a paused worker lets the engine's bounded queue stop new
    transfers. Source callbacks run on the worker, one at a time, without the lock."""

    BASE_COUNTERS = ("duplicates", "not_modified", "bad_bodies")

    def __init__(
        self,
        name: str,
        client_options: Optional[Dict[str, Any]] = None,
        *,
        max_inflight: int = 256,
        max_attempts: int = 5,
        error: Type[Exception] = SourceError,
        progress: Optional[Callable[[Dict[str, Any]], Any]] = None,
        stats: Optional[Dict[str, Any]] = None,
        counters: Sequence[str] = (),
        on_reset: Optional[Callable[[], None]] = None,
        max_queued: Optional[int] = 4,
    ):
        self.name = name
        self.client_options = dict(client_options or {})
        self.max_inflight = max(1, int(max_inflight))
        self.max_attempts = max(1, int(max_attempts))
        self.error = error
        self.progress_cb = progress
        self.stats = stats if stats is not None else {}
        self.extra_counters = tuple(counters)
        self.on_reset = on_reset
        self.default_max_queued = max_queued
        self.log = logging.getLogger(f"dltc.{name}")
        self.client: Any = None
        self.cv = threading.Condition(threading.Lock())
        self.thread: Optional[threading.Thread] = None
        self.resources: Dict[str, _Resource] = {}
        self._reset()

    def resource(
        self,
        name: str,
        plan: Callable[["Run"], None],
        *,
        flush: Optional[Callable[["Run"], None]] = None,
        batch_rows: Optional[int] = None,
        batch_bytes: Optional[int] = None,
        max_queued: Optional[int] = _UNSET,
    ) -> None:
        """Registers a resource; plans of resources started together run in this order."""
        mq = self.default_max_queued if max_queued is _UNSET else max_queued
        self.resources[name] = _Resource(name, plan, flush, batch_rows, batch_bytes, mq)

    # -- life cycle (dlt's threads)
    def _reset(self) -> None:
        # under the lock (or before any thread): dlt's threads and the worker
        self.started: Set[str] = set()
        self.finished: Set[str] = set()  # generators that ended
        self.done: Set[str] = set()  # resources with nothing more to come
        self.out: Dict[str, Deque[Batch]] = {}
        self.waiting: Dict[str, int] = {}  # generators waiting for an item, by resource
        self.plans: Deque[str] = deque()
        self.error_raised: Optional[BaseException] = None
        self.stopping = False
        self.exiting = False
        # the worker's alone
        self.planned: Set[str] = set()
        self.outstanding: Dict[str, int] = {}
        self.pending: Dict[str, List[int]] = {}
        self.hi: Deque[Request] = deque()
        self.lo: Deque[Request] = deque()
        self.spec: Deque[Request] = deque()
        self.inflight = 0
        self.jobs: Dict[int, Request] = {}
        self.seen_cols: Dict[str, set] = {}
        self.counters: Dict[str, int] = {"requests": 0, "bytes": 0}
        for k in self.extra_counters + self.BASE_COUNTERS:
            self.counters[k] = 0
        self.t0 = self.last_response_at = time.monotonic()

    def fresh(self) -> bool:
        """True before the first resource of an extraction starts."""
        return not self.started or self.started <= self.finished

    def start(self, names: Iterable[str], prepare: Optional[Callable[[], None]] = None) -> None:
        """Starts the resources `names` (registered ones; those already started are
        skipped). On a fresh run first resets (also when the same source object is run
        again) and calls `on_reset`; then `prepare()`; then queues the plans for the
        worker, in registration order, so all requests go in flight together."""
        with self.cv:
            old = self.thread if self.fresh() else None
        if old is not None and old is not threading.current_thread():
            old.join()
        with self.cv:
            if self.fresh():
                self.thread = None
                self._reset()
                if self.on_reset is not None:
                    self.on_reset()
                if self.client is None:
                    self.client = new_client(self.client_options)
                    weakref.finalize(self, _close_quietly, self.client)
            if prepare is not None:
                prepare()
            wanted = set(names)
            for n in wanted - set(self.resources):
                raise KeyError(f"{self.name}: no resource {n!r} registered")
            new = [n for n in self.resources if n in wanted and n not in self.started]
            for n in new:
                self.started.add(n)
                self.out[n] = deque()
                self.plans.append(n)
            if self.thread is not None and (self.exiting or not self.thread.is_alive()):
                self.thread.join()  # it decided to return before these plans came
                self.thread = None
            if self.thread is None:
                self.exiting = False
                self.thread = threading.Thread(target=self._work, name=f"dltc-{self.name}", daemon=True)
                self.thread.start()
            self.cv.notify_all()

    def items(self, name: str) -> Iterator[Any]:
        """The body of resource `name`'s generator: yields each item of each batch, then
        commits the batch (after dlt took its items); returns when nothing more comes."""
        try:
            while (batch := self._next_batch(name)) is not None:
                for item in batch.items:
                    yield item
                if batch.commit is not None:
                    batch.commit()  # only after dlt took the batch
        finally:
            self._stop(name)

    def _next_batch(self, name: str) -> Optional[Batch]:
        with self.cv:
            while True:
                if self.error_raised is not None:
                    raise self.error_raised
                q = self.out.get(name)
                if q:
                    batch = q.popleft()
                    self.cv.notify_all()
                    return batch
                if name in self.done or name not in self.started:
                    return None
                if self.thread is None or not self.thread.is_alive():
                    raise self.error(f"{self.name}: the fetch worker stopped unexpectedly")
                self.waiting[name] = self.waiting.get(name, 0) + 1
                self.cv.notify_all()
                self.cv.wait(0.5)
                self.waiting[name] -= 1
                if not self.waiting[name]:
                    del self.waiting[name]

    def _stop(self, name: str) -> None:
        with self.cv:
            self.finished.add(name)
            q = self.out.get(name)
            if q:
                q.clear()  # a generator closed early: its batches would pause the worker forever
            if not self.started <= self.finished:
                self.cv.notify_all()
                return
            self.stopping = True
            self.cv.notify_all()
        t = self.thread
        if t is not None and t is not threading.current_thread():
            t.join()
        self.thread = None
        if self.client is not None:
            self.stats.update(self.progress())
            _close_quietly(self.client)
            self.client = None

    # -- the worker thread
    def _work(self) -> None:
        try:
            while True:
                self._run_plans()
                self._flush_idle()
                with self.cv:
                    while not self.stopping and self._must_pause():
                        self.cv.wait(0.5)
                    if self.stopping or (not self.plans and self.started <= self.done):
                        self.exiting = True
                        return
                    if self.plans:
                        continue
                self._top_up()
                r = self.client.next(timeout=0.25)  # waits with the GIL released
                if r is None:
                    continue
                self._on_response(r)
                self._flush_idle()
                with self.cv:
                    self.cv.notify_all()
                if self.progress_cb is not None:
                    self.progress_cb(self.progress())
        except BaseException as e:  # handed to the generator dlt pulls next
            with self.cv:
                self.error_raised = e
                self.exiting = True
                self.cv.notify_all()

    def _run_plans(self) -> None:
        while True:
            with self.cv:
                if not self.plans:
                    return
                name = self.plans.popleft()
            self.resources[name].plan(self)
            self.planned.add(name)

    def _must_pause(self) -> bool:
        full = False
        for name, q in self.out.items():
            mq = self.resources[name].max_queued
            if mq is not None and len(q) >= mq:
                full = True
                break
        if not full:
            return False
        # a generator dlt is pulling that has nothing yet must not starve
        return all(self.out.get(n) for n in self.waiting)

    def _flush_idle(self) -> None:
        for name in self.resources:  # registration order
            if name in self.planned and not self.outstanding.get(name) and name not in self.done:
                res = self.resources[name]
                if res.flush is not None:
                    self._pending_of(name)[:] = [0, 0]
                    res.flush(self)
                with self.cv:
                    self.done.add(name)
                    self.cv.notify_all()

    def _top_up(self) -> None:
        while self.inflight < self.max_inflight:
            q = self.hi or self.lo or self.spec
            if not q:
                return
            req = q.popleft()
            if req.cancelled:
                req.state = _DONE
                continue
            try:
                rid = self.client.submit(req.url, **req.submit)
            except (TypeError, ValueError) as e:
                raise self.error(f"{self.name}: cannot request {req.url}: {e}") from e
            self.jobs[rid] = req
            req.state = _INFLIGHT
            self.inflight += 1

    def _on_response(self, r: Any) -> None:
        self.last_response_at = time.monotonic()
        self.inflight -= 1
        req = self.jobs.pop(r.id)
        c = self.counters
        c["requests"] += 1
        if r.body:
            c["bytes"] += len(r.body)
        if r.not_modified:
            c["not_modified"] += 1
        if req.cancelled:  # its holds went with the cancel
            req.state = _DONE
            return
        if r.error:
            if req.on_error is None:
                from dltc import FetchError

                raise FetchError(f"{self.name}: request for {req.url} failed: {r.error}")
            req.on_error(self, req, r)
        else:
            try:
                req.handler(self, req, r)
            except ValueError as e:  # dltc.JSONDecodeError, inflate's errors, BadBody
                if getattr(e, "code", None) != "ESCHEMA" and req.tries < self.max_attempts:
                    # a 200 whose body is not what we expect (truncated, HTML, garbage):
                    # fetch it again; a contract violation (freeze) is the data: not retried
                    req.tries += 1
                    c["bad_bodies"] += 1
                    req.state = _QUEUED
                    self.hi.append(req)
                    return
                raise self.error(f"{self.name}: invalid response from {req.url}: {e}") from e
        req.state = _DONE
        for n in req.resources:
            self.outstanding[n] -= 1

    # -- for the source's callbacks (worker thread)
    def submit(self, req: Request) -> Request:
        """Queues `req` (high, normal or speculative); it holds its resources from now
        until its response is handled or it is cancelled."""
        if req.state != _DONE:
            raise RuntimeError(f"{self.name}: {req!r} is already queued")
        req.state = _QUEUED
        req.cancelled = False
        for n in req.resources:
            self.outstanding[n] = self.outstanding.get(n, 0) + 1
        (self.hi if req.high else self.spec if req.speculative else self.lo).append(req)
        return req

    def attach(self, req: Request, name: str) -> None:
        """`req` also holds `name` (a resource started after `req` was submitted)."""
        if req.state == _DONE or req.cancelled:
            raise RuntimeError(f"{self.name}: {req!r} was already handled")
        if name not in req.resources:
            req.resources.add(name)
            self.outstanding[name] = self.outstanding.get(name, 0) + 1

    def cancel(self, req: Request) -> bool:
        """Drops a queued request, or discards an in-flight one's response unhandled;
        releases its holds. False if it was already handled (or cancelled)."""
        if req.state == _DONE or req.cancelled:
            return False
        req.cancelled = True
        self.counters["cancelled"] = self.counters.get("cancelled", 0) + 1
        for n in req.resources:
            self.outstanding[n] -= 1
        return True

    def active(self, name: str) -> bool:
        """Started, and its generator has not ended."""
        with self.cv:
            return name in self.started and name not in self.finished

    def emit(self, name: str, *items: Any, commit: Optional[Callable[[], None]] = None) -> None:
        """Appends one Batch to `name`'s queue (dropped if it is not active)."""
        with self.cv:
            if name not in self.started or name in self.finished:
                return
            self.out[name].append(Batch(items, commit))
            self.cv.notify_all()

    def _pending_of(self, name: str) -> List[int]:
        p = self.pending.get(name)
        if p is None:
            p = self.pending[name] = [0, 0]
        return p

    def added(self, name: str, rows: int, nbytes: int = 0) -> None:
        """The source holds `rows` more rows (`nbytes` more body bytes) for `name`; at the
        resource's batch_rows or batch_bytes its flush is called."""
        p = self._pending_of(name)
        p[0] += rows
        p[1] += nbytes
        res = self.resources[name]
        if (res.batch_rows is not None and p[0] >= res.batch_rows) or (
            res.batch_bytes is not None and p[1] >= res.batch_bytes
        ):
            p[0] = p[1] = 0
            if res.flush is not None:
                res.flush(self)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def prune(self, name: str, tbl: pa.Table) -> pa.Table:
        """dlt's dict path creates a column only once it has a non-null value: drops the
        columns of table `name` that have never had one in this extraction."""
        seen = self.seen_cols.setdefault(name, set())
        drop = []
        for field, col in zip(tbl.schema, tbl.columns):
            if field.name in seen:
                continue
            if col.null_count == len(col) and not field.name.startswith("_dlt_"):
                drop.append(field.name)
            else:
                seen.add(field.name)
        return tbl.drop_columns(drop) if drop else tbl

    # -- progress
    def progress(self) -> Dict[str, Any]:
        stats = self.client.stats() if self.client is not None else {}
        c = self.counters
        out: Dict[str, Any] = {
            "elapsed": time.monotonic() - self.t0,
            "network_s": self.last_response_at - self.t0,  # start to the last response
            "requests": c["requests"],
            "queued": len(self.hi) + len(self.lo) + len(self.spec) + self.inflight,
            "bytes": c["bytes"],
        }
        for k, v in c.items():
            if k not in out:
                out[k] = v
        out["retries"] = sum((stats.get("retries_by_cause") or {}).values())
        out["status_429"] = stats.get("status_429", 0)
        return out


# ---- de-duplication ----------------------------------------------------------------------


class Dedup:
    """Keys seen in one extraction (one key space): `first(key)` is True once per key."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: set = set()

    def first(self, key: Any) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def filter_by(self, run: Run, tbl: pa.Table, columns: Sequence[str]) -> pa.Table:
        """Drops rows whose key (the values of `columns`) came before; rows with a null
        key component are kept."""
        cols = [tbl.column(c).to_pylist() if c in tbl.column_names else [None] * tbl.num_rows for c in columns]
        keys: Iterable[Any] = cols[0] if len(cols) == 1 else zip(*cols)
        keep = [k is None or (isinstance(k, tuple) and None in k) or self.first(k) for k in keys]
        return keep_rows(run, tbl, keep)


def keep_rows(run: Run, tbl: pa.Table, keep: Sequence[bool]) -> pa.Table:
    """The rows of `tbl` where `keep` is True; the others count as duplicates."""
    kept = sum(keep)
    run.count("duplicates", len(keep) - kept)
    if kept == len(keep):
        return tbl
    # take: cheaper and steadier than a boolean filter here
    return tbl.take(pa.array([i for i, k in enumerate(keep) if k], type=pa.int64()))


# ---- the engine and decoder adapters (the only code that touches dltc._native) --------

_HEAP_TUNED = False


def tune_heap() -> None:
    """Response bodies (100 KB - 1 MB, freed out of order) fragment glibc's heap once its
    dynamic mmap threshold has grown past them: RSS then creeps up with the number of
    responses. A fixed 128 KB threshold gives such blocks back to the OS on free. Once per
    process; DLTC_NO_MALLOPT=1 turns it off."""
    global _HEAP_TUNED
    if _HEAP_TUNED or os.environ.get("DLTC_NO_MALLOPT"):
        return
    _HEAP_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (glibc)
    except (OSError, AttributeError):  # not glibc
        pass


_CLIENT_HOOKS: List[Callable[[Any], None]] = []
_HOOKS_LOCK = threading.Lock()


def add_client_hook(hook: Callable[[Any], None]) -> Callable[[], None]:
    """Calls `hook(client)` with every Client `new_client` makes in this process from now
    on, before any request is submitted to it (e.g. to apply limits leased from elsewhere
    with `client.set_limits`). Returns a function that removes the hook."""
    with _HOOKS_LOCK:
        _CLIENT_HOOKS.append(hook)

    def remove() -> None:
        with _HOOKS_LOCK:
            if hook in _CLIENT_HOOKS:
                _CLIENT_HOOKS.remove(hook)

    return remove


def new_client(options: Dict[str, Any]) -> Any:
    from dltc import _native

    tune_heap()
    # Bodies arrive still compressed and are inflated by the decoding thread (libdeflate,
    # GIL released), so the engine thread only moves bytes: measured about 3x the
    # requests/s of decompressing inside libcurl (python -m dltc.bench fetch).
    client = _native.Client(**{"decompress": "caller", **options})
    with _HOOKS_LOCK:
        hooks = list(_CLIENT_HOOKS)
    for hook in hooks:
        hook(client)
    return client


def body(r: Any) -> bytes:
    """The response body, inflated when the server compressed it. Raises ValueError (a
    corrupt or over-cap body), which handlers let through as a bad body."""
    if r.content_encoding:
        from dltc import _native

        return _native.inflate(r.body, r.content_encoding)
    return r.body  # type: ignore[no-any-return]


def new_decoder(
    columns: Sequence[Tuple[Sequence[str], str]],
    selector: Optional[str],
    load_id: Optional[str],
    root: str,
    contract: Optional[Dict[str, str]] = None,
    **plan: Any,
) -> Any:
    """A decoder for dlt tables rooted at `root`: declared `columns` ((path, type)),
    inference on, child tables, dlt ids; other plan keys pass through."""
    from dltc import _native

    full = {
        "root_name": root,
        "selector": selector,
        "columns": [{"path": list(p), "type": t, "nullable": True} for p, t in columns],
        "infer": True,
        "contract": contract or {"columns": "evolve", "data_type": "evolve"},
        "child_tables": True,
        "dlt_ids": True,
        "load_id": load_id,
        **plan,
    }
    return _native.Decoder(full)


def table_name(root: str, key: Any) -> str:
    """Child table name as dlt's relational normalizer makes it."""
    if key == () or key is None:
        return root
    if isinstance(key, str):
        return key
    return _NAMING.shorten_fragments(root, *(_NAMING.normalize_tables_path(k) for k in key))


def column_name(raw: str) -> str:
    """A raw SEP-joined field name (as the decoder exports it) -> dlt column name,
    variant columns (`x__v_text`) included."""
    if raw.startswith("_dlt_"):
        return raw
    comps = raw.split(SEP)
    variant = None
    if len(comps) > 1 and comps[-1].startswith("v_") and comps[-1][2:] in DLT_TYPES:
        variant = comps.pop()
    norm = [_NAMING.normalize_path(c) for c in comps]
    name = norm[0] if len(norm) == 1 else _NAMING.shorten_fragments(*norm)
    return _NAMING.shorten_fragments(name, variant) if variant else name


def to_table(obj: Any) -> pa.Table:
    """pyarrow Table from the decoder's __arrow_c_stream__ export, with dlt's names."""
    if isinstance(obj, pa.Table):
        tbl = obj
    elif isinstance(obj, pa.RecordBatch):
        tbl = pa.Table.from_batches([obj])
    else:
        tbl = pa.RecordBatchReader.from_stream(obj).read_all()
    return tbl.rename_columns([column_name(n) for n in tbl.column_names])


def flush_decoder(decoder: Any, root: str, source: str = "dltc") -> Tuple[Dict[str, pa.Table], Optional[pa.Table]]:
    """All rows the decoder holds, as ({dlt table name: pyarrow Table}, rejects or None).
    Rejects (what a schema contract discarded: source_url, path, reason, record) are
    loaded to the `_dltc_rejects` table, so nothing vanishes; a warning says how many."""
    out: Dict[str, pa.Table] = {}
    rejects = None
    for key, obj in decoder.flush().items():
        if key == REJECTS_TABLE:
            rejects = pa.RecordBatchReader.from_stream(obj).read_all() if not isinstance(obj, pa.Table) else obj
            if rejects.num_rows:
                logging.getLogger(f"dltc.{source}").warning(
                    "%s: %d records or values discarded by the schema contract in %s (see %s)",
                    source, rejects.num_rows, root, REJECTS_TABLE)
            else:
                rejects = None
            continue
        out[table_name(root, key)] = to_table(obj)
    return out, rejects


def rejects_item(tbl: pa.Table) -> Any:
    """Rejects go to their own append-only table whatever the resource's disposition."""
    # empty columns and key: nothing of the resource's own hints spills over
    hints = dlt.mark.make_hints(table_name=REJECTS_TABLE, write_disposition="append", columns={}, primary_key=[])
    return dlt.mark.with_hints(tbl, hints, create_table_variant=True)


def decoder_items(run: Run, decoder: Any, root: str) -> List[Any]:
    """What the decoder holds as items for dlt: the root table, each child table marked
    with its dlt name, then the rejects; null-only columns pruned (Run.prune)."""
    tables, rejects = flush_decoder(decoder, root, run.name)
    items: List[Any] = []
    for name, tbl in tables.items():
        if tbl.num_rows:
            tbl = run.prune(name, tbl)
            # dlt 1.31 cannot take a nested table (parent hint) from Arrow at extract:
            # the child table goes under the name dlt's normalizer gives it
            items.append(tbl if name == root else dlt.mark.with_table_name(tbl, name))
    if rejects is not None:
        items.append(rejects_item(rejects))
    return items


def column_values(tbl: Optional[pa.Table], column: str) -> List[Any]:
    """A column as a Python list; Nones when the table lacks it; [] without a table."""
    if tbl is None:
        return []
    if column not in tbl.column_names:
        return [None] * tbl.num_rows
    return tbl.column(column).to_pylist()  # type: ignore[no-any-return]


# ---- dlt context ---------------------------------------------------------------------


def selected_resources() -> Set[str]:
    """Names of the resources dlt will extract in this run (empty when not known), so a
    source can plan them all at once whichever generator dlt pulls first."""
    try:
        return set(dlt.current.source().selected_resources.keys())
    except Exception:
        return set()


def source_contract() -> Any:
    """The schema contract dlt applies to the current source (pipeline.run(schema_contract=
    ...) or source.schema_contract), so the decoder can enforce it row by row: dlt alone
    can only drop or keep a whole Arrow batch."""
    try:
        return dlt.current.source().schema_contract
    except Exception:
        return None


def load_id() -> Optional[str]:
    """The load id of the package being extracted (None outside a pipeline)."""
    try:
        return dlt.current.load_package_state()["load_id"]  # type: ignore[no-any-return]
    except Exception:
        pass
    try:
        return dlt.current.load_package()["load_id"]  # type: ignore[attr-defined,no-any-return]
    except Exception:
        return None


def contract(value: Any, error: Type[Exception] = SourceError) -> Dict[str, str]:
    """dlt's schema_contract (a mode or a dict of modes) as the decoder's columns and
    data_type modes; raises `error` for anything else."""
    if value is None:
        return {"columns": "evolve", "data_type": "evolve"}
    if isinstance(value, str):
        value = {"columns": value, "data_type": value}
    if not isinstance(value, dict) or not set(value) <= {"tables", "columns", "data_type"}:
        raise error(f"schema_contract must be a mode or a dict of modes, got {value!r}")
    out = {"columns": value.get("columns", "evolve"), "data_type": value.get("data_type", "evolve")}
    for k, v in out.items():
        if v not in MODES:
            raise error(f"schema_contract {k}={v!r} is not one of {MODES}")
    return out


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception:  # pragma: no cover - closing twice or at interpreter exit
        pass
