"""MSSanté acknowledgements of a mail delivered to a patient: the MDN, and the plain error mail.

Pure: builds ``email.message.EmailMessage`` objects; sending is the outbound relay's job (which must
use the null envelope sender ``MAIL FROM:<>`` for an MDN, RFC 8098 §3 — see ``ENVELOPE_SENDER``).

Followed (ANS CI-SIS "Transmission d'un document CDA en HL7v2 à partir d'un courriel MSSanté",
repository ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss, ``input/pagecontent/``):

- ``struct-msg-mdn.md`` (Annexe 4): an MDN only if ``Disposition-Notification-To`` is present, none
  sent automatically when it differs from ``Return-Path``; ``multipart/report;
  report-type=disposition-notification`` with (1) human text — on error at least the code and label,
  (2) ``message/disposition-notification`` with ``Final-Recipient`` and ``Disposition`` (required),
  ``Original-Message-ID`` and ``Original-Recipient`` (required by the volet), (3) ``message/rfc822``
  — the original mail, which the volet requires — then the original ``IHE_XDM.zip`` and PDF
  re-attached; ``Disposition: automatic-action/MDN-sent-automatically; processed`` on success,
  ``…; processed/Error: <code>^<libellé>`` on error; error subject ``[KO Intégration système
  !][<code>] <original subject>``, otherwise the original subject.
- ``struct-email-standard.md``: without ``Disposition-Notification-To`` no MDN may be sent; an error
  is reported by a plain RFC 5322 mail with the same subject, a human text with code and label, the
  original as ``message/rfc822`` (``message_original.eml``) and its attachments in base64.
- ``error-codes.md``: the applicationErrorCondition table (900–906) → ``ERRORS``. (Its
  messageErrorCondition table — 0, 100–207 — is about HL7 v2 syntax between PFI and DPI, which this
  bridge does not speak.)

RFC 8098 besides: §2.1 no MDN in answer to an MDN, at most one MDN per recipient, none automatically
without ``Return-Path``, with several ``Disposition-Notification-To`` addresses or when they differ
(addr-spec compared, local part case-sensitive, domain not) — with the user's consent (sending mode
``MDN-sent-manually``) it may still be sent; §3 ``From`` = the recipient the MDN is issued for (pass
the patient's address as ``reporting`` unless a reporting mailbox is configured), ``To`` = the
``Disposition-Notification-To`` addresses, no ``Disposition-Notification-To`` on the MDN; §3.1 the
report part is 7-bit: non-ASCII labels (``INS non présent…``) become RFC 2047 encoded-words.
RFC 6522 §3: the report parts in that order. RFC 3834 §5: ``Auto-Submitted: auto-replied`` on what
is sent without a human decision.

Deviation kept on purpose: the CI-SIS ``processed/Error: 903^…`` puts the error text inside
``Disposition``, which RFC 8098's grammar (modifier ``error`` + an ``Error:`` field) does not allow;
receiving PFIs are built to the CI-SIS form, so it is written as the CI-SIS says, and the RFC 8098
``Error:`` field is added as well.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesHeaderParser
from email.utils import getaddresses, make_msgid, parseaddr

from fhir_server.french.dmp_errors import ERRORS  # noqa: F401  (re-exported: the MDN's error labels)
from mssante_bridge.replies import Attachment, attachment_part, aware, mailbox, msg_id

PROCESSED = "automatic-action/MDN-sent-automatically; processed"
DISPLAYED = "manual-action/MDN-sent-manually; displayed"
REPORTING_UA = "patient.mssante.fr; mes-interop mssante_bridge"
ENVELOPE_SENDER = ""  # RFC 8098 §3: an MDN goes out with MAIL FROM:<>
ORIGINAL_FILENAME = "message_original.eml"  # struct-email-standard.md example


_DISPOSITION = re.compile(
    r"(?P<action>manual-action|automatic-action)/(?P<sending>MDN-sent-manually|MDN-sent-automatically);"
    r" (?P<type>displayed|deleted|dispatched|processed)"
)
_CODE = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class OriginalMail:
    """What the acknowledgements need of the mail a professional sent to a patient."""

    message_id: str | None  # its Message-ID, "<…>"
    subject: str  # decoded, e.g. "XDM/1.0/DDM+CR d'imagerie DUPONT Zoé 12/10/1988"
    sender: str  # its From
    recipient: str  # the patient's address the mail was delivered to: the Final-Recipient
    return_path: str | None  # as the final MTA recorded it ("<x@y>", "<>" or None)
    disposition_notification_to: str | None  # the header value as received
    raw: bytes  # the mail as received, re-attached as message/rfc822
    attachments: tuple[Attachment, ...] = ()  # IHE_XDM.zip and the PDF, re-attached as the CI-SIS asks
    original_recipient: str | None = None  # Original-Recipient header / ORCPT (RFC 3461), if any


def error_subject(code: str, subject: str) -> str:
    return f"[KO Intégration système !][{code}] {subject}"


def _same_mailbox(a: str, b: str) -> bool:
    """RFC 8098 §2.1: addr-specs compared, local part case-sensitive, domain case-insensitive."""
    a_local, _, a_domain = a.rpartition("@")
    b_local, _, b_domain = b.rpartition("@")
    return a_local == b_local and a_domain.lower() == b_domain.lower()


def _is_mdn(raw: bytes) -> bool:
    head = _as_received(raw)
    return head.get_content_type() == "multipart/report" and head.get_param("report-type") == "disposition-notification"


def _mdn_recipients(original: OriginalMail, automatic: bool) -> list[str] | None:
    """Where the MDN goes, or None when RFC 8098 §2.1 / the CI-SIS say it must not be sent."""
    requested = [addr for _, addr in getaddresses([original.disposition_notification_to or ""]) if addr]
    if not requested or _is_mdn(original.raw):
        return None
    distinct = {(local, domain.lower()) for local, _, domain in (a.rpartition("@") for a in requested)}
    if automatic:
        return_path = parseaddr(original.return_path or "")[1]
        if len(distinct) != 1 or not return_path or not _same_mailbox(requested[0], return_path):
            return None
    return [mailbox(addr) for addr in dict.fromkeys(requested)]


def _checked_error(error: tuple[str, str]) -> tuple[str, str]:
    code, label = error
    if not _CODE.fullmatch(code) or not label.strip() or any(c in label for c in "^\r\n\0"):
        raise ValueError(f"not a CI-SIS error code^label: {error!r}")
    return code, label.strip()


def _as_received(raw: bytes) -> Message:
    """The mail as a message whose header block is read and whose body stays text, as received
    (the generator writes a text payload back as it is): no MIME round trip for a 100 KB mail, and
    a signature in it still verifies."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = raw.partition(b"\n\n")
    message = BytesHeaderParser(policy=policy.compat32).parsebytes(head + separator)
    message.set_payload(body.decode("ascii", "surrogateescape"))
    return message


def _original_part(original: OriginalMail, **disposition: str) -> MIMEPart:
    """The original mail as a ``message/rfc822`` part, byte for byte."""
    part = MIMEPart()
    part.set_content(_as_received(original.raw), **disposition)
    return part


def _headers(
    msg: EmailMessage,
    *,
    sender: str,
    to: list[str],
    subject: str,
    when: datetime,
    message_id: str,
    original: OriginalMail,
) -> None:
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = aware(when)
    msg["Message-ID"] = msg_id(message_id)
    if original.message_id:
        msg["In-Reply-To"] = msg_id(original.message_id)
        msg["References"] = msg_id(original.message_id)
    msg["MIME-Version"] = "1.0"


def _french_date(when: datetime) -> str:
    return when.strftime("%d/%m/%Y à %H:%M")


def _human_text(original: OriginalMail, dtype: str, error: tuple[str, str] | None, when: datetime) -> str:
    about = f"Votre message « {original.subject} » adressé à {original.recipient}"
    if error:
        code, label = error
        return (
            "Bonjour,\n\n"
            "Le message ci-dessous n’a pas pu être intégré automatiquement dans Mon espace santé du patient"
            f" pour la raison suivante : {label}\n"
            f"Code d’erreur : {code}\n\n"
            "Le message d’origine et ses pièces jointes sont joints à cet accusé. Veuillez vérifier les"
            " informations transmises puis renvoyer le document après correction.\n"
        )
    if dtype == "displayed":
        return (
            f"Bonjour,\n\n{about} a été affiché le {_french_date(when)} dans la messagerie de Mon espace santé"
            " du patient.\nCet accusé de lecture ne garantit pas que le contenu a été lu ni compris.\n"
        )
    return (
        f"Bonjour,\n\n{about} a été remis le {_french_date(when)} dans la messagerie de Mon espace santé du patient.\n"
    )


def _report_part(
    original: OriginalMail, reporting_ua: str, disposition: str, error: tuple[str, str] | None
) -> MIMEPart:
    """The message/disposition-notification part, fields in RFC 8098 §3.1 order."""
    fields = EmailMessage()
    fields["Reporting-UA"] = reporting_ua
    original_recipient = (original.original_recipient or original.recipient).strip()
    if original_recipient.lower().startswith("rfc822;"):
        original_recipient = original_recipient[len("rfc822;") :]
    fields["Original-Recipient"] = "rfc822;" + mailbox(original_recipient)
    fields["Final-Recipient"] = "rfc822;" + mailbox(original.recipient)
    if original.message_id:
        fields["Original-Message-ID"] = msg_id(original.message_id)
    if error:
        fields["Disposition"] = f"{disposition}/Error: {error[0]}^{error[1]}"
        fields["Error"] = f"{error[0]}^{error[1]}"
    else:
        fields["Disposition"] = disposition
    part = MIMEPart()
    part.set_content(fields, subtype="disposition-notification")
    return part


def disposition_notification(
    original: OriginalMail,
    *,
    reporting: str,
    disposition: str,
    error: tuple[str, str] | None = None,
    when: datetime,
    message_id: str | None = None,
    reporting_ua: str = REPORTING_UA,
    mdn_already_sent: bool = False,
) -> EmailMessage | None:
    """The MDN answering ``original``, or None when none may be sent (see the module docstring).

    ``reporting`` is the MDN's From (the patient's address, or the configured reporting mailbox);
    ``disposition`` is e.g. ``PROCESSED`` or ``DISPLAYED`` (the latter asserts the patient agreed to
    send it); ``error`` a ``(code, libellé)`` such as ``("903", ERRORS["903"])``. RFC 8098 §2.1 allows
    one MDN per recipient: pass ``mdn_already_sent`` once one went out for this mail.
    """
    match = _DISPOSITION.fullmatch(disposition)
    if not match:
        raise ValueError(f"not an RFC 8098 disposition (without modifier): {disposition!r}")
    error = _checked_error(error) if error else None
    to = None if mdn_already_sent else _mdn_recipients(original, match["sending"] == "MDN-sent-automatically")
    if to is None:
        return None
    sender = mailbox(reporting)
    msg = EmailMessage()
    _headers(
        msg,
        sender=sender,
        to=to,
        subject=error_subject(error[0], original.subject) if error else original.subject,
        when=when,
        message_id=message_id or make_msgid(domain=sender.rpartition("@")[2]),
        original=original,
    )
    if match["sending"] == "MDN-sent-automatically":
        msg["Auto-Submitted"] = "auto-replied"
    # Written as the CI-SIS shows it (unquoted report-type); the boundary is ours, unique per MDN.
    msg.set_raw(
        "Content-Type",
        f'multipart/report; report-type=disposition-notification;\n boundary="=_mdn_{uuid.uuid4().hex}"',
    )
    text = MIMEPart()
    text.set_content(_human_text(original, match["type"], error, when), charset="utf-8", cte="quoted-printable")
    parts = [text, _report_part(original, reporting_ua, disposition, error), _original_part(original)]
    msg.set_payload(parts + [attachment_part(a) for a in original.attachments])
    return msg


def error_mail(
    original: OriginalMail,
    *,
    code: str,
    label: str,
    when: datetime,
    from_address: str,
    message_id: str | None = None,
) -> EmailMessage:
    """The plain error mail of ``struct-email-standard.md``, for a sender that asked no MDN.

    It goes to the ``Return-Path`` (RFC 3834 §4: a service's answer goes to the envelope sender), or to
    the ``From`` when the ``Return-Path`` is missing or null.
    """
    code, label = _checked_error((code, label))
    to = parseaddr(original.return_path or "")[1] or parseaddr(original.sender)[1]
    sender = mailbox(from_address)
    msg = EmailMessage()
    _headers(
        msg,
        sender=sender,
        to=[mailbox(to)],
        subject=error_subject(code, original.subject),
        when=when,
        message_id=message_id or make_msgid(domain=sender.rpartition("@")[2]),
        original=original,
    )
    msg["Auto-Submitted"] = "auto-replied"
    files = "\n2. Les fichiers liés (archive IHE_XDM.zip et PDF du message d’origine)." if original.attachments else ""
    msg.set_content(
        "Bonjour,\n\n"
        f"Le message « {original.subject} » adressé à {original.recipient} n’a pas pu être intégré dans"
        " Mon espace santé du patient.\nVoici les détails de l’erreur rencontrée :\n\n"
        f"- Erreur détectée : {label}\n- Code d’erreur : {code}\n\n"
        f"Vous trouverez en pièces jointes :\n1. Le message d’origine contenant le document soumis.{files}\n\n"
        "Veuillez vérifier les informations fournies et soumettre à nouveau les documents après correction.\n\n"
        "Ce message est envoyé automatiquement.\n",
        charset="utf-8",
        cte="quoted-printable",
    )
    msg.make_mixed()
    msg.attach(_original_part(original, disposition="attachment", filename=ORIGINAL_FILENAME))
    for attachment in original.attachments:
        msg.attach(attachment_part(attachment))
    return msg
