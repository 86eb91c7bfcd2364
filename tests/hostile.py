"""A hostile HTTP(S) server for tests, on loopback only: bodies over any cap, gzip bombs,
endless and off-host redirects, slow drips, silence, pathological JSON, bad TLS certificates.

Each server runs on its own threads, records every connection and request it receives, and
stops by itself after `lifetime` seconds even if a test forgets to close it. Payloads are
generated while they are sent, so a 1 GB body never sits in this process's memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK = 64 << 10


# ---- payloads (also used directly against dltc.read_json) -----------------------------


def deep_array(depth: int) -> bytes:
    """`{"games":[[[...]]]}` with `depth` nested arrays inside the records list."""
    return b'{"games":[' + b"[" * depth + b"]" * depth + b"]}"


def deep_object(depth: int) -> bytes:
    """A record whose field `a` nests `depth` objects deep."""
    return b'{"games":[' + b'{"a":' * depth + b"1" + b"}" * depth + b"]}"


def big_number(digits: int) -> bytes:
    """A record whose `end_time` is an integer with `digits` digits."""
    return b'{"games":[{"uuid":"n1","end_time":' + b"9" * digits + b"}]}"


INVALID_UTF8 = {
    "lone_continuation": b'{"games":[{"uuid":"u1","pgn":"ab\x80cd"}]}',
    "truncated_seq": b'{"games":[{"uuid":"u1","pgn":"ab\xe2\x82"}]}',
    "overlong_slash": b'{"games":[{"uuid":"u1","pgn":"\xc0\xaf"}]}',
    "surrogate": b'{"games":[{"uuid":"u1","pgn":"\xed\xa0\x80"}]}',
    "ff_fe": b'{"games":[{"uuid":"u1","pgn":"\xff\xfe"}]}',
    "in_key": b'{"games":[{"uu\xffid":"u1"}]}',
}

NUL_BYTES = {
    "raw_nul_in_string": b'{"games":[{"uuid":"u1","pgn":"a\x00b"}]}',
    "nul_between_tokens": b'{"games":[{"uuid":"u1"}\x00]}',
    "nul_after_document": b'{"games":[{"uuid":"u1"}]}\x00',
    "nul_in_key": b'{"games":[{"uu\x00id":"u1"}]}',
}

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>"
    b"<body><h1>Checking your browser</h1><p>Please enable cookies.</p></body></html>\n"
)


def _string_doc_parts(n: int) -> tuple[bytes, bytes]:
    return b'{"games":[{"uuid":"s1","pgn":"', b'"}]}'


def string_doc_len(n: int) -> int:
    """Size in bytes of the document `iter_string_doc(n)` yields."""
    head, tail = _string_doc_parts(n)
    return len(head) + n + len(tail)


def iter_string_doc(n: int, fill: bytes = b"a") -> Iterator[bytes]:
    """A document with one record whose `pgn` string is `n` bytes long, in chunks."""
    head, tail = _string_doc_parts(n)
    yield head
    block = fill * CHUNK
    left = n
    while left > 0:
        k = min(left, CHUNK)
        yield block[:k]
        left -= k
    yield tail


def iter_gzip_bomb(n: int) -> Iterator[bytes]:
    """gzip of a valid JSON document of `n` bytes (mostly spaces): ratio over 1000:1."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    yield comp.compress(b'{"games":[')
    block = b" " * (1 << 20)
    left = n - len(b'{"games":[]}')
    while left > 0:
        k = min(left, len(block))
        out = comp.compress(block[:k])
        if out:
            yield out
        left -= k
    yield comp.compress(b"]}") + comp.flush()


# ---- certificates ---------------------------------------------------------------------


@dataclasses.dataclass
class Certs:
    """PEM files made with the openssl CLI: a CA and leaves for 127.0.0.1 / localhost."""

    ca: str  # the CA certificate (pass as ca_file)
    good: tuple[str, str]  # (cert, key) signed by ca, SAN 127.0.0.1 + localhost, valid now
    expired: tuple[str, str]  # signed by ca, right SAN, valid only in January 2020
    wrong_host: tuple[str, str]  # signed by ca, valid, SAN DNS:wrong.invalid only
    self_signed: tuple[str, str]  # its own issuer, right SAN, valid now (cert doubles as CA)


_CA_CNF = """\
[ ca ]
default_ca = tca
[ tca ]
dir = {d}
database = {d}/index.txt
serial = {d}/serial
new_certs_dir = {d}
default_md = sha256
policy = pol
copy_extensions = none
unique_subject = no
[ pol ]
commonName = supplied
[ leaf ]
subjectAltName = IP:127.0.0.1,DNS:localhost
basicConstraints = CA:FALSE
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(directory: str | os.PathLike) -> Certs:
    """Generate a CA and the four server certificates into `directory` (created)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=dltc hostile test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name in ("good", "expired", "wrong"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "wrong.ext").write_text("subjectAltName=DNS:wrong.invalid\n")
    _openssl("x509", "-req", "-in", "good.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "good.pem", cwd=d)
    _openssl("x509", "-req", "-in", "wrong.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "wrong.ext", "-out", "wrong.pem",
             cwd=d)
    # OpenSSL 3.0's `x509` cannot back-date; `openssl ca` takes explicit start/end dates.
    db = d / "cadb"
    db.mkdir(exist_ok=True)
    (db / "index.txt").write_text("")
    (db / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(_CA_CNF.format(d=db))
    _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
             "-in", "expired.csr", "-out", "expired.pem", "-notext", "-extensions", "leaf",
             "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", cwd=d)
    _openssl("req", "-x509", *ec, "-keyout", "self.key", "-out", "self.pem", "-days", "2",
             "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", cwd=d)
    p = lambda n: str(d / n)  # noqa: E731
    return Certs(ca=p("ca.pem"), good=(p("good.pem"), p("good.key")),
                 expired=(p("expired.pem"), p("expired.key")),
                 wrong_host=(p("wrong.pem"), p("wrong.key")),
                 self_signed=(p("self.pem"), p("self.key")))


# ---- the server -----------------------------------------------------------------------


class _Stop(Exception):
    pass


class _Conn:
    """One accepted connection: request parsing and raw writes, all bounded by the stop flag."""

    def __init__(self, server: "HostileServer", sock: socket.socket):
        self.server = server
        self.sock = sock
        self.sock.settimeout(0.25)

    def alive(self) -> bool:
        return not self.server._stop.is_set()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if not self.alive():
                raise _Stop
            try:
                n = self.sock.send(view)
            except (socket.timeout, ssl.SSLWantWriteError):
                continue
            view = view[n:]
            with self.server._lock:
                self.server.bytes_sent += n

    def read_request(self) -> tuple[str, str, dict[str, str]] | None:
        buf = b""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in buf:
            if not self.alive() or time.monotonic() > deadline or len(buf) > 65536:
                return None
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not data:
                return None
            buf += data
        head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return parts[0], parts[1], headers

    def wait_closed(self, seconds: float) -> None:
        """Hold the connection open, sending nothing, until the peer leaves or time is up."""
        end = time.monotonic() + seconds
        while self.alive() and time.monotonic() < end:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.1)
                if r and not self.sock.recv(4096):
                    return
            except (OSError, ValueError, ssl.SSLError):
                return

    def respond(self, status: int, body: bytes | Iterator[bytes] = b"", *,
                ctype: str = "application/json", headers: dict[str, str] | None = None,
                length: int | None = None, chunked: bool = False) -> None:
        reason = {200: "OK", 301: "Moved Permanently", 302: "Found", 401: "Unauthorized",
                  403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"}.get(
                      status, "Status")
        h = {"Content-Type": ctype, "Connection": "close"}
        if isinstance(body, bytes):
            h["Content-Length"] = str(len(body))
        elif chunked:
            h["Transfer-Encoding"] = "chunked"
        elif length is not None:
            h["Content-Length"] = str(length)
        h.update(headers or {})
        out = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
        self.send(out.encode("latin-1") + b"\r\n")
        if isinstance(body, bytes):
            self.send(body)
            return
        for piece in body:
            if chunked:
                if piece:
                    self.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                self.send(piece)
        if chunked:
            self.send(b"0\r\n\r\n")


Handler = Callable[[_Conn, str, dict[str, str], dict[str, str]], None]


class HostileServer:
    """A misbehaving HTTP/1.1 server on `host` (loopback only), by path:

    /ok                     200 {"games":[{"uuid":"ok1"}]}
    /status/N               status N, small JSON body
    /echo/N                 status N, body = the request headers as JSON (a leaking server)
    /big/N, /big-chunked/N  a valid N-byte JSON document (Content-Length / chunked)
    /string/N               one record with an N-byte string, Content-Length set
    /gzip/N                 gzip bomb: N decompressed bytes, chunked, ratio > 1000
    /truncated/N            promises N bytes, sends 10, closes
    /redirect-loop/K        302 to /redirect-loop/K+1, forever
    /redirect?to=URL        302 to URL
    /drip/N?every=S         Content-Length N, then one byte every S seconds
    /drip-head?every=S      the status line and headers one byte every S seconds
    /hang                   reads the request and never answers
    /deep/N, /deep-obj/N    arrays / objects nested N deep
    /bignum/N               an integer with N digits
    /bad-utf8/NAME, /nul/NAME  the INVALID_UTF8 / NUL_BYTES documents
    /html                   200 text/html page where JSON is expected
    other paths             `routes` given to the constructor, else 404
    """

    def __init__(self, host: str = "127.0.0.1", *, tls: tuple[str, str] | None = None,
                 lifetime: float = 60.0, routes: dict[str, Handler] | None = None):
        if not host.startswith("127."):
            raise ValueError("hostile servers listen on loopback only")
        self.host = host
        self.lifetime = lifetime
        self.routes = dict(routes or {})
        self.connections = 0
        self.requests: list[dict] = []
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()
        self._ctx = None
        if tls:
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ctx.load_cert_chain(*tls)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        scheme = "https" if tls else "http"
        self.base_url = f"{scheme}://{host}:{self.port}"
        self._started = time.monotonic()
        t = threading.Thread(target=self._accept_loop, name=f"hostile-{self.port}", daemon=True)
        t.start()
        self._accept_thread = t

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- lifecycle --

    def __enter__(self) -> "HostileServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if threading.current_thread() is not self._accept_thread:
            self._accept_thread.join(5)
        for t in list(self._threads):
            t.join(5)

    def _accept_loop(self) -> None:
        try:
            while not self._stop.is_set():
                if time.monotonic() - self._started > self.lifetime:
                    self._stop.set()
                    break
                try:
                    sock, _ = self._listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    break
                with self._lock:
                    self.connections += 1
                    self._socks.add(sock)
                    self._threads = [t for t in self._threads if t.is_alive()]
                t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
                self._threads.append(t)
                t.start()
        finally:
            self._listener.close()

    def _serve(self, raw: socket.socket) -> None:
        sock = raw
        try:
            if self._ctx is not None:
                raw.settimeout(5)
                try:
                    sock = self._ctx.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with self._lock:
                        self.requests.append({"tls_error": str(e)})
                    return
                with self._lock:
                    self._socks.add(sock)
            conn = _Conn(self, sock)
            req = conn.read_request()
            if req is None:
                return
            method, target, headers = req
            u = urllib.parse.urlsplit(target)
            query = dict(urllib.parse.parse_qsl(u.query))
            with self._lock:
                self.requests.append({"method": method, "path": u.path, "headers": headers})
            self._dispatch(conn, u.path, query, headers)
        except (_Stop, OSError, ssl.SSLError):
            pass
        finally:
            with self._lock:
                self._socks.discard(sock)
                self._socks.discard(raw)
            try:
                sock.close()
            except OSError:
                pass

    def _dispatch(self, c: _Conn, path: str, q: dict[str, str], headers: dict[str, str]) -> None:
        if path in self.routes:
            return self.routes[path](c, path, q, headers)
        parts = path.strip("/").split("/")
        name, arg = parts[0], (parts[1] if len(parts) > 1 else "")
        n = int(arg) if arg.isdigit() else 0
        if name == "ok":
            c.respond(200, b'{"games":[{"uuid":"ok1"}]}')
        elif name == "status":
            c.respond(n, b'{"code":0,"message":"status %d from the hostile server"}' % n)
        elif name == "echo":
            c.respond(n, json.dumps(headers).encode())
        elif name in ("big", "big-chunked", "string"):
            c.respond(200, iter_string_doc(max(0, n - string_doc_len(0))),
                      length=max(n, string_doc_len(0)), chunked=name == "big-chunked")
        elif name == "gzip":
            c.respond(200, iter_gzip_bomb(n), chunked=True,
                      headers={"Content-Encoding": "gzip"})
        elif name == "truncated":
            c.respond(200, iter([b'{"games":['[:10]]), length=n)
        elif name == "redirect-loop":
            c.respond(302, b"", headers={"Location": f"/redirect-loop/{n + 1}"})
        elif name == "redirect":
            c.respond(302, b"", headers={"Location": q.get("to", "/ok")})
        elif name == "drip":
            every = float(q.get("every", "0.2"))

            def drip() -> Iterator[bytes]:
                for b in iter_string_doc(max(0, n - string_doc_len(0))):
                    for i in range(len(b)):
                        time.sleep(every)
                        yield b[i:i + 1]
            c.respond(200, drip(), length=max(n, string_doc_len(0)))
        elif name == "drip-head":
            every = float(q.get("every", "0.2"))
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + \
                b"z" * 4000 + b"\r\n"
            for i in range(len(head)):
                time.sleep(every)
                c.send(head[i:i + 1])
        elif name == "hang":
            c.wait_closed(self.lifetime)
        elif name == "deep":
            c.respond(200, deep_array(n))
        elif name == "deep-obj":
            c.respond(200, deep_object(n))
        elif name == "bignum":
            c.respond(200, big_number(n))
        elif name == "bad-utf8":
            c.respond(200, INVALID_UTF8[arg])
        elif name == "nul":
            c.respond(200, NUL_BYTES[arg])
        elif name == "html":
            c.respond(200, HTML_PAGE, ctype="text/html; charset=utf-8")
        else:
            c.respond(404, b'{"code":0,"message":"not found"}')


# ---- process measurements -------------------------------------------------------------


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rss_kb() -> int:
    return _status_kb("VmRSS")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kb() -> int:
    return _status_kb("VmHWM")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))
