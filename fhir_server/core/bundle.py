"""transaction and batch Bundles (R4 http.html#transaction).

A transaction is one unit of work: ids are assigned and conditional references resolved
first, every reference to an entry's ``fullUrl`` is rewritten, then entries run in the
spec's order (DELETE, POST, PUT/PATCH, then GET after commit). Any failure rolls back all.
A batch runs each entry in its own unit and reports each outcome.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import orjson

from fhir_server.core.errors import FhirError, operation_outcome
from fhir_server.core.repository import Repository, Writer, WriteResult
from fhir_server.core.resources import check_type, etag, etag_version, new_id
from fhir_server.formats import json as fjson
from fhir_server.store.base import Record

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
REASONS = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class Entry:
    index: int
    method: str
    type: str
    id: str | None
    query: str
    version: str | None
    resource: dict | None
    full_url: str | None
    if_match: int | None
    if_none_exist: str | None
    target_id: str | None = None  # id assigned or matched before execution
    matched: bool = False  # a conditional create that found its resource
    result: WriteResult | None = field(default=None, repr=False)


def _fail(index: int, message: str, status: int = 400) -> FhirError:
    return FhirError(status, "invalid", message, [f"Bundle.entry[{index}]"])


def _parse_url(index: int, url: str, base: str) -> tuple[str, str | None, str, str | None]:
    """(type, id, query, version) of an entry's request.url (relative, or absolute on our base)."""
    if url.startswith(base + "/"):
        url = url[len(base) + 1:]
    path, _, query = url.partition("?")
    parts = path.strip("/").split("/")
    if len(parts) == 1:
        return parts[0], None, query, None
    if len(parts) == 2:
        return parts[0], parts[1], query, None
    if len(parts) == 4 and parts[2] == "_history":
        return parts[0], parts[1], query, parts[3]
    raise _fail(index, f"request.url '{url}' is not Type, Type/id or Type?criteria")


def _entry(index: int, raw: dict, base: str) -> Entry:
    request = raw.get("request") if isinstance(raw, dict) else None
    if not isinstance(request, dict) or not request.get("method") or not request.get("url"):
        raise _fail(index, "Each entry needs request.method and request.url")
    for name in ("method", "url", "ifNoneExist", "ifMatch"):
        if name in request and not isinstance(request[name], str):
            raise _fail(index, f"request.{name} must be a string")
    if "fullUrl" in raw and not isinstance(raw["fullUrl"], str):
        raise _fail(index, "fullUrl must be a string")
    method = request["method"]
    if method not in ORDER:
        raise _fail(index, f"request.method '{method}' is not supported")
    type_, id_, query, version = _parse_url(index, request["url"], base)
    resource = raw.get("resource")
    if method in ("POST", "PUT", "PATCH") and not isinstance(resource, dict):
        raise _fail(index, f"A {method} entry needs a resource")
    if method in ("POST", "PUT") and resource.get("resourceType") != type_:
        raise _fail(index, f"resourceType '{resource.get('resourceType')}' does not match request.url '{type_}'")
    if_match = etag_version(request.get("ifMatch"), f"Bundle.entry[{index}].request.ifMatch")
    return Entry(index, method, type_, id_, query, version, resource, raw.get("fullUrl"), if_match,
                 request.get("ifNoneExist"))


def parse_entries(bundle: dict, expected_type: str, base: str, limit: int) -> list[Entry]:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirError(400, "structure", "Bundle.entry must be an array", ["Bundle.entry"])
    if len(entries) > limit:
        raise FhirError(413, "too-costly", f"Bundle has {len(entries)} entries; the limit is {limit}")
    parsed = [_entry(i, raw, base) for i, raw in enumerate(entries)]
    if expected_type == "transaction":
        _check_unique(parsed)
    return parsed


def _check_unique(entries: list[Entry]) -> None:
    """R4: a transaction may not touch the same resource twice, nor repeat a fullUrl."""
    seen_urls, seen_targets = set(), set()
    for e in entries:
        if e.full_url:
            if e.full_url in seen_urls:
                raise _fail(e.index, f"fullUrl '{e.full_url}' appears twice")
            seen_urls.add(e.full_url)
        if e.method in ("PUT", "DELETE", "PATCH") and e.id:
            key = (e.type, e.id)
            if key in seen_targets:
                raise _fail(e.index, f"{e.type}/{e.id} is modified by two entries")
            seen_targets.add(key)


# -- transaction ---------------------------------------------------------------------------


def _assign_targets(writer: Writer, entries: list[Entry]) -> dict[str, str]:
    """Decide every created/updated id up front; returns fullUrl → new relative reference."""
    mapping: dict[str, str] = {}
    for e in entries:
        try:
            _assign_target(writer, e)
        except FhirError as error:
            raise _located(error, e.index) from None
        if e.full_url and e.target_id and e.method in ("POST", "PUT"):
            mapping[e.full_url] = f"{e.type}/{e.target_id}"
    return mapping


def _assign_target(writer: Writer, e: Entry) -> None:
    """Fix the id a POST or PUT entry will write before anything runs."""
    if e.method == "POST":
        check_type(e.type)
        existing = writer.existing_match(e.type, e.if_none_exist) if e.if_none_exist else None
        e.matched = existing is not None
        e.target_id = existing or new_id()
    elif e.method == "PUT" and e.id is None:
        e.target_id = writer.conditional_target(e.type, e.query, e.resource.get("id")) or new_id()
        e.resource = {**e.resource, "id": e.target_id}
    else:
        e.target_id = e.id


def _rewrite(value, mapping: dict[str, str], writer: Writer):
    """Replace every string equal to a mapped fullUrl, and resolve conditional references."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and "?" in item and not item.startswith("#"):
                out[key] = writer.resolve_reference(item)
            else:
                out[key] = _rewrite(item, mapping, writer)
        return out
    if isinstance(value, list):
        return [_rewrite(item, mapping, writer) for item in value]
    if isinstance(value, str):
        return mapping.get(value, value)
    return value


def _patch_document(e: Entry) -> tuple[str, object]:
    """A PATCH entry carries a Parameters (FHIRPath Patch) or a Binary holding a JSON Patch."""
    if e.resource.get("resourceType") == "Parameters":
        return "fhirpath-patch", e.resource
    if e.resource.get("resourceType") == "Binary" and "json-patch" in e.resource.get("contentType", ""):
        return "json-patch", fjson.loads(base64.b64decode(e.resource.get("data", "")))
    raise _fail(e.index, "A PATCH entry needs a Parameters or a Binary with a JSON Patch")


def _execute(writer: Writer, e: Entry) -> WriteResult:
    if e.method == "DELETE":
        if e.id is None:  # conditional delete
            return writer.conditional_delete(e.type, e.query)
        return writer.delete(e.type, e.id, e.if_match)
    if e.method == "POST":
        if e.matched:
            return WriteResult(200, writer.read_current(e.type, e.target_id))
        return writer.create(e.type, e.resource, resource_id=e.target_id)
    if e.method == "PUT":
        return writer.update(e.type, e.target_id, e.resource, e.if_match)
    kind, document = _patch_document(e)
    return writer.patch(e.type, e.target_id, kind, document, e.if_match)


def _located(error: FhirError, index: int) -> FhirError:
    for issue in error.issues:
        issue.expression = issue.expression or [f"Bundle.entry[{index}]"]
        issue.diagnostics = f"Bundle.entry[{index}]: {issue.diagnostics}"
    return error


def run_transaction(repo: Repository, entries: list[Entry]) -> None:
    """Run all writes in one unit of work; GET entries are answered afterwards by the caller.

    DELETEs run first, so conditional creates and references resolved next see their effect.
    """
    by_order = sorted(entries, key=lambda x: ORDER[x.method])
    with repo.writer() as writer:
        for e in (e for e in by_order if e.method == "DELETE"):
            _run_entry(writer, e)
        mapping = _assign_targets(writer, [e for e in entries if e.method in ("POST", "PUT", "PATCH")])
        for e in entries:
            if e.method in ("POST", "PUT", "PATCH"):
                try:
                    e.resource = _rewrite(e.resource, mapping, writer)
                except FhirError as error:
                    raise _located(error, e.index) from None
        for e in (e for e in by_order if e.method in ("POST", "PUT", "PATCH")):
            _run_entry(writer, e)


def _run_entry(writer: Writer, e: Entry) -> None:
    try:
        e.result = _execute(writer, e)
    except FhirError as error:
        raise _located(error, e.index) from None


def run_batch_entry(repo: Repository, e: Entry) -> None:
    with repo.writer() as writer:
        if e.method == "PUT" and e.id is None:
            e.result = writer.conditional_update(e.type, e.query, e.resource, e.if_match)
        elif e.method == "POST":
            e.result = writer.create(e.type, e.resource, e.if_none_exist)
        else:
            e.target_id = e.id
            e.result = _execute(writer, e)


# -- responses -----------------------------------------------------------------------------


def write_response(result: WriteResult, with_resource: bool) -> dict:
    record = result.record
    response: dict = {"status": REASONS[result.status]}
    entry: dict = {"response": response}
    if record is not None:
        response["etag"] = etag(record.version)
        response["lastModified"] = record.last_updated
        if not record.deleted:
            response["location"] = f"{record.type}/{record.id}/_history/{record.version}"
            if with_resource:
                entry["resource"] = orjson.Fragment(record.body)
    return entry


def read_response(record: Record) -> dict:
    return {"resource": orjson.Fragment(record.body),
            "response": {"status": "200 OK", "etag": etag(record.version), "lastModified": record.last_updated}}


def error_response(error: FhirError) -> dict:
    return {"response": {"status": str(error.status), "outcome": operation_outcome(error.issues)}}


def failed_entry(index: int, error: Exception) -> FhirError:
    if isinstance(error, FhirError):
        return _located(error, index)
    return FhirError(500, "exception", f"Bundle.entry[{index}]: {error}")


def query_params(e: Entry) -> list[tuple[str, str]]:
    return parse_qsl(e.query, keep_blank_values=True)

