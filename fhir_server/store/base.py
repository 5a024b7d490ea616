"""The Store protocol: what any backend (SQLite, MongoDB) must provide, and its records.

The store knows nothing of FHIR rules. It keeps, per (type, id), a current version and an
append-only history of every version; index entries for current versions only; and offers
atomic units of work in which a write is a compare-and-set on the expected version. Beside
resources it keeps an append-only log of access traces, written in batches and never changed,
and the receipts of the messages the doors applied (for their idempotency).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from fhir_server.search.conditions import Cond
from fhir_server.store.query import Clause, IndexEntry, SortKey


@dataclass(frozen=True, slots=True)
class Record:
    """One version of one resource, as stored."""

    type: str
    id: str
    version: int
    last_updated: str  # FHIR instant, UTC, fixed width: 2026-11-24T07:40:01.123456Z
    deleted: bool
    body: bytes  # canonical JSON of the resource; empty for a deletion (tombstone)
    method: str = "PUT"  # POST, PUT, PATCH or DELETE: how this version was written


class BadPosition(ValueError):
    """A page position that this search cannot continue from (another search's, or altered)."""


class QueryTooComplex(ValueError):
    """A query the backend cannot run as asked (nested too deep, too large); the caller's 400."""


class VersionConflict(Exception):
    """The version written is not the next one: another writer got there first."""


class UnitOfWork(Protocol):
    """Reads and writes inside one atomic, serialised transaction.

    Because units are serialised, a read followed by a write in the same unit is a
    compare-and-set; ``put`` still checks the version so no backend can fork a history.
    """

    def read(self, type_: str, id_: str) -> Record | None: ...

    def find(self, type_: str, clauses: list[Clause], limit: int) -> list[str]: ...

    def satisfies(self, type_: str, id_: str, clauses: Sequence[Clause]) -> bool:
        """Whether the current, live resource (type, id) satisfies every clause."""
        ...

    def put(self, type_: str, id_: str, version: int, body: bytes, *, last_updated: str, method: str,
            entries: list[IndexEntry]) -> Record:
        """Write ``version``, which must be the current version + 1 (1 for a new resource)."""
        ...

    def delete(self, type_: str, id_: str, version: int, *, last_updated: str) -> Record:
        """Write a tombstone as ``version`` (current version + 1)."""
        ...

    def receipt(self, door: str, sender: str, message: str) -> bytes | None:
        """The answer kept for a message a door applied (``keep_receipt``), if it was."""
        ...

    def keep_receipt(self, door: str, sender: str, message: str, answer: bytes, *, at: str) -> None:
        """Remember that ``sender``'s ``message`` was applied, with the answer given, in this unit:
        a door that is sent a message twice (an HL7 v2 resend, a mail redelivered) applies it once."""
        ...


class Store(Protocol):
    def unit(self) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work: committed on normal exit, rolled back on exception."""
        ...

    def read(self, type_: str, id_: str) -> Record | None: ...

    def vread(self, type_: str, id_: str, version: int) -> Record | None: ...

    def find(self, type_: str, clauses: list[Clause], *, limit: int, sort: tuple[SortKey, ...] = ()) -> list[Record]:
        """Current resources matching every clause, in the order of ``page``."""
        ...

    def page(self, type_: str, clauses: list[Clause], *, limit: int, sort: tuple[SortKey, ...] = (),
             after: tuple | None = None, before: tuple | None = None) -> list[tuple[Record, tuple]]:
        """Like ``find``, each record with its position in the page order.

        Positions are opaque to callers: the sort values then the id, or, without ``sort``, any
        stable order the store finds cheapest (SQLite walks a text index in its own order). A
        page continues strictly after the position ``after`` or ends strictly before ``before``
        (keyset paging): resources present throughout are never skipped or repeated, whatever is
        written between two pages. A position the search cannot continue from raises BadPosition.
        """
        ...

    def satisfies(self, type_: str, id_: str, clauses: Sequence[Clause]) -> bool:
        """Whether the current, live resource (type, id) satisfies every clause (a visibility check)."""
        ...

    def read_where(self, type_: str, id_: str, clauses: Sequence[Clause]) -> tuple[Record | None, bool]:
        """``read`` and ``satisfies`` in one lookup: the current version (or None) and whether it is
        live and satisfies every clause (with no clause: whether it exists)."""
        ...

    def count(self, type_: str, clauses: list[Clause]) -> int: ...

    def append_traces(self, rows: list[tuple]) -> None:
        """Append access-trace rows (see ``security/audit.py``), all in one transaction."""
        ...

    def traces(self, conds: list[Cond], *, limit: int, newest_first: bool = False, after: int | None = None,
               before: int | None = None) -> list[tuple]:
        """Trace rows whose columns (``query.TRACE_COLUMNS``) satisfy every condition, keyset-paged by ``seq``."""
        ...

    def count_traces(self, conds: list[Cond]) -> int: ...

    def references_from(self, type_: str, ids: list[str], param: str | None) -> list[tuple[str, str, str]]:
        """(owner id, target type, target id) of the reference entries of ``ids`` (all params if None)."""
        ...

    def history(self, type_: str | None, id_: str | None, *, since: str | None, before_seq: int | None,
                limit: int) -> list[tuple[int, Record]]:
        """Versions newest first, each with its store-wide sequence number (for stable paging)."""
        ...

    def close(self) -> None: ...
