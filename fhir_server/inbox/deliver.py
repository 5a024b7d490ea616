"""A spooled mail delivered into each recipient patient's inbox: one Communication per patient,
in one unit of work with its receipt, so a mail is delivered once per patient whatever happens
(a crash after the commit re-runs the delivery, which finds the receipt; the same Message-ID sent
again by the same sender finds it too).

The Communication: the patient as subject and recipient; the sender found or made from the
MSSanté address (and the XDM author's RPPS when there is one); ``sent`` from Date, ``received``
now; the subject as ``topic``; the text body, then each attachment as a Binary-backed payload
(the Binary's security context is the Communication, so it is seen with it); ``inResponseTo``
the message In-Reply-To (or the last of References) names; whether the patient may reply
(``X-MSS-MES: FIN`` → not). CDA documents of an IHE XDM package meant for the DMP are filed there
(``dmp/ingest.py``, the same rules as every door) and named in the payload; one the DMP refuses
stays an attachment, and its DMP error code goes back to the sender (an error receipt).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import UTC, datetime

from cda.document import CdaDocument
from fhir_server.core.errors import FhirError
from fhir_server.core.repository import Repository, Writer
from fhir_server.core.resources import new_id
from fhir_server.dmp.ingest import checked_cda
from fhir_server.french.dmp_errors import ERRORS
from fhir_server.french.ins import SYSTEM_RPPS
from fhir_server.inbox import mailbox
from fhir_server.inbox.filing import file_for_patient
from fhir_server.inbox.recipients import patients_of_matricule
from fhir_server.search.criteria import token_query
from mssante_bridge.addresses import patient_matricule
from mssante_bridge.mail import Attachment, ParsedMail
from mssante_bridge.spool import Envelope
from mssante_bridge.xdm import XdmPackage

DOOR = "smtp"
log = logging.getLogger("mes")


class Undeliverable(Exception):
    """A recipient accepted at RCPT names no patient any more (the record went in between)."""


def deliver(repository: Repository, envelope: Envelope, data: bytes, mail: ParsedMail, packages: list[XdmPackage],
            patient_domain: str) -> list[str]:
    """Deliver ``mail`` to every patient its envelope names (each in its own unit of work); the
    ids of the Communications delivered now (not those a previous attempt delivered)."""
    delivered = []
    message_key = mail.message_id or _digest(mail)
    documents = [_checked(d.data) for package in packages for d in package.documents if d.for_dmp]  # before any lock
    for address in envelope.rcpt_tos:
        matricule = patient_matricule(address, patient_domain)
        patients = patients_of_matricule(repository, matricule) if matricule else []
        if not patients:
            raise Undeliverable(f"{address} names no patient any more")
        for patient_id in patients:
            with repository.writer() as writer:
                receipt = f"{message_key}|{patient_id}"
                if writer.receipt(DOOR, envelope.mail_from, receipt) is not None:
                    continue
                communication_id = _deliver_to(writer, envelope, data, mail, packages, documents, patient_id, address)
                writer.keep_receipt(DOOR, envelope.mail_from, receipt, communication_id.encode())
            delivered.append(communication_id)
    return delivered


def _deliver_to(writer: Writer, envelope: Envelope, data: bytes, mail: ParsedMail, packages: list[XdmPackage],
                documents: list[CdaDocument | FhirError], patient_id: str, address: str) -> str:
    communication_id = new_id()
    context = {"reference": f"Communication/{communication_id}"}
    payload: list[dict] = [{"contentString": mail.text}] if mail.text else []
    for attachment in mail.attachments:
        payload.append({"contentAttachment": _stored(writer, attachment, context)})
    errors: list[tuple[str, str]] = []
    for document in documents:
        filed = _filed(writer, document, patient_id, context["reference"], errors)
        if filed is not None:
            payload.append({"contentReference": {"reference": f"DocumentReference/{filed}"}})
    original = _stored(writer, Attachment(None, "message/rfc822", data), context)["url"]
    resource = mailbox.received(
        patient=f"Patient/{patient_id}", sender=_sender(writer, envelope.mail_from, mail, packages),
        mail=mail, address=address, envelope=envelope, payload=payload,
        in_response_to=_answered(writer, mail, patient_id), received=datetime.now(UTC), original=original,
        errors=errors)
    writer.create("Communication", resource, resource_id=communication_id)
    return communication_id


def _stored(writer: Writer, attachment: Attachment, context: dict) -> dict:
    """An attachment kept as a Binary (seen with its message), as the payload names it."""
    binary = {"resourceType": "Binary", "contentType": attachment.content_type or "application/octet-stream",
              "securityContext": context, "data": base64.b64encode(attachment.data).decode("ascii")}
    binary_id = writer.create("Binary", binary).record.id
    out = {"contentType": binary["contentType"], "url": f"Binary/{binary_id}", "size": len(attachment.data),
           "hash": base64.b64encode(hashlib.sha1(attachment.data).digest()).decode("ascii")}
    return {**out, "title": attachment.filename} if attachment.filename else out


def _checked(data: bytes) -> CdaDocument | FhirError:
    """A CDA document meant for the DMP, read and checked (or why not): outside the units of work,
    so that two deliveries read their documents side by side."""
    try:
        return checked_cda(data)
    except FhirError as error:
        return error


def _filed(writer: Writer, document: CdaDocument | FhirError, patient_id: str, message: str,
           errors: list[tuple[str, str]]) -> str | None:
    """A CDA document filed in the patient's DMP; None (and the error kept) if the DMP refuses it.
    The filing checks everything before it writes; should a write itself fail, the error goes up
    and the whole delivery is rolled back (and retried)."""
    writes = len(writer.written)
    try:
        if isinstance(document, FhirError):
            raise document
        return file_for_patient(writer, document, patient_id, message).document.id
    except FhirError as error:
        if any(interaction != "read" for interaction, _, _ in writer.written[writes:]):
            raise  # a half-filed document: never commit it
        code = next((issue.dmp_code for issue in error.issues if issue.dmp_code), "906")
        log.info("MSSanté bridge: a document for Patient/%s refused (%s): %s", patient_id, code,
                 error.issues[0].diagnostics)
        errors.append((code, ERRORS.get(code, ERRORS["906"])))
        return None


def _sender(writer: Writer, address: str, mail: ParsedMail, packages: list[XdmPackage]) -> str:
    """Who wrote: the Practitioner of the XDM author's RPPS, else the Practitioner or Organization
    with this MSSanté address; made if unknown — an Organization when the XDM author is an
    institution alone (an organisation's mailbox), else a Practitioner."""
    authors = [a for package in packages for a in package.submission_set.authors]
    rpps = next((a.rpps for a in authors if a.rpps), None)
    queries = [("Practitioner", token_query("identifier", SYSTEM_RPPS, rpps[-11:]))] if rpps else []
    queries += [("Practitioner", f"email={address}"), ("Organization", f"email={address}")]
    for resource_type, query in queries:
        found = writer.matching(resource_type, query, 1)
        if found:
            return f"{resource_type}/{found[0]}"
    institution = next((a.institution for a in authors if a.institution and not a.person), None)
    made = writer.create("Organization", mailbox.organization(address, institution)) if institution and not rpps \
        else writer.create("Practitioner", mailbox.practitioner(address, mail.sender_name, rpps))
    return f"{made.record.type}/{made.record.id}"


def _answered(writer: Writer, mail: ParsedMail, patient_id: str) -> str | None:
    """The message of this patient's inbox this mail answers (In-Reply-To, else the latest of
    References we know): a mail sent to several patients is one message in each inbox."""
    for message_id in [mail.in_reply_to, *reversed(mail.references)]:
        if message_id:
            query = token_query("identifier", mailbox.MID_SYSTEM, mailbox.mid(message_id))
            found = writer.matching("Communication", f"{query}&subject=Patient/{patient_id}", 1)
            if found:
                return f"Communication/{found[0]}"
    return None


def _digest(mail: ParsedMail) -> str:
    """A key for a mail without Message-ID: what makes it itself."""
    text = "|".join([mail.sender, mail.subject, str(mail.sent), mail.text or ""])
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

