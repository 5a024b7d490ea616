"""DMP document visibility (TRE_A07 StatutVisibiliteDocument, FRENCH_STANDARDS §4.2).

A document carries these codes in ``DocumentReference.securityLabel`` (or any resource in
``meta.security``) besides its v3 confidentiality (N, R, V). PDSm examples spell the code system
with a typo (``StatusVisibilite``): both spellings are read, the right one is written.
"""

from __future__ import annotations

TRE_A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
TRE_A07_TYPO = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
TRE_A07_SYSTEMS = (TRE_A07, TRE_A07_TYPO)

MASQUE_PS = "MASQUE_PS"  # hidden from professionals, except the document's author
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"  # hidden from the patient (and their representatives)
INVISIBLE_REPRESENTANTS_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"  # hidden from legal representatives

#: The labels a patient (or representative) may set and remove on their own documents.
PATIENT_SETTABLE = frozenset({MASQUE_PS, INVISIBLE_REPRESENTANTS_LEGAUX})

#: Relationship codes that make a RelatedPerson a legal representative: HL7 v3 RoleCode (TRE_R216)
#: guardian and parents, and FR Core's contact relationships (tuteur, représentant légal, tutelle).
LEGAL_REPRESENTATIVE_CODES = frozenset({"GUARD", "PRN", "MTH", "FTH", "GRD", "CUR", "WRD"})


def labels(resource: dict) -> set[str]:
    """The TRE_A07 codes a resource carries, in ``securityLabel`` codings or ``meta.security``."""
    codings = [c for concept in resource.get("securityLabel", ()) for c in concept.get("coding", ())]
    codings += (resource.get("meta") or {}).get("security", ())
    return {c["code"] for c in codings if c.get("system") in TRE_A07_SYSTEMS and "code" in c}


def spelled_right(resource: dict) -> dict:
    """``resource`` with the TRE_A07 system spelled as the CodeSystem is, wherever a label carries
    the PDSm examples' typo (read on input, never written back)."""
    for concept in resource.get("securityLabel", ()):
        _respell(concept.get("coding", ()))
    _respell((resource.get("meta") or {}).get("security", ()))
    return resource


def _respell(codings) -> None:
    for coding in codings:
        if coding.get("system") == TRE_A07_TYPO:
            coding["system"] = TRE_A07
