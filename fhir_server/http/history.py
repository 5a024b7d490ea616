"""history at instance, type and system level (R4 http.html#history): newest first, stable pages."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.core.errors import not_found
from fhir_server.core.resources import normalise_instant
from fhir_server.http.bundles import bundle, embedded, link
from fhir_server.http.context import base_url, query_param, repo
from fhir_server.http.paging import non_negative, page_size
from fhir_server.http.responses import Response, etag, render
from fhir_server.store.base import Record

STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def _entry(base: str, record: Record) -> dict:
    url = f"{record.type}/{record.id}"
    entry: dict = {"fullUrl": f"{base}/{url}"}
    if not record.deleted:
        entry["resource"] = embedded(record)
    entry["request"] = {"method": record.method, "url": record.type if record.method == "POST" else url}
    entry["response"] = {"status": STATUS[record.method], "etag": etag(record.version),
                         "lastModified": record.last_updated}
    return entry


async def history(request: Request) -> Response:
    resource_type = request.path_params.get("type")
    resource_id = request.path_params.get("id")
    since_raw = query_param(request, "_since")
    since = normalise_instant(since_raw) if since_raw else None
    count = page_size(request)
    cursor = non_negative(request, "_cursor")
    rows = repo(request).history(resource_type, resource_id, since=since, before_seq=cursor, count=count + 1)
    if resource_id is not None and not rows and cursor is None and since is None:
        raise not_found(resource_type, resource_id)
    base = base_url(request)
    page = rows[:count]
    url = "/".join(p for p in (base, resource_type, resource_id, "_history") if p)
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "_cursor"]
    links = [link("self", url, list(request.query_params.multi_items()))]
    if len(rows) > count:
        links.append(link("next", url, [*params, ("_cursor", str(page[-1][0]))]))
    return render(request, bundle("history", [_entry(base, r) for _, r in page], links))
