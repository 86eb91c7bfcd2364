"""The replica's small HTTP/1.1 app behind nginx (stdlib asyncio, unix socket): the odd
paths nginx does not serve from files (it reads the served mirror, www/, as nginx does) (301 for upper-case names, JSON 404s, empty past
months) and, when a fault plan is set, every data request so faults can be injected.

Run as `python -m dltc.replica.app CONFIG.json` by dltc.replica.server; not a public API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import struct
import sys
from pathlib import Path

from dltc.replica import faults as F

JSON_CT = "application/json; charset=utf-8"
MAX_HEADER_BYTES = 64 * 1024

_PROFILE = re.compile(r"^/pub/player/([^/]+)$")
_ARCHIVES = re.compile(r"^/pub/player/([^/]+)/games/archives$")
_MONTH = re.compile(r"^/pub/player/([^/]+)/games/(\d{4})/(\d{2})$")
_POPUP = re.compile(r"^/callback/user/popup/([^/]+)$")
_PLAYER_ANY = re.compile(r"^(/pub/player/|/callback/user/popup/)([^/]+)(.*)$")


def _error_body(message: str) -> bytes:
    return json.dumps({"code": 0, "message": message}, separators=(",", ":")).encode()


def weak_etag(body: bytes) -> str:
    """The API's validator: W/"<md5 of the uncompressed body>"."""
    return 'W/"' + hashlib.md5(body).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2) of an If-None-Match list against our ETag."""
    if not if_none_match:
        return False
    want = etag[2:] if etag.startswith("W/") else etag
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == want:
            return True
    return False


class Response:
    __slots__ = ("status", "reason", "body", "headers", "gz")

    def __init__(self, status: int, reason: str, body: bytes = b"", headers=None):
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers or {}
        self.gz: Path | None = None       # the mirror's pre-gzipped twin of body, if any


class App:
    def __init__(self, cfg: dict):
        self.data = Path(cfg["data_dir"])
        self.www = Path(cfg["www_dir"])
        self.base_url = cfg["base_url"]
        self.plan = F.parse_spec(cfg.get("faults"))
        self.counts = {k: 0 for k in F.COUNT_KEYS}
        self.seen: dict[str, int] = {}
        self._etags: dict[str, tuple[int, int, str]] = {}
        self.reload()

    def reload(self) -> None:
        meta = json.loads((self.data / "meta.json").read_text())
        y, m = meta["now"][:7].split("-")
        self.now_month = (int(y), int(m))
        self._etags.clear()

    # ---- clean answers -------------------------------------------------------------

    def _file(self, path: Path) -> Response | None:
        try:
            body = path.read_bytes()
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        key = str(path)
        hit = self._etags.get(key)
        if hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size and len(body) == st.st_size:
            tag = hit[2]
        else:
            tag = weak_etag(body)
            self._etags[key] = (st.st_mtime_ns, st.st_size, tag)
        r = self._ok(body, tag)
        r.gz = path.with_name(path.name + ".gz")
        return r

    def _ok(self, body: bytes, tag: str | None = None) -> Response:
        return Response(200, "OK", body, {
            "Content-Type": JSON_CT,
            "ETag": tag or weak_etag(body),
            "Cache-Control": "public, max-age=5",
            "access-control-allow-origin": "*",
        })

    def _404(self, message: str) -> Response:
        return Response(404, "Not Found", _error_body(message), {
            "Content-Type": JSON_CT,
            "Cache-Control": "public, max-age=5",
            "access-control-allow-origin": "*",
        })

    def _known(self, user: str) -> bool:
        return (self.www / "pub" / "player" / f"{user}.json").is_file()

    def clean(self, path: str, query: str) -> Response:
        """The answer the real API gives, without faults."""
        m = _PLAYER_ANY.match(path)
        if m and any(c.isupper() for c in m.group(2)):
            loc = self.base_url + path.lower() + (("?" + query) if query else "")
            return Response(301, "Moved Permanently", b"", {
                "Location": loc, "Cache-Control": "public, max-age=5",
                "Content-Type": "text/html; charset=utf-8"})
        if m := _PROFILE.match(path):
            user = m.group(1)
            r = self._file(self.www / "pub" / "player" / f"{user}.json")
            return r or self._404(f'User "{user}" not found.')
        if m := _ARCHIVES.match(path):
            user = m.group(1)
            if not self._known(user):
                return self._404(f'User "{user}" not found.')
            r = self._file(self.www / "pub" / "player" / user / "games" / "archives.json")
            return r or self._ok(b'{"archives":[]}')
        if m := _MONTH.match(path):
            user, y, mo = m.group(1), int(m.group(2)), int(m.group(3))
            if not self._known(user):
                return self._404(f'User "{user}" not found.')
            if not 1 <= mo <= 12:
                return self._404(f'Data provider not found for key "{path}"')
            if (y, mo) > self.now_month:
                return self._404("Date cannot be set in the future")
            r = self._file(self.www / "pub" / "player" / user / "games" / f"{y:04d}" / f"{mo:02d}.json")
            return r or self._ok(b'{"games":[]}')
        if m := _POPUP.match(path):
            user = m.group(1)
            r = self._file(self.www / "callback" / "user" / "popup" / f"{user}.json")
            return r or self._404(f'User "{user}" not found.')
        return self._404(f'Data provider not found for key "{path}"')

    # ---- faults ----------------------------------------------------------------------

    def decide(self, path: str) -> tuple[str | None, int]:
        if self.plan is None:
            return None, 0
        n = self.seen.get(path, 0)
        self.seen[path] = n + 1
        return self.plan.decide(path, n), n


def _status_fault(kind: str, plan) -> Response | None:
    if kind in ("p500", "fail_path"):
        return Response(500, "Internal Server Error", b"<html><body><h1>500 Internal Server Error</h1></body></html>",
                        {"Content-Type": "text/html; charset=utf-8"})
    if kind == "p502":
        return Response(502, "Bad Gateway", b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                        {"Content-Type": "text/html; charset=utf-8"})
    if kind in ("p503", "p503ra"):
        h = {"Content-Type": "text/html; charset=utf-8"}
        if kind == "p503ra":
            h["Retry-After"] = str(plan.retry_after_s)
        return Response(503, "Service Unavailable", b"<html><body><h1>503 Service Unavailable</h1></body></html>", h)
    if kind == "html403":
        return Response(403, "Forbidden", F.HTML_403, {"Content-Type": "text/html; charset=UTF-8"})
    return None


def _accepts_gzip(headers: dict) -> bool:
    for part in headers.get("accept-encoding", "").lower().split(","):
        name, _, q = part.strip().partition(";")
        if name.strip() == "gzip":
            return q.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _head(resp: Response, length: int, close: bool) -> bytes:
    lines = [f"HTTP/1.1 {resp.status} {resp.reason}"]
    for k, v in resp.headers.items():
        lines.append(f"{k}: {v}")
    lines.append(f"Content-Length: {length}")
    lines.append("Connection: close" if close else "Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Server:
    def __init__(self, app: App):
        self.app = app

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = raw.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, _ = parts
                headers = {}
                for ln in lines[1:]:
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                clen = int(headers.get("content-length", "0") or 0)
                if clen:
                    await reader.readexactly(min(clen, 1 << 20))
                keep = await self.respond(method, target, headers, writer)
                if not keep:
                    return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def respond(self, method: str, target: str, headers: dict, writer) -> bool:
        app = self.app
        path, _, query = target.partition("?")
        if path.startswith("/__dltc/"):
            return await self.control(path, writer)
        kind, n = app.decide(path)
        plan = app.plan
        if kind is not None:
            resp = _status_fault(kind, plan)
            if resp is not None:
                app.counts[kind] += 1
                return await self.send(writer, method, resp)
        resp = app.clean(path, query)
        inm = headers.get("if-none-match")
        if resp.status == 200 and kind in ("invalid_json", "drift_extra", "drift_missing", "drift_type"):
            body = (F.invalid_json(resp.body, plan.seed, path, n) if kind == "invalid_json"
                    else F.drift(resp.body, kind, plan.seed, path, n))
            if body is not None:
                app.counts[kind] += 1
                resp.body = body
                resp.gz = None
                resp.headers["ETag"] = weak_etag(body)
            kind = None
        if resp.status == 200 and etag_matches(inm, resp.headers.get("ETag", "")):
            h = {k: v for k, v in resp.headers.items() if k != "Content-Type"}
            return await self.send(writer, method, Response(304, "Not Modified", b"", h), no_length=True)
        if resp.status == 200 and resp.gz is not None and _accepts_gzip(headers):
            # Send the pre-compressed twin, as nginx's gzip_static does; nginx leaves an
            # encoded body alone. Faults below then cut the compressed bytes.
            try:
                resp.body = resp.gz.read_bytes()
                resp.headers["Content-Encoding"] = "gzip"
                resp.headers["Vary"] = "Accept-Encoding"
            except OSError:
                pass
        if kind in ("reset", "short", "stall") and resp.status == 200 and method != "HEAD" and len(resp.body) > 1:
            app.counts[kind] += 1
            cut = F.cut_point(plan.seed, path, n, len(resp.body))
            writer.write(_head(resp, len(resp.body), close=kind != "stall") + resp.body[:cut])
            await writer.drain()
            if kind == "stall":
                await asyncio.sleep(plan.stall_s)
                writer.write(resp.body[cut:])
                await writer.drain()
                return True
            if kind == "reset":
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        return await self.send(writer, method, resp)

    async def send(self, writer, method: str, resp: Response, no_length: bool = False) -> bool:
        if no_length:
            lines = [f"HTTP/1.1 {resp.status} {resp.reason}"] + [f"{k}: {v}" for k, v in resp.headers.items()]
            writer.write(("\r\n".join(lines) + "\r\nConnection: keep-alive\r\n\r\n").encode("latin-1"))
        else:
            writer.write(_head(resp, len(resp.body), close=False))
            if method != "HEAD" and resp.body:
                writer.write(resp.body)
        await writer.drain()
        return True

    async def control(self, path: str, writer) -> bool:
        app = self.app
        if path == "/__dltc/faults":
            body = json.dumps(app.counts).encode()
        elif path == "/__dltc/reload":
            app.reload()
            body = b'{"reloaded":true}'
        elif path == "/__dltc/ping":
            body = b'{"ok":true}'
        else:
            return await self.send(writer, "GET", app._404(f'Data provider not found for key "{path}"'))
        return await self.send(writer, "GET", Response(200, "OK", body, {"Content-Type": JSON_CT,
                                                                          "Cache-Control": "no-store"}))


async def _main(cfg: dict) -> None:
    app = App(cfg)
    srv = Server(app)
    sock_path = cfg["socket"]
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(srv.handle, path=sock_path, backlog=1024,
                                             limit=MAX_HEADER_BYTES)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    async def watch_parent():
        # Next to PR_SET_PDEATHSIG: when the replica's owner dies (we get re-parented),
        # stop the whole process group, nginx included, and ourselves.
        while not stop.is_set():
            if os.getppid() != parent:
                try:
                    os.killpg(os.getpgrp(), signal.SIGTERM)
                except OSError:
                    pass
                stop.set()
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch_parent())
    async with server:
        await stop.wait()
    watcher.cancel()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cfg = json.loads(Path(argv[0]).read_text())
    asyncio.run(_main(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
