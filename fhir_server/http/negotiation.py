"""Content negotiation: request bodies in, the response format out, ``Prefer`` and ``_pretty``.

R4 http.html#mime-type: ``_format`` overrides ``Accept``; JSON is the default.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache

from starlette.requests import Request

from fhir_server.core.errors import FhirError
from fhir_server.core.resources import counting_number
from fhir_server.formats import json as fjson
from fhir_server.formats import xml as fxml
from fhir_server.http.context import header, query_param

JSON_TYPES = {"application/fhir+json": "json", "application/json": "json", "json": "json",
              "application/json+fhir": "json", "text/json": "json"}
XML_TYPES = {"application/fhir+xml": "xml", "application/xml": "xml", "text/xml": "xml", "xml": "xml",
             "application/xml+fhir": "xml"}
FORMATS = {**JSON_TYPES, **XML_TYPES}
CONTENT_TYPES = {"json": "application/fhir+json; charset=utf-8", "xml": "application/fhir+xml; charset=utf-8"}
PATCH_TYPES = {"application/json-patch+json": "json-patch"}


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _accepted(accept: str) -> list[tuple[float, str]]:
    ranked = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        ranked.append((quality, media.lower()))
    ranked.sort(key=lambda item: -item[0])
    return ranked


def response_format(request: Request) -> str:
    """"json" or "xml", from ``_format`` then ``Accept``; anything else falls back to JSON."""
    explicit = query_param(request, "_format")
    if explicit is not None:
        fmt = FORMATS.get(_media_type(explicit.replace(" ", "+")))
        if fmt is None:
            raise FhirError(406, "not-supported", f"_format '{explicit}' is not supported (use json or xml)")
        return fmt
    return _format_for_accept(header(request, "accept") or "")


@lru_cache(maxsize=256)
def _format_for_accept(accept: str) -> str:
    for quality, media in _accepted(accept):
        if quality > 0 and media in FORMATS:
            return FORMATS[media]
    return "json"


def is_pretty(request: Request) -> bool:
    return (query_param(request, "_pretty") or "false").lower() == "true"


@dataclass(frozen=True)
class Prefer:
    return_: str = "representation"  # minimal | representation | OperationOutcome
    strict: bool = False  # handling=strict


def prefer(request: Request) -> Prefer:
    values = {}
    for part in (header(request, "prefer") or "").split(";"):
        for item in part.split(","):
            key, _, value = item.strip().partition("=")
            values[key.strip().lower()] = value.strip().strip('"')
    return Prefer(values.get("return", "representation"), values.get("handling") == "strict")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = header(request, "content-length")
    if declared and (counting_number(declared) or 0) > limit:
        raise FhirError(413, "too-costly", f"Request body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError(413, "too-costly", f"Request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def body_format(request: Request, body: bytes) -> str:
    """"json", "xml", a patch kind, or the raw media type (for Binary); sniffed when undeclared."""
    declared = header(request, "content-type")
    if declared is None:
        head = body.lstrip()[:1]
        return "json" if head in (b"{", b"[") else "xml" if head == b"<" else "application/octet-stream"
    media = _media_type(declared)
    return FORMATS.get(media) or PATCH_TYPES.get(media) or media


def parse_resource(fmt: str, body: bytes) -> dict:
    """A FHIR resource from a JSON or XML body; other media types are a 415."""
    if not body.strip():
        raise FhirError(400, "required", "The request has no body")
    if fmt == "json":
        resource = fjson.loads(body)
        if not isinstance(resource, dict):
            raise FhirError(400, "structure", "The body must be a JSON object")
        return resource
    if fmt == "xml":
        return fxml.parse_resource(body)
    raise FhirError(415, "not-supported", f"Content-Type '{fmt}' is not a FHIR format (use application/fhir+json "
                                          "or application/fhir+xml)")


def binary_from_raw(media_type: str, body: bytes) -> dict:
    """A Binary resource wrapping raw bytes sent with their own content type."""
    resource = {"resourceType": "Binary", "contentType": media_type}
    if body:
        resource["data"] = base64.b64encode(body).decode("ascii")
    return resource
