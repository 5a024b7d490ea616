"""Building HTTP responses: stored bytes served as they are, headers from the record."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from starlette.requests import Request

from fhir_server.core.errors import FhirError, Issue, operation_outcome
from fhir_server.core.resources import etag
from fhir_server.formats import json as fjson
from fhir_server.formats import xml as fxml
from fhir_server.http.negotiation import CONTENT_TYPES, is_pretty, response_format
from fhir_server.store.base import Record


class Response:
    """An ASGI response whose header list is built once, with no framework work on the way out."""

    __slots__ = ("status_code", "body", "raw_headers")

    def __init__(self, content: bytes = b"", status_code: int = 200, headers: dict[str, str] | None = None,
                 media_type: str | None = None) -> None:
        self.status_code = status_code
        self.body = content
        raw = []
        if status_code not in (204, 304):
            raw.append((b"content-length", str(len(content)).encode()))
        if media_type is not None:
            raw.append((b"content-type", media_type.encode()))
        if headers:
            raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
        self.raw_headers = raw

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw_headers}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


@lru_cache(maxsize=4096)
def http_date(instant: str) -> str:
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def render(request: Request, value: dict, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A resource (or Bundle, OperationOutcome) as a dict, in the negotiated format."""
    fmt = response_format(request)
    pretty = is_pretty(request)
    if fmt == "json" and not pretty:
        return Response(fjson.dumps(value), status, headers, media_type=CONTENT_TYPES[fmt])
    value = fjson.loads(fjson.dumps(value))  # expand embedded stored bytes (orjson.Fragment) into dicts
    body = fxml.dump_resource(value, pretty) if fmt == "xml" else fjson.dumps(value, pretty)
    return Response(body, status, headers, media_type=CONTENT_TYPES[fmt])


def render_record(request: Request, record: Record, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A stored version; compact JSON is the stored bytes themselves, no parse, no model."""
    fmt = response_format(request)
    all_headers = {"ETag": etag(record.version), "Last-Modified": http_date(record.last_updated), **(headers or {})}
    if fmt == "json" and not is_pretty(request):
        return Response(record.body, status, all_headers, media_type=CONTENT_TYPES["json"])
    return render(request, fjson.loads(record.body), status, all_headers)


def render_error(request: Request, error: FhirError) -> Response:
    try:
        return render(request, error.outcome(), error.status, error.headers)
    except FhirError:  # the error is about the requested format itself: answer in JSON
        return Response(fjson.dumps(error.outcome()), error.status, error.headers, media_type=CONTENT_TYPES["json"])


def informational(request: Request, message: str, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    outcome = operation_outcome([Issue("informational", message, severity="information")])
    return render(request, outcome, status, headers)
