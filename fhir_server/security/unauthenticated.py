"""Requests refused before anyone is known (401) are denied attempts too: traced, with the agent
``client:unauthenticated`` and the caller's address, in the trail of the patient whose data the
URL names (a read, update or delete of one resource), or with no patient (a search, a create:
system auditors see those). What is refused is read with no one's rights and never answered."""

from __future__ import annotations

import re

from fhir_server.config import SUPPORTED_TYPES
from fhir_server.core.repository import Repository
from fhir_server.security.audit import DENIED, AuditRecorder
from fhir_server.security.policy import Access
from fhir_server.security.tokens import Principal

ANONYMOUS = Access(Principal("system", None, "unauthenticated", "unauthenticated", ()))
ON_ONE = {"GET": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
ON_TYPE = {"GET": "search-type", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def refused_before_authentication(repository: Repository, method: str, params: dict[str, str], address: str | None,
                                  reason: str) -> AuditRecorder:
    recorder = AuditRecorder(ANONYMOUS, address)
    resource_type, resource_id = params.get("type"), params.get("id")
    if resource_type not in SUPPORTED_TYPES or resource_type == "AuditEvent":
        return recorder
    detail = f"401: {reason}"
    if resource_id is None or not ID.fullmatch(resource_id):
        recorder.refused(ON_TYPE.get(method, "read"), resource_type, detail)
        return recorder
    record = repository.store.read(resource_type, resource_id)
    interaction = ON_ONE.get(method, "read")
    if record is None or record.deleted:
        recorder.refused(interaction, f"{resource_type}/{resource_id}", detail)
    else:
        recorder.records(interaction, [record], repository.store, repository.local_base, outcome=DENIED,
                         detail=detail)
    return recorder
