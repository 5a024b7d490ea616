"""The CI-SIS CDA header, read into plain values (FRENCH_STANDARDS.md §3.2).

Reading is tolerant: what is absent is None or empty. Whether the header is complete enough to
be accepted is ``cda/rules.py``'s business, which runs first.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from lxml import etree

from cda.parse import NS

#: Patient identity (INS) roots: NIR, NIA, test NIR, demo NIR.
INS_ROOTS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11")
IDNAT_PS = "1.2.250.1.71.4.2.1"  # "8" + RPPS, "0" + ADELI…
IDNAT_ST = "1.2.250.1.71.4.2.2"  # "1" + FINESS, "3" + SIRET…


@dataclass(frozen=True)
class Ident:
    """An II: ``root`` (an OID or UUID) and, optionally, ``extension``."""

    root: str
    extension: str | None = None

    @property
    def value(self) -> str:
        """As CDA writes an XDS uniqueId: root, or root^extension."""
        return f"{self.root}^{self.extension}" if self.extension else self.root


@dataclass(frozen=True)
class Code:
    code: str
    system: str | None = None
    display: str | None = None


@dataclass(frozen=True)
class Organization:
    id: Ident | None
    name: str | None
    setting: Code | None = None  # standardIndustryClassCode (TRE_A01 practice setting)


@dataclass(frozen=True)
class Person:
    """An author or the legal authenticator."""

    id: Ident | None
    family: str | None
    given: str | None
    role: Code | None  # profession / speciality (TRE_A02)
    organization: Organization | None
    time: str | None


@dataclass(frozen=True)
class Patient:
    ins: Ident | None  # the first id with an INS root
    other_ids: tuple[Ident, ...]  # the IPPs of the facilities
    birth_family: str | None  # family qualifier BR
    used_family: str | None  # family qualifier SP or CL
    given_names: str | None  # the list of given names (unqualified given)
    first_given: str | None  # given qualifier BR
    used_given: str | None  # given qualifier CL
    gender: str | None  # M, F, U
    birth_time: str | None
    birthplace_cog: str | None  # INSEE code of the birth commune
    telecoms: tuple[str, ...]


@dataclass(frozen=True)
class Body:
    structured: bool
    media_type: str | None = None  # nonXMLBody/text/@mediaType
    content: bytes = b""  # nonXMLBody content, decoded
    content_error: str | None = None  # why the content could not be decoded


@dataclass(frozen=True)
class CdaHeader:
    document_id: Ident | None
    set_id: Ident | None
    version: int | None
    type: Code | None
    title: str | None
    effective_time: str | None
    confidentiality: Code | None
    language: str | None
    template_ids: tuple[str, ...]
    patient: Patient
    authors: tuple[Person, ...]
    custodian: Organization | None
    legal_authenticator: Person | None
    events: tuple[Code, ...]
    service_start: str | None
    service_end: str | None
    practice_setting: Code | None
    facility_type: Code | None
    replaces: Ident | None
    body: Body


def read_header(root: etree._Element) -> CdaHeader:
    """The header of a parsed ``ClinicalDocument``."""
    events = root.findall("h:documentationOf/h:serviceEvent", NS)
    return CdaHeader(
        document_id=_ident(root.find("h:id", NS)),
        set_id=_ident(root.find("h:setId", NS)),
        version=_int(_attr(root.find("h:versionNumber", NS), "value")),
        type=_code(root.find("h:code", NS)),
        title=_text(root.find("h:title", NS)),
        effective_time=_attr(root.find("h:effectiveTime", NS), "value"),
        confidentiality=_code(root.find("h:confidentialityCode", NS)),
        language=_attr(root.find("h:languageCode", NS), "code"),
        template_ids=tuple(t.get("root", "") for t in root.findall("h:templateId", NS)),
        patient=_patient(root.find("h:recordTarget/h:patientRole", NS)),
        authors=tuple(_person(a, "h:assignedAuthor", "h:assignedPerson") for a in root.findall("h:author", NS)),
        custodian=_organization(root.find(
            "h:custodian/h:assignedCustodian/h:representedCustodianOrganization", NS)),
        legal_authenticator=_maybe(root.find("h:legalAuthenticator", NS),
                                   lambda e: _person(e, "h:assignedEntity", "h:assignedPerson")),
        events=tuple(c for c in (_code(e.find("h:code", NS)) for e in events) if c is not None),
        service_start=min(_times(events, "h:low"), default=None),
        service_end=max(_times(events, "h:high"), default=None),
        practice_setting=_practice_setting(root),
        facility_type=_code(root.find(
            "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code", NS)),
        replaces=_ident(root.find("h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id", NS)),
        body=_body(root),
    )


def _patient(role: etree._Element | None) -> Patient:
    ids = [i for i in (_ident(e) for e in (role.findall("h:id", NS) if role is not None else [])) if i]
    ins = next((i for i in ids if i.root in INS_ROOTS), None)
    person = role.find("h:patient", NS) if role is not None else None
    name = person.find("h:name", NS) if person is not None else None
    return Patient(
        ins=ins,
        other_ids=tuple(i for i in ids if i is not ins),
        birth_family=_named(name, "family", "BR"),
        used_family=_named(name, "family", "SP") or _named(name, "family", "CL"),
        given_names=_named(name, "given", None),
        first_given=_named(name, "given", "BR"),
        used_given=_named(name, "given", "CL"),
        gender=_attr(_find(person, "h:administrativeGenderCode"), "code"),
        birth_time=_attr(_find(person, "h:birthTime"), "value"),
        birthplace_cog=_text(_find(person, "h:birthplace/h:place/h:addr/h:county")),
        telecoms=tuple(t.get("value", "") for t in (role.findall("h:telecom", NS) if role is not None else [])),
    )


def _person(participation: etree._Element, entity_path: str, person_path: str) -> Person:
    entity = participation.find(entity_path, NS)
    person = _find(entity, person_path)
    return Person(
        id=_ident(_find(entity, "h:id")),
        family=_text(_find(person, "h:name/h:family")),
        given=_text(_find(person, "h:name/h:given")),
        role=_code(_find(entity, "h:code")),
        organization=_organization(_find(entity, "h:representedOrganization")),
        time=_attr(participation.find("h:time", NS), "value"),
    )


def _organization(element: etree._Element | None) -> Organization | None:
    if element is None:
        return None
    return Organization(_ident(element.find("h:id", NS)), _text(element.find("h:name", NS)),
                        _code(element.find("h:standardIndustryClassCode", NS)))


def _practice_setting(root: etree._Element) -> Code | None:
    """The performer's organisation's setting (CI-SIS), else the first author's organisation's."""
    for path in ("h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization",
                 "h:author/h:assignedAuthor/h:representedOrganization"):
        for org in root.findall(path, NS):
            code = _code(org.find("h:standardIndustryClassCode", NS))
            if code is not None:
                return code
    return None


def _body(root: etree._Element) -> Body:
    if root.find("h:component/h:structuredBody", NS) is not None:
        return Body(structured=True)
    text = root.find("h:component/h:nonXMLBody/h:text", NS)
    if text is None:
        return Body(structured=False, content_error="The document has no body")
    media_type = text.get("mediaType")
    raw = (text.text or "").strip()
    if text.get("representation") != "B64":
        return Body(False, media_type, raw.encode("utf-8"))
    try:
        return Body(False, media_type, base64.b64decode("".join(raw.split()), validate=True))
    except (binascii.Error, ValueError):
        return Body(False, media_type, content_error="The nonXMLBody text is not valid base64")


def _times(events: list[etree._Element], bound: str) -> list[str]:
    found = (_attr(e.find(f"h:effectiveTime/{bound}", NS), "value") for e in events)
    return [t for t in found if t]


def _named(name: etree._Element | None, part: str, qualifier: str | None) -> str | None:
    """The text of the first ``family``/``given`` with that qualifier (None: without one)."""
    if name is None:
        return None
    for element in name.findall(f"h:{part}", NS):
        if (element.get("qualifier") or None) == qualifier and _text(element):
            return _text(element)
    return None


def _find(element: etree._Element | None, path: str) -> etree._Element | None:
    return element.find(path, NS) if element is not None else None


def _maybe(element, build):
    return build(element) if element is not None else None


def _ident(element: etree._Element | None) -> Ident | None:
    if element is None or not element.get("root"):
        return None
    return Ident(element.get("root"), element.get("extension") or None)


def _code(element: etree._Element | None) -> Code | None:
    if element is None or not element.get("code"):
        return None
    return Code(element.get("code"), element.get("codeSystem"), element.get("displayName"))


def _attr(element: etree._Element | None, name: str) -> str | None:
    return element.get(name) if element is not None else None


def _text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    text = " ".join("".join(element.itertext()).split())
    return text or None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
