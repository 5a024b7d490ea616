"""``POST [base]/DocumentReference/$import-cda``: the door for practice software that only has a
CDA file. The raw document in; the DocumentReference filed for it out (201, or 200 with the one
filed earlier for the same document), or an OperationOutcome naming each problem by its XPath."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request

from fhir_server.core.errors import FhirError
from fhir_server.core.repository import WriteResult
from fhir_server.dmp.ingest import file_cda
from fhir_server.http.context import header, repo, settings
from fhir_server.http.negotiation import read_body
from fhir_server.http.responses import Response
from fhir_server.http.write import write_response

CDA_MEDIA_TYPES = ("application/hl7-cda+xml", "application/xml", "text/xml")


async def import_cda(request: Request) -> Response:
    media_type = (header(request, "content-type") or "").split(";")[0].strip().lower()
    if media_type not in CDA_MEDIA_TYPES:
        raise FhirError(415, "not-supported", f"$import-cda takes the raw CDA document as {', '.join(CDA_MEDIA_TYPES)}"
                        f" (not '{media_type or 'no Content-Type'}')")
    config = settings(request)
    body = await read_body(request, config.max_body_bytes)
    filed = file_cda(repo(request), body, create_patients=config.cda_unknown_patients == "create",
                     xsd=Path(config.cda_xsd) if config.cda_xsd else None,
                     sch=Path(config.cda_schematron) if config.cda_schematron else None)
    return write_response(request, WriteResult(201 if filed.created else 200, filed.document))
