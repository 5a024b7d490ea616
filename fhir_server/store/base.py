"""The Store protocol: what any backend (SQLite, MongoDB) must provide, and its records.

The store knows nothing of FHIR rules. It keeps, per (type, id), a current version and an
append-only history of every version; index entries for current versions only; and offers
atomic units of work in which a write is a compare-and-set on the expected version.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Record:
    """One version of one resource, as stored."""

    type: str
    id: str
    version: int
    last_updated: str  # FHIR instant, UTC, e.g. 2026-11-24T07:40:01.123456+00:00
    deleted: bool
    body: bytes  # canonical JSON of the resource; empty for a deletion (tombstone)
    method: str = "PUT"  # POST, PUT, PATCH or DELETE: how this version was written


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A token index entry: (system, code) of one search parameter of a current resource."""

    param: str
    system: str | None
    code: str


@dataclass(frozen=True, slots=True)
class TokenCriterion:
    """Matches resources having an entry for ``param`` equal to any of ``values``.

    A value is (system, code): system None matches any system; system "" matches only entries
    without a system; code None matches any code of that system.
    """

    param: str
    values: tuple[tuple[str | None, str | None], ...]


@dataclass(frozen=True, slots=True)
class IdCriterion:
    ids: tuple[str, ...]


Criterion = TokenCriterion | IdCriterion


class VersionConflict(Exception):
    """The version written is not the next one: another writer got there first."""


class UnitOfWork(Protocol):
    """Reads and writes inside one atomic, serialised transaction.

    Because units are serialised, a read followed by a write in the same unit is a
    compare-and-set; ``put`` still checks the version so no backend can fork a history.
    """

    def read(self, type_: str, id_: str) -> Record | None: ...

    def find(self, type_: str, criteria: list[Criterion], limit: int) -> list[str]: ...

    def put(self, type_: str, id_: str, version: int, body: bytes, *, last_updated: str, method: str,
            tokens: list[TokenEntry]) -> Record:
        """Write ``version``, which must be the current version + 1 (1 for a new resource)."""
        ...

    def delete(self, type_: str, id_: str, version: int, *, last_updated: str) -> Record:
        """Write a tombstone as ``version`` (current version + 1)."""
        ...


class Store(Protocol):
    def unit(self) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work: committed on normal exit, rolled back on exception."""
        ...

    def read(self, type_: str, id_: str) -> Record | None: ...

    def vread(self, type_: str, id_: str, version: int) -> Record | None: ...

    def find(self, type_: str, criteria: list[Criterion], limit: int, offset: int = 0) -> list[Record]: ...

    def count(self, type_: str, criteria: list[Criterion]) -> int: ...

    def history(self, type_: str | None, id_: str | None, *, since: str | None, before_seq: int | None,
                limit: int) -> list[tuple[int, Record]]:
        """Versions newest first, each with its store-wide sequence number (for stable paging)."""
        ...

    def iter_current(self, type_: str) -> Iterator[Record]: ...

    def close(self) -> None: ...
