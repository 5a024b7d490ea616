"""Type-level search (R4 search.html), for the parameters the index serves today."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.core.errors import FhirError, Issue, operation_outcome
from fhir_server.http.bundles import bundle, embedded, link, resource_url
from fhir_server.http.context import base_url, repo
from fhir_server.http.negotiation import prefer
from fhir_server.http.paging import non_negative, page_size
from fhir_server.http.responses import Response, render


def _unsupported_entry(names: list[str]) -> dict:
    issue = Issue("not-supported", f"Parameters ignored (not supported): {', '.join(names)}", severity="warning")
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}


async def _search(request: Request, params: list[tuple[str, str]]) -> Response:
    resource_type = request.path_params["type"]
    count = page_size(request)
    offset = non_negative(request, "_offset") or 0
    result = repo(request).search(resource_type, params, count + 1, offset)
    if result.unsupported and prefer(request).strict:
        raise FhirError(400, "not-supported", f"Unsupported search parameters: {', '.join(result.unsupported)}")
    base = base_url(request)
    records = result.records[:count]
    entries = [{"fullUrl": resource_url(base, r), "resource": embedded(r), "search": {"mode": "match"}}
               for r in records]
    if result.unsupported:
        entries.append(_unsupported_entry(result.unsupported))
    criteria = [(k, v) for k, v in params if k != "_offset"]
    url = f"{base}/{resource_type}"
    links = [link("self", url, [*criteria, ("_offset", str(offset))] if offset else criteria)]
    if len(result.records) > count:
        links.append(link("next", url, [*criteria, ("_offset", str(offset + count))]))
    if offset:
        links.append(link("previous", url, [*criteria, ("_offset", str(max(offset - count, 0)))]))
    return render(request, bundle("searchset", entries, links))


async def search_get(request: Request) -> Response:
    return await _search(request, list(request.query_params.multi_items()))


async def search_post(request: Request) -> Response:
    """``POST [type]/_search`` with form-encoded parameters (and any in the URL)."""
    form = await request.form()
    params = [*request.query_params.multi_items(), *((k, str(v)) for k, v in form.multi_items())]
    return await _search(request, params)
