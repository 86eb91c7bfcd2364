"""What dlt's rest_api hands user code and its own paginators, built from an engine
Response: a real `requests.Response` (status, headers, final URL, body, the request), whose
`json()` may be the decoder's skeleton (the document with the records arrays emptied) so
a paginator reads next URLs, cursors and totals without a second parse of the body. Also
maps dlt's auth objects onto the engine's auth specs, and a `requests.Request` onto the
keywords of `Client.submit`.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional, Tuple

import requests
from requests.structures import CaseInsensitiveDict
from dlt.sources.helpers.rest_client.auth import (
    APIKeyAuth,
    BearerTokenAuth,
    HttpBasicAuth,
    OAuth2ClientCredentials,
)

_NOT_SET: Any = object()


class PageResponse(requests.Response):
    """A `requests.Response` made from an engine Response. `json()` returns `doc` when the
    caller set one (the skeleton of a decoded page, or the document already parsed), else
    parses the body like requests."""

    def __init__(self) -> None:
        super().__init__()
        self._dltc_doc: Any = _NOT_SET
        self._dltc_skeleton: Optional[str] = None

    def json(self, **kwargs: Any) -> Any:
        if self._dltc_doc is _NOT_SET and self._dltc_skeleton is not None:
            self._dltc_doc = json.loads(self._dltc_skeleton)
        if self._dltc_doc is not _NOT_SET:
            return self._dltc_doc
        return super().json(**kwargs)

    def set_doc(self, doc: Any) -> None:
        self._dltc_doc = doc

    def set_skeleton(self, skeleton: str) -> None:
        self._dltc_doc = _NOT_SET
        self._dltc_skeleton = skeleton

    def content_changed(self, original: bytes) -> bool:
        """A response action callable replaced the body (dlt documents `response._content = ...`)."""
        return self._content is not original  # type: ignore[has-type]


def page_response(resp: Any, body: bytes, request: Optional[requests.Request]) -> PageResponse:
    r = PageResponse()
    r.status_code = resp.status
    r._content = body
    r._content_consumed = True
    r.headers = CaseInsensitiveDict(resp.headers or ())
    r.url = resp.final_url or resp.url
    r.encoding = requests.utils.get_encoding_from_headers(r.headers) or "utf-8"
    r.reason = ""
    if request is not None:
        try:
            r.request = request.prepare()
        except Exception:  # a request requests cannot prepare: the paginators do not need it
            r.request = None  # type: ignore[assignment]
    return r


def engine_auth(auth: Any) -> Tuple[Optional[Dict[str, Any]], Optional[Callable[..., Any]]]:
    """dlt's auth object -> (engine auth spec, None) for the four built-in types (exact
    classes, so a subclass that overrides __call__ keeps its own behaviour), or
    (None, auth) for any other `requests` auth, applied to each prepared request."""
    if auth is None:
        return None, None
    t = type(auth)
    if t is BearerTokenAuth:
        return {"type": "bearer", "token": auth.token}, None
    if t is APIKeyAuth and auth.location in ("header", "query", "param"):
        return {"type": "api_key", "name": auth.name, "location": auth.location, "api_key": auth.api_key}, None
    if t is HttpBasicAuth:
        return {"type": "http_basic", "username": auth.username, "password": auth.password}, None
    if t is OAuth2ClientCredentials and auth.access_token is None:
        return {
            "type": "oauth2_client_credentials",
            "access_token_url": auth.access_token_url,
            "client_id": auth.client_id,
            "client_secret": auth.client_secret,
            "access_token_request_data": dict(auth.access_token_request_data or {}),
            "default_token_expiration": int(auth.default_token_expiration),
        }, None
    return None, auth


def submit_kwargs(request: requests.Request, auth_spec: Any, custom_auth: Any) -> Tuple[str, Dict[str, Any]]:
    """A dlt request (`requests.Request`, as RESTClient builds it and paginators update it)
    -> (url, Client.submit keywords). With a custom auth the request is prepared by
    requests, the auth applied, and the prepared URL, headers and body sent as they are."""
    if custom_auth is not None:
        req = requests.Request(request.method, request.url, headers=request.headers, params=request.params,
                               json=request.json, data=request.data, auth=custom_auth)
        p = req.prepare()
        body = p.body.encode() if isinstance(p.body, str) else p.body
        # the engine frames the body itself: no Content-Length of requests' making
        headers = {k: v for k, v in p.headers.items() if k.lower() != "content-length"}
        kw: Dict[str, Any] = {"method": p.method, "headers": headers, "auth": False}
        if body is not None and p.method not in ("GET", "HEAD"):
            kw["body"] = bytes(body)
        return p.url, kw  # type: ignore[return-value]
    kw = {"method": (request.method or "GET").upper()}
    url = request.url
    if request.params:
        # the query encoded by requests itself, into the URL: errors then name the page
        p = requests.PreparedRequest()
        p.prepare_url(url, request.params)
        url = p.url
    if request.headers:
        kw["headers"] = {k: v for k, v in request.headers.items() if v is not None}
    # requests sends json unless data is truthy (`if not data and json is not None`)
    if request.data:
        # encoded by requests itself (form fields, or str/bytes as they are); given to the
        # engine as a raw body (the runtime's Request keeps `data` for the source)
        p = requests.PreparedRequest()
        p.headers = CaseInsensitiveDict()
        p.prepare_body(request.data, None)
        body = p.body.encode("utf-8") if isinstance(p.body, str) else p.body
        kw["body"] = bytes(body or b"")
        ctype = p.headers.get("Content-Type")
        hdrs = kw.setdefault("headers", {})
        if ctype and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = ctype
    elif request.json is not None:
        kw["json"] = request.json
    if auth_spec is not None:
        kw["auth"] = auth_spec
    return url, kw  # type: ignore[return-value]


def request_key(request: requests.Request) -> str:
    """What identifies a page request (a cursor that repeats gives the same key)."""
    try:
        j = json.dumps(request.json, sort_keys=True, default=str)
    except (TypeError, ValueError):
        j = repr(request.json)
    params = request.params or {}
    return f"{request.method} {request.url} {sorted((str(k), str(v)) for k, v in dict(params).items())} {j} {request.data!r}"
