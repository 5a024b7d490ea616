"""Building HTTP responses: stored bytes served as they are, headers from the record."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.core.errors import FhirError, Issue, operation_outcome
from fhir_server.formats import json as fjson
from fhir_server.formats import xml as fxml
from fhir_server.http.negotiation import CONTENT_TYPES, is_pretty, response_format
from fhir_server.store.base import Record


def http_date(instant: str) -> str:
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def etag(version: int) -> str:
    return f'W/"{version}"'


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
