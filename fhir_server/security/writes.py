"""Write rules (docs/security.md): who may create, change or delete what, checked inside the unit
of work that writes it, so the facts it relies on (a closed space, a block) cannot change under it.

Every write answers to the scopes first. Then: a closed space refuses new documents, messages and
appointments whoever sends them; patients and representatives write in their own compartment
only, on a document someone else wrote they may only toggle the visibility labels the DMP
leaves to them, and in their inbox they mark messages read and answer (``messages.py``);
professionals write for reachable patients (open space, not blocked), change and delete only the
documents they wrote and the messages and appointments they take part in.
"""

from __future__ import annotations

from fhir_server.formats import json as fjson
from fhir_server.french.ins import OID_IDNAT_PS, SYSTEM_RPPS
from fhir_server.french.visibility import MASQUE_PS, PATIENT_SETTABLE, TRE_A07_SYSTEMS, labels
from fhir_server.search.compartment import compartment_params
from fhir_server.search.extract import references_of
from fhir_server.security.messages import check_patient_message
from fhir_server.security.policy import (
    DIRECTORY_TYPES,
    PARTICIPANT_PARAMS,
    Access,
    denied,
    reachable_patient,
    require,
)
from fhir_server.security.space import REFUSED_WHEN_CLOSED, closure
from fhir_server.store.base import Store, UnitOfWork
from fhir_server.store.query import IdIn

V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#: Top-level elements of their own Patient a patient may change (identity traits come from the INS).
PATIENT_EDITABLE = frozenset({"extension", "telecom", "contact", "communication", "meta", "text"})
#: Types no API client writes, whoever it is: the server writes the access traces.
SERVER_ONLY = frozenset({"AuditEvent"})
#: Types only system clients write: the directory, and who legally represents whom (registered by
#: the service with its proof, never self-declared).
SYSTEM_ONLY = DIRECTORY_TYPES | {"RelatedPerson"}
#: Patient data a professional may change or delete only if it names them through these
#: parameters (the DMP's author-only rule, error 901); Patient and Provenance not at all.
OWNED_BY = {"DocumentReference": ("author",), "List": ("source",), "Communication": ("sender", "recipient"),
            "Appointment": ("actor",), "Binary": ()}  # a Binary: through the document it belongs to


def refuse_server_only(resource_type: str) -> None:
    if resource_type in SERVER_ONLY:
        raise denied(f"{resource_type} resources are written by the server only")


def check_write(access: Access, unit: UnitOfWork | Store, local_base: str | None, resource_type: str,
                new: dict | None, old: dict | None) -> set[str]:
    """Raise 403 unless ``access`` may turn ``old`` into ``new`` (None: create / delete); return
    the patients whose records the write touches (those of both versions). ``unit``: the unit of
    work that writes (the store itself for a check ahead of any write)."""
    require(access, "c" if old is None else "d" if new is None else "u", resource_type)
    before = patients_of(unit, local_base, old) if old is not None else set()
    after = patients_of(unit, local_base, new) if new is not None else set()
    if new is not None and resource_type in REFUSED_WHEN_CLOSED:
        _refuse_closed(unit, after - before)
    if access.unrestricted or access.kind == "system":
        return before | after
    if resource_type in SYSTEM_ONLY:
        raise denied(f"{resource_type} resources are written by the service (system clients) only")
    if access.kind in ("patient", "related"):
        _own_record(access, local_base, resource_type, before, after, new, old)
        if resource_type == "Communication":
            check_patient_message(access, unit, local_base, new, old)
    else:
        _professional(access, unit, local_base, resource_type, before | after, new, old)
    return before | after


def patients_of(reader: UnitOfWork | Store, local_base: str | None, resource: dict) -> set[str]:
    """The patients whose compartment holds ``resource`` (a Binary: those of its security context)."""
    resource_type = resource["resourceType"]
    if resource_type == "Patient":
        return {resource["id"]} if "id" in resource else set()
    if resource_type == "Binary":
        context = references_of(resource, ("securitycontext",), local_base)
        patients = {ref.partition("/")[2] for ref in context if ref.startswith("Patient/")}
        for ref in context - {f"Patient/{p}" for p in patients}:
            target_type, _, target_id = ref.partition("/")
            record = reader.read(target_type, target_id) if target_type in ("DocumentReference", "Communication") \
                else None
            if record is not None and not record.deleted:
                patients |= patients_of(reader, local_base, fjson.loads(record.body))
        return patients
    linked = references_of(resource, compartment_params(resource_type), local_base)
    return {ref.partition("/")[2] for ref in linked if ref.startswith("Patient/")}


def _refuse_closed(unit: UnitOfWork | Store, patients: set[str]) -> None:
    for patient_id in sorted(patients):
        record = unit.read("Patient", patient_id)
        if record is not None and not record.deleted and closure(fjson.loads(record.body)) is not None:
            raise denied(f"The health space of Patient/{patient_id} is closed: it accepts no new data")


def _own_record(access: Access, local_base: str | None, resource_type: str, before: set[str], after: set[str],
                new: dict | None, old: dict | None) -> None:
    mine = set(access.patients)
    if (old is not None and not before <= mine) or (new is not None and not (after and after <= mine)):
        raise denied("Patients and their representatives write in their own record only")
    if resource_type == "Patient":
        if new is None or old is None:
            raise denied("A patient's record is opened and deleted by the service, not by the patient")
        changed = {k for k in new.keys() | old.keys() if new.get(k) != old.get(k)}
        if changed - PATIENT_EDITABLE:
            raise denied(f"A patient may not change {', '.join(sorted(changed - PATIENT_EDITABLE))} "
                         "(identity traits come from the INS)")
    authors = references_of(old, ("author",), local_base) if old is not None else set()
    if resource_type == "DocumentReference" and old is not None and access.principal.reference not in authors:
        settable = PATIENT_SETTABLE if access.kind == "patient" else frozenset({MASQUE_PS})
        if new is None or _without_labels(new, settable) != _without_labels(old, settable):
            raise denied("On a document written by a professional, a patient may only mask or unmask it")


def _professional(access: Access, unit: UnitOfWork | Store, local_base: str | None, resource_type: str,
                  patients: set[str], new: dict | None, old: dict | None) -> None:
    if resource_type == "Consent":
        raise denied("Professionals do not write Consent resources: blocks are the patient's")
    if resource_type == "Patient" and old is not None:
        raise denied("A patient's record is changed by the patient or the service (closing it, identity from the INS)")
    if resource_type == "Patient":
        patients = set()  # registering a new patient: there is no space or block yet to answer to
    for patient_id in sorted(patients):
        if not unit.find("Patient", [IdIn((patient_id,)), *reachable_patient(access.viewer)], limit=1):
            raise denied(f"Patient/{patient_id}'s space is closed or has blocked this professional")
    if resource_type == "Binary" and not patients:
        raise denied("A Binary needs a securityContext: a document or message of a patient the professional reaches")
    named = OWNED_BY.get(resource_type)
    mine = set(access.actors)
    if resource_type == "Binary" and old is not None and not _context_is_mine(unit, local_base, old, mine):
        raise denied("Only the author of the document a Binary belongs to may change or delete it (DMP error 901)")
    if resource_type in PARTICIPANT_PARAMS and new is not None and not references_of(new, named, local_base) & mine:
        raise denied(f"A professional writes only the {resource_type} resources they take part in")
    if old is not None and (named is None or (named and not references_of(old, named, local_base) & mine
                                               and not _authored_by_id(unit, old, mine))):
        raise denied(f"Only the author of this {resource_type} may change or delete it (DMP error 901)")
    if old is not None and new is not None and _patient_labels(new) != _patient_labels(old):
        raise denied("Masking a document from professionals or representatives is the patient's decision")


def _authored_by_id(unit: UnitOfWork, document: dict, mine: set[str]) -> bool:
    """Whether a document whose authors are contained (as PDSm and CDA filings have them) names one
    of the professional's Practitioners by national id (idNatPs, or the RPPS it is made of)."""
    if document.get("resourceType") != "DocumentReference" or not document.get("contained"):
        return False
    contained = {r.get("id"): r for r in document["contained"]}
    written = set()
    for author in document.get("author", []):
        resource = contained.get(author.get("reference", "").removeprefix("#"), {})
        if resource.get("resourceType") == "PractitionerRole":
            resource = contained.get((resource.get("practitioner") or {}).get("reference", "").removeprefix("#"), {})
        written |= _national_ids(resource)
    if not written:
        return False
    for actor in mine:
        actor_type, _, actor_id = actor.partition("/")
        record = unit.read(actor_type, actor_id) if actor_type == "Practitioner" else None
        if record is not None and not record.deleted and _national_ids(fjson.loads(record.body)) & written:
            return True
    return False


def _national_ids(practitioner: dict) -> set[str]:
    """idNatPs values of a Practitioner: its idNatPs identifiers, and "8" + its RPPS numbers."""
    ids = set()
    for identifier in practitioner.get("identifier", []) if practitioner.get("resourceType") == "Practitioner" else ():
        value = identifier.get("value")
        if identifier.get("system") == OID_IDNAT_PS and value:
            ids.add(value)
        elif identifier.get("system") == SYSTEM_RPPS and value:
            ids.add("8" + value)
    return ids


def _context_is_mine(unit: UnitOfWork, local_base: str | None, binary: dict, mine: set[str]) -> bool:
    """Whether the document or message a Binary belongs to names one of ``mine`` as author / participant."""
    for reference in references_of(binary, ("securitycontext",), local_base):
        context_type, _, context_id = reference.partition("/")
        record = unit.read(context_type, context_id) if context_type in OWNED_BY else None
        if record is not None and not record.deleted and references_of(
                fjson.loads(record.body), OWNED_BY[context_type], local_base) & mine:
            return True
    return False


def _patient_labels(document: dict) -> set[str]:
    """The TRE_A07 codes only the patient sets (``securityLabel`` or ``meta.security``)."""
    return labels(document) & PATIENT_SETTABLE


def _without_labels(document: dict, settable: frozenset[str]) -> dict:
    """The document minus what a patient may toggle: those TRE_A07 codes and v3 ``N``, in
    ``securityLabel`` and ``meta.security``, and the server's own ``meta`` fields."""
    def kept(coding: dict) -> bool:
        return not ((coding.get("system") in TRE_A07_SYSTEMS and coding.get("code") in settable)
                    or (coding.get("system") == V3_CONFIDENTIALITY and coding.get("code") == "N"))

    labels_ = [{**c, "coding": [x for x in c.get("coding", ()) if kept(x)]} for c in document.get("securityLabel", ())]
    meta = {k: v for k, v in (document.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    meta["security"] = [c for c in meta.get("security", ()) if kept(c)]
    rest = {k: v for k, v in document.items() if k not in ("meta", "securityLabel")}
    return {**rest, "meta": meta, "securityLabel": [c for c in labels_ if c["coding"] or c.keys() - {"coding"}]}
