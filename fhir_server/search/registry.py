"""Search parameters from the official R4 SearchParameter definitions in ``profiles/r4``.

Each parameter's FHIRPath expression is narrowed to the resource type it is used on (the R4
definitions share one expression across many types, joined with ``|``) and compiled once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from fhirpathpy import compile as compile_fhirpath

from profiles.definitions import TABLES

#: Parameters whose index entries are written today. The search issue widens this to all.
INDEXED_PARAMS = frozenset({"identifier"})


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str  # token, string, date, reference, ...
    expression: str  # narrowed to one resource type

    @property
    def evaluate(self) -> Callable[[dict], list]:
        return _compiled(self.expression)


@cache
def _compiled(expression: str) -> Callable[[dict], list]:
    path = expression.split(".")
    if all(part.isidentifier() for part in path):
        return _simple_path(path[1:])
    return compile_fhirpath(expression, None)


def _simple_path(steps: list[str]) -> Callable[[dict], list]:
    """A plain dotted path navigated on dicts directly: ~50x faster than the FHIRPath engine."""

    def evaluate(resource: dict) -> list:
        values = [resource]
        for step in steps:
            nxt = []
            for value in values:
                child = value.get(step) if isinstance(value, dict) else None
                if isinstance(child, list):
                    nxt.extend(child)
                elif child is not None:
                    nxt.append(child)
            values = nxt
        return values

    return evaluate


def _narrow(expression: str, resource_type: str) -> str:
    """Keep the ``|`` branches of a shared expression that apply to ``resource_type``."""
    branches = [b.strip() for b in expression.split("|")]
    mine = [b for b in branches if b.startswith(f"{resource_type}.") or b == resource_type]
    return " | ".join(mine)


@cache
def params_for(resource_type: str) -> dict[str, SearchParam]:
    """All search parameters that apply to a resource type, by code."""
    definitions = json.loads((TABLES / "search-parameters.json").read_text())
    out: dict[str, SearchParam] = {}
    for sp in definitions:
        bases = sp["base"]
        if resource_type in bases:
            expression = _narrow(sp.get("expression", ""), resource_type)
        elif "Resource" in bases or "DomainResource" in bases:
            expression = sp.get("expression", "")
        else:
            continue
        out[sp["code"]] = SearchParam(sp["code"], sp["type"], expression)
    return out


@cache
def indexed_params(resource_type: str) -> tuple[SearchParam, ...]:
    return tuple(p for code, p in params_for(resource_type).items() if code in INDEXED_PARAMS and p.expression)
