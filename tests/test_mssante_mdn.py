"""MSSanté acknowledgements (mssante_bridge/mdn.py) and patient replies (mssante_bridge/replies.py).

Everything is checked as it would go on the wire: ``msg.as_bytes()`` parsed back with
``BytesParser(policy=email.policy.default)``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default

import pytest

from mssante_bridge.mdn import (
    DISPLAYED,
    ERRORS,
    PROCESSED,
    OriginalMail,
    disposition_notification,
    error_mail,
)
from mssante_bridge.replies import Attachment, patient_reply, reply_subject, thread_of

PARIS = timezone(timedelta(hours=1))
WHEN = datetime(2024, 2, 20, 0, 19, tzinfo=PARIS)
PATIENT = "279035121518989@patient.mssante.fr"
DOCTOR = "adam.hoda@test-ci-sis.mssante.fr"
SUBJECT = "XDM/1.0/DDM+CR d'imagerie médicale DUPONT Zoé 12/10/1988"
ZIP = Attachment("IHE_XDM.zip", "application/zip", b"PK\x03\x04 fake xdm archive \x00\xff")
PDF = Attachment("20220531_CR_d_imagerie_médicale_DUPONT.pdf", "application/pdf", b"%PDF-1.4\n\x00\xe9 fake\n")
ORIGINAL_ID = "<20240219230100.23456@test-ci-sis.mssante.fr>"
MDN_ID = "<mdn-1@patient.mssante.fr>"


def raw_original(*extra: str) -> bytes:
    """The professional's mail as received (CRLF, an 8-bit UTF-8 subject)."""
    head = [
        f"Return-Path: <{DOCTOR}>",
        "From: Dr Adam Hoda <adam.hoda@test-ci-sis.mssante.fr>",
        f"To: {PATIENT}",
        f"Subject: {SUBJECT}",
        f"Message-ID: {ORIGINAL_ID}",
        *extra,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(head) + "\r\n\r\nBonjour Zoé, voici votre compte rendu.\r\n").encode()


def original(**changes: object) -> OriginalMail:
    fields: dict[str, object] = {
        "message_id": ORIGINAL_ID,
        "subject": SUBJECT,
        "sender": f"Dr Adam Hoda <{DOCTOR}>",
        "recipient": PATIENT,
        "return_path": f"<{DOCTOR}>",
        "disposition_notification_to": f"Dr Adam Hoda <{DOCTOR}>",
        "raw": raw_original(f"Disposition-Notification-To: <{DOCTOR}>"),
        "attachments": (ZIP, PDF),
    }
    fields.update(changes)
    return OriginalMail(**fields)  # type: ignore[arg-type]


def wire(msg: EmailMessage | None) -> tuple[bytes, EmailMessage]:
    assert msg is not None
    data = msg.as_bytes()
    return data, BytesParser(policy=default).parsebytes(data)


def mdn(**kwargs: object) -> tuple[bytes, EmailMessage]:
    args: dict[str, object] = {"reporting": PATIENT, "disposition": PROCESSED, "when": WHEN, "message_id": MDN_ID}
    args.update(kwargs)
    mail = args.pop("original", None) or original()
    return wire(disposition_notification(mail, **args))  # type: ignore[arg-type]


def report_lines(data: bytes) -> list[str]:
    """The message/disposition-notification fields exactly as on the wire, unfolded, one per line."""
    boundary = BytesParser(policy=default).parsebytes(data).get_boundary()
    parts = [chunk.partition(b"\n\n") for chunk in data.split(b"\n--" + boundary.encode())]
    (body,) = [body for head, _, body in parts if b"Content-Type: message/disposition-notification\n" in head]
    return [line for line in re.sub(r"\r?\n[ \t]", " ", body.decode("ascii")).splitlines() if line]


# --- the MDN -------------------------------------------------------------------------------------


def test_processed_mdn_headers():
    data, msg = mdn()
    assert msg["From"] == PATIENT
    assert msg["To"] == DOCTOR
    assert msg["Subject"] == SUBJECT  # CI-SIS: the original subject when all went well
    assert msg["Date"] == "Tue, 20 Feb 2024 00:19:00 +0100"
    assert msg["Message-ID"] == MDN_ID
    assert msg["In-Reply-To"] == ORIGINAL_ID
    assert msg["References"] == ORIGINAL_ID
    assert msg["MIME-Version"] == "1.0"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert "Disposition-Notification-To" not in msg  # RFC 8098 §2.1: an MDN never asks for one
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "disposition-notification"
    assert b"Content-Type: multipart/report; report-type=disposition-notification;\n boundary=" in data


def test_processed_mdn_parts_in_cisis_order():
    _, msg = mdn()
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/disposition-notification",
        "message/rfc822",
        "application/zip",
        "application/pdf",
    ]
    assert [p.get_filename() for p in parts] == [None, None, None, ZIP.filename, PDF.filename]
    assert parts[1]["Content-Transfer-Encoding"] == "7bit"
    assert parts[3].get_content() == ZIP.data
    assert parts[4].get_content() == PDF.data
    assert [p["Content-Transfer-Encoding"] for p in parts[3:]] == ["base64", "base64"]
    assert parts[3].get_param("name") == "IHE_XDM.zip"
    embedded = parts[2].get_content()
    assert embedded["Message-ID"] == ORIGINAL_ID
    assert embedded["Subject"] == SUBJECT
    assert embedded.get_content() == "Bonjour Zoé, voici votre compte rendu.\n"
    text = parts[0].get_content()
    assert "a été remis le 20/02/2024 à 00:19" in text
    assert PATIENT in text


def test_processed_mdn_fields_line_by_line():
    data, _ = mdn()
    assert report_lines(data) == [
        "Reporting-UA: patient.mssante.fr; mes-interop mssante_bridge",
        f"Original-Recipient: rfc822;{PATIENT}",
        f"Final-Recipient: rfc822;{PATIENT}",
        f"Original-Message-ID: {ORIGINAL_ID}",
        "Disposition: automatic-action/MDN-sent-automatically; processed",
    ]


def test_original_recipient_from_the_header_when_given():
    data, _ = mdn(original=original(original_recipient=f"rfc822;{PATIENT.upper()}"))
    assert report_lines(data)[1] == f"Original-Recipient: rfc822;{PATIENT.upper()}"


def test_error_mdn():
    data, msg = mdn(error=("903", ERRORS["903"]))
    assert msg["Subject"] == f"[KO Intégration système !][903] {SUBJECT}"
    inner = list(msg.iter_parts())[1].get_payload(0)
    assert inner["Disposition"] == (
        "automatic-action/MDN-sent-automatically; processed/Error: 903^INS non présent dans le document"
    )
    assert inner["Error"] == "903^INS non présent dans le document"
    assert [line.split(":")[0] for line in report_lines(data)] == [
        "Reporting-UA",
        "Original-Recipient",
        "Final-Recipient",
        "Original-Message-ID",
        "Disposition",
        "Error",
    ]
    text = list(msg.iter_parts())[0].get_content()
    assert "pour la raison suivante : INS non présent dans le document" in text
    assert "Code d’erreur : 903" in text
    # The report part stays 7-bit (RFC 8098 §3.1): the accent travels as an RFC 2047 encoded-word.
    report = data.split(b"Content-Type: message/disposition-notification")[1].split(b"\n--=_mdn_")[0]
    assert report.isascii()
    assert b"=?utf-8?" in report


def test_error_mdn_ascii_label_is_written_verbatim():
    data, msg = mdn(error=("902", ERRORS["902"]))
    assert report_lines(data)[-2:] == [
        "Disposition: automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant patient inconnu",
        "Error: 902^Identifiant patient inconnu",
    ]
    assert msg["Subject"].startswith("[KO Intégration système !][902] XDM/1.0/DDM+")


def test_displayed_mdn_is_manual_and_not_auto_submitted():
    data, msg = mdn(disposition=DISPLAYED)
    assert report_lines(data)[-1] == "Disposition: manual-action/MDN-sent-manually; displayed"
    assert "Auto-Submitted" not in msg
    assert "ne garantit pas que le contenu a été lu" in list(msg.iter_parts())[0].get_content()


def test_subject_accents_round_trip_and_wire_headers_are_ascii():
    data, msg = mdn(error=("904", ERRORS["904"]))
    assert msg["Subject"] == f"[KO Intégration système !][904] {SUBJECT}"
    headers = data.split(b"\n\n", 1)[0]
    assert headers.isascii()
    assert list(msg.iter_parts())[1].get_payload(0)["Error"] == "904^" + ERRORS["904"]


def test_generated_message_id_uses_the_reporting_domain():
    _, msg = mdn(message_id=None)
    assert re.fullmatch(r"<[^<>@\s]+@patient\.mssante\.fr>", msg["Message-ID"])


# --- when no automatic MDN may be sent -----------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"disposition_notification_to": None},  # nothing asked
        {"disposition_notification_to": ""},
        {"disposition_notification_to": "<secretariat@test-ci-sis.mssante.fr>"},  # differs from Return-Path
        {"disposition_notification_to": f"<{DOCTOR.replace('adam', 'Adam')}>"},  # local part is case-sensitive
        {"return_path": None},  # nothing to compare with
        {"return_path": "<>"},
        {"disposition_notification_to": f"<{DOCTOR}>, <secretariat@test-ci-sis.mssante.fr>"},  # several
    ],
)
def test_no_automatic_mdn(changes):
    assert disposition_notification(original(**changes), reporting=PATIENT, disposition=PROCESSED, when=WHEN) is None


def test_domain_comparison_ignores_case():
    _, msg = mdn(original=original(disposition_notification_to=f"<{DOCTOR.replace('mssante', 'MSSante')}>"))
    assert msg["To"] == DOCTOR.replace("mssante", "MSSante")


def test_no_mdn_for_an_mdn_nor_twice():
    report = raw_original().replace(
        b"Content-Type: text/plain; charset=utf-8",
        b'Content-Type: multipart/report; report-type="disposition-notification"; boundary="b"',
    )
    assert disposition_notification(original(raw=report), reporting=PATIENT, disposition=PROCESSED, when=WHEN) is None
    assert (
        disposition_notification(original(), reporting=PATIENT, disposition=PROCESSED, when=WHEN, mdn_already_sent=True)
        is None
    )


def test_consented_mdn_may_go_to_a_differing_address():
    other = "secretariat@test-ci-sis.mssante.fr"
    assert (
        disposition_notification(
            original(disposition_notification_to=f"<{other}>"), reporting=PATIENT, disposition=PROCESSED, when=WHEN
        )
        is None
    )
    _, msg = mdn(original=original(disposition_notification_to=f"<{other}>"), disposition=DISPLAYED)
    assert msg["To"] == other


@pytest.mark.parametrize(
    "kwargs",
    [
        {"disposition": "automatic-action/MDN-sent-automatically; read"},
        {"disposition": PROCESSED + "/error"},
        {"error": ("ABC", "x")},
        {"error": ("903", "a\r\nDisposition: automatic-action/MDN-sent-automatically; deleted")},
        {"error": ("903", "a^b")},
        {"when": datetime(2024, 2, 20, 0, 19)},  # naive
        {"message_id": "no-brackets@x"},
    ],
)
def test_bad_arguments_are_refused(kwargs):
    args = {"reporting": PATIENT, "disposition": PROCESSED, "when": WHEN, **kwargs}
    with pytest.raises(ValueError):
        disposition_notification(original(), **args)


def test_a_hostile_original_recipient_cannot_add_a_field():
    hostile = original(original_recipient=f"rfc822;{PATIENT}\r\nDisposition: automatic-action/x; deleted")
    with pytest.raises(ValueError):
        disposition_notification(hostile, reporting=PATIENT, disposition=PROCESSED, when=WHEN)


# --- the plain error mail ------------------------------------------------------------------------


def test_error_mail():
    mail = original(disposition_notification_to=None)
    data, msg = wire(
        error_mail(mail, code="902", label=ERRORS["902"], when=WHEN, from_address=PATIENT, message_id=MDN_ID)
    )
    assert msg["Subject"] == f"[KO Intégration système !][902] {SUBJECT}"
    assert msg["From"] == PATIENT
    assert msg["To"] == DOCTOR
    assert msg["Date"] == "Tue, 20 Feb 2024 00:19:00 +0100"
    assert msg["In-Reply-To"] == ORIGINAL_ID
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/rfc822",
        "application/zip",
        "application/pdf",
    ]
    assert [p.get_filename() for p in parts] == [None, "message_original.eml", ZIP.filename, PDF.filename]
    assert parts[1].get_content()["Message-ID"] == ORIGINAL_ID
    assert parts[3].get_content() == PDF.data
    text = parts[0].get_content()
    assert "- Erreur détectée : Identifiant patient inconnu\n- Code d’erreur : 902\n" in text
    assert b"\nDisposition:" not in data  # only an MDN carries the machine-readable field


def test_error_mail_falls_back_to_from_without_return_path():
    _, msg = wire(
        error_mail(original(return_path="<>"), code="906", label=ERRORS["906"], when=WHEN, from_address=PATIENT)
    )
    assert msg["To"] == DOCTOR


def test_error_table_is_the_cisis_one():
    assert ERRORS == {
        "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
        "901": "Auteur non autorisé à remplacer ou supprimer un document",
        "902": "Identifiant patient inconnu",
        "903": "INS non présent dans le document",
        "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
        "905": "L'INS transmis n'est pas complet",
        "906": "Erreur 'Autre'",
    }


# --- patient replies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Résultats", "Re: Résultats"),
        ("Re: Résultats", "Re: Résultats"),
        ("RE : Re: re[2]: Résultats", "Re: Résultats"),
        (SUBJECT, "Re: CR d'imagerie médicale DUPONT Zoé 12/10/1988"),
        ("RE: XDM/1.0/DDM+CR", "Re: CR"),
        ("XDM/1.0/DDM", "Re: (sans objet)"),
        ("Rendez-vous", "Re: Rendez-vous"),  # not a prefix
    ],
)
def test_reply_subject(subject, expected):
    assert reply_subject(subject) == expected


def reply(**kwargs: object) -> tuple[bytes, EmailMessage]:
    args: dict[str, object] = {
        "patient_address": PATIENT,
        "patient_name": "Zoé Müller-Ça",
        "to": f"Dr Adam Hoda <{DOCTOR}>",
        "subject": SUBJECT,
        "text": "Bonjour docteur,\nMerci, j’ai bien reçu le compte rendu. À bientôt.\n",
        "in_reply_to": ORIGINAL_ID,
        "references": (),
        "attachments": [("ordonnance périmée.pdf", "application/pdf", PDF.data)],
        "message_id": "<r1@patient.mssante.fr>",
        "when": WHEN,
    }
    args.update(kwargs)
    return wire(patient_reply(**args))  # type: ignore[arg-type]


def test_patient_reply_on_the_wire():
    data, msg = reply()
    assert data.isascii()  # encoded-words, RFC 2231, quoted-printable, base64: no 8BITMIME needed
    assert re.search(rb"^From:\s+=\?utf-8\?\S+\?= <279035121518989@patient\.mssante\.fr>$", data, re.M)
    assert msg["From"].addresses[0].display_name == "Zoé Müller-Ça"
    assert msg["From"].addresses[0].addr_spec == PATIENT
    assert msg["To"] == DOCTOR
    assert msg["Subject"] == "Re: CR d'imagerie médicale DUPONT Zoé 12/10/1988"
    assert msg["Date"] == "Tue, 20 Feb 2024 00:19:00 +0100"
    assert msg["Message-ID"] == "<r1@patient.mssante.fr>"
    assert msg["In-Reply-To"] == ORIGINAL_ID
    assert msg["References"] == ORIGINAL_ID
    assert msg.get_content_type() == "multipart/mixed"
    body, attached = list(msg.iter_parts())
    assert body.get_content_type() == "text/plain"
    assert body.get_content_charset() == "utf-8"
    assert body.get_content() == "Bonjour docteur,\nMerci, j’ai bien reçu le compte rendu. À bientôt.\n"
    assert b"filename*=utf-8''ordonnance%20p%C3%A9rim%C3%A9e.pdf" in data
    assert attached.get_filename() == "ordonnance périmée.pdf"
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_content() == PDF.data


def test_patient_reply_without_attachment_is_single_part():
    _, msg = reply(attachments=[])
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().startswith("Bonjour docteur,")


def test_threading_over_a_chain_of_three_replies():
    def professional(message_id: str, parent: EmailMessage | None) -> EmailMessage:
        sent = EmailMessage()
        sent["From"] = DOCTOR
        sent["To"] = PATIENT
        sent["Subject"] = SUBJECT if parent is None else "RE: " + parent["Subject"]
        sent["Message-ID"] = message_id
        if parent is not None:
            sent["In-Reply-To"] = parent["Message-ID"]
            sent["References"] = " ".join([*filter(None, [parent["References"]]), parent["Message-ID"]])
        sent.set_content("…")
        return BytesParser(policy=default).parsebytes(sent.as_bytes())

    pro = professional("<m1@test-ci-sis.mssante.fr>", None)
    seen = []
    for n in (1, 2, 3):
        in_reply_to, references = thread_of(pro)
        _, answer = reply(in_reply_to=in_reply_to, references=references, message_id=f"<r{n}@patient.mssante.fr>")
        seen.append((answer["Subject"], answer["In-Reply-To"], answer["References"]))
        pro = professional(f"<m{n + 1}@test-ci-sis.mssante.fr>", answer)

    subject = "Re: CR d'imagerie médicale DUPONT Zoé 12/10/1988"
    assert seen == [
        (subject, "<m1@test-ci-sis.mssante.fr>", "<m1@test-ci-sis.mssante.fr>"),
        (
            subject,
            "<m2@test-ci-sis.mssante.fr>",
            "<m1@test-ci-sis.mssante.fr> <r1@patient.mssante.fr> <m2@test-ci-sis.mssante.fr>",
        ),
        (
            subject,
            "<m3@test-ci-sis.mssante.fr>",
            "<m1@test-ci-sis.mssante.fr> <r1@patient.mssante.fr> <m2@test-ci-sis.mssante.fr>"
            " <r2@patient.mssante.fr> <m3@test-ci-sis.mssante.fr>",
        ),
    ]


def test_thread_of_falls_back_to_in_reply_to():
    parent = EmailMessage()
    parent["Message-ID"] = "<m2@x.mssante.fr>"
    parent["In-Reply-To"] = "<m1@x.mssante.fr>"
    assert thread_of(parent) == ("<m2@x.mssante.fr>", ("<m1@x.mssante.fr>",))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"when": datetime(2024, 2, 20, tzinfo=None)},
        {"message_id": "r1@patient.mssante.fr"},
        {"in_reply_to": "<a@b>\r\nBcc: x@y"},
        {"to": "nobody"},
        {"attachments": [("a.bin", "octet-stream", b"")]},
    ],
)
def test_patient_reply_refuses_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        reply(**kwargs)


def test_utc_date_is_written_with_its_offset():
    _, msg = reply(when=datetime(2024, 7, 1, 8, 0, tzinfo=UTC))
    assert msg["Date"] == "Mon, 01 Jul 2024 08:00:00 +0000"


def test_references_do_not_repeat_the_parent():
    _, msg = reply(references=("<m0@x.mssante.fr>", ORIGINAL_ID))
    assert msg["References"] == f"<m0@x.mssante.fr> {ORIGINAL_ID}"
