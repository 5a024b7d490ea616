"""Code systems and correspondences the CDA → FHIR mapping needs (FRENCH_STANDARDS.md §2, §3.4, §3.5)."""

from __future__ import annotations

#: CDA codeSystem OIDs → FHIR system URLs; any other OID becomes ``urn:oid:<oid>``.
SYSTEMS = {
    "2.16.840.1.113883.6.1": "http://loinc.org",
    "2.16.840.1.113883.5.25": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
    "2.16.840.1.113883.5.1": "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender",
    "1.2.250.1.213.1.1.4.5": "https://mos.esante.gouv.fr/NOS/TRE_A02-ProfessionSavFaire-CISIS/FHIR/"
                             "TRE-A02-ProfessionSavFaire-CISIS",
    "1.2.250.1.213.1.1.4.9": "https://mos.esante.gouv.fr/NOS/TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice",
    "1.2.250.1.71.4.2.4": "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite",
    "1.2.250.1.213.1.1.4.12": "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/"
                              "TRE-A05-TypeDocComplementaire",
    "1.2.250.1.213.2.5": "https://mos.esante.gouv.fr/NOS/TRE_R303-CCAM/FHIR/TRE-R303-CCAM",
}
CLASS_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
FORMAT_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode"
CLASSES = {"10": "Compte rendu", "11": "Synthèse", "31": "Imagerie médicale", "42": "Prescription",
           "43": "Dispensation", "44": "Plan de soins", "45": "Traitement administré", "52": "Certificat",
           "60": "Remboursement", "90": "Documents déposés par le patient", "95": "Gestion", "99": "Technique"}
#: Document type (LOINC, or TRE_A05 for the non-LOINC ones) → class (TRE_A03), after the NOS
#: correspondence ASS_X04-CorrespondanceType-Classe-CISIS. PARTIAL: that table is published on
#: mos.esante.gouv.fr, out of this machine's reach; the pairs below are those we know (55751-2 read
#: in an ANS terminology request, the others from the DMP's usage, not checked against the table);
#: any other type is filed as a report (10), which most types of J07 are.
TYPE_CLASSES = {
    "55751-2": "52",  # déclaration de problème de santé publique: certificat, déclaration
    "34133-9": "11", "60591-5": "11", "SYNTH": "11",  # syntheses
    "57833-6": "42", "57832-8": "42",  # prescriptions
    "60593-1": "43",  # dispensation
    "18776-5": "44",  # plan de soins
}
DEFAULT_CLASS = "10"
#: templateId of an unstructured body (IHE XDS-SD); its format comes from the media type (ASS_A12).
XDS_SD = "1.3.6.1.4.1.19376.1.2.20"
FORMAT_EXTRA_SYSTEM = ("https://mos.esante.gouv.fr/NOS/TRE_A06-FormatCodeComplementaire/FHIR/"
                       "TRE-A06-FormatCodeComplementaire")
#: Content-model templateId of a structured document → its XDS format code (after ASS_A11, for
#: the IHE models whose templateIds are standard). PARTIAL: the CI-SIS volets' own models are not
#: listed; a structured document of another model is filed as "Document non référencé IHE ou CI-SIS".
TEMPLATE_FORMATS = {
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008",  # IHE XD-LAB (biology reports)
    "1.3.6.1.4.1.19376.1.9.1.1.1": "urn:ihe:pharm:pre:2010",  # IHE Pharmacy prescription
    "1.3.6.1.4.1.19376.1.9.1.1.2": "urn:ihe:pharm:dis:2010",  # IHE Pharmacy dispensation
    "2.16.840.1.113883.10.22.1.1": "urn:ihe:pcc:ips:2020",  # International Patient Summary
}
OTHER_MODEL = "urn:asipSante:modelesHorsProfils:2011"


def structured_format(template_ids: tuple[str, ...]) -> dict:
    """The format Coding of a structured document, from the first template with a known format."""
    code = next((TEMPLATE_FORMATS[t] for t in template_ids if t in TEMPLATE_FORMATS), OTHER_MODEL)
    return {"system": FORMAT_SYSTEM if code.startswith("urn:ihe:") else FORMAT_EXTRA_SYSTEM, "code": code}


def system_url(oid: str | None) -> str | None:
    if not oid:
        return None
    return SYSTEMS.get(oid, f"urn:oid:{oid}")


def document_class(type_code: str) -> tuple[str, str]:
    """(class code, display) of a document type."""
    code = TYPE_CLASSES.get(type_code, DEFAULT_CLASS)
    return code, CLASSES[code]
