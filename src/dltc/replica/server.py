"""Runs one replica: nginx (master + workers) and the small Python app, as children in one
process group of their own, with a per-run prefix directory; stops them on every exit path.

Request path through nginx (see nginx.render):
  limit_conn (429 + optional Retry-After) -> echo_sleep latency (+- jitter via split_clients
  on $request_id) -> 304 if If-None-Match matches the weak ETag map -> the file (gzip_static)
  -> else the app (301, JSON 404s, empty past months). With faults, every data request
  goes to the app after the limit and the sleep.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from dltc.replica import faults as F
from dltc.replica import nginx as N
from dltc.replica.tls import TLSError, make_certs

_live: "set[Replica]" = set()        # started and not yet stopped; atexit stops them
_lock = threading.Lock()
class ReplicaError(RuntimeError):
    """The replica could not start or run; str(e) is one line saying what to do."""


def _deathsig_argv() -> "list[str]":
    """An argv prefix that makes the child get SIGTERM when the thread that started it
    dies (PR_SET_PDEATHSIG, set by util-linux's setpriv just before exec). No preexec_fn:
    running Python between fork and exec in a threaded process can deadlock. The signal
    follows the forking *thread*, so it is only asked for from the main thread; either way
    the app watches its parent and, when re-parented, TERMs the whole group."""
    setpriv = shutil.which("setpriv")
    if setpriv and threading.current_thread() is threading.main_thread():
        return [setpriv, "--pdeathsig", "TERM"]
    return []


def _stop_all() -> None:
    for r in list(_live):
        r.stop()


atexit.register(_stop_all)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 10.0):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class Replica:
    """A running replica; use dltc.replica.serve() rather than this class directly.

    Subclasses (dltc.replica.api.server.ApiReplica) change what is served through the
    hooks below; the process handling (group, deathsig, stop on every path) is shared."""

    APP_MODULE = "dltc.replica.app"          # run as `python -m APP_MODULE app.json`
    GENERATE_HINT = "`python -m dltc.replica generate --out DIR`"

    def _new_mirror(self, www: Path) -> "N.Mirror":
        """The served mirror of the data dir (update() -> {uri: etag})."""
        return N.Mirror(self.data_dir, www, self.base_url, N.gz_store())

    def _app_config(self) -> dict:
        """Extra keys of the app's config file."""
        return {}

    def _conf_extra(self) -> dict:
        """Extra nginx.Conf fields (e.g. locations, http_extra)."""
        return {}

    def __init__(self, data_dir, *, port: int = 0, tls: bool = False, latency_ms: float = 0,
                 jitter_ms: float = 0, max_parallel: int | None = None,
                 retry_after: int | None = None, faults: str | None = None, workers: int = 2,
                 host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir).resolve()
        if not (self.data_dir / "meta.json").is_file():
            raise ReplicaError(
                f"{data_dir}: not a replica data directory (no meta.json); create one with "
                + self.GENERATE_HINT)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ReplicaError(f"port {port!r} is not in 0..65535 (0 picks a free port)")
        for name, v in (("latency_ms", latency_ms), ("jitter_ms", jitter_ms)):
            if v is None or v < 0 or v > 60_000:
                raise ReplicaError(f"{name} must be between 0 and 60000, got {v!r}")
        if max_parallel is not None and max_parallel < 1:
            raise ReplicaError(f"max_parallel must be >= 1, got {max_parallel!r}")
        if retry_after is not None and retry_after < 0:
            raise ReplicaError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
        if not 1 <= workers <= 64:
            raise ReplicaError(f"workers must be between 1 and 64, got {workers!r}")
        try:
            self.plan = F.parse_spec(faults)
        except F.FaultSpecError as e:
            raise ReplicaError(str(e)) from None
        self.port = port
        self.tls = tls
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.max_parallel = max_parallel
        self.retry_after = retry_after
        self.workers = workers
        self.host = host
        self.base_url = ""
        self.ca_file: str | None = None
        self.pid: int | None = None       # nginx master
        self.app_pid: int | None = None
        self.pgid: int | None = None
        self.prefix: Path | None = None
        self._procs: list[subprocess.Popen] = []
        self._generation = 0
        self._conf: N.Conf | None = None
        self._mirror: N.Mirror | None = None
        self._ssl_ctx: ssl.SSLContext | None = None
        self._owner_pid = os.getpid()

    # ---- start / stop -----------------------------------------------------------------

    def start(self) -> "Replica":
        nginx, echo = _find_nginx()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(4096)
            sock.setblocking(False)   # nginx expects its listening sockets non-blocking
        except OSError as e:
            sock.close()
            if e.errno == 98:
                raise ReplicaError(
                    f"port {self.port} on {self.host} is already in use: pass another --port "
                    "(or 0 for a free one), or stop what listens there") from None
            raise ReplicaError(f"cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        try:
            self._start(nginx, echo, sock)
        except BaseException:
            self.stop()
            raise
        finally:
            sock.close()
        return self

    def _start(self, nginx: str, echo: str, sock: socket.socket) -> None:
        port = sock.getsockname()[1]
        self.port = port
        self.prefix = Path(tempfile.mkdtemp(prefix="dltc-replica-"))
        scheme = "https" if self.tls else "http"
        self.base_url = f"{scheme}://{self.host}:{port}"
        www = self.prefix / "www"
        (www / "__dltc").mkdir(parents=True)
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / "tmp" / d).mkdir(parents=True)
        (www / "__dltc" / "429.json").write_bytes(
            b'{"code":0,"message":"Too Many Requests"}')
        cert = key = None
        if self.tls:
            try:
                ca, cert, key = make_certs(self.prefix / "tls")
            except TLSError as e:
                raise ReplicaError(str(e)) from None
            self.ca_file = str(ca)
            self._ssl_ctx = ssl.create_default_context(cafile=self.ca_file)
        self._mirror = self._new_mirror(www)
        etags = self._mirror.update()
        N.write_etag_map(self.prefix / "etags.map", etags)

        app_sock = self.prefix / "app.sock"
        cfg = {"data_dir": str(self.data_dir), "www_dir": str(www), "base_url": self.base_url,
               "faults": self.plan.spec() if self.plan else None, "socket": str(app_sock),
               **self._app_config()}
        (self.prefix / "app.json").write_text(json.dumps(cfg))
        self._conf = N.Conf(
            prefix=self.prefix, www=www, echo_module=echo, port=port, host=self.host,
            workers=self.workers, tls_cert=cert, tls_key=key, latency_ms=self.latency_ms,
            jitter_ms=self.jitter_ms, max_parallel=self.max_parallel,
            retry_after=self.retry_after, faults=self.plan is not None, app_socket=app_sock,
            generation=self._generation, n_etags=len(etags),
            stall_s=self.plan.stall_s if self.plan else 0, run_as_root=os.geteuid() == 0,
            **self._conf_extra())
        conf_path = self.prefix / "nginx.conf"
        conf_path.write_text(N.render(self._conf))

        with _lock:
            # nginx first, in a new process group (same session: setpgid needs that):
            # its pid is the group id the app joins and stop() signals.
            env = {k: v for k, v in os.environ.items()
                   if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
            env["NGINX"] = f"{sock.fileno()};"     # inherit our listening socket: no bind race
            out = open(self.prefix / "nginx.out", "wb")
            try:
                p = subprocess.Popen(
                    _deathsig_argv() + [nginx, "-p", str(self.prefix), "-c", str(conf_path), "-e",
                     str(self.prefix / "error.log")],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    pass_fds=(sock.fileno(),), env=env, process_group=0)
            finally:
                out.close()
            self._procs.append(p)
            self.pid = p.pid
            self.pgid = p.pid
            _live.add(self)
            app_out = open(self.prefix / "app.out", "wb")
            try:
                a = subprocess.Popen(
                    _deathsig_argv() + [sys.executable, "-m", self.APP_MODULE,
                                        str(self.prefix / "app.json")],
                    stdin=subprocess.DEVNULL, stdout=app_out, stderr=subprocess.STDOUT,
                    process_group=self.pgid, close_fds=True)
            finally:
                app_out.close()
            self._procs.append(a)
            self.app_pid = a.pid
        self._wait_ready(deadline=time.monotonic() + 20)

    def _tail(self, name: str) -> str:
        try:
            lines = (self.prefix / name).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _wait_ready(self, deadline: float) -> None:
        app_sock = self.prefix / "app.sock"
        while True:
            for p, what in ((self._procs[0], "nginx"), (self._procs[1], "replica app")):
                if p.poll() is not None:
                    why = self._tail("error.log") or self._tail("nginx.out") if what == "nginx" \
                        else self._tail("app.out")
                    raise ReplicaError(f"{what} exited at start (code {p.returncode}): {why}")
            if app_sock.exists():
                try:
                    if self._get("/__dltc/gen", timeout=2)[0] == 200 and \
                            self._app_get("/__dltc/ping")[0] == 200:
                        return
                except (OSError, http.client.HTTPException):
                    pass
            if time.monotonic() > deadline:
                raise ReplicaError(f"replica did not become ready in time: {self._tail('error.log')}")
            time.sleep(0.02)

    def _get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        if self.tls:
            c = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                            context=self._ssl_ctx)
        else:
            c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def _app_get(self, path: str) -> tuple[int, bytes]:
        c = _UnixHTTPConnection(str(self.prefix / "app.sock"))
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop nginx and the app (TERM, then KILL of our process group); idempotent."""
        if os.getpid() != self._owner_pid:
            return                      # a forked child must not stop its parent's server
        _live.discard(self)
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            end = time.monotonic() + timeout
            for p in self._procs:
                try:
                    p.wait(max(0.01, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            # Workers are not our children: wait for the group to empty, then KILL it.
            while _group_alive(self.pgid) and time.monotonic() < end:
                time.sleep(0.02)
            if _group_alive(self.pgid):
                try:
                    os.killpg(self.pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for p in self._procs:
                try:
                    p.wait(1)
                except subprocess.TimeoutExpired:
                    pass
            self.pgid = None
        if self.prefix is not None and self.prefix.exists():
            shutil.rmtree(self.prefix, ignore_errors=True)

    # ---- API ------------------------------------------------------------------------

    def reload(self, timeout: float = 20.0) -> None:
        """Re-read the data dir after `advance`: new archive lists, ETags and months; then
        SIGHUP nginx and wait until its new workers answer."""
        if self.pid is None or self._procs[0].poll() is not None:
            raise ReplicaError("replica is not running")
        etags = self._mirror.update()
        N.write_etag_map(self.prefix / "etags.map", etags)
        self._generation += 1
        self._conf.generation = self._generation
        self._conf.n_etags = len(etags)
        (self.prefix / "nginx.conf").write_text(N.render(self._conf))
        st, _ = self._app_get("/__dltc/reload")
        if st != 200:
            raise ReplicaError(f"replica app did not reload (status {st})")
        os.kill(self.pid, signal.SIGHUP)
        want = str(self._generation).encode()
        end = time.monotonic() + timeout
        ok = 0
        while ok < 3:
            if time.monotonic() > end:
                raise ReplicaError(f"nginx did not reload: {self._tail('error.log')}")
            try:
                ok = ok + 1 if self._get("/__dltc/gen", timeout=2) == (200, want) else 0
            except (OSError, http.client.HTTPException):
                ok = 0
            if ok < 3:
                time.sleep(0.02)

    def fault_counts(self) -> dict[str, int]:
        """Faults injected so far, by kind (keys: faults.COUNT_KEYS); all 0 without faults."""
        st, body = self._app_get("/__dltc/faults")
        if st != 200:
            raise ReplicaError(f"replica app did not answer (status {st})")
        return json.loads(body)

    def pids(self) -> list[int]:
        """Every live process of this replica (nginx master, workers, app)."""
        return _group_pids(self.pgid) if self.pgid else []

    def __repr__(self) -> str:
        return f"<Replica {self.base_url} pid={self.pid}>"


def _find_nginx() -> tuple[str, str]:
    try:
        return N.find_nginx()
    except N.NginxMissing as e:
        raise ReplicaError(str(e)) from None


def _group_pids(pgid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        # fields[0] = state, [1] = ppid, [2] = pgrp
        if int(fields[2]) == pgid and fields[0] != b"Z":
            out.append(int(d))
    return out


def _group_alive(pgid: int) -> bool:
    return bool(_group_pids(pgid))


@contextmanager
def serve(data_dir, port: int = 0, tls: bool = False, latency_ms: float = 0,
          jitter_ms: float = 0, max_parallel: int | None = None, retry_after: int | None = None,
          faults: str | None = None, workers: int = 2):
    """Run a replica of the chess.com API on DATA_DIR; yields the running Replica (api).

    api.base_url, api.ca_file (tls), api.pid (nginx master), api.reload(), api.fault_counts().
    Everything started is stopped when the block exits, whatever the reason.
    """
    r = Replica(data_dir, port=port, tls=tls, latency_ms=latency_ms, jitter_ms=jitter_ms,
                max_parallel=max_parallel, retry_after=retry_after, faults=faults,
                workers=workers)
    r.start()
    try:
        yield r
    finally:
        r.stop()
