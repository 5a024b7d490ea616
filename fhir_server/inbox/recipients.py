"""Who can receive a sender's mail, decided at RCPT time so that nothing is accepted that cannot
be delivered: the address must name a patient (by INS matricule, whichever INS system), whose
space is open, and who has not blocked the sender (the Practitioners and PractitionerRoles whose
MSSanté address is the sender's, with their roles and organisations, as the access policy reads
blocks). These are yes/no answers to a certificate-authenticated sender, read with no principal's
rights and not traced: nothing of the patient's record is answered."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fhir_server.core.repository import Repository
from fhir_server.formats import json as fjson
from fhir_server.french.ins import INS_SYSTEMS
from fhir_server.search.criteria import escaped
from fhir_server.search.plan import plan_conditional
from fhir_server.security.access import resolve_access
from fhir_server.security.policy import Viewer, reachable_patient
from fhir_server.security.space import closure
from fhir_server.security.tokens import Principal
from fhir_server.store.query import IdIn

MAX_MATCHES = 10


@dataclass(frozen=True)
class Refusal:
    """An SMTP refusal: the reply code, its enhanced status and the explanation."""

    code: int
    enhanced: str
    text: str

    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


def patients_of_matricule(repository: Repository, matricule: str) -> list[str]:
    """The patients an INS matricule names (one matricule may be a NIR and a NIA record)."""
    query = urlencode([("identifier", ",".join(f"{escaped(system)}|{escaped(matricule)}" for system in INS_SYSTEMS))])
    clauses = plan_conditional("Patient", query, repository.local_base)
    return [record.id for record in repository.store.find("Patient", clauses, limit=MAX_MATCHES)]


def sender_actors(repository: Repository, sender: str) -> tuple[str, ...]:
    """The references that stand for the sender: Practitioners, PractitionerRoles and
    Organizations with that e-mail address, and the roles and organisations of the first two."""
    actors: list[str] = []
    for resource_type in ("Practitioner", "PractitionerRole"):
        clauses = plan_conditional(resource_type, urlencode([("email", sender)]), repository.local_base)
        for record in repository.store.find(resource_type, clauses, limit=MAX_MATCHES):
            principal = Principal("practitioner", f"{resource_type}/{record.id}", "mssante", sender, ())
            actors += resolve_access(repository.store, principal, local_base=repository.local_base).actors
    organizations = plan_conditional("Organization", urlencode([("email", sender)]), repository.local_base)
    actors += [f"Organization/{record.id}" for record in repository.store.find("Organization", organizations,
                                                                               limit=MAX_MATCHES)]
    return tuple(dict.fromkeys(actors))


def refusal_for(repository: Repository, sender: str, matricule: str) -> Refusal | None:
    """Why the patient ``matricule`` cannot receive ``sender``'s mail, or None if they can."""
    patients = patients_of_matricule(repository, matricule)
    if not patients:
        return Refusal(550, "5.1.1", f"No Mon Espace Santé patient has the INS {matricule} (patient inconnu)")
    for patient_id in patients:
        record = repository.store.read("Patient", patient_id)
        if closure(fjson.loads(record.body)) is not None:
            return Refusal(550, "5.2.1", f"The health space of INS {matricule} is closed (espace fermé)")
    actors = sender_actors(repository, sender)
    if actors:
        viewer = Viewer("practitioner", (), actors, False)
        reachable = repository.store.find("Patient", [IdIn(tuple(patients)), *reachable_patient(viewer)],
                                          limit=len(patients))
        if len(reachable) < len(patients):
            return Refusal(550, "5.7.1", f"The patient with INS {matricule} does not accept mail from {sender}"
                           " (expéditeur bloqué par le patient)")
    return None
