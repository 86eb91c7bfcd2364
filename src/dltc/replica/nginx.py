"""nginx side of the replica: the served mirror of a data directory (symlinks, archive lists
with {{BASE}} rendered, pre-gzipped copies, the weak-ETag map) and the nginx.conf text.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
ECHO_MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_http_echo_module.so",
    "/usr/share/nginx/modules/ngx_http_echo_module.so",
)
GZIP_MIN = 200          # like the API: bodies under ~200 bytes are sent as is
GZIP_LEVEL = 6          # gives the recorded ~26% for a month of games
PLACEHOLDER = b"{{BASE}}"
SETUP_HINT = "run `make setup` (apt-get install nginx-light libnginx-mod-http-echo)"


class NginxMissing(RuntimeError):
    """nginx or its echo module is not installed; the message says what to do."""


def find_nginx() -> tuple[str, str]:
    """Paths of the nginx binary and of ngx_http_echo_module.so, or NginxMissing.
    $DLTC_NGINX / $DLTC_NGINX_ECHO override the search."""
    env = os.environ.get("DLTC_NGINX")
    if env is not None:
        nginx = env if os.access(env, os.X_OK) else None
    else:
        nginx = next((p for p in NGINX_CANDIDATES if os.access(p, os.X_OK)), None) or \
            shutil.which("nginx")
    if not nginx:
        raise NginxMissing(f"nginx not found: {SETUP_HINT}")
    env = os.environ.get("DLTC_NGINX_ECHO")
    if env is not None:
        echo = env if os.path.isfile(env) else None
    else:
        echo = next((p for p in ECHO_MODULE_CANDIDATES if os.path.isfile(p)), None)
    if not echo:
        raise NginxMissing(f"nginx echo module (ngx_http_echo_module.so) not found: {SETUP_HINT}")
    return nginx, echo


# ---- the served mirror ------------------------------------------------------------------

@dataclass
class _Entry:
    mtime_ns: int
    size: int
    etag: str


class Mirror:
    """www/ tree nginx serves: URI `/a/b` is file `www/a/b.json` (profile.json of a player
    becomes `pub/player/{u}.json`). Files holding the {{BASE}} placeholder (profiles,
    archive lists) are rendered copies; the others are symlinks to the data files. Every
    body >= GZIP_MIN bytes gets a `.gz` twin for gzip_static: for data files a symlink into
    a content-addressed store (md5 -> gzip, shared by runs, see gz_store()), so a data set
    is compressed once, not at every start.

    update() is incremental (unchanged files are skipped) and returns {uri: weak etag}.
    """

    def __init__(self, data_dir: Path, www: Path, base_url: str, store: Path | None = None,
                 tops: tuple[str, ...] = ("pub", "callback")):
        self.data = data_dir
        self.tops = tops          # the data dir's subdirectories that are served
        self.www = www
        self.base = base_url.encode()
        self.store = store
        self._seen: dict[str, _Entry] = {}
        self.etags: dict[str, str] = {}

    @staticmethod
    def _uri_of(rel: str) -> tuple[str, str]:
        """(uri, mirror rel path) of a data file's rel path (posix, ends with .json)."""
        stem = rel[:-5]
        parts = stem.split("/")
        if len(parts) == 4 and parts[:2] == ["pub", "player"] and parts[3] == "profile":
            stem = "/".join(parts[:3])
        return "/" + stem, stem + ".json"

    def _one(self, src: Path, rel: str) -> tuple[str, str] | None:
        uri, mrel = self._uri_of(rel)
        st = src.stat()
        key = str(src)
        old = self._seen.get(key)
        dst = self.www / mrel
        if old and old.mtime_ns == st.st_mtime_ns and old.size == st.st_size and dst.exists():
            return uri, old.etag
        body = src.read_bytes()
        dst.parent.mkdir(parents=True, exist_ok=True)
        gz = dst.with_name(dst.name + ".gz")
        render = PLACEHOLDER in body
        if render:
            body = body.replace(PLACEHOLDER, self.base)
            _atomic_write(dst, body)
        elif not dst.is_symlink():
            if dst.exists():
                dst.unlink()
            os.symlink(src, dst)
        md5 = hashlib.md5(body).hexdigest()
        if len(body) < GZIP_MIN:
            gz.unlink(missing_ok=True)
        elif render or self.store is None:
            _atomic_write(gz, gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0))
        else:
            cached = self.store / md5[:2] / (md5 + ".gz")
            if not cached.exists():
                cached.parent.mkdir(parents=True, exist_ok=True)
                _atomic_write(cached, gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0))
            tmp = gz.with_name(gz.name + ".lnk")
            tmp.unlink(missing_ok=True)
            os.symlink(cached, tmp)
            os.replace(tmp, gz)
        etag = 'W/"' + md5 + '"'
        self._seen[key] = _Entry(st.st_mtime_ns, st.st_size, etag)
        return uri, etag

    def update(self, threads: int = 2) -> dict[str, str]:
        jobs = []
        for top in self.tops:
            root = self.data / top
            if not root.is_dir():
                continue
            for dirpath, _dirs, files in os.walk(root):
                for f in files:
                    if f.endswith(".json"):
                        src = Path(dirpath) / f
                        jobs.append((src, src.relative_to(self.data).as_posix()))
        with ThreadPoolExecutor(max(1, threads)) as ex:
            for res in ex.map(lambda j: self._one(*j), jobs, chunksize=64):
                if res:
                    self.etags[res[0]] = res[1]
        return self.etags


def gz_store() -> Path | None:
    """The content-addressed gzip store: $DLTC_REPLICA_GZ_CACHE, else
    $XDG_CACHE_HOME/dltc/replica-gz (~/.cache/...); None (gzip into the prefix) when it
    cannot be created or DLTC_REPLICA_GZ_CACHE is empty."""
    env = os.environ.get("DLTC_REPLICA_GZ_CACHE")
    if env is not None:
        if not env:
            return None
        p = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        p = Path(base) / "dltc" / "replica-gz"
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return p if os.access(p, os.W_OK) else None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_etag_map(path: Path, etags: dict[str, str]) -> None:
    """nginx `map` body: one `"uri" 'W/"md5"';` line per served file."""
    lines = [f'"{uri}" \'{tag}\';' for uri, tag in sorted(etags.items())]
    _atomic_write(path, ("\n".join(lines) + "\n").encode())


# ---- nginx.conf -------------------------------------------------------------------------

@dataclass
class Conf:
    prefix: Path
    www: Path
    echo_module: str
    port: int
    host: str = "127.0.0.1"
    workers: int = 2
    tls_cert: Path | None = None
    tls_key: Path | None = None
    latency_ms: float = 0
    jitter_ms: float = 0
    max_parallel: int | None = None
    retry_after: int | None = None
    faults: bool = False
    app_socket: Path | None = None
    generation: int = 0
    n_etags: int = 0
    stall_s: float = 0
    run_as_root: bool = False
    locations: str | None = None    # replaces the data locations (`location /` ...) when set
    http_extra: str = ""            # more http-level directives (maps) when set


def _delays(c: Conf) -> list[str]:
    """100 per-request delay values (s): latency +- jitter, uniform, clamped at 0."""
    if c.jitter_ms <= 0:
        return []
    out = []
    for i in range(100):
        d = c.latency_ms + c.jitter_ms * (2.0 * i / 99.0 - 1.0)
        out.append(f"{max(0.0, d) / 1000.0:.3f}")
    return out


def render(c: Conf) -> str:
    """The whole nginx.conf for one replica run (see the module docstring of server.py)."""
    headers = """
            add_header Cache-Control "public, max-age=5" always;
            add_header access-control-allow-origin "*" always;"""
    data_headers = headers + """
            add_header ETag $dltc_etag always;"""
    sleep = c.latency_ms > 0 or c.jitter_ms > 0
    delay_var = "$dltc_delay" if c.jitter_ms > 0 else f"{c.latency_ms / 1000.0:.3f}"
    hash_max = 1024
    while hash_max < 2 * max(1, c.n_etags):
        hash_max *= 2

    static = f"""
            if ($dltc_nm) {{ return 304; }}
            try_files $uri.json @app;{data_headers}"""
    if c.locations is not None:
        data_loc = c.locations
    elif c.faults:
        first = "echo_sleep {d};\n            echo_exec @app;".format(d=delay_var) if sleep else \
            "proxy_pass http://dltc_app;"
        data_loc = f"""
        location / {{
            {first}
        }}"""
    elif sleep:
        data_loc = f"""
        location / {{
            echo_sleep {delay_var};
            echo_exec @data;
        }}
        location @data {{{static}
        }}"""
    else:
        data_loc = f"""
        location / {{{static}
        }}"""

    split = ""
    if c.jitter_ms > 0:
        vals = _delays(c)
        rows = "\n".join(f"        1% {v};" for v in vals[:99]) + f"\n        * {vals[99]};"
        split = f"""
    split_clients "$request_id" $dltc_delay {{
{rows}
    }}"""

    limit = ""
    if c.max_parallel:
        limit = f"""
        limit_conn dltc_perip {c.max_parallel};
        limit_conn_status 429;
        limit_conn_log_level info;
        error_page 429 /__dltc/429.json;"""
    ra = f'\n            add_header Retry-After "{c.retry_after}" always;' if c.retry_after is not None else ""

    if c.tls_cert:
        listen = f"listen {c.host}:{c.port} ssl http2;"
        tls = f"""
        ssl_certificate {c.tls_cert};
        ssl_certificate_key {c.tls_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:dltc_ssl:4m;
        http2_max_concurrent_streams 256;"""
    else:
        listen = f"listen {c.host}:{c.port} backlog=4096;"
        tls = ""
    read_timeout = max(60, int(c.stall_s) + 30)
    user = "user root root;\n" if c.run_as_root else ""

    return f"""# generated by dltc.replica for one run; generation {c.generation}
load_module {c.echo_module};
{user}daemon off;
master_process on;
worker_processes {c.workers};
worker_rlimit_nofile 16384;
pid {c.prefix}/nginx.pid;
error_log {c.prefix}/error.log warn;

events {{
    worker_connections 8192;
    multi_accept on;
}}

http {{
    access_log off;
    client_body_temp_path {c.prefix}/tmp/body;
    proxy_temp_path {c.prefix}/tmp/proxy;
    fastcgi_temp_path {c.prefix}/tmp/fastcgi;
    uwsgi_temp_path {c.prefix}/tmp/uwsgi;
    scgi_temp_path {c.prefix}/tmp/scgi;

    types {{ application/json json; text/html html; }}
    default_type application/json;
    charset utf-8;
    charset_types application/json;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    # every cached entry holds an open fd (two with a .gz twin): well under
    # worker_rlimit_nofile, or a data set of many small files (60k comment pages)
    # runs the worker out of fds, try_files sees "not found" and it is cached
    open_file_cache max=4096 inactive=30s;
    open_file_cache_valid 2s;
    open_file_cache_errors on;
    etag off;
    if_modified_since off;
    max_ranges 0;

    gzip on;
    gzip_static on;
    gzip_types application/json;
    gzip_min_length {GZIP_MIN};
    gzip_comp_level 1;
    gzip_proxied any;
    gzip_vary on;

    map_hash_max_size {hash_max};
    map_hash_bucket_size 128;
    map $request_uri $dltc_path {{
        "~^(?<p>[^?]*)" $p;
    }}
    map $dltc_path $dltc_etag {{
        default "";
        include {c.prefix}/etags.map;
    }}
    map "$http_if_none_match|$dltc_etag" $dltc_nm {{
        default 0;
        '~(?:^|,)\\s*(?:W/)?"([0-9a-f]{{32}})"\\s*(?:,[^|]*)?\\|W/"\\1"$' 1;
        '~^\\s*\\*\\s*\\|W/' 1;
    }}{split}
    limit_conn_zone $binary_remote_addr zone=dltc_perip:8m;{c.http_extra}

    upstream dltc_app {{
        server unix:{c.app_socket};
        keepalive 64;
    }}

    server {{
        {listen}{tls}
        server_name _;
        root {c.www};{limit}

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_buffering off;
        proxy_buffer_size 64k;
        proxy_buffers 8 64k;
        proxy_busy_buffers_size 128k;
        proxy_read_timeout {read_timeout}s;
        proxy_intercept_errors off;
{data_loc}
        location @app {{
            proxy_pass http://dltc_app;
        }}
        location = /__dltc/gen {{
            default_type text/plain;
            return 200 "{c.generation}";
        }}
        location = /__dltc/429.json {{
            internal;{headers}{ra}
        }}
    }}
}}
"""
