"""Filing a CDA document in the DMP: the same rules whichever door it came by (HTTP
``$import-cda``, an MDM message over MLLP, an XDM attachment over MSSanté).

One unit of work, so a document is filed whole or not at all: the patient found by INS (created
if unknown, unless the deployment refuses unknown patients), checked against the document's INS
traits; the DocumentReference; the original bytes as a Binary, unchanged; and, for a replacement,
the replaced document made ``superseded`` (a replacement of a document this DMP never had is filed
too, related to it by identifier only). The same document (same ``ClinicalDocument/id``) filed
twice is one DocumentReference: the second filing answers with the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cda.document import CdaDocument, read_cda
from cda.header import Ident
from cda.header import Patient as CdaPatient
from cda.mapping import ins_identifier, master_identifier, patient
from cda.problems import CdaError
from cda.schematron import uncovered
from fhir_server.config import Settings
from fhir_server.core.errors import FhirError, Issue
from fhir_server.core.repository import Repository, Writer
from fhir_server.core.resources import new_id
from fhir_server.formats import json as fjson
from fhir_server.french.visibility import TRE_A07
from fhir_server.search.criteria import identifier_query
from fhir_server.search.values.string import fold
from fhir_server.store.base import Record

#: Problems with the XML itself (400); the others are a document that breaks the rules (422).
SYNTAX = frozenset({"structure", "security", "too-costly"})
UNKNOWN_PATIENT, TRAITS_DIFFER = "902", "904"


def check_cda_settings(settings: Settings) -> None:
    """Refuse at start-up what would refuse every document later."""
    if settings.cda_unknown_patients not in ("create", "refuse"):
        raise ValueError("MES_CDA_UNKNOWN_PATIENTS must be 'create' or 'refuse',"
                         f" not {settings.cda_unknown_patients!r}")
    if settings.cda_xsd and not Path(settings.cda_xsd).is_file():
        raise ValueError(f"MES_CDA_XSD names no file: {settings.cda_xsd}")
    if settings.cda_schematron:
        uncovered(Path(settings.cda_schematron))  # compiled now (seconds), not on the first document


@dataclass(frozen=True)
class Filed:
    document: Record  # the DocumentReference
    created: bool  # False: the same document had been filed already


def file_cda(repository: Repository, data: bytes, *, create_patients: bool = True, xsd: Path | None = None,
             sch: Path | None = None, labels: Iterable[str] = ()) -> Filed:
    """File one CDA document; a ``FhirError`` (400 or 422, every problem with its XPath) if refused."""
    document = checked_cda(data, xsd, sch)
    with repository.writer() as writer:
        return file_document(writer, document, create_patients=create_patients, labels=labels)


def checked_cda(data: bytes, xsd: Path | None = None, sch: Path | None = None) -> CdaDocument:
    """The document read and checked (schema, CI-SIS rules); its refusal as a ``FhirError``."""
    try:
        return read_cda(data, xsd, sch)
    except CdaError as error:
        raise refusal(error) from None


def file_document(writer: Writer, document: CdaDocument, *, create_patients: bool = True,
                  labels: Iterable[str] = (), related: str | None = None) -> Filed:
    """File a checked document in ``writer``'s unit of work (a door may write more in the same
    unit: the receipt of the message that carried it). ``labels``: TRE_A07 visibility codes the
    sender asked for besides the document's own confidentiality; ``related``: where the document
    came from (the inbox message that carried it), as ``context.related``."""
    header = document.header
    if writer.exists("DocumentReference", _document_query(header.document_id)):  # one lookup for a new one
        existing = _filed(writer, header.document_id)
        if existing is None:
            raise FhirError(409, "duplicate", f"The document {header.document_id.value} is already filed, where"
                            " this principal may not see it")
        return Filed(writer.read_current("DocumentReference", existing, answered=True), created=False)
    patient_id = _patient(writer, header.patient, create_patients)
    document_id, binary_id = new_id(), new_id()
    mapped = document.to_fhir(f"Patient/{patient_id}", f"Binary/{binary_id}")
    mapped.document["securityLabel"] += [{"coding": [{"system": TRE_A07, "code": code}]} for code in sorted(labels)]
    if related:
        mapped.document["context"]["related"] = [{"reference": related}]
    replaced = _replaced(writer, header.replaces) if header.replaces else None
    if replaced is not None:
        mapped.document["relatesTo"][0]["target"]["reference"] = f"DocumentReference/{replaced.id}"
    record = writer.create("DocumentReference", mapped.document, resource_id=document_id).record
    writer.create("Binary", {**mapped.binary, "securityContext": {"reference": f"DocumentReference/{document_id}"}},
                  resource_id=binary_id)
    if replaced is not None:
        writer.update("DocumentReference", replaced.id, {**fjson.loads(replaced.body), "status": "superseded"})
    return Filed(record, created=True)


def refusal(error: CdaError) -> FhirError:
    """The OperationOutcome of a refused document: each problem at its XPath, with its DMP code."""
    issues = [Issue(p.code, p.message if p.line is None or f"line {p.line}" in p.message
                    else f"{p.message} (line {p.line})", location=[p.xpath], dmp_code=p.dmp_code)
              for p in error.problems]
    status = 400 if any(p.code in SYNTAX for p in error.problems) else 422
    return FhirError(status, issues[0].code, issues[0].diagnostics, issues=issues)


def _patient(writer: Writer, source: CdaPatient, create: bool) -> str:
    """The id of the patient the INS names, checked against the document's traits (or created)."""
    ins = ins_identifier(source.ins)
    found = writer.existing_match("Patient", identifier_query(ins))
    if found is None and writer.exists("Patient", identifier_query(ins)):
        raise FhirError(403, "forbidden", f"The patient with the INS {source.ins.extension} has closed their space or"
                        " blocked this principal")
    if found is None:
        if not create:
            raise _business(f"No patient is known with the INS {source.ins.extension}", UNKNOWN_PATIENT,
                            "/ClinicalDocument/recordTarget/patientRole/id")
        return writer.create("Patient", patient(source)).record.id
    differences = _differences(fjson.loads(writer.read_current("Patient", found).body), patient(source))
    if differences:
        raise _business(f"The document's INS traits differ from those of Patient/{found}: {', '.join(differences)}",
                        TRAITS_DIFFER, "/ClinicalDocument/recordTarget/patientRole/patient")
    return found


def _differences(known: dict, stated: dict) -> list[str]:
    """The INS traits the document states otherwise than the known patient (absent ones are not
    compared; case and accents aside, as a search by name)."""
    out = []
    for trait, value in (("birth name", _official(known, "family")), ("first given name", _official(known, "given")),
                         ("sex", known.get("gender")), ("birth date", known.get("birthDate"))):
        other = {"birth name": _official(stated, "family"), "first given name": _official(stated, "given"),
                 "sex": stated.get("gender"), "birth date": stated.get("birthDate")}[trait]
        if value and other and fold(value) != fold(other):
            out.append(f"{trait} '{other}' (known: '{value}')")
    return out


def _official(resource: dict, part: str) -> str | None:
    for name in resource.get("name", []):
        if name.get("use") == "official":
            value = name.get(part)
            return value[0] if isinstance(value, list) and value else value
    return None


def _filed(writer: Writer, document_id: Ident) -> str | None:
    """The id of the DocumentReference of an already filed document (one the principal may see)."""
    return writer.existing_match("DocumentReference", _document_query(document_id))


def _document_query(document_id: Ident) -> str:
    return identifier_query(master_identifier(document_id))


def _replaced(writer: Writer, replaces: Ident) -> Record | None:
    """The filed document a replacement replaces; None when this DMP never had it (it may have
    been shared elsewhere): the replacement is filed, related to it by identifier only."""
    found = _filed(writer, replaces)
    return writer.read_current("DocumentReference", found) if found is not None else None


def _business(message: str, dmp_code: str, xpath: str) -> FhirError:
    return FhirError(422, "business-rule", message, issues=[Issue("business-rule", message, location=[xpath],
                                                                  dmp_code=dmp_code)])
