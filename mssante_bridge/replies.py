"""A patient's answer to a professional, relayed as an RFC 5322 e-mail — plus the MIME building blocks
the acknowledgements (``mdn.py``) share. Pure: builds ``email.message.EmailMessage`` objects, no I/O.

What it follows, and why:

- Threading (RFC 5322 §3.6.4): ``In-Reply-To`` = the parent's ``Message-ID``; ``References`` = the
  parent's ``References`` (or, lacking it, its single ``In-Reply-To``) followed by its ``Message-ID``,
  so the professional's client files the answer under the right conversation.
- Subject (RFC 5322 §3.6.5): one ``Re: `` only — existing ``Re:``/``RE :``/``Re[2]:`` prefixes are
  dropped before adding it. The CI-SIS ``XDM/1.0/DDM+`` marker (IHE ITI-32 "XDM over e-mail",
  FRENCH_STANDARDS.md §5.4) is dropped too: it announces an ``IHE_XDM.zip`` attachment, which a
  patient's answer never carries, and a receiving PFI may route every subject containing it to its
  integration mailbox (CI-SIS cas-usage.md). Mon espace santé hides the marker anyway; the thread is
  held by the headers above, not by the subject.
- Non-ASCII stays 7-bit on the wire: display names as RFC 2047 encoded-words, file names as RFC 2231
  parameters (``filename*=utf-8''…``), text as quoted-printable UTF-8 — no 8BITMIME needed on the
  way to the professional's operator.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.utils import parseaddr
from typing import NamedTuple

_MSG_ID = re.compile(r"<[^<>\s]+>")
_RE_PREFIX = re.compile(r"^\s*re\s*(?:\[\d+\]|\(\d+\))?\s*:\s*", re.IGNORECASE)
_XDM_PREFIX = re.compile(r"^\s*XDM/1\.0/DDM\+?\s*", re.IGNORECASE)


class Attachment(NamedTuple):
    """A file to attach: ``(filename, content_type, data)``, e.g. ``("IHE_XDM.zip", "application/zip", b…)``."""

    filename: str
    content_type: str
    data: bytes


def msg_id(value: str) -> str:
    """A ``<id>`` message identifier, checked — it is copied into headers of mail we send."""
    value = value.strip()
    if not _MSG_ID.fullmatch(value):
        raise ValueError(f"not a message identifier: {value!r}")
    return value


def msg_ids(value: str | None) -> tuple[str, ...]:
    """The identifiers of a ``References`` / ``In-Reply-To`` header value, in order."""
    return tuple(_MSG_ID.findall(value or ""))


def aware(when: datetime) -> datetime:
    """A ``Date`` needs the sender's UTC offset (RFC 5322 §3.3); a naive datetime has none."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("the date must be timezone-aware")
    return when


def mailbox(address: str) -> str:
    """The bare ``local@domain`` of an address, refusing what is not one."""
    addr = parseaddr(address)[1].strip()
    if "@" not in addr or " " in addr or any(c in address for c in "\r\n\0"):
        raise ValueError(f"not an e-mail address: {address!r}")
    return addr


def attachment_part(attachment: Attachment) -> Message:
    """A base64 attachment; the name goes both in ``Content-Disposition; filename`` (RFC 2183) and,
    for older clients, in ``Content-Type; name`` — as the CI-SIS examples show. Built as a plain
    (compat32) part: its headers are written as set, where the header registry's parsing cost a
    millisecond a part; non-ASCII names are RFC 2231 parameters all the same."""
    maintype, _, subtype = attachment.content_type.partition("/")
    if not maintype or not subtype:
        raise ValueError(f"not a media type: {attachment.content_type!r}")
    part = MIMEBase(maintype, subtype, name=attachment.filename)
    part["Content-Transfer-Encoding"] = "base64"
    part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
    del part["MIME-Version"]  # a part needs none
    # base64.encodebytes is C (the email package's encoder loops in Python), in CRLF lines as sent
    part.set_payload(base64.encodebytes(attachment.data).decode("ascii").replace("\n", "\r\n"))
    return part


def reply_subject(subject: str) -> str:
    """``Re: `` + the subject without earlier ``Re:`` prefixes nor the ``XDM/1.0/DDM+`` marker."""
    previous = None
    while previous != subject:
        previous = subject
        subject = _XDM_PREFIX.sub("", _RE_PREFIX.sub("", subject))
    return "Re: " + (subject.strip() or "(sans objet)")


def thread_of(parent: Message) -> tuple[str | None, tuple[str, ...]]:
    """``(in_reply_to, references)`` to pass to :func:`patient_reply` for a parsed parent message.

    RFC 5322 §3.6.4: the parent's ``References``, or its ``In-Reply-To`` when it has no ``References``
    and names a single message.
    """
    ids = msg_ids(parent.get("Message-ID"))
    references = msg_ids(parent.get("References"))
    if not references:
        in_reply_to = msg_ids(parent.get("In-Reply-To"))
        references = in_reply_to if len(in_reply_to) == 1 else ()
    return (ids[0] if len(ids) == 1 else None), references


def patient_reply(
    *,
    patient_address: str,
    patient_name: str,
    to: str,
    subject: str,
    text: str,
    in_reply_to: str | None,
    references: tuple[str, ...],
    attachments: list[tuple[str, str, bytes]],
    message_id: str,
    when: datetime,
) -> EmailMessage:
    """The e-mail carrying a patient's answer from ``<INS>@patient.mssante.fr`` to a professional.

    ``in_reply_to`` is the parent's ``Message-ID``; ``references`` the parent's ``References`` (see
    :func:`thread_of`). Attachments are ``(filename, content_type, data)``.
    """
    msg = EmailMessage()
    msg["From"] = Address(display_name=patient_name, addr_spec=mailbox(patient_address))
    msg["To"] = mailbox(to)
    msg["Subject"] = reply_subject(subject)
    msg["Date"] = aware(when)
    msg["Message-ID"] = msg_id(message_id)
    if in_reply_to is not None:
        parent = msg_id(in_reply_to)
        chain = tuple(msg_id(ref) for ref in references)
        msg["In-Reply-To"] = parent
        msg["References"] = " ".join(chain if chain and chain[-1] == parent else (*chain, parent))
    elif references:
        msg["References"] = " ".join(msg_id(ref) for ref in references)
    msg["MIME-Version"] = "1.0"
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    if attachments:
        msg.make_mixed()
        for attachment in attachments:
            msg.attach(attachment_part(Attachment(*attachment)))
    return msg
