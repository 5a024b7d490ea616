"""The ZFA segment (IHE PAM, French extension): what the facility knows of the patient's DMP —
its status, and the patient's consents and oppositions — kept as one Consent per patient
(identified by the patient's id), rewritten by each ZFA so its history shows every change.

Fields kept (as the ANS PAM-FR examples use them): ZFA-1 DMP status (ACTIF, FERME, …), ZFA-2 its
date, ZFA-6 / ZFA-7 opposition to access in bris de glace / centre 15 mode (Y/N), ZFA-9
opposition to feeding (IO opposed, INO not) and ZFA-10 its date, ZFA-11 consent to consultation
(IC given, INC refused) and ZFA-12 its date. It is recorded, not enforced.

The Consent names no actor, so it is never read as a block of a professional (``security/policy.py``).
"""

from __future__ import annotations

from fhir_server.core.repository import Writer
from fhir_server.search.criteria import token_query
from hl7v2.er7 import Segment
from hl7v2.values import fhir_date_time

SYSTEM = "https://mes-interop.org/fhir/NamingSystem/dmp-consent"
EXT_DMP_STATUS = "https://mes-interop.org/fhir/StructureDefinition/dmp-status"
ACTIONS = "http://terminology.hl7.org/CodeSystem/consentaction"
ACCESS_MODES = "https://mos.esante.gouv.fr/NOS/TRE_R248-ModeAcces/FHIR/TRE-R248-ModeAcces"
POLICY = "https://mes-interop.org/fhir/CodeSystem/dmp-consent-policy"


def record(writer: Writer, patient_id: str, zfa: Segment) -> None:
    resource = consent(patient_id, zfa)
    found = writer.existing_match("Consent", token_query("identifier", SYSTEM, patient_id))
    if found is None:
        writer.create("Consent", resource)
    else:
        writer.update("Consent", found, {**resource, "id": found})


def consent(patient_id: str, zfa: Segment) -> dict:
    provisions = []
    if zfa(9) in ("IO", "INO"):
        provisions.append(_provision("deny" if zfa(9) == "IO" else "permit", "collect", zfa(10)))
    if zfa(11) in ("IC", "INC"):
        provisions.append(_provision("permit" if zfa(11) == "IC" else "deny", "access", zfa(12)))
    for field, mode in ((6, "bris_de_glace"), (7, "centre_15")):
        if zfa(field) == "Y":
            provisions.append({"type": "deny", "purpose": [{"system": ACCESS_MODES, "code": mode}]})
    resource: dict = {"resourceType": "Consent"}
    if zfa(1):
        resource["extension"] = [{"url": EXT_DMP_STATUS, "valueCode": zfa(1)}]
    resource |= {
        "identifier": [{"system": SYSTEM, "value": patient_id}],
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
    }
    when = fhir_date_time(zfa(2)) if zfa(2) else None
    if when and "T" in when:
        resource["dateTime"] = when
    resource["policyRule"] = {"coding": [{"system": POLICY, "code": "dmp"}]}
    resource["provision"] = {"type": "permit", "provision": provisions} if provisions else {"type": "permit"}
    return resource


def _provision(kind: str, action: str, date: str) -> dict:
    out: dict = {"type": kind}
    start = fhir_date_time(date) if date else None
    if start and "T" in start:
        out["period"] = {"start": start}
    return {**out, "action": [{"coding": [{"system": ACTIONS, "code": action}]}]}
