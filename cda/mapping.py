"""A CI-SIS CDA header → the FHIR resources the DMP files (FRENCH_STANDARDS.md §3.4).

Pure: a read header and the document's bytes in; a FR Core Patient (the INS and its traits), a
Binary holding the bytes unchanged, and a PDSm comprehensive DocumentReference out. The
DocumentReference's authors, authenticator and custodian are contained resources, as PDSm wants;
its ``subject`` and its attachment ``url`` name the Patient and the Binary by the references the
caller gives (ids chosen when they are stored).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass

from cda.codes import CLASS_SYSTEM, FORMAT_SYSTEM, document_class, structured_format, system_url
from cda.header import IDNAT_PS, IDNAT_ST, CdaHeader, Code, Ident, Organization, Patient, Person
from cda.rules import MEDIA_TYPES
from fhir_server.french.fr_core import (
    CS_COMMUNE,
    CS_V2_0203,
    EXT_BIRTH_GIVEN_NAMES,
    EXT_BIRTH_PLACE,
    EXT_INSEE_CODE,
    PROFILE_PATIENT_INS,
)

PDSM_DOCUMENT = ("https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
                 "pdsm-comprehensive-document-reference")
CDA_CONTENT_TYPE = "text/xml"  # the XDS mimeType of a CDA document
#: INS root → (FR Core identifier type, FHIR system).
INS_TYPES = {"1.2.250.1.213.1.4.8": "INS-NIR", "1.2.250.1.213.1.4.9": "INS-NIA",
             "1.2.250.1.213.1.4.10": "INS-NIR-TEST", "1.2.250.1.213.1.4.11": "INS-NIR-DEMO"}
GENDERS = {"M": "male", "F": "female", "U": "unknown"}
#: A namespace for the entryUUID derived from a document's uniqueId, so mapping twice gives one id.
ENTRY_NAMESPACE = uuid.UUID("6f0c5b1e-8e0a-4c1d-9b7e-3a1d2c4b5e6f")


@dataclass(frozen=True)
class Mapped:
    patient: dict
    binary: dict
    document: dict


def to_fhir(header: CdaHeader, original: bytes, patient_ref: str, binary_ref: str) -> Mapped:
    """The resources of one document (the rules of ``cda/rules.py`` have passed)."""
    return Mapped(patient(header.patient),
                  {"resourceType": "Binary", "contentType": CDA_CONTENT_TYPE,
                   "data": base64.b64encode(original).decode("ascii")},
                  document_reference(header, original, patient_ref, binary_ref))


def master_identifier(document_id: Ident) -> dict:
    """The XDS uniqueId: an OID or UUID alone as a URN, else root (as system) and extension."""
    if document_id.extension:
        return {"system": f"urn:oid:{document_id.root}", "value": document_id.extension}
    return {"system": "urn:ietf:rfc:3986", "value": _urn(document_id.root)}


def patient(source: Patient) -> dict:
    """A FR Core Patient-INS from the record target: the INS and its traits."""
    resource: dict = {"resourceType": "Patient", "meta": {"profile": [PROFILE_PATIENT_INS]}}
    if source.birthplace_cog:
        resource["extension"] = [{"url": EXT_BIRTH_PLACE, "valueAddress": {
            "extension": [{"url": EXT_INSEE_CODE, "valueCoding": {"system": CS_COMMUNE,
                                                                  "code": source.birthplace_cog}}]}}]
    resource["identifier"] = [ins_identifier(source.ins)] if source.ins else []
    resource["identifier"] += [{"system": f"urn:oid:{i.root}", "value": i.extension}
                               for i in source.other_ids if i.extension]
    resource["name"] = _names(source)
    if source.gender in GENDERS:
        resource["gender"] = GENDERS[source.gender]
    if source.birth_time and len(source.birth_time) >= 8:
        resource["birthDate"] = f"{source.birth_time[:4]}-{source.birth_time[4:6]}-{source.birth_time[6:8]}"
    return {k: v for k, v in resource.items() if v}


def ins_identifier(ins: Ident) -> dict:
    return {"use": "official", "type": {"coding": [{"system": CS_V2_0203, "code": INS_TYPES[ins.root]}]},
            "system": f"urn:oid:{ins.root}", "value": ins.extension}


def document_reference(header: CdaHeader, original: bytes, patient_ref: str, binary_ref: str) -> dict:
    """A PDSm comprehensive DocumentReference for the document."""
    contained: list[dict] = []
    authors = [_contain(contained, f"author-{n}", person) for n, person in enumerate(header.authors, 1)]
    document: dict = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [PDSM_DOCUMENT]},
        "masterIdentifier": master_identifier(header.document_id),
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986",
                        "value": f"urn:uuid:{uuid.uuid5(ENTRY_NAMESPACE, header.document_id.value)}"}],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [_coding(header.type)]},
        "category": [{"coding": [dict(zip(("code", "display"), document_class(header.type.code),
                                          strict=True), system=CLASS_SYSTEM)]}],
        "subject": {"reference": patient_ref},
        "date": instant(header.effective_time),
        "author": [{"reference": f"#{a}"} for a in authors],
        "securityLabel": [{"coding": [_coding(header.confidentiality)]}],
        "content": [{"attachment": _attachment(header, original, binary_ref), "format": _format(header)}],
        "context": _context(header),
    }
    if header.title:
        document["description"] = header.title
    if header.legal_authenticator is not None:
        signatory = _contain(contained, "authenticator", header.legal_authenticator)
        document["authenticator"] = {"reference": f"#{signatory}"}
    if header.custodian is not None:
        document["custodian"] = {"reference": f"#{_contain_organization(contained, 'custodian', header.custodian)}"}
    if header.replaces is not None:
        document["relatesTo"] = [{"code": "replaces", "target": {"identifier": master_identifier(header.replaces)}}]
    contained.append({**patient(header.patient), "id": "source-patient"})  # the patient as the document states
    document["contained"] = contained
    return _ordered(document)


def instant(ts: str | None) -> str | None:
    """An HL7 TS (``20210108111700+0100``) as a FHIR instant (``2021-01-08T11:17:00+01:00``)."""
    if not ts or len(ts) < 14:
        return None
    offset = ts[-5:] if ts[-5] in "+-" else "+00:00"
    offset = offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"
    return f"{ts[:4]}-{ts[4:6]}-{ts[6:8]}T{ts[8:10]}:{ts[10:12]}:{ts[12:14]}{offset}"


def _names(source: Patient) -> list[dict]:
    names = []
    if source.birth_family:
        official: dict = {"use": "official", "family": source.birth_family}
        if source.given_names:
            official["extension"] = [{"url": EXT_BIRTH_GIVEN_NAMES, "valueString": source.given_names}]
        first = source.first_given or (source.given_names.split()[0] if source.given_names else None)
        if first:
            official["given"] = [first]
        names.append(official)
    if source.used_family and source.used_family != source.birth_family:
        used: dict = {"use": "usual", "family": source.used_family}
        if source.used_given:
            used["given"] = [source.used_given]
        names.append(used)
    return names


def _contain(contained: list[dict], key: str, person: Person) -> str:
    """A contained Practitioner and PractitionerRole (speciality, organisation); the role's id."""
    practitioner: dict = {"resourceType": "Practitioner", "id": key}
    if person.id is not None and person.id.extension:
        practitioner["identifier"] = [_national_id(person.id)]
    name = {k: v for k, v in (("family", person.family), ("given", [person.given] if person.given else None)) if v}
    if name:
        practitioner["name"] = [name]
    contained.append(practitioner)
    role: dict = {"resourceType": "PractitionerRole", "id": f"{key}-role", "practitioner": {"reference": f"#{key}"}}
    if person.organization is not None:
        role["organization"] = {"reference": f"#{_contain_organization(contained, f'{key}-org', person.organization)}"}
    if person.role is not None:
        role["specialty"] = [{"coding": [_coding(person.role)]}]
    contained.append(role)
    return role["id"]


def _contain_organization(contained: list[dict], key: str, organization: Organization) -> str:
    resource: dict = {"resourceType": "Organization", "id": key}
    if organization.id is not None and organization.id.extension:
        resource["identifier"] = [_national_id(organization.id)]
    if organization.name:
        resource["name"] = organization.name
    contained.append(resource)
    return key


def _national_id(ident: Ident) -> dict:
    """idNatPs / idNatSt as FR Core writes them (type IDNPS / IDNST)."""
    kind = {IDNAT_PS: "IDNPS", IDNAT_ST: "IDNST"}.get(ident.root)
    identifier: dict = {"system": f"urn:oid:{ident.root}", "value": ident.extension}
    if kind:
        identifier["type"] = {"coding": [{"system": CS_V2_0203, "code": kind}]}
    return identifier


def _attachment(header: CdaHeader, original: bytes, binary_ref: str) -> dict:
    attachment = {"contentType": CDA_CONTENT_TYPE, "language": header.language or "fr-FR", "url": binary_ref,
                  "size": len(original), "hash": base64.b64encode(hashlib.sha1(original).digest()).decode("ascii"),
                  "title": header.title, "creation": instant(header.effective_time)}
    return {k: v for k, v in attachment.items() if v is not None}


def _format(header: CdaHeader) -> dict:
    if not header.body.structured and header.body.media_type in MEDIA_TYPES:
        return {"system": FORMAT_SYSTEM, "code": MEDIA_TYPES[header.body.media_type]}
    return structured_format(header.template_ids)


def _context(header: CdaHeader) -> dict:
    context: dict = {}
    if header.events:
        context["event"] = [{"coding": [_coding(c)]} for c in header.events]
    period = {k: v for k, v in (("start", instant(header.service_start)), ("end", instant(header.service_end))) if v}
    if period:
        context["period"] = period
    if header.facility_type is not None:
        context["facilityType"] = {"coding": [_coding(header.facility_type)]}
    if header.practice_setting is not None:
        context["practiceSetting"] = {"coding": [_coding(header.practice_setting)]}
    context["sourcePatientInfo"] = {"reference": "#source-patient"}
    return context


def _ordered(document: dict) -> dict:
    """The keys in R4 element order."""
    order = ("resourceType", "meta", "contained", "masterIdentifier", "identifier", "status", "docStatus", "type",
             "category", "subject", "date", "author", "authenticator", "custodian", "relatesTo", "description",
             "securityLabel", "content", "context")
    return {k: document[k] for k in order if k in document}


def _coding(code: Code) -> dict:
    coding = {"system": system_url(code.system), "code": code.code, "display": code.display}
    return {k: v for k, v in coding.items() if v}


def _urn(root: str) -> str:
    try:
        return f"urn:uuid:{uuid.UUID(root)}"
    except ValueError:
        return f"urn:oid:{root}"
