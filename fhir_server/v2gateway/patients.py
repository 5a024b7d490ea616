"""ADT (IHE PAM, French national extension) applied to Patients.

- A28 / A31 (person added / updated), A01 / A04 / A05 (admission, registration, pre-admission),
  A08 (update): the patient the PID's identifiers find (INS first, then the facility's IPP) is
  updated, or created. An update keeps what other doors wrote (other identifiers, the space's
  closure, links) and replaces what the PID states.
- A40 (merge): the patient MRG-1 names is merged into the one the PID names: it becomes
  inactive with a ``replaced-by`` link, the survivor gets a ``replaces`` link, and the merged
  patient's documents, appointments and messages now name the survivor.
- A47 (identifier change): the identifiers MRG-1 lists are replaced by those the PID-3 gives for
  the same authority.
- ZFA (DMP status, consents, oppositions) when present: recorded as the patient's DMP Consent.

Visits (PV1, PV2, ZBE) are not kept: the server has no Encounter.
"""

from __future__ import annotations

from collections.abc import Iterable

from fhir_server.core.repository import Writer
from fhir_server.formats import json as fjson
from fhir_server.search.criteria import token_query
from fhir_server.v2gateway import consent
from fhir_server.v2gateway.options import Options
from hl7v2.ack import DUPLICATE_KEY, ERROR, REQUIRED_FIELD_MISSING, UNKNOWN_KEY, Location, V2Error, V2Problem
from hl7v2.er7 import Message
from hl7v2.patient import PatientIdentity, identifiers_of, read_pid

#: The elements a PID states: replaced by an update, the rest of the resource kept.
STATED = ("name", "gender", "birthDate", "address", "telecom", "deceasedBoolean", "deceasedDateTime")
#: Documents, appointments and messages follow a merged patient: (type, search parameter, paths).
FOLLOWERS = (("DocumentReference", "subject", ("subject",)),
             ("Appointment", "patient", ("participant", "actor")),
             ("Communication", "subject", ("subject",)),
             ("Communication", "recipient", ("recipient",)))
MAX_FOLLOWERS = 10_000


def find_patient(writer: Writer, identity: PatientIdentity) -> str | None:
    """The patient the identifiers name (INS first, then the IPP, then the others)."""
    return _found(writer, identity.keys)


def _found(writer: Writer, keys: Iterable[str]) -> str | None:
    for key in keys:
        system, _, value = key.partition("|")
        found = writer.existing_match("Patient", token_query("identifier", system, value))
        if found is not None:
            return found
    return None


def upsert_patient(writer: Writer, identity: PatientIdentity) -> str:
    """The id of the patient the PID names, written with what the PID states."""
    found = find_patient(writer, identity)
    if found is None:
        return writer.create("Patient", identity.resource).record.id
    current = fjson.loads(writer.read_current("Patient", found).body)
    writer.update("Patient", found, _updated(current, identity.resource))
    return found


def _updated(current: dict, stated: dict) -> dict:
    out = {k: v for k, v in current.items() if k not in STATED and k != "meta"}
    out.update({k: stated[k] for k in STATED if k in stated})
    out["meta"] = {"profile": stated["meta"]["profile"]}
    keys = {(i["system"], i["value"]) for i in stated["identifier"]}
    out["identifier"] = stated["identifier"] + [i for i in current.get("identifier", [])
                                                if (i.get("system"), i.get("value")) not in keys]
    urls = {e["url"] for e in stated.get("extension", [])}
    extensions = stated.get("extension", []) + [e for e in current.get("extension", []) if e.get("url") not in urls]
    if extensions:
        out["extension"] = extensions
    return out


def register(message: Message, writer: Writer, options: Options) -> None:
    patient_id = upsert_patient(writer, read_pid(message.first("PID")))
    zfa = message.first("ZFA")
    if zfa is not None:
        consent.record(writer, patient_id, zfa)


def merge(message: Message, writer: Writer, options: Options) -> None:
    survivor = upsert_patient(writer, read_pid(message.first("PID")))
    merged = _merged_patient(writer, message)
    if merged == survivor:
        raise V2Error(ERROR, V2Problem(DUPLICATE_KEY, "MRG-1 names the surviving patient itself",
                                       "MRG-1 désigne le patient conservé lui-même", Location("MRG", 1)))
    for resource_type, param, path in FOLLOWERS:
        for follower in writer.matching(resource_type, f"{param}=Patient/{merged}", MAX_FOLLOWERS):
            resource = fjson.loads(writer.read_current(resource_type, follower).body)
            writer.update(resource_type, follower, _repointed(resource, path, merged, survivor))
    old = fjson.loads(writer.read_current("Patient", merged).body)
    old["active"] = False
    old["link"] = [*old.get("link", []), {"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"}]
    writer.update("Patient", merged, old)
    kept = fjson.loads(writer.read_current("Patient", survivor).body)
    kept["link"] = [*kept.get("link", []), {"other": {"reference": f"Patient/{merged}"}, "type": "replaces"}]
    writer.update("Patient", survivor, kept)


def change_identifier(message: Message, writer: Writer, options: Options) -> None:
    """A47: the identifiers MRG-1 lists give way to PID-3's of the same authority."""
    patient_id = _merged_patient(writer, message)
    _, old = identifiers_of(message.first("MRG").repetitions(1))
    _, new = identifiers_of(message.first("PID").repetitions(3))
    resource = fjson.loads(writer.read_current("Patient", patient_id).body)
    replaced = {(system, value) for system, value, _ in old}
    systems = {system for system, _, _ in old}
    added = [(system, value, kind) for system, value, kind in new if system in systems]
    if not added:
        raise V2Error(ERROR, V2Problem(REQUIRED_FIELD_MISSING, "PID-3 gives no new identifier for MRG-1's authority",
                                       "PID-3 ne donne pas de nouvel identifiant pour l'autorité de MRG-1",
                                       Location("PID", 3)))
    for system, value, _ in added:
        other = writer.existing_match("Patient", token_query("identifier", system, value))
        if other is not None and other != patient_id:
            raise V2Error(ERROR, V2Problem(DUPLICATE_KEY, f"The identifier {value} already names Patient/{other}",
                                           f"L'identifiant {value} désigne déjà un autre patient", Location("PID", 3)))
    kept = [i for i in resource.get("identifier", []) if (i.get("system"), i.get("value")) not in replaced]
    new_identifiers = [i for i in read_pid(message.first("PID")).resource["identifier"]
                       if (i["system"], i["value"]) in {(s, v) for s, v, _ in added}]
    resource["identifier"] = kept + [i for i in new_identifiers if i not in kept]
    writer.update("Patient", patient_id, resource)


def _merged_patient(writer: Writer, message: Message) -> str:
    """The patient MRG-1 names (the one merged away, or whose identifier changes)."""
    mrg = message.first("MRG")
    if mrg is None:
        raise V2Error(ERROR, V2Problem(REQUIRED_FIELD_MISSING, "The message has no MRG segment",
                                       "Le message n'a pas de segment MRG", Location("MRG")))
    ins, others = identifiers_of(mrg.repetitions(1))
    keys = ([f"urn:oid:{ins.root}|{ins.extension}"] if ins else []) + [f"{s}|{v}" for s, v, _ in others]
    found = _found(writer, keys)
    if found is not None:
        return found
    raise V2Error(ERROR, V2Problem(UNKNOWN_KEY, "MRG-1 names no known patient", "MRG-1 ne désigne aucun patient connu",
                                   Location("MRG", 1)))


def _repointed(resource: dict, path: tuple[str, ...], old: str, new: str) -> dict:
    """``resource`` with the references to Patient/old along ``path`` now naming Patient/new."""
    def walk(node, steps):
        if isinstance(node, list):
            for item in node:
                walk(item, steps)
        elif isinstance(node, dict):
            if not steps:
                if node.get("reference") == f"Patient/{old}":
                    node["reference"] = f"Patient/{new}"
            elif steps[0] in node:
                walk(node[steps[0]], steps[1:])
    walk(resource, path)
    return resource


HANDLERS = {("ADT", event): register for event in ("A01", "A04", "A05", "A08", "A28", "A31")}
HANDLERS |= {("ADT", "A40"): merge, ("ADT", "A47"): change_identifier}
