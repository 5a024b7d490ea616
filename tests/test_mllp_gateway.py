"""The HL7 v2 gateway through real MLLP sockets: framing, ACKs, ADT → Patient, MDM/ORU → DMP,
idempotency on MSH-10, nothing half-applied, traces."""

from __future__ import annotations

import base64
import socket
import threading
import uuid
from dataclasses import replace

import httpx
import pytest
from conftest import ThreadServer, free_port

from fhir_server.synthetic_cda import cda_document, replacement, spec
from fhir_server.synthetic_v2 import adt, encoded, mdm, merge, msh, patient_of, pid, zfa
from hl7v2.client import MllpClient
from hl7v2.er7 import parse
from hl7v2.mllp import frame

INS_NIR_TEST = "urn:oid:1.2.250.1.213.1.4.10"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    port = free_port()
    with ThreadServer(tmp_path_factory.mktemp("mllp"), mllp_port=port) as server:
        server.mllp_port = port
        yield server


@pytest.fixture()
def mllp(gateway):
    with MllpClient("127.0.0.1", gateway.mllp_port) as client:
        yield client


@pytest.fixture()
def fhir(gateway):
    with httpx.Client(base_url=gateway.base, timeout=30) as client:
        yield client


def control() -> str:
    return uuid.uuid4().hex[:20]


def new_patient(**overrides):
    """A patient no other test uses: a fresh IPP and INS drawn from a fresh seed."""
    seed = uuid.uuid4().int % 10**8
    return patient_of(spec(seed=seed), ipp=f"IPP{seed}", **overrides)


def ack_of(data: bytes):
    message = parse(data)
    msa = message.first("MSA")
    return msa(1), msa(2), message


def patients(fhir, system: str, value: str) -> list[dict]:
    bundle = fhir.get("/Patient", params={"identifier": f"{system}|{value}"}).json()
    return [entry["resource"] for entry in bundle.get("entry", [])]


def by_ins(fhir, p) -> dict:
    found = patients(fhir, INS_NIR_TEST, p.ins)
    assert len(found) == 1, found
    return found[0]


# --- ADT → Patient ------------------------------------------------------------------------


def test_a04_creates_a_fr_core_patient_with_every_pid_field(mllp, fhir):
    p = new_patient(used_family="DE LA FONTAINE", email="h.dupre@exemple.fr", reliability="VALI")
    code, echoed, _ = ack_of(mllp.send(adt("A04", p, (cid := control()))))
    assert (code, echoed) == ("AA", cid)
    patient = by_ins(fhir, p)
    assert {(i["system"], i["value"]) for i in patient["identifier"]} == {
        (INS_NIR_TEST, p.ins), ("urn:oid:1.2.250.1.999.1.1", p.ipp)}
    official = next(n for n in patient["name"] if n["use"] == "official")
    assert official["family"] == p.birth_family and official["given"] == [p.given[0]]
    assert next(n for n in patient["name"] if n["use"] == "usual")["family"] == "DE LA FONTAINE"
    assert patient["gender"] == {"M": "male", "F": "female"}[p.gender]
    assert patient["birthDate"] == f"{p.birth_date[:4]}-{p.birth_date[4:6]}-{p.birth_date[6:]}"
    assert patient["address"][0]["city"] == "Clermont-Ferrand" and patient["address"][0]["line"] == [p.street]
    assert {"system": "email", "value": "h.dupre@exemple.fr"} in patient["telecom"]
    extensions = {e["url"].rsplit("/", 1)[1]: e for e in patient["extension"]}
    assert extensions["fr-core-identity-reliability"]["extension"][0]["valueCoding"]["code"] == "VALI"
    if p.birthplace_cog:
        birthplace = extensions["patient-birthPlace"]["valueAddress"]["extension"][0]["valueCoding"]["code"]
        assert birthplace == p.birthplace_cog


@pytest.mark.parametrize("event", ["A01", "A05", "A28", "A31"])
def test_every_registration_event_creates_then_updates(mllp, fhir, event):
    p = new_patient()
    assert ack_of(mllp.send(adt(event, p, control())))[0] == "AA"
    assert ack_of(mllp.send(adt("A08", replace(p, city="Lyon"), control())))[0] == "AA"
    patient = by_ins(fhir, p)
    assert patient["meta"]["versionId"] == "2" and patient["address"][0]["city"] == "Lyon"


def test_an_update_keeps_what_other_doors_wrote(mllp, fhir):
    p = new_patient()
    mllp.send(adt("A28", p, control()))
    patient = by_ins(fhir, p)
    patient["identifier"].append({"system": "urn:oid:1.2.250.1.213.1.4.13", "value": "1790399999999"})
    assert fhir.put(f"/Patient/{patient['id']}", json=patient).status_code == 200
    assert ack_of(mllp.send(adt("A31", replace(p, phone="0600000000"), control())))[0] == "AA"
    updated = by_ins(fhir, p)
    assert "1790399999999" in {i["value"] for i in updated["identifier"]}
    assert updated["telecom"][0]["value"] == "0600000000"


def test_iso_8859_1_names_are_read_and_the_ack_answers_in_kind(mllp, fhir):
    p = new_patient(birth_family="LEFÈVRE-MÜLLER", given=("Agnès", "Zoé"), used_family="CÔTÉ")  # all in Latin-1
    data = adt("A28", p, (cid := control()), charset="8859/1")
    assert "LEFÈVRE".encode("iso-8859-1") in data
    answer = mllp.send(data)
    code, echoed, message = ack_of(answer)
    assert (code, echoed, message.msh(18)) == ("AA", cid, "8859/1")
    official = next(n for n in by_ins(fhir, p)["name"] if n["use"] == "official")
    assert official["family"] == "LEFÈVRE-MÜLLER" and official["given"] == ["Agnès"]
    assert official["extension"][0]["valueString"] == "Agnès Zoé"


def test_a_message_sent_again_is_acknowledged_again_and_applied_once(mllp, fhir):
    p = new_patient()
    data = adt("A04", p, (cid := control()))
    first, second = mllp.send(data), mllp.send(data)
    assert first == second and ack_of(second)[:2] == ("AA", cid)
    assert by_ins(fhir, p)["meta"]["versionId"] == "1"
    other_sender = adt("A04", p, cid, sender="AUTRE-LPS|AUTRE-CABINET")
    assert ack_of(mllp.send(other_sender))[0] == "AA"
    assert by_ins(fhir, p)["meta"]["versionId"] == "2"  # MSH-10 is unique per sending application only


def test_zfa_is_kept_as_the_patients_dmp_consent(mllp, fhir):
    p = new_patient()
    mllp.send(adt("A04", p, control(), extra=(zfa(feeding_opposed=True, consults=False, break_glass_opposed=True),)))
    patient = by_ins(fhir, p)
    bundle = fhir.get("/Consent", params={"patient": f"Patient/{patient['id']}"}).json()
    (consent,) = [e["resource"] for e in bundle["entry"]]
    kinds = {p["action"][0]["coding"][0]["code"] if "action" in p else p["purpose"][0]["code"]: p["type"]
             for p in consent["provision"]["provision"]}
    assert kinds == {"collect": "deny", "access": "deny", "bris_de_glace": "deny"}
    mllp.send(adt("A08", p, control(), extra=(zfa(),)))
    bundle = fhir.get("/Consent", params={"patient": f"Patient/{patient['id']}"}).json()
    (consent,) = [e["resource"] for e in bundle["entry"]]  # the same Consent, rewritten
    assert consent["meta"]["versionId"] == "2"
    assert {p["type"] for p in consent["provision"]["provision"]} == {"permit"}


def test_a40_merges_and_the_documents_follow(mllp, fhir):
    s = spec(seed=uuid.uuid4().int % 10**8)
    merged = patient_of(s, ipp=f"OLD{uuid.uuid4().hex[:8]}")
    assert ack_of(mllp.send(mdm("T02", cda_document(s), merged, control())))[0] == "AA"
    old = by_ins(fhir, merged)
    fhir.put(f"/Patient/{old['id']}", json={**old, "identifier": [i for i in old["identifier"]
                                                                   if i["system"] != INS_NIR_TEST]
                                             + [{"system": "urn:oid:1.2.250.1.999.1.1", "value": merged.ipp}]})
    survivor = new_patient()
    code, _, _ = ack_of(mllp.send(merge(survivor, merged.ipp, control())))
    assert code == "AA"
    kept = by_ins(fhir, survivor)
    gone = fhir.get(f"/Patient/{old['id']}").json()
    assert gone["active"] is False
    assert gone["link"] == [{"other": {"reference": f"Patient/{kept['id']}"}, "type": "replaced-by"}]
    assert kept["link"] == [{"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"}]
    documents = fhir.get("/DocumentReference", params={"subject": f"Patient/{kept['id']}"}).json()
    assert len(documents["entry"]) == 1
    assert fhir.get("/DocumentReference", params={"subject": f"Patient/{old['id']}"}).json().get("entry") is None


def test_a40_for_an_unknown_patient_writes_nothing(mllp, fhir):
    survivor = new_patient()
    code, _, message = ack_of(mllp.send(merge(survivor, "NOBODY", control())))
    assert code == "AE" and message.first("ERR")(2, 1) == "MRG" and message.first("ERR")(3, 1) == "204"
    assert patients(fhir, INS_NIR_TEST, survivor.ins) == []  # the survivor's upsert rolled back too


def test_a47_replaces_the_identifier(mllp, fhir):
    p = new_patient()
    mllp.send(adt("A28", p, control()))
    renumbered = replace(p, ipp=p.ipp + "N")
    assert ack_of(mllp.send(merge(renumbered, p.ipp, control(), event="A47")))[0] == "AA"
    values = {i["value"] for i in by_ins(fhir, p)["identifier"]}
    assert p.ipp + "N" in values and p.ipp not in values


def test_a_pid_without_identifiers_or_birth_name_is_refused_at_its_field(mllp):
    p = new_patient()
    broken = adt("A28", p, control()).replace(f"{p.ipp}^^^MES-TEST&1.2.250.1.999.1.1&ISO^PI~".encode(), b"")
    broken = broken.replace(f"{p.ins}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS".encode(), b"")
    code, _, message = ack_of(mllp.send(broken))
    err = message.first("ERR")
    assert (code, err(2, 1), err(2, 3), err(3, 1), err(4)) == ("AE", "PID", "3", "101", "E")
    assert "PID-3" in err(7) and "PID-3" in err(8)


# --- MDM / ORU → DMP ----------------------------------------------------------------------


def test_mdm_t02_files_the_document_with_the_visibility_flags(mllp, fhir):
    s = spec(seed=uuid.uuid4().int % 10**8)
    flags = {"MASQUE_PS": False, "INVISIBLE_PATIENT": True, "INVISIBLE_REP_LEGAUX": True}
    assert ack_of(mllp.send(mdm("T02", cda_document(s), patient_of(s), control(), flags=flags)))[0] == "AA"
    patient = by_ins(fhir, patient_of(s))
    (document,) = [e["resource"] for e in fhir.get("/DocumentReference", params={
        "subject": f"Patient/{patient['id']}"}).json()["entry"]]
    codes = {c["code"] for concept in document["securityLabel"] for c in concept["coding"]}
    assert {"INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"} <= codes and "MASQUE_PS" not in codes
    binary = fhir.get(document["content"][0]["attachment"]["url"], headers={"Accept": "*/*"})
    assert binary.content == cda_document(s)


def test_oru_r01_files_the_document_once(mllp, fhir):
    s = spec(seed=uuid.uuid4().int % 10**8)
    assert ack_of(mllp.send(mdm("R01", cda_document(s), patient_of(s), control())))[0] == "AA"
    assert ack_of(mllp.send(mdm("T02", cda_document(s), patient_of(s), control())))[0] == "AA"  # already filed
    patient = by_ins(fhir, patient_of(s))
    assert len(fhir.get("/DocumentReference", params={"subject": f"Patient/{patient['id']}"}).json()["entry"]) == 1


def test_mdm_t10_replaces_and_t04_can_change_visibility(mllp, fhir):
    s = spec(seed=uuid.uuid4().int % 10**8)
    mllp.send(mdm("T02", cda_document(s), patient_of(s), control()))
    newer = replacement(s)
    assert ack_of(mllp.send(mdm("T10", cda_document(newer), patient_of(s), control())))[0] == "AA"
    patient = by_ins(fhir, patient_of(s))
    statuses = sorted(e["resource"]["status"] for e in fhir.get("/DocumentReference", params={
        "subject": f"Patient/{patient['id']}"}).json()["entry"])
    assert statuses == ["current", "superseded"]
    relabel = mdm("T04", cda_document(newer), patient_of(s), control(),
                  flags={"MASQUE_PS": True, "MODIF_CONF_CODE": True})
    assert ack_of(mllp.send(relabel))[0] == "AA"
    current = fhir.get("/DocumentReference", params={"subject": f"Patient/{patient['id']}",
                                                     "status": "current"}).json()["entry"][0]["resource"]
    codes = {c["code"] for concept in current["securityLabel"] for c in concept["coding"]}
    assert "MASQUE_PS" in codes


def test_t10_without_a_replaced_document_is_refused(mllp):
    s = spec(seed=uuid.uuid4().int % 10**8)
    code, _, message = ack_of(mllp.send(mdm("T10", cda_document(s), patient_of(s), control())))
    assert code == "AE" and "RPLC" in message.first("ERR")(7)


@pytest.mark.parametrize(("change", "dmp_code"), [
    ({"omit": ("recordTarget/patientRole/id",)}, "903"),
])
def test_a_document_the_dmp_refuses_is_an_ae_with_its_dmp_code(mllp, change, dmp_code):
    s = spec(seed=uuid.uuid4().int % 10**8, **change)
    code, _, message = ack_of(mllp.send(mdm("T02", cda_document(s), patient_of(spec()), control())))
    assert code == "AE"
    assert dmp_code in {err(5, 1) for err in message.all("ERR")}


def test_pid_and_document_naming_different_patients_is_refused(mllp, fhir):
    s, other = spec(seed=uuid.uuid4().int % 10**8), new_patient()
    code, _, message = ack_of(mllp.send(mdm("T02", cda_document(s), other, control())))
    assert code == "AE" and message.first("ERR")(2, 1) == "PID" and message.first("ERR")(5, 1) == "904"
    assert patients(fhir, INS_NIR_TEST, s.ins) == []


def test_no_dmp_destination_and_bad_base64_are_refused(mllp):
    s = spec(seed=uuid.uuid4().int % 10**8)
    code, _, message = ack_of(mllp.send(mdm("T02", cda_document(s), patient_of(s), control(),
                                             flags={"DESTDMP": False})))
    assert code == "AE" and "DESTDMP" in message.first("ERR")(7)
    broken = mdm("T02", b"<x/>", patient_of(s), control()).replace(base64.b64encode(b"<x/>"), b"!!not base64!!")
    code, _, message = ack_of(mllp.send(broken))
    assert code == "AE" and message.first("ERR")(2, 1) == "OBX" and message.first("ERR")(3, 1) == "102"


def test_mssante_destinations_are_warned_about(mllp):
    s = spec(seed=uuid.uuid4().int % 10**8)
    code, _, message = ack_of(mllp.send(mdm("T02", cda_document(s), patient_of(s), control(),
                                             flags={"DESTMSSANTEPAT": True})))
    assert code == "AA" and message.first("ERR")(4) == "W" and "DESTMSSANTEPAT" in message.first("ERR")(7)


# --- refusals of the message itself -------------------------------------------------------


def test_unsupported_types_and_events_are_rejected_with_a_reason(mllp):
    p = new_patient()
    code, _, message = ack_of(mllp.send(adt("A04", p, control()).replace(b"ADT^A04^ADT_A01", b"ADT^A99^ADT_A01")))
    assert code == "AR" and message.first("ERR")(3, 1) == "201" and "A04" in message.first("ERR")(7)
    code, _, message = ack_of(mllp.send(adt("A04", p, control()).replace(b"ADT^A04^ADT_A01", b"RDE^O11^RDE_O11")))
    assert code == "AR" and message.first("ERR")(3, 1) == "200"
    code, _, message = ack_of(mllp.send(adt("A04", p, control()).replace(b"|2.5|", b"|9.9|")))
    assert code == "AR" and message.first("ERR")(3, 1) == "203"


def test_an_unreadable_message_gets_an_ar_echoing_its_control_id(mllp):
    code, echoed, _ = ack_of(mllp.send(b"MSH|^~\\&|APP|FAC|MES|MES|2026||ADT^A04|CTRL-42|P|2.5|||||FRA|KOI8-R\rPID|"))
    assert (code, echoed) == ("AR", "CTRL-42")
    code, echoed, _ = ack_of(mllp.send(b"\x00\x01 not hl7 at all"))
    assert (code, echoed) == ("AR", "")
    utf8_lie = encoded([msh("ADT^A04^ADT_A01", "CTRL-43", charset="UNICODE UTF-8"), "PID|1||X"], "8859/1") \
        .replace(b"|X", "|\xe9".encode("latin-1"))
    code, echoed, message = ack_of(mllp.send(utf8_lie))
    assert (code, echoed) == ("AR", "CTRL-43") and "UTF-8" in message.first("ERR")(7)


# --- framing and connections --------------------------------------------------------------


def test_partial_reads_several_frames_and_garbage_between_frames(gateway, fhir):
    first, second, third = new_patient(), new_patient(), new_patient()
    ids = [control() for _ in range(3)]
    stream = (b"\r\n garbage \x1c\r" + frame(adt("A28", first, ids[0])) + b"\n\n" + frame(adt("A28", second, ids[1]))
              + b"\x0bhalf a frame then a new start" + frame(adt("A28", third, ids[2]))[:-1])  # FS without CR
    with socket.create_connection(("127.0.0.1", gateway.mllp_port)) as sock:
        for i in range(0, len(stream), 7):  # seven bytes at a time
            sock.sendall(stream[i:i + 7])
        sock.settimeout(10)
        client_view = b""
        while client_view.count(b"\x1c\r") < 3:
            client_view += sock.recv(65536)
    acks = [parse(chunk.strip(b"\x0b")) for chunk in client_view.split(b"\x1c\r") if chunk]
    assert [(a.first("MSA")(1), a.first("MSA")(2)) for a in acks] == [("AA", i) for i in ids]
    for p in (first, second, third):
        by_ins(fhir, p)


def test_an_oversized_frame_is_rejected_and_the_connection_goes_on(tmp_path, fhir):
    port = free_port()
    with ThreadServer(tmp_path, mllp_port=port, mllp_max_message_bytes=4096) as server, \
            MllpClient("127.0.0.1", port) as client:
        big = adt("A28", new_patient(), "BIG-1", extra=("NTE|1||" + "x" * 10_000,))
        code, echoed, _ = ack_of(client.send(big))
        assert (code, echoed) == ("AR", "BIG-1")
        assert ack_of(client.send(adt("A28", (p := new_patient()), "SMALL-1")))[0] == "AA"
        found = httpx.get(f"{server.base}/Patient", params={"identifier": f"{INS_NIR_TEST}|{p.ins}"}).json()
        assert len(found["entry"]) == 1


def test_many_messages_on_eight_connections_at_once(gateway, fhir):
    results: dict[int, list[str]] = {}

    def sender(n: int) -> None:
        with MllpClient("127.0.0.1", gateway.mllp_port) as client:
            results[n] = [ack_of(client.send(adt("A28", new_patient(), f"C{n}-{i}-{control()}")))[0]
                          for i in range(15)]

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {n: ["AA"] * 15 for n in range(8)}


def test_connections_beyond_the_limit_are_closed_and_the_others_served(tmp_path):
    port = free_port()
    with ThreadServer(tmp_path, mllp_port=port, mllp_max_connections=2), \
            MllpClient("127.0.0.1", port) as first, MllpClient("127.0.0.1", port) as second:
        assert ack_of(first.send(adt("A28", new_patient(), "LIM-1")))[0] == "AA"
        assert ack_of(second.send(adt("A28", new_patient(), "LIM-2")))[0] == "AA"
        with pytest.raises(OSError), MllpClient("127.0.0.1", port, timeout=5) as third:
            third.send(adt("A28", new_patient(), "LIM-3"))
        assert ack_of(first.send(adt("A28", new_patient(), "LIM-4")))[0] == "AA"


def test_a_peer_outside_the_allowed_networks_is_refused(tmp_path):
    port = free_port()
    with ThreadServer(tmp_path, mllp_port=port, mllp_allowed_networks="10.0.0.0/8") as server, \
            MllpClient("127.0.0.1", port) as client:
        p = new_patient()
        code, _, message = ack_of(client.send(adt("A28", p, "NOPE-1")))
        assert code == "AR" and "not allowed" in message.first("ERR")(7)
        with pytest.raises(ConnectionError):
            client.send(adt("A28", p, "NOPE-2"))
        found = httpx.get(f"{server.base}/Patient", params={"identifier": f"{INS_NIR_TEST}|{p.ins}"}).json()
        assert not found.get("entry")


def test_writes_over_mllp_are_traced_as_the_gateway_client(mllp, fhir):
    p = new_patient()
    mllp.send(adt("A28", p, control()))
    patient = by_ins(fhir, p)
    bundle = fhir.get("/AuditEvent", params={"patient": f"Patient/{patient['id']}", "action": "C"}).json()
    agents = {agent["who"].get("identifier", {}).get("value") or agent["who"].get("display")
              for e in bundle["entry"] for agent in e["resource"]["agent"]}
    assert "mllp-gateway" in agents
    assert {e["resource"]["agent"][0]["network"]["address"] for e in bundle["entry"]} == {"127.0.0.1"}


def test_the_ack_is_a_valid_hl7_message_for_hl7apy(mllp):
    from hl7apy.parser import parse_message

    answer = mllp.send(adt("A28", new_patient(), (cid := control())))
    parsed = parse_message(answer.decode().replace("\n", "\r").strip("\r"), find_groups=False)
    assert parsed.msa.msa_1.value == "AA" and parsed.msa.msa_2.value == cid
    refused = mllp.send(merge(new_patient(), "NOBODY", control()))
    parsed = parse_message(refused.decode().strip("\r"), find_groups=False)
    assert parsed.msa.msa_1.value == "AE" and parsed.err.err_3.err_3_1.value == "204"


def test_pid_segment_helpers_agree_with_what_the_fixture_wrote():
    p = new_patient(used_family="MARTIN")
    segment = parse(encoded([msh("ADT^A28^ADT_A05", "X"), pid(p)], "UNICODE UTF-8")).first("PID")
    assert segment(5, 1) == p.birth_family and segment.repetitions(5)[1].get(7) == "D"


def test_strict_validation_rejects_what_hl7apy_finds_and_applies_the_rest(tmp_path):
    port = free_port()
    s = spec(seed=uuid.uuid4().int % 10**8)
    with ThreadServer(tmp_path, mllp_port=port, mllp_validation="strict") as server, \
            MllpClient("127.0.0.1", port) as client:
        assert ack_of(client.send(adt("A04", (p := new_patient()), "S-1")))[0] == "AA"
        assert ack_of(client.send(mdm("T02", cda_document(s), patient_of(s), "S-2")))[0] == "AA"
        no_evn = adt("A04", (q := new_patient()), "S-3").replace(b"EVN||20261124101500\r", b"")
        code, echoed, message = ack_of(client.send(no_evn))
        err = message.first("ERR")
        assert (code, echoed, err(2, 1), err(3, 1)) == ("AR", "S-3", "EVN", "100")
        bad_date = adt("A04", replace(q, birth_date="19791399"), "S-4")
        assert ack_of(client.send(bad_date))[0] == "AR"
        found = {ins: httpx.get(f"{server.base}/Patient", params={"identifier": f"{INS_NIR_TEST}|{ins}"}).json()
                 for ins in (p.ins, q.ins)}
        assert len(found[p.ins]["entry"]) == 1 and not found[q.ins].get("entry")


# --- SIU over the socket (the mapping itself: tests/test_v2_appointments.py) ---------------------


def test_an_appointment_booked_moved_and_cancelled_over_mllp(mllp, fhir):
    from test_v2_appointments import booking, rdv, sch, siu

    placer = rdv()
    assert ack_of(mllp.send(siu("S12", *booking(placer))))[0] == "AA"
    found = fhir.get("/Appointment", params={"identifier": f"urn:oid:1.2.250.1.999.2.1|{placer}"}).json()
    (appointment,) = [e["resource"] for e in found["entry"]]
    assert appointment["status"] == "booked" and appointment["start"] == "2026-12-01T09:30:00+01:00"
    actors = {p["actor"].get("reference", "").split("/")[0] or p["actor"].get("type") for p in
              appointment["participant"]}
    assert actors == {"Patient", "Practitioner", "Location"}
    moved = sch(placer, timing="^^^20261202140000^20261202143000")
    assert ack_of(mllp.send(siu("S13", moved)))[0] == "AA"
    cancelled = sch(placer, timing="^^^20261202140000^20261202143000", status="Cancelled")
    assert ack_of(mllp.send(siu("S15", cancelled)))[0] == "AA"
    current = fhir.get(f"/Appointment/{appointment['id']}").json()
    assert current["status"] == "cancelled" and current["start"] == "2026-12-02T14:00:00+01:00"
    assert ack_of(mllp.send(siu("S17", sch(placer))))[0] == "AA"
    assert fhir.get(f"/Appointment/{appointment['id']}").status_code == 410
    code, _, message = ack_of(mllp.send(siu("S14", sch(rdv()))))
    assert code == "AE" and message.first("ERR")(3, 1) == "204"
