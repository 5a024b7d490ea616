"""Access traces: an AuditEvent for every read, search hit, write and refused attempt on a
patient's data, which the patient can list (``AuditEvent?patient=…``) and nobody can alter.

Shaped after IHE BALP / the ANS TDE AuditEvent profile: a RESTful-operation event with its
interaction as subtype, who acted (and from where, in which DMP access mode, for which stated
reason), whose record it touched, what, and how it went. One event per resource read or found,
one per patient for writes and refusals.

Traces are written on every read, so they must cost little: each is one compact row of the
store's append-only trace log (who, whose, what, when, how), not an indexed resource; the
AuditEvent is built from the row when someone reads it (``security/trail.py``). The traces of a
turn of the event loop are handed to the store together (group commit), which makes them
durable at once and indexes them in bulk later (for SQLite: ``store/trace_journal.py``); a
request answers only once its traces are durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from fhir_server.core.errors import FhirError
from fhir_server.security.policy import DIRECTORY_TYPES, Access, require
from fhir_server.security.writes import patients_of
from fhir_server.store.base import Record, Store, UnitOfWork

log = logging.getLogger("mes")

SUCCESS, DENIED = "0", "4"
READS = frozenset({"read", "vread", "search-type", "history-instance", "history-type", "history-system"})
ACTIONS = {"create": "C", "read": "R", "vread": "R", "search-type": "E", "history-instance": "R",
           "history-type": "R", "history-system": "R", "update": "U", "patch": "U", "delete": "D"}
CLIENT = "client:"  # the agent column of a system client: "client:<client id>"
Reader = Store | UnitOfWork


class Trace(NamedTuple):
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
        """Trace access to ``records``, in the trail of each patient whose record they belong to.

        Directory data is nobody's record and leaves no trace. A read of something of no known
        patient, or a refusal about it, is traced without one (system auditors see it).
        """
        by_patient: dict[str | None, list[str]] = {}
        for record in records:
            if record.type in DIRECTORY_TYPES or record.deleted:
                continue
            patients = _whose(reader, local_base, record)
            for patient in patients or ({None} if outcome != SUCCESS or interaction in READS else ()):
                by_patient.setdefault(patient, []).append(f"{record.type}/{record.id}")
        self.add(interaction, by_patient, outcome, detail)

    def refused(self, interaction: str, entity: str, detail: str, patients: Iterable[str] = ()) -> None:
        self.add(interaction, {p: [entity] for p in patients} or {None: [entity]}, DENIED, detail)

    def add(self, interaction: str, by_patient: dict[str | None, list[str]], outcome: str = SUCCESS,
            detail: str | None = None) -> None:
        for patient, entities in by_patient.items():
            self.traces.append(Trace(interaction, patient, tuple(dict.fromkeys(entities)), outcome, detail))

    def rows(self, ns: int) -> list[tuple]:
        """The trace-log rows (``store.sqlite.TRACE_INPUT`` order) of these traces, at ``ns``."""
        principal = self.access.principal
        agent = principal.reference or f"{CLIENT}{principal.client_id}"
        shared = {"purpose": self.access.purpose, "reason": self.access.reason, "address": self.address}
        key = ("trace-detail", self.address)
        plain = self.access.memo.get(key) or self.access.memo.setdefault(key, orjson.dumps(shared).decode())
        return [(ns, t.patient, agent, t.interaction, ACTIONS.get(t.interaction, "E"), t.outcome,
                 " " + " ".join(t.entities) + " ", plain if t.detail is None
                 else orjson.dumps({**shared, "detail": t.detail}).decode())
                for t in self.traces]


#: Whose record each version of a resource belongs to: a version never changes, so neither does
#: the answer (except for a Binary, which follows what its security context points to now).
_WHOSE: dict[tuple[str, str, int, str | None], set[str]] = {}
WHOSE_CACHE_SIZE = 8192


def _whose(reader: Reader, local_base: str | None, record: Record) -> set[str]:
    key = (record.type, record.id, record.version, local_base)
    known = _WHOSE.get(key)
    if known is None:
        known = patients_of(reader, local_base, orjson.loads(record.body))
        if record.type != "Binary":
            if len(_WHOSE) >= WHOSE_CACHE_SIZE:
                _WHOSE.clear()
            _WHOSE[key] = known
    return known


class AuditTrail:
    """Group commit on the event loop: the traces of every request served in one turn of the loop
    are handed to the store together at the start of the next turn (for SQLite: one ``write`` to
    its journal), then those requests may answer.

    No thread hand-off: the hand-over is short and a thread would cost more in wake-ups and GIL
    hand-overs than the work itself (docs/benchmarks.md).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rows: list[tuple] = []
        self._waiting: list[asyncio.Future] = []
        self._closing = False

    async def record(self, recorder: AuditRecorder) -> None:
        """Queue a request's traces and wait until they are committed (raises if they could not be)."""
        if not recorder.traces:
            return
        if self._closing:
            raise RuntimeError("the audit trail is closed")
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._rows += recorder.rows(time.time_ns())
        self._waiting.append(done)
        await done

    def close(self) -> None:
        """Commit what is pending, then refuse more."""
        self._closing = True
        self._flush()

    def _flush(self) -> None:
        rows, waiting, self._rows, self._waiting = self._rows, self._waiting, [], []
        if not rows:
            return
        try:
            self._store.append_traces(rows)
        except Exception as error:  # the requests waiting on these traces must fail, not hang
            log.exception("could not write access traces")
            _settle(waiting, error)
            return
        _settle(waiting, None)


def _settle(futures: list[asyncio.Future], error: Exception | None) -> None:
    for done in futures:
        if done.done():
            continue
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(None)


def require_traced(recorder: AuditRecorder | None, access: Access, permission: str, resource_type: str,
                   interaction: str, entity: str) -> None:
    """``policy.require``, leaving a trace of a refusal."""
    try:
        require(access, permission, resource_type)
    except FhirError as error:
        if recorder is not None:
            recorder.refused(interaction, entity, str(error))
        raise
