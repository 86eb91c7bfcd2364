"""dltc.runtime alone: toy sources defined here, against a tiny threaded HTTP server on
127.0.0.1 (real libcurl engine, real decoder). Each test drives `Run.items()` directly, as
dlt's thread would, except one that goes through a dlt pipeline into DuckDB. Covered:
children queued as parents decode, backpressure, commit after yield only, de-duplication,
bad-body retry and the errors that name the URL, priorities, cancel, progress counters."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import time
from typing import Any, Callable, Dict, List

import pyarrow as pa
import pytest

import dltc
from dltc import runtime
from dltc.runtime import BadBody, Dedup, Request, Run

# ---- a tiny server: path -> callable(handler) -> (status, headers, body) ------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: Dict[str, Callable[[Any], Any]] = {}
    seen: List[str] = []
    lock = threading.Lock()

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        with self.lock:
            type(self).seen.append(self.path)
        route = type(self).routes.get(path)
        status, headers, body = route(self) if route else (404, {}, b'{"error":"not found"}')
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    handler = type("H", (_Handler,), {"routes": {}, "seen": [], "lock": threading.Lock()})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    finally:
        srv.shutdown()
        srv.server_close()


def _json(doc: Any) -> Any:
    data = json.dumps(doc).encode()
    return lambda h: (200, {"Content-Type": "application/json"}, data)


CLIENT = {"max_concurrency": 8, "initial_concurrency": 8, "max_attempts": 2, "backoff_base": 0.01}


def _rows_source(run: Run, name: str, base: str, paths: List[str], **res: Any) -> Dict[str, Any]:
    """A toy resource: each path returns {"items": [{"id": .., ...}]}, decoded to Arrow and
    emitted in batches (res: batch_rows, batch_bytes, max_queued)."""
    st: Dict[str, Any] = {"dec": None}

    def reset() -> None:
        st["dec"] = None

    def decoder() -> Any:
        if st["dec"] is None:
            st["dec"] = runtime.new_decoder([(("id",), "bigint")], "items", None, name)
        return st["dec"]

    def plan(run: Run) -> None:
        for p in paths:
            run.submit(Request(base + p, on_page, name))

    def on_page(run: Run, req: Request, r: Any) -> None:
        data = runtime.body(r)
        n = decoder().feed(data, source_url=req.url)
        run.added(name, n, len(data))

    def flush(run: Run) -> None:
        if st["dec"] is not None:
            items = runtime.decoder_items(run, st["dec"], name)
            if items:
                run.emit(name, *items)

    run.resource(name, plan, flush=flush, **res)
    return {"reset": reset}


def _ids(items: List[Any]) -> List[int]:
    return sorted(i for t in items if isinstance(t, pa.Table) for i in t.column("id").to_pylist())


def _drain(run: Run, name: str) -> List[Any]:
    return list(run.items(name))


# ---- the request graph -----------------------------------------------------------------------


def test_children_are_queued_as_soon_as_their_parent_is_decoded(server):
    """The last parent is answered only once a child of the first parent was requested: a
    runtime that waited for all parents before queueing children would stall here (the
    server gives up after 20 s and the test fails on the flag, not on time)."""
    base, h = server
    child_seen = threading.Event()
    n_parents = 4

    def parent(i: int) -> Any:
        def route(_: Any) -> Any:
            if i == n_parents - 1:
                ok = child_seen.wait(20)
                route.waited_ok = ok  # type: ignore[attr-defined]
            return 200, {}, json.dumps({"children": [f"/child/{i}/{j}" for j in range(3)]}).encode()
        return route

    routes = {f"/parent/{i}": parent(i) for i in range(n_parents)}
    for i in range(n_parents):
        for j in range(3):
            def child(_: Any, i: int = i, j: int = j) -> Any:
                child_seen.set()
                return 200, {}, json.dumps({"items": [{"id": i * 10 + j}]}).encode()
            routes[f"/child/{i}/{j}"] = child
    h.routes.update(routes)

    run = Run("toy", CLIENT, max_inflight=16)
    got: List[Any] = []

    def plan(run: Run) -> None:
        # parents hold the children's resource too: it is not finished while they are out
        for i in range(n_parents):
            run.submit(Request(f"{base}/parent/{i}", on_parent, ("parents", "children"), data=i))

    def on_parent(run: Run, req: Request, r: Any) -> None:
        doc = json.loads(runtime.body(r))
        for path in doc["children"]:
            run.submit(Request(base + path, on_child, "children", high=True))
        run.emit("parents", req.data)

    def on_child(run: Run, req: Request, r: Any) -> None:
        got.append(json.loads(runtime.body(r))["items"][0]["id"])

    run.resource("parents", plan)
    run.resource("children", lambda run: None, flush=lambda run: run.emit("children", sorted(got)))
    run.start(["parents", "children"])
    children = _drain(run, "children")
    parents = _drain(run, "parents")
    assert getattr(routes[f"/parent/{n_parents - 1}"], "waited_ok", None) is True
    assert sorted(parents) == list(range(n_parents))
    assert children == [sorted(i * 10 + j for i in range(n_parents) for j in range(3))]
    assert len(h.seen) == n_parents * 4


def test_attach_a_late_resource_to_a_request_in_flight(server):
    """A request already queued can be made to hold a resource started later; the runtime
    releases that hold too, so the late resource finishes."""
    base, h = server
    h.routes["/shared"] = _json({"v": 7})
    run = Run("toy", CLIENT)
    shared: Dict[str, Any] = {}

    def on_shared(run: Run, req: Request, r: Any) -> None:
        v = json.loads(runtime.body(r))["v"]
        for name in sorted(req.resources):
            run.emit(name, (name, v))

    def plan_a(run: Run) -> None:
        shared["req"] = run.submit(Request(base + "/shared", on_shared, "a"))

    def plan_b(run: Run) -> None:
        run.attach(shared["req"], "b")  # same worker turn as plan_a: not yet answered

    run.resource("a", plan_a)
    run.resource("b", plan_b)
    run.start(["a", "b"])
    assert _drain(run, "a") == [("a", 7)]
    assert _drain(run, "b") == [("b", 7)]
    assert h.seen.count("/shared") == 1


# ---- queues, batches, backpressure ---------------------------------------------------------


def test_batches_are_cut_by_rows_and_by_bytes(server):
    base, h = server
    for i in range(12):
        h.routes[f"/p/{i}"] = _json({"items": [{"id": i * 100 + k, "pad": "x" * 500} for k in range(10)]})
    paths = [f"/p/{i}" for i in range(12)]
    by_rows = Run("toy", CLIENT)
    _rows_source(by_rows, "r", base, paths, batch_rows=30)
    by_rows.start(["r"])
    tables = [t for t in _drain(by_rows, "r") if isinstance(t, pa.Table)]
    assert _ids(tables) == sorted(i * 100 + k for i in range(12) for k in range(10))
    # 10 rows per page: a flush at every 3rd page (30 rows), the last one at the end
    assert [t.num_rows for t in tables] == [30, 30, 30, 30]

    page_bytes = len(json.dumps({"items": [{"id": 0, "pad": "x" * 500} for _ in range(10)]}))
    by_bytes = Run("toy", CLIENT)
    _rows_source(by_bytes, "r", base, paths, batch_bytes=2 * page_bytes)
    by_bytes.start(["r"])
    tables = [t for t in _drain(by_bytes, "r") if isinstance(t, pa.Table)]
    # every page is at least page_bytes and below twice that: a flush every 2 pages
    assert [t.num_rows for t in tables] == [20] * 6


def test_backpressure_bounds_the_queue_and_pauses_the_worker(server):
    """With max_queued=2 and one batch per response, the worker may hold at most 2 batches
    for a generator that does not pull: it checks the queue before taking each response,
    and each response adds one batch. So while the consumer sleeps the number of handled
    responses stays bounded, however long it sleeps."""
    base, h = server
    n = 40
    for i in range(n):
        h.routes[f"/p/{i}"] = _json({"items": [{"id": i}]})
    run = Run("toy", {**CLIENT, "queue_size": 4}, max_inflight=8)
    _rows_source(run, "r", base, [f"/p/{i}" for i in range(n)], batch_rows=1, max_queued=2)
    run.start(["r"])
    it = run.items("r")
    first = next(it)
    time.sleep(0.5)  # room for a worker that ignores the bound to run ahead
    handled = run.counters["requests"]
    assert 1 <= handled <= 1 + 2, handled  # the one taken + max_queued waiting
    lengths = []
    rest = []
    for item in it:
        lengths.append(len(run.out["r"]))
        rest.append(item)
    assert max(lengths) <= 2
    assert _ids([first] + rest) == list(range(n))


def test_a_waiting_generator_is_never_starved_by_a_full_queue(server):
    """Resource `full` is bounded and never pulled until the end; `other` is pulled first.
    The worker must keep going for `other` although `full`'s queue is at its bound."""
    base, h = server
    for i in range(10):
        h.routes[f"/f/{i}"] = _json({"items": [{"id": i}]})
        h.routes[f"/o/{i}"] = _json({"items": [{"id": 100 + i}]})
    run = Run("toy", CLIENT)
    _rows_source(run, "full", base, [f"/f/{i}" for i in range(10)], batch_rows=1, max_queued=1)
    _rows_source(run, "other", base, [f"/o/{i}" for i in range(10)], batch_rows=1, max_queued=1)
    run.start(["full", "other"])
    assert _ids(_drain(run, "other")) == [100 + i for i in range(10)]
    assert _ids(_drain(run, "full")) == list(range(10))


# ---- state after yield, de-duplication -------------------------------------------------------


def _commit_source(base: str, n: int) -> Any:
    run = Run("toy", CLIENT, max_queued=None)
    committed: List[int] = []

    def plan(run: Run) -> None:
        for i in range(n):
            run.submit(Request(f"{base}/c/{i}", on_page, "c", data=i))

    def on_page(run: Run, req: Request, r: Any) -> None:
        run.emit("c", req.data, commit=lambda i=req.data: committed.append(i))

    run.resource("c", plan)
    return run, committed


def test_state_is_committed_only_after_the_yield(server):
    base, h = server
    for i in range(5):
        h.routes[f"/c/{i}"] = _json({"i": i})
    run, committed = _commit_source(base, 5)
    run.start(["c"])
    it = run.items("c")
    first = next(it)
    time.sleep(0.2)  # the worker handles every response meanwhile: nothing is committed yet
    assert committed == []
    second = next(it)  # resuming the generator means dlt took `first`
    assert committed == [first]
    it.close()  # dlt stops at a yield: `second` was never taken, never committed
    assert committed == [first] and second != first

    run2, committed2 = _commit_source(base, 5)
    run2.start(["c"])
    taken = _drain(run2, "c")
    assert sorted(committed2) == sorted(taken) == list(range(5))


def test_commit_after_yield_through_a_dlt_pipeline(server, tmp_path):
    """Through dlt: a commit runs in the resource when dlt resumes it after the batch.
    add_limit(2) closes the generator right after the 2nd page: both pages are loaded, the
    state records only the 1st (at least once, never a page that was not loaded)."""
    import dlt

    base, h = server
    for i in range(6):
        h.routes[f"/c/{i}"] = _json({"items": [{"id": i}]})

    @dlt.source(name="toy")
    def toy() -> Any:
        run = Run("toy", CLIENT)

        def plan(run: Run) -> None:
            for i in range(6):
                run.submit(Request(f"{base}/c/{i}", on_page, "pages"))

        def on_page(run: Run, req: Request, r: Any) -> None:
            i = json.loads(runtime.body(r))["items"][0]["id"]
            done = lambda: dlt.current.resource_state().setdefault("done", []).append(i)  # noqa: E731
            run.emit("pages", pa.table({"id": [i]}), commit=done)

        run.resource("pages", plan)

        @dlt.resource
        def pages() -> Any:
            run.start(["pages"])
            yield from run.items("pages")

        return pages

    p = dlt.pipeline("toy_rt", destination=dlt.destinations.duckdb(str(tmp_path / "t.duckdb")),
                     pipelines_dir=str(tmp_path / "p"), dataset_name="d")

    def loaded() -> List[int]:
        with p.sql_client() as c:
            return sorted(r[0] for r in c.execute_sql("select id from pages"))

    p.run(toy().add_limit(2))
    state = p.state["sources"]["toy"]["resources"]["pages"]["done"]
    assert len(loaded()) == 2 and len(state) == 1 and set(state) <= set(loaded())
    p.run(toy())
    state = p.state["sources"]["toy"]["resources"]["pages"]["done"]
    assert set(state) == set(range(6)) and len(state) == 7


def test_dedup_by_key(server):
    base, h = server
    h.routes["/a"] = _json({"items": [{"id": 1}, {"id": 2}, {"id": 3}]})
    h.routes["/b"] = _json({"items": [{"id": 3}, {"id": 4}, {"id": None}]})
    run = Run("toy", CLIENT)
    seen = Dedup()
    dec = runtime.new_decoder([(("id",), "bigint")], "items", None, "t")

    def plan(run: Run) -> None:
        for p in ("/a", "/b"):
            run.submit(Request(base + p, on_page, "t"))

    def on_page(run: Run, req: Request, r: Any) -> None:
        dec.feed(runtime.body(r), source_url=req.url)
        tables, _ = runtime.flush_decoder(dec, "t")
        run.emit("t", seen.filter_by(run, tables["t"], ["id"]))

    run.resource("t", plan)
    run.start(["t"])
    out = _drain(run, "t")
    ids = [i for t in out for i in t.column("id").to_pylist()]
    assert sorted(ids, key=lambda x: (x is None, x)) == [1, 2, 3, 4, None]  # a null key is kept
    assert run.progress()["duplicates"] == 1
    assert runtime.keep_rows(run, pa.table({"x": [1, 2]}), [True, False]).column("x").to_pylist() == [1]
    assert run.counters["duplicates"] == 2


# ---- errors ------------------------------------------------------------------------------------


def _flaky(bad: int, good: bytes) -> Any:
    """The first `bad` fetches answer 200 with a truncated body, then `good`."""
    count = {"n": 0}

    def route(_: Any) -> Any:
        count["n"] += 1
        return 200, {}, (good[: len(good) // 2] if count["n"] <= bad else good)

    route.count = count  # type: ignore[attr-defined]
    return route


def test_bad_body_is_fetched_again_up_to_max_attempts(server):
    base, h = server
    good = json.dumps({"items": [{"id": k} for k in range(5)]}).encode()
    h.routes["/flaky"] = flaky = _flaky(2, good)
    run = Run("toy", CLIENT, max_attempts=3)
    _rows_source(run, "r", base, ["/flaky"])
    run.start(["r"])
    assert _ids(_drain(run, "r")) == list(range(5))  # the rolled-back halves left no rows
    assert flaky.count["n"] == 3 and run.stats["bad_bodies"] == 2


def test_bad_body_gives_up_with_an_error_naming_the_url(server):
    base, h = server
    h.routes["/always"] = flaky = _flaky(10, json.dumps({"items": [{"id": 1}]}).encode())
    run = Run("toy", CLIENT, max_attempts=2)
    _rows_source(run, "r", base, ["/always"])
    run.start(["r"])
    with pytest.raises(runtime.SourceError) as ei:
        _drain(run, "r")
    assert f"toy: invalid response from {base}/always" in str(ei.value)
    assert isinstance(ei.value.__cause__, dltc.JSONDecodeError)
    assert flaky.count["n"] == 2


def test_bad_body_raised_by_the_handler_and_a_source_error_class(server):
    base, h = server
    h.routes["/shape"] = _json({"unexpected": True})

    class ToyError(ValueError):
        pass

    calls = []

    def plan(run: Run) -> None:
        run.submit(Request(base + "/shape", on_page, "r"))

    def on_page(run: Run, req: Request, r: Any) -> None:
        calls.append(req.tries)
        doc = json.loads(runtime.body(r))
        if "items" not in doc:
            raise BadBody("no 'items' in the body")

    run = Run("toy", CLIENT, max_attempts=3, error=ToyError)
    run.resource("r", plan)
    run.start(["r"])
    with pytest.raises(ToyError, match=r"invalid response from http://127\.0\.0\.1:\d+/shape: no 'items'"):
        _drain(run, "r")
    assert calls == [1, 2, 3]


def test_schema_contract_violation_is_not_retried(server):
    base, h = server
    h.routes["/drift"] = route = _flaky(0, json.dumps({"items": [{"id": 1, "new": "x"}]}).encode())
    run = Run("toy", CLIENT, max_attempts=4)
    dec = runtime.new_decoder([(("id",), "bigint")], "items", None, "t", {"columns": "freeze", "data_type": "freeze"})

    def on_page(run: Run, req: Request, r: Any) -> None:
        dec.feed(runtime.body(r), source_url=req.url)

    run.resource("t", lambda run: run.submit(Request(base + "/drift", on_page, "t")))
    run.start(["t"])
    with pytest.raises(runtime.SourceError, match="invalid response from .*/drift"):
        _drain(run, "t")
    assert route.count["n"] == 1  # the data, not the transfer: fetched once


def test_a_failed_request_names_its_url_and_on_error_may_handle_it(server):
    base, h = server  # /missing is not routed: 404
    run = Run("toy", {**CLIENT, "max_attempts": 1})
    run.resource("r", lambda run: run.submit(Request(base + "/missing?page=3", lambda *a: None, "r")))
    run.start(["r"])
    with pytest.raises(dltc.FetchError, match=r"toy: request for http://127\.0\.0\.1:\d+/missing\?page=3 failed"):
        _drain(run, "r")

    handled = []
    run2 = Run("toy", {**CLIENT, "max_attempts": 1})
    run2.resource("r", lambda run: run.submit(Request(
        base + "/missing", lambda *a: None, "r", on_error=lambda run, req, r: handled.append(r.status))))
    run2.start(["r"])
    assert _drain(run2, "r") == [] and handled == [404]


def test_an_exception_in_a_handler_reaches_the_generator(server):
    base, h = server
    h.routes["/x"] = _json({})

    def boom(run: Run, req: Request, r: Any) -> None:
        raise KeyError("boom in the handler")

    run = Run("toy", CLIENT)
    run.resource("r", lambda run: run.submit(Request(base + "/x", boom, "r")))
    run.start(["r"])
    with pytest.raises(KeyError, match="boom"):
        _drain(run, "r")


# ---- priorities, cancel, in-flight cap ---------------------------------------------------------


def test_priorities_cap_and_cancel(server):
    """One request in flight at a time: high, then normal, then speculative; a cancelled
    queued request is never fetched and its resource still finishes."""
    base, h = server
    for name in ("lo1", "lo2", "hi1", "hi2", "sp1", "sp2", "sp3"):
        h.routes[f"/{name}"] = _json({})
    run = Run("toy", {**CLIENT, "max_concurrency": 1, "initial_concurrency": 1}, max_inflight=1)
    order: List[str] = []

    def on(run: Run, req: Request, r: Any) -> None:
        order.append(req.url.rsplit("/", 1)[1])

    def plan(run: Run) -> None:
        run.submit(Request(base + "/sp1", on, "r", speculative=True))
        run.submit(Request(base + "/lo1", on, "r"))
        doomed = run.submit(Request(base + "/sp2", on, "r", speculative=True))
        run.submit(Request(base + "/hi1", on, "r", high=True))
        run.submit(Request(base + "/lo2", on, "r"))
        run.submit(Request(base + "/sp3", on, "r", speculative=True))
        run.submit(Request(base + "/hi2", on, "r", high=True))
        assert run.cancel(doomed) and not run.cancel(doomed)

    run.resource("r", plan)
    run.start(["r"])
    assert _drain(run, "r") == []
    assert order == ["hi1", "hi2", "lo1", "lo2", "sp1", "sp3"]
    assert "/sp2" not in h.seen and run.stats["cancelled"] == 1


def test_submit_kwargs_go_to_the_client_unchanged(server):
    """etag / empty_on pass through as client.submit keywords: a 304 and a 404 body."""
    base, h = server
    h.routes["/tagged"] = lambda hd: ((304, {"ETag": '"v1"'}, b"") if hd.headers.get("If-None-Match") == '"v1"'
                                      else (200, {"ETag": '"v1"'}, b"{}"))
    got = []

    def on(run: Run, req: Request, r: Any) -> None:
        got.append((req.data, r.status, r.not_modified))

    def plan(run: Run) -> None:
        run.submit(Request(base + "/tagged", on, "r", data="etag", etag='"v1"'))
        run.submit(Request(base + "/gone", on, "r", data="404", empty_on=(404,)))

    run = Run("toy", CLIENT)
    run.resource("r", plan)
    run.start(["r"])
    _drain(run, "r")
    assert sorted(got) == [("404", 404, False), ("etag", 304, True)]
    assert run.stats["not_modified"] == 1


# ---- progress --------------------------------------------------------------------------------


def test_progress_counters_and_final_stats(server):
    base, h = server
    bodies = {}
    for i in range(6):
        raw = json.dumps({"items": [{"id": i}] * (i + 1)}).encode()
        data = gzip.compress(raw) if i % 2 else raw
        bodies[i] = data
        h.routes[f"/p/{i}"] = (lambda d, gz: lambda _: (200, {"Content-Encoding": "gzip"} if gz else {}, d))(data, i % 2)
    seen: List[Dict[str, Any]] = []
    stats: Dict[str, Any] = {}
    run = Run("toy", CLIENT, progress=seen.append, stats=stats, counters=("widgets",))
    _rows_source(run, "r", base, [f"/p/{i}" for i in range(6)])
    orig = run.resources["r"].flush

    def flush(run: Run) -> None:
        run.count("widgets", 3)
        orig(run)  # type: ignore[misc]

    run.resources["r"].flush = flush
    run.start(["r"])
    tables = _drain(run, "r")
    assert sum(t.num_rows for t in tables) == sum(i + 1 for i in range(6))  # gzip bodies inflated
    assert [p["requests"] for p in seen] == list(range(1, 7))  # one call per response
    assert all(p["requests"] + p["queued"] == 6 for p in seen)
    keys = {"elapsed", "network_s", "requests", "queued", "bytes", "widgets", "duplicates", "not_modified",
            "bad_bodies", "retries", "status_429"}
    assert set(stats) == keys
    assert stats["requests"] == 6 and stats["queued"] == 0 and stats["widgets"] == 3
    assert stats["bytes"] == sum(len(b) for b in bodies.values())  # as received (compressed)
    assert stats["bad_bodies"] == stats["duplicates"] == stats["retries"] == 0
    assert 0 <= stats["network_s"] <= stats["elapsed"]
