"""What goes back to the professional through the outbound relay (a loopback SMTP server here):
RFC 8098 receipts when asked (processed on delivery, displayed when the patient reads), CI-SIS
error receipts or error mails for refused documents, and the patient's answers — retried while
the relay refuses them, visibly. And the patient's side: marking read and unread, answering only
where an answer is allowed."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from mssante_world import (
    SENDER,
    Pki,
    RelaySink,
    address,
    eventually,
    inbox,
    mail,
    new_patient,
    running_bridge,
    send,
)

from cda.document import read_cda
from cda.mapping import patient as patient_of_cda
from fhir_server.synthetic_cda import cda_document, spec
from fhir_server.synthetic_xdm import xdm_package

EXT = "https://mes-interop.org/fhir/StructureDefinition/"
READ = EXT + "read"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def sink():
    with RelaySink() as running:
        yield running


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, pki, sink):
    with running_bridge(tmp_path_factory.mktemp("bridge"), pki, smtp_relay=f"127.0.0.1:{sink.port}") as running:
        yield running


def receive(bridge, pki, *, patient=None, **changes) -> tuple[str, dict, str]:
    """A professional's mail delivered to a (new) patient: (patient id, the message, its subject)."""
    patient_id, to = patient or new_patient(bridge.http)
    subject = changes.pop("subject", f"Compte rendu {uuid.uuid4().hex[:8]}")
    send(bridge.smtp_port, pki.client_context(pki.client), mail(to, subject=subject, **changes), [to])
    found = eventually(lambda: [m for m in inbox(bridge.http, patient_id) if m.get("topic", {}).get("text") == subject])
    assert found, "the mail was not delivered"
    return patient_id, found[0], subject


def receipts(bridge, message_id: str) -> dict[str, list]:
    message = bridge.http.get(f"/Communication/{message_id}").json()
    receipt = next((e for e in message.get("extension", ()) if e["url"] == EXT + "receipts"), {"extension": []})
    out: dict[str, list] = {}
    for sub in receipt["extension"]:
        out.setdefault(sub["url"], []).append(next(v for k, v in sub.items() if k.startswith("value")))
    return out


def patient_client(bridge, patient_id: str):
    return bridge.client(f"Patient/{patient_id}", "patient/*.cruds")


def disposition(relayed) -> str:
    report = next(p for p in relayed.message.walk() if p.get_content_type() == "message/disposition-notification")
    return str(report.get_payload()[0]["Disposition"])


def marked_read(message: dict, when: str = "2026-11-24T10:00:00+01:00") -> dict:
    return {**message, "extension": [*message.get("extension", ()), {"url": READ, "valueDateTime": when}]}


def answer(patient_id: str, message: dict, **changes) -> dict:
    return {"resourceType": "Communication", "status": "in-progress", "subject": {"reference": f"Patient/{patient_id}"},
            "sender": {"reference": f"Patient/{patient_id}"}, "recipient": [message["sender"]],
            "inResponseTo": [{"reference": f"Communication/{message['id']}"}],
            "payload": [{"contentString": "Merci docteur, je prends rendez-vous."}], **changes}


# -- receipts ------------------------------------------------------------------------------------


def test_a_processed_receipt_goes_back_when_asked(bridge, pki, sink):
    _, message, subject = receive(bridge, pki)
    (mdn,) = eventually(lambda: sink.about(subject))
    assert mdn.mail_from == "<>"  # RFC 8098 §3: MAIL FROM:<> (as aiosmtpd reports it)
    assert mdn.rcpt_tos == [SENDER]
    assert mdn.message.get_content_type() == "multipart/report"
    assert disposition(mdn) == "automatic-action/MDN-sent-automatically; processed"
    owed = eventually(lambda: (r := receipts(bridge, message["id"])) and "processed" not in r.get("owed", ()) and r)
    assert owed["owed"] == ["displayed"]  # still owed: the patient has not read it
    assert owed["sent"][0].startswith("processed ")


def test_no_receipt_unless_asked(bridge, pki, sink):
    _, message, subject = receive(bridge, pki, disposition_notification_to=None)
    eventually(lambda: sink.about(subject), 2)
    assert sink.about(subject) == []
    assert receipts(bridge, message["id"]) == {}


def test_reading_sends_the_displayed_receipt_once(bridge, pki, sink):
    patient_id, message, subject = receive(bridge, pki)
    eventually(lambda: sink.about(subject))
    with patient_client(bridge, patient_id) as me:
        current = me.get(f"/Communication/{message['id']}").json()
        assert me.put(f"/Communication/{message['id']}", json=marked_read(current)).status_code == 200
    relayed = eventually(lambda: len(sink.about(subject)) == 2 and sink.about(subject))
    assert [disposition(r) for r in relayed] == ["automatic-action/MDN-sent-automatically; processed",
                                                 "manual-action/MDN-sent-manually; displayed"]
    eventually(lambda: False, 1.5)
    assert len(sink.about(subject)) == 2
    assert "owed" not in receipts(bridge, message["id"])


def _dmp_patient(bridge, s) -> tuple[str, str]:
    created = bridge.http.post("/Patient", json=patient_of_cda(read_cda(cda_document(s)).header.patient))
    assert created.status_code == 201, created.text
    return created.json()["id"], address(s.ins)


@pytest.mark.parametrize("asked", [SENDER, None, "secretariat@test-ci-sis.mssante.fr"],
                         ids=["MDN asked", "no MDN asked", "MDN asked by another address"])
def test_a_document_the_dmp_refuses_is_reported_with_its_ci_sis_code(bridge, pki, sink, asked):
    seed = 5100 + len(asked or "")
    recipient, someone_else = spec(seed=seed), spec(seed=seed + 100)  # a document about another patient: 904
    patient = _dmp_patient(bridge, recipient)
    _, message, subject = receive(bridge, pki, patient=patient, xdm_zip=xdm_package([[someone_else]], dest_dmp="Y"),
                                  disposition_notification_to=asked)
    (relayed,) = eventually(lambda: sink.about(subject))
    assert str(relayed.message["Subject"]).startswith("[KO Intégration système !][904] ")
    assert relayed.rcpt_tos == [SENDER]  # an MDN to the asker; else the error mail to the Return-Path
    if asked == SENDER:
        assert disposition(relayed).startswith("automatic-action/MDN-sent-automatically; processed/Error: 904^")
    else:
        assert relayed.message.get_content_type() == "multipart/mixed"  # the plain error mail
    assert not [p for p in message["payload"] if "contentReference" in p]  # nothing filed


# -- the patient's inbox -------------------------------------------------------------------------


def test_the_patient_marks_messages_read_and_unread(bridge, pki):
    patient = new_patient(bridge.http)
    patient_id, first, _ = receive(bridge, pki, patient=patient, disposition_notification_to=None)
    _, second, _ = receive(bridge, pki, patient=patient, disposition_notification_to=None)
    with patient_client(bridge, patient_id) as me:
        unread = me.get("/Communication", params={"recipient": f"Patient/{patient_id}", "read:missing": "true"})
        assert {e["resource"]["id"] for e in unread.json()["entry"]} == {first["id"], second["id"]}
        assert me.put(f"/Communication/{first['id']}", json=marked_read(first)).status_code == 200
        unread = me.get("/Communication", params={"recipient": f"Patient/{patient_id}", "read:missing": "true"})
        assert [e["resource"]["id"] for e in unread.json()["entry"]] == [second["id"]]
        current = me.get(f"/Communication/{first['id']}").json()
        back = {**current, "extension": [e for e in current["extension"] if e["url"] != READ]}
        assert me.put(f"/Communication/{first['id']}", json=back).status_code == 200
        unread = me.get("/Communication", params={"recipient": f"Patient/{patient_id}", "read:missing": "true"})
        assert len(unread.json()["entry"]) == 2


def test_the_inbox_lists_the_newest_first(bridge, pki):
    patient = new_patient(bridge.http)
    patient_id, _, older = receive(bridge, pki, patient=patient, sent=_paris(2026, 3, 1))
    _, _, newer = receive(bridge, pki, patient=patient, sent=_paris(2026, 4, 1))
    with patient_client(bridge, patient_id) as me:
        listed = me.get("/Communication", params={"recipient": f"Patient/{patient_id}", "_sort": "-sent"}).json()
    assert [e["resource"]["topic"]["text"] for e in listed["entry"]] == [newer, older]


def _paris(year: int, month: int, day: int):
    import datetime
    from zoneinfo import ZoneInfo

    return datetime.datetime(year, month, day, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))


@pytest.mark.parametrize("change", [
    lambda m: {**m, "topic": {"text": "Autre chose"}},
    lambda m: {**m, "payload": [{"contentString": "réécrit"}]},
    lambda m: {**m, "extension": [e for e in m["extension"] if "reply-allowed" not in e["url"]]},
], ids=["topic", "payload", "bridge extension"])
def test_the_patient_changes_nothing_else_on_a_message(bridge, pki, change):
    patient_id, message, _ = receive(bridge, pki, disposition_notification_to=None)
    with patient_client(bridge, patient_id) as me:
        refused = me.put(f"/Communication/{message['id']}", json=change(message))
    assert refused.status_code == 403
    assert "only mark it read" in refused.json()["issue"][0]["diagnostics"]


def test_another_patient_does_not_see_the_message(bridge, pki):
    _, message, _ = receive(bridge, pki, disposition_notification_to=None)
    other, _ = new_patient(bridge.http)
    with patient_client(bridge, other) as them:
        assert them.get(f"/Communication/{message['id']}").status_code == 404


# -- answers -------------------------------------------------------------------------------------


def test_an_answer_is_relayed_threaded_and_completed(bridge, pki, sink):
    patient_id, message, subject = receive(bridge, pki, disposition_notification_to=None,
                                           references=("<debut@test-ci-sis.mssante.fr>",))
    with patient_client(bridge, patient_id) as me:
        created = me.post("/Communication", json=answer(patient_id, message))
        assert created.status_code == 201, created.text
        (relayed,) = eventually(lambda: sink.about(f"Re: {subject}"))
        done = eventually(lambda: (c := me.get(f"/Communication/{created.json()['id']}").json())["status"]
                          == "completed" and c)
    original_id = "<" + message["identifier"][0]["value"].removeprefix("mid:") + ">"
    assert relayed.mail_from == address_of(bridge, patient_id)
    assert relayed.rcpt_tos == [SENDER]
    assert str(relayed.message["In-Reply-To"]) == original_id
    assert str(relayed.message["References"]) == f"<debut@test-ci-sis.mssante.fr> {original_id}"
    assert relayed.message.get_body(("plain",)).get_content().strip() == "Merci docteur, je prends rendez-vous."
    assert done["sent"]
    assert done["identifier"][0]["value"] == "mid:" + str(relayed.message["Message-ID"]).strip("<>")


def address_of(bridge, patient_id: str) -> str:
    patient = bridge.http.get(f"/Patient/{patient_id}").json()
    return address(patient["identifier"][0]["value"])


@pytest.mark.parametrize("change, reason", [
    (lambda a, m: {**a, "sender": m["sender"]}, "sent as themselves"),
    (lambda a, m: {**a, "status": "completed"}, "created in-progress"),
    (lambda a, m: {k: v for k, v in a.items() if k != "inResponseTo"}, "answers a message of their inbox"),
    (lambda a, m: {**a, "recipient": [{"reference": "Practitioner/quelqu-un"}]}, "goes to the sender"),
    (lambda a, m: {**a, "extension": [{"url": EXT + "relay", "extension": [
        {"url": "attempts", "valueInteger": 1}]}]}, "extensions"),
], ids=["forged sender", "completed", "no parent", "someone else", "bridge extension"])
def test_answers_follow_the_rules(bridge, pki, change, reason):
    patient_id, message, _ = receive(bridge, pki, disposition_notification_to=None)
    with patient_client(bridge, patient_id) as me:
        refused = me.post("/Communication", json=change(answer(patient_id, message), message))
    assert refused.status_code == 403, refused.text
    assert reason in refused.json()["issue"][0]["diagnostics"]


def test_no_answer_to_a_closed_conversation(bridge, pki, sink):
    patient_id, message, subject = receive(bridge, pki, disposition_notification_to=None, mss={"X-MSS-MES": "FIN"})
    with patient_client(bridge, patient_id) as me:
        refused = me.post("/Communication", json=answer(patient_id, message))
    assert refused.status_code == 403
    assert "X-MSS-MES: FIN" in refused.json()["issue"][0]["diagnostics"]


def test_no_answer_to_another_patients_message(bridge, pki):
    _, message, _ = receive(bridge, pki, disposition_notification_to=None)
    other, _ = new_patient(bridge.http)
    with patient_client(bridge, other) as them:
        refused = them.post("/Communication", json=answer(other, message))
    assert refused.status_code == 403


def test_a_refusing_relay_is_retried_and_the_wait_is_visible(bridge, pki, sink):
    patient_id, message, subject = receive(bridge, pki, disposition_notification_to=None)
    sink.refusing = True
    try:
        with patient_client(bridge, patient_id) as me:
            answer_id = me.post("/Communication", json=answer(patient_id, message)).json()["id"]
            waiting = eventually(lambda: [e for e in me.get(f"/Communication/{answer_id}").json().get("extension", ())
                                          if e["url"] == EXT + "relay"])
            (relay,) = waiting
            assert {s["url"]: next(v for k, v in s.items() if k.startswith("value")) for s in relay["extension"]} \
                == {"attempts": 1, "lastError": "451 4.3.0 Relay busy, try again later"}
            assert me.get(f"/Communication/{answer_id}").json()["status"] == "in-progress"
            sink.refusing = False
            done = eventually(lambda: (c := me.get(f"/Communication/{answer_id}").json())["status"] == "completed"
                              and c, 30)
    finally:
        sink.refusing = False
    assert done and not [e for e in done.get("extension", ()) if e["url"] == EXT + "relay"]
    assert len(sink.about(f"Re: {subject}")) == 1


def _couriers(parent: int) -> list[int]:
    """The outbox courier processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if ppid == parent and b"fhir_server.inbox.courier" in command:
                found.append(int(entry.name))
    return found


def test_a_courier_that_dies_is_started_again_and_nothing_owed_is_lost(bridge, pki, sink):
    (courier,) = _couriers(os.getpid())
    os.kill(courier, signal.SIGKILL)
    _, _, subject = receive(bridge, pki)  # owed while the courier is down
    (replacement,) = eventually(lambda: _couriers(os.getpid()))
    assert replacement != courier
    assert eventually(lambda: sink.about(subject))


def test_other_messages_in_progress_do_not_hold_answers_back(bridge, pki, sink):
    """More in-progress Communications than the outbox reads in a round, none an answer to mail:
    the patient's answer still goes."""
    patient_id, message, subject = receive(bridge, pki, disposition_notification_to=None)
    drafts = [{"request": {"method": "POST", "url": "Communication"}, "resource": {
        "resourceType": "Communication", "status": "in-progress", "subject": {"reference": f"Patient/{patient_id}"},
        "payload": [{"contentString": f"brouillon {n}"}]}} for n in range(60)]
    created = bridge.http.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": drafts})
    assert created.status_code == 200, created.text
    with patient_client(bridge, patient_id) as me:
        assert me.post("/Communication", json=answer(patient_id, message)).status_code == 201
    assert eventually(lambda: sink.about(f"Re: {subject}"))
