"""The CI-SIS header rules a CDA document must meet before it enters the DMP.

The header cardinalities of the CI-SIS "structuration minimale" (FRENCH_STANDARDS.md §3.1), the
patient's INS (present, well-formed, with a valid key, with its traits), an author identified
nationally, a custodian, a legal authenticator, the service event, the encounter with its
facility type, and a body we can file. Each failure names the element by its XPath.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

from cda.header import IDNAT_PS, IDNAT_ST, INS_ROOTS
from cda.parse import NS, xpath
from cda.problems import Problem
from fhir_server.french.ins import nir_key

#: (element, least, most) directly under ClinicalDocument; most None = unbounded.
CARDINALITIES = (
    ("realmCode", 1, 1), ("typeId", 1, 1), ("templateId", 3, None), ("id", 1, 1), ("code", 1, 1),
    ("title", 0, 1), ("effectiveTime", 1, 1), ("confidentialityCode", 1, 1), ("languageCode", 1, 1),
    ("setId", 0, 1), ("versionNumber", 1, 1), ("recordTarget", 1, 1), ("author", 1, None),
    ("dataEnterer", 0, 1), ("custodian", 1, 1), ("legalAuthenticator", 1, 1), ("documentationOf", 1, None),
    ("relatedDocument", 0, 1), ("componentOf", 1, 1),
)
STRUCTURATION_MINIMALE = "1.2.250.1.213.1.1.1.1"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
#: Media types of an unstructured body, and their XDS format codes (ASS_A12).
MEDIA_TYPES = {"application/pdf": "urn:ihe:iti:xds-sd:pdf:2008", "text/plain": "urn:ihe:iti:xds-sd:text:2008",
               "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010", "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
               "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010"}
TS = re.compile(r"\d{14}(\.\d{1,4})?[+-]\d{4}", re.ASCII)  # to the second, with its offset
MATRICULE = re.compile(r"[12378]\d{4}(\d{2}|2A|2B)\d{8}", re.ASCII)
NO_INS, INS_INCOMPLETE = "903", "905"
DOC = "/ClinicalDocument"


def check(root: etree._Element) -> list[Problem]:
    """Every rule the document breaks (empty: it may enter)."""
    return [*_cardinalities(root), *_document(root), *_patient(root), *_authors(root), *_custodian(root),
            *_legal_authenticator(root), *_service_event(root), *_encounter(root), *_replacement(root),
            *_body(root)]


def _cardinalities(root: etree._Element) -> Iterator[Problem]:
    for name, least, most in CARDINALITIES:
        found = root.findall(f"h:{name}", NS)
        if len(found) < least:
            yield Problem(f"{DOC}/{name}", f"{name} is required{f' at least {least} times' if least > 1 else ''}"
                          f" (found {len(found)})", "required")
        elif most is not None and len(found) > most:
            yield Problem(xpath(found[most]), f"{name} may appear at most {most} time(s) (found {len(found)})")


def _document(root: etree._Element) -> Iterator[Problem]:
    realm = root.find("h:realmCode", NS)
    if realm is not None and realm.get("code") != "FR":
        yield Problem(xpath(realm), "realmCode must be FR")
    if STRUCTURATION_MINIMALE not in {t.get("root") for t in root.findall("h:templateId", NS)}:
        yield Problem(f"{DOC}/templateId", f"The CI-SIS templateId {STRUCTURATION_MINIMALE} (structuration minimale)"
                      " is required", "required")
    yield from _needs(root, "h:id", "root", "The document id needs a root (an OID or UUID)")
    yield from _needs(root, "h:code", "code", "The document type needs a code")
    yield from _needs(root, "h:code", "codeSystem", "The document type needs a codeSystem")
    yield from _timestamp(root.find("h:effectiveTime", NS))
    confidentiality = root.find("h:confidentialityCode", NS)
    if confidentiality is not None and (confidentiality.get("code") not in ("N", "R", "V")
                                        or confidentiality.get("codeSystem") != CONFIDENTIALITY_SYSTEM):
        yield Problem(xpath(confidentiality), f"confidentialityCode must be N, R or V of {CONFIDENTIALITY_SYSTEM}")
    version = root.find("h:versionNumber", NS)
    if version is not None and not (version.get("value") or "").isdigit():
        yield Problem(xpath(version), "versionNumber/@value must be a positive integer")


def _patient(root: etree._Element) -> Iterator[Problem]:
    role = root.find("h:recordTarget/h:patientRole", NS)
    if role is None:
        if root.find("h:recordTarget", NS) is not None:
            yield Problem(f"{DOC}/recordTarget/patientRole", "recordTarget needs a patientRole", "required")
        return
    ins = [i for i in role.findall("h:id", NS) if i.get("root") in INS_ROOTS]
    if not ins:
        yield Problem(f"{xpath(role)}/id", "The patient has no INS (an id with root 1.2.250.1.213.1.4.8, .9, .10"
                      " or .11)", "required", dmp_code=NO_INS)
        return
    matricule = ins[0].get("extension") or ""
    if not MATRICULE.fullmatch(matricule) or nir_key(matricule[:13]) != matricule[13:]:
        yield Problem(xpath(ins[0]), f"The INS '{matricule}' is not a 15-character matricule with a valid key",
                      dmp_code=INS_INCOMPLETE)
    person = role.find("h:patient", NS)
    for path, trait in (("h:name/h:family[@qualifier='BR']", "the birth name (family qualifier BR)"),
                        ("h:name/h:given", "the given names"),
                        ("h:administrativeGenderCode[@code]", "the sex (administrativeGenderCode)"),
                        ("h:birthTime[@value]", "the birth date (birthTime)")):
        element = person.find(path, NS) if person is not None else None
        if element is None or (element.tag.endswith(("family", "given")) and not (element.text or "").strip()):
            yield Problem(f"{xpath(role)}/patient", f"The INS comes without {trait}", "required",
                          dmp_code=INS_INCOMPLETE)


def _authors(root: etree._Element) -> Iterator[Problem]:
    for author in root.findall("h:author", NS):
        assigned = author.find("h:assignedAuthor", NS)
        if assigned is None:
            yield Problem(f"{xpath(author)}/assignedAuthor", "An author needs an assignedAuthor", "required")
            continue
        device = assigned.find("h:assignedAuthoringDevice", NS) is not None
        roots = {i.get("root") for i in assigned.findall("h:id", NS) if i.get("extension")}
        accepted = {IDNAT_PS, IDNAT_ST} if device else {IDNAT_PS}
        if not roots & accepted:
            who = "an authoring device" if device else "a person"
            yield Problem(f"{xpath(assigned)}/id", f"An author ({who}) needs a national id: root"
                          f" {' or '.join(sorted(accepted))} with an extension", "required")
        if author.find("h:time", NS) is None:
            yield Problem(f"{xpath(author)}/time", "An author needs the time of authorship", "required")


def _custodian(root: etree._Element) -> Iterator[Problem]:
    custodian = root.find("h:custodian", NS)
    if custodian is not None and custodian.find(
            "h:assignedCustodian/h:representedCustodianOrganization/h:id[@root]", NS) is None:
        yield Problem(f"{xpath(custodian)}/assignedCustodian/representedCustodianOrganization/id",
                      "The custodian organisation needs an id", "required")


def _legal_authenticator(root: etree._Element) -> Iterator[Problem]:
    legal = root.find("h:legalAuthenticator", NS)
    if legal is None:
        return
    for path, what in (("h:time", "the time of signature"), ("h:signatureCode", "a signatureCode"),
                       ("h:assignedEntity/h:id[@root]", "the signatory's id")):
        if legal.find(path, NS) is None:
            yield Problem(f"{xpath(legal)}/{path.replace('h:', '').split('[')[0]}",
                          f"The legal authenticator needs {what}", "required")


def _service_event(root: etree._Element) -> Iterator[Problem]:
    for documentation in root.findall("h:documentationOf", NS):
        event = documentation.find("h:serviceEvent", NS)
        if event is None:
            yield Problem(f"{xpath(documentation)}/serviceEvent", "documentationOf needs a serviceEvent", "required")


def _encounter(root: etree._Element) -> Iterator[Problem]:
    component = root.find("h:componentOf", NS)
    if component is None:
        return
    encounter = component.find("h:encompassingEncounter", NS)
    if encounter is None:
        yield Problem(f"{xpath(component)}/encompassingEncounter", "componentOf needs an encompassingEncounter",
                      "required")
        return
    if encounter.find("h:effectiveTime", NS) is None:
        yield Problem(f"{xpath(encounter)}/effectiveTime", "The encounter needs an effectiveTime", "required")
    if encounter.find("h:location/h:healthCareFacility/h:code[@code]", NS) is None:
        yield Problem(f"{xpath(encounter)}/location/healthCareFacility/code",
                      "The encounter needs the facility type (healthCareFacility/code, TRE_R02)", "required")


def _replacement(root: etree._Element) -> Iterator[Problem]:
    related = root.find("h:relatedDocument", NS)
    if related is None:
        return
    if related.get("typeCode") != "RPLC":
        yield Problem(xpath(related), "Only a replacement (relatedDocument typeCode RPLC) is accepted")
    if related.find("h:parentDocument/h:id[@root]", NS) is None:
        yield Problem(f"{xpath(related)}/parentDocument/id", "A replacement names the replaced document's id",
                      "required")
    version = root.find("h:versionNumber", NS)
    if version is not None and (version.get("value") or "").isdigit() and int(version.get("value")) < 2:
        yield Problem(xpath(version), "A replacement's versionNumber is 2 or more")


def _body(root: etree._Element) -> Iterator[Problem]:
    component = root.find("h:component", NS)
    if component is None:
        yield Problem(f"{DOC}/component", "The document has no body (component)", "required")
        return
    if component.find("h:structuredBody", NS) is not None:
        return
    text = component.find("h:nonXMLBody/h:text", NS)
    if text is None:
        yield Problem(f"{xpath(component)}/nonXMLBody/text", "The body is neither structuredBody nor"
                      " nonXMLBody/text", "required")
        return
    if text.get("mediaType") not in MEDIA_TYPES:
        yield Problem(xpath(text), f"nonXMLBody/text/@mediaType must be one of {', '.join(MEDIA_TYPES)}",
                      "code-invalid")
    if text.get("representation") != "B64":
        yield Problem(xpath(text), "nonXMLBody/text must be base64 (representation B64)")


def _needs(root: etree._Element, path: str, attribute: str, message: str) -> Iterator[Problem]:
    element = root.find(path, NS)
    if element is not None and not element.get(attribute):
        yield Problem(xpath(element), message, "required")


def _timestamp(element: etree._Element | None) -> Iterator[Problem]:
    if element is not None and not TS.fullmatch(element.get("value") or ""):
        yield Problem(xpath(element), "effectiveTime/@value must be a time to the second with its offset"
                      " (YYYYMMDDHHMMSS+ZZZZ)")
