"""Type stubs for dltc._native, the C extension. Each component adds its section."""

def version() -> str: ...
def curl_version() -> str: ...

class JSONDecodeError(ValueError):
    offset: int
    path: str

class FetchError(OSError): ...

# ---- engine ----

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

class Response:
    """A finished request, delivered exactly once per Client.submit()."""
    @property
    def id(self) -> int: ...
    @property
    def tag(self) -> Any: ...
    @property
    def url(self) -> str: ...
    @property
    def status(self) -> int: ...  # 0 on transport error / refusal
    @property
    def body(self) -> bytes | None: ...  # decoded; b"" for empty_on; None on 304 or error
    @property
    def etag(self) -> str | None: ...
    @property
    def not_modified(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def http_version(self) -> str | None: ...  # "1.1", "2", ...
    @property
    def link_next(self) -> str | None: ...

class Client(Iterator[Response]):
    """Concurrent GETs on a libcurl engine thread. Safe to share between threads."""
    def __init__(
        self,
        *,
        max_concurrency: int = 256,
        initial_concurrency: int = 8,
        rps: float | None = None,
        max_attempts: int = 5,
        max_retry_time: float = 120.0,
        connect_timeout: float = 10.0,
        timeout: float = 120.0,
        low_speed_time: float = 30.0,
        max_body: int = 256 << 20,
        max_ratio: float = 200.0,
        max_redirects: int = 5,
        same_host_redirects: bool = True,
        allowed_hosts: Iterable[str] | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[str] | None = None,
        http2: bool = True,
        queue_size: int = 64,
        user_agent: str | None = None,
        backoff_base: float = 0.1,
        backoff_cap: float = 10.0,
        loop: Literal["poll", "epoll"] | None = None,
    ) -> None: ...
    def submit(
        self, url: str, *, tag: Any = None, etag: str | None = None, empty_on: Iterable[int] = ()
    ) -> int: ...
    def next(self, timeout: float | None = None) -> Response | None: ...
    def __iter__(self) -> Client: ...
    def __next__(self) -> Response: ...
    @property
    def pending(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Client: ...
    def __exit__(self, *exc: object) -> Literal[False]: ...


# ---- decoder ----
