"""The bridge's outbox: what it owes professionals, sent through the relay (``MES_SMTP_RELAY``).

The store is the outbox. What is owed is written in the unit of work that caused it — a
delivered message says which receipts it owes (``receipts`` extension, search ``receipt-owed``),
a patient's answer is created ``in-progress`` — so a crash loses nothing owed and nothing is sent
that was not committed. The courier asks the store what is due, sends it, and settles it: the
owed code moves to ``sent`` / the answer becomes ``completed`` with its ``sent`` time and
Message-ID. A crash between the relay's ``250`` and the settling sends that mail again, with the
same Message-ID (receipts and answers are sent at least once; the professional's client sees one).

Both receipts go out when the sender asked for one (``Disposition-Notification-To``): the
``processed`` one is the bridge's own integration report, the CI-SIS asks for it (with the DMP's
error code when a document was refused); the ``displayed`` one is the patient's, made when their
app marks the message read. RFC 8098 lets one user agent send one MDN per recipient; here two
agents report, each once (and a refused document's error mail replaces the ``processed`` MDN
when no MDN was asked).

A send that fails is retried with growing delays; its attempts and last error are written on the
message (``relay`` extension), so the patient's app can show "not sent yet, because…". After
``MAX_ATTEMPTS`` an answer is ``stopped`` (``statusReason`` says why) and a receipt is given up
(``failed``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from fhir_server.core.errors import FhirError
from fhir_server.core.repository import Repository
from fhir_server.formats import json as fjson
from fhir_server.inbox import mailbox
from fhir_server.inbox.mailbox import DISPLAYED, ERROR_MAIL, PROCESSED, extension_of, part
from fhir_server.security.audit import AuditRecorder, AuditTrail
from mssante_bridge import mdn, replies
from mssante_bridge.relay import Relay, RelayError, RelaySession

log = logging.getLogger("mes")

MAX_ATTEMPTS = 8
LONGEST_WAIT_SECONDS = 600
BATCH = 50
ANSWER = "answer"
#: What is due, as searches: owed receipts, displayed ones once the patient read, answers to relay.
DUE = ((PROCESSED, [("receipt-owed", f"{PROCESSED},{ERROR_MAIL}")]),
       (DISPLAYED, [("receipt-owed", DISPLAYED), ("read:missing", "false")]),
       (ANSWER, [("status", "in-progress"), ("in-response-to:missing", "false")]))


@dataclass(frozen=True)
class Outgoing:
    """One mail to hand to the relay, and what it settles."""

    kind: str  # processed, displayed, error-mail or answer
    communication: str  # the id of the message it is about (received, or the patient's answer)
    message: EmailMessage
    envelope_from: str
    recipients: list[str]

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class Outbox:
    def __init__(self, repository: Repository, audit: AuditTrail, relay: Relay, patient_domain: str) -> None:
        self._repository = repository  # acting as the bridge's system client
        self._audit = audit
        self._relay = relay
        self._domain = patient_domain
        self._not_before: dict[str, float] = {}  # Communication id → when to try again (monotonic)
        self._skipped: set[str] = set()  # in-progress Communications that are no answers to mail

    async def run_forever(self, poll_seconds: float) -> None:
        """A round every ``poll_seconds`` (what fell due meanwhile goes in one round)."""
        while True:
            try:
                await self.send_due()
            except Exception:  # the courier keeps going; what was due stays due
                log.exception("MSSanté bridge: the outbox round failed")
            await asyncio.sleep(poll_seconds)

    async def send_due(self) -> int:
        """Send what is due now, in a worker thread; how many mails went out."""
        recorder = AuditRecorder(self._repository.access, "outbox")
        try:
            return await asyncio.to_thread(self._round, self._repository.acting_as(self._repository.access, recorder))
        finally:
            await self._audit.record(recorder)

    def _round(self, repository: Repository) -> int:
        sent = 0
        with self._relay.session() as relay:
            for kind, query in DUE:
                for record in repository.search("Communication", query, count=BATCH).records:
                    if record.id not in self._skipped and self._not_before.get(record.id, 0) <= time.monotonic():
                        sent += self._send(repository, relay, kind, fjson.loads(record.body))
        return sent

    def _send(self, repository: Repository, relay: RelaySession, kind: str, message: dict) -> int:
        try:
            outgoing = self._compose(repository, kind, message)
        except (FhirError, ValueError) as error:  # nothing can be sent for it, ever
            why = str(error)
            log.warning("MSSanté bridge: nothing to send for Communication/%s (%s): %s", message["id"], kind, why)
            self._settle(repository, message["id"], lambda m: _given_up(m, kind, why))
            return 0
        if outgoing is None:
            return 0
        try:
            relay.send(outgoing.message, outgoing.envelope_from, outgoing.recipients)
        except RelayError as error:
            self._failed(repository, outgoing, str(error))
            return 0
        self._not_before.pop(message["id"], None)
        self._settle(repository, message["id"], lambda m: _settled(m, outgoing))
        return 1

    # -- composing -------------------------------------------------------------------------

    def _compose(self, repository: Repository, kind: str, message: dict) -> Outgoing | None:
        if kind == ANSWER:
            return self._answer(repository, message)
        receipts = extension_of(message, mailbox.RECEIPTS)
        error = _first_error(message) if part(receipts, "error") else None
        original = self._original(repository, message)
        now = datetime.now(UTC)
        mail = None
        if kind in part(receipts, "owed"):
            mail = mdn.disposition_notification(
                original, reporting=original.recipient, disposition=mdn.PROCESSED if kind == PROCESSED
                else mdn.DISPLAYED, error=error if kind == PROCESSED else None, when=now,
                message_id=f"<{kind}-{message['id']}@{self._domain}>")
        if mail is None and error and kind == PROCESSED:  # no MDN asked, or RFC 8098 §2.1 forbids it
            kind = ERROR_MAIL
            mail = mdn.error_mail(original, code=error[0], label=error[1], when=now, from_address=original.recipient,
                                  message_id=f"<{kind}-{message['id']}@{self._domain}>")
        if mail is None:  # RFC 8098 §2.1 forbids this one (e.g. the Return-Path is not the asker)
            self._settle(repository, message["id"], lambda m: _given_up(m, kind, "not sent: RFC 8098 §2.1"))
            return None
        return Outgoing(kind, message["id"], mail, mdn.ENVELOPE_SENDER, _recipients(mail))

    def _original(self, repository: Repository, message: dict) -> mdn.OriginalMail:
        """The mail ``message`` was made from, as the receipts re-attach it: what the bridge noted of
        its headers, the mail as received, its files from the message's Binaries."""
        envelope = extension_of(message, mailbox.MAIL_ENVELOPE)

        def noted(name: str) -> str | None:
            return next(iter(part(envelope, name)), None)

        (original,) = part(envelope, "original")
        files = tuple(replies.Attachment(a.get("title") or "piece-jointe", a.get("contentType", ""),
                                         _binary_data(repository, a["url"]))
                      for a in (p["contentAttachment"] for p in message.get("payload", ()) if "contentAttachment" in p))
        return_path = noted("returnPath")
        return mdn.OriginalMail(
            message_id=noted("messageId"), subject=noted("subject") or "", sender=noted("from") or "",
            recipient=noted("recipient"), return_path=f"<{return_path}>" if return_path else None,
            disposition_notification_to=noted("dispositionNotificationTo"),
            raw=_binary_data(repository, original["reference"]), attachments=files)

    def _answer(self, repository: Repository, answer: dict) -> Outgoing | None:
        """A patient's answer as the mail the professional receives, threaded under the message."""
        answered_ref = (answer.get("inResponseTo") or [{}])[0].get("reference", "")
        sender = answer.get("sender", {}).get("reference", "")
        if not answered_ref.startswith("Communication/") or not sender.startswith(("Patient/", "RelatedPerson/")):
            self._skipped.add(answer["id"])  # not an answer to mail: not the bridge's to send
            return None
        original = self._original(repository, fjson.loads(repository.read(*answered_ref.split("/", 1)).body))
        in_reply_to, references = replies.thread_of(BytesHeaderParser(policy=policy.default).parsebytes(original.raw))
        to = original.sender
        message_id = f"<{answer['id']}@{self._domain}>"
        mail = replies.patient_reply(
            patient_address=original.recipient, patient_name=_name(repository, sender), to=to,
            subject=original.subject, text="\n\n".join(p["contentString"] for p in answer.get("payload", ())
                                                        if "contentString" in p),
            in_reply_to=in_reply_to, references=references, attachments=_attachments(answer), message_id=message_id,
            when=datetime.now(UTC))
        return Outgoing(ANSWER, answer["id"], mail, original.recipient, [to])

    # -- settling ------------------------------------------------------------------------------

    def _failed(self, repository: Repository, outgoing: Outgoing, error: str) -> None:
        log.warning("MSSanté bridge: the relay did not take %s of Communication/%s: %s", outgoing.kind,
                    outgoing.communication, error)

        def change(message: dict) -> dict:
            attempts = _attempts(message) + 1
            if attempts >= MAX_ATTEMPTS:
                return _given_up(message, outgoing.kind, f"after {attempts} attempts: {error}")
            return _with_relay(message, attempts, error)

        settled = self._settle(repository, outgoing.communication, change)
        attempts = _attempts(settled) if settled else MAX_ATTEMPTS
        self._not_before[outgoing.communication] = time.monotonic() + min(2 ** attempts, LONGEST_WAIT_SECONDS)

    def _settle(self, repository: Repository, communication_id: str, change: Callable[[dict], dict]) -> dict | None:
        """Apply ``change`` to the current version (the patient may have marked it read meanwhile)."""
        for _ in range(5):
            with repository.writer() as writer:
                record = writer.read_current("Communication", communication_id)
                current = fjson.loads(record.body)
                try:
                    return fjson.loads(writer.update("Communication", communication_id, change(current),
                                                     if_match=record.version).record.body)
                except FhirError as error:
                    if error.status not in (409, 412):
                        raise
        return None


def _settled(message: dict, outgoing: Outgoing) -> dict:
    now = datetime.now(UTC).isoformat()
    message = _with_relay(message, 0, None)
    if outgoing.kind == ANSWER:
        return {**message, "status": "completed", "sent": now,
                "identifier": [*message.get("identifier", ()),
                               {"system": mailbox.MID_SYSTEM, "value": mailbox.mid(outgoing.message_id)}]}
    return _receipt_done(message, outgoing.kind, "sent", f"{now} {outgoing.message_id}")


def _given_up(message: dict, kind: str, why: str) -> dict:
    message = _with_relay(message, 0, None)
    if kind == ANSWER:
        return {**message, "status": "stopped", "statusReason": {"text": f"Not relayed: {why}"}}
    return _receipt_done(message, kind, "failed", why)


def _receipt_done(message: dict, kind: str, outcome: str, detail: str) -> dict:
    """The receipt ``kind`` no longer owed; what became of it noted."""
    receipts = extension_of(message, mailbox.RECEIPTS) or {"url": mailbox.RECEIPTS, "extension": []}
    # the processed MDN (with the error) and the error mail answer for each other
    kinds = {PROCESSED, ERROR_MAIL} if kind in (PROCESSED, ERROR_MAIL) else {kind}
    kept = [e for e in receipts["extension"] if not (e["url"] == "owed" and e["valueCode"] in kinds)]
    receipts = {**receipts, "extension": [*kept, {"url": outcome, "valueString": f"{kind} {detail}"}]}
    return {**message, "extension": [receipts if e.get("url") == mailbox.RECEIPTS else e
                                     for e in message.get("extension", ())]}


def _with_relay(message: dict, attempts: int, error: str | None) -> dict:
    """The ``relay`` extension set to (attempts, last error), or removed."""
    extensions = [e for e in message.get("extension", ()) if e.get("url") != mailbox.RELAY]
    if attempts:
        extensions.append({"url": mailbox.RELAY, "extension": [
            {"url": "attempts", "valueInteger": attempts}, {"url": "lastError", "valueString": error or "-"}]})
    out = {**message, "extension": extensions}
    return out if extensions else {k: v for k, v in out.items() if k != "extension"}


def _attempts(message: dict) -> int:
    return next(iter(part(extension_of(message, mailbox.RELAY), "attempts")), 0)


def _first_error(message: dict) -> tuple[str, str]:
    coding = part(extension_of(message, mailbox.RECEIPTS), "error")[0]
    return coding["code"], coding["display"]


def _recipients(mail: EmailMessage) -> list[str]:
    return [address for _, address in getaddresses(mail.get_all("To", []))]


def _name(repository: Repository, reference: str) -> str:
    """How the patient signs: their name as the record has it."""
    try:
        person = fjson.loads(repository.read(*reference.split("/", 1)).body)
    except FhirError:
        return ""
    name = (person.get("name") or [{}])[0]
    return name.get("text") or " ".join([*name.get("given", ()), name.get("family", "")]).strip()


def _attachments(answer: dict) -> list[tuple[str, str, bytes]]:
    """Files the patient joined to their answer (inline ``data``)."""
    return [(a.get("title") or "piece-jointe", a.get("contentType") or "application/octet-stream",
             base64.b64decode(a["data"]))
            for a in (p["contentAttachment"] for p in answer.get("payload", ()) if "contentAttachment" in p)
            if a.get("data")]


def _binary_data(repository: Repository, reference: str) -> bytes:
    return base64.b64decode(fjson.loads(repository.read(*reference.split("/", 1)).body)["data"])
