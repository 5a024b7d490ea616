"""read and vread (R4 http.html#read, #vread), with conditional read and raw Binary content."""

from __future__ import annotations

import base64
from datetime import datetime
from email.utils import parsedate_to_datetime

from starlette.requests import Request

from fhir_server.formats import json as fjson
from fhir_server.http.context import header, query_param, repo
from fhir_server.http.negotiation import FORMATS
from fhir_server.http.responses import Response, etag, http_date, render, render_record
from fhir_server.http.subsetting import requested, subset
from fhir_server.store.base import Record


def _not_modified(request: Request, record: Record) -> bool:
    """``If-None-Match`` / ``If-Modified-Since`` say the client's copy is current."""
    if_none_match = header(request, "if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")}
        return "*" in tags or str(record.version) in tags
    since = header(request, "if-modified-since")
    if since is not None:
        try:
            client = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        modified = datetime.fromisoformat(record.last_updated.replace("Z", "+00:00")).replace(microsecond=0)
        return client.tzinfo is not None and modified <= client
    return False


def _wants_raw_binary(request: Request) -> bool:
    """R4 binary.html: a read that does not ask for a FHIR format gets the content itself."""
    if query_param(request, "_format") is not None:
        return False
    accept = header(request, "accept") or "*/*"
    return not any(part.split(";")[0].strip().lower() in FORMATS for part in accept.split(","))


def _raw_binary(record: Record) -> Response:
    resource = fjson.loads(record.body)
    content = base64.b64decode(resource.get("data", ""))
    headers = {"ETag": etag(record.version), "Last-Modified": http_date(record.last_updated)}
    return Response(content, 200, headers, media_type=resource.get("contentType", "application/octet-stream"))


def _respond(request: Request, record: Record) -> Response:
    if _not_modified(request, record):
        return Response(status_code=304, headers={"ETag": etag(record.version)})
    if record.type == "Binary" and _wants_raw_binary(request):
        return _raw_binary(record)
    summary, elements = query_param(request, "_summary"), query_param(request, "_elements")
    if requested(summary, elements):
        headers = {"ETag": etag(record.version), "Last-Modified": http_date(record.last_updated)}
        return render(request, subset(record, summary, elements), 200, headers)
    return render_record(request, record)


async def read(request: Request) -> Response:
    p = request.path_params
    return _respond(request, repo(request).read(p["type"], p["id"]))


async def vread(request: Request) -> Response:
    p = request.path_params
    return _respond(request, repo(request).vread(p["type"], p["id"], p["vid"]))
