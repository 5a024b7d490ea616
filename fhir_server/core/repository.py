"""The Repository: the one door to the store. validate → index → persist, for every protocol.

Reads go straight to the store. Writes happen inside a ``Writer`` bound to one unit of work,
so a single interaction and a whole transaction bundle share the same code and atomicity.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fhir_server.core import patch as patching
from fhir_server.core.errors import FhirError, not_found
from fhir_server.core.resources import check_id, check_type, new_id, now_instant, with_meta
from fhir_server.core.validation import validate_resource
from fhir_server.formats import json as fjson
from fhir_server.search.extract import index_entries
from fhir_server.search.include import included
from fhir_server.search.plan import SearchPlan, plan_conditional, plan_search
from fhir_server.security.access import INTERNAL
from fhir_server.security.policy import Access, can_see, require, restrict
from fhir_server.security.writes import check_write
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

    def __init__(self, unit: UnitOfWork, local_base: str | None, access: Access = INTERNAL) -> None:
        self._unit = unit
        self._local_base = local_base
        self._access = access
        self._now = now_instant()

    # -- helpers -------------------------------------------------------------------------

    def _store(self, resource: dict, resource_id: str, previous: Record | None, method: str) -> Record:
        live = previous if previous is not None and not previous.deleted else None
        check_write(self._access, self._unit, self._local_base, resource["resourceType"],
                    {**resource, "id": resource_id}, fjson.loads(live.body) if live else None)
        version = previous.version + 1 if previous else 1
        stored = with_meta(resource, resource_id, version, self._now)
        body = fjson.dumps(stored)
        try:
            return self._unit.put(stored["resourceType"], resource_id, version, body, last_updated=self._now,
                                  method=method, entries=index_entries(stored, self._local_base))
        except VersionConflict as exc:
            raise FhirError(409, "conflict", f"Concurrent write to {stored['resourceType']}/{resource_id}") from exc

    def _matches(self, resource_type: str, query: str) -> list[str]:
        """At most two ids matching conditional criteria (two is enough to say "several")."""
        clauses = plan_conditional(resource_type, query, self._local_base)
        return self._unit.find(resource_type, restrict(self._access, resource_type, clauses), limit=2)

    @staticmethod
    def _check_if_match(current: Record | None, if_match: int | None, label: str) -> None:
        live = current.version if current and not current.deleted else None
        if if_match is not None and if_match != live:
            raise FhirError(412, "conflict", f"{label}: If-Match version {if_match} but current version is {live}")

    def read_current(self, resource_type: str, resource_id: str) -> Record:
        """A read inside the unit of work (sees its own uncommitted writes)."""
        record = self._unit.read(resource_type, resource_id)
        if record is None or not self._visible(record):
            raise not_found(resource_type, resource_id)
        if record.deleted:
            raise gone(record)
        return record

    def _visible(self, record: Record) -> bool:
        return can_see(self._access, record, self._unit.find)

    # -- interactions --------------------------------------------------------------------

    def create(self, resource_type: str, resource: dict, if_none_exist: str | None = None,
               resource_id: str | None = None) -> WriteResult:
        """Create with a server-assigned id (``resource_id`` lets a transaction assign it up front)."""
        check_type(resource_type)
        require(self._access, "c", resource_type)  # before validation: no feedback without the right
        validate_resource(resource, resource_type)
        if if_none_exist:
            existing = self.existing_match(resource_type, if_none_exist)
            if existing is not None:
                return WriteResult(200, self._unit.read(resource_type, existing))
        return WriteResult(201, self._store(resource, resource_id or new_id(), None, "POST"))

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
        require(self._access, "u" if current is not None and not current.deleted else "c", resource_type)
        validate_resource(resource, resource_type)
        body_id = resource.get("id")
        if body_id is None:
            raise FhirError(400, "required", "The resource must carry its id for an update", [f"{resource_type}.id"])
        if body_id != resource_id:
            raise FhirError(400, "invalid", f"Resource id '{body_id}' does not match the URL id '{resource_id}'",
                            [f"{resource_type}.id"])
        if current is not None and not self._visible(current):
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
        if existing is not None and not existing.deleted:
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
        current = self._unit.read(resource_type, resource_id)
        self._check_if_match(current, if_match, f"{resource_type}/{resource_id}")
        if current is None or current.deleted:
            return WriteResult(204, None)
        if not self._visible(current):
            raise not_found(resource_type, resource_id)
        check_write(self._access, self._unit, self._local_base, resource_type, None, fjson.loads(current.body))
        try:
            record = self._unit.delete(resource_type, resource_id, current.version + 1, last_updated=self._now)
        except VersionConflict as exc:
            raise FhirError(409, "conflict", f"Concurrent write to {resource_type}/{resource_id}") from exc
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
        require(self._access, "u", resource_type)
        current = self.read_current(resource_type, resource_id)
        self._check_if_match(current, if_match, f"{resource_type}/{resource_id}")
        original = fjson.loads(current.body)
        if kind == "json-patch":
            patched = patching.apply_json_patch(original, document)
        else:
            patched = patching.apply_fhirpath_patch(original, document)
        if patched.get("resourceType") != resource_type or patched.get("id") != resource_id:
            raise FhirError(422, "processing", "A patch may not change the resource type or id")
        validate_resource(patched, resource_type)
        return WriteResult(200, self._store(patched, resource_id, current, "PATCH"))


class Repository:
    """``local_base``: this server's FHIR base, so absolute references to it count as local.

    ``access``: who acts. Every read, search and write answers to its scopes and sees only what
    it may see (``security/policy.py``); ``INTERNAL`` is unrestricted, for the server's own work.
    """

    def __init__(self, store: Store, local_base: str | None = None, access: Access = INTERNAL) -> None:
        self.store = store
        self.local_base = local_base
        self.access = access

    def acting_as(self, access: Access) -> Repository:
        return Repository(self.store, self.local_base, access)

    @contextmanager
    def writer(self) -> Iterator[Writer]:
        with self.store.unit() as unit:
            yield Writer(unit, self.local_base, self.access)

    def _visible(self, record: Record) -> bool:
        return can_see(self.access, record, lambda t, clauses, limit: self.store.find(t, clauses, limit=limit))

    def read(self, resource_type: str, resource_id: str) -> Record:
        check_type(resource_type)
        require(self.access, "r", resource_type)
        record = self.store.read(resource_type, check_id(resource_id))
        if record is None or not self._visible(record):
            raise not_found(resource_type, resource_id)
        if record.deleted:
            raise gone(record)
        return record

    def vread(self, resource_type: str, resource_id: str, version: str) -> Record:
        check_type(resource_type)
        require(self.access, "r", resource_type)
        current = self.store.read(resource_type, check_id(resource_id))
        if not version.isdigit() or current is None or not self._visible(current):
            raise FhirError(404, "not-found", f"Version '{version}' of {resource_type}/{resource_id} is not known")
        record = self.store.vread(resource_type, resource_id, int(version))
        if record is None:
            raise FhirError(404, "not-found", f"Version {version} of {resource_type}/{resource_id} is not known")
        if record.deleted:
            raise gone(record)
        return record

    def search(self, resource_type: str, params: list[tuple[str, str]], *, count: int, after: tuple | None = None,
               before: tuple | None = None, within: tuple[Clause, ...] = ()) -> SearchResult:
        """A page of matches, strictly after (or before) a position from an earlier page.

        ``within`` narrows the search further (a compartment, for instance).
        """
        check_type(resource_type)
        require(self.access, "s", resource_type)
        plan = plan_search(resource_type, params, self.local_base)
        plan.clauses = restrict(self.access, resource_type, [*plan.clauses, *within])
        try:
            page = self.store.page(resource_type, plan.clauses, limit=count, sort=plan.sort, after=after,
                                   before=before)
        except BadPosition as e:
            raise FhirError(400, "invalid", str(e)) from None
        return SearchResult([record for record, _ in page], [position for _, position in page], plan)

    def included(self, matches: list[Record], plan: SearchPlan, cap: int) -> Included:
        """The ``_include`` / ``_revinclude`` resources of a page of matches, at most ``cap``."""
        if not plan.includes and not plan.revincludes:
            return Included([], False)
        records, capped = included(self.store, matches, plan.includes, plan.revincludes, cap, self._narrow)
        return Included(records, capped)

    def _narrow(self, resource_type: str, clauses: list[Clause]) -> list[Clause] | None:
        """What an included resource of this type must satisfy; None when the scopes do not allow reading it."""
        try:
            require(self.access, "r", resource_type)
        except FhirError:
            return None
        return restrict(self.access, resource_type, clauses)

    def count(self, resource_type: str, params: list[tuple[str, str]] = ()) -> int:
        """How many current resources match a search (all of the type without parameters)."""
        require(self.access, "s", check_type(resource_type))
        plan = plan_search(resource_type, list(params), self.local_base)
        return self.store.count(resource_type, restrict(self.access, resource_type, plan.clauses))

    def history(self, resource_type: str | None, resource_id: str | None, *, since: str | None,
                before_seq: int | None, count: int) -> list[tuple[int, Record]]:
        """Versions, newest first; only those of resources this principal may see now."""
        if resource_type is not None:
            check_type(resource_type)
            require(self.access, "r" if resource_id else "s", resource_type)
        if resource_id is not None:
            self.read_or_tombstone(resource_type, check_id(resource_id))
        rows = self.store.history(resource_type, resource_id, since=since, before_seq=before_seq, limit=count)
        if self.access.unrestricted or resource_id is not None:
            return rows
        visible = self._visible_now({(record.type, record.id) for _, record in rows})
        return [(seq, record) for seq, record in rows if (record.type, record.id) in visible]

    def read_or_tombstone(self, resource_type: str, resource_id: str) -> Record:
        """The current record, deleted or not, if this principal may see it; 404 otherwise."""
        record = self.store.read(resource_type, resource_id)
        if record is None or not self._visible(record):
            raise not_found(resource_type, resource_id)
        return record

    def _visible_now(self, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these resources the principal may see, by their current versions."""
        out = set()
        for resource_type in {t for t, _ in keys}:
            narrowed = self._narrow(resource_type, [IdIn(tuple(sorted(i for t, i in keys if t == resource_type)))])
            if narrowed is not None:
                out |= {(resource_type, r.id) for r in self.store.find(resource_type, narrowed, limit=len(keys))}
        return out
