"""The MSSanté bridge end to end: a professional's server speaks SMTP to ``mes serve`` over
loopback (STARTTLS, a client certificate from the suite's CA), and the mail shows up in the
patient's inbox through FHIR — or is refused at the step that can say why."""

from __future__ import annotations

import base64
import io
import smtplib
import ssl
import time
import zipfile

import pytest
from access_world import CLOSED, block_consent
from mssante_world import (
    SENDER,
    Pki,
    address,
    eventually,
    inbox,
    mail,
    new_matricule,
    new_patient,
    running_bridge,
    send,
    session,
)

from cda.document import read_cda
from cda.mapping import patient as patient_of_cda
from fhir_server.synthetic_cda import cda_document, replacement, spec
from fhir_server.synthetic_mail import DEFAULT_PDF, MailSpec, Signer, professional_mail, sign_detached, to_bytes
from fhir_server.synthetic_xdm import xdm_package, zip_bomb
from mssante_bridge.spool import Envelope, Spool

EXT = "https://mes-interop.org/fhir/StructureDefinition/"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, pki):
    with running_bridge(tmp_path_factory.mktemp("bridge"), pki) as running:
        yield running


@pytest.fixture()
def trusted(pki) -> ssl.SSLContext:
    return pki.client_context(pki.client)


def delivered(bridge, patient_id: str, count: int = 1) -> list[dict]:
    return eventually(lambda: (found := inbox(bridge.http, patient_id)) and len(found) >= count and found) or []


def extension(resource: dict, name: str) -> dict | None:
    return next((e for e in resource.get("extension", ()) if e["url"] == EXT + name), None)


def test_a_mail_lands_in_the_patients_inbox(bridge, trusted):
    patient_id, to = new_patient(bridge.http)
    replies = send(bridge.smtp_port, trusted, mail(to), [to])
    assert [code for code, _ in replies] == [250, 250, 250]
    (message,) = delivered(bridge, patient_id)
    assert message["status"] == "completed"
    assert message["subject"] == {"reference": f"Patient/{patient_id}"}
    assert message["recipient"] == [{"reference": f"Patient/{patient_id}"}]
    assert message["topic"]["text"] == "Compte rendu d’hospitalisation LEFÈVRE Hélène 12/03/1979"  # XDM/1.0/DDM+ off
    assert message["sent"] == "2026-03-03T10:15:00+01:00"
    assert message["payload"][0]["contentString"].startswith("Bonjour Madame Lefèvre,")
    attachment = message["payload"][1]["contentAttachment"]
    assert (attachment["title"], attachment["contentType"]) == ("Compte rendu d’hospitalisation – Hélène Lefèvre.pdf",
                                                                "application/pdf")
    binary = bridge.http.get(f"/{attachment['url']}", headers={"Accept": "application/fhir+json"}).json()
    assert base64.b64decode(binary["data"]) == DEFAULT_PDF
    assert binary["securityContext"] == {"reference": f"Communication/{message['id']}"}
    assert extension(message, "reply-allowed")["valueBoolean"] is True
    envelope = [(e["url"], e.get("valueString")) for e in extension(message, "mail-envelope")["extension"]]
    assert ("mssHeader", "X-MSS-INS: O") in envelope  # the MSSanté headers, kept as sent
    assert ("recipient", to) in envelope
    sender = bridge.http.get(f"/{message['sender']['reference']}").json()
    assert sender["telecom"][0]["value"] == SENDER
    assert sender["name"][0]["text"] == "Dr Adam Hôda"


def test_the_sender_is_found_again_not_made_twice(bridge, trusted):
    first_id, first = new_patient(bridge.http)
    second_id, second = new_patient(bridge.http)
    send(bridge.smtp_port, trusted, mail(first), [first])
    send(bridge.smtp_port, trusted, mail(second), [second])
    (a,), (b,) = delivered(bridge, first_id), delivered(bridge, second_id)
    assert a["sender"] == b["sender"]


def test_one_mail_to_two_patients_reaches_both(bridge, trusted):
    (first_id, first), (second_id, second) = new_patient(bridge.http), new_patient(bridge.http)
    replies = send(bridge.smtp_port, trusted, mail(first), [first, second])
    assert [code for code, _ in replies] == [250, 250, 250, 250]
    assert len(delivered(bridge, first_id)) == 1
    assert len(delivered(bridge, second_id)) == 1


def test_the_same_message_id_is_delivered_once_per_sender(bridge, trusted):
    patient_id, to = new_patient(bridge.http)
    data = mail(to)
    for _ in range(3):
        assert send(bridge.smtp_port, trusted, data, [to])[-1][0] == 250
    other = data.replace(SENDER.encode(), b"ines.roux@hopital-test.mssante.fr")
    send(bridge.smtp_port, trusted, other, [to], sender="ines.roux@hopital-test.mssante.fr")
    messages = delivered(bridge, patient_id, 2)
    eventually(lambda: False, 1)  # time for a wrongly repeated delivery to show
    assert len(inbox(bridge.http, patient_id)) == len(messages) == 2  # one per sender


def test_fin_closes_the_conversation(bridge, trusted):
    patient_id, to = new_patient(bridge.http)
    send(bridge.smtp_port, trusted, mail(to, mss={"X-MSS-MES": "FIN"}), [to])
    (message,) = delivered(bridge, patient_id)
    assert extension(message, "reply-allowed")["valueBoolean"] is False


def test_a_reply_is_threaded_to_the_message_it_answers(bridge, trusted):
    patient_id, to = new_patient(bridge.http)
    first = "<premier-2026@test-ci-sis.mssante.fr>"
    send(bridge.smtp_port, trusted, mail(to, message_id=first), [to])
    (original,) = delivered(bridge, patient_id)
    send(bridge.smtp_port, trusted, mail(to, in_reply_to="<unknown@x>", references=(first, "<unknown@x>")), [to])
    answer = next(m for m in delivered(bridge, patient_id, 2) if m["id"] != original["id"])
    assert answer["inResponseTo"] == [{"reference": f"Communication/{original['id']}"}]
    assert original["identifier"] == [{"system": "urn:ietf:rfc:3986",
                                       "value": "mid:premier-2026@test-ci-sis.mssante.fr"}]


def test_an_smime_signature_is_verified_and_kept(bridge, pki, trusted):
    patient_id, to = new_patient(bridge.http)
    signing = pki.ca.issue("Dr Adam Hoda", email=True)
    signed = sign_detached(professional_mail(MailSpec(recipient=to, message_id="<signe-1@test-ci-sis.mssante.fr>")),
                           Signer.from_files(signing.cert, signing.key))
    send(bridge.smtp_port, trusted, signed, [to])
    (message,) = delivered(bridge, patient_id)
    signature = {e["url"]: next(v for k, v in e.items() if k.startswith("value"))
                 for e in extension(message, "signature")["extension"]}
    assert signature["valid"] is True
    assert signature["signer"] == "CN=Dr Adam Hoda"


# -- the DMP ------------------------------------------------------------------------------------


def _dmp_patient(bridge, s) -> tuple[str, str]:
    resource = patient_of_cda(read_cda(cda_document(s)).header.patient)
    created = bridge.http.post("/Patient", json=resource)
    assert created.status_code == 201, created.text
    return created.json()["id"], address(s.ins)


def test_a_cda_document_meant_for_the_dmp_is_filed_and_linked(bridge, trusted):
    s = spec(seed=4242)
    patient_id, to = _dmp_patient(bridge, s)
    send(bridge.smtp_port, trusted, mail(to, xdm_zip=xdm_package([[s]], dest_dmp="Y")), [to])
    (message,) = delivered(bridge, patient_id)
    (reference,) = [p["contentReference"]["reference"] for p in message["payload"] if "contentReference" in p]
    document = bridge.http.get(f"/{reference}").json()
    assert document["subject"] == {"reference": f"Patient/{patient_id}"}
    assert document["masterIdentifier"]["value"] == f"urn:oid:{s.doc_root}"
    assert document["context"]["related"] == [{"reference": f"Communication/{message['id']}"}]
    zipped = [p["contentAttachment"] for p in message["payload"]
              if p.get("contentAttachment", {}).get("title") == "IHE_XDM.zip"]
    assert len(zipped) == 1  # the package itself stays with the message


def test_a_document_without_the_dmp_destination_stays_in_the_inbox(bridge, trusted):
    s = spec(seed=4343)
    patient_id, to = _dmp_patient(bridge, s)
    send(bridge.smtp_port, trusted, mail(to, xdm_zip=xdm_package([[s]])), [to])
    (message,) = delivered(bridge, patient_id)
    assert not [p for p in message["payload"] if "contentReference" in p]
    filed = bridge.http.get("/DocumentReference", params={"patient": f"Patient/{patient_id}"}).json()
    assert filed.get("total", len(filed.get("entry", ()))) == 0


# -- refusals -----------------------------------------------------------------------------------


def test_mail_before_starttls_is_refused(bridge):
    with session(bridge.smtp_port, None) as smtp:
        code, text = smtp.mail(SENDER)
    assert code == 530
    assert b"STARTTLS" in text


def test_a_session_without_a_client_certificate_gets_no_command_through(bridge, pki):
    with session(bridge.smtp_port, pki.client_context(None)) as smtp:  # the handshake itself succeeds
        assert smtp.mail(SENDER)[0] == 554
        assert smtp.rcpt(address(new_matricule()))[0] == 554


def test_a_certificate_from_another_ca_fails_the_handshake(bridge, pki):
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)), \
            session(bridge.smtp_port, pki.client_context(pki.intruder)) as smtp:
        smtp.mail(SENDER)


def test_a_domain_off_the_allow_list_is_refused(bridge, trusted):
    with session(bridge.smtp_port, trusted) as smtp:
        code, text = smtp.mail("someone@ailleurs.example.org")
    assert code == 550
    assert b"allow-list" in text


@pytest.mark.parametrize("recipient, expected", [
    ("someone@example.org", b"is not a patient address"),
    ("299999999999999@patient.mssante.fr", b"patient inconnu"),  # no test makes this INS
    ("not-a-matricule@patient.mssante.fr", b"is not a patient address"),
])
def test_recipients_that_name_no_patient_are_refused_at_rcpt(bridge, trusted, recipient, expected):
    replies = send(bridge.smtp_port, trusted, b"", [recipient])
    assert replies[1][0] == 550
    assert expected in replies[1][1]
    assert len(replies) == 2  # no DATA: nothing was accepted


def test_a_closed_space_refuses_mail(bridge, trusted):
    _, to = new_patient(bridge.http, extension=[CLOSED])
    code, text = send(bridge.smtp_port, trusted, b"", [to])[1]
    assert (code, b"espace ferm" in text) == (550, True)


def test_a_sender_the_patient_blocked_is_refused_and_others_are_not(bridge, trusted):
    blocked = "dr.bloque@hopital-test.mssante.fr"
    doctor = bridge.http.post("/Practitioner", json={
        "resourceType": "Practitioner", "telecom": [{"system": "email", "value": blocked}]}).json()
    patient_id, to = new_patient(bridge.http)
    _, elsewhere = new_patient(bridge.http)
    consent = bridge.http.post("/Consent", json=block_consent(patient_id, f"Practitioner/{doctor['id']}"))
    assert consent.status_code == 201, consent.text
    with session(bridge.smtp_port, trusted) as smtp:
        smtp.mail(blocked)
        code, text = smtp.rcpt(to)
        assert (code, b"bloqu" in text) == (550, True)
        assert smtp.rcpt(elsewhere)[0] == 250


def _mime_bomb(to: str) -> bytes:
    head = (f"From: {SENDER}\r\nTo: {to}\r\nSubject: bombe\r\nMessage-ID: <bombe@test-ci-sis.mssante.fr>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
    return head.encode() + b"--b\r\n\r\n" * 500 + b"--b--\r\n"


@pytest.mark.parametrize("hostile, expected", [
    (lambda to: mail(to, xdm_zip=zip_bomb()), (554, b"IHE XDM")),
    (_mime_bomb, (552, b"More than 100 MIME parts")),
    (lambda to: mail(to, xdm_zip=b"PK\x03\x04 not a zip"), (554, b"IHE XDM")),
], ids=["zip bomb", "MIME bomb", "broken zip"])
def test_hostile_mail_is_refused_at_data_and_nothing_is_delivered(bridge, trusted, hostile, expected):
    patient_id, to = new_patient(bridge.http)
    code, text = send(bridge.smtp_port, trusted, hostile(to), [to])[-1]
    assert (code, expected[1] in text) == (expected[0], True), text
    eventually(lambda: False, 1)
    assert inbox(bridge.http, patient_id) == []


def test_without_a_trust_anchor_no_mail_is_accepted(tmp_path, pki):
    with running_bridge(tmp_path, pki, smtp_client_ca="") as running, \
            session(running.smtp_port, pki.client_context(pki.client)) as smtp:
        code, text = smtp.mail(SENDER)
    assert (code, text) == (554, b"Command refused due to lack of security")


# -- the patient files an attachment into the DMP ------------------------------------------------


def _file(bridge, patient_id: str, message: dict, attachment: str, entry: str | None = None):
    parameters = [{"name": "attachment", "valueReference": {"reference": attachment}}]
    parameters += [{"name": "entry", "valueString": entry}] if entry else []
    with bridge.client(f"Patient/{patient_id}", "patient/*.cruds") as me:
        return me.post(f"/Communication/{message['id']}/$file-document",
                       json={"resourceType": "Parameters", "parameter": parameters})


def _attachment(message: dict, title: str) -> str:
    return next(p["contentAttachment"]["url"] for p in message["payload"]
                if p.get("contentAttachment", {}).get("title") == title)


def test_the_patient_files_a_document_of_a_package_into_the_dmp(bridge, trusted):
    s = spec(seed=4444)
    patient_id, to = _dmp_patient(bridge, s)
    send(bridge.smtp_port, trusted, mail(to, xdm_zip=xdm_package([[s]])), [to])
    (message,) = delivered(bridge, patient_id)
    filed = _file(bridge, patient_id, message, _attachment(message, "IHE_XDM.zip"))
    assert filed.status_code == 201, filed.text
    document = filed.json()
    assert document["subject"] == {"reference": f"Patient/{patient_id}"}
    assert document["context"]["related"] == [{"reference": f"Communication/{message['id']}"}]
    again = _file(bridge, patient_id, message, _attachment(message, "IHE_XDM.zip"))
    assert (again.status_code, again.json()["id"]) == (200, document["id"])
    found = bridge.http.get("/DocumentReference", params={"related": f"Communication/{message['id']}"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [document["id"]]


def test_the_patient_files_a_plain_cda_attachment(bridge, trusted):
    s = spec(seed=4545)
    patient_id, to = _dmp_patient(bridge, s)
    message = professional_mail(MailSpec(recipient=to, message_id="<cda-joint-1@test-ci-sis.mssante.fr>"))
    message.add_attachment(cda_document(s), maintype="application", subtype="hl7-cda+xml", filename="CR.xml")
    send(bridge.smtp_port, trusted, to_bytes(message), [to])
    (received,) = delivered(bridge, patient_id)
    filed = _file(bridge, patient_id, received, _attachment(received, "CR.xml"))
    assert filed.status_code == 201, filed.text
    assert filed.json()["masterIdentifier"]["value"] == f"urn:oid:{s.doc_root}"


def test_what_cannot_be_filed_is_refused_and_nothing_is_written(bridge, trusted):
    s, other = spec(seed=4646), spec(seed=4747)
    patient_id, to = _dmp_patient(bridge, s)
    send(bridge.smtp_port, trusted, mail(to, xdm_zip=xdm_package([[other]])), [to])  # about someone else
    (message,) = delivered(bridge, patient_id)
    wrong_person = _file(bridge, patient_id, message, _attachment(message, "IHE_XDM.zip"))
    assert wrong_person.status_code == 422
    assert wrong_person.json()["issue"][0]["details"]["coding"][0]["code"] == "904"
    pdf = _file(bridge, patient_id, message, _attachment(message, MailSpec().pdf_name))
    assert (pdf.status_code, "neither a CDA document" in pdf.text) == (422, True)
    unknown = _file(bridge, patient_id, message, "Binary/ailleurs")
    assert (unknown.status_code, "is not an attachment" in unknown.text) == (422, True)
    stranger, _ = new_patient(bridge.http)
    assert _file(bridge, stranger, message, _attachment(message, "IHE_XDM.zip")).status_code == 404
    filed = bridge.http.get("/DocumentReference", params={"related": f"Communication/{message['id']}"}).json()
    assert not filed.get("entry")


def test_a_spooled_mail_that_cannot_be_delivered_is_kept_for_an_operator(tmp_path, pki):
    """The patient went between RCPT and delivery (here: a spool left by a crash names nobody):
    after a few attempts the mail moves to the spool's failed/ folder, never away."""
    spool = Spool(tmp_path / "data" / "mssante" / "spool")
    to = address(new_matricule())
    key = spool.put(Envelope(SENDER, (to,), "127.0.0.1", None, time.time()), mail(to))
    with running_bridge(tmp_path / "data", pki):
        kept = eventually(lambda: (spool.failed / f"{key}.eml").exists(), 30)
    assert kept
    assert spool.pending() == []


def test_an_organisations_mailbox_is_an_organization(bridge, trusted):
    s = spec(seed=4848)
    secretariat = "secretariat@hopital-test.mssante.fr"
    senders = []
    for _ in range(2):
        patient_id, to = new_patient(bridge.http)
        package = xdm_package([[s]], author_person=False, sender=secretariat)
        send(bridge.smtp_port, trusted, mail(to, xdm_zip=package), [to], sender=secretariat)
        (message,) = delivered(bridge, patient_id)
        senders.append(message["sender"]["reference"])
    assert senders[0] == senders[1]  # found again by its address
    assert senders[0].startswith("Organization/")
    organization = bridge.http.get(f"/{senders[0]}").json()
    assert organization["name"] == s.organization_name
    assert organization["telecom"][0]["value"] == secretariat
    assert organization["identifier"][0]["system"] == "urn:oid:1.2.250.1.71.4.2.2"


def test_a_patient_who_blocked_an_organisation_gets_no_mail_from_its_mailbox(bridge, trusted):
    mailbox_address = "accueil@hopital-test.mssante.fr"
    organization = bridge.http.post("/Organization", json={
        "resourceType": "Organization", "name": "Hôpital test", "telecom": [{"system": "email",
                                                                             "value": mailbox_address}]}).json()
    patient_id, to = new_patient(bridge.http)
    blocked = bridge.http.post("/Consent", json=block_consent(patient_id, f"Organization/{organization['id']}"))
    assert blocked.status_code == 201, blocked.text
    code, text = send(bridge.smtp_port, trusted, b"", [to], sender=mailbox_address)[1]
    assert (code, b"bloqu" in text) == (550, True)


def test_deliveries_are_traced_in_the_patients_record_as_the_bridge(bridge, trusted):
    patient_id, to = new_patient(bridge.http)
    send(bridge.smtp_port, trusted, mail(to), [to])
    (message,) = delivered(bridge, patient_id)
    with bridge.client(f"Patient/{patient_id}", "patient/*.rs") as me:
        trail = eventually(lambda: me.get("/AuditEvent", params={"patient": f"Patient/{patient_id}",
                                                                 "action": "C"}).json().get("entry"))
    created = [e["resource"] for e in trail
               if any(f"Communication/{message['id']}" in str(o) for o in e["resource"].get("entity", ()))]
    assert created, "the delivery left no trace in the patient's record"
    agents = {agent["who"].get("identifier", {}).get("value") or agent["who"].get("display")
              for event in created for agent in event["agent"]}
    assert "mssante-bridge" in agents
    assert {event["agent"][0]["network"]["address"] for event in created} == {"127.0.0.1"}


def test_a_corsican_ins_is_a_patient_address(bridge, trusted):
    patient_id, to = new_patient(bridge.http, matricule="185052A12345678")  # born in Corse-du-Sud: 2A
    assert send(bridge.smtp_port, trusted, mail(to), [to])[1][0] == 250
    assert len(delivered(bridge, patient_id)) == 1


def test_an_ordinary_zip_is_an_attachment_not_a_package(bridge, trusted):
    patient_id, to = new_patient(bridge.http)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("photo-lesion.txt", "une photo")
    message = professional_mail(MailSpec(recipient=to, message_id="<zip-ordinaire@test-ci-sis.mssante.fr>"))
    message.add_attachment(archive.getvalue(), maintype="application", subtype="zip", filename="photos.zip")
    assert send(bridge.smtp_port, trusted, to_bytes(message), [to])[-1][0] == 250
    (received,) = delivered(bridge, patient_id)
    assert _attachment(received, "photos.zip").startswith("Binary/")


def test_the_null_sender_is_refused_with_its_reason(bridge, trusted):
    with session(bridge.smtp_port, trusted) as smtp:
        code, text = smtp.mail("<>")
    assert (code, b"null sender" in text) == (550, True)


def test_a_reply_is_threaded_within_the_patients_own_inbox(bridge, trusted):
    (first_id, first), (second_id, second) = new_patient(bridge.http), new_patient(bridge.http)
    shared = "<a-deux-2026@test-ci-sis.mssante.fr>"
    send(bridge.smtp_port, trusted, mail(first, message_id=shared), [first, second])
    (mine,) = delivered(bridge, second_id)
    assert len(delivered(bridge, first_id)) == 1
    send(bridge.smtp_port, trusted, mail(second, in_reply_to=shared), [second])
    answer = next(m for m in delivered(bridge, second_id, 2) if m["id"] != mine["id"])
    assert answer["inResponseTo"] == [{"reference": f"Communication/{mine['id']}"}]


def test_by_mail_the_dmp_rules_hold_a_document_sent_again_and_a_replacement(bridge, trusted):
    """The same document in a second mail is the one filed (not a copy); its replacement supersedes it."""
    s = spec(seed=4949)
    patient_id, to = _dmp_patient(bridge, s)
    for message_id in ("<cr-v1-a@test-ci-sis.mssante.fr>", "<cr-v1-b@test-ci-sis.mssante.fr>"):
        send(bridge.smtp_port, trusted, mail(to, message_id=message_id, xdm_zip=xdm_package([[s]], dest_dmp="Y")),
             [to])
    first, again = delivered(bridge, patient_id, 2)
    (filed,) = {p["contentReference"]["reference"] for m in (first, again) for p in m["payload"]
                if "contentReference" in p}
    send(bridge.smtp_port, trusted, mail(to, message_id="<cr-v2@test-ci-sis.mssante.fr>",
                                         xdm_zip=xdm_package([[replacement(s)]], dest_dmp="Y")), [to])
    newest = next(m for m in delivered(bridge, patient_id, 3) if m["id"] not in (first["id"], again["id"]))
    (new,) = [p["contentReference"]["reference"] for p in newest["payload"] if "contentReference" in p]
    assert bridge.http.get(f"/{filed}").json()["status"] == "superseded"
    document = bridge.http.get(f"/{new}").json()
    assert (document["status"], document["relatesTo"][0]["target"]["reference"]) == ("current", filed)
