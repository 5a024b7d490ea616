"""Search parameters from SearchParameter definitions: official R4 plus French/IHE (PDSm, GAP).

Definitions live as data in ``profiles/r4/search-parameters.json`` and
``profiles/fr/search-parameters.json``. A definition shared by many types (``a | b | c``) is
narrowed to the branches of the type at hand; each expression is compiled once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from fhir_server.config import SUPPORTED_TYPES
from fhir_server.search.expressions import Evaluator, compile_expression
from profiles.definitions import TABLES

DEFINITION_FILES = (TABLES / "search-parameters.json", Path(TABLES).parent / "fr" / "search-parameters.json")
#: Parameter types served from an index table of the same name.
INDEXED_TYPES = ("string", "token", "date", "number", "quantity", "reference", "uri", "composite")
#: Technical corrections of R4 definitions: DocumentReference-relationship swaps its components'
#: expressions (the relatesto reference is ``target``, the relation token is ``code``).
COMPONENT_EXPRESSIONS = {"http://hl7.org/fhir/SearchParameter/DocumentReference-relationship": ("target", "code")}


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str  # string, token, date, number, quantity, reference, uri, composite, special
    expression: str  # narrowed to one resource type
    url: str = ""
    targets: tuple[str, ...] = ()  # reference targets
    components: tuple[tuple[str, str], ...] = ()  # composite: (component type, expression on the element)

    @cached_property
    def evaluate(self) -> Evaluator:
        return compile_expression(self.expression)

    @cached_property
    def component_evaluators(self) -> tuple[Evaluator, ...]:
        return tuple(compile_expression(expression) for _, expression in self.components)

    @property
    def indexed(self) -> bool:
        if self.type == "composite":
            return len(self.components) == 2 and bool(self.expression)
        return self.type in INDEXED_TYPES and bool(self.expression)


def _narrow(expression: str, resource_type: str) -> str:
    """Keep the ``|`` branches of a shared expression that apply to ``resource_type``.

    An expression whose branches name no type (PDSm's ``extension.where(...)``) applies as is.
    """
    branches = [b.strip() for b in expression.split(" | ")]
    if not any(b.lstrip("(")[:1].isupper() for b in branches):
        return expression
    mine = [b for b in branches if b.lstrip("(").startswith((f"{resource_type}.", f"{resource_type} "))
            or b.lstrip("(") == resource_type]
    return " | ".join(mine)


@cache
def _definitions() -> list[dict]:
    out = []
    for path in DEFINITION_FILES:
        if path.exists():
            out.extend(json.loads(path.read_text()))
    return out


def _param(definition: dict, resource_type: str) -> SearchParam | None:
    bases = definition.get("base", [])
    expression = definition.get("expression", "")
    if resource_type in bases:
        expression = _narrow(expression, resource_type)  # also drops R4 examples naming another type
    elif not {"Resource", "DomainResource"} & set(bases):
        return None
    return SearchParam(definition["code"], definition["type"], expression, definition.get("url", ""),
                       tuple(definition.get("target", ())), _components(definition))


def _components(definition: dict) -> tuple[tuple[str, str], ...]:
    """(type, expression) of each component, types looked up from the components' definitions."""
    parts = definition.get("component", ())
    by_url = {d["url"]: d for d in _definitions()}
    fixed = COMPONENT_EXPRESSIONS.get(definition.get("url", ""))
    out = []
    for i, part in enumerate(parts):
        component = by_url.get(part.get("definition", ""))
        if component is None:
            return ()
        out.append((component["type"], fixed[i] if fixed else part.get("expression", "")))
    return tuple(out)


@cache
def params_for(resource_type: str) -> dict[str, SearchParam]:
    """All search parameters of a type, by code (later definitions — French ones — win on a clash)."""
    out: dict[str, SearchParam] = {}
    for definition in _definitions():
        param = _param(definition, resource_type)
        if param is not None:
            out[param.code] = param
    return out


@cache
def indexed_params(resource_type: str) -> tuple[SearchParam, ...]:
    return tuple(p for p in params_for(resource_type).values() if p.indexed and p.code != "_id")


def warm_up() -> None:
    """Compile every expression now, at start-up, rather than on the first write."""
    for resource_type in SUPPORTED_TYPES:
        for param in indexed_params(resource_type):
            param.evaluate  # noqa: B018 - the cached property compiles
