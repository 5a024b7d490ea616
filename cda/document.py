"""One CDA document, checked: the single entry point of ``cda/`` for the doors that receive them.

``read_cda`` parses safely, validates against the CDA schema, applies the CI-SIS header rules
(and, when one is configured, the ANS schematron: ``cda/schematron.py``, an optional extra) and
reads the header; a document with any problem is refused with all of them (``CdaError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cda import schema, schematron
from cda.header import CdaHeader, read_header
from cda.mapping import Mapped, to_fhir
from cda.parse import load
from cda.problems import CdaError, Problem
from cda.rules import check


@dataclass(frozen=True)
class CdaDocument:
    header: CdaHeader
    data: bytes  # the document as received, kept unchanged

    def to_fhir(self, patient_ref: str, binary_ref: str) -> Mapped:
        return to_fhir(self.header, self.data, patient_ref, binary_ref)


def read_cda(data: bytes, xsd: Path | None = None, sch: Path | None = None) -> CdaDocument:
    """The checked document; ``xsd``: the schema to validate against (default: the shipped HL7
    CDA R2 schema, or the one ``MES_CDA_XSD`` names); ``sch``: a schematron to run too (default:
    the one ``MES_CDA_SCHEMATRON`` names, if any)."""
    root = load(data)
    problems = [*schema.validate(root.getroottree(), xsd or schema.schema_path_from_env()), *check(root)]
    sch = sch or schematron.schematron_path_from_env()
    if sch is not None and not problems:  # a document the rules refuse needs no second opinion
        problems = schematron.run(root, sch)
    if problems:
        raise CdaError(problems)
    header = read_header(root)
    if header.body.content_error:
        raise CdaError([Problem("/ClinicalDocument/component", header.body.content_error)])
    return CdaDocument(header, data)
