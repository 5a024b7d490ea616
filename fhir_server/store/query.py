"""The store's query language: what search plans compile to, whatever the backend.

A query selects current resources of one type whose index entries satisfy clauses (AND-ed).
``Match`` tests one parameter's entries against a condition on their columns (see
``search/conditions.py``); ``Chain`` and ``Has`` follow references forwards and backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.search.conditions import Cond

#: Columns of each index kind, in the order ``IndexEntry.values`` gives them.
INDEX_COLUMNS: dict[str, tuple[str, ...]] = {
    "string": ("norm", "raw"),
    "token": ("system", "code", "text"),
    "date": ("low", "high"),
    "number": ("value", "low", "high"),
    "quantity": ("system", "code", "unit", "value", "low", "high"),
    "reference": ("target_type", "target_id", "version", "url"),
    "uri": ("uri",),
    "composite": ("part0", "part1"),  # one canonical key per component (two-component composites)
}


#: Columns of the access-trace table a trace query may test (``Store.traces``): ``low``/``high``
#: are the recorded instant and one microsecond later, so date conditions apply unchanged.
TRACE_COLUMNS: tuple[str, ...] = ("seq", "low", "high", "patient", "agent", "subtype", "action", "outcome",
                                  "entities")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One search-index entry of a current resource: ``values`` follow ``INDEX_COLUMNS[kind]``."""

    kind: str
    param: str
    values: tuple


@dataclass(frozen=True)
class Match:
    """Some entry of ``param`` satisfies ``cond`` (any entry at all when ``cond`` is None)."""

    kind: str
    param: str
    cond: Cond | None = None


@dataclass(frozen=True)
class IdIn:
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Chain:
    """The reference ``param`` points to a ``target_type`` resource satisfying ``clauses``."""

    param: str
    target_type: str
    clauses: tuple[Clause, ...]


@dataclass(frozen=True)
class Has:
    """Some ``source_type`` resource refers to this one through ``param`` and satisfies ``clauses``."""

    source_type: str
    param: str
    clauses: tuple[Clause, ...]


@dataclass(frozen=True)
class Negate:
    clause: Clause


@dataclass(frozen=True)
class Either:
    clauses: tuple[Clause, ...]


Clause = Match | IdIn | Chain | Has | Negate | Either


@dataclass(frozen=True)
class SortKey:
    kind: str  # an index kind, or "_id" / "_lastUpdated" served from the resource itself
    param: str
    descending: bool = False
