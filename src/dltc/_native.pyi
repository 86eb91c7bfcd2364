"""Type stubs for dltc._native, the C extension. Each component adds its section."""

def version() -> str: ...
def curl_version() -> str: ...

class JSONDecodeError(ValueError):
    offset: int
    path: str

class FetchError(OSError): ...

# ---- engine ----

# ---- decoder ----
