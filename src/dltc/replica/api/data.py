"""Deterministic issue-tracker data set of the generic API replica: organisations ->
repositories -> issues -> comments, written as record files (records/*.json) plus the
pre-rendered page files nginx serves on the fast path (pages/**.json).

Every record depends only on (seed, its own key): the same arguments give byte-identical
files. `advance` adds issues and updates others (new updated_at, after the old `now`),
moves `now` forward and re-renders the pages, so an incremental run must pick them up.
The bodies of pages are rendered by the functions below, shared with the app, so a page
from nginx and the same page from the app are the same bytes.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

FORMAT = 1
KIND = "dltc-api-replica"
BASE = "{{BASE}}"          # replaced by the server's base URL (nginx.Mirror renders it)
FAST = ("orgs", "page_number", "offset", "cursor", "comments")
MAX_PER_PAGE = 1000

_J = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

_ADJ = ("brave", "calm", "dark", "eager", "fancy", "gentle", "happy", "icy", "jolly", "keen",
        "lucky", "mellow", "noble", "odd", "proud", "quick", "rapid", "shy", "tidy", "vivid")
_NOUN = ("otter", "falcon", "maple", "comet", "river", "pixel", "badger", "ember", "harbor",
         "lynx", "quartz", "raven", "spruce", "tulip", "walrus", "yak", "zephyr", "cedar")
_WORDS = ("the", "parser", "fails", "when", "a", "page", "is", "empty", "and", "retry",
          "loop", "never", "ends", "cursor", "offset", "token", "expired", "after", "upgrade",
          "crash", "on", "startup", "with", "large", "payload", "memory", "grows", "slowly",
          "timeout", "connection", "reset", "by", "peer", "unicode", "ünïcödé", "naïve", "日本語",
          "emoji", "🚀", "quote\"d", "back\\slash", "tab\tchar", "new\nline")
_LABELS = (("bug", "d73a4a"), ("enhancement", "a2eeef"), ("question", "d876e3"),
           ("docs", "0075ca"), ("good first issue", "7057ff"), ("wontfix", "ffffff"),
           ("performance", "fbca04"), ("security", "b60205"))


class DataError(ValueError):
    """A data directory or argument that cannot be used; the message names it."""


# ---- time -------------------------------------------------------------------------------

def parse_ts(value: Any, what: str = "timestamp") -> _dt.datetime:
    """An aware UTC datetime from ISO 8601 (Z, +hh:mm, or a date) or unix seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _dt.datetime.fromtimestamp(value, _dt.timezone.utc)
    s = str(value).strip()
    if s.lstrip("-").replace(".", "", 1).isdigit():
        return _dt.datetime.fromtimestamp(float(s), _dt.timezone.utc)
    try:
        d = _dt.datetime.fromisoformat(s.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise DataError(f"{what} {s!r} is not an ISO 8601 date/time or unix seconds") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.astimezone(_dt.timezone.utc)


def iso(d: _dt.datetime) -> str:
    return d.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- records ----------------------------------------------------------------------------

def _rng(seed: int, *key) -> random.Random:
    return random.Random("\x00".join(str(k) for k in (seed,) + key))


def _user(rng: random.Random, pool: int = 200) -> dict:
    k = rng.randrange(pool)
    return {"login": f"{_ADJ[k % len(_ADJ)]}-{_NOUN[k % len(_NOUN)]}{k}", "id": 5000 + k}


def _text(rng: random.Random, scale: float, pad: int = 0) -> str | None:
    """Words of text, or None; at scale s the text grows by s and by (s - 1) * PAD words,
    so that a whole record (its fixed part included) grows ~s times."""
    n = rng.choice((0, 3, 8, 20, 60, 200))
    if n == 0:
        return None
    n = max(1, int(n * scale + (scale - 1) * pad))
    return " ".join(rng.choices(_WORDS, k=n))


def _org(seed: int, i: int, now: _dt.datetime) -> dict:
    rng = _rng(seed, "org", i)
    login = f"{_ADJ[(i * 7 + seed) % len(_ADJ)]}-org-{i}"
    created = now - _dt.timedelta(days=rng.randrange(400, 3000))
    return {"id": 1000 + i, "login": login, "name": login.replace("-", " ").title(),
            "description": rng.choice((None, "An organisation of the replica", "Tools")),
            "public_repos": 0, "created_at": iso(created), "updated_at": iso(created)}


def _repo(seed: int, org: dict, i: int, j: int, rpo: int, now: _dt.datetime) -> dict:
    rng = _rng(seed, "repo", i, j)
    name = f"{_NOUN[(j + i) % len(_NOUN)]}-{j}"
    created = now - _dt.timedelta(days=rng.randrange(370, 1500))
    rec = {"id": 100000 + i * rpo + j, "name": name, "full_name": f"{org['login']}/{name}",
           "owner": {"login": org["login"], "id": org["id"]}, "private": rng.random() < 0.2,
           "description": _text(rng, 0.3), "topics": rng.sample(_NOUN, rng.randrange(0, 4)),
           "stargazers_count": int(rng.paretovariate(1.2) * 10), "open_issues_count": 0,
           "created_at": iso(created), "updated_at": iso(created)}
    if rng.random() < 0.5:
        rec["license"] = {"key": "mit", "name": "MIT License"}
    return rec


def _issues_of(seed: int, repo: dict, n: int, first_id: int, now: _dt.datetime,
               scale: float, locked_rate: float) -> list[dict]:
    rng = _rng(seed, "issues", repo["full_name"])
    span = 365 * 86400
    starts = sorted(rng.randrange(86400, span) for _ in range(n))
    out = []
    for k in range(n):
        created = now - _dt.timedelta(seconds=span - starts[k] + 86400)
        out.append(make_issue(seed, repo, k + 1, first_id + k, created, now, scale, locked_rate))
    return out


def make_issue(seed: int, repo: dict, number: int, id_: int, created: _dt.datetime,
               now: _dt.datetime, scale: float, locked_rate: float, version: int = 0) -> dict:
    r = _rng(seed, "issue", repo["full_name"], number, version)
    life = max(1.0, (now - created).total_seconds())
    updated = created + _dt.timedelta(seconds=int(r.random() * life))
    closed = r.random() < 0.4
    labels = [{"id": 700 + li, "name": _LABELS[li][0], "color": _LABELS[li][1]}
              for li in sorted(r.sample(range(len(_LABELS)), r.choice((0, 0, 1, 1, 2, 3))))]
    ms = None
    if r.random() < 0.3:
        mn = r.randrange(1, 6)
        ms = {"id": 9000 + mn, "number": mn, "title": f"v{mn}.0",
              "due_on": iso(now + _dt.timedelta(days=30 * mn)) if r.random() < 0.7 else None}
    ups, downs, hearts = (int(r.expovariate(0.5)), int(r.expovariate(2)), int(r.expovariate(1)))
    rec = {"id": id_, "node_id": f"I_{id_:08x}", "number": number, "repository": repo["full_name"],
           "title": " ".join(r.choice(_WORDS) for _ in range(r.randrange(2, 9))).capitalize(),
           "body": _text(r, scale, 100), "state": "closed" if closed else "open",
           "locked": r.random() < locked_rate, "user": _user(r),
           "labels": labels, "assignees": [_user(r) for _ in range(r.choice((0, 0, 1, 2)))],
           "milestone": ms,
           "reactions": {"total_count": ups + downs + hearts, "+1": ups, "-1": downs, "heart": hearts},
           "comments": 0, "score": round(r.random() * 100, 3),
           "created_at": iso(created), "updated_at": iso(updated),
           "closed_at": iso(updated) if closed else None}
    if r.random() < 0.25:
        rec["priority"] = r.choice(("low", "medium", "high"))       # optional: key absent
    return rec


def make_comment(seed: int, issue: dict, k: int, id_: int, now: _dt.datetime, scale: float) -> dict:
    r = _rng(seed, "comment", issue["repository"], issue["number"], k)
    created = _dt.datetime.strptime(issue["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=_dt.timezone.utc)
    life = max(1.0, (now - created).total_seconds())
    c = created + _dt.timedelta(seconds=int(life * (k + r.random()) / (k + 2)))
    return {"id": id_, "issue_number": issue["number"], "repository": issue["repository"],
            "user": _user(r), "body": _text(r, scale, 40) or "+1",
            "reactions": {"total_count": r.randrange(3)},
            "created_at": iso(c), "updated_at": iso(c)}


def generate(out_dir, orgs: int = 2, repos_per_org: int = 2, issues_per_repo: int = 30,
             comments_per_issue: int = 3, seed: int = 0, now: str = "2024-06-15T00:00:00Z",
             page_size: int = 100, comment_page_size: int = 10, body_scale: float = 1.0,
             locked_rate: float = 0.1, fast: tuple[str, ...] | list[str] = FAST) -> dict:
    """Write a data set into OUT_DIR (replaced if it is a replica data dir); returns meta."""
    for name, v, lo, hi in (("orgs", orgs, 1, 1000), ("repos_per_org", repos_per_org, 1, 1000),
                            ("issues_per_repo", issues_per_repo, 0, 10_000_000),
                            ("comments_per_issue", comments_per_issue, 0, 10_000),
                            ("page_size", page_size, 1, MAX_PER_PAGE),
                            ("comment_page_size", comment_page_size, 1, MAX_PER_PAGE)):
        if not isinstance(v, int) or not lo <= v <= hi:
            raise DataError(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
    if not 0 < body_scale <= 1000:
        raise DataError(f"body_scale must be in (0, 1000], got {body_scale!r}")
    if not 0 <= locked_rate <= 1:
        raise DataError(f"locked_rate must be in [0, 1], got {locked_rate!r}")
    bad = [f for f in fast if f not in FAST]
    if bad:
        raise DataError(f"fast: unknown page families {bad} (known: {', '.join(FAST)})")
    t_now = parse_ts(now, "now")
    out = Path(out_dir)
    if out.exists():
        if not (out / "meta.json").is_file() or json.loads((out / "meta.json").read_text()).get(
                "kind") != KIND:
            if any(out.iterdir()):
                raise DataError(f"{out_dir}: exists and is not an api replica data directory")
        shutil.rmtree(out)
    (out / "records").mkdir(parents=True)
    org_recs, repo_recs, issues, comments = [], [], [], {}
    next_issue, next_comment = 1, 1
    for i in range(orgs):
        o = _org(seed, i, t_now)
        org_recs.append(o)
        for j in range(repos_per_org):
            rp = _repo(seed, o, i, j, repos_per_org, t_now)
            repo_recs.append(rp)
            its = _issues_of(seed, rp, issues_per_repo, next_issue, t_now, body_scale, locked_rate)
            next_issue += len(its)
            for it in its:
                cs = [make_comment(seed, it, k, next_comment + k, t_now, body_scale)
                      for k in range(comments_per_issue)]
                next_comment += len(cs)
                it["comments"] = len(cs)
                if cs:
                    comments[f"{it['repository']}#{it['number']}"] = cs
            rp["open_issues_count"] = sum(1 for it in its if it["state"] == "open")
            issues.extend(its)
        o["public_repos"] = sum(1 for r in repo_recs if r["owner"]["id"] == o["id"] and not r["private"])
    meta = {"kind": KIND, "format": FORMAT, "seed": seed, "now": iso(t_now), "orgs": orgs,
            "repos_per_org": repos_per_org, "issues_per_repo": issues_per_repo,
            "comments_per_issue": comments_per_issue, "page_size": page_size,
            "comment_page_size": comment_page_size, "body_scale": body_scale,
            "locked_rate": locked_rate, "fast": list(fast), "generation": 0,
            "next_issue_id": next_issue, "next_comment_id": next_comment}
    recs = {"orgs": org_recs, "repos": repo_recs, "issues": issues, "comments": comments}
    write_records(out, recs)
    write_pages(out, meta, recs)
    _write(out / "meta.json", json.dumps(meta, indent=1).encode())
    meta["counts"] = counts(recs)
    return meta


def counts(recs: dict) -> dict:
    return {"orgs": len(recs["orgs"]), "repos": len(recs["repos"]), "issues": len(recs["issues"]),
            "comments": sum(len(v) for v in recs["comments"].values())}


def write_records(out: Path, recs: dict) -> None:
    for name in ("orgs", "repos", "issues", "comments"):
        _write(out / "records" / f"{name}.json", _J(recs[name]).encode())


def load_records(data_dir) -> dict:
    """{orgs, repos, issues (global id order), comments {"org/repo#n": [...]}} of a data dir."""
    d = Path(data_dir) / "records"
    try:
        return {n: json.loads((d / f"{n}.json").read_bytes())
                for n in ("orgs", "repos", "issues", "comments")}
    except FileNotFoundError as e:
        raise DataError(f"{data_dir}: not an api replica data directory ({e.filename} missing); "
                        "create one with `python -m dltc.replica api generate --out DIR`") from None


def load_meta(data_dir) -> dict:
    p = Path(data_dir) / "meta.json"
    try:
        meta = json.loads(p.read_text())
    except (FileNotFoundError, ValueError):
        meta = {}
    if meta.get("kind") != KIND:
        raise DataError(f"{data_dir}: not an api replica data directory (no api meta.json); "
                        "create one with `python -m dltc.replica api generate --out DIR`")
    return meta


def advance(data_dir, new_issues: int = 5, updated_issues: int = 5, seed: int | None = None,
            minutes: int = 60) -> dict:
    """Move `now` forward by MINUTES; add NEW_ISSUES issues (to repos in turn, with
    comments_per_issue comments each) and update UPDATED_ISSUES existing ones (title, state,
    updated_at > the old now). Re-renders the pages; then reload the server.
    Returns {"added": [issue ids], "updated": [issue ids], "now": new now}."""
    meta = load_meta(data_dir)
    recs = load_records(data_dir)
    if new_issues < 0 or updated_issues < 0 or minutes < 1:
        raise DataError("advance: new_issues and updated_issues must be >= 0, minutes >= 1")
    gen = meta["generation"] + 1
    rng = _rng(meta["seed"] if seed is None else seed, "advance", gen)
    old_now = parse_ts(meta["now"])
    new_now = old_now + _dt.timedelta(minutes=minutes)
    span = minutes * 60
    issues = recs["issues"]
    updated_ids = []
    if issues and updated_issues:
        for idx in sorted(rng.sample(range(len(issues)), min(updated_issues, len(issues)))):
            it = issues[idx]
            t = old_now + _dt.timedelta(seconds=1 + rng.randrange(span - 1 if span > 1 else 1))
            it["updated_at"] = iso(t)
            it["title"] = it["title"] + f" (edited {gen})"
            if it["state"] == "open" and rng.random() < 0.5:
                it["state"], it["closed_at"] = "closed", iso(t)
            updated_ids.append(it["id"])
    added = []
    repos = recs["repos"]
    by_repo: dict[str, int] = {}
    for it in issues:
        by_repo[it["repository"]] = max(by_repo.get(it["repository"], 0), it["number"])
    nid, ncid = meta["next_issue_id"], meta["next_comment_id"]
    for k in range(new_issues):
        rp = repos[(gen * 7 + k) % len(repos)]
        num = by_repo.get(rp["full_name"], 0) + 1
        by_repo[rp["full_name"]] = num
        t = old_now + _dt.timedelta(seconds=1 + rng.randrange(span - 1 if span > 1 else 1))
        it = make_issue(meta["seed"], rp, num, nid, t, t, meta["body_scale"], meta["locked_rate"],
                        version=gen)
        cs = [make_comment(meta["seed"], it, c, ncid + c, new_now, meta["body_scale"])
              for c in range(meta["comments_per_issue"])]
        ncid += len(cs)
        it["comments"] = len(cs)
        if cs:
            recs["comments"][f"{it['repository']}#{num}"] = cs
        issues.append(it)
        added.append(nid)
        nid += 1
    meta.update(generation=gen, now=iso(new_now), next_issue_id=nid, next_comment_id=ncid)
    out = Path(data_dir)
    write_records(out, recs)
    write_pages(out, meta, recs)
    _write(out / "meta.json", json.dumps(meta, indent=1).encode())
    return {"added": added, "updated": updated_ids, "now": meta["now"]}


# ---- page bodies (shared with the app) --------------------------------------------------

def enc(rec: Any) -> str:
    return _J(rec)


def cursor_token(page: int, per_page: int) -> str:
    """Opaque cursor of page PAGE (1-based) at PER_PAGE: [A-Za-z0-9_-] only."""
    return "c" + base64.urlsafe_b64encode(f"{page}.{per_page}".encode()).decode().rstrip("=")


def cursor_decode(tok: str) -> tuple[int, int] | None:
    if not tok.startswith("c") or len(tok) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(tok[1:] + "=" * (-len(tok[1:]) % 4)).decode()
        page, pp = raw.split(".")
        page, pp = int(page), int(pp)
    except (ValueError, UnicodeDecodeError):
        return None
    if page < 1 or not 1 <= pp <= MAX_PER_PAGE or cursor_token(page, pp) != tok:
        return None
    return page, pp


def _items(encoded: list[str]) -> str:
    return "[" + ",".join(encoded) + "]"


def body_page_number(encoded: list[str], page: int, per_page: int, total: int) -> bytes:
    pages = (total + per_page - 1) // per_page
    return (f'{{"page":{page},"per_page":{per_page},"total_pages":{pages},"total_count":{total},'
            f'"items":{_items(encoded)}}}').encode()


def body_offset(encoded: list[str], offset: int, limit: int, total: int) -> bytes:
    return f'{{"offset":{offset},"limit":{limit},"total":{total},"items":{_items(encoded)}}}'.encode()


def body_cursor(encoded: list[str], next_cursor: str | None) -> bytes:
    nxt = "null" if next_cursor is None else _J(next_cursor)
    return f'{{"items":{_items(encoded)},"next_cursor":{nxt}}}'.encode()


def body_comments(encoded: list[str], next_url: str | None) -> bytes:
    nxt = "null" if next_url is None else _J(next_url)
    return f'{{"comments":{_items(encoded)},"next":{nxt}}}'.encode()


def comments_url(base: str, repo: str, number: int, page: int, per_page: int) -> str:
    return f"{base}/repos/{repo}/issues/{number}/comments?page={page}&per_page={per_page}"


def write_pages(out: Path, meta: dict, recs: dict) -> int:
    """(Re-)write pages/** for the fast-path families in meta["fast"]; returns files written.
    Unchanged files are left alone (nginx.Mirror then skips them)."""
    fast = set(meta["fast"])
    root = out / "pages"
    n = 0
    pp, cpp = meta["page_size"], meta["comment_page_size"]
    if "orgs" in fast:
        n += _write_if_changed(root / "orgs.json", _items([enc(o) for o in recs["orgs"]]).encode())
    issues = recs["issues"]
    total = len(issues)
    if fast & {"page_number", "offset", "cursor"}:
        encoded = [enc(it) for it in issues]
        pages = max(1, (total + pp - 1) // pp)
        for p in range(1, pages + 2):           # one empty page past the end
            chunk = encoded[(p - 1) * pp: p * pp]
            if "page_number" in fast:
                n += _write_if_changed(root / "issues" / "page_number" / str(pp) / f"{p}.json",
                                       body_page_number(chunk, p, pp, total))
            if "offset" in fast:
                off = (p - 1) * pp
                n += _write_if_changed(root / "issues" / "offset" / str(pp) / f"{off}.json",
                                       body_offset(chunk, off, pp, total))
            if "cursor" in fast and p <= pages:
                nxt = cursor_token(p + 1, pp) if p < pages else None
                name = "first" if p == 1 else cursor_token(p, pp)
                n += _write_if_changed(root / "issues" / "cursor" / str(pp) / f"{name}.json",
                                       body_cursor(chunk, nxt))
    if "comments" in fast:
        # pages/comments/{org}/{repo}/{number}.{per_page}.{page}.json; issues without
        # comments (and locked ones, which 404) are left to the app
        for it in issues:
            cs = recs["comments"].get(f"{it['repository']}#{it['number']}")
            if it["locked"] or not cs:
                continue
            cs = [enc(c) for c in cs]
            pages = (len(cs) + cpp - 1) // cpp
            d = root / "comments" / it["repository"]
            for p in range(1, pages + 1):
                nxt = comments_url(BASE, it["repository"], it["number"], p + 1, cpp) \
                    if p < pages else None
                n += _write_if_changed(d / f"{it['number']}.{cpp}.{p}.json",
                                       body_comments(cs[(p - 1) * cpp: p * cpp], nxt))
    return n


_made: set[str] = set()


def _write(path: Path, data: bytes) -> None:
    parent = str(path.parent)
    if parent not in _made or not os.path.isdir(parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        _made.add(parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_if_changed(path: Path, data: bytes) -> int:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return 0
    except FileNotFoundError:
        pass
    _write(path, data)
    return 1
