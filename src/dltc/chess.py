"""The chess.com source: a drop-in for dlt's verified `chess` source (same resources,
parameters and tables) whose requests all go through one C fetch engine and whose JSON is
decoded in C straight to Arrow. Player -> archive list -> monthly archives is pipelined:
a month is requested as soon as its player's archive list arrives, and record batches are
yielded as they complete. Chess knowledge lives here and nowhere else in dltc.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import weakref
from collections import deque
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Deque, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import quote

import dlt
import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.utils import uniq_id_base64
from dlt.sources import DltResource

__all__ = [
    "CALLBACK_URL",
    "OFFICIAL_API_URL",
    "ChessSourceError",
    "UnknownPlayerError",
    "source",
    "validate_month",
    "validate_players",
]

OFFICIAL_API_URL = "https://api.chess.com/pub/"
CALLBACK_URL = "https://www.chess.com/callback/"

log = logging.getLogger("dltc.chess")

# chess.com usernames: letters, digits, '_' and '-' (3-25 in practice; we allow 1-50).
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
_MONTH = re.compile(r"^(\d{4})/(0[1-9]|1[0-2])$")
_ARCHIVE_TAIL = re.compile(r"^games/\d{4}/(0[1-9]|1[0-2])$")

# Columns as dlt's dict path types them for the verified source (hints + inference).
_PROFILE_COLUMNS: List[Tuple[Sequence[str], str]] = [
    (("avatar",), "text"),
    (("player_id",), "bigint"),
    (("@id",), "text"),
    (("url",), "text"),
    (("name",), "text"),
    (("username",), "text"),
    (("title",), "text"),
    (("followers",), "bigint"),
    (("country",), "text"),
    (("location",), "text"),
    (("last_online",), "timestamp"),
    (("joined",), "timestamp"),
    (("status",), "text"),
    (("is_streamer",), "bool"),
    (("twitch_url",), "text"),
    (("verified",), "bool"),
    (("league",), "text"),
    (("fide",), "bigint"),
]

_SIDE = [("rating", "bigint"), ("result", "text"), ("@id", "text"), ("username", "text"), ("uuid", "text")]
_GAME_COLUMNS: List[Tuple[Sequence[str], str]] = [
    (("url",), "text"),
    (("pgn",), "text"),
    (("time_control",), "text"),
    (("end_time",), "timestamp"),
    (("rated",), "bool"),
    (("accuracies", "white"), "double"),
    (("accuracies", "black"), "double"),
    (("tcn",), "text"),
    (("uuid",), "text"),
    (("initial_setup",), "text"),
    (("fen",), "text"),
    (("start_time",), "bigint"),
    (("time_class",), "text"),
    (("rules",), "text"),
    *[(("white", k), t) for k, t in _SIDE],
    *[(("black", k), t) for k, t in _SIDE],
    (("eco",), "text"),
    (("tournament",), "text"),
    (("match",), "text"),
]

_NAMING = NamingConvention()
_PATH_SEP = "\x1f"


class ChessSourceError(ValueError):
    """A bad argument or a failed request of the chess source, with a clear message."""


class UnknownPlayerError(ChessSourceError):
    """chess.com answered 404 for a player: the username does not exist."""

    def __init__(self, player: str, url: str):
        super().__init__(f"chess.com player {player!r} not found (404 from {url})")
        self.player = player
        self.url = url


# ---- argument checks ----------------------------------------------------------------


def validate_month(value: Optional[str], name: str = "month") -> Optional[str]:
    """Returns `value` if it is None or a `YYYY/MM` string; raises ChessSourceError."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _MONTH.match(value):
        raise ChessSourceError(f"{name} must be a 'YYYY/MM' string, got {value!r}")
    return value


def validate_players(players: Any) -> List[str]:
    """Usernames as a list; accepts a list or a comma-separated string. Each name must be
    a chess.com username (letters, digits, '_' and '-'), so no path can be injected."""
    if isinstance(players, str):
        players = [p for p in (x.strip() for x in players.split(",")) if p]
    if not isinstance(players, (list, tuple)) or not players:
        raise ChessSourceError("players must be a non-empty list of chess.com usernames")
    out: List[str] = []
    for p in players:
        if not isinstance(p, str) or not _USERNAME.match(p):
            raise ChessSourceError(f"invalid chess.com username {p!r}")
        out.append(p)
    return out


def _player_path(username: str) -> str:
    return quote(username.lower(), safe="")


# ---- the engine and decoder adapters (the only code that touches dltc._native) --------


_HEAP_TUNED = False


def _tune_heap() -> None:
    """Response bodies (100 KB - 1 MB, freed out of order) fragment glibc's heap once its
    dynamic mmap threshold has grown past them: RSS then creeps up with the number of
    archives. A fixed 128 KB threshold gives such blocks back to the OS on free. Once per
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


def _new_client(options: Dict[str, Any]) -> Any:
    from dltc import _native

    _tune_heap()
    # Bodies arrive still compressed and are inflated by the decoding thread (libdeflate,
    # GIL released), so the engine thread only moves bytes: measured about 3x the
    # requests/s of decompressing inside libcurl (python -m dltc.bench fetch).
    return _native.Client(**{"decompress": "caller", **options})


def _body(r: Any) -> bytes:
    """The response body, inflated when the server compressed it. Raises ValueError (a
    corrupt or over-cap body), which the callers treat like any other bad body."""
    if r.content_encoding:
        from dltc import _native

        return _native.inflate(r.body, r.content_encoding)
    return r.body


def _new_decoder(
    columns: List[Tuple[Sequence[str], str]],
    selector: Optional[str],
    load_id: Optional[str],
    root: str,
    contract: Optional[Dict[str, str]] = None,
) -> Any:
    from dltc import _native

    plan = {
        "root_name": root,
        "selector": selector,
        "columns": [{"path": list(p), "type": t, "nullable": True} for p, t in columns],
        "infer": True,
        "contract": contract or {"columns": "evolve", "data_type": "evolve"},
        "child_tables": True,
        "dlt_ids": True,
        "load_id": load_id,
    }
    return _native.Decoder(plan)


def _table_name(root: str, key: Any) -> str:
    """Child table name as dlt's relational normalizer makes it."""
    if key == () or key is None:
        return root
    if isinstance(key, str):
        return key
    return _NAMING.shorten_fragments(root, *(_NAMING.normalize_tables_path(k) for k in key))


_DLT_TYPES = ("text", "bigint", "double", "bool", "timestamp", "date", "json")


def _column_name(raw: str) -> str:
    """A raw "\x1f"-joined field name (as the decoder exports it) -> dlt column name,
    variant columns (`x__v_text`) included."""
    if raw.startswith("_dlt_"):
        return raw
    comps = raw.split(_PATH_SEP)
    variant = None
    if len(comps) > 1 and comps[-1].startswith("v_") and comps[-1][2:] in _DLT_TYPES:
        variant = comps.pop()
    norm = [_NAMING.normalize_path(c) for c in comps]
    name = norm[0] if len(norm) == 1 else _NAMING.shorten_fragments(*norm)
    return _NAMING.shorten_fragments(name, variant) if variant else name


def _to_table(obj: Any) -> pa.Table:
    """pyarrow Table from the decoder's __arrow_c_stream__ export, with dlt's names."""
    if isinstance(obj, pa.Table):
        tbl = obj
    elif isinstance(obj, pa.RecordBatch):
        tbl = pa.Table.from_batches([obj])
    else:
        tbl = pa.RecordBatchReader.from_stream(obj).read_all()
    return tbl.rename_columns([_column_name(n) for n in tbl.column_names])


REJECTS_TABLE = "_dltc_rejects"


def _flush(decoder: Any, root: str) -> Tuple[Dict[str, pa.Table], Optional[pa.Table]]:
    """All rows the decoder holds, as ({dlt table name: pyarrow Table}, rejects or None).
    Rejects (what a schema contract discarded: source_url, path, reason, record) are
    loaded to the `_dltc_rejects` table, so nothing vanishes."""
    out: Dict[str, pa.Table] = {}
    rejects = None
    for key, obj in decoder.flush().items():
        if key == REJECTS_TABLE:
            rejects = pa.RecordBatchReader.from_stream(obj).read_all() if not isinstance(obj, pa.Table) else obj
            if rejects.num_rows:
                log.warning("chess: %d records or values discarded by the schema contract in %s (see %s)",
                            rejects.num_rows, root, REJECTS_TABLE)
            else:
                rejects = None
            continue
        out[_table_name(root, key)] = _to_table(obj)
    return out, rejects


# ---- one extraction: every request through one Client --------------------------------


class _Job:
    __slots__ = ("kind", "user", "url", "archive", "tries")

    def __init__(self, kind: str, user: str, url: str, archive: Optional[dict] = None):
        self.kind = kind  # "profile" | "list" | "month" | "popup"
        self.user = user
        self.url = url
        self.archive = archive
        self.tries = 1  # bodies that were not valid JSON are fetched again, up to max_attempts


class _Run:
    """Drives the Client for all resources of one source instance. A worker thread takes
    responses from the Client, decodes them (the decoder releases the GIL) and queues
    record batches per resource, while dlt's thread writes the previous batches: network,
    decoding and writing overlap. Each resource's generator takes its next item from its
    queue. Requests are planned for all selected resources at once, archive lists first.
    Memory is bounded: the worker pauses while enough games batches wait (unless the
    generator dlt is pulling has nothing yet), and a paused worker lets the engine's
    bounded queue stop new transfers."""

    KINDS = ("profiles", "archives", "games", "status")
    MAX_QUEUED_BATCHES = 4

    def __init__(self, cfg: Dict[str, Any]):
        self.cfg = cfg
        self.client: Any = None
        self.cv = threading.Condition(threading.Lock())
        self.thread: Optional[threading.Thread] = None
        self._reset()

    # -- life cycle
    def _reset(self) -> None:
        self.active: set = set()
        self.finished: set = set()
        self.flushed: set = set()
        self.out: Dict[str, Deque[Any]] = {k: deque() for k in self.KINDS}
        self.jobs: Dict[int, _Job] = {}
        self.hi: Deque[_Job] = deque()
        self.lo: Deque[_Job] = deque()
        self.inflight = 0
        self.outstanding = {k: 0 for k in self.KINDS}
        self.lists: Dict[str, Optional[List[str]]] = {}
        self.list_requested = False
        self.skipped: set = set()
        self.decoders: Dict[str, Any] = {}
        self.pending_archives: List[Tuple[dict, int, int]] = []  # (archive, first row, rows)
        self.pending_rows = 0
        self.pending_bytes = 0
        self.seen_uuids: set = set()
        self.listed = {p.lower() for p in self.cfg["players"]}
        self.seen_cols: Dict[str, set] = {}
        self.status_rows: List[dict] = []
        self.pending_profiles = 0
        self.games_state: Optional[dict] = None
        self.done_archives: set = set()
        self.open_archives: Dict[str, dict] = {}
        self.waiting_for: Optional[str] = None
        self.error: Optional[BaseException] = None
        self.stopping = False
        self.counters = {"requests": 0, "bytes": 0, "games": 0, "duplicates": 0, "not_modified": 0, "bad_bodies": 0}
        self.t0 = self.last_response_at = time.monotonic()

    def fresh(self) -> bool:
        """True before the first resource of an extraction starts."""
        return not self.active or self.active <= self.finished

    def start(self, kinds: set, games_state: Optional[dict]) -> None:
        """Plans the requests of every resource in `kinds` at once, archive lists first
        (they are on the critical path: months depend on them), so whichever generator
        dlt pulls first, all requests are in flight together."""
        with self.cv:
            if self.fresh():
                self._join_worker()
                self._reset()  # also when the same source object is run again
            if self.client is None:
                self.client = _new_client(self.cfg["client"])
                weakref.finalize(self, _close_quietly, self.client)
            if games_state is not None:
                games_state.setdefault("done", [])
                games_state.setdefault("open", {})
                self.games_state = games_state
                # the worker plans months from a snapshot; dlt's thread commits to the state
                self.done_archives = set(games_state["done"])
                self.open_archives = {u: dict(v) for u, v in games_state["open"].items()}
            kinds = kinds - self.active
            self.active |= kinds
            for kind in ("games", "archives"):
                if kind in kinds:
                    self.plan_lists(kind)
            if "profiles" in kinds:
                self.plan_profiles()
            if "status" in kinds:
                self.plan_status()
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._work, name="dltc-chess", daemon=True)
                self.thread.start()

    def stop(self, kind: str) -> None:
        with self.cv:
            self.finished.add(kind)
            if not self.active <= self.finished:
                return
            self.stopping = True
            self.cv.notify_all()
        self._join_worker()
        if self.client is not None:
            self._report()
            _close_quietly(self.client)
            self.client = None

    def _join_worker(self) -> None:
        t = self.thread
        if t is not None and t is not threading.current_thread():
            t.join()
        self.thread = None

    # -- the worker thread
    def _work(self) -> None:
        try:
            while True:
                with self.cv:
                    self._flush_idle_kinds()
                    while not self.stopping and self._must_pause():
                        self.cv.wait(0.5)
                    if self.stopping or self.active <= self.flushed:
                        return
                    self._top_up()
                r = self.client.next(timeout=0.25)  # waits with the GIL released
                if r is None:
                    continue
                with self.cv:
                    self.last_response_at = time.monotonic()
                    self.inflight -= 1
                    job = self.jobs.pop(r.id)
                    self.counters["requests"] += 1
                    if r.body:
                        self.counters["bytes"] += len(r.body)
                    self._dispatch(job, r)
                    self._flush_idle_kinds()
                    self.cv.notify_all()
                    if self.cfg["progress"] is not None:
                        self.cfg["progress"](self.progress())
        except BaseException as e:  # handed to the generator dlt pulls next
            with self.cv:
                self.error = e
                self.cv.notify_all()

    @contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Worker only: lets dlt's thread take batches while this one decodes. Decoders,
        pending rows and seen ids belong to the worker alone."""
        self.cv.release()
        try:
            yield
        finally:
            self.cv.acquire()

    def _must_pause(self) -> bool:
        if len(self.out["games"]) < self.MAX_QUEUED_BATCHES:
            return False
        wanted = self.waiting_for
        return wanted is None or bool(self.out[wanted])

    def _flush_idle_kinds(self) -> None:
        for kind in self.active - self.flushed:
            if self.outstanding[kind] == 0:
                self._final_flush(kind)
                self.flushed.add(kind)

    # -- dlt's thread
    def next_item(self, kind: str) -> Any:
        """The next item for `kind`'s generator; None when it has no more."""
        with self.cv:
            while True:
                if self.error is not None:
                    raise self.error
                if self.out[kind]:
                    item = self.out[kind].popleft()
                    self.cv.notify_all()
                    return item
                if kind in self.flushed:
                    return None
                if self.thread is None or not self.thread.is_alive():
                    raise ChessSourceError("chess: the fetch worker stopped unexpectedly")
                self.waiting_for = kind
                self.cv.notify_all()
                self.cv.wait(0.5)
                self.waiting_for = None

    # -- request planning
    def _submit_later(self, job: _Job, kind: str, high: bool) -> None:
        self.outstanding[kind] += 1
        (self.hi if high else self.lo).append(job)

    def plan_profiles(self) -> None:
        for user in self.cfg["players"]:
            url = f"{self.cfg['base_url']}player/{_player_path(user)}"
            self._submit_later(_Job("profile", user, url), "profiles", True)

    def plan_status(self) -> None:
        for user in self.cfg["players"]:
            url = f"{self.cfg['callback_url']}user/popup/{_player_path(user)}"
            self._submit_later(_Job("popup", user, url), "status", True)

    def plan_lists(self, kind: str) -> None:
        """Archive lists are shared by players_archives and players_games."""
        if not self.list_requested:
            self.list_requested = True
            for user in self.cfg["players"]:
                url = f"{self.cfg['base_url']}player/{_player_path(user)}/games/archives"
                self.hi.append(_Job("list", user, url))
        for user in self.cfg["players"]:
            if user in self.lists:
                self._on_list(kind, user, self.lists[user])
            else:
                self.outstanding[kind] += 1

    def _top_up(self) -> None:
        cap = self.cfg["max_inflight"]
        while self.inflight < cap and (self.hi or self.lo):
            job = self.hi.popleft() if self.hi else self.lo.popleft()
            etag = job.archive.get("etag") if job.archive else None
            rid = self.client.submit(job.url, etag=etag, empty_on=(404,))
            self.jobs[rid] = job
            self.inflight += 1

    def _failed(self, job: _Job, r: Any) -> Optional[str]:
        """None when the response is usable; 'missing' for a 404; raises on failure."""
        if r.error:
            from dltc import FetchError

            raise FetchError(f"chess: request for {job.url} failed: {r.error}")
        if r.status == 404:
            return "missing"
        return None

    def _bad_body(self, job: _Job, kind: str, err: Exception) -> None:
        """A 200 whose body is not the JSON we expect (truncated, HTML, garbage): fetch it
        again, up to max_attempts in all; then fail naming the URL. A schema contract
        violation (freeze) is not retried: it is the data, not the transfer."""
        if getattr(err, "code", None) != "ESCHEMA" and job.tries < self.cfg["max_attempts"]:
            job.tries += 1
            self.counters["bad_bodies"] += 1
            self._submit_later(job, kind, True)
            return
        raise ChessSourceError(f"chess: invalid response from {job.url}: {err}") from err

    def _unknown_player(self, job: _Job) -> None:
        if self.cfg["on_unknown_player"] == "raise":
            raise UnknownPlayerError(job.user, job.url)
        if job.user not in self.skipped:
            self.skipped.add(job.user)
            log.warning("chess: player %r not found (404 from %s); skipped", job.user, job.url)

    def _dispatch(self, job: _Job, r: Any) -> None:
        if job.kind == "profile":
            self.outstanding["profiles"] -= 1
            if self._failed(job, r) == "missing":
                self._unknown_player(job)
            else:
                dec = self._decoder("profiles")
                try:
                    with self._unlocked():
                        dec.feed(_body(r), source_url=job.url)
                except ValueError as e:  # dltc.JSONDecodeError is a ValueError
                    return self._bad_body(job, "profiles", e)
                self.pending_profiles += 1
                if self.pending_profiles >= self.cfg["profile_batch"]:
                    self._flush_profiles()
        elif job.kind == "popup":
            self.outstanding["status"] -= 1
            if self._failed(job, r) == "missing":
                self._unknown_player(job)
            else:
                try:
                    body = json.loads(_body(r))
                    row = {"username": job.user, "online_status": body["onlineStatus"],
                           "last_login_date": body["lastLoginDate"], "check_time": time.time()}
                except (ValueError, TypeError, KeyError) as e:
                    return self._bad_body(job, "status", e)
                self.status_rows.append(row)
                if len(self.status_rows) >= self.cfg["profile_batch"]:
                    self._flush_status()
        elif job.kind == "list":
            urls: Optional[List[str]]
            if self._failed(job, r) == "missing":
                urls = None
            else:
                try:
                    urls = json.loads(_body(r)).get("archives", [])
                    if not isinstance(urls, list):
                        raise ValueError("'archives' is not a list")
                except (ValueError, AttributeError) as e:
                    for kind in ("archives", "games"):
                        if kind in self.active and kind not in self.finished:
                            self.outstanding[kind] -= 1
                    return self._bad_list(job, e)
            self.lists[job.user] = urls
            for kind in ("archives", "games"):
                if kind in self.active and kind not in self.finished:
                    self.outstanding[kind] -= 1
                    self._on_list(kind, job.user, urls)
        elif job.kind == "month":
            self._on_month(job, r)

    def _bad_list(self, job: _Job, err: Exception) -> None:
        if job.tries >= self.cfg["max_attempts"]:
            raise ChessSourceError(f"chess: invalid response from {job.url}: {err}") from err
        job.tries += 1
        self.counters["bad_bodies"] += 1
        self.hi.append(job)
        for kind in ("archives", "games"):
            if kind in self.active and kind not in self.finished:
                self.outstanding[kind] += 1

    def _on_list(self, kind: str, user: str, urls: Optional[List[str]]) -> None:
        if urls is None:
            job = _Job("list", user, f"{self.cfg['base_url']}player/{_player_path(user)}/games/archives")
            self._unknown_player(job)
            return
        urls = self._safe_archive_urls(user, urls)
        if kind == "archives":
            self.out["archives"].append(urls)
        else:
            self._plan_months(user, urls)

    def _safe_archive_urls(self, user: str, urls: List[Any]) -> List[str]:
        """Only archive URLs of this player under the configured base are followed."""
        prefix = f"{self.cfg['base_url']}player/{_player_path(user)}/"
        ok = []
        for u in urls:
            if isinstance(u, str) and u.lower().startswith(prefix.lower()) and _ARCHIVE_TAIL.match(u[len(prefix):]):
                ok.append(u)
            else:
                log.warning("chess: archive URL %r of player %r is not under %s; not followed", u, user, prefix)
        return ok

    def _plan_months(self, user: str, urls: List[str]) -> None:
        done = self.done_archives
        open_ = self.open_archives
        start, end = self.cfg["start_month"], self.cfg["end_month"]
        last = urls[-1] if urls else None
        for url in urls:
            month = url[-7:]
            if start and month < start:
                continue
            if end and month > end:
                continue
            if url in done:
                continue  # a finished month loaded before: never fetched twice
            prev = open_.get(url)
            archive = {
                "url": url,
                "user": user,
                # the newest month of a player may still get games: revalidate it every run
                "open": url == last,
                "etag": prev["etag"] if prev else None,
                "known": set(prev["uuids"]) if prev else set(),
            }
            self._submit_later(_Job("month", user, url, archive), "games", False)

    # -- games
    def _on_month(self, job: _Job, r: Any) -> None:
        self.outstanding["games"] -= 1
        archive = job.archive
        assert archive is not None
        missing = self._failed(job, r) == "missing"
        if r.not_modified or missing or not r.body:
            if r.not_modified:
                self.counters["not_modified"] += 1
            # nothing new: commit right away (nothing to yield first)
            self.out["games"].append(("commit", None, [(archive, None, r.etag)], None))
            return
        dec = self._decoder("games")
        try:
            with self._unlocked():
                body = _body(r)
                n = dec.feed(body, source_url=job.url)
        except ValueError as e:  # the decoder rolled this document back
            return self._bad_body(job, "games", e)
        archive["etag_new"] = r.etag
        self.pending_archives.append((archive, self.pending_rows, n))
        self.pending_rows += n
        self.pending_bytes += len(body)
        if self.pending_rows >= self.cfg["batch_rows"] or self.pending_bytes >= self.cfg["batch_bytes"]:
            self._flush_games()

    def _flush_games(self) -> None:
        if not self.pending_archives:
            return
        archives, self.pending_archives = self.pending_archives, []
        self.pending_rows = self.pending_bytes = 0
        with self._unlocked():
            item = self._games_batch(archives)
        self.out["games"].append(item)

    def _games_batch(self, archives: List[Tuple[dict, int, int]]) -> Tuple[str, Any, list, Any]:
        tables, rejects = _flush(self.decoders["games"], "players_games")
        tbl = tables.get("players_games")
        uuids = _pylist(tbl, "uuid")
        urls = _pylist(tbl, "url")
        whites = _pylist(tbl, "white__username")
        blacks = _pylist(tbl, "black__username")
        listed = self.listed
        keep = [False] * len(uuids)
        commits = []
        seen = self.seen_uuids
        for archive, first, n in archives:
            known = archive["known"]  # loaded from this (open) archive by earlier runs
            in_archive: Optional[List[str]] = [] if archive["open"] else None
            for i in range(first, first + n):
                key = uuids[i] or urls[i]
                if in_archive is not None:
                    in_archive.append(key)
                if key in known:
                    continue
                # only a game between two listed players can come twice in one run: only
                # those ids are remembered, so memory does not grow with every game
                w, b = whites[i], blacks[i]
                if w is None or b is None or (w.lower() in listed and b.lower() in listed):
                    if key in seen:
                        continue
                    seen.add(key)
                keep[i] = True
            commits.append((archive, in_archive, archive.get("etag_new")))
        if tbl is not None:
            kept = sum(keep)
            self.counters["duplicates"] += len(keep) - kept
            if kept < len(keep):  # take: cheaper and steadier than a boolean filter here
                tbl = tbl.take(pa.array([i for i, k in enumerate(keep) if k], type=pa.int64()))
            self.counters["games"] += kept
            tbl = self._prune_null_columns("players_games", tbl)
            return ("batch", tbl if tbl.num_rows else None, commits, rejects)
        return ("commit", None, commits, rejects)

    def commit(self, commits: List[Tuple[dict, Optional[List[str]], Optional[str]]]) -> None:
        """Records archives whose games were yielded (called after the yield)."""
        state = self.games_state
        assert state is not None
        for archive, uuids, etag in commits:
            url = archive["url"]
            if archive["open"]:
                prev = state["open"].get(url)
                known = set(prev["uuids"]) if prev else set()
                if uuids:
                    known.update(uuids)
                state["open"][url] = {"etag": etag or (prev or {}).get("etag"), "uuids": sorted(known)}
            else:
                state["open"].pop(url, None)
                state["done"].append(url)

    # -- profiles and status
    def _flush_profiles(self) -> None:
        self.pending_profiles = 0
        if "profiles" not in self.decoders:
            return
        tables, rejects = _flush(self.decoders["profiles"], "players_profiles")
        for name, tbl in tables.items():
            if tbl.num_rows:
                self.out["profiles"].append((name, self._prune_null_columns(name, tbl)))
        if rejects is not None:
            self.out["profiles"].append((REJECTS_TABLE, rejects))

    def _flush_status(self) -> None:
        rows, self.status_rows = self.status_rows, []
        if not rows:
            return
        n = len(rows)
        tbl = pa.table(
            {
                "username": pa.array([r["username"] for r in rows], pa.string()),
                "online_status": pa.array([r["online_status"] for r in rows], pa.string()),
                "last_login_date": _login_dates([r["last_login_date"] for r in rows]),
                "check_time": pa.array([int(r["check_time"] * 1e6) for r in rows], pa.int64()).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "_dlt_load_id": pa.array([self.cfg["load_id"]] * n, pa.string()),
                "_dlt_id": pa.array([uniq_id_base64(10) for _ in range(n)], pa.string()),
            }
        )
        self.out["status"].append(self._prune_null_columns("players_online_status", tbl))

    def _final_flush(self, kind: str) -> None:
        if kind == "games":
            self._flush_games()
        elif kind == "profiles":
            self._flush_profiles()
        elif kind == "status":
            self._flush_status()

    # -- helpers
    def _decoder(self, kind: str) -> Any:
        dec = self.decoders.get(kind)
        if dec is None:
            cols, sel = (_GAME_COLUMNS, "games") if kind == "games" else (_PROFILE_COLUMNS, None)
            root = "players_games" if kind == "games" else "players_profiles"
            dec = self.decoders[kind] = _new_decoder(cols, sel, self.cfg["load_id"], root, self.cfg["contract"])
        return dec

    def _prune_null_columns(self, name: str, tbl: pa.Table) -> pa.Table:
        """dlt's dict path creates a column only once it has a non-null value: drop
        columns that have never had one in this run."""
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

    def progress(self) -> Dict[str, Any]:
        stats = self.client.stats() if self.client is not None else {}
        queued = len(self.hi) + len(self.lo) + self.inflight
        return {
            "elapsed": time.monotonic() - self.t0,
            "network_s": self.last_response_at - self.t0,  # start to the last response
            "requests": self.counters["requests"],
            "queued": queued,
            "bytes": self.counters["bytes"],
            "games": self.counters["games"],
            "duplicates": self.counters["duplicates"],
            "not_modified": self.counters["not_modified"],
            "bad_bodies": self.counters["bad_bodies"],
            "retries": sum((stats.get("retries_by_cause") or {}).values()),
            "status_429": stats.get("status_429", 0),
        }

    def _report(self) -> None:
        self.cfg["last_stats"].update(self.progress())


def _pylist(tbl: Optional[pa.Table], column: str) -> List[Any]:
    if tbl is None:
        return []
    if column not in tbl.column_names:
        return [None] * tbl.num_rows
    return tbl.column(column).to_pylist()  # type: ignore[no-any-return]


def _login_dates(values: List[Any]) -> pa.Array:
    """`lastLoginDate` as dlt's dict path types it: ISO 8601 strings are detected as
    timestamps (dlt's `iso_timestamp` detection), integers stay bigint."""
    if values and all(isinstance(v, str) for v in values):
        try:
            parsed = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
            return pa.array(
                [p if p.tzinfo else p.replace(tzinfo=timezone.utc) for p in parsed], pa.timestamp("us", tz="UTC")
            )
        except ValueError:
            return pa.array(values, pa.string())
    return pa.array(values)


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception:  # pragma: no cover - closing twice or at interpreter exit
        pass


def _rejects_item(tbl: pa.Table) -> Any:
    """Rejects go to their own append-only table whatever the resource's disposition."""
    # empty columns and key: nothing of the resource's own hints (end_time, uuid) spills over
    hints = dlt.mark.make_hints(table_name=REJECTS_TABLE, write_disposition="append", columns={}, primary_key=[])
    return dlt.mark.with_hints(tbl, hints, create_table_variant=True)


_MODES = ("evolve", "freeze", "discard_row", "discard_value")


def _contract(value: Any) -> Dict[str, str]:
    if value is None:
        return {"columns": "evolve", "data_type": "evolve"}
    if isinstance(value, str):
        value = {"columns": value, "data_type": value}
    if not isinstance(value, dict) or not set(value) <= {"tables", "columns", "data_type"}:
        raise ChessSourceError(f"schema_contract must be a mode or a dict of modes, got {value!r}")
    out = {"columns": value.get("columns", "evolve"), "data_type": value.get("data_type", "evolve")}
    for k, v in out.items():
        if v not in _MODES:
            raise ChessSourceError(f"schema_contract {k}={v!r} is not one of {_MODES}")
    return out


_RESOURCE_KINDS = {
    "players_profiles": "profiles",
    "players_archives": "archives",
    "players_games": "games",
    "players_online_status": "status",
}


def _selected_kinds() -> set:
    """The resources dlt will extract in this run (empty when not known)."""
    try:
        names = dlt.current.source().selected_resources.keys()
    except Exception:
        return set()
    return {_RESOURCE_KINDS[n] for n in names if n in _RESOURCE_KINDS}


def _dlt_contract() -> Any:
    """The schema contract dlt applies to this source (pipeline.run(schema_contract=...)
    or source.schema_contract), so the decoder enforces it row by row: dlt alone can only
    drop or keep a whole Arrow batch."""
    try:
        return dlt.current.source().schema_contract
    except Exception:
        return None


def _games_state() -> dict:
    """players_games' resource state (what dlt.current.resource_state() gives inside that
    resource), reachable from whichever resource starts the extraction."""
    resources = dlt.current.source_state().setdefault("resources", {})
    return resources.setdefault("players_games", {})  # type: ignore[no-any-return]


def _load_id() -> Optional[str]:
    try:
        return dlt.current.load_package_state()["load_id"]  # type: ignore[no-any-return]
    except Exception:
        pass
    try:
        return dlt.current.load_package()["load_id"]  # type: ignore[attr-defined,no-any-return]
    except Exception:
        return None


# ---- the source ---------------------------------------------------------------------


@dlt.source(name="chess")
def source(
    players: List[str] = dlt.config.value,
    start_month: Optional[str] = None,
    end_month: Optional[str] = None,
    base_url: str = OFFICIAL_API_URL,
    callback_url: str = CALLBACK_URL,
    max_concurrency: int = 64,
    initial_concurrency: int = 8,
    max_attempts: int = 5,
    ca_file: Optional[str] = None,
    client_options: Optional[Dict[str, Any]] = None,
    on_unknown_player: str = "raise",
    games_write_disposition: str = "append",
    batch_rows: int = 20000,
    schema_contract: Any = None,
    progress: Any = None,
    stats: Any = None,
) -> Sequence[DltResource]:
    """chess.com player profiles, games and online status (drop-in for dlt's verified
    `chess` source).

    Args:
        players: usernames (a list, or from `[sources.chess] players = [...]`).
        start_month, end_month: `YYYY/MM` bounds of the games loaded (inclusive).
        base_url, callback_url: the public API and the popup endpoint; the defaults are
            chess.com's.
        max_concurrency, initial_concurrency, max_attempts, ca_file: engine options;
            `client_options` passes any other `dltc.Client` keyword.
        on_unknown_player: "raise" (default) or "skip" (warn and skip the player).
        games_write_disposition: "append" (default; duplicates removed in the source and
            the open month revalidated) or "merge" (keyed on `uuid`).
        batch_rows: games per record batch.
        schema_contract: dlt's contract modes applied while decoding: a mode ("evolve",
            "freeze", "discard_row", "discard_value") or {"columns": m, "data_type": m};
            whatever is discarded goes to the `_dltc_rejects` table.
        progress: optional callable receiving a dict of counters after each response.
        stats: optional dict filled with the final counters.
    """
    validate_month(start_month, "start_month")
    validate_month(end_month, "end_month")
    names = validate_players(players)
    if on_unknown_player not in ("raise", "skip"):
        raise ChessSourceError("on_unknown_player must be 'raise' or 'skip'")
    if games_write_disposition not in ("append", "merge"):
        raise ChessSourceError("games_write_disposition must be 'append' or 'merge'")
    for label, url in (("base_url", base_url), ("callback_url", callback_url)):
        if not re.match(r"^https?://[^/]+(/.*)?$", url or ""):
            raise ChessSourceError(f"{label} must be an http(s) URL, got {url!r}")
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    callback_url = callback_url if callback_url.endswith("/") else callback_url + "/"

    client = dict(client_options or {})
    client.setdefault("max_concurrency", max_concurrency)
    client.setdefault("initial_concurrency", min(initial_concurrency, max_concurrency))
    client.setdefault("max_attempts", max_attempts)
    if ca_file:
        client.setdefault("ca_file", ca_file)
    cfg: Dict[str, Any] = {
        "players": names,
        "start_month": start_month or None,
        "end_month": end_month or None,
        "base_url": base_url,
        "callback_url": callback_url,
        "client": client,
        "on_unknown_player": on_unknown_player,
        "batch_rows": batch_rows,
        "batch_bytes": 8 << 20,
        "profile_batch": 5000,
        "max_inflight": max(4 * client["max_concurrency"], 16),
        "progress": progress,
        "last_stats": stats if stats is not None else {},
        "load_id": None,
        "max_attempts": max(1, int(client["max_attempts"])),
        "contract": _contract(schema_contract),
    }
    run = _Run(cfg)

    def _begin(kind: str) -> None:
        if run.fresh():
            cfg["load_id"] = _load_id() or cfg["load_id"]
            if schema_contract is None:  # a contract given to pipeline.run / the source
                cfg["contract"] = _contract(_dlt_contract())
            kinds = _selected_kinds() | {kind}
        elif kind not in run.active:
            kinds = {kind}
        else:
            return
        run.start(kinds, _games_state() if "games" in kinds else None)

    # no column hints here: they would spill into the child table; the Arrow batches
    # already carry `joined` and `last_online` as timestamps
    @dlt.resource(write_disposition="replace")
    def players_profiles() -> Iterator[Any]:
        _begin("profiles")
        try:
            while (item := run.next_item("profiles")) is not None:
                name, tbl = item
                if name == "players_profiles":
                    yield tbl
                elif name == REJECTS_TABLE:
                    yield _rejects_item(tbl)
                else:
                    # the child table as dlt's normalizer names and links it; dlt 1.31
                    # cannot take a nested table (parent hint) from Arrow at extract
                    yield dlt.mark.with_table_name(tbl, name)
        finally:
            run.stop("profiles")

    @dlt.resource(write_disposition="replace", selected=False)
    def players_archives() -> Iterator[List[str]]:
        _begin("archives")
        try:
            while (item := run.next_item("archives")) is not None:
                yield item
        finally:
            run.stop("archives")

    @dlt.resource(
        write_disposition=games_write_disposition,
        primary_key="uuid" if games_write_disposition == "merge" else None,
        columns={"end_time": {"data_type": "timestamp"}},
    )
    def players_games() -> Iterator[Any]:
        _begin("games")
        try:
            while (item := run.next_item("games")) is not None:
                _, tbl, commits, rejects = item
                if rejects is not None:
                    yield _rejects_item(rejects)
                if tbl is not None:
                    yield tbl
                run.commit(commits)  # only after dlt took the batch
        finally:
            run.stop("games")

    @dlt.resource(write_disposition="append")
    def players_online_status() -> Iterator[Any]:
        _begin("status")
        try:
            while (item := run.next_item("status")) is not None:
                yield item
        finally:
            run.stop("status")

    return players_profiles, players_archives, players_games, players_online_status
