"""The Repository: the one door to the store. validate → index → persist, for every protocol.

Reads go straight to the store. Writes happen inside a ``Writer`` bound to one unit of work,
so a single interaction and a whole transaction bundle share the same code and atomicity.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fhir_server.config import SUPPORTED_TYPES
from fhir_server.core import patch as patching
from fhir_server.core.errors import FhirError, not_found
from fhir_server.core.resources import check_id, check_type, counting_number, new_id, now_instant, with_meta
from fhir_server.core.validation import validate_resource
from fhir_server.dmp.metadata import check_metadata_update
from fhir_server.formats import json as fjson
from fhir_server.french.visibility import spelled_right
from fhir_server.search.extract import index_entries
from fhir_server.search.include import included
from fhir_server.search.plan import SearchPlan, plan_conditional, plan_search
from fhir_server.security import trail
from fhir_server.security.access import INTERNAL, ROLE_TYPES, resolve_access, roles_changed
from fhir_server.security.audit import DENIED, AuditRecorder, require_traced
from fhir_server.security.policy import Access, can_see, require, restrict, visibility
from fhir_server.security.tokens import Principal
from fhir_server.security.writes import check_write, patients_of, refuse_server_only
from fhir_server.store.base import BadPosition, Record, Store, UnitOfWork, VersionConflict
from fhir_server.store.query import Clause, IdIn


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the record written (or found, or deleted) and the HTTP status it means."""

    status: int  # 201 created, 200 updated or matched, 204 deleted
    record: Record | None  # None when a delete found nothing to delete


@dataclass(frozen=True)
class SearchResult:
    records: list[Record]
    positions: list[tuple]  # each record's place in the order (for paging links)
    plan: SearchPlan  # what was understood; ``plan.unsupported`` was ignored


@dataclass(frozen=True)
class Included:
    records: list[Record]
    capped: bool  # the include cap cut the list short


def gone(record: Record) -> FhirError:
    return FhirError(410, "deleted", f"{record.type}/{record.id} was deleted (version {record.version})")


class Writer:
    """Write interactions inside one unit of work: all of them commit together or not at all."""

    def __init__(self, unit: UnitOfWork, local_base: str | None, access: Access = INTERNAL,
                 recorder: AuditRecorder | None = None) -> None:
        self._unit = unit
        self._local_base = local_base
        self._access = access
        self._recorder = recorder
        self._now = now_instant()
        #: (interaction, record, patients touched): traced once the unit commits
        self.written: list[tuple[str, Record, set[str]]] = []

    # -- helpers -------------------------------------------------------------------------

    def _store(self, resource: dict, resource_id: str, previous: Record | None, method: str) -> Record:
        live = previous if previous is not None and not previous.deleted else None
        interaction = "create" if live is None else {"PATCH": "patch"}.get(method, "update")
        patients = self._check(interaction, resource["resourceType"], resource_id, {**resource, "id": resource_id},
                               fjson.loads(live.body) if live else None)
        version = previous.version + 1 if previous else 1
        stored = with_meta(spelled_right(resource), resource_id, version, self._now)
        body = fjson.dumps(stored)
        try:
            record = self._unit.put(stored["resourceType"], resource_id, version, body, last_updated=self._now,
                                    method=method, entries=index_entries(stored, self._local_base))
        except VersionConflict as exc:
            raise FhirError(409, "conflict", f"Concurrent write to {stored['resourceType']}/{resource_id}") from exc
        self.written.append((interaction, record, patients))
        return record

    def _check(self, interaction: str, resource_type: str, resource_id: str, new: dict | None,
               old: dict | None) -> set[str]:
        """``check_write`` (the patients the write touches), leaving a trace of a refusal in their records."""
        try:
            return check_write(self._access, self._unit, self._local_base, resource_type, new, old)
        except FhirError as error:
            if self._recorder is not None:
                patients = {p for body in (new, old) if body for p in patients_of(self._unit, self._local_base, body)}
                self._recorder.refused(interaction, f"{resource_type}/{resource_id}", str(error), patients)
            raise

    def _require(self, permission: str, resource_type: str, interaction: str, resource_id: str | None) -> None:
        refuse_server_only(resource_type)
        require_traced(self._recorder, self._access, permission, resource_type, interaction,
                       f"{resource_type}/{resource_id}" if resource_id else resource_type)

    def _matches(self, resource_type: str, query: str) -> list[str]:
        """At most two ids matching conditional criteria (two is enough to say "several"); criteria
        are a search, with its right: an oracle otherwise."""
        return self.matching(resource_type, query, 2)

    @staticmethod
    def _check_if_match(current: Record | None, if_match: int | None, label: str) -> None:
        live = current.version if current and not current.deleted else None
        if if_match is not None and if_match != live:
            raise FhirError(412, "conflict", f"{label}: If-Match version {if_match} but current version is {live}")

    def read_current(self, resource_type: str, resource_id: str, answered: bool = False) -> Record:
        """A read inside the unit of work (sees its own uncommitted writes); ``answered``: the
        record goes back to the client, so the read is traced like any other."""
        record = self._unit.read(resource_type, resource_id)
        if record is None or not self._visible(record, "read"):
            raise not_found(resource_type, resource_id)
        if record.deleted:
            raise gone(record)
        if answered:
            self.written.append(("read", record, patients_of(self._unit, self._local_base, fjson.loads(record.body))))
        return record

    def _visible(self, record: Record, interaction: str) -> bool:
        """Whether the principal may see ``record``; a refusal is traced in its patients' trails."""
        if can_see(self._access, record, self._unit.satisfies):
            return True
        if self._recorder is not None:
            patients = set() if record.deleted else patients_of(self._unit, self._local_base, fjson.loads(record.body))
            self._recorder.refused(interaction, f"{record.type}/{record.id}", "hidden from this principal", patients)
        return False

    # -- interactions --------------------------------------------------------------------

    def create(self, resource_type: str, resource: dict, if_none_exist: str | None = None,
               resource_id: str | None = None) -> WriteResult:
        """Create with a server-assigned id (``resource_id`` lets a transaction assign it up front)."""
        check_type(resource_type)
        self._require("c", resource_type, "create", resource_id)  # before validation: no feedback without it
        validate_resource(resource, resource_type)
        if if_none_exist:
            existing = self.existing_match(resource_type, if_none_exist)
            if existing is not None:  # the answer carries the match: a read, with its right and trace
                self._require("r", resource_type, "read", existing)
                record = self._unit.read(resource_type, existing)
                self.written.append(("read", record, patients_of(self._unit, self._local_base,
                                                                 fjson.loads(record.body))))
                return WriteResult(200, record)
        return WriteResult(201, self._store(resource, resource_id or new_id(), None, "POST"))

    def matching(self, resource_type: str, query: str, limit: int) -> list[str]:
        """The ids of up to ``limit`` resources this principal may see that match ``query``."""
        self._require("s", resource_type, "search-type", None)
        clauses = plan_conditional(resource_type, query, self._local_base)
        return self._unit.find(resource_type, restrict(self._access, resource_type, clauses), limit=limit)

    def exists(self, resource_type: str, query: str) -> bool:
        """Whether anything matches ``query``, whoever may see it: for a door that must not create a
        second record of what the principal cannot see (a patient's INS, a document's id)."""
        return bool(self._unit.find(resource_type, plan_conditional(resource_type, query, self._local_base),
                                    limit=1))

    def receipt(self, door: str, sender: str, message: str) -> bytes | None:
        """The answer given when this message was applied, if it was (a door's idempotency)."""
        return self._unit.receipt(door, sender, message)

    def keep_receipt(self, door: str, sender: str, message: str, answer: bytes) -> None:
        """Remember, in this unit of work, that the message was applied and how it was answered."""
        self._unit.keep_receipt(door, sender, message, answer, at=self._now)

    def existing_match(self, resource_type: str, if_none_exist: str) -> str | None:
        """The id matching a conditional create's criteria; several matches are a 412."""
        found = self._matches(resource_type, if_none_exist)
        if len(found) > 1:
            raise FhirError(412, "duplicate", f"If-None-Exist '{if_none_exist}' matches several resources")
        return found[0] if found else None

    def update(self, resource_type: str, resource_id: str, resource: dict, if_match: int | None = None) -> WriteResult:
        check_type(resource_type)
        check_id(resource_id)
        current = self._unit.read(resource_type, resource_id)
        live = current is not None and not current.deleted
        # Update-as-create is for principals from whom nothing of this type is hidden: for the
        # others an unknown, deleted or hidden id must answer alike, or a PUT would reveal which exist.
        restricted = bool(visibility(self._access, resource_type))
        self._require("u" if live or restricted else "c", resource_type, "update" if live else "create", resource_id)
        validate_resource(resource, resource_type)
        body_id = resource.get("id")
        if body_id is None:
            raise FhirError(400, "required", "The resource must carry its id for an update", [f"{resource_type}.id"])
        if body_id != resource_id:
            raise FhirError(400, "invalid", f"Resource id '{body_id}' does not match the URL id '{resource_id}'",
                            [f"{resource_type}.id"])
        if (current is None and restricted) or (current is not None and not self._visible(current, "update")):
            raise not_found(resource_type, resource_id)  # hidden: neither overwritten nor revealed
        self._check_if_match(current, if_match, f"{resource_type}/{resource_id}")
        status = 201 if current is None or current.deleted else 200
        return WriteResult(status, self._store(resource, resource_id, current, "PUT"))

    def conditional_update(self, resource_type: str, query: str, resource: dict,
                           if_match: int | None = None) -> WriteResult:
        target = self.conditional_target(resource_type, query, resource.get("id"))
        if target is None:
            return self.create(resource_type, resource)
        return self.update(resource_type, target, {**resource, "id": target}, if_match)

    def conditional_target(self, resource_type: str, query: str, body_id: str | None) -> str | None:
        """The id a conditional update writes to (R4 http.html#cond-update); None means create anew."""
        check_type(resource_type)
        found = self._matches(resource_type, query)
        if len(found) > 1:
            raise FhirError(412, "multiple-matches", f"Conditional update '{query}' matches several resources")
        if found:
            if body_id is not None and body_id != found[0]:
                raise FhirError(400, "invalid", f"Resource id '{body_id}' differs from the matched '{found[0]}'",
                                [f"{resource_type}.id"])
            return found[0]
        if body_id is None:
            return None
        existing = self._unit.read(resource_type, check_id(body_id))
        if existing is not None and not existing.deleted and can_see(self._access, existing, self._unit.satisfies):
            raise FhirError(409, "conflict", f"{resource_type}/{body_id} exists but does not match '{query}'")
        return body_id

    def resolve_reference(self, reference: str) -> str:
        """A conditional reference ``Type?criteria`` as ``Type/id``; exactly one match is required."""
        resource_type, _, query = reference.partition("?")
        check_type(resource_type)
        found = self._matches(resource_type, query)
        if len(found) != 1:
            status, what = (412, "several resources") if found else (404, "no resource")
            raise FhirError(status, "not-found" if not found else "multiple-matches",
                            f"Conditional reference '{reference}' matches {what}")
        return f"{resource_type}/{found[0]}"

    def delete(self, resource_type: str, resource_id: str, if_match: int | None = None) -> WriteResult:
        check_type(resource_type)
        check_id(resource_id)
        self._require("d", resource_type, "delete", resource_id)
        current = self._unit.read(resource_type, resource_id)
        if current is not None and not current.deleted and not self._visible(current, "delete"):
            current = None  # hidden: answered exactly as for an unknown id (the refusal is traced)
        self._check_if_match(current, if_match, f"{resource_type}/{resource_id}")
        if current is None or current.deleted:
            return WriteResult(204, None)
        patients = self._check("delete", resource_type, resource_id, None, fjson.loads(current.body))
        try:
            record = self._unit.delete(resource_type, resource_id, current.version + 1, last_updated=self._now)
        except VersionConflict as exc:
            raise FhirError(409, "conflict", f"Concurrent write to {resource_type}/{resource_id}") from exc
        self.written.append(("delete", current, patients))
        return WriteResult(204, record)

    def conditional_delete(self, resource_type: str, query: str) -> WriteResult:
        check_type(resource_type)
        found = self._matches(resource_type, query)
        if len(found) > 1:
            raise FhirError(412, "multiple-matches", f"Conditional delete '{query}' matches several resources")
        if not found:
            return WriteResult(204, None)
        return self.delete(resource_type, found[0])

    def patch(self, resource_type: str, resource_id: str, kind: str, document, if_match: int | None = None
              ) -> WriteResult:
        """``kind`` is "json-patch" (a list of operations) or "fhirpath-patch" (a Parameters)."""
        check_type(resource_type)
        check_id(resource_id)
        self._require("u", resource_type, "patch", resource_id)
        current = self.read_current(resource_type, resource_id)
        self._check_if_match(current, if_match, f"{resource_type}/{resource_id}")
        original = fjson.loads(current.body)
        if kind == "json-patch":
            patched = patching.apply_json_patch(original, document)
        else:
            patched = patching.apply_fhirpath_patch(original, document)
        if patched.get("resourceType") != resource_type or patched.get("id") != resource_id:
            raise FhirError(422, "processing", "A patch may not change the resource type or id")
        if resource_type == "DocumentReference":
            check_metadata_update(original, patched)
        validate_resource(patched, resource_type)
        return WriteResult(200, self._store(patched, resource_id, current, "PATCH"))

    def conditional_patch(self, resource_type: str, query: str, kind: str, document,
                          if_match: int | None = None) -> WriteResult:
        """PATCH ``[type]?criteria`` (PDSm's metadata update names a document by its identifier)."""
        check_type(resource_type)
        found = self._matches(resource_type, query)
        if not found:
            raise FhirError(404, "not-found", f"No {resource_type} matches '{query}'")
        if len(found) > 1:
            raise FhirError(412, "multiple-matches", f"Conditional patch '{query}' matches several resources")
        return self.patch(resource_type, found[0], kind, document, if_match)


#: How many store pages a history page may read past versions its principal may not see.
HISTORY_ROUNDS = 20


class Repository:
    """``local_base``: this server's FHIR base, so absolute references to it count as local.

    ``access``: who acts. Every read, search and write answers to its scopes and sees only what
    it may see (``security/policy.py``); ``INTERNAL`` is unrestricted, for the server's own work.
    ``recorder``: where the access traces of a request go (``security/audit.py``), if anywhere.
    """

    def __init__(self, store: Store, local_base: str | None = None, access: Access = INTERNAL,
                 recorder: AuditRecorder | None = None) -> None:
        self.store = store
        self.local_base = local_base
        self.access = access
        self.recorder = recorder

    def resolve_access(self, principal: Principal, mode: str | None = None, reason: str | None = None) -> Access:
        """Who a verified principal acts as here (whom they represent, their roles): every door —
        HTTP, and the SMTP and MLLP doors with their configured principals — asks the core."""
        return resolve_access(self.store, principal, mode, reason, self.local_base)

    def acting_as(self, access: Access, recorder: AuditRecorder | None = None) -> Repository:
        return Repository(self.store, self.local_base, access, recorder)

    @contextmanager
    def writer(self) -> Iterator[Writer]:
        """A unit of work; what it wrote is traced once it commits (a rolled-back write never happened)."""
        with self.store.unit() as unit:
            writer = Writer(unit, self.local_base, self.access, self.recorder)
            yield writer
        if any(record.type in ROLE_TYPES for _, record, _ in writer.written):
            roles_changed()
        if self.recorder is not None:
            for interaction, record, patients in writer.written:
                self.recorder.add(interaction, {p: [f"{record.type}/{record.id}"] for p in patients})

    def matching(self, resource_type: str, query: str, limit: int) -> list[str]:
        """The ids of up to ``limit`` resources this principal may see that match ``query``, not
        traced: a door's routing question (whom a mail address names), answered to the door only."""
        self._require("s", resource_type, "search-type")
        clauses = restrict(self.access, resource_type, plan_conditional(resource_type, query, self.local_base))
        return [record.id for record in self.store.find(resource_type, clauses, limit=limit)]

    def check_create(self, resource_type: str, resource: dict) -> None:
        """Raise the 403 this principal's create of ``resource`` would get, writing nothing: a door
        that must refuse before it accepts (an SMTP RCPT) asks the same rule the write will."""
        check_write(self.access, self.store, self.local_base, resource_type, resource, None)

    def _trace(self, interaction: str, records: list[Record], refused: str | None = None) -> None:
        if self.recorder is not None and records:
            outcome = {} if refused is None else {"outcome": DENIED, "detail": refused}
            self.recorder.records(interaction, records, self.store, self.local_base, **outcome)

    def _require(self, permission: str, resource_type: str, interaction: str, resource_id: str | None = None) -> None:
        require_traced(self.recorder, self.access, permission, resource_type, interaction,
                       f"{resource_type}/{resource_id}" if resource_id else resource_type)

    def _visible(self, record: Record, interaction: str) -> bool:
        """Whether the principal may see ``record``; a refusal is traced in the record's patient's trail."""
        if can_see(self.access, record, self.store.satisfies):
            return True
        self._refused(record, interaction)
        return False

    def _refused(self, record: Record, interaction: str) -> None:
        self._trace(interaction, [record], refused=f"{record.type}/{record.id} is hidden from this principal")

    def read(self, resource_type: str, resource_id: str) -> Record:
        check_type(resource_type)
        self._require("r", resource_type, "read", resource_id)
        if resource_type == "AuditEvent":
            return self._trace_record(resource_id)
        record, visible = self.store.read_where(resource_type, check_id(resource_id),
                                                visibility(self.access, resource_type))
        if record is None:
            raise not_found(resource_type, resource_id)
        if not visible:  # as can_see: a tombstone is hidden too, unless nothing is hidden from this principal
            self._refused(record, "read")
            raise not_found(resource_type, resource_id)
        if record.deleted:
            raise gone(record)
        self._trace("read", [record])
        return record

    def vread(self, resource_type: str, resource_id: str, version: str) -> Record:
        check_type(resource_type)
        self._require("r", resource_type, "vread", resource_id)
        if resource_type == "AuditEvent" and version == "1":  # traces have one version
            return self._trace_record(resource_id)
        current = self.store.read(resource_type, check_id(resource_id))
        number = counting_number(version)
        if number is None or current is None or not self._visible(current, "vread"):
            raise FhirError(404, "not-found", f"Version '{version}' of {resource_type}/{resource_id} is not known")
        record = self.store.vread(resource_type, resource_id, number)
        if record is None:
            raise FhirError(404, "not-found", f"Version {version} of {resource_type}/{resource_id} is not known")
        if record.deleted:
            raise gone(record)
        self._trace("vread", [record])
        return record

    def search(self, resource_type: str, params: list[tuple[str, str]], *, count: int, after: tuple | None = None,
               before: tuple | None = None, within: tuple[Clause, ...] = ()) -> SearchResult:
        """A page of matches, strictly after (or before) a position from an earlier page.

        ``within`` narrows the search further (a compartment, for instance).
        """
        check_type(resource_type)
        self._require("s", resource_type, "search-type")
        if resource_type == "AuditEvent":  # the trace log: read, never itself traced
            try:
                return SearchResult(*trail.search_trail(self.store, self.access, params, self.local_base,
                                                        count=count, after=after, before=before,
                                                        shown=self._shown(), within=within))
            except BadPosition as e:
                raise FhirError(400, "invalid", str(e)) from None
        plan = plan_search(resource_type, params, self.local_base)
        plan.clauses = restrict(self.access, resource_type, [*plan.clauses, *within])
        try:
            page = self.store.page(resource_type, plan.clauses, limit=count, sort=plan.sort, after=after,
                                   before=before)
        except BadPosition as e:
            raise FhirError(400, "invalid", str(e)) from None
        records = [record for record, _ in page]
        self._trace("search-type", records)
        return SearchResult(records, [position for _, position in page], plan)

    def included(self, matches: list[Record], plan: SearchPlan, cap: int) -> Included:
        """The ``_include`` / ``_revinclude`` resources of a page of matches, at most ``cap``."""
        if not plan.includes and not plan.revincludes:
            return Included([], False)
        records, capped = included(self.store, matches, plan.includes, plan.revincludes, cap, self._narrow)
        self._trace("search-type", records)
        return Included(records, capped)

    def _narrow(self, resource_type: str, clauses: list[Clause], permission: str = "r") -> list[Clause] | None:
        """What an included resource of this type must satisfy; None when the scopes do not allow reading it."""
        try:
            require(self.access, permission, resource_type)
        except FhirError:
            return None
        return restrict(self.access, resource_type, clauses)

    def count(self, resource_type: str, params: list[tuple[str, str]] = (), within: tuple[Clause, ...] = ()) -> int:
        """How many current resources match a search (all of the type without parameters)."""
        self._require("s", check_type(resource_type), "search-type")
        if resource_type == "AuditEvent":
            return trail.count_trail(self.store, self.access, list(params), self.local_base, self._shown(), within)
        plan = plan_search(resource_type, list(params), self.local_base)
        return self.store.count(resource_type, restrict(self.access, resource_type, [*plan.clauses, *within]))

    def history(self, resource_type: str | None, resource_id: str | None, *, since: str | None,
                before_seq: int | None, count: int) -> list[tuple[int, Record]]:
        """Versions, newest first; only those of resources this principal may see now."""
        interaction = "history-instance" if resource_id else "history-type" if resource_type else "history-system"
        if resource_type is not None:
            check_type(resource_type)
            self._require("r" if resource_id else "s", resource_type, interaction, resource_id)
        if resource_id is not None:
            current = self.store.read(resource_type, check_id(resource_id))
            if current is None or not self._visible(current, interaction):
                raise not_found(resource_type, resource_id)
        rows = self._visible_history(resource_type, resource_id, since, before_seq, count)
        self._trace(interaction, [record for _, record in rows])
        return rows

    def _visible_history(self, resource_type: str | None, resource_id: str | None, since: str | None,
                         before_seq: int | None, count: int) -> list[tuple[int, Record]]:
        """``count`` versions the principal may see, newest first: read on past hidden ones (a
        bounded number of rounds), so a page is not cut short and its next link stays right."""
        if self.access.unrestricted or resource_id is not None:
            return self.store.history(resource_type, resource_id, since=since, before_seq=before_seq, limit=count)
        out: list[tuple[int, Record]] = []
        for _ in range(HISTORY_ROUNDS):
            rows = self.store.history(resource_type, None, since=since, before_seq=before_seq, limit=count)
            visible = self._visible_now({(record.type, record.id) for _, record in rows}, "s")
            out += [(seq, record) for seq, record in rows if (record.type, record.id) in visible]
            if len(out) >= count or len(rows) < count:
                break
            before_seq = rows[-1][0]
        return out[:count]

    def _shown(self) -> trail.Shown:
        """For the trail: whether this principal may see a resource named in a trace (remembered per call)."""
        if self.access.unrestricted or self.access.kind == "system":
            return None
        known: dict[str, bool] = {}

        def shown(reference: str) -> bool:
            if reference not in known:
                resource_type, _, resource_id = reference.partition("/")
                record = self.store.read(resource_type, resource_id) if resource_type in SUPPORTED_TYPES else None
                known[reference] = record is not None and can_see(self.access, record, self.store.satisfies)
            return known[reference]

        return shown

    def _trace_record(self, trace_id: str) -> Record:
        record = trail.read_trace(self.store, self.access, trace_id, self._shown())
        if record is None:
            raise not_found("AuditEvent", trace_id)
        return record

    def _visible_now(self, keys: set[tuple[str, str]], permission: str) -> set[tuple[str, str]]:
        """Which of these resources the principal may see, by their current versions."""
        out = set()
        for resource_type in {t for t, _ in keys}:
            ids = IdIn(tuple(sorted(i for t, i in keys if t == resource_type)))
            narrowed = self._narrow(resource_type, [ids], permission)
            if narrowed is not None:
                out |= {(resource_type, r.id) for r in self.store.find(resource_type, narrowed, limit=len(keys))}
        return out
