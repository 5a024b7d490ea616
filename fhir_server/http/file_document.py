"""``POST [base]/Communication/{id}/$file-document``: a patient files an attachment of an inbox
message (a CDA document, or one inside an IHE XDM package) into their DMP. In: a Parameters
resource — ``attachment`` (the ``Binary/…`` the payload names) and, for a package of several
documents, ``entry`` (the document's path in the ZIP). Out: the DocumentReference filed (201), or
the one filed earlier for the same document (200); docs/api.md."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.core.errors import FhirError
from fhir_server.core.repository import WriteResult
from fhir_server.http.context import repo, settings
from fhir_server.http.negotiation import body_format, parse_resource, read_body
from fhir_server.http.responses import Response
from fhir_server.http.write import write_response
from fhir_server.inbox.filing import file_attachment


async def file_document(request: Request) -> Response:
    body = await read_body(request, settings(request).max_body_bytes)
    parameters = parse_resource(body_format(request, body), body)
    if parameters.get("resourceType") != "Parameters":
        raise FhirError(400, "structure", "$file-document takes a Parameters resource (attachment, entry)")
    attachment = _value(parameters, "attachment")
    if not attachment:
        raise FhirError(400, "required", "$file-document needs the attachment parameter: the Binary/… of the payload")
    filed = file_attachment(repo(request), request.path_params["id"], attachment, _value(parameters, "entry"))
    return write_response(request, WriteResult(201 if filed.created else 200, filed.document))


def _value(parameters: dict, name: str) -> str | None:
    """A parameter given as a string or a reference."""
    for parameter in parameters.get("parameter", ()):
        if parameter.get("name") == name:
            return parameter.get("valueString") or (parameter.get("valueReference") or {}).get("reference")
    return None
