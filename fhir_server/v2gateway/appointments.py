"""SIU S12 / S13 / S14 / S15 / S17 / S26 applied to Appointments (the mapping: ``hl7v2/appointment.py``).

- The appointment is the one SCH-1 (placer id) or SCH-2 (filler id) names, whichever the store
  knows; an id it does not know answers AE 204 at SCH-1, except for an S12.
- S12 (new booking) creates it. An S12 for an appointment already known restates it: updated to
  what the message says (its participants included), and not rewritten at all when nothing
  changed — a practice software replaying its agenda leaves no trace of new versions.
- S13 (reschedule) and S14 (modification) update it: what the message states replaces what was
  stored, what it does not state stays (a participant it does not name, what another door
  wrote); an AIP / AIL with segment action code D takes that participant out. S15 cancels it
  (SCH-6 is the reason), S26 marks the patient absent, S17 deletes it.
- The patient: found by the PID's identifiers (INS, then the IPP) as ADT finds it, else created
  from the PID (AE 204 at PID-3 when the deployment creates no patient, ``MES_CDA_UNKNOWN_PATIENTS``).
  A patient found is not rewritten: identity is the business of PAM's ADT messages, and a
  scheduling message must not overwrite an identity qualified against the INS service.
- The practitioners: found by their identifiers (idNatPs, RPPS, or the sender's), else created
  as minimal FR Core Practitioners (identifiers and name). One without identifier is named by
  display only: nothing could find it again.
"""

from __future__ import annotations

from fhir_server.core.repository import Writer
from fhir_server.formats import json as fjson
from fhir_server.search.criteria import token_query
from fhir_server.v2gateway.options import Options
from fhir_server.v2gateway.patients import find_patient
from hl7v2.ack import DUPLICATE_KEY, ERROR, UNKNOWN_KEY, Location, V2Error, V2Problem
from hl7v2.appointment import Booking, Professional, appointment, merged, read_siu, settled
from hl7v2.er7 import Message

#: Meta elements the store sets on each version: not what makes two versions differ.
VERSION_META = ("versionId", "lastUpdated")


def schedule(message: Message, writer: Writer, options: Options) -> None:
    booking = read_siu(message)
    found = _appointment(writer, booking)
    if found is None and booking.event != "S12":
        raise V2Error(ERROR, V2Problem(UNKNOWN_KEY, "SCH-1 / SCH-2 name no known appointment",
                                       "SCH-1 / SCH-2 ne désignent aucun rendez-vous connu", Location("SCH", 1)))
    if booking.event == "S17":
        writer.delete("Appointment", found)
        return
    patient = _patient(writer, booking, options)
    stated, removed = appointment(booking, patient, [_practitioner(writer, p) for p in booking.professionals])
    if found is None:
        writer.create("Appointment", settled(stated, booking))
        return
    current = fjson.loads(writer.read_current("Appointment", found).body)
    resource = settled(merged(current, stated, removed, restated=booking.event == "S12"), booking)
    if resource != _unversioned(current):
        writer.update("Appointment", found, resource)


def _appointment(writer: Writer, booking: Booking) -> str | None:
    """The id of the appointment SCH-1 or SCH-2 names; AE 205 when they name two."""
    found: dict[str, None] = {}  # ordered: the placer's first
    for identifier in booking.keys:
        match = writer.existing_match("Appointment", token_query("identifier", identifier["system"],
                                                                 identifier["value"]))
        if match is not None:
            found[match] = None
    if len(found) > 1:
        raise V2Error(ERROR, V2Problem(DUPLICATE_KEY, "SCH-1 and SCH-2 name two different appointments",
                                       "SCH-1 et SCH-2 désignent deux rendez-vous différents", Location("SCH", 2)))
    return next(iter(found), None)


def _patient(writer: Writer, booking: Booking, options: Options) -> str | None:
    if booking.patient is None:
        return None
    found = find_patient(writer, booking.patient)
    if found is None:
        if not options.create_patients:
            raise V2Error(ERROR, V2Problem(UNKNOWN_KEY, "PID-3 names no known patient, and this server creates none",
                                           "PID-3 ne désigne aucun patient connu, et ce serveur n'en crée pas",
                                           Location("PID", 3)))
        found = writer.create("Patient", booking.patient.resource).record.id
    return f"Patient/{found}"


def _practitioner(writer: Writer, professional: Professional) -> str | None:
    """``Practitioner/id`` of the professional (created if unknown, unless the message removes
    them); None for one without identifier."""
    for identifier in professional.identifiers:
        match = writer.existing_match("Practitioner", token_query("identifier", identifier["system"],
                                                                  identifier["value"]))
        if match is not None:
            return f"Practitioner/{match}"
    if not professional.identifiers or professional.removed:
        return None
    return f"Practitioner/{writer.create('Practitioner', professional.resource()).record.id}"


def _unversioned(resource: dict) -> dict:
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in VERSION_META}
    return {**resource, "meta": meta}


HANDLERS = {("SIU", event): schedule for event in ("S12", "S13", "S14", "S15", "S17", "S26")}
