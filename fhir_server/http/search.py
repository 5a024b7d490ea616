"""Type-level search (R4 search.html): GET and POST _search, searchset Bundles, stable paging.

Pages are keyset positions (``_cursor`` = the sort values and id of the page's last entry,
``_before`` = of its first): a page never skips or repeats a resource that exists throughout,
whatever is written meanwhile, sorted or not.
"""

from __future__ import annotations

import base64
import binascii

import orjson
from starlette.requests import Request

from fhir_server.config import SUPPORTED_TYPES
from fhir_server.core.errors import FhirError, Issue, operation_outcome
from fhir_server.core.repository import Repository
from fhir_server.core.resources import check_id, check_type
from fhir_server.http.bundles import bundle, embedded, link, resource_url
from fhir_server.http.context import base_url, repo, settings
from fhir_server.http.negotiation import prefer
from fhir_server.http.paging import count_value
from fhir_server.http.responses import Response, render
from fhir_server.http.subsetting import requested, subset
from fhir_server.search.compartment import compartment_clause
from fhir_server.store.query import Clause

PAGING_PARAMS = ("_cursor", "_before")


def encode_position(position: tuple) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode("ascii").rstrip("=")


def decode_position(raw: str | None, name: str) -> tuple | None:
    if raw is None:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise FhirError(400, "invalid", f"{name} '{raw[:40]}' is not a page position from this server") from None
    if not isinstance(value, list) or not value or not all(_plain(v) for v in value):
        raise FhirError(400, "invalid", f"{name} '{raw[:40]}' is not a page position from this server")
    return tuple(value)


def _plain(value) -> bool:
    """A value a position may hold: text, a number SQLite can bind, or nothing."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return True
    return isinstance(value, int) and -2**63 <= value < 2**63


def _unsupported_entry(names: list[str]) -> dict:
    issue = Issue("not-supported", f"Parameters ignored (not supported): {', '.join(names)}", severity="warning")
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}


def _links(url: str, criteria: list, positions: list[tuple], more: bool, paging: dict) -> list[dict]:
    """self, and next/previous as keyset positions: stable whatever is written between pages."""
    links = [link("self", url, [*criteria, *paging.items()])]
    if not positions:
        return links
    backwards = "_before" in paging
    if more or backwards:
        links.append(link("next", url, [*criteria, ("_cursor", encode_position(positions[-1]))]))
    if (more if backwards else "_cursor" in paging):
        links.append(link("previous", url, [*criteria, ("_before", encode_position(positions[0]))]))
    return links


def _capped_entry(cap: int) -> dict:
    issue = Issue("too-costly", f"Included resources were capped at {cap} (MES_MAX_INCLUDE)", severity="warning")
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}


def searchset(repository: Repository, base: str, resource_type: str, params: list[tuple[str, str]],
              count: int, strict: bool, include_cap: int, within: tuple[Clause, ...] = (),
              url: str | None = None) -> dict:
    """The searchset Bundle for ``params`` (shared by the search URL, compartments and Bundle entries)."""
    given = dict(params)
    paging = {k: given[k] for k in PAGING_PARAMS if k in given}
    summary, elements = given.get("_summary"), given.get("_elements")
    counting = summary == "count"  # no page to fetch (nor to trace): only the plan and the count
    result = repository.search(resource_type, params, count=0 if counting else count + 1,
                               after=decode_position(paging.get("_cursor"), "_cursor"),
                               before=decode_position(paging.get("_before"), "_before"), within=within)
    plan = result.plan
    if plan.unsupported and strict:
        raise FhirError(400, "not-supported", f"Unsupported search parameters: {', '.join(plan.unsupported)}")
    more = len(result.records) > count
    window = slice(1, None) if more and "_before" in paging else slice(0, count)
    records, positions = result.records[window], result.positions[window]
    if counting:
        return bundle("searchset", [], [], repository.count(resource_type, params, within))
    shape = (lambda r: subset(r, summary, elements)) if requested(summary, elements) else embedded
    extra = repository.included(records, plan, include_cap)
    entries = [{"fullUrl": resource_url(base, r), "resource": shape(r), "search": {"mode": mode}}
               for mode, group in (("match", records), ("include", extra.records)) for r in group]
    if plan.unsupported:
        entries.append(_unsupported_entry(plan.unsupported))
    if extra.capped:
        entries.append(_capped_entry(include_cap))
    criteria = [(k, v) for k, v in params if k not in PAGING_PARAMS]
    links = _links(url or f"{base}/{resource_type}", criteria, positions, more, paging)
    total = repository.count(resource_type, params, within) if given.get("_total") in ("accurate", "estimate") \
        else None
    return bundle("searchset", entries, links, total)


async def _search(request: Request, params: list[tuple[str, str]], within: tuple[Clause, ...] = (),
                  url: str | None = None) -> Response:
    config = settings(request)
    count = count_value(dict(params).get("_count"), config)
    found = searchset(repo(request), base_url(request), check_type(request.path_params["type"]), params, count,
                      prefer(request).strict, config.max_include, within, url)
    return render(request, found)


async def compartment_search(request: Request) -> Response:
    """``GET Patient/[id]/[type]?…``: the search limited to the patient's compartment."""
    p = request.path_params
    within = (compartment_clause(p["compartment"], check_id(p["cid"]), check_type(p["type"])),)
    url = f"{base_url(request)}/{p['compartment']}/{p['cid']}/{p['type']}"
    return await _search(request, list(request.query_params.multi_items()), within, url)


async def search_get(request: Request) -> Response:
    return await _search(request, list(request.query_params.multi_items()))


async def search_post(request: Request) -> Response:
    """``POST [type]/_search`` with form-encoded parameters (and any in the URL)."""
    form = await request.form()
    params = [*request.query_params.multi_items(), *((k, str(v)) for k, v in form.multi_items())]
    return await _search(request, params)


def _system_page(repository: Repository, types: list[str], params: list[tuple[str, str]], count: int,
                 cursor: tuple | None) -> tuple[list, list[str], tuple | None]:
    """Matches across types, type after type, starting after ``cursor`` = (type, *position).

    Returns the records, the unsupported parameters and the cursor of the next page (None: last).
    """
    start_type, *start = cursor or (types[0],)
    if start_type not in types:
        raise FhirError(400, "invalid", "_cursor is not a page position of this search (was _type changed?)")
    records, positions, unsupported = [], [], []
    for resource_type in types[types.index(start_type):]:
        after = tuple(start) if cursor and resource_type == start_type else None
        result = repository.search(resource_type, params, count=count + 1 - len(records), after=after)
        unsupported += [f"{resource_type}:{name}" for name in result.plan.unsupported]
        records += result.records
        positions += [(resource_type, *p) for p in result.positions]
        if len(records) > count:
            return records[:count], unsupported, positions[count - 1]
    return records, unsupported, None


async def system_search(request: Request) -> Response:
    """``GET [base]?_type=A,B&…``: one search over several types (all types without ``_type``)."""
    config = settings(request)
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("_type", "_cursor", "_sort")]
    wanted = request.query_params.get("_type")
    types = [check_type(t) for t in wanted.split(",")] if wanted else list(SUPPORTED_TYPES)
    count = count_value(request.query_params.get("_count"), config)
    cursor = decode_position(request.query_params.get("_cursor"), "_cursor")
    records, unsupported, following = _system_page(repo(request), types, params, count, cursor)
    if "_sort" in request.query_params:
        unsupported.append("_sort (across types)")
    if unsupported and prefer(request).strict:
        raise FhirError(400, "not-supported", f"Unsupported search parameters: {', '.join(unsupported)}")
    base = base_url(request)
    entries = [{"fullUrl": resource_url(base, r), "resource": embedded(r), "search": {"mode": "match"}}
               for r in records]
    if unsupported:
        entries.append(_unsupported_entry(unsupported))
    criteria = [(k, v) for k, v in request.query_params.multi_items() if k != "_cursor"]
    links = [link("self", base, list(request.query_params.multi_items()))]
    if following:
        links.append(link("next", base, [*criteria, ("_cursor", encode_position(following))]))
    return render(request, bundle("searchset", entries, links))
