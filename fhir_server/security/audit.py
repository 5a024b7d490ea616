"""Access traces: an AuditEvent for every read, search hit, write and denied attempt on a
patient's data, which the patient can list (``AuditEvent?patient=…``) and nobody can alter.

Shaped after IHE BALP / the ANS TDE AuditEvent profile: a RESTful-operation event with its
interaction as subtype, who acted (and from where, in which DMP access mode, for which stated
reason), whose record it touched, what, and how it went. One event per patient per request.

Durable without slowing reads: requests hand their traces to one writer thread, which commits
everything pending in one transaction (group commit); a request answers only once its traces
are committed. Index entries are built directly, not by evaluating every search expression
(35 µs per event): the constant parts once per kind of event, the references and dates by the
same extractors the search uses (``tests/test_audit.py`` checks both give the same entries).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cache

from fhir_server.core.errors import FhirError
from fhir_server.core.resources import new_id, now_instant
from fhir_server.formats import json as fjson
from fhir_server.search.extract import EXTRACTORS, index_entries
from fhir_server.security.policy import DIRECTORY_TYPES, Access, require
from fhir_server.security.writes import patients_of
from fhir_server.store.base import Record, Store, UnitOfWork
from fhir_server.store.query import IndexEntry

log = logging.getLogger("mes")

EVENT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}
INTERACTIONS = "http://hl7.org/fhir/restful-interaction"
ACTIONS = {"create": "C", "read": "R", "vread": "R", "search-type": "E", "search-system": "E",
           "history-instance": "R", "history-type": "R", "history-system": "R", "update": "U", "patch": "U",
           "delete": "D"}
ACCESS_MODES = "https://mos.esante.gouv.fr/NOS/TRE_R248-ModeAcces/FHIR/TRE-R248-ModeAcces"
CLIENT_IDS = "https://mes-interop.org/fhir/client-id"
SOURCE = {"observer": {"display": "mes-interop"}, "type": [{
    "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
    "display": "Application Server"}]}
PATIENT_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
SUCCESS, DENIED = "0", "4"
Reader = Store | UnitOfWork


@dataclass(frozen=True, slots=True)
class Trace:
    """One access to one patient's record (``patient`` None: we could not tell whose)."""

    interaction: str  # a restful-interaction code: read, search-type, create, delete…
    patient: str | None
    entities: tuple[str, ...]  # "Type/id" of what was read, found or written
    outcome: str = SUCCESS
    detail: str | None = None  # why it was refused


@dataclass
class AuditRecorder:
    """The traces of one request, with who made it."""

    access: Access
    address: str | None = None
    traces: list[Trace] = field(default_factory=list)

    def records(self, interaction: str, records: Iterable[Record], reader: Reader, local_base: str | None,
                outcome: str = SUCCESS, detail: str | None = None) -> None:
        """Trace access to ``records``: one trace per patient whose record they belong to.

        Directory data (practitioners, organisations) is nobody's record and leaves no trace; a
        refusal about something of no known patient is traced without one (system auditors see it).
        """
        by_patient: dict[str | None, list[str]] = {}
        for record in records:
            if record.type in DIRECTORY_TYPES or record.deleted:
                continue
            patients = patients_of(reader, local_base, fjson.loads(record.body))
            for patient in patients or ({None} if outcome != SUCCESS else ()):
                by_patient.setdefault(patient, []).append(f"{record.type}/{record.id}")
        self.add(interaction, by_patient, outcome, detail)

    def refused(self, interaction: str, entity: str, detail: str, patients: Iterable[str] = ()) -> None:
        self.add(interaction, {p: [entity] for p in patients} or {None: [entity]}, DENIED, detail)

    def add(self, interaction: str, by_patient: dict[str | None, list[str]], outcome: str = SUCCESS,
            detail: str | None = None) -> None:
        for patient, entities in by_patient.items():
            self.traces.append(Trace(interaction, patient, tuple(dict.fromkeys(entities)), outcome, detail))


class AuditTrail:
    """The writer thread: pending traces become AuditEvents, committed together."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[AuditRecorder, str, Future]] = []
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="audit-trail", daemon=True)
        self._thread.start()

    def submit(self, recorder: AuditRecorder) -> Future:
        """Queue a request's traces; the future completes once they are committed."""
        done: Future = Future()
        if not recorder.traces:
            done.set_result(0)
            return done
        with self._wake:
            if self._closing:
                raise RuntimeError("the audit trail is closed")
            self._pending.append((recorder, now_instant(), done))
            self._wake.notify()
        return done

    def close(self) -> None:
        """Commit what is pending, then stop."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            self._commit(batch)

    def _commit(self, batch: list[tuple[AuditRecorder, str, Future]]) -> None:
        try:
            with self._store.unit() as unit:
                for recorder, recorded, _ in batch:
                    for trace in recorder.traces:
                        event = audit_event(recorder.access, recorder.address, trace, recorded)
                        unit.put("AuditEvent", event["id"], 1, fjson.dumps(event), method="POST",
                                 last_updated=recorded, entries=event_entries(event, trace))
        except Exception as error:  # the requests waiting on these traces must fail, not hang
            log.exception("could not write access traces")
            for _, _, done in batch:
                done.set_exception(error)
            return
        for recorder, _, done in batch:
            done.set_result(len(recorder.traces))


def audit_event(access: Access, address: str | None, trace: Trace, recorded: str) -> dict:
    """The AuditEvent of one trace (BALP RESTful-operation shape)."""
    principal = access.principal
    who = ({"reference": principal.reference} if principal.reference else
           {"identifier": {"system": CLIENT_IDS, "value": principal.client_id}, "display": principal.client_id})
    agent: dict = {"who": who, "requestor": True}
    if address:
        agent["network"] = {"address": address, "type": "2"}
    event: dict = {
        "resourceType": "AuditEvent", "id": new_id(), "meta": {"versionId": "1", "lastUpdated": recorded},
        "type": EVENT_TYPE, "subtype": [{"system": INTERACTIONS, "code": trace.interaction}],
        "action": ACTIONS.get(trace.interaction, "E"), "recorded": recorded, "outcome": trace.outcome,
        "purposeOfEvent": [{"coding": [{"system": ACCESS_MODES, "code": access.purpose}],
                            **({"text": access.reason} if access.reason else {})}],
        "agent": [agent], "source": SOURCE,
        "entity": [{"what": {"reference": ref}, **({"role": PATIENT_ROLE} if ref == f"Patient/{trace.patient}"
                                                    else {})} for ref in _entities(trace)],
    }
    if trace.detail:
        event["outcomeDesc"] = trace.detail
    return event


def _entities(trace: Trace) -> Iterable[str]:
    """The patient first (so ``AuditEvent?patient=`` finds it), then what was touched."""
    patient = f"Patient/{trace.patient}" if trace.patient else None
    return [patient, *(e for e in trace.entities if e != patient)] if patient else list(trace.entities)


def event_entries(event: dict, trace: Trace) -> list[IndexEntry]:
    """The index entries of ``event``, equal to ``index_entries(event)`` but built directly."""
    entries = list(_constant_entries(trace.interaction, event["action"], trace.outcome))
    entries += EXTRACTORS["date"]("date", event["recorded"])
    entries += EXTRACTORS["date"]("_lastUpdated", event["recorded"])
    who = event["agent"][0]["who"]
    if "reference" in who:
        entries.append(_reference("agent", who["reference"]))
    else:
        entries.append(IndexEntry("token", "agent:identifier", (CLIENT_IDS, who["identifier"]["value"], None)))
    entries += [_reference("entity", e["what"]["reference"]) for e in event["entity"]]
    patients = [e["what"]["reference"] for e in event["entity"] if e["what"]["reference"].startswith("Patient/")]
    if who.get("reference", "").startswith("Patient/"):
        patients.insert(0, who["reference"])
    entries += [_reference("patient", ref) for ref in patients]
    return entries


def _reference(param: str, reference: str) -> IndexEntry:
    target_type, _, target_id = reference.partition("/")
    return IndexEntry("reference", param, (target_type, target_id, None, None))


@cache
def _constant_entries(interaction: str, action: str, outcome: str) -> tuple[IndexEntry, ...]:
    """The entries of the parts every event of this kind shares (type, subtype, action, outcome)."""
    template = {"resourceType": "AuditEvent", "type": EVENT_TYPE, "subtype": [{"system": INTERACTIONS,
                                                                                "code": interaction}],
                "action": action, "outcome": outcome}
    return tuple(e for e in index_entries(template) if e.param in ("type", "subtype", "action", "outcome"))


def require_traced(recorder: AuditRecorder | None, access: Access, permission: str, resource_type: str,
                   interaction: str, entity: str) -> None:
    """``policy.require``, leaving a trace of a refusal."""
    try:
        require(access, permission, resource_type)
    except FhirError as error:
        if recorder is not None:
            recorder.refused(interaction, entity, str(error))
        raise
