"""Type-level search (R4 search.html): GET and POST _search, searchset Bundles, stable paging.

Unsorted results are ordered by id and paged by keyset (``_cursor`` = the last id of the page,
``_before`` = the first): a page never skips or repeats a resource that exists throughout,
whatever is written meanwhile. Sorted results page by ``_offset``.
"""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.core.errors import FhirError, Issue, operation_outcome
from fhir_server.core.repository import Repository
from fhir_server.http.bundles import bundle, embedded, link, resource_url
from fhir_server.http.context import base_url, repo, settings
from fhir_server.http.negotiation import prefer
from fhir_server.http.paging import count_value, non_negative_value
from fhir_server.http.responses import Response, render

PAGING_PARAMS = ("_cursor", "_before", "_offset")


def _unsupported_entry(names: list[str]) -> dict:
    issue = Issue("not-supported", f"Parameters ignored (not supported): {', '.join(names)}", severity="warning")
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}


def _links(url: str, criteria: list, records: list, more: bool, sorted_: bool, paging: dict) -> list[dict]:
    links = [link("self", url, [*criteria, *paging.items()])]
    if sorted_:
        offset = int(paging.get("_offset", 0))
        count = int(dict(criteria).get("_count", len(records)) or 0)
        if more:
            links.append(link("next", url, [*criteria, ("_offset", str(offset + len(records)))]))
        if offset:
            links.append(link("previous", url, [*criteria, ("_offset", str(max(offset - count, 0)))]))
        return links
    backwards = "_before" in paging
    if records and (more if not backwards else True):
        links.append(link("next", url, [*criteria, ("_cursor", records[-1].id)]))
    if records and (more if backwards else "_cursor" in paging):
        links.append(link("previous", url, [*criteria, ("_before", records[0].id)]))
    return links


def _capped_entry(cap: int) -> dict:
    issue = Issue("too-costly", f"Included resources were capped at {cap} (MES_MAX_INCLUDE)", severity="warning")
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}


def searchset(repository: Repository, base: str, resource_type: str, params: list[tuple[str, str]],
              count: int, strict: bool, include_cap: int) -> dict:
    """The searchset Bundle for ``params`` (shared by the search URL and search entries of Bundles)."""
    given = dict(params)
    paging = {k: given[k] for k in PAGING_PARAMS if k in given}
    offset = non_negative_value(paging.get("_offset"), "_offset") or 0
    result = repository.search(resource_type, params, count=count + 1, after_id=paging.get("_cursor"),
                               before_id=paging.get("_before"), offset=offset)
    plan = result.plan
    if plan.unsupported and strict:
        raise FhirError(400, "not-supported", f"Unsupported search parameters: {', '.join(plan.unsupported)}")
    more = len(result.records) > count
    records = result.records[1:] if more and "_before" in paging else result.records[:count]
    extra = repository.included(records, plan, include_cap)
    entries = [{"fullUrl": resource_url(base, r), "resource": embedded(r), "search": {"mode": mode}}
               for mode, group in (("match", records), ("include", extra.records)) for r in group]
    if plan.unsupported:
        entries.append(_unsupported_entry(plan.unsupported))
    if extra.capped:
        entries.append(_capped_entry(include_cap))
    criteria = [(k, v) for k, v in params if k not in PAGING_PARAMS]
    links = _links(f"{base}/{resource_type}", criteria, records, more, bool(plan.sort), paging)
    total = repository.count(resource_type, params) if given.get("_total") in ("accurate", "estimate") else None
    return bundle("searchset", entries, links, total)


async def _search(request: Request, params: list[tuple[str, str]]) -> Response:
    count = count_value(dict(params).get("_count"), settings(request))
    config = settings(request)
    found = searchset(repo(request), base_url(request), request.path_params["type"], params, count,
                      prefer(request).strict, config.max_include)
    return render(request, found)


async def search_get(request: Request) -> Response:
    return await _search(request, list(request.query_params.multi_items()))


async def search_post(request: Request) -> Response:
    """``POST [type]/_search`` with form-encoded parameters (and any in the URL)."""
    form = await request.form()
    params = [*request.query_params.multi_items(), *((k, str(v)) for k, v in form.multi_items())]
    return await _search(request, params)
