"""SIU (HL7 v2.5 chapter 10, scheduling) → a FR Core Appointment, with no store and no network.

An Appointment names its patient and practitioners as ``Patient/id`` and ``Practitioner/id``,
which only the store knows. So the mapping is in steps the gateway calls around its look-ups:
``read_siu`` reads the message into a ``Booking`` (the Appointment's own elements, the PID read,
one ``Professional`` per AIP); ``appointment`` assembles the resource once the gateway has found
or created those; ``merged`` folds it into the stored appointment; ``settled`` fills what depends
on the final status and enforces R4's app-2 (start and end both or neither) and app-3 (only
proposed, cancelled and waitlist appointments may lack them), answering AE with the field to fix.

Fields read:

- SCH-1 / SCH-2 (EI) placer / filler appointment id → ``identifier`` typed PLAC / FILL; system
  ``urn:oid:<EI-3>`` for an OID, else as ``hl7v2.patient.authority_system`` names a CX authority;
  an id without authority belongs to the sending application (MSH-3).
- SCH-6 event reason → ``cancelationReason`` (once cancelled); SCH-7 appointment reason → ``reasonCode`` and
  its text as ``description``; SCH-8 appointment type → ``appointmentType``.
- SCH-9 / SCH-10 duration and units (minutes by default) → ``minutesDuration``.
- SCH-11 (TQ) start in component 4, end in component 5 (TQ1-7 / TQ1-8 when SCH-11 has neither)
  → ``start`` / ``end``; a start with a duration and no end ends start + duration.
- SCH-25 filler status (HL7 table 0278) → ``status``; S15 is cancelled, S26 noshow, whatever it says.
- NTE right after SCH → ``comment``; AIS-3 → ``serviceType``.
- AIP-3 (XCN) → a practitioner participant: an RPPS (type RPPS, 11 digits) or idNatPs (type
  IDNPS, or authority 1.2.250.1.71.4.2.1; "8" + RPPS) gives both FR Core identifiers, an ADELI
  the idNatPs "0" + ADELI; AIP-4 role → ``type``; AIP-6 start and AIP-9 / AIP-10 duration →
  ``period``; AIP-12 filler status → the participant's ``status``.
- AIL-3 (PL) → a location participant, a logical reference (the server keeps no Location): type
  Location, display (PL-9, else facility, building, floor, point of care, room, bed), identifier
  from PL-10; AIL-6 / AIL-9 / AIL-10 / AIL-12 as for AIP.
- AIP-2 / AIL-2 segment action code ``D``: that participant leaves the appointment (S13, S14).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fhir_server.french.fr_core import CS_V2_0203, PROFILE_APPOINTMENT, PROFILE_PRACTITIONER
from fhir_server.french.ins import OID_IDNAT_PS, SYSTEM_RPPS
from hl7v2.ack import (
    DATA_TYPE_ERROR,
    ERROR,
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    Location,
    V2Error,
    V2Problem,
)
from hl7v2.er7 import Field, Message, Segment
from hl7v2.patient import OID, V2_0203, PatientIdentity, hd_system, read_pid
from hl7v2.values import fhir_date_time

#: HL7 table 0278 (filler status codes) → Appointment.status.
FILLER_STATUS = {"PENDING": "pending", "WAITLIST": "waitlist", "BOOKED": "booked", "OVERBOOK": "booked",
                 "STARTED": "arrived", "COMPLETE": "fulfilled", "CANCELLED": "cancelled", "DC": "cancelled",
                 "DELETED": "entered-in-error", "NOSHOW": "noshow"}
#: The status these events set, whatever SCH-25 says.
EVENT_STATUS = {"S15": "cancelled", "S26": "noshow"}
#: R4 app-3: the only statuses that may lack start and end.
UNTIMED = frozenset({"proposed", "cancelled", "waitlist"})
#: Appointment statuses whose participants have yet to act, and those a participant declines.
UNDECIDED = frozenset({"proposed", "pending", "waitlist"})
DECLINED = frozenset({"cancelled", "entered-in-error"})
#: Duration units (ISO+ / ANSI, as SCH-10, AIP-10, AIL-10 send them) → minutes.
MINUTES = {"": 1, "MIN": 1, "MINUTE": 1, "MINUTES": 1, "H": 60, "HR": 60, "HOUR": 60, "HOURS": 60,
           "S": 1 / 60, "SEC": 1 / 60, "D": 1440, "DAY": 1440}
#: HL7 table 0396 coding systems with a FHIR URL of their own (``HL7nnnn`` and OIDs are computed).
CODING_SYSTEMS = {"LN": "http://loinc.org", "SCT": "http://snomed.info/sct", "I10": "http://hl7.org/fhir/sid/icd-10",
                  "UCUM": "http://unitsofmeasure.org"}
RPPS = re.compile(r"\d{11}")
PARTICIPANT_ORDER = ("id", "extension", "modifierExtension", "type", "actor", "required", "status", "period")
ORDER = ("resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
         "modifierExtension", "identifier", "status", "cancelationReason", "serviceCategory", "serviceType",
         "specialty", "appointmentType", "reasonCode", "reasonReference", "priority", "description",
         "supportingInformation", "start", "end", "minutesDuration", "slot", "created", "comment",
         "patientInstruction", "basedOn", "participant", "requestedPeriod")


@dataclass(frozen=True)
class Professional:
    """An AIP: the identifiers that find (or create) the Practitioner, its name, and the
    participant entry the appointment gives it, actor aside."""

    identifiers: tuple[dict, ...]  # FR Core national identifiers first
    name: dict | None
    participant: dict
    removed: bool  # AIP-2 "D"

    @property
    def display(self) -> str | None:
        name = self.name or {}
        return " ".join([*name.get("given", [])[:1], name.get("family", "")]).strip() or None

    def resource(self) -> dict:
        """The minimal FR Core Practitioner created for a professional the store does not know."""
        practitioner = {"resourceType": "Practitioner", "meta": {"profile": [PROFILE_PRACTITIONER]},
                        "identifier": list(self.identifiers)}
        return practitioner | ({"name": [self.name]} if self.name else {})

    def entry(self, reference: str | None) -> dict:
        actor = {"reference": reference} if reference else {"type": "Practitioner"}
        return {**self.participant, "actor": actor | ({"display": self.display} if self.display else {})}


@dataclass(frozen=True)
class Booking:
    """An SIU message read: what it states of the appointment, and whom it names."""

    event: str
    keys: tuple[dict, ...]  # the SCH-1 / SCH-2 identifiers, placer first
    patient: PatientIdentity | None
    professionals: tuple[Professional, ...]
    places: tuple[dict, ...]  # AIL participant entries (logical references)
    gone_places: tuple[dict, ...]  # AIL with action code D
    stated: dict  # the Appointment's own elements, participants aside
    timing: tuple[Location, Location]  # where start and end were read (ERR-2 of an app-2 / app-3 refusal)


def read_siu(message: Message) -> Booking:
    """What the message states, and whom it names; AE at the first field that cannot be read."""
    sch = message.first("SCH")
    if sch is None:
        raise _refusal(REQUIRED_FIELD_MISSING, "The message has no SCH segment", "Le message n'a pas de segment SCH",
                       Location("SCH"))
    event, sender = message.event[1], _hd(message.msh.field(3), 1)
    keys = _keys(sch, sender)
    timing = (Location("SCH", 11, 4), Location("SCH", 11, 5))
    if event == "S17":  # a deletion needs only to know which appointment
        return Booking(event, keys, None, (), (), (), {}, timing)
    pid = message.first("PID")
    patient = read_pid(pid) if pid is not None or event == "S12" else None
    stated: dict = {"resourceType": "Appointment", "meta": {"profile": [PROFILE_APPOINTMENT]},
                    "identifier": list(keys)}
    status = _status(event, sch)
    if status:
        stated["status"] = status
    if status == "cancelled" and (reason := concept(sch.field(6))):
        stated["cancelationReason"] = reason
    services = [c for c in (concept(ais.field(3)) for ais in message.all("AIS")) if c]
    if services:
        stated["serviceType"] = services
    if kind := concept(sch.field(8)):
        stated["appointmentType"] = kind
    if reason := concept(sch.field(7)):
        stated["reasonCode"] = [reason]
    if sch(7, 2):
        stated["description"] = sch(7, 2)
    start, end, minutes, timing = _timing(message, sch)
    stated |= {k: v for k, v in (("start", start), ("end", end), ("minutesDuration", minutes)) if v}
    if comment := _comment(message):
        stated["comment"] = comment
    professionals = tuple(_professional(aip, n, sender) for n, aip in enumerate(message.all("AIP"), 1))
    places = [(_place(ail, n, sender), ail(2).upper() == "D") for n, ail in enumerate(message.all("AIL"), 1)]
    return Booking(event, keys, patient, professionals, tuple(p for p, gone in places if not gone),
                   tuple(p for p, gone in places if gone), stated, timing)


def appointment(booking: Booking, patient: str | None, practitioners: Sequence[str | None]) -> tuple[dict, frozenset]:
    """The Appointment the message states, its patient and practitioners now references (as
    found or created, in AIP order; None for one without identifier); and the keys (``key``) of
    the participants it removes."""
    participants = []
    if patient is not None and booking.patient is not None:
        actor = {"reference": patient} | ({"display": d} if (d := _person(booking.patient.resource)) else {})
        participants.append({"actor": actor, "required": "required"})
    removed = set()
    for professional, reference in zip(booking.professionals, practitioners, strict=True):
        entry = professional.entry(reference)
        if professional.removed:
            removed.add(key(entry))
        else:
            participants.append(entry)
    removed |= {key(place) for place in booking.gone_places}
    participants += booking.places
    return ({**booking.stated, "participant": participants} if participants else dict(booking.stated),
            frozenset(removed))


def merged(current: dict, stated: dict, removed: frozenset, *, restated: bool) -> dict:
    """The stored appointment with what the message states. Its elements replace the stored ones;
    identifiers and profiles add up; what only another door wrote (slot, specialty…) is kept.
    Participants: all replaced when ``restated`` (an S12 states the whole booking), else the
    message's replace those with the same actor (the patient replaces the patient), ``removed``
    ones leave, and those it does not name stay."""
    out = {k: v for k, v in current.items() if k not in ("meta", "identifier", "participant")}
    out |= {k: v for k, v in stated.items() if k not in ("meta", "identifier", "participant")}
    meta = {k: v for k, v in current.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    profiles = meta.get("profile", [])
    out["meta"] = meta | {"profile": profiles + [p for p in stated["meta"]["profile"] if p not in profiles]}
    known = {(i.get("system"), i.get("value")) for i in stated["identifier"]}
    out["identifier"] = stated["identifier"] + [i for i in current.get("identifier", [])
                                                if (i.get("system"), i.get("value")) not in known]
    new = stated.get("participant", [])
    if not restated:
        by_key = {key(p): p for p in new}
        new_patient = any(_is_patient(p) for p in new)
        kept = [by_key.pop(key(p), p) for p in current.get("participant", [])
                if key(p) not in removed and (key(p) in by_key or not (new_patient and _is_patient(p)))]
        new = kept + list(by_key.values())
    if new:
        out["participant"] = new
    else:
        out.pop("participant", None)
    return out


def settled(resource: dict, booking: Booking) -> dict:
    """The appointment ready to write: each participant's status (needs-action while the
    appointment is proposed, pending or waitlisted, else accepted), R4 app-2 and app-3 checked."""
    status = resource["status"]  # an S12 always states one, and the others update a stored appointment
    default = "needs-action" if status in UNDECIDED else "accepted"
    participants = [_ordered({**p, "status": p.get("status", default)}, PARTICIPANT_ORDER)
                    for p in resource.get("participant", [])]
    resource = {k: v for k, v in resource.items() if k != "participant"} | (
        {"participant": participants} if participants else {})
    start, end = resource.get("start"), resource.get("end")
    if bool(start) != bool(end):
        has, lacks, where = ("start", "end", booking.timing[1]) if start else ("end", "start", booking.timing[0])
        french = ("un début", "fin") if start else ("une fin", "début")
        raise _refusal(REQUIRED_FIELD_MISSING, f"The appointment has a {has} but no {lacks} (FHIR app-2: both or "
                       f"neither)", f"Le rendez-vous a {french[0]} mais pas de {french[1]} (règle FHIR app-2 : les "
                       "deux ou aucun)", where)
    if not start and status not in UNTIMED:
        raise _refusal(REQUIRED_FIELD_MISSING, f"A {status} appointment needs its start and end (FHIR app-3: only "
                       "proposed, cancelled or waitlist ones may lack them)", f"Un rendez-vous au statut {status} doit"
                       " avoir un début et une fin (règle FHIR app-3)", booking.timing[0])
    if start and datetime.fromisoformat(end) < datetime.fromisoformat(start):
        raise _refusal(DATA_TYPE_ERROR, f"The appointment ends ({end}) before it starts ({start})",
                       f"Le rendez-vous finit ({end}) avant de commencer ({start})", booking.timing[1])
    return _ordered(resource, ORDER)


def key(participant: dict) -> str:
    """What tells a participant from another: its literal reference, else its logical one."""
    actor = participant.get("actor", {})
    if "reference" in actor:
        return actor["reference"]
    ident = actor.get("identifier", {})
    return "|".join((actor.get("type", ""), ident.get("system", ""), ident.get("value", ""),
                     "" if ident else actor.get("display", "")))


def concept(cwe: Field) -> dict | None:
    """A CE / CWE (code ^ text ^ coding system ^ alternate triplet) as a CodeableConcept."""
    codings = []
    for first in (1, 4):
        code, display, system = cwe.get(first).strip(), cwe.get(first + 1).strip(), _coding_system(cwe.get(first + 2))
        if code:
            codings.append({k: v for k, v in (("system", system), ("code", code), ("display", display)) if v})
    text = cwe.get(2).strip() or cwe.get(5).strip()
    out: dict = {"coding": codings} if codings else {}
    return out | {"text": text} if text else out or None


def _hd(field: Field, component: int) -> tuple[str, str]:
    """The HD at ``component`` of ``field`` (namespace and universal id, as subcomponents)."""
    return field.get(component, 1), field.get(component, 2)


def _keys(sch: Segment, sender: tuple[str, str]) -> tuple[dict, ...]:
    keys = []
    for n, kind in ((1, "PLAC"), (2, "FILL")):
        ei = sch.field(n)
        value = ei.get(1).strip()
        if not value:
            continue
        system = hd_system(ei.get(2), ei.get(3)) or hd_system(*sender)
        if system is None:
            raise _refusal(REQUIRED_FIELD_MISSING, f"SCH-{n} has no assigning authority, nor has MSH-3",
                           f"SCH-{n} n'a pas d'autorité d'affectation, MSH-3 non plus", Location("SCH", n))
        keys.append({"type": {"coding": [{"system": V2_0203, "code": kind}]}, "system": system, "value": value})
    if not keys:
        raise _refusal(REQUIRED_FIELD_MISSING, "SCH-1 and SCH-2 are empty: nothing identifies the appointment",
                       "SCH-1 et SCH-2 sont vides : rien n'identifie le rendez-vous", Location("SCH", 1))
    return tuple(keys)


def _status(event: str, sch: Segment) -> str | None:
    """The status the event sets; SCH-25's (an S12 without one is booked); None keeps the stored one."""
    if event in EVENT_STATUS:
        return EVENT_STATUS[event]
    code = sch(25).strip()
    if not code:
        return "booked" if event == "S12" else None
    status = FILLER_STATUS.get(code.upper())
    if status is None:
        raise _refusal(TABLE_VALUE_NOT_FOUND, f"SCH-25 {code!r} is not a filler status of HL7 table 0278",
                       f"SCH-25 {code!r} n'est pas un statut de la table HL7 0278", Location("SCH", 25))
    return status


def _timing(message: Message, sch: Segment) -> tuple[str | None, str | None, int | None, tuple[Location, Location]]:
    where = (Location("SCH", 11, 4), Location("SCH", 11, 5))
    start_raw, end_raw = sch(11, 4), sch(11, 5)
    tq1 = message.first("TQ1")
    if not start_raw and not end_raw and tq1 is not None and (tq1(7) or tq1(8)):
        start_raw, end_raw, where = tq1(7), tq1(8), (Location("TQ1", 7), Location("TQ1", 8))
    start, end = _instant(start_raw, where[0]), _instant(end_raw, where[1])
    minutes = _minutes(sch(9), sch(10), Location("SCH", 9))
    if start and not end and minutes:
        end = _plus(start, minutes)
    return start, end, minutes, where


def _instant(raw: str, where: Location) -> str | None:
    if not raw.strip():
        return None
    value = fhir_date_time(raw)
    if value is None or "T" not in value:
        raise _refusal(DATA_TYPE_ERROR, f"{_name(where)} is not a date and time: {raw!r}",
                       f"{_name(where)} n'est pas une date et heure : {raw!r}", where)
    return value


def _minutes(raw: str, unit: str, where: Location) -> int | None:
    if not raw.strip():
        return None
    factor = MINUTES.get(unit.strip().upper())
    units = Location(where.segment, where.field + 1, sequence=where.sequence) if where.field else where
    if factor is None:
        raise _refusal(TABLE_VALUE_NOT_FOUND, f"{_name(units)}: unknown duration unit {unit!r}",
                       f"{_name(units)} : unité de durée inconnue {unit!r}", units)
    try:
        minutes = round(float(raw) * factor)
    except ValueError:
        minutes = 0
    if minutes < 1:
        raise _refusal(DATA_TYPE_ERROR, f"{_name(where)} is not a positive duration: {raw!r}",
                       f"{_name(where)} n'est pas une durée positive : {raw!r}", where)
    return minutes


def _plus(instant: str, minutes: int) -> str:
    return (datetime.fromisoformat(instant) + timedelta(minutes=minutes)).isoformat()


def _period(segment: Segment, start: int, duration: int, sequence: int) -> dict | None:
    begins = _instant(segment(start), Location(segment.name, start, sequence=sequence))
    minutes = _minutes(segment(duration), segment(duration + 1), Location(segment.name, duration, sequence=sequence))
    if not begins:
        return None
    return {"start": begins} | ({"end": _plus(begins, minutes)} if minutes else {})


def _comment(message: Message) -> str | None:
    """The NTEs that follow SCH (and its TQ1s): the appointment's own notes, not a resource's."""
    notes, after_sch = [], False
    for segment in message.segments:
        if segment.name == "SCH":
            after_sch = True
        elif after_sch and segment.name == "NTE":
            notes += [r.get(1) for r in segment.repetitions(3) if r.get(1)]
        elif after_sch and segment.name != "TQ1":
            break
    return "\n".join(notes) or None


def _professional(aip: Segment, sequence: int, sender: tuple[str, str]) -> Professional:
    xcn, where = aip.field(3), Location("AIP", 3, sequence=sequence)
    name = _name_of(xcn)
    identifiers = _practitioner_identifiers(xcn, sender, where)
    if not identifiers and name is None:
        raise _refusal(REQUIRED_FIELD_MISSING, f"AIP-3 (AIP #{sequence}) names no one",
                       f"AIP-3 (AIP n° {sequence}) ne désigne personne", where)
    participant = _participant(aip, sequence, start=6, duration=9, status=12)
    if role := concept(aip.field(4)):
        participant = {"type": [role], **participant}
    return Professional(identifiers, name, participant, aip(2).upper() == "D")


def _practitioner_identifiers(xcn: Field, sender: tuple[str, str], where: Location) -> tuple[dict, ...]:
    """FR Core's idNatPs and RPPS for a national id; the sender's or authority's identifier otherwise."""
    value, kind = xcn.get(1).strip(), xcn.get(13).strip().upper()
    if not value:
        return ()
    system = hd_system(*_hd(xcn, 9))
    if kind == "RPPS":
        if not RPPS.fullmatch(value):
            raise _refusal(DATA_TYPE_ERROR, f"{_name(where)}: an RPPS number has 11 digits, not {value!r}",
                           f"{_name(where)} : un numéro RPPS a 11 chiffres, pas {value!r}", where)
        return _national("IDNPS", OID_IDNAT_PS, "8" + value), _national("RPPS", SYSTEM_RPPS, value)
    if kind == "ADELI":
        return (_national("IDNPS", OID_IDNAT_PS, "0" + value),)
    if kind == "IDNPS" or (not kind and system == OID_IDNAT_PS):
        rpps = value[1:] if value.startswith("8") and RPPS.fullmatch(value[1:]) else None
        return (_national("IDNPS", OID_IDNAT_PS, value),) + ((_national("RPPS", SYSTEM_RPPS, rpps),) if rpps else ())
    identifier = {"system": system or hd_system(*sender), "value": value}
    if identifier["system"] is None:
        raise _refusal(REQUIRED_FIELD_MISSING, f"{_name(where)} has no assigning authority, nor has MSH-3",
                       f"{_name(where)} n'a pas d'autorité d'affectation, MSH-3 non plus", where)
    return (({"type": {"coding": [{"system": V2_0203, "code": kind}]}} if kind else {}) | identifier,)


def _national(kind: str, system: str, value: str) -> dict:
    return {"use": "official", "type": {"coding": [{"system": CS_V2_0203, "code": kind}]}, "system": system,
            "value": value}


def _name_of(xcn: Field) -> dict | None:
    family, given, others, prefix = (xcn.get(2).strip(), xcn.get(3).strip(), xcn.get(4).strip(),
                                     xcn.get(6).strip())
    given_names = [g for g in (given, *others.split()) if g]
    name = {k: v for k, v in (("family", family), ("given", given_names), ("prefix", [prefix] if prefix else [])) if v}
    return name or None


def _place(ail: Segment, sequence: int, sender: tuple[str, str]) -> dict:
    pl, where = ail.field(3), Location("AIL", 3, sequence=sequence)
    labels = [pl.get(4), pl.get(7), pl.get(8), pl.get(1), pl.get(2), pl.get(3)]
    display = pl.get(9).strip() or ", ".join(label.strip() for label in labels if label.strip())
    actor: dict = {"type": "Location"}
    if value := pl.get(10).strip():
        system = hd_system(pl.get(10, 2), pl.get(10, 3)) or hd_system(*_hd(pl, 11)) \
            or hd_system(*sender)
        actor["identifier"] = {"system": system, "value": value} if system else {"value": value}
    if not display and "identifier" not in actor:
        raise _refusal(REQUIRED_FIELD_MISSING, f"AIL-3 (AIL #{sequence}) names no location",
                       f"AIL-3 (AIL n° {sequence}) ne désigne aucun lieu", where)
    if display:
        actor["display"] = display
    return {"actor": actor, **_participant(ail, sequence, start=6, duration=9, status=12)}


def _participant(segment: Segment, sequence: int, *, start: int, duration: int, status: int) -> dict:
    """What AIP and AIL share: required, the resource's own filler status and period."""
    out: dict = {"required": "required"}
    own = FILLER_STATUS.get(segment(status).strip().upper())
    if own:
        out["status"] = "needs-action" if own in UNDECIDED else "declined" if own in DECLINED else "accepted"
    if period := _period(segment, start, duration, sequence):
        out["period"] = period
    return out


def _coding_system(name: str) -> str | None:
    name = name.strip()
    if re.fullmatch(r"HL7\d{4}", name, re.IGNORECASE):
        return f"http://terminology.hl7.org/CodeSystem/v2-{name[3:]}"
    if OID.fullmatch(name):
        return f"urn:oid:{name}"
    return CODING_SYSTEMS.get(name.upper())


def _person(patient: dict) -> str | None:
    name = next(iter(patient.get("name", [])), {})
    return " ".join([*name.get("given", [])[:1], name.get("family", "")]).strip() or None


def _is_patient(participant: dict) -> bool:
    return participant.get("actor", {}).get("reference", "").startswith("Patient/")


def _name(where: Location) -> str:
    field = f"{where.segment}-{where.field}" + (f".{where.component}" if where.component else "")
    return field + (f" (#{where.sequence})" if where.sequence > 1 else "")


def _ordered(element: dict, order: tuple[str, ...]) -> dict:
    """R4's element order (for resources that read like the specification's examples); what it
    does not list goes last."""
    return {k: element[k] for k in sorted(element, key=lambda k: order.index(k) if k in order else len(order))}


def _refusal(code: str, english: str, french: str, where: Location) -> V2Error:
    return V2Error(ERROR, V2Problem(code, english, french, where))
