"""``POST [base]`` with a transaction or batch Bundle; the processing itself is in core/bundle.py."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.core import bundle as processing
from fhir_server.core.errors import FhirError
from fhir_server.dmp.publish import check_provide_bundle, is_provide_bundle
from fhir_server.http.context import base_url, repo, settings
from fhir_server.http.negotiation import body_format, parse_resource, prefer, read_body
from fhir_server.http.paging import count_value
from fhir_server.http.responses import Response, render
from fhir_server.http.search import searchset


def _read_entry(request: Request, e: processing.Entry) -> dict:
    """GET entries: read, vread, or a search answered with a searchset Bundle."""
    repository = repo(request)
    if e.id is None:
        params = processing.query_params(e)
        config = settings(request)
        count = count_value(dict(params).get("_count"), config)
        found = searchset(repository, base_url(request), e.type, params, count, strict=False,
                          include_cap=config.max_include)
        return {"resource": found, "response": {"status": "200 OK"}}
    record = repository.vread(e.type, e.id, e.version) if e.version else repository.read(e.type, e.id)
    return processing.read_response(record)


def _transaction(request: Request, entries: list[processing.Entry], with_resource: bool) -> list[dict]:
    """The writes commit together; GET entries are answered after, each on its own: a read that
    fails then (not found, hidden, not allowed) is that entry's error, not the transaction's, whose
    writes are already committed."""
    processing.run_transaction(repo(request), entries)
    return [processing.write_response(e.result, with_resource) if e.result is not None
            else _answered(request, e) for e in entries]


def _answered(request: Request, e: processing.Entry) -> dict:
    try:
        return _read_entry(request, e)
    except FhirError as error:
        return processing.error_response(processing.failed_entry(e.index, error))


def _batch(request: Request, entries: list[processing.Entry], with_resource: bool) -> list[dict]:
    out = []
    for e in entries:
        if e.method in ("GET", "HEAD"):
            out.append(_answered(request, e))
            continue
        try:
            processing.run_batch_entry(repo(request), e)
            out.append(processing.write_response(e.result, with_resource))
        except FhirError as error:
            out.append(processing.error_response(processing.failed_entry(e.index, error)))
    return out


async def transaction_or_batch(request: Request) -> Response:
    body = await read_body(request, settings(request).max_body_bytes)
    bundle = parse_resource(body_format(request, body), body)
    kind = bundle.get("type")
    if bundle.get("resourceType") != "Bundle" or kind not in ("transaction", "batch"):
        raise FhirError(400, "invalid", "POST to the base takes a Bundle of type transaction or batch",
                        ["Bundle.type"])
    entries = processing.parse_entries(bundle, kind, base_url(request), settings(request).max_bundle_entries)
    if kind == "transaction" and is_provide_bundle(bundle):  # well-formed entries, checked by parse_entries
        check_provide_bundle(bundle)  # PDSm ITI-65: documents describe their Binaries, subjects named by INS
    with_resource = prefer(request).return_ == "representation"
    run = _transaction if kind == "transaction" else _batch
    response_entries = run(request, entries, with_resource)
    return render(request, {"resourceType": "Bundle", "type": f"{kind}-response", "entry": response_entries})
