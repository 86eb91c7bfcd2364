"""Fault plan of the replica: parse the --faults SPEC and decide, deterministically per
(seed, path, n-th request of that path), which fault a request gets, plus the body
mutations (invalid JSON, schema drift) that some faults apply.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

# Order matters: a request's uniform draw walks these cumulatively.
KINDS = (
    "p500", "p502", "p503", "p503ra", "reset", "short", "stall",
    "invalid_json", "html403", "drift_extra", "drift_missing", "drift_type",
)
# Keys of fault_counts(): the kinds above plus "fail_path".
COUNT_KEYS = KINDS + ("fail_path",)

HTML_403 = (
    b"<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
    b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"></head>"
    b"<body><div id=\"challenge\"><h1>Checking if the site connection is secure</h1>"
    b"<p>api.chess.com needs to review the security of your connection before proceeding."
    b"</p></div></body></html>"
)


class FaultSpecError(ValueError):
    """A --faults SPEC that cannot be parsed; the message says which part and why."""


@dataclass
class FaultPlan:
    seed: int = 0
    probs: dict[str, float] = field(default_factory=dict)
    stall_s: float = 2.0
    retry_after_s: int = 1
    fail_paths: tuple[str, ...] = ()

    def spec(self) -> str:
        """The SPEC string that parses back to this plan."""
        parts = [f"seed={self.seed}"]
        parts += [f"{k}={self.probs[k]}" for k in KINDS if self.probs.get(k)]
        parts += [f"stall_s={self.stall_s}", f"ra_s={self.retry_after_s}"]
        parts += [f"fail_path={p}" for p in self.fail_paths]
        return ",".join(parts)

    def decide(self, path: str, n: int) -> str | None:
        """Fault kind for the n-th (0-based) request of `path`, or None for a clean answer."""
        if path in self.fail_paths:
            return "fail_path"
        u = _uniform(self.seed, path, n, "kind")
        acc = 0.0
        for k in KINDS:
            acc += self.probs.get(k, 0.0)
            if u < acc:
                return k
        return None


def parse_spec(spec: str | dict | None) -> FaultPlan | None:
    """Parse 'seed=7,p500=0.02,...,fail_path=/pub/...' (docs/CONTRACTS.md section 5); None/'' -> None.
    A dict {"seed": 7, "p500": 0.02, "fail_path": [...]} is accepted too."""
    if isinstance(spec, dict):
        parts = []
        for k, v in spec.items():
            for one in (v if isinstance(v, (list, tuple)) else [v]):
                parts.append(f"{k}={one}")
        spec = ",".join(parts)
    if spec is None or not spec.strip():
        return None
    plan = FaultPlan()
    fail = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        key = key.strip()
        val = val.strip()
        if not eq:
            raise FaultSpecError(f"--faults: {part!r} is not key=value")
        try:
            if key == "seed":
                plan.seed = int(val)
            elif key == "stall_s":
                plan.stall_s = float(val)
                if not 0 < plan.stall_s <= 300:
                    raise FaultSpecError("--faults: stall_s must be in (0, 300]")
            elif key == "ra_s":
                plan.retry_after_s = int(val)
            elif key == "fail_path":
                if not val.startswith("/"):
                    raise FaultSpecError(f"--faults: fail_path {val!r} must start with /")
                fail.append(val)
            elif key in KINDS:
                p = float(val)
                if not 0.0 <= p <= 1.0:
                    raise FaultSpecError(f"--faults: {key}={val} is not a probability in [0, 1]")
                plan.probs[key] = p
            else:
                raise FaultSpecError(
                    f"--faults: unknown key {key!r} (known: seed, {', '.join(KINDS)}, "
                    "stall_s, ra_s, fail_path)")
        except ValueError as e:
            if isinstance(e, FaultSpecError):
                raise
            raise FaultSpecError(f"--faults: bad value in {part!r}") from None
    if sum(plan.probs.values()) > 1.0 + 1e-9:
        raise FaultSpecError("--faults: the probabilities add up to more than 1")
    plan.fail_paths = tuple(fail)
    return plan


def _digest(seed: int, path: str, n: int, salt: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{path}\x00{n}\x00{salt}".encode()).digest()


def _uniform(seed: int, path: str, n: int, salt: str) -> float:
    return int.from_bytes(_digest(seed, path, n, salt)[:8], "big") / 2.0**64


def cut_point(seed: int, path: str, n: int, length: int) -> int:
    """Where a short/reset body stops: between 10% and 90% of it (at least 1 byte sent)."""
    if length <= 1:
        return 0
    f = 0.1 + 0.8 * _uniform(seed, path, n, "cut")
    return max(1, min(length - 1, int(length * f)))


def invalid_json(body: bytes, seed: int, path: str, n: int) -> bytes:
    """A body that is not valid JSON: cut mid-document, or a stray token after the first '{'."""
    if _uniform(seed, path, n, "inv") < 0.5 and len(body) > 2:
        return body[: cut_point(seed, path, n, len(body))]
    i = body.find(b"{")
    if i < 0:
        return b"{" + body
    return body[: i + 1] + b"," + body[i + 1:]


# Keys under which the generic API replica (dltc.replica.api) puts the records of a page.
LIST_KEYS = ("items", "results", "comments", "repos")


def _records(doc):
    """The records a drift applies to: the games of a month, the records of an api replica
    page (a list root, or the list under one of LIST_KEYS), else the document itself."""
    if isinstance(doc, dict) and isinstance(doc.get("games"), list):
        return [g for g in doc["games"] if isinstance(g, dict)]
    if isinstance(doc, list):
        return [g for g in doc if isinstance(g, dict)]
    if isinstance(doc, dict):
        for k in LIST_KEYS:
            if isinstance(doc.get(k), list):
                return [g for g in doc[k] if isinstance(g, dict)]
        return [doc]
    return []


def drift(body: bytes, kind: str, seed: int, path: str, n: int) -> bytes | None:
    """Schema drift applied to every record of a JSON body; None when it does not apply.

    drift_extra: adds "dltc_drift_extra" (an object) to each record.
    drift_missing: removes one key present in the first record (chosen by the seed)
        from every record; never "url"/"uuid"/"end_time" (a source's keys), nor the api
        replica's "id"/"number"/"updated_at".
    drift_type: ratings become strings (games: white/black.rating; else a numeric
        top-level field such as followers becomes a string).
    """
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    recs = _records(doc)
    if not recs:
        return None
    if kind == "drift_extra":
        for r in recs:
            r["dltc_drift_extra"] = {"note": "field added by the replica", "n": n}
    elif kind == "drift_missing":
        keep = {"url", "uuid", "end_time", "@id", "games", "archives",
                "id", "number", "updated_at"}            # the api replica's keys
        cands = sorted(k for k in recs[0] if k not in keep)
        if not cands:
            return None
        victim = cands[int(_uniform(seed, path, n, "miss") * len(cands))]
        for r in recs:
            r.pop(victim, None)
    elif kind == "drift_type":
        changed = False
        for r in recs:
            for side in ("white", "black"):
                s = r.get(side)
                if isinstance(s, dict) and isinstance(s.get("rating"), int):
                    s["rating"] = str(s["rating"])
                    changed = True
            if not changed:
                for k in sorted(r):
                    if isinstance(r[k], int) and not isinstance(r[k], bool) and \
                            k not in ("end_time", "id", "number"):
                        r[k] = str(r[k])
                        changed = True
                        break
        if not changed:
            return None
    else:
        raise ValueError(kind)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
