"""create, update, patch, delete and their conditional forms (R4 http.html)."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.core.errors import FhirError
from fhir_server.core.repository import WriteResult
from fhir_server.dmp.publish import is_simplified_publish, publish_simplified
from fhir_server.formats import json as fjson
from fhir_server.http.context import base_url, header, if_match_version, repo, settings
from fhir_server.http.negotiation import FORMATS, binary_from_raw, body_format, parse_resource, prefer, read_body
from fhir_server.http.responses import Response, etag, http_date, informational, render_record

STATUS_TEXT = {200: "updated", 201: "created"}


async def _resource_from_request(request: Request, resource_type: str) -> dict:
    body = await read_body(request, settings(request).max_body_bytes)
    fmt = body_format(request, body)
    if resource_type == "Binary" and fmt not in FORMATS.values():
        return binary_from_raw(fmt, body)
    return parse_resource(fmt, body)


def _location(request: Request, result: WriteResult) -> str:
    record = result.record
    return f"{base_url(request)}/{record.type}/{record.id}/_history/{record.version}"


def write_response(request: Request, result: WriteResult) -> Response:
    """The response to a create/update/patch, shaped by ``Prefer: return=``."""
    record = result.record
    headers = {"ETag": etag(record.version), "Last-Modified": http_date(record.last_updated),
               "Location": _location(request, result)}
    wanted = prefer(request).return_
    if wanted == "minimal":
        return Response(status_code=result.status, headers=headers)
    if wanted == "OperationOutcome":
        verb = STATUS_TEXT.get(result.status, "matched")
        return informational(request, f"{record.type}/{record.id} {verb} (version {record.version})",
                             result.status, headers)
    return render_record(request, record, result.status, headers)


async def create(request: Request) -> Response:
    resource_type = request.path_params["type"]
    resource = await _resource_from_request(request, resource_type)
    with repo(request).writer() as writer:
        if is_simplified_publish(resource):  # PDSm ITI-105: the document inline, kept as a Binary
            result = publish_simplified(writer, resource)
        else:
            result = writer.create(resource_type, resource, header(request, "if-none-exist"))
    return write_response(request, result)


async def update(request: Request) -> Response:
    p = request.path_params
    resource = await _resource_from_request(request, p["type"])
    if p["type"] == "Binary" and "id" not in resource:
        resource["id"] = p["id"]
    with repo(request).writer() as writer:
        result = writer.update(p["type"], p["id"], resource, if_match_version(request))
    return write_response(request, result)


async def conditional_update(request: Request) -> Response:
    resource_type = request.path_params["type"]
    resource = await _resource_from_request(request, resource_type)
    with repo(request).writer() as writer:
        result = writer.conditional_update(resource_type, request.url.query, resource, if_match_version(request))
    return write_response(request, result)


def _delete_response(request: Request, result: WriteResult) -> Response:
    headers = {"ETag": etag(result.record.version)} if result.record else {}
    if prefer(request).return_ == "OperationOutcome":
        message = "deleted" if result.record else "nothing to delete"
        return informational(request, message, 200, headers)
    return Response(status_code=204, headers=headers)


async def delete(request: Request) -> Response:
    p = request.path_params
    with repo(request).writer() as writer:
        result = writer.delete(p["type"], p["id"], if_match_version(request))
    return _delete_response(request, result)


async def conditional_delete(request: Request) -> Response:
    with repo(request).writer() as writer:
        result = writer.conditional_delete(request.path_params["type"], request.url.query)
    return _delete_response(request, result)


async def _patch_document(request: Request) -> tuple[str, object]:
    """("json-patch", operations) or ("fhirpath-patch", a Parameters) from the request body."""
    body = await read_body(request, settings(request).max_body_bytes)
    fmt = body_format(request, body)
    if fmt == "json-patch":
        document = fjson.loads(body)
        if not isinstance(document, list):
            raise FhirError(400, "structure", "A JSON Patch document is an array of operations")
        return "json-patch", document
    document = parse_resource(fmt, body)
    if document.get("resourceType") != "Parameters":
        raise FhirError(415, "not-supported", "PATCH takes application/json-patch+json or a FHIRPath Patch "
                                              "Parameters resource")
    return "fhirpath-patch", document


async def patch(request: Request) -> Response:
    """JSON Patch (``application/json-patch+json``) or FHIRPath Patch (a Parameters body)."""
    p = request.path_params
    kind, document = await _patch_document(request)
    with repo(request).writer() as writer:
        result = writer.patch(p["type"], p["id"], kind, document, if_match_version(request))
    return write_response(request, result)


async def conditional_patch(request: Request) -> Response:
    """``PATCH [type]?criteria``: PDSm's metadata update names the document by its identifier."""
    kind, document = await _patch_document(request)
    with repo(request).writer() as writer:
        result = writer.conditional_patch(request.path_params["type"], request.url.query, kind, document,
                                          if_match_version(request))
    return write_response(request, result)
