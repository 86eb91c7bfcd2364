"""The chess.com source: a drop-in for dlt's verified `chess` source (same resources,
parameters and tables) whose requests all go through one C fetch engine and whose JSON is
decoded in C straight to Arrow. Player -> archive list -> monthly archives is pipelined:
a month is requested as soon as its player's archive list arrives, and record batches are
yielded as they complete. Chess knowledge lives here and nowhere else in dltc; the
pipelining itself (request graph, decode worker, queues, state after yield) is
dltc.runtime's.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime, timezone
from functools import partial
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import quote

import dlt
import pyarrow as pa
from dlt.common.utils import uniq_id_base64
from dlt.sources import DltResource

from dltc.runtime import (
    BadBody,
    Dedup,
    Request,
    Run,
    SourceError,
    body,
    column_values,
    contract,
    decoder_items,
    flush_decoder,
    keep_rows,
    load_id,
    new_decoder,
    rejects_item,
    selected_resources,
    source_contract,
)

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

class ChessSourceError(SourceError):
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


# ---- chess.com on the runtime ---------------------------------------------------------

_MAX_QUEUED_BATCHES = 4  # games batches waiting for dlt before the worker pauses


class _Chess:
    """The chess.com side of one source instance, on dltc.runtime: which requests each
    resource needs (profiles, archive lists, months, popups), what each response means,
    which games can come twice, and how a month is recorded in the state once its games
    were yielded. Player -> archive list -> months: a month is requested as soon as its
    player's archive list is decoded. Handlers and flushes run on the runtime's worker."""

    def __init__(self, cfg: Dict[str, Any]):
        self.cfg = cfg
        self.run = Run(
            "chess",
            cfg["client"],
            max_inflight=cfg["max_inflight"],
            max_attempts=cfg["max_attempts"],
            error=ChessSourceError,
            progress=cfg["progress"],
            stats=cfg["last_stats"],
            counters=("games",),
            on_reset=self.reset,
        )
        r = self.run
        # plans of resources started together run in this order: archive lists first
        # (months depend on them), so whichever generator dlt pulls first, all requests
        # are in flight together
        r.resource("games", self.plan_games, flush=self.flush_games, batch_rows=cfg["batch_rows"],
                   batch_bytes=cfg["batch_bytes"], max_queued=_MAX_QUEUED_BATCHES)
        r.resource("archives", self.plan_archives, max_queued=None)
        r.resource("profiles", self.plan_profiles, flush=self.flush_profiles, batch_rows=cfg["profile_batch"],
                   max_queued=None)
        r.resource("status", self.plan_status, flush=self.flush_status, batch_rows=cfg["profile_batch"],
                   max_queued=None)
        self.reset()

    def reset(self) -> None:
        """Per extraction (also when the same source object is run again)."""
        self.lists: Dict[str, Optional[List[str]]] = {}
        self.list_reqs: Dict[str, Request] = {}
        self.skipped: set = set()
        self.decoders: Dict[str, Any] = {}
        self.pending_archives: List[Tuple[dict, int, int]] = []  # (archive, first row, rows)
        self.pending_rows = 0
        self.seen = Dedup()  # games between two listed players, which can come twice
        self.listed = {p.lower() for p in self.cfg["players"]}
        self.status_rows: List[dict] = []
        self.games_state: Optional[dict] = None
        self.done_archives: set = set()
        self.open_archives: Dict[str, dict] = {}

    def use_games_state(self, games_state: dict) -> None:
        """dlt's thread, before the plans: the worker plans months from a snapshot; dlt's
        thread commits to the state itself."""
        games_state.setdefault("done", [])
        games_state.setdefault("open", {})
        self.games_state = games_state
        self.done_archives = set(games_state["done"])
        self.open_archives = {u: dict(v) for u, v in games_state["open"].items()}

    # -- plans
    def plan_profiles(self, run: Run) -> None:
        for user in self.cfg["players"]:
            url = f"{self.cfg['base_url']}player/{_player_path(user)}"
            run.submit(Request(url, self.on_profile, "profiles", high=True, data=user, empty_on=(404,)))

    def plan_status(self, run: Run) -> None:
        for user in self.cfg["players"]:
            url = f"{self.cfg['callback_url']}user/popup/{_player_path(user)}"
            run.submit(Request(url, self.on_popup, "status", high=True, data=user, empty_on=(404,)))

    def plan_games(self, run: Run) -> None:
        self._plan_lists(run, "games")

    def plan_archives(self, run: Run) -> None:
        self._plan_lists(run, "archives")

    def _list_url(self, user: str) -> str:
        return f"{self.cfg['base_url']}player/{_player_path(user)}/games/archives"

    def _plan_lists(self, run: Run, kind: str) -> None:
        """Archive lists are shared by players_archives and players_games: requested once,
        held by whichever of the two is started."""
        for user in self.cfg["players"]:
            if user in self.lists:
                self._on_list(run, kind, user, self.lists[user])
            elif user in self.list_reqs:
                run.attach(self.list_reqs[user], kind)
            else:
                req = Request(self._list_url(user), self.on_list, kind, high=True, data=user, empty_on=(404,))
                self.list_reqs[user] = run.submit(req)

    # -- handlers (the runtime's worker)
    def _unknown_player(self, user: str, url: str) -> None:
        if self.cfg["on_unknown_player"] == "raise":
            raise UnknownPlayerError(user, url)
        if user not in self.skipped:
            self.skipped.add(user)
            log.warning("chess: player %r not found (404 from %s); skipped", user, url)

    def on_profile(self, run: Run, req: Request, r: Any) -> None:
        if r.status == 404:
            return self._unknown_player(req.data, req.url)
        self._decoder("profiles").feed(body(r), source_url=req.url)  # a ValueError: bad body
        run.added("profiles", 1)

    def on_popup(self, run: Run, req: Request, r: Any) -> None:
        if r.status == 404:
            return self._unknown_player(req.data, req.url)
        doc = json.loads(body(r))
        try:
            row = {"username": req.data, "online_status": doc["onlineStatus"],
                   "last_login_date": doc["lastLoginDate"], "check_time": time.time()}
        except (TypeError, KeyError) as e:
            raise BadBody(str(e)) from e
        self.status_rows.append(row)
        run.added("status", 1)

    def on_list(self, run: Run, req: Request, r: Any) -> None:
        user = req.data
        urls: Optional[List[str]]
        if r.status == 404:
            urls = None
        else:
            try:
                urls = json.loads(body(r)).get("archives", [])
            except AttributeError as e:
                raise BadBody(str(e)) from e
            if not isinstance(urls, list):
                raise BadBody("'archives' is not a list")
        self.lists[user] = urls
        for kind in ("archives", "games"):
            if kind in req.resources and run.active(kind):
                self._on_list(run, kind, user, urls)

    def _on_list(self, run: Run, kind: str, user: str, urls: Optional[List[str]]) -> None:
        if urls is None:
            return self._unknown_player(user, self._list_url(user))
        urls = self._safe_archive_urls(user, urls)
        if kind == "archives":
            run.emit("archives", urls)
        else:
            self._plan_months(run, user, urls)

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

    def _plan_months(self, run: Run, user: str, urls: List[str]) -> None:
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
            run.submit(Request(url, self.on_month, "games", data=archive, etag=archive["etag"], empty_on=(404,)))

    def on_month(self, run: Run, req: Request, r: Any) -> None:
        archive = req.data
        if r.not_modified or r.status == 404 or not r.body:
            # nothing new: commit right away (nothing to yield first)
            run.emit("games", commit=partial(self.commit, [(archive, None, r.etag)]))
            return
        data = body(r)
        n = self._decoder("games").feed(data, source_url=req.url)  # a ValueError rolls it back
        archive["etag_new"] = r.etag
        self.pending_archives.append((archive, self.pending_rows, n))
        self.pending_rows += n
        run.added("games", n, len(data))

    # -- flushes (the runtime's worker)
    def flush_games(self, run: Run) -> None:
        if not self.pending_archives:
            return
        archives, self.pending_archives = self.pending_archives, []
        self.pending_rows = 0
        tables, rejects = flush_decoder(self.decoders["games"], "players_games", "chess")
        tbl = tables.get("players_games")
        uuids = column_values(tbl, "uuid")
        urls = column_values(tbl, "url")
        whites = column_values(tbl, "white__username")
        blacks = column_values(tbl, "black__username")
        listed = self.listed
        keep = [False] * len(uuids)
        commits = []
        seen = self.seen
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
                    if not seen.first(key):
                        continue
                keep[i] = True
            commits.append((archive, in_archive, archive.get("etag_new")))
        items: List[Any] = []
        if rejects is not None:
            items.append(rejects_item(rejects))
        if tbl is not None:
            tbl = keep_rows(run, tbl, keep)
            run.count("games", tbl.num_rows)
            tbl = run.prune("players_games", tbl)
            if tbl.num_rows:
                items.append(tbl)
        run.emit("games", *items, commit=partial(self.commit, commits))

    def flush_profiles(self, run: Run) -> None:
        dec = self.decoders.get("profiles")
        if dec is not None:
            items = decoder_items(run, dec, "players_profiles")
            if items:
                run.emit("profiles", *items)

    def flush_status(self, run: Run) -> None:
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
        run.emit("status", run.prune("players_online_status", tbl))

    # -- dlt's thread
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

    def _decoder(self, kind: str) -> Any:
        dec = self.decoders.get(kind)
        if dec is None:
            cols, sel = (_GAME_COLUMNS, "games") if kind == "games" else (_PROFILE_COLUMNS, None)
            root = "players_games" if kind == "games" else "players_profiles"
            dec = self.decoders[kind] = new_decoder(cols, sel, self.cfg["load_id"], root, self.cfg["contract"])
        return dec


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


_RESOURCE_KINDS = {
    "players_profiles": "profiles",
    "players_archives": "archives",
    "players_games": "games",
    "players_online_status": "status",
}


def _selected_kinds() -> set:
    """The resources dlt will extract in this run (empty when not known)."""
    return {_RESOURCE_KINDS[n] for n in selected_resources() if n in _RESOURCE_KINDS}


def _games_state() -> dict:
    """players_games' resource state (what dlt.current.resource_state() gives inside that
    resource), reachable from whichever resource starts the extraction."""
    resources = dlt.current.source_state().setdefault("resources", {})
    return resources.setdefault("players_games", {})  # type: ignore[no-any-return]


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
        "contract": contract(schema_contract, ChessSourceError),
    }
    chess = _Chess(cfg)
    run = chess.run

    def _begin(kind: str) -> None:
        if run.fresh():
            cfg["load_id"] = load_id() or cfg["load_id"]
            if schema_contract is None:  # a contract given to pipeline.run / the source
                cfg["contract"] = contract(source_contract(), ChessSourceError)
            kinds = _selected_kinds() | {kind}
        elif kind not in run.started:
            kinds = {kind}
        else:
            return
        state = _games_state() if "games" in kinds else None
        run.start(kinds, None if state is None else partial(chess.use_games_state, state))

    # no column hints here: they would spill into the child table; the Arrow batches
    # already carry `joined` and `last_online` as timestamps
    @dlt.resource(write_disposition="replace")
    def players_profiles() -> Iterator[Any]:
        _begin("profiles")
        yield from run.items("profiles")

    @dlt.resource(write_disposition="replace", selected=False)
    def players_archives() -> Iterator[List[str]]:
        _begin("archives")
        yield from run.items("archives")

    @dlt.resource(
        write_disposition=games_write_disposition,
        primary_key="uuid" if games_write_disposition == "merge" else None,
        columns={"end_time": {"data_type": "timestamp"}},
    )
    def players_games() -> Iterator[Any]:
        _begin("games")
        yield from run.items("games")  # an archive is committed to the state after its games

    @dlt.resource(write_disposition="append")
    def players_online_status() -> Iterator[Any]:
        _begin("status")
        yield from run.items("status")

    return players_profiles, players_archives, players_games, players_online_status
