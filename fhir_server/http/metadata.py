"""``GET /metadata``: a CapabilityStatement generated from what the server really does."""

from __future__ import annotations

from functools import cache

from starlette.requests import Request

from fhir_server import __version__
from fhir_server.config import SUPPORTED_TYPES
from fhir_server.core.resources import now_instant
from fhir_server.http.context import base_url, settings
from fhir_server.http.responses import Response, render
from fhir_server.search.registry import on_reload, params_for

TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                     "create", "search-type")
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system", "search-system")


def _search_params(resource_type: str) -> list[dict]:
    """The parameters the index serves for this type, with their defining SearchParameter."""
    served = [p for p in params_for(resource_type).values() if p.indexed or p.code == "_id"]
    return [{"name": p.code, "type": p.type, "definition": p.url} for p in sorted(served, key=lambda p: p.code)]


#: Operations beyond the interactions, per type.
OPERATIONS = {"DocumentReference": [{
    "name": "import-cda", "definition": "https://mes-interop.org/fhir/OperationDefinition/DocumentReference-import-cda",
    "documentation": "POST the raw CI-SIS CDA R2 document (application/hl7-cda+xml): it is filed in the DMP "
                     "(patient by INS, DocumentReference, the original as a Binary); docs/api.md."}],
              "Communication": [{
    "name": "file-document",
    "definition": "https://mes-interop.org/fhir/OperationDefinition/Communication-file-document",
    "documentation": "POST Communication/{id}/$file-document with Parameters attachment (the Binary/… of the "
                     "payload) and, for an IHE XDM package of several documents, entry: the CDA document is filed in "
                     "the DMP of the message's patient; docs/api.md."}]}
#: Types read from the access-trace log: never written through the API, not versioned.
READ_ONLY = {"AuditEvent": ("read", "vread", "search-type")}
SECURITY = {
    "cors": False,
    "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                             "code": "SMART-on-FHIR"}]}],
    "description": "Bearer JWTs (RS256/ES256) with SMART on FHIR v1/v2 scopes and a fhirUser claim; the DMP "
                   "visibility rules and the patient's blocks apply to every interaction; every access to patient "
                   "data leaves an AuditEvent. See docs/security.md.",
}


def _resource(resource_type: str) -> dict:
    return {
        "type": resource_type,
        "interaction": [{"code": code} for code in READ_ONLY.get(resource_type, TYPE_INTERACTIONS)],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchInclude": ["*", *(f"{resource_type}:{p.code}" for p in _references(resource_type))],
        "searchRevInclude": sorted(f"{t}:{p.code}" for t in SUPPORTED_TYPES for p in _references(t)
                                   if resource_type in p.targets),
        "searchParam": _search_params(resource_type),
        **({"operation": OPERATIONS[resource_type]} if resource_type in OPERATIONS else {}),
    }


def _references(resource_type: str) -> list:
    return sorted((p for p in params_for(resource_type).values() if p.type == "reference" and p.indexed),
                  key=lambda p: p.code)


@cache
def capability_statement(base: str, secured: bool = False) -> dict:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now_instant()[:10],  # when this statement was generated (cached per process)
        "publisher": "MES interop server",
        "kind": "instance",
        "software": {"name": "mes-interop", "version": __version__},
        "implementation": {"description": "MES interoperability server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            **({"security": SECURITY} if secured else {}),
            "resource": [_resource(t) for t in SUPPORTED_TYPES],
            "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
        }],
    }


on_reload(capability_statement.cache_clear)  # it lists the search parameters


async def metadata(request: Request) -> Response:
    return render(request, capability_statement(base_url(request), settings(request).auth == "on"))
