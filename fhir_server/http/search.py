"""Type-level search (R4 search.html), for the parameters the index serves today."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.core.errors import FhirError, Issue, operation_outcome
from fhir_server.core.repository import Repository
from fhir_server.http.bundles import bundle, embedded, link, resource_url
from fhir_server.http.context import base_url, repo, settings
from fhir_server.http.negotiation import prefer
from fhir_server.http.paging import count_value, non_negative_value
from fhir_server.http.responses import Response, render


def _unsupported_entry(names: list[str]) -> dict:
    issue = Issue("not-supported", f"Parameters ignored (not supported): {', '.join(names)}", severity="warning")
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}


def searchset(repository: Repository, base: str, resource_type: str, params: list[tuple[str, str]],
              count: int, strict: bool) -> dict:
    """The searchset Bundle for ``params`` (shared by the search URL and search entries of a batch)."""
    offset = non_negative_value(dict(params).get("_offset"), "_offset") or 0
    result = repository.search(resource_type, params, count + 1, offset)
    if result.unsupported and strict:
        raise FhirError(400, "not-supported", f"Unsupported search parameters: {', '.join(result.unsupported)}")
    entries = [{"fullUrl": resource_url(base, r), "resource": embedded(r), "search": {"mode": "match"}}
               for r in result.records[:count]]
    if result.unsupported:
        entries.append(_unsupported_entry(result.unsupported))
    criteria = [(k, v) for k, v in params if k != "_offset"]
    url = f"{base}/{resource_type}"
    links = [link("self", url, [*criteria, ("_offset", str(offset))] if offset else criteria)]
    if len(result.records) > count:
        links.append(link("next", url, [*criteria, ("_offset", str(offset + count))]))
    if offset:
        links.append(link("previous", url, [*criteria, ("_offset", str(max(offset - count, 0)))]))
    return bundle("searchset", entries, links)


async def _search(request: Request, params: list[tuple[str, str]]) -> Response:
    count = count_value(dict(params).get("_count"), settings(request))
    found = searchset(repo(request), base_url(request), request.path_params["type"], params, count,
                      prefer(request).strict)
    return render(request, found)


async def search_get(request: Request) -> Response:
    return await _search(request, list(request.query_params.multi_items()))


async def search_post(request: Request) -> Response:
    """``POST [type]/_search`` with form-encoded parameters (and any in the URL)."""
    form = await request.form()
    params = [*request.query_params.multi_items(), *((k, str(v)) for k, v in form.multi_items())]
    return await _search(request, params)
