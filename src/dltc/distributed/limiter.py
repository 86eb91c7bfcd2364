"""One global limit across workers: a lease table (kept by one named, restartable Ray actor)
hands each live worker a share of every limited key's `max_parallel` and `rps`; workers
renew about once a second and apply their share to their Clients with `set_limits`.

Invariant: the slots *charged* to all workers never exceed a key's `max_parallel`. A
worker whose share shrinks stays charged its old share until its next renewal (by then it
applied the smaller one and its extra transfers ended), so what it gives back is handed
out only after that. A worker that stops renewing loses its lease after `ttl` seconds and
its share returns. After a restart of the actor (state lost) a worker re-registers with
the share it still applies, so the table never hands out what is in use.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Optional

__all__ = ["Lease", "LeaseTable", "normalize_limits"]

log = logging.getLogger("dltc.distributed")


def normalize_limits(limits: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """{key: {"max_parallel": int|None, "rps": float|None, "scope": "global"|"node"}}. A key
    is a host (or a token's label); every key's share applies to each worker's Clients.
    Scope "global" (default): one pool for the whole cluster (a token's quota, or one
    egress IP); "node": one pool per node (a limit per client IP, when each node has its
    own address: it multiplies with the nodes)."""
    out: Dict[str, Dict[str, Any]] = {}
    for k, v in (limits or {}).items():
        if not isinstance(v, dict) or not set(v) <= {"max_parallel", "rps", "scope"}:
            raise ValueError(f"limits[{k!r}] must be a dict of max_parallel, rps and scope, got {v!r}")
        mp, rps, scope = v.get("max_parallel"), v.get("rps"), v.get("scope", "global")
        if mp is not None and (not isinstance(mp, int) or mp < 1):
            raise ValueError(f"limits[{k!r}]['max_parallel'] must be an int >= 1, got {mp!r}")
        if rps is not None and (not isinstance(rps, (int, float)) or rps <= 0):
            raise ValueError(f"limits[{k!r}]['rps'] must be > 0, got {rps!r}")
        if scope not in ("global", "node"):
            raise ValueError(f"limits[{k!r}]['scope'] must be 'global' or 'node', got {scope!r}")
        out[str(k)] = {"max_parallel": mp, "rps": None if rps is None else float(rps), "scope": scope}
    return out


class _Holder:
    __slots__ = ("joined", "seen", "slots", "charged", "node")

    def __init__(self, joined: float, held: Dict[str, int], node: str):
        self.joined = joined
        self.seen = joined
        self.node = node
        self.slots: Dict[str, int] = dict(held)  # granted now
        self.charged: Dict[str, int] = dict(held)  # max(granted now, granted before)


class LeaseTable:
    """The lease bookkeeping (no Ray): `lease(worker, held, node=...)` registers or renews
    a worker and returns its grant; `release(worker)` ends a lease. A pool is a key (scope
    "global") or a (key, node) pair (scope "node"); `peak_charged` is by pool name
    (`key` or `key@node`)."""

    def __init__(self, limits: Optional[Dict[str, Any]] = None, ttl: float = 5.0):
        self.limits = normalize_limits(limits)
        self.ttl = float(ttl)
        self.holders: Dict[str, _Holder] = {}
        self.peak_charged: Dict[str, int] = {}
        self.expired = 0
        self.grants = 0

    def configure(self, limits: Optional[Dict[str, Any]], ttl: Optional[float] = None) -> None:
        self.limits.update(normalize_limits(limits))
        if ttl is not None:
            self.ttl = float(ttl)

    def _expire(self, now: float) -> None:
        for w, h in list(self.holders.items()):
            if now - h.seen > self.ttl:
                del self.holders[w]
                self.expired += 1

    def _pool(self, key: str, h: _Holder) -> List[str]:
        """The workers sharing `key` with `h`, earliest first."""
        node_scope = self.limits[key]["scope"] == "node"
        ws = [w for w, o in self.holders.items() if not node_scope or o.node == h.node]
        return sorted(ws, key=lambda w: (self.holders[w].joined, w))

    def lease(self, worker: str, held: Optional[Dict[str, int]] = None, now: Optional[float] = None,
              node: str = "") -> Dict[str, Any]:
        now = time.monotonic() if now is None else now
        self._expire(now)
        h = self.holders.get(worker)
        if h is None:
            # new, or known before a restart of the table: charge what it still applies
            h = self.holders[worker] = _Holder(now, {k: int(v) for k, v in (held or {}).items() if k in self.limits},
                                               node)
        h.seen = now
        self.grants += 1
        slots: Dict[str, int] = {}
        rps: Dict[str, float] = {}
        for key, lim in self.limits.items():
            pool = self._pool(key, h)
            mp = lim["max_parallel"]
            if mp is not None:
                others = sum(self.holders[w].charged.get(key, 0) for w in pool if w != worker)
                # a fair share, the remainder to the workers that joined first (they run)
                base, extra = divmod(mp, len(pool))
                target = base + (1 if pool.index(worker) < extra else 0)
                old = h.slots.get(key, 0)
                new = max(0, min(target, mp - others))
                h.slots[key] = new
                h.charged[key] = max(new, old)
                slots[key] = new
                name = key if lim["scope"] == "global" else f"{key}@{h.node}"
                self.peak_charged[name] = max(self.peak_charged.get(name, 0), others + h.charged[key])
            if lim["rps"] is not None:
                # rps follows the slots where both are set; else an even split
                rps[key] = lim["rps"] * slots[key] / mp if mp is not None else lim["rps"] / len(pool)
        return {
            "slots": slots,
            "rps": rps,
            "max_concurrency": min(slots.values()) if slots else None,
            "rps_limit": min(rps.values()) if rps else None,
            "ttl": self.ttl,
        }

    def release(self, worker: str) -> None:
        self.holders.pop(worker, None)

    def snapshot(self) -> Dict[str, Any]:
        return {
            "limits": self.limits,
            "holders": {w: {"slots": h.slots, "charged": h.charged, "node": h.node} for w, h in self.holders.items()},
            "peak_charged": dict(self.peak_charged),
            "expired": self.expired,
            "grants": self.grants,
        }


class LimiterActor:
    """The Ray actor around a LeaseTable (one per cluster and name; restartable)."""

    def __init__(self, limits: Optional[Dict[str, Any]] = None, ttl: float = 5.0):
        self.table = LeaseTable(limits, ttl)

    def configure(self, limits: Optional[Dict[str, Any]], ttl: Optional[float] = None) -> None:
        self.table.configure(limits, ttl)

    def lease(self, worker: str, held: Optional[Dict[str, int]] = None, node: str = "") -> Dict[str, Any]:
        return self.table.lease(worker, held, node=node)

    def release(self, worker: str) -> None:
        self.table.release(worker)

    def snapshot(self) -> Dict[str, Any]:
        return self.table.snapshot()


class Lease:
    """A worker's side: `with Lease(actor, worker_id):` waits until it holds at least one
    slot of every limited key, applies the grant to every Client the runtime makes in this
    process (dltc.runtime.add_client_hook), renews every `period` seconds in a thread, and
    releases at the end. If the actor cannot be reached for longer than the lease's ttl,
    the Clients fall back to one transfer at a time until it answers again."""

    def __init__(self, actor: Any, worker: str, period: float = 1.0, wait_poll: float = 0.2,
                 max_wait: float = 120.0, node: str = ""):
        self.max_wait = max_wait
        self.node = node
        self.actor = actor
        self.worker = worker
        self.period = period
        self.wait_poll = wait_poll
        self.grant: Dict[str, Any] = {}
        self.clients: List[Any] = []  # Clients are not weak-referenceable; closed ones are dropped
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.remove_hook: Any = None
        self.last_ok = time.monotonic()
        self.renewals = 0
        self.history: List[Any] = []  # (seconds, max_concurrency, rps) as applied

    def _call(self, timeout: float) -> Optional[Dict[str, Any]]:
        import ray

        try:
            held = dict(self.grant.get("slots") or {})
            ref = self.actor.lease.remote(self.worker, held, self.node)
            return ray.get(ref, timeout=timeout)  # type: ignore[no-any-return]
        except ray.exceptions.ActorDiedError:
            raise  # gone for good (not restarting): nothing to lease from
        except Exception as e:  # actor restarting or unreachable: keep the current grant
            log.debug("lease renewal of %s failed: %s", self.worker, e)
            return None

    def __enter__(self) -> "Lease":
        t0 = time.monotonic()
        while True:
            g = self._call(timeout=30)
            if g is not None:
                slots = g["slots"]
                if not slots or min(slots.values()) >= 1:
                    break
            elif time.monotonic() - t0 > self.max_wait:
                raise RuntimeError(f"dltc.distributed: no lease from the limiter in {self.max_wait:.0f} s")
            time.sleep(self.wait_poll)  # more workers than slots: wait for a share
        self.t0 = t0
        self._set(g)
        from dltc.runtime import add_client_hook

        self.remove_hook = add_client_hook(self._on_client)
        self.thread = threading.Thread(target=self._renew, name=f"dltc-lease-{self.worker}", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        if self.remove_hook is not None:
            self.remove_hook()
        try:
            import ray

            ray.get(self.actor.release.remote(self.worker), timeout=10)
        except Exception:  # the lease expires by itself
            pass

    def _limits(self, g: Dict[str, Any]) -> Dict[str, Any]:
        kw: Dict[str, Any] = {}
        if g.get("max_concurrency") is not None:
            kw["max_concurrency"] = max(1, int(g["max_concurrency"]))
        if g.get("rps_limit") is not None:
            kw["rps"] = float(g["rps_limit"])
        return kw

    def _apply(self, client: Any, kw: Dict[str, Any]) -> None:
        if not kw:
            return
        try:
            client.set_limits(**kw)
        except ValueError:  # closed
            with self.lock:
                if client in self.clients:
                    self.clients.remove(client)

    def _set(self, g: Dict[str, Any]) -> None:
        with self.lock:
            changed = self._limits(g) != self._limits(self.grant) if self.grant else True
            self.grant = g
            self.last_ok = time.monotonic()
            kw = self._limits(g)
            if changed:
                self.history.append((round(time.monotonic() - self.t0, 3), kw.get("max_concurrency"), kw.get("rps")))
            clients = list(self.clients) if changed else []
        for c in clients:
            self._apply(c, kw)

    def _on_client(self, client: Any) -> None:
        with self.lock:
            self.clients.append(client)
            kw = self._limits(self.grant)
        self._apply(client, kw)

    def _renew(self) -> None:
        fallback = False
        while not self.stop.wait(self.period):
            try:
                g = self._call(timeout=max(self.period, 1.0))
            except Exception:  # the limiter is gone: as unreachable
                g = None
            if g is not None:
                self.renewals += 1
                fallback = False
                self._set(g)
            elif not fallback and time.monotonic() - self.last_ok > float(self.grant.get("ttl", 5.0)):
                fallback = True  # our lease may have been handed out: one at a time
                with self.lock:
                    clients = list(self.clients)
                for c in clients:
                    self._apply(c, {"max_concurrency": 1})
