"""The inbox's resources: a received mail as a Communication, its sender as a Practitioner.

No French profile of Communication exists (FRENCH_STANDARDS.md §1.6); the shape follows the
Mon Espace Santé app's model: the conversation's subject, who wrote (with their MSSanté
address), the text and files, whether the patient may answer (``X-MSS-MES: FIN``: not), whether
they have read it. Server extensions (``https://mes-interop.org/fhir/StructureDefinition/…``):

- ``reply-allowed`` (boolean): false when the sender closed the conversation;
- ``read`` (dateTime): when the patient read it, absent while unread (search ``read:missing``);
- ``mail-envelope``: what receipts and replies need later — ``messageId``, ``from``, ``subject``
  (as sent, with any ``XDM/1.0/DDM+`` prefix), ``dispositionNotificationTo``, ``returnPath``,
  ``recipient`` (the patient address written to), the ``X-MSS-*`` headers (``mssHeader``,
  "name: value"), ``original`` (the mail as received, a ``message/rfc822`` Binary);
- ``receipts``: what the bridge owes the sender — ``owed`` codes (``processed`` and ``displayed``
  MDNs when asked, ``error-mail`` when a document was refused and no MDN was asked), the
  refused documents' DMP ``error`` codes, and what was ``sent`` (search ``receipt-owed``);
- ``signature``: the S/MIME verification result (``valid``, ``signer``, ``detail``);
- ``relay`` (on a patient's reply): the relay's ``attempts`` and ``lastError`` while it is retried.
"""

from __future__ import annotations

from datetime import datetime

from fhir_server.core.errors import DMP_ERRORS
from fhir_server.french.fr_core import PROFILE_ORGANIZATION, PROFILE_PRACTITIONER
from fhir_server.french.ins import OID_IDNAT_PS, OID_IDNAT_ST, SYSTEM_RPPS
from fhir_server.security.space import MES_CANONICAL
from mssante_bridge.mail import ParsedMail
from mssante_bridge.spool import Envelope

EXT = f"{MES_CANONICAL}/StructureDefinition/"
REPLY_ALLOWED, READ, MAIL_ENVELOPE, SIGNATURE, RECEIPTS, RELAY = (EXT + name for name in (
    "reply-allowed", "read", "mail-envelope", "signature", "receipts", "relay"))
#: What a patient may change on a message of their inbox: whether they have read it.
PATIENT_SETTABLE = frozenset({READ})
#: What only the bridge writes on a message.
SERVER_EXTENSIONS = frozenset({REPLY_ALLOWED, MAIL_ENVELOPE, SIGNATURE, RECEIPTS, RELAY})
PROCESSED, DISPLAYED, ERROR_MAIL = "processed", "displayed", "error-mail"
MID_SYSTEM = "urn:ietf:rfc:3986"  # a Message-ID as a URI: mid:… (RFC 2392)
EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
MSSANTE = {"system": "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie",
           "code": "MSSANTE"}
CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/communication-category",
                        "code": "notification"}]}
EMAIL_MEDIUM = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                            "code": "EMAILWRIT", "display": "email"}]}


def mid(message_id: str) -> str:
    """``<abc@x>`` → ``mid:abc@x`` (RFC 2392)."""
    return "mid:" + message_id.strip().strip("<>")


def received(*, patient: str, sender: str, mail: ParsedMail, address: str, envelope: Envelope, payload: list[dict],
             in_response_to: str | None, received: datetime, original: str, errors: list[tuple[str, str]]) -> dict:
    envelope_parts = [{"url": key, "valueString": value} for key, value in (
        ("messageId", mail.message_id), ("from", mail.sender), ("subject", mail.subject),
        ("dispositionNotificationTo", mail.disposition_notification_to),
        ("returnPath", mail.return_path or envelope.mail_from), ("recipient", address)) if value]
    envelope_parts += [{"url": "mssHeader", "valueString": f"{name}: {value}"}
                       for name, value in sorted(mail.mss.items())]
    extensions = [{"url": REPLY_ALLOWED, "valueBoolean": mail.mss.get("X-MSS-MES", "").upper() != "FIN"},
                  {"url": MAIL_ENVELOPE, "extension": [*envelope_parts,
                                                       {"url": "original", "valueReference": {"reference": original}}]}]
    owed = [PROCESSED, DISPLAYED] if mail.disposition_notification_to else [ERROR_MAIL] if errors else []
    if owed:
        extensions.append({"url": RECEIPTS, "extension": [
            *({"url": "owed", "valueCode": code} for code in owed),
            *({"url": "error", "valueCoding": {"system": DMP_ERRORS, "code": code, "display": label}}
              for code, label in errors)]})
    if mail.signature is not None:
        extensions.append({"url": SIGNATURE, "extension": [
            {"url": "valid", "valueBoolean": mail.signature.valid},
            *([{"url": "signer", "valueString": mail.signature.signer}] if mail.signature.signer else []),
            {"url": "detail", "valueString": mail.signature.detail or "-"}]})
    resource: dict = {"resourceType": "Communication", "extension": extensions}
    if mail.message_id:
        resource["identifier"] = [{"system": MID_SYSTEM, "value": mid(mail.message_id)}]
    if in_response_to:
        resource["inResponseTo"] = [{"reference": in_response_to}]
    resource |= {"status": "completed", "category": [CATEGORY], "medium": [EMAIL_MEDIUM],
                 "subject": {"reference": patient}}
    if mail.subject_shown:
        resource["topic"] = {"text": mail.subject_shown}
    if mail.sent is not None:
        resource["sent"] = mail.sent.isoformat()
    resource |= {"received": received.isoformat(), "recipient": [{"reference": patient}],
                 "sender": {"reference": sender}}
    if payload:
        resource["payload"] = payload
    return resource


def _mssante_address(address: str) -> list[dict]:
    return [{"extension": [{"url": EMAIL_TYPE, "valueCoding": MSSANTE}], "system": "email", "value": address}]


def organization(address: str, institution: str) -> dict:
    """An organisation's mailbox the directory does not know yet, from the XDM authorInstitution
    (XON: ``name^^^^^&<authority OID>&ISO^IDNST^^^<id>``)."""
    parts = institution.split("^")
    resource: dict = {"resourceType": "Organization", "meta": {"profile": [PROFILE_ORGANIZATION]}}
    authority = parts[5].split("&")[1] if len(parts) > 5 and "&" in parts[5] else ""
    if len(parts) > 9 and parts[9] and f"urn:oid:{authority}" == OID_IDNAT_ST:
        resource["identifier"] = [{"system": OID_IDNAT_ST, "value": parts[9]}]
    return {**resource, "name": parts[0] or address, "telecom": _mssante_address(address)}


def practitioner(address: str, name: str | None, rpps: str | None) -> dict:
    """A sender the directory does not know yet: their MSSanté address, name and national ids."""
    resource: dict = {"resourceType": "Practitioner", "meta": {"profile": [PROFILE_PRACTITIONER]}}
    if rpps:
        number = rpps[-11:]
        resource["identifier"] = [{"system": OID_IDNAT_PS, "value": "8" + number},
                                  {"system": SYSTEM_RPPS, "value": number}]
    if name:
        resource["name"] = [{"text": name}]
    resource["telecom"] = _mssante_address(address)
    return resource


def part(extension: dict | None, name: str) -> list:
    """The values of a complex extension's sub-extensions called ``name``."""
    return [next(v for k, v in e.items() if k.startswith("value")) for e in (extension or {}).get("extension", ())
            if e.get("url") == name]


def extension_of(resource: dict, url: str) -> dict | None:
    return next((e for e in resource.get("extension", ()) if e.get("url") == url), None)
