"""Publishing documents the PDSm (IHE MHD) way, with the checks PDSm adds.

ITI-65 (Provide Document Bundle): a transaction with a SubmissionSet List, DocumentReferences and
their Binaries; each DocumentReference's attachment must say the size and SHA-1 hash of the
Binary it points to, and its subject must be the patient named by INS.

ITI-105 (Simplified Publish): a DocumentReference with the document inline in
``attachment.data``; the server keeps the bytes as a Binary, points the attachment at it with
their size and hash, and resolves a subject given as ``Patient?identifier=<INS system>|<INS>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from fhir_server.core.errors import FhirError, Issue
from fhir_server.core.repository import Writer, WriteResult
from fhir_server.core.resources import new_id
from fhir_server.core.validation import validate_resource
from fhir_server.french.ins import INS_SYSTEMS

PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
PROVIDE_BUNDLE = PDSM + "pdsm-comprehensive-provide-document-bundle"
SUBMISSION_SET = PDSM + "pdsm-submissionset-comprehensive"
SIMPLIFIED_PUBLISH = (PDSM + "pdsm-simplified-publish",
                      "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.SimplifiedPublish.DocumentReference")
COMPREHENSIVE = PDSM + "pdsm-comprehensive-document-reference"


def _profiles(resource: dict) -> list[str]:
    return (resource.get("meta") or {}).get("profile", [])


# -- ITI-65 --------------------------------------------------------------------------------------

def is_provide_bundle(bundle: dict) -> bool:
    """A PDSm/MHD provide bundle: so declared, or carrying a SubmissionSet List."""
    return PROVIDE_BUNDLE in _profiles(bundle) or any(
        SUBMISSION_SET in _profiles(e.get("resource") or {}) for e in bundle.get("entry", []))


def check_provide_bundle(bundle: dict) -> None:
    """Refuse (422) a provide bundle whose documents do not describe their Binaries, or whose
    subjects are not named by INS; every problem in one OperationOutcome."""
    entries = bundle.get("entry", [])
    binaries = {e.get("fullUrl"): e.get("resource") for e in entries
                if (e.get("resource") or {}).get("resourceType") == "Binary"}
    patients = {e.get("fullUrl"): e.get("resource") for e in entries
                if (e.get("resource") or {}).get("resourceType") == "Patient"}
    issues = []
    for n, entry in enumerate(entries):
        document = entry.get("resource") or {}
        if document.get("resourceType") != "DocumentReference":
            continue
        where = f"Bundle.entry[{n}].resource"
        issues += _subject_issues(document, patients, where)
        for c, content in enumerate(document.get("content", [])):
            attachment = content.get("attachment", {})
            binary = binaries.get(attachment.get("url"))
            if binary is not None:
                issues += _described(attachment, _bytes(binary), f"{where}.content[{c}].attachment")
    if issues:
        raise FhirError(422, issues[0].code, issues[0].diagnostics, issues=issues)


def _subject_issues(document: dict, patients: dict, where: str) -> list[Issue]:
    reference = (document.get("subject") or {}).get("reference", "")
    if reference.startswith("Patient?identifier="):
        system = reference.removeprefix("Patient?identifier=").partition("|")[0]
        if system in INS_SYSTEMS:
            return []
    elif reference in patients and _has_ins(patients[reference]):
        return []
    elif reference.startswith("Patient/"):
        return []  # a patient of this server: the INS was checked when it was registered
    return [Issue("business-rule", f"The document's subject must be the patient named by INS ({reference or 'none'})",
                  [f"{where}.subject"], dmp_code="903")]


def _has_ins(patient: dict) -> bool:
    return any(i.get("system") in INS_SYSTEMS for i in patient.get("identifier", []))


def _described(attachment: dict, data: bytes | None, where: str) -> list[Issue]:
    if data is None:
        return [Issue("invalid", "The Binary's data is not valid base64", [where])]
    issues = []
    if attachment.get("size") != len(data):
        issues.append(Issue("business-rule", f"attachment.size is {attachment.get('size')}, the Binary has"
                            f" {len(data)} bytes", [f"{where}.size"]))
    if attachment.get("hash") != _sha1(data):
        issues.append(Issue("business-rule", "attachment.hash is not the SHA-1 of the Binary's bytes"
                            f" (expected {_sha1(data)})", [f"{where}.hash"]))
    return issues


# -- ITI-105 -------------------------------------------------------------------------------------

def is_simplified_publish(resource: dict) -> bool:
    return resource.get("resourceType") == "DocumentReference" and any(
        p in SIMPLIFIED_PUBLISH for p in _profiles(resource))


def publish_simplified(writer: Writer, document: dict) -> WriteResult:
    """Keep each inline document as a Binary and file the DocumentReference pointing at it, in the
    caller's unit of work; a subject given by INS is resolved to the patient."""
    validate_resource(document, "DocumentReference")  # a well-formed resource before it is taken apart
    document_id = new_id()
    binaries = []
    for c, content in enumerate(document.get("content", [])):
        attachment = content.get("attachment", {})
        where = f"DocumentReference.content[{c}].attachment"
        if "data" not in attachment:
            raise FhirError(422, "required", "A simplified publish carries the document in attachment.data",
                            [f"{where}.data"])
        data = _decoded(attachment.pop("data"))
        if data is None:
            raise FhirError(400, "invalid", "attachment.data is not valid base64", [f"{where}.data"])
        stated = {k: attachment[k] for k in ("size", "hash") if k in attachment}
        issues = _described({"size": len(data), "hash": _sha1(data), **stated}, data, where)
        if issues:
            raise FhirError(422, issues[0].code, issues[0].diagnostics, issues=issues)
        binary_id = new_id()
        attachment.update(url=f"Binary/{binary_id}", size=len(data), hash=_sha1(data))
        binaries.append((binary_id, {"resourceType": "Binary", "contentType": attachment.get("contentType")
                                     or "application/octet-stream", "data": base64.b64encode(data).decode(),
                                     "securityContext": {"reference": f"DocumentReference/{document_id}"}}))
    document["subject"] = _by_ins(writer, document.get("subject") or {})
    meta = document.setdefault("meta", {})
    meta["profile"] = [p for p in meta.get("profile", []) if p not in SIMPLIFIED_PUBLISH] + [COMPREHENSIVE]
    result = writer.create("DocumentReference", document, resource_id=document_id)
    for binary_id, binary in binaries:
        writer.create("Binary", binary, resource_id=binary_id)
    return result


def _by_ins(writer: Writer, subject: dict) -> dict:
    reference = subject.get("reference", "")
    if not reference.startswith("Patient?"):
        return subject
    system = reference.removeprefix("Patient?identifier=").partition("|")[0]
    if system not in INS_SYSTEMS:
        raise FhirError(422, "business-rule", f"The subject must be named by INS, not '{reference}'",
                        ["DocumentReference.subject"])
    found = writer.existing_match("Patient", reference.partition("?")[2])
    if found is None:
        unknown = Issue("not-found", f"No patient matches '{reference}'", ["DocumentReference.subject"], dmp_code="902")
        raise FhirError(422, unknown.code, unknown.diagnostics, issues=[unknown])
    return {**subject, "reference": f"Patient/{found}"}


def _bytes(binary: dict) -> bytes | None:
    return _decoded(binary.get("data", ""))


def _decoded(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")
