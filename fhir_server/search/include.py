"""``_include`` and ``_revinclude`` (R4 search.html#include), with ``:iterate`` and ``*``.

Included resources come from the reference index, never from the resource bodies: the
references the matches make (``_include``) or the resources referring to them
(``_revinclude``). Their number is capped; the caller reports the cap in the Bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fhir_server.config import SUPPORTED_TYPES
from fhir_server.search.conditions import Compare, all_of
from fhir_server.search.registry import params_for
from fhir_server.store.base import Record, Store
from fhir_server.store.query import Clause, IdIn, Match

MAX_ITERATIONS = 4  # how deep :iterate follows references
SERVED = frozenset(SUPPORTED_TYPES)
#: What an included resource of a type must also satisfy (the reader's visibility); None: none of it.
Narrow = Callable[[str, list[Clause]], list[Clause] | None]


@dataclass(frozen=True)
class IncludeSpec:
    source_type: str
    param: str | None  # None for "*": every reference parameter
    target_type: str | None
    iterate: bool


def parse_includes(values: list[str], iterate: bool, reverse: bool, unsupported: list[str]) -> list[IncludeSpec]:
    """``Type:param[:target]`` or ``*`` values; anything not a reference parameter is reported."""
    specs = []
    name = "_revinclude" if reverse else "_include"
    for value in values:
        if value == "*":
            specs.append(IncludeSpec("*", None, None, iterate))
            continue
        source, _, rest = value.partition(":")
        param, _, target = rest.partition(":")
        definition = params_for(source).get(param) if source and param else None
        if param == "*":
            specs.append(IncludeSpec(source, None, target or None, iterate))
        elif definition is None or definition.type != "reference":
            unsupported.append(f"{name}={value}")
        else:
            specs.append(IncludeSpec(source, param, target or None, iterate))
    return specs


def _find(store: Store, narrow: Narrow, resource_type: str, clauses: list[Clause], limit: int) -> list[Record]:
    narrowed = narrow(resource_type, clauses)
    return [] if narrowed is None else store.find(resource_type, narrowed, limit=limit)


def _forward(store: Store, narrow: Narrow, spec: IncludeSpec, frontier: list[Record], limit: int) -> list[Record]:
    out = []
    for source_type in {r.type for r in frontier} if spec.source_type == "*" else {spec.source_type}:
        owners = [r.id for r in frontier if r.type == source_type]
        by_type: dict[str, set[str]] = {}
        for _, target_type, target_id in store.references_from(source_type, owners, spec.param):
            if target_type and spec.target_type in (None, target_type):
                by_type.setdefault(target_type, set()).add(target_id)
        for target_type, ids in by_type.items():
            if target_type in SERVED:
                out += _find(store, narrow, target_type, [IdIn(tuple(sorted(ids)))], limit)
    return out


def _reverse(store: Store, narrow: Narrow, spec: IncludeSpec, frontier: list[Record], limit: int) -> list[Record]:
    out = []
    for target_type in {r.type for r in frontier}:
        if spec.target_type not in (None, target_type):
            continue
        ids = tuple(r.id for r in frontier if r.type == target_type)
        cond = all_of(Compare("target_type", "=", target_type), Compare("target_id", "in", ids))
        out += _find(store, narrow, spec.source_type, [Match("reference", spec.param, cond)], limit)
    return out


def included(store: Store, matches: list[Record], includes: list[IncludeSpec], revincludes: list[IncludeSpec],
             cap: int, narrow: Narrow) -> tuple[list[Record], bool]:
    """Resources to add with ``search.mode=include``, and whether the cap cut the list short."""
    seen = {(r.type, r.id) for r in matches}
    out: list[Record] = []
    frontier = matches
    for iteration in range(MAX_ITERATIONS):
        found = []
        for spec in includes:
            if iteration == 0 or spec.iterate:
                found += _forward(store, narrow, spec, frontier, cap + 1)
        for spec in revincludes:
            if (iteration == 0 or spec.iterate) and spec.param is not None:
                found += _reverse(store, narrow, spec, frontier, cap + 1)
        frontier = []
        for record in found:
            if (record.type, record.id) not in seen:
                seen.add((record.type, record.id))
                frontier.append(record)
        out += frontier
        if len(out) > cap:
            return out[:cap], True
        if not frontier:
            break
    return out, False
