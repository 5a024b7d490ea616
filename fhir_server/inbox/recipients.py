"""Who can receive a sender's mail, decided at RCPT time so that nothing is accepted that cannot
be delivered — through the core, with the rule the delivery's write answers to: the address must
name a patient (by INS matricule, whichever INS system) whom the bridge's client may see; the
patient's space must be open (the core refuses new messages in a closed one); and the sender, as
the directory knows them by that MSSanté address (Practitioners, PractitionerRoles, Organizations,
with their roles and organisations), must not be blocked by the patient. The answers are yes/no to
a certificate-authenticated server: nothing of the record is disclosed, so they are not traced."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fhir_server.core.errors import FhirError
from fhir_server.core.repository import Repository
from fhir_server.french.ins import INS_SYSTEMS
from fhir_server.search.criteria import escaped
from fhir_server.security.scopes import parse_scopes
from fhir_server.security.tokens import Principal

MAX_MATCHES = 10
DIRECTORY = ("Practitioner", "PractitionerRole", "Organization")
#: What a sender is checked for: writing a message into a patient's record.
SENDER_SCOPES = parse_scopes("user/Communication.c")


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
    return repository.matching("Patient", query, MAX_MATCHES)


def senders(repository: Repository, sender: str) -> list[Repository]:
    """The sender as each directory entry with that e-mail address would act (as a professional
    who may write messages), their roles and organisations resolved by the core."""
    query = urlencode([("email", sender)])
    found = [f"{resource_type}/{found_id}" for resource_type in DIRECTORY
             for found_id in repository.matching(resource_type, query, MAX_MATCHES)]
    return [repository.acting_as(repository.resolve_access(Principal("practitioner", reference, "mssante", sender,
                                                                     SENDER_SCOPES)))
            for reference in found]


def refusal_for(repository: Repository, sender: str, matricule: str) -> Refusal | None:
    """Why the patient ``matricule`` cannot receive ``sender``'s mail, or None if they can.
    ``repository`` acts as the bridge's client."""
    patients = patients_of_matricule(repository, matricule)
    if not patients:
        return Refusal(550, "5.1.1", f"No Mon Espace Santé patient has the INS {matricule} (patient inconnu)")
    as_sender = senders(repository, sender)
    for patient_id in patients:
        message = {"resourceType": "Communication", "status": "in-progress",
                   "subject": {"reference": f"Patient/{patient_id}"},
                   "recipient": [{"reference": f"Patient/{patient_id}"}]}
        if not _may_create(repository, message):  # the bridge itself: only a closed space stops it
            return Refusal(550, "5.2.1", f"The health space of INS {matricule} is closed (espace fermé)")
        for who in as_sender:
            if not _may_create(who, {**message, "sender": {"reference": who.access.principal.reference}}):
                return Refusal(550, "5.7.1", f"The patient with INS {matricule} does not accept mail from {sender}"
                               " (expéditeur bloqué par le patient)")
    return None


def _may_create(repository: Repository, resource: dict) -> bool:
    try:
        repository.check_create("Communication", resource)
    except FhirError:
        return False
    return True
