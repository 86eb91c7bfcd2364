"""dltc: dlt sources whose HTTP, JSON and Arrow work runs in C.

The public API is small: ``dltc.chess.source`` (a drop-in for dlt's verified chess
source), ``dltc.read_json`` (JSON bytes to Arrow, strictly), the fetch ``Client``, and
``dltc.replica`` (a local chess.com API for offline tests).
"""

from dltc._native import FetchError, JSONDecodeError, curl_version, version
from dltc._native import Client, Response, inflate  # the fetch engine (docs/CONTRACTS.md section 3)
from dltc.json import read_json

__version__ = version()

__all__ = ["Client", "FetchError", "JSONDecodeError", "Response", "__version__", "curl_version", "read_json", "version"]
