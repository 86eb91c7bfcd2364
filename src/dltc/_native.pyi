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
    @property
    def content_encoding(self) -> Literal["gzip", "br"] | None: ...  # body still encoded (decompress="caller")
    @property
    def method(self) -> str: ...  # of the last hop, upper case (a 303 turns POST into GET)
    @property
    def final_url(self) -> str: ...  # after redirects; == url without any; never an auth API key
    @property
    def headers(self) -> list[tuple[str, str]]: ...  # final response, in order, names as sent
    def header(self, name: str, default: str | None = None) -> str | None: ...  # first, case-insensitive

# Auth specs (docs/CONTRACTS.md 3.9), dicts with "type":
#   {"type": "bearer", "token": str}
#   {"type": "api_key", "name": str = "Authorization", "location": "header" | "query", "api_key": str}
#   {"type": "http_basic", "username": str, "password": str}
#   {"type": "oauth2_client_credentials", "access_token_url": str, "client_id": str,
#    "client_secret": str, "access_token_request_data": dict = {}, "default_token_expiration": float = 3600,
#    "client_auth": "body" | "basic" = "body"}
AuthSpec = dict[str, Any]
Params = Mapping[str, Any] | Iterable[tuple[str | bytes, Any]]
Headers = Mapping[str, str | None] | Iterable[tuple[str, str | None]]

class Client(Iterator[Response]):
    """Concurrent HTTP requests on a libcurl engine thread. Safe to share between threads."""
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
        decompress: Literal["engine", "caller"] = "engine",
        auth: AuthSpec | int | Literal[False] | None = None,  # default auth of every request
    ) -> None: ...
    def submit(
        self,
        url: str,
        *,
        method: str = "GET",
        params: Params | None = None,  # appended to the query as requests encodes them
        headers: Headers | None = None,  # replace client headers of the same name; None removes
        body: bytes | None = None,  # raw; set Content-Type in headers
        json: Any = None,  # json.dumps(allow_nan=False), Content-Type: application/json
        data: Params | str | bytes | None = None,  # mapping: form-encoded; str/bytes: raw
        auth: AuthSpec | int | Literal[False] | None = None,  # None: the client's; False: none
        tag: Any = None,
        etag: str | None = None,
        empty_on: Iterable[int] = (),
    ) -> int: ...
    def add_auth(self, spec: AuthSpec) -> int: ...  # a handle for submit(auth=...); same spec, same handle
    def set_limits(self, *, max_concurrency: int | None = None, rps: float | None = None) -> None: ...
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

def inflate(
    data: bytes | bytearray | memoryview,
    encoding: str | None,
    *,
    max_size: int = 256 << 20,
    max_ratio: float = 200.0,
) -> bytes:
    """Decode a body of Client(decompress="caller") (encoding: Response.content_encoding:
    "gzip", "br" or None/"identity"); GIL released. ValueError on corrupt/truncated data
    or a cap (max_size bytes out; max_ratio once past 1 MiB out), MemoryError."""


# ---- decoder ----
# Decoder: JSON documents -> Arrow tables (see docs/CONTRACTS.md section 4, csrc/decode.h).
#
# plan keys (all optional): "selector": str | None, "columns": [{"path": [str, ...],
# "type": "text"|"bigint"|"double"|"bool"|"timestamp"|"date"|"json", "nullable": bool,
# "json": bool}], "infer": bool (False: undeclared keys are skipped), "contract":
# {"tables": mode, "columns": mode, "data_type": mode} (a str: all three) with mode "evolve"|"freeze"|"discard_row"|
# "discard_value", "child_tables": bool, "dlt_ids": bool, "load_id": str | None,
# "batch_rows": int, "max_depth": int, "max_string": int, and two additions:
# "root_name": str | None and "table_names": {key tuple: str} -- the dlt table names
# used in the digest of child _dlt_id values, as dlt's relational normalizer makes them:
# digest128(f"{parent _dlt_id}_{table name}_{list idx}", 10). A child table missing from
# table_names uses root_name + "__" + "__".join(key) (raw keys: differs from dlt when a
# key needs normalising). Root _dlt_id: 10 random bytes, base64 without padding (dlt's
# generate_dlt_id).
#
# Column names in the Arrow schemas are raw key components joined by "\x1f"; variant
# columns (contract data_type=evolve, value of another type that does not coerce) add
# the component "v_<type>" (e.g. "white\x1frating\x1fv_text" -> white__rating__v_text);
# child tables of lists of scalars have a "value" column; system columns are
# "_dlt_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_load_id".
#
# Records paths, skeleton, row captures (docs/CONTRACTS.md 4.6), decoded in the same pass:
# "records_path": [step, ...] | "auto" (excludes "selector"): steps are keys or "*" (every
# element of an array / member value of an object); the records are what dlt's
# RESTClient.extract_response returns for that path (a single match unwrapped: an array's
# elements, null none, anything else one record; two or more matches: one record each).
# "auto": dlt's detector (find_response_page_data) with "auto_record_keys": [str]
# (dltc.json.records_plan(None) fills them from dlt). "skeleton": True (64 KiB cap) | int
# cap: skeleton() is the document as compact JSON with the record arrays replaced by [].
# "row_captures": [[raw key, ...], ...] ([] = the record itself): row_values() gives one
# tuple per root record. dltc.json.compile_selector turns dlt's data_selector into steps.

from typing import Any

TableKey = tuple[str, ...] | str  # () root, ("field", ...) child, "_dltc_rejects"

class ArrowStream:
    """One table's rows from Decoder.flush(). Each __arrow_c_stream__ call exports all
    rows again (the batches are shared, not copied), so consumers that export twice
    (DuckDB) work."""

    @property
    def key(self) -> TableKey: ...
    @property
    def num_rows(self) -> int: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

class Decoder:
    def __init__(self, plan: dict[str, Any]) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview, source_url: str = "") -> int:
        """Parse one complete JSON document; GIL released. Returns root rows added.
        Raises JSONDecodeError (.offset, .path, .code in "EPARSE", "ELIMIT",
        "ESCHEMA" for a freeze contract) and rolls the document back."""
    def flush(self) -> dict[TableKey, ArrowStream]:
        """Tables with rows -> streams; resets the row builders (schemas stay)."""
    def reset(self) -> None:
        """Back to the compiled plan as if new (inferred columns, child tables, variants,
        unflushed rows and rejects dropped; declared columns kept), but keeping memory:
        each column's buffers start at the capacity it needed before. Stats stay."""
    def skeleton(self) -> str:
        """The last document as compact JSON without its records: every array the records
        came from is []. Raises JSONDecodeError (.code "ELIMIT", offset and path of the value
        that did not fit) when it exceeded the plan's cap (the feed itself succeeded), and
        ValueError without "skeleton" in the plan or after a failed feed."""
    def row_values(self) -> list[tuple[Any, ...]]:
        """Per root record of the last document (document order, contract-dropped records
        included): the plan's row_captures as None | bool | int | float | str, an object or
        array as compact JSON text. [] after a failed feed."""
    def records_path(self) -> list[str] | None:
        """Where the last document's records were ("*" for the wildcard; "auto": the path
        detected, [] for the whole document); None after a failed feed or before any."""
    def set_records_path(self, path: list[str] | Literal["auto"]) -> None:
        """Where the next documents' records are (pin what "auto" detected on a chain's
        first page, as dlt does). records_path() keeps reporting the last document's."""
    def stats(self) -> dict[str, int]:
        """documents, rows, child_rows, bytes, failed_documents, rejects_new_column,
        rejects_data_type, rejects_missing, rows_discarded, variants, batches,
        rejects_unrecorded (rejects beyond 65536 in one record: counted, not in the table),
        rejects_new_table (contract "tables": lists not turned into a new child table)."""
