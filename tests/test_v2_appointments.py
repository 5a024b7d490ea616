"""SIU S12 / S13 / S14 / S15 / S17 / S26 → Appointments, through ``receive`` on a real SQLite store
(no socket): every event, the look-ups by placer and filler id, the patient and practitioners
found or created, R4's app-2 / app-3, refusals with their ERR, and a resent message applied once."""

from __future__ import annotations

import json
import uuid

import pytest

from fhir_server.config import load_settings
from fhir_server.core.errors import FhirError
from fhir_server.core.repository import Repository
from fhir_server.store import open_store
from fhir_server.v2gateway.options import Options
from fhir_server.v2gateway.receive import receive
from hl7v2.er7 import parse

AGENDA_OID = "1.2.250.1.999.2.1"
FACILITY_OID = "1.2.250.1.999.1.1"
RPPS = "https://rpps.esante.gouv.fr"
IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"
LECLERC = "10101201234^LECLERC^Sophie^^^Dr^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^RPPS"
MOREAU = "810002673899^MOREAU^Jérôme^^^Dr^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
SALLE = "^Salle 2^^CABINET-SAINT-ÉLOI^^^Bâtiment A^1er étage"


@pytest.fixture()
def repository(tmp_path):
    store = open_store(load_settings(data_dir=tmp_path))
    yield Repository(store, "http://localhost/fhir")
    store.close()


def rdv() -> str:
    return f"RDV-{uuid.uuid4().hex[:8]}"


def sch(placer: str | None, *, filler: str = "", timing: str = "^^^20261201093000^20261201100000",
        status: str = "Booked", duration: str = "", event_reason: str = "") -> str:
    fields = [""] * 26
    fields[0] = "SCH"
    fields[1] = f"{placer}^AGENDA^{AGENDA_OID}^ISO" if placer else ""
    fields[2] = filler
    fields[6] = event_reason
    fields[7] = "CONSULT^Consultation de suivi^L"
    fields[8] = "Normal^Normal^HL70277"
    fields[9], fields[10] = (duration, "MIN") if duration else ("", "")
    fields[11] = timing
    fields[16] = fields[20] = "^ACCUEIL^Agnès"  # filler contact, entered by: required by v2.5, not mapped
    fields[25] = status
    return "|".join(fields)


def pid(ipp: str = "IPP-HD-1", family: str = "DURAND-LEFÈVRE", given: str = "Hélène") -> str:
    return (f"PID|1||{ipp}^^^CABINET&{FACILITY_OID}&ISO^PI||{family}^{given}^{given} Zoé^^^^L||19800312|F")


def aip(person: str = LECLERC, action: str = "A", n: int = 1) -> str:
    return f"AIP|{n}|{action}|{person}|ATND^Médecin traitant^HL70443||20261201093000|||30|MIN"


def siu(event: str, *segments: str, control: str | None = None) -> bytes:
    msh = (f"MSH|^~\\&|AGENDA|CABINET-DUPRÉ|MES|MES|20261124101500||SIU^{event}^SIU_S12|"
           f"{control or uuid.uuid4().hex[:20]}|P|2.5|||||FRA|UNICODE UTF-8")
    return ("\r".join([msh, *segments]) + "\r").encode("utf-8")


def booking(placer: str, **changes) -> list[str]:
    """The segments of a full booking: SCH, a note, the patient, the service, the room, the doctor
    (a message hl7apy's strict v2.5 structure validation accepts)."""
    changes.setdefault("event_reason", "NEW^Nouveau rendez-vous^L")
    return [sch(placer, **changes), "NTE|1||Apporter l'ordonnance~et la carte Vitale", pid(), "RGS|1|A",
            "AIS|1|A|CS^Consultation spécialisée^L|20261201093000|||30|MIN", f"AIL|1|A|{SALLE}", aip()]


def send(repository: Repository, data: bytes) -> tuple[str, object]:
    answer = parse(receive(repository, data, Options()))
    return answer.first("MSA")(1), answer.first("ERR")


def ok(repository: Repository, data: bytes) -> None:
    code, err = send(repository, data)
    assert code == "AA", err and (err(7), err(2))


def refused(repository: Repository, data: bytes, hl7_code: str, segment: str, field: int | None = None,
            component: int | None = None) -> str:
    """Assert an AE with that ERR-3 code and ERR-2 location; return the English diagnostic."""
    code, err = send(repository, data)
    assert code == "AE"
    assert err(3, 1) == hl7_code
    assert (err(2, 1), err(2, 3), err(2, 5)) == (segment, str(field or ""), str(component or ""))
    assert err(8)  # the French message for the user
    return err(7)


def found(repository: Repository, resource_type: str, system: str, value: str) -> list[dict]:
    result = repository.search(resource_type, [("identifier", f"{system}|{value}")], count=10)
    return [json.loads(record.body) for record in result.records]


def stored(repository: Repository, placer: str) -> dict:
    (appointment,) = found(repository, "Appointment", f"urn:oid:{AGENDA_OID}", placer)
    return appointment


def actors(appointment: dict) -> list[str]:
    return [p["actor"].get("reference") or p["actor"]["display"] for p in appointment["participant"]]


# --- S12 ----------------------------------------------------------------------------------


def test_s12_creates_a_fr_core_appointment_with_its_participants(repository):
    placer = rdv()
    ok(repository, siu("S12", *booking(placer)))
    appointment = stored(repository, placer)
    assert appointment["meta"]["profile"] == ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-appointment"]
    assert appointment["identifier"] == [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                               "code": "PLAC"}]},
                                          "system": f"urn:oid:{AGENDA_OID}", "value": placer}]
    assert appointment["status"] == "booked"
    assert (appointment["start"], appointment["end"]) == ("2026-12-01T09:30:00+01:00", "2026-12-01T10:00:00+01:00")
    assert appointment["reasonCode"][0]["coding"][0] == {"code": "CONSULT", "display": "Consultation de suivi"}
    assert appointment["description"] == "Consultation de suivi"
    assert appointment["appointmentType"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/v2-0277"
    assert appointment["serviceType"][0]["text"] == "Consultation spécialisée"
    assert appointment["comment"] == "Apporter l'ordonnance\net la carte Vitale"

    (patient,) = found(repository, "Patient", f"urn:oid:{FACILITY_OID}", "IPP-HD-1")
    (doctor,) = found(repository, "Practitioner", RPPS, "10101201234")
    patient_entry, doctor_entry, room_entry = appointment["participant"]
    assert patient_entry == {"actor": {"reference": f"Patient/{patient['id']}", "display": "Hélène DURAND-LEFÈVRE"},
                             "required": "required", "status": "accepted"}
    assert doctor_entry["actor"] == {"reference": f"Practitioner/{doctor['id']}", "display": "Sophie LECLERC"}
    assert doctor_entry["type"][0]["coding"][0]["code"] == "ATND"
    assert doctor_entry["period"] == {"start": "2026-12-01T09:30:00+01:00", "end": "2026-12-01T10:00:00+01:00"}
    assert room_entry["actor"] == {"type": "Location", "display": "CABINET-SAINT-ÉLOI, Bâtiment A, 1er étage, Salle 2"}
    assert {p["status"] for p in appointment["participant"]} == {"accepted"}


def test_a_full_booking_passes_strict_structure_validation(repository):
    placer = rdv()
    answer = parse(receive(repository, siu("S12", *booking(placer)), Options(strict_structure=True)))
    assert answer.first("MSA")(1) == "AA"
    assert stored(repository, placer)["status"] == "booked"


def test_an_unknown_professional_becomes_a_minimal_fr_core_practitioner(repository):
    ok(repository, siu("S12", *booking(rdv())))
    (doctor,) = found(repository, "Practitioner", IDNAT_PS, "810101201234")
    assert doctor["meta"]["profile"] == ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner"]
    assert [(i["type"]["coding"][0]["code"], i["system"], i["value"]) for i in doctor["identifier"]] == [
        ("IDNPS", IDNAT_PS, "810101201234"), ("RPPS", RPPS, "10101201234")]
    assert doctor["name"] == [{"family": "LECLERC", "given": ["Sophie"], "prefix": ["Dr"]}]


def test_known_patient_and_practitioner_are_found_not_duplicated(repository):
    first, second = rdv(), rdv()
    ok(repository, siu("S12", *booking(first)))
    idnps = aip(LECLERC.replace("10101201234", "810101201234").replace("RPPS", "IDNPS"))
    ok(repository, siu("S12", sch(second), pid(family="DURAND"), idnps))
    assert len(found(repository, "Practitioner", RPPS, "10101201234")) == 1
    assert len(found(repository, "Patient", f"urn:oid:{FACILITY_OID}", "IPP-HD-1")) == 1
    assert actors(stored(repository, first))[:2] == actors(stored(repository, second))[:2]
    (patient,) = found(repository, "Patient", f"urn:oid:{FACILITY_OID}", "IPP-HD-1")
    assert patient["name"][0]["family"] == "DURAND-LEFÈVRE"  # an SIU does not rewrite the identity


def test_s12_pending_waits_for_its_participants(repository):
    placer = rdv()
    ok(repository, siu("S12", *booking(placer, status="Pending")))
    appointment = stored(repository, placer)
    assert appointment["status"] == "pending"
    assert {p["status"] for p in appointment["participant"]} == {"needs-action"}


def test_s12_waitlisted_may_have_no_time(repository):
    placer = rdv()
    ok(repository, siu("S12", sch(placer, timing="", status="Waitlist"), pid()))
    appointment = stored(repository, placer)
    assert appointment["status"] == "waitlist" and "start" not in appointment


def test_a_start_and_a_duration_give_the_end_in_summer_time(repository):
    placer = rdv()
    ok(repository, siu("S12", sch(placer, timing="^^^20260615143000", duration="45"), pid()))
    appointment = stored(repository, placer)
    assert (appointment["start"], appointment["end"]) == ("2026-06-15T14:30:00+02:00", "2026-06-15T15:15:00+02:00")
    assert appointment["minutesDuration"] == 45


def test_tq1_gives_the_time_when_sch_11_does_not(repository):
    placer = rdv()
    ok(repository, siu("S12", sch(placer, timing=""), "TQ1|1||||||20261202080000|20261202081500", pid()))
    assert stored(repository, placer)["end"] == "2026-12-02T08:15:00+01:00"


def test_s12_for_a_known_appointment_restates_it_and_unchanged_writes_nothing(repository):
    placer = rdv()
    ok(repository, siu("S12", *booking(placer)))
    ok(repository, siu("S12", *booking(placer)))  # another MSH-10, the same booking
    assert stored(repository, placer)["meta"]["versionId"] == "1"
    ok(repository, siu("S12", sch(placer), pid(), aip(MOREAU)))
    appointment = stored(repository, placer)
    assert appointment["meta"]["versionId"] == "2"
    assert [p["actor"].get("display") for p in appointment["participant"]] == ["Hélène DURAND-LEFÈVRE",
                                                                               "Jérôme MOREAU"]
    assert "comment" in appointment  # an element the message no longer states is kept


# --- S13, S14, S15, S26, S17 --------------------------------------------------------------


def test_s13_reschedules_and_keeps_what_it_does_not_restate(repository):
    placer = rdv()
    ok(repository, siu("S12", *booking(placer)))
    before = stored(repository, placer)
    ok(repository, siu("S13", sch(placer, timing="^^^20261203160000^20261203163000", status="")))
    after = stored(repository, placer)
    assert (after["start"], after["end"]) == ("2026-12-03T16:00:00+01:00", "2026-12-03T16:30:00+01:00")
    assert after["status"] == "booked" and after["participant"] == before["participant"]


def test_s14_by_filler_id_replaces_a_practitioner_and_adds_the_id(repository):
    placer, filler = rdv(), rdv()
    ok(repository, siu("S12", *booking(placer)))
    ok(repository, siu("S14", sch(placer, filler=f"{filler}^AGENDA^{AGENDA_OID}^ISO"), aip(LECLERC, "D"),
                       aip(MOREAU, "A", 2), f"AIL|1|D|{SALLE}"))
    appointment = stored(repository, placer)
    assert {i["value"] for i in appointment["identifier"]} == {placer, filler}
    (moreau,) = found(repository, "Practitioner", RPPS, "10002673899")  # the RPPS inside the idNatPs
    assert actors(appointment)[1:] == [f"Practitioner/{moreau['id']}"]
    ok(repository, siu("S14", sch(None, filler=f"{filler}^AGENDA^{AGENDA_OID}^ISO", status="Complete")))
    assert stored(repository, placer)["status"] == "fulfilled"


def test_s15_cancels_with_its_reason(repository):
    placer = rdv()
    ok(repository, siu("S12", *booking(placer)))
    ok(repository, siu("S15", sch(placer, timing="", status="", event_reason="PAT^Annulé par la patiente^L")))
    appointment = stored(repository, placer)
    assert appointment["status"] == "cancelled"
    assert appointment["cancelationReason"]["text"] == "Annulé par la patiente"
    assert appointment["start"] == "2026-12-01T09:30:00+01:00"


def test_s26_records_a_no_show(repository):
    placer = rdv()
    ok(repository, siu("S12", *booking(placer)))
    ok(repository, siu("S26", sch(placer, timing="", status=""), pid()))
    assert stored(repository, placer)["status"] == "noshow"


def test_s17_deletes(repository):
    placer = rdv()
    ok(repository, siu("S12", *booking(placer)))
    appointment_id = stored(repository, placer)["id"]
    ok(repository, siu("S17", sch(placer)))
    assert found(repository, "Appointment", f"urn:oid:{AGENDA_OID}", placer) == []
    with pytest.raises(FhirError) as gone:
        repository.read("Appointment", appointment_id)
    assert gone.value.status == 410


@pytest.mark.parametrize("event", ["S13", "S14", "S15", "S17", "S26"])
def test_an_unknown_appointment_is_refused_at_sch_1(repository, event):
    assert "no known appointment" in refused(repository, siu(event, sch(rdv()), pid()), "204", "SCH", 1)
    assert found(repository, "Patient", f"urn:oid:{FACILITY_OID}", "IPP-HD-1") == []  # nothing written


def test_placer_and_filler_naming_two_appointments_is_refused(repository):
    first, second = rdv(), rdv()
    ok(repository, siu("S12", sch(first), pid()))
    ok(repository, siu("S12", sch(second), pid()))
    other = f"{second}^AGENDA^{AGENDA_OID}^ISO"
    refused(repository, siu("S14", sch(first, filler=other)), "205", "SCH", 2)


# --- R4 invariants and other refusals -----------------------------------------------------


def test_app_2_a_start_without_end_is_refused(repository):
    diagnostic = refused(repository, siu("S12", sch(rdv(), timing="^^^20261201093000"), pid()), "101", "SCH", 11, 5)
    assert "app-2" in diagnostic


def test_app_3_a_booked_appointment_needs_its_time(repository):
    diagnostic = refused(repository, siu("S12", sch(rdv(), timing=""), pid()), "101", "SCH", 11, 4)
    assert "app-3" in diagnostic


def test_app_3_applies_to_a_no_show_of_an_untimed_appointment(repository):
    placer = rdv()
    ok(repository, siu("S12", sch(placer, timing="", status="Waitlist"), pid()))
    refused(repository, siu("S26", sch(placer, timing="", status="")), "101", "SCH", 11, 4)
    assert stored(repository, placer)["status"] == "waitlist"


def test_an_end_before_the_start_is_refused(repository):
    refused(repository, siu("S12", sch(rdv(), timing="^^^20261201100000^20261201093000"), pid()), "102", "SCH", 11, 5)


@pytest.mark.parametrize(("segments", "code", "where"), [
    ((sch(None), pid()), "101", ("SCH", 1, None)),
    ((sch("RDV-X"),), "101", ("PID", None, None)),
    ((sch("RDV-X", status="Blocked"), pid()), "103", ("SCH", 25, None)),
    ((sch("RDV-X", timing="^^^20261201"), pid()), "102", ("SCH", 11, 4)),
    ((sch("RDV-X"), pid(), aip(LECLERC.replace("10101201234", "1010120123"))), "102", ("AIP", 3, None)),
])
def test_broken_messages_are_refused_where_they_break(repository, segments, code, where):
    refused(repository, siu("S12", *segments), code, *where)
    assert found(repository, "Appointment", f"urn:oid:{AGENDA_OID}", "RDV-X") == []


def test_no_patient_is_created_when_the_deployment_refuses_it(repository):
    answer = parse(receive(repository, siu("S12", sch(rdv()), pid()), Options(create_patients=False)))
    assert answer.first("MSA")(1) == "AE" and answer.first("ERR")(3, 1) == "204"


# --- idempotency --------------------------------------------------------------------------


def test_a_resent_message_is_answered_again_and_applied_once(repository):
    placer = rdv()
    s12 = siu("S12", *booking(placer), control="AGENDA-000042")
    first = receive(repository, s12, Options())
    ok(repository, siu("S15", sch(placer, status="")))
    again = receive(repository, s12, Options())
    assert again == first  # the kept ACK, byte for byte
    appointment = stored(repository, placer)
    assert appointment["status"] == "cancelled" and appointment["meta"]["versionId"] == "2"
