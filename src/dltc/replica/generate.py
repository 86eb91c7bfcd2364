"""Deterministic chess.com data set for the local replica, shaped like the recordings in
shared/testdata/chesscom: profiles, archive lists, monthly game archives and popups.
`advance` adds new games to the open month; `load_games` and friends read what a data
directory holds. Every file depends only on (seed, its own key), never on run order, and
game bodies are joined from precomputed, pre-escaped text pieces so writing is fast.
"""

from __future__ import annotations

import argparse
import bisect
import calendar
import datetime as _dt
import json
import math
import os
import random
import shutil
import sys
import time
from typing import Any, Iterator

FORMAT = 1
BASE = "{{BASE}}"  # replaced by the server with its base URL (profiles and archives only)
API = "https://api.chess.com"  # game bodies keep the real API host, as recorded
WEB = "https://www.chess.com"
MAX_MONTHS = 240
MAX_PLAYERS = 1 << 19
MONTH_CAP = 1500  # most games one player has in one month
TOP_SHARE = 0.02  # share of players with 500-1,500 games a month

# Optional-field rates the generator aims at (tests check the observed rates against them).
PROFILE_RATES = {
    "avatar": 0.75, "name": 0.45, "location": 0.35, "fide": 0.06, "league": 0.70,
    "verified": 0.97, "streaming_platforms": 0.85,
}
GAME_RATES = {"accuracies": 0.40, "eco": 0.97, "tournament": 0.03, "match": 0.01,
              "fen6_live": 0.5, "initial_setup_live": 0.15, "rated": 0.9}
SHARED_RATE = (0.10, 0.30)  # per player: share of its games played against generated players

_J = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# ---------------------------------------------------------------- static tables

# (time_class, time_control, base seconds, increment seconds, weight within its class)
TIME_CONTROLS = [
    ("bullet", "60", 60, 0, 5), ("bullet", "60+1", 60, 1, 2), ("bullet", "120+1", 120, 1, 3),
    ("blitz", "180", 180, 0, 4), ("blitz", "180+2", 180, 2, 4), ("blitz", "300", 300, 0, 4),
    ("blitz", "300+5", 300, 5, 2),
    ("rapid", "600", 600, 0, 6), ("rapid", "600+5", 600, 5, 2), ("rapid", "900+10", 900, 10, 2),
    ("rapid", "1500+10", 1500, 10, 1), ("rapid", "1800", 1800, 0, 1),
    ("daily", "1/86400", 86400, 0, 3), ("daily", "1/259200", 259200, 0, 4),
    ("daily", "1/432000", 432000, 0, 1),
]
CLASSES = ("bullet", "blitz", "rapid", "daily")
CLASS_OFFSET = {"bullet": -60, "blitz": 0, "rapid": 40, "daily": 10}
RULES = [("chess", 0.975), ("chess960", 0.015), ("crazyhouse", 0.004), ("bughouse", 0.002),
         ("kingofthehill", 0.002), ("threecheck", 0.002)]
VARIANT_NAME = {"chess960": "Chess960", "crazyhouse": "Crazyhouse", "bughouse": "Bughouse",
                "kingofthehill": "King of the Hill", "threecheck": "3-check"}
START_FEN = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"

# (white result, black result, winner 0 white / 1 black / None, termination, PGN result, weight)
OUTCOMES = [
    ("win", "resigned", 0, "{w} won by resignation", "1-0", 22),
    ("win", "checkmated", 0, "{w} won by checkmate", "1-0", 9),
    ("win", "timeout", 0, "{w} won on time", "1-0", 13),
    ("win", "abandoned", 0, "{w} won - game abandoned", "1-0", 2),
    ("resigned", "win", 1, "{b} won by resignation", "0-1", 21),
    ("checkmated", "win", 1, "{b} won by checkmate", "0-1", 9),
    ("timeout", "win", 1, "{b} won on time", "0-1", 13),
    ("abandoned", "win", 1, "{b} won - game abandoned", "0-1", 2),
    ("agreed", "agreed", None, "Game drawn by agreement", "1/2-1/2", 3),
    ("repetition", "repetition", None, "Game drawn by repetition", "1/2-1/2", 3),
    ("stalemate", "stalemate", None, "Game drawn by stalemate", "1/2-1/2", 1),
    ("insufficient", "insufficient", None, "Game drawn by insufficient material", "1/2-1/2", 2),
    ("timevsinsufficient", "timevsinsufficient", None,
     "Game drawn by timeout vs insufficient material", "1/2-1/2", 1),
    ("50move", "50move", None, "Game drawn by 50-move rule", "1/2-1/2", 1),
]

OPENINGS = [
    ("C65", "Ruy-Lopez-Opening-Berlin-Defense-4.d3-Bc5"),
    ("A29", "English-Opening-Four-Knights-Kingside-Fianchetto-Line...7.Bg2-O-O-8.O-O-Re8"),
    ("C06", "French-Defense-Tarrasch-Closed-Variation"),
    ("B07", "Pirc-Defense-Main-Line-4.Be3-Bg7-5.Qd2-c6-6.Nf3"),
    ("C36", "Kings-Gambit-Accepted-Modern-Defense-4.exd5-Bd6"),
    ("E70", "Kings-Indian-Defense-Kramer-Variation-5...O-O"),
    ("C42", "Petrovs-Defense-Classical-Nimzowitsch-Attack...7.Be3-O-O-8.Qd2-Nd7-9.O-O-O"),
    ("B01", "Scandinavian-Defense-Mieses-Kotrc-Variation-3.Nc3-Qd8-4.d4"),
    ("C45", "Scotch-Game-Classical-Intermezzo-Variation-6.Qf3-dxc6-7.Nc3"),
    ("C44", "Ponziani-Opening-Jaenisch-Counterattack-4.d4-exd4-5.e5-Ne4"),
    ("A22", "English-Opening-Four-Knights-Quiet-Line-4...Bb4-5.Qc2"),
    ("A45", "Trompowsky-Attack-Classical-Big-Center-Variation-3...c5-4.d5"),
    ("C67", "Ruy-Lopez-Opening-Berlin-Defense...5.Bxc6-dxc6-6.Nbd2-Be6"),
    ("D02", "Queens-Pawn-Opening-Torre-Gossip-Variation-4.Bf4"),
    ("B90", "Sicilian-Defense-Najdorf-Variation-6.Be3-e5-7.Nb3"),
    ("B22", "Sicilian-Defense-Alapin-Variation-2...Nf6-3.e5-Nd5-4.d4"),
    ("B12", "Caro-Kann-Defense-Advance-Variation-3...Bf5-4.Nf3-e6"),
    ("C50", "Italian-Game-Giuoco-Pianissimo-Normal"),
    ("C54", "Italian-Game-Classical-Variation-Giuoco-Pianissimo-5.d3-d6"),
    ("D37", "Queens-Gambit-Declined-Harrwitz-Attack"),
    ("D85", "Grunfeld-Defense-Exchange-Variation-5.e4-Nxc3-6.bxc3"),
    ("E60", "Kings-Indian-Defense-Normal-Variation-3.g3-Bg7-4.Bg2-O-O"),
    ("A40", "Queens-Pawn-Opening-Horwitz-Defense"),
    ("B00", "Nimzowitsch-Defense-Declined-Variation"),
    ("A00", "Van-t-Kruijs-Opening"),
    ("C00", "French-Defense-Knight-Variation"),
    ("B10", "Caro-Kann-Defense-Two-Knights-Attack"),
    ("D00", "Queens-Pawn-Opening-Accelerated-London-System-2...c5-3.e3-Nc6"),
    ("B30", "Sicilian-Defense-Old-Sicilian-Variation-3.Bc4"),
    ("C41", "Philidor-Defense-3.d4-Nf6-4.Nc3-Nbd7"),
    ("A04", "Zukertort-Opening-Sicilian-Invitation"),
    ("E11", "Bogo-Indian-Defense-Grunfeld-Variation"),
]

TOURNAMENTS = [
    ("Titled Tuesday Blitz", "titled-tuesday-blitz"),
    ("Late Titled Tuesday Blitz", "late-titled-tuesday-blitz"),
    ("Hourly Bullet Arena", "hourly-bullet-arena"),
    ("Daily 3|2 Blitz Arena", "daily-3-2-blitz-arena"),
    ("Weekly Rapid Swiss", "weekly-rapid-swiss"),
]
MATCH_NAMES = ["Team Match", "World League", "Club Friendly", "Nations Cup"]

COUNTRIES = [  # (code, name, popup countryId, weight)
    ("US", "United States", 2, 20), ("IN", "India", 69, 12), ("GB", "United Kingdom", 3, 6),
    ("DE", "Germany", 59, 5), ("RU", "Russia", 116, 5), ("FR", "France", 57, 4),
    ("BR", "Brazil", 23, 4), ("CA", "Canada", 4, 4), ("ES", "Spain", 136, 3),
    ("PH", "Philippines", 110, 3), ("TR", "Turkey", 150, 3), ("PL", "Poland", 112, 3),
    ("IT", "Italy", 75, 2), ("NL", "Netherlands", 101, 2), ("AR", "Argentina", 9, 2),
    ("UA", "Ukraine", 152, 2), ("MX", "Mexico", 94, 2), ("AU", "Australia", 11, 2),
    ("XX", "International", 231, 1), ("NO", "Norway", 106, 1), ("CN", "China", 37, 1),
    ("ID", "Indonesia", 70, 2), ("EG", "Egypt", 52, 1), ("IR", "Iran", 72, 1),
    ("SE", "Sweden", 139, 1), ("VN", "Vietnam", 161, 1),
]
LOCATIONS = ["Montreal", "Sunrise, Florida", "London", "Berlin", "Mumbai", "Moscow", "Paris",
             "São Paulo", "Toronto", "Madrid", "Manila", "Istanbul", "Warsaw", "Chennai",
             "New York", "Los Angeles", "Oslo", "Kyiv", "Buenos Aires", "Sydney", "Cairo",
             "Jakarta", "Tehran", "Stockholm", "Hanoi", "Rome", "Amsterdam", "Ciudad de México"]
FIRST_NAMES = ["Fabiano", "Hikaru", "Magnus", "Levon", "Anish", "Ian", "Wesley", "Maxime",
               "Alireza", "Vidit", "Judit", "Hou", "Anna", "Alexandra", "Daniel", "Eric",
               "Sam", "Ray", "Jorden", "Teimour", "Nodirbek", "Praggnanandhaa", "Dommaraju",
               "Arjun", "Richard", "Sergey", "Vladimir", "Peter", "Maria", "Lucas", "Sofia",
               "Mateo", "Jan", "Olga", "Chen", "Kenji", "Amir", "Fatima", "Liam", "Emma"]
LAST_NAMES = ["Caruana", "Nakamura", "Carlsen", "Aronian", "Giri", "Nepomniachtchi", "So",
              "Vachier-Lagrave", "Firouzja", "Gujrathi", "Polgar", "Yifan", "Muzychuk",
              "Botez", "Naroditsky", "Rosen", "Sevian", "Robson", "van Foreest", "Radjabov",
              "Abdusattorov", "Rameshbabu", "Gukesh", "Erigaisi", "Rapport", "Karjakin",
              "Kramnik", "Svidler", "Smith", "Garcia", "Müller", "Kowalski", "Silva",
              "Ivanova", "Wang", "Tanaka", "Hosseini", "Haddad", "Johnson", "Martin"]
NAME_PARTS = ["chess", "knight", "rook", "pawn", "bishop", "queen", "king", "tal", "blitz",
              "gambit", "endgame", "castle", "check", "mate", "fork", "pin", "zugzwang",
              "alpha", "dragon", "tiger", "wolf", "eagle", "shadow", "storm", "fire", "ice",
              "dark", "silent", "mighty", "lucky", "crazy", "super", "ultra", "lord", "sir",
              "captain", "little", "big", "old", "young", "magic", "royal", "iron", "swift",
              "novelty", "mainline", "crimson", "elephant", "beast", "lion", "sicilian",
              "french", "caro", "najdorf", "berlin", "london", "dutch", "grand", "tactic",
              "opening", "bullet", "rapid", "daily", "master", "player", "lover", "fan",
              "slayer", "hunter", "warrior", "wizard", "ninja", "pro", "noob", "guy", "man",
              "girl", "boy", "farzy", "erik", "nym", "vidit", "bassem", "lyon", "grisch"]
LEAGUES = ["Wood", "Stone", "Bronze", "Silver", "Crystal", "Elite", "Champion", "Legend"]
TITLES = ["GM", "IM", "FM", "CM", "NM", "WGM", "WIM", "WFM", "WCM"]
MEMBERSHIPS = [("basic", "Basic", 10), ("gold", "Gold", 40), ("platinum", "Platinum", 45),
               ("diamond", "Diamond", 50)]

_SAN_FILES = "abcdefgh"
_TCN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!?"
_CHUNK = 8  # full moves per precomputed movetext chunk
_VARIANTS = 8  # precomputed variants per chunk
MAX_FULL_MOVES = 88  # keeps the PGN under 6 KB
MIN_FULL_MOVES = 14  # keeps the PGN over 1 KB

# ---------------------------------------------------------------- small helpers


def _rng(*key: Any) -> random.Random:
    """A random stream for one key; str seeds go through SHA-512, so runs agree."""
    return random.Random("/".join(str(k) for k in key))


def _parse_day(s: str) -> int:
    d = _dt.date.fromisoformat(s)
    return calendar.timegm((d.year, d.month, d.day, 0, 0, 0))


def _month_bounds(y: int, m: int) -> tuple[int, int]:
    lo = calendar.timegm((y, m, 1, 0, 0, 0))
    y2, m2 = (y + 1, 1) if m == 12 else (y, m + 1)
    return lo, calendar.timegm((y2, m2, 1, 0, 0, 0))


def _month_list(now_ts: int, months: int) -> list[tuple[int, int]]:
    t = time.gmtime(now_ts)
    y, m = t.tm_year, t.tm_mon
    out = []
    for _ in range(months):
        out.append((y, m))
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    out.reverse()
    return out


def _mkey(y: int, m: int) -> str:
    return f"{y:04d}/{m:02d}"


def _uuid_v1(ts: float, clock_seq: int, node: int) -> str:
    """A time-based (version 1) UUID, the form chess.com uses for games and players."""
    t = int(ts * 10_000_000) + 0x01B21DD213814000
    return (f"{t & 0xFFFFFFFF:08x}-{(t >> 32) & 0xFFFF:04x}-{((t >> 48) & 0x0FFF) | 0x1000:04x}-"
            f"{0x8000 | (clock_seq & 0x3FFF):04x}-{node & 0xFFFFFFFFFFFF:012x}")


_DAY_CACHE: dict[int, str] = {}
_HMS: list[str] = []


def _ymd(ts: int) -> str:
    d = ts // 86400
    s = _DAY_CACHE.get(d)
    if s is None:
        t = time.gmtime(d * 86400)
        s = _DAY_CACHE[d] = f"{t.tm_year:04d}.{t.tm_mon:02d}.{t.tm_mday:02d}"
    return s


def _hms_table() -> list[str]:
    if not _HMS:
        _HMS.extend(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400))
    return _HMS


def _iso(ts: int) -> str:
    t = time.gmtime(ts)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}+00:00")


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _cum(weights: list[float]) -> list[float]:
    tot = float(sum(weights))
    acc, out = 0.0, []
    for w in weights:
        acc += w
        out.append(acc / tot)
    out[-1] = 1.0
    return out


# ---------------------------------------------------------------- text pieces (precomputed)


class _Pieces:
    """Movetext chunks, TCN and FEN pools built once per data set from the seed."""

    def __init__(self, seed: int) -> None:
        r = _rng(seed, "pieces")
        self.tcn = "".join(r.choice(_TCN_CHARS) for _ in range(8192))
        self.fens = [self._placement(r) for _ in range(256)]
        self.fen960 = [self._start960(r) for _ in range(64)]
        # chunks[tc_index][chunk][variant] = (text, offsets after each half move)
        self.chunks = [self._tc_chunks(r, tc) for tc in TIME_CONTROLS]

    @staticmethod
    def _san(r: random.Random) -> str:
        x = r.random()
        if x < 0.02:
            s = "O-O" if r.random() < 0.8 else "O-O-O"
        elif x < 0.42:
            f = r.choice(_SAN_FILES)
            rank = r.choice("34567" if r.random() < 0.8 else "2")
            if r.random() < 0.25:
                f2 = _SAN_FILES[max(0, min(7, _SAN_FILES.index(f) + r.choice((-1, 1))))]
                s = f"{f}x{f2}{rank}"
            else:
                s = f"{f}{rank}"
            if r.random() < 0.01:
                s = f"{s[:-1]}8=Q"
        else:
            p = r.choice("NNNBBBRRQK")
            cap = "x" if r.random() < 0.25 else ""
            dis = r.choice(_SAN_FILES) if p in "NR" and r.random() < 0.05 else ""
            s = f"{p}{dis}{cap}{r.choice(_SAN_FILES)}{r.randint(1, 8)}"
        if r.random() < 0.08:
            s += "+"
        return s

    @staticmethod
    def _clock(sec: float, daily: bool) -> str:
        if daily:
            s = int(sec)
            return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
        tenths = int(round(sec * 10))
        s, d = divmod(tenths, 10)
        out = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
        return f"{out}.{d}" if d else out

    def _tc_chunks(self, r: random.Random, tc: tuple) -> list:
        _cls, _name, base, inc, _w = tc
        daily = _cls == "daily"
        nchunks = (MAX_FULL_MOVES + _CHUNK - 1) // _CHUNK
        out = []
        for c in range(nchunks):
            variants = []
            for _v in range(_VARIANTS):
                parts, offs, pos = [], [0], 0
                for n in range(c * _CHUNK + 1, (c + 1) * _CHUNK + 1):
                    for side in (0, 1):
                        if daily:
                            sec = r.uniform(600, base)
                        else:
                            frac = max(0.02, 1.0 - n / r.uniform(60, 120)) ** 1.2
                            sec = max(0.1, base * frac + inc * min(n, 20) * r.uniform(0.3, 1.0)
                                      + r.uniform(-0.03, 0.03) * base)
                        num = f"{n}. " if side == 0 else f"{n}... "
                        t = f"{num}{self._san(r)} {{[%clk {self._clock(sec, daily)}]}} "
                        parts.append(t)
                        pos += len(t)
                        offs.append(pos)
                variants.append(("".join(parts), offs))
            out.append(variants)
        return out

    @staticmethod
    def _placement(r: random.Random) -> str:
        board = [[""] * 8 for _ in range(8)]
        cells = r.sample(range(64), r.randint(4, 26))
        pieces = ["K", "k"] + [r.choice("PPPPPPNNBBRRQpppppppnnbbrrq") for _ in cells[2:]]
        for cell, p in zip(cells, pieces):
            rank, f = divmod(cell, 8)
            if p in "Pp" and rank in (0, 7):
                p = "N" if p == "P" else "n"
            board[rank][f] = p
        rows = []
        for rank in board:
            s, empty = "", 0
            for p in rank:
                if p:
                    if empty:
                        s += str(empty)
                        empty = 0
                    s += p
                else:
                    empty += 1
            if empty:
                s += str(empty)
            rows.append(s)
        return "/".join(rows)

    @staticmethod
    def _start960(r: random.Random) -> str:
        back = [""] * 8
        back[r.choice((0, 2, 4, 6))] = "B"
        back[r.choice((1, 3, 5, 7))] = "B"
        free = [i for i in range(8) if not back[i]]
        for p in ("Q", "N", "N"):
            i = r.choice(free)
            back[i] = p
            free.remove(i)
        back[free[0]], back[free[1]], back[free[2]] = "R", "K", "R"
        w = "".join(back)
        return f"{w.lower()}/pppppppp/8/8/8/8/PPPPPPPP/{w} w KQkq - 0 1"


# ---------------------------------------------------------------- players


class _Player:
    __slots__ = ("idx", "username", "display", "player_id", "uuid", "joined", "tier",
                 "activity", "tc_cum", "rating", "shared", "country", "title", "side_tail",
                 "streamer", "name")


def _username(r: random.Random, taken: set[str]) -> tuple[str, str]:
    """(lower-case username, display spelling), unique within `taken`."""
    while True:
        parts = [r.choice(NAME_PARTS) for _ in range(r.choice((1, 2, 2, 2, 3)))]
        style = r.random()
        if style < 0.35:
            shown = [p for p in parts]
        elif style < 0.8:
            shown = [p.capitalize() for p in parts]
        elif style < 0.9:
            shown = [parts[0].capitalize()] + parts[1:]
        else:
            shown = [p.upper() for p in parts]
        sep = r.choice(("", "", "", "_", "-"))
        s = sep.join(shown)
        x = r.random()
        if x < 0.45:
            s += str(r.randint(1, 9999))
        elif x < 0.55:
            s += str(r.randint(1960, 2015))
        if len(s) < 3:
            s += str(r.randint(10, 99))
        s = s[:25]
        low = s.lower()
        if low not in taken:
            taken.add(low)
            return low, s


def _make_players(seed: int, n: int, months: list[tuple[int, int]], cutoff: int) -> list[_Player]:
    r = _rng(seed, "players")
    first_lo = _month_bounds(*months[0])[0]
    taken: set[str] = set()
    ntop = max(1, round(n * TOP_SHARE))
    top = set(r.sample(range(n), ntop)) if n > 1 else {0}
    players = []
    tc_w = [w for (_c, _n, _b, _i, w) in TIME_CONTROLS]
    for i in range(n):
        p = _Player()
        p.idx = i
        p.username, p.display = _username(r, taken)
        p.player_id = 1_000_000 + i * 9973 + r.randint(0, 9000)
        p.tier = 1 if i in top else 0
        span = cutoff - first_lo
        if p.tier or r.random() < 0.85:  # most players joined before the first month
            p.joined = first_lo - r.randint(86400, 12 * 365 * 86400)
        else:
            p.joined = first_lo + int(r.random() * max(1, span * 0.9))
        p.uuid = _uuid_v1(p.joined + r.random(), r.getrandbits(14), 0)
        if p.tier:
            p.activity = r.uniform(650, 1200)
        else:
            p.activity = min(400.0, r.lognormvariate(math.log(22), 1.0))
        # time-class preference: a main class plus a little of the others
        cls_w = [r.random() ** 3 for _ in CLASSES]
        cls_w[r.randrange(4) if not p.tier else r.choice((0, 1))] += 2.0
        if p.tier:
            cls_w[3] = 0.01
        p.tc_cum = _cum([w * cls_w[CLASSES.index(c)] for (c, _n, _b, _i, _w), w in
                         zip(TIME_CONTROLS, tc_w)])
        base = 2500 + r.randint(0, 450) if p.tier else int(min(2700, max(300, r.gauss(1200, 400))))
        p.rating = {c: base + CLASS_OFFSET[c] + r.randint(-80, 80) for c in CLASSES}
        p.shared = r.uniform(*SHARED_RATE)
        p.country = r.choices(COUNTRIES, weights=[c[3] for c in COUNTRIES])[0]
        p.title = r.choice(TITLES[:3]) if p.tier else (r.choice(TITLES) if r.random() < 0.03 else None)
        p.streamer = r.random() < (0.5 if p.tier else 0.03)
        p.name = (f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}"
                  if p.tier or p.title or r.random() < PROFILE_RATES["name"] else None)
        p.side_tail = (f'"@id":"{API}/pub/player/{p.username}","username":"{p.display}",'
                       f'"uuid":"{p.uuid}"}}')
        players.append(p)
    return players


class _Opp:
    __slots__ = ("username", "display", "uuid", "side_tail", "offset")


def _make_opponents(seed: int, n: int, taken: set[str]) -> list[_Opp]:
    """Players that are not in the data set (their profiles 404 on the replica)."""
    r = _rng(seed, "opponents")
    taken = set(taken)
    out = []
    for _ in range(n):
        o = _Opp()
        o.username, o.display = _username(r, taken)
        o.uuid = _uuid_v1(r.randint(1_170_000_000, 1_700_000_000) + r.random(), r.getrandbits(14), 0)
        o.offset = int(r.gauss(0, 120))
        o.side_tail = (f'"@id":"{API}/pub/player/{o.username}","username":"{o.display}",'
                       f'"uuid":"{o.uuid}"}}')
        out.append(o)
    return out


# ---------------------------------------------------------------- one game

_OUT_CUM = _cum([o[5] for o in OUTCOMES])
_RULE_CUM = _cum([w for _r, w in RULES])


class _Builder:
    """Builds one game's compact JSON text from precomputed pieces."""

    def __init__(self, seed: int) -> None:
        self.pc = _Pieces(seed)
        self.hms = _hms_table()
        self.seed = seed

    def game(self, r: random.Random, node: int, w_side: Any, b_side: Any, w_rating: int,
             b_rating: int, tci: int, end_time: int) -> tuple[int, str, str]:
        """-> (end_time, uuid, JSON text). w_side/b_side carry display and side_tail."""
        rnd = r.random
        cls, tcname, base, inc, _w = TIME_CONTROLS[tci]
        daily = cls == "daily"
        hms = self.hms
        # length: full moves (gamma-ish) and whether black made the last move
        full = MIN_FULL_MOVES + int(r.gammavariate(2.2, 13.0))
        if full > MAX_FULL_MOVES:
            full = MAX_FULL_MOVES
        plies = 2 * full - (1 if rnd() < 0.5 else 0)
        oi = bisect.bisect_left(_OUT_CUM, rnd())
        wres, bres, winner, term, res, _ow = OUTCOMES[oi]
        if daily:
            start = end_time - 3600 - int(rnd() * base * full * 0.15)
        else:
            start = end_time - int(plies * (base + 40 * inc) / 80.0 * (0.5 + rnd())) - 5
        # rules and setup
        x = rnd()
        rules = "chess" if x < _RULE_CUM[0] else RULES[bisect.bisect_left(_RULE_CUM, x)][0]
        pc = self.pc
        if rules == "chess960":
            setup = pc.fen960[int(rnd() * len(pc.fen960))]
        elif daily or rnd() < GAME_RATES["initial_setup_live"]:
            setup = START_FEN
        else:
            setup = ""
        side = "b" if plies & 1 else "w"
        pl = pc.fens[int(rnd() * len(pc.fens))]
        if daily or rnd() < GAME_RATES["fen6_live"]:
            fen = f"{pl} {side} - - {int(rnd() * 12)} {full + (plies & 1 ^ 1)}"
        else:
            fen = f"{pl} {side} - -"
        # movetext
        chunks = pc.chunks[tci]
        nfull, rem = divmod(plies, 2 * _CHUNK)
        mv = [chunks[c][int(rnd() * _VARIANTS)][0] for c in range(nfull)]
        if rem:
            text, offs = chunks[nfull][int(rnd() * _VARIANTS)]
            mv.append(text[: offs[rem]])
        mv.append(res)
        moves = "".join(mv)
        # headers, already JSON-escaped
        wd, bd = w_side.display, b_side.display
        tour = match = None
        x = rnd()
        if x < GAME_RATES["tournament"] and not daily:
            tn, ts = TOURNAMENTS[int(rnd() * len(TOURNAMENTS))]
            tour = f"{API}/pub/tournament/{ts}-{_ymd(start).replace('.', '-')}-{node % 9_000_000 + 1_000_000}"
            event = tn
        elif x < GAME_RATES["tournament"] + (GAME_RATES["match"] * (10 if daily else 1)):
            match = f"{API}/pub/match/{node % 90_000_000 + 1_000_000}"
            event = MATCH_NAMES[int(rnd() * len(MATCH_NAMES))]
        else:
            event = "Let's Play!" if daily else "Live Chess"
        eco = None
        if rules == "chess" and rnd() < GAME_RATES["eco"]:
            code, slug = OPENINGS[int(rnd() * len(OPENINGS))]
            eco = f"{WEB}/openings/{slug}"
            eco_hdr = f'[ECO \\"{code}\\"]\\n[ECOUrl \\"{eco}\\"]\\n'
        else:
            eco_hdr = ""
        variant_hdr = ""
        if rules != "chess":
            variant_hdr = f'[Variant \\"{VARIANT_NAME[rules]}\\"]\\n'
            if rules == "chess960":
                variant_hdr += f'[SetUp \\"1\\"]\\n[FEN \\"{setup}\\"]\\n'
        kind = "daily" if daily else "live"
        gid = 1_000_000_000 + node
        link = f"{WEB}/game/{kind}/{gid}"
        sdate = _ymd(start)
        stime = hms[start % 86400]
        termination = term.format(w=wd, b=bd)
        pgn = (f'[Event \\"{event}\\"]\\n[Site \\"Chess.com\\"]\\n[Date \\"{sdate}\\"]\\n'
               f'[Round \\"-\\"]\\n[White \\"{wd}\\"]\\n[Black \\"{bd}\\"]\\n[Result \\"{res}\\"]\\n'
               f'{variant_hdr}[CurrentPosition \\"{fen}\\"]\\n[Timezone \\"UTC\\"]\\n{eco_hdr}'
               f'[UTCDate \\"{sdate}\\"]\\n[UTCTime \\"{stime}\\"]\\n[WhiteElo \\"{w_rating}\\"]\\n'
               f'[BlackElo \\"{b_rating}\\"]\\n[TimeControl \\"{tcname}\\"]\\n'
               f'[Termination \\"{termination}\\"]\\n[StartTime \\"{stime}\\"]\\n'
               f'[EndDate \\"{_ymd(end_time)}\\"]\\n[EndTime \\"{hms[end_time % 86400]}\\"]\\n'
               f'[Link \\"{link}\\"]\\n\\n{moves}\\n')
        uuid = _uuid_v1(start + rnd(), int(rnd() * 16384), node)
        to = int(rnd() * (len(pc.tcn) - 2 * plies))
        tcn = pc.tcn[to: to + 2 * plies]
        rated = "true" if rnd() < GAME_RATES["rated"] else "false"
        if rnd() < GAME_RATES["accuracies"]:
            aw = 100.0 - 45.0 * rnd() ** 2
            ab = 100.0 - 45.0 * rnd() ** 2
            acc = f'"accuracies":{{"white":{aw!r},"black":{ab!r}}},'
        else:
            acc = ""
        st = f'"start_time":{start},' if daily else ""
        tail = ""
        if eco:
            tail = f',"eco":"{eco}"'
        if tour:
            tail += f',"tournament":"{tour}"'
        if match:
            tail += f',"match":"{match}"'
        text = (f'{{"url":"{link}","pgn":"{pgn}","time_control":"{tcname}","end_time":{end_time},'
                f'"rated":{rated},{acc}"tcn":"{tcn}","uuid":"{uuid}","initial_setup":"{setup}",'
                f'"fen":"{fen}",{st}"time_class":"{cls}","rules":"{rules}",'
                f'"white":{{"rating":{w_rating},"result":"{wres}",{w_side.side_tail},'
                f'"black":{{"rating":{b_rating},"result":"{bres}",{b_side.side_tail}{tail}}}')
        return end_time, uuid, text


_BUILDERS: dict[int, _Builder] = {}


def _builder(seed: int) -> _Builder:
    """One builder per seed per process (its pieces take ~0.2 s to build)."""
    b = _BUILDERS.get(seed)
    if b is None:
        if len(_BUILDERS) >= 4:
            _BUILDERS.clear()
        b = _BUILDERS[seed] = _Builder(seed)
    return b


# ---------------------------------------------------------------- plan and write

NODE_EXT, NODE_SHARED, NODE_ADVANCE = 0, 1, 2


def _node(kind: int, p: int, mi: int, j: int) -> int:
    """A game's unique 40-bit key (uuid node, url id): kind 2 | player 19 | month 8 | j 11."""
    return (kind << 38) | (p << 19) | (mi << 11) | j


class _Plan:
    """Who plays how many games when; shared games are keyed by their initiator."""

    def __init__(self, seed: int, n: int, months: list[tuple[int, int]], now_ts: int) -> None:
        self.seed, self.months, self.cutoff = seed, months, now_ts
        self.players = _make_players(seed, n, months, now_ts)
        self.bounds = []
        for y, m in months:
            lo, hi = _month_bounds(y, m)
            self.bounds.append((lo, min(hi, now_ts)))
        taken = {p.username for p in self.players}
        self.opps = _make_opponents(seed, max(200, min(20000, 20 * n)), taken)
        self.n_ext = [[0] * len(months) for _ in range(n)]
        self.n_sh = [[0] * len(months) for _ in range(n)]
        self.shared_to: list[list[list[tuple[int, int]]]] = [[[] for _ in months] for _ in range(n)]
        self.incoming: list[list[list[tuple[int, int]]]] = [[[] for _ in months] for _ in range(n)]
        for p in self.players:
            r = _rng(seed, "plan", p.idx)
            for mi, (lo, hi) in enumerate(self.bounds):
                full_lo, full_hi = _month_bounds(*months[mi])
                start = max(lo, p.joined + 3600)
                if start >= hi - 60:
                    continue
                inactive = 0.0 if p.tier else 0.08
                if r.random() < inactive:
                    continue
                frac = (hi - start) / (full_hi - full_lo)
                noise = r.uniform(0.8, 1.25) if p.tier else r.lognormvariate(0, 0.35)
                total = min(MONTH_CAP, int(round(p.activity * noise * frac)))
                if total <= 0:
                    continue
                nsh = int(round(total * p.shared)) if n > 1 else 0
                opps = []
                for j in range(nsh):
                    q = r.randrange(n - 1)
                    q += q >= p.idx
                    if self.players[q].joined + 3600 >= hi - 60:
                        continue
                    opps.append((j, q))
                    self.incoming[q][mi].append((p.idx, j))
                self.shared_to[p.idx][mi] = opps
                self.n_sh[p.idx][mi] = nsh
                self.n_ext[p.idx][mi] = total - nsh

    def shared_game(self, b: _Builder, p: int, mi: int, j: int, q: int) -> tuple[int, str, str]:
        """The shared game j that player p started in month mi against player q."""
        r = _rng(self.seed, "s", p, mi, j)
        P, Q = self.players[p], self.players[q]
        lo, hi = self.bounds[mi]
        lo = max(lo, P.joined + 3600, Q.joined + 3600)
        et = lo + int(r.random() * (hi - lo - 1))
        tci = bisect.bisect_left(P.tc_cum, r.random())
        cls = TIME_CONTROLS[tci][0]
        rp = P.rating[cls] + int(r.gauss(0, 25))
        rq = Q.rating[cls] + int(r.gauss(0, 25))
        if r.random() < 0.5:
            return b.game(r, _node(NODE_SHARED, p, mi, j), P, Q, rp, rq, tci, et)
        return b.game(r, _node(NODE_SHARED, p, mi, j), Q, P, rq, rp, tci, et)

    def month_games(self, b: _Builder, p: int, mi: int) -> list[tuple[int, str, str]]:
        P = self.players[p]
        games = []
        n_ext = self.n_ext[p][mi]
        if n_ext:
            r = _rng(self.seed, "g", p, mi)
            rnd = r.random
            lo, hi = self.bounds[mi]
            lo = max(lo, P.joined + 3600)
            span = hi - lo - 1
            opps = self.opps
            nopp = len(opps)
            for j in range(n_ext):
                et = lo + int(rnd() * span)
                tci = bisect.bisect_left(P.tc_cum, rnd())
                cls = TIME_CONTROLS[tci][0]
                o = opps[int(rnd() * nopp)]
                rp = P.rating[cls] + int(r.gauss(0, 25))
                ro = max(100, P.rating[cls] + o.offset + int(r.gauss(0, 40)))
                if rnd() < 0.5:
                    games.append(b.game(r, _node(NODE_EXT, p, mi, j), P, o, rp, ro, tci, et))
                else:
                    games.append(b.game(r, _node(NODE_EXT, p, mi, j), o, P, ro, rp, tci, et))
        for j, q in self.shared_to[p][mi]:
            games.append(self.shared_game(b, p, mi, j, q))
        for (q, j) in self.incoming[p][mi]:
            games.append(self.shared_game(b, q, mi, j, p))
        games.sort()
        return games


def _profile(pl: _Plan, P: _Player, last_online: int) -> tuple[bytes, bytes]:
    r = _rng(pl.seed, "profile", P.idx)
    d: dict[str, Any] = {}
    if r.random() < PROFILE_RATES["avatar"] or P.tier:
        d["avatar"] = (f"https://images.chesscomfiles.com/uploads/v1/user/{P.player_id}."
                       f"{r.getrandbits(32):08x}.200x200o.{r.getrandbits(48):012x}.png")
    d["player_id"] = P.player_id
    d["@id"] = f"{BASE}/pub/player/{P.username}"
    d["url"] = f"{WEB}/member/{P.display}"
    if P.name:
        d["name"] = P.name
    d["username"] = P.username
    if P.title:
        d["title"] = P.title
    d["followers"] = int(r.lognormvariate(math.log(40000 if P.tier else 15), 1.8))
    d["country"] = f"{BASE}/pub/country/{P.country[0]}"
    if r.random() < PROFILE_RATES["location"]:
        d["location"] = r.choice(LOCATIONS)
    d["last_online"] = last_online
    d["joined"] = P.joined
    status = "premium" if (P.tier or r.random() < 0.35) else ("staff" if r.random() < 0.005 else "basic")
    d["status"] = status
    d["is_streamer"] = P.streamer
    if P.streamer and r.random() < 0.7:
        d["twitch_url"] = f"https://twitch.tv/{P.username}"
    if r.random() < PROFILE_RATES["verified"]:
        d["verified"] = r.random() < 0.02
    if P.title and r.random() < 0.8 or r.random() < PROFILE_RATES["fide"]:
        d["fide"] = max(1000, P.rating["rapid"] - r.randint(0, 250))
    if r.random() < PROFILE_RATES["league"]:
        d["league"] = r.choice(LEAGUES[5:] if P.tier else LEAGUES)
    if r.random() < PROFILE_RATES["streaming_platforms"]:
        sp = []
        if P.streamer:
            sp.append({"type": "twitch", "channel_url": f"https://twitch.tv/{P.username}"})
            if r.random() < 0.5:
                sp.append({"type": "youtube", "channel_url": f"https://youtube.com/@{P.username}"})
        d["streaming_platforms"] = sp
    # popup (unofficial callback endpoint): camelCase, keeps onlineStatus and lastLoginDate
    mem = MEMBERSHIPS[0] if status == "basic" else MEMBERSHIPS[1 + r.randrange(3)]
    first, _, last = (P.name or "").partition(" ")
    best_cls = max(CLASSES[:3], key=lambda c: P.rating[c])
    popup = {
        "avatarUrl": d.get("avatar", "https://www.chess.com/bundles/web/images/noavatar_l.84a92436.gif"),
        "bestRating": P.rating[best_cls],
        "bestRatingType": best_cls,
        "chessTitle": P.title,
        "isEnabled": True,
        "isStaff": status == "staff",
        "countryId": P.country[2],
        "countryName": P.country[1],
        "membership": {"level": mem[2], "name": mem[1], "code": mem[0]},
        "joinDate": _iso(P.joined),
        "lastLoginDate": _iso(last_online),
        "firstName": first,
        "lastName": last,
        "userId": P.player_id,
        "uuid": P.uuid,
        "onlineStatus": "online" if last_online >= pl.cutoff - 900 and r.random() < 0.5 else "offline",
        "isStreamer": P.streamer,
    }
    return _J(d).encode(), _J(popup).encode()


def _write_player(pl: _Plan, b: _Builder, out: str, p: int) -> tuple[int, int, int, int]:
    """Writes one player's files. -> (bytes, games written, last end_time, files)."""
    P = pl.players[p]
    base = os.path.join(out, "pub", "player", P.username)
    archives = []
    nbytes = ngames = files = 0
    last = 0
    for mi, (y, m) in enumerate(pl.months):
        games = pl.month_games(b, p, mi)
        if not games:
            continue
        d = os.path.join(base, "games", f"{y:04d}")
        os.makedirs(d, exist_ok=True)
        data = ('{"games":[' + ",".join(g[2] for g in games) + "]}").encode()
        _write(os.path.join(d, f"{m:02d}.json"), data)
        nbytes += len(data)
        ngames += len(games)
        files += 1
        last = max(last, games[-1][0])
        archives.append(f"{BASE}/pub/player/{P.username}/games/{y:04d}/{m:02d}")
    r = _rng(pl.seed, "online", p)
    if last:
        last_online = min(pl.cutoff, last + int(r.random() * 3 * 3600))
    else:
        last_online = max(P.joined, pl.cutoff - int(r.random() * 400 * 86400))
    prof, popup = _profile(pl, P, last_online)
    arch = _J({"archives": archives}).encode()
    os.makedirs(os.path.join(base, "games"), exist_ok=True)
    _write(os.path.join(base, "profile.json"), prof)
    _write(os.path.join(base, "games", "archives.json"), arch)
    _write(os.path.join(out, "callback", "user", "popup", f"{P.username}.json"), popup)
    return nbytes + len(prof) + len(arch) + len(popup), ngames, last, files + 3


_WORK: dict[str, Any] = {}


def _work_chunk(players: list[int]) -> tuple[int, int, int, int]:
    pl, b, out = _WORK["plan"], _WORK["builder"], _WORK["out"]
    tot = [0, 0, 0, 0]
    for p in players:
        nb, ng, last, nf = _write_player(pl, b, out, p)
        tot[0] += nb
        tot[1] += ng
        tot[2] = max(tot[2], last)
        tot[3] += nf
    return tot[0], tot[1], tot[2], tot[3]


def _prepare_out(out: str) -> None:
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.isfile(os.path.join(out, "meta.json")):
            raise ValueError(f"output directory {out!r} is not empty and holds no replica data set; "
                             "choose an empty or new directory")
        for sub in ("pub", "callback"):
            shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.remove(os.path.join(out, "meta.json"))
    os.makedirs(os.path.join(out, "callback", "user", "popup"), exist_ok=True)
    os.makedirs(os.path.join(out, "pub", "player"), exist_ok=True)


def generate(out_dir: str, players: int = 50, months: int = 12, seed: int = 0,
             now: str = "2024-06-15", workers: int = 1) -> dict[str, Any]:
    """Writes a deterministic data set into out_dir (created; an older data set there is
    replaced; any other non-empty directory is refused). Months run from `months` - 1
    months before `now` up to `now`'s month; games end before `now` 00:00 UTC. The same
    arguments give byte-identical files whatever `workers` is. -> the meta dict."""
    if not isinstance(players, int) or not 1 <= players <= MAX_PLAYERS:
        raise ValueError(f"players must be an integer in 1..{MAX_PLAYERS}, got {players!r}")
    if not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be an integer in 1..{MAX_MONTHS}, got {months!r}")
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    try:
        now_ts = _parse_day(now)
    except (TypeError, ValueError):
        raise ValueError(f"now must be a date YYYY-MM-DD, got {now!r}") from None
    t0 = time.perf_counter()
    mlist = _month_list(now_ts, months)
    plan = _Plan(seed, players, mlist, now_ts)
    builder = _builder(seed)
    out_dir = os.fspath(out_dir)
    _prepare_out(out_dir)
    _WORK.update(plan=plan, builder=builder, out=out_dir)
    order = list(range(players))
    workers = max(1, min(int(workers or 1), os.cpu_count() or 1, players))
    try:
        if workers == 1:
            results = [_work_chunk(order)]
        else:
            import multiprocessing as mp

            step = max(1, min(16, players // (workers * 4)))
            chunks = [order[i:i + step] for i in range(0, players, step)]
            with mp.get_context("fork").Pool(workers) as pool:
                results = pool.map(_work_chunk, chunks, chunksize=1)
    finally:
        _WORK.clear()
    nbytes = sum(x[0] for x in results)
    refs = sum(x[1] for x in results)
    clock = max([x[2] for x in results] + [0])
    shared = sum(len(x) for row in plan.shared_to for x in row)
    meta = {
        "format": FORMAT,
        "seed": seed,
        "now": now,
        "players": [p.username for p in plan.players],
        "months": months,
        "month_list": [_mkey(y, m) for y, m in mlist],
        "open_month": _mkey(*mlist[-1]),
        "generated_now": now,
        "cutoff": now_ts,
        "clock": max(clock, now_ts - 1),
        "games": refs - shared,
        "game_refs": refs,
        "shared_games": shared,
        "bytes": nbytes,
        "files": sum(x[3] for x in results),
        "advances": 0,
        "advance_games": 0,
        "placeholder": BASE,
        "placeholder_in": ["pub/player/{username}/profile.json",
                           "pub/player/{username}/games/archives.json"],
    }
    _write(os.path.join(out_dir, "meta.json"), _J(meta).encode())
    meta["_seconds"] = time.perf_counter() - t0  # not written: timing differs run to run
    return meta


# ---------------------------------------------------------------- advance


def read_meta(data_dir: str) -> dict[str, Any]:
    with open(os.path.join(data_dir, "meta.json"), "rb") as f:
        return json.loads(f.read())


def advance(data_dir: str, games: int = 1, seed: int | None = None) -> dict[str, list[str]]:
    """Adds `games` new games (distinct uuids) to the open month (the month of meta `now`)
    of some players, ending after every game already in the data set and no later than the
    end of `now`'s day; if that day is full, `now` moves forward by whole days within its
    month (ValueError when the month is full). A game between two generated players goes
    into both archives. Creates the month file and its archives entry when missing, and
    updates the players' last_online / popup lastLoginDate and meta.json. Deterministic
    for a given data set and seed. -> {username: [new uuids]} in order of appearance."""
    if not isinstance(games, int) or games < 0:
        raise ValueError(f"games must be a non-negative integer, got {games!r}")
    meta = read_meta(data_dir)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{data_dir!r}: unsupported data set format {meta.get('format')!r}")
    if games == 0:
        return {}
    gen_now = _parse_day(meta["generated_now"])
    mlist = _month_list(gen_now, meta["months"])
    plan_players = _make_players(meta["seed"], len(meta["players"]), mlist, gen_now)
    opps = _make_opponents(meta["seed"], max(200, min(20000, 20 * len(plan_players))),
                           {p.username for p in plan_players})
    builder = _builder(meta["seed"])
    now_ts = _parse_day(meta["now"])
    y, m = time.gmtime(now_ts).tm_year, time.gmtime(now_ts).tm_mon
    _mlo, mhi = _month_bounds(y, m)
    clock = int(meta["clock"])
    # room: from clock+1 to the end of now's day; move now by whole days if needed
    while (now_ts + 86399) - clock < games:
        if now_ts + 86400 >= mhi:
            raise ValueError(f"no room for {games} more games in the open month {_mkey(y, m)}; "
                             "generate a data set with a later `now`")
        now_ts += 86400
    room = (now_ts + 86399) - clock
    max_step = max(1, min(30, room // games))
    seq = int(meta["advances"])
    r = _rng("advance", meta["seed"] if seed is None else seed, seq, meta["advance_games"])
    weights = [p.activity for p in plan_players]
    cum = _cum(weights)
    n = len(plan_players)
    new: dict[int, list[tuple[int, str, str]]] = {}
    result: dict[str, list[str]] = {}
    t = clock
    counter = int(meta["advance_games"])
    for _ in range(games):
        t += 1 + int(r.random() * max_step)
        p = plan_players[bisect.bisect_left(cum, r.random())]
        node = (NODE_ADVANCE << 38) | counter
        counter += 1
        tci = bisect.bisect_left(p.tc_cum, r.random())
        cls = TIME_CONTROLS[tci][0]
        rp = p.rating[cls] + int(r.gauss(0, 25))
        if n > 1 and r.random() < p.shared:
            qi = r.randrange(n - 1)
            qi += qi >= p.idx
            q = plan_players[qi]
            other: Any = q
            ro = q.rating[cls] + int(r.gauss(0, 25))
            sides = [p, q]
        else:
            other = opps[int(r.random() * len(opps))]
            ro = max(100, p.rating[cls] + other.offset + int(r.gauss(0, 40)))
            sides = [p]
        if r.random() < 0.5:
            g = builder.game(r, node, p, other, rp, ro, tci, t)
        else:
            g = builder.game(r, node, other, p, ro, rp, tci, t)
        for s in sides:
            new.setdefault(s.idx, []).append(g)
            result.setdefault(s.username, []).append(g[1])
    mpath = f"{y:04d}/{m:02d}"
    for pidx in sorted(new):
        P = plan_players[pidx]
        gdir = os.path.join(data_dir, "pub", "player", P.username, "games")
        os.makedirs(os.path.join(gdir, f"{y:04d}"), exist_ok=True)
        fpath = os.path.join(gdir, f"{y:04d}", f"{m:02d}.json")
        body = ",".join(g[2] for g in new[pidx]).encode()
        if os.path.exists(fpath):
            with open(fpath, "rb") as f:
                old = f.read()
            if not old.endswith(b"]}"):
                raise ValueError(f"{fpath}: not a month archive written by the generator")
            sep = b"" if old == b'{"games":[]}' else b","
            _write_atomic(fpath, old[:-2] + sep + body + b"]}")
        else:
            _write_atomic(fpath, b'{"games":[' + body + b"]}")
            apath = os.path.join(gdir, "archives.json")
            with open(apath, "rb") as f:
                arch = json.loads(f.read())
            arch["archives"].append(f"{BASE}/pub/player/{P.username}/games/{mpath}")
            _write_atomic(apath, _J(arch).encode())
        last = new[pidx][-1][0]
        ppath = os.path.join(data_dir, "pub", "player", P.username, "profile.json")
        with open(ppath, "rb") as f:
            prof = json.loads(f.read())
        prof["last_online"] = max(prof["last_online"], last)
        _write_atomic(ppath, _J(prof).encode())
        upath = os.path.join(data_dir, "callback", "user", "popup", f"{P.username}.json")
        with open(upath, "rb") as f:
            pop = json.loads(f.read())
        pop["lastLoginDate"] = _iso(prof["last_online"])
        pop["onlineStatus"] = "online"
        _write_atomic(upath, _J(pop).encode())
    meta["now"] = time.strftime("%Y-%m-%d", time.gmtime(now_ts))
    meta["clock"] = t
    meta["advances"] = seq + 1
    meta["advance_games"] = counter
    meta["games"] += games
    meta["game_refs"] += sum(len(v) for v in new.values())
    _write_atomic(os.path.join(data_dir, "meta.json"), _J(meta).encode())
    return result


# ---------------------------------------------------------------- readers


def list_players(data_dir: str) -> list[str]:
    """Usernames of the data set, in generation order."""
    return list(read_meta(data_dir)["players"])


def player_months(data_dir: str, username: str) -> list[str]:
    """Months ("YYYY/MM") listed in the player's archives.json, oldest first."""
    path = os.path.join(data_dir, "pub", "player", username, "games", "archives.json")
    with open(path, "rb") as f:
        urls = json.loads(f.read())["archives"]
    return [u[-7:] for u in urls]


def read_month(data_dir: str, username: str, month: str) -> list[dict[str, Any]]:
    """The games of one month archive ("YYYY/MM"), in file order."""
    path = os.path.join(data_dir, "pub", "player", username, "games", month + ".json")
    with open(path, "rb") as f:
        return json.loads(f.read())["games"]


def iter_games(data_dir: str, players: list[str] | None = None, start_month: str | None = None,
               end_month: str | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yields (username, month, game) for every game the replica serves in the range
    (months inclusive, "YYYY/MM"); a shared game comes once per player."""
    for u in (players if players is not None else list_players(data_dir)):
        u = u.lower()
        for mo in player_months(data_dir, u):
            if start_month and mo < start_month or end_month and mo > end_month:
                continue
            for g in read_month(data_dir, u, mo):
                yield u, mo, g


def load_games(data_dir: str, players: list[str] | None = None, start_month: str | None = None,
               end_month: str | None = None) -> dict[str, dict[str, Any]]:
    """uuid -> game for what the replica serves for these players and months (inclusive,
    "YYYY/MM"); `set(load_games(...))` is the set of uuids a complete load must hold."""
    out: dict[str, dict[str, Any]] = {}
    for _u, _mo, g in iter_games(data_dir, players, start_month, end_month):
        out[g["uuid"]] = g
    return out


def load_uuids(data_dir: str, players: list[str] | None = None, start_month: str | None = None,
               end_month: str | None = None) -> set[str]:
    """The set of game uuids load_games() would return."""
    return set(load_games(data_dir, players, start_month, end_month))


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """`generate ...` / `advance ...` (the replica's __main__ can delegate here)."""
    ap = argparse.ArgumentParser(prog="python -m dltc.replica.generate")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write a deterministic data set")
    g.add_argument("--players", type=int, default=50)
    g.add_argument("--months", type=int, default=12)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--now", default="2024-06-15", help="YYYY-MM-DD (games end before this day)")
    g.add_argument("--out", required=True)
    g.add_argument("--workers", type=int, default=1)
    a = sub.add_parser("advance", help="add new games to the open month")
    a.add_argument("--data", required=True)
    a.add_argument("--games", type=int, default=10)
    a.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "generate":
            meta = generate(args.out, players=args.players, months=args.months, seed=args.seed,
                            now=args.now, workers=args.workers)
            secs = meta["_seconds"]
            print(f"wrote {meta['bytes'] / 1e6:.1f} MB, {meta['games']} games "
                  f"({meta['game_refs']} in archives), {meta['files']} files to {args.out} "
                  f"in {secs:.2f} s ({meta['bytes'] / 1e6 / max(secs, 1e-9):.1f} MB/s)")
        else:
            res = advance(args.data, games=args.games, seed=args.seed)
            print(json.dumps(res, indent=1))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
