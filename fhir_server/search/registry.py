"""Search parameters from SearchParameter definitions: official R4 plus French/IHE (PDSm, GAP).

Definitions live as data in ``profiles/r4/search-parameters.json`` and
``profiles/fr/search-parameters.json``, then in the deployment's own files named by
``MES_SEARCH_PARAMETERS`` (checked at start-up: a bad file stops the server with its name and the
problem, rather than a parameter silently missing). A definition shared by many types
(``a | b | c``) is narrowed to the branches of the type at hand; each expression is compiled once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from fhir_server.config import SEARCH_PARAMETERS_ENV, SUPPORTED_TYPES
from fhir_server.search.expressions import Evaluator, compile_expression
from profiles.definitions import TABLES

#: R4, then the French IGs, then the server's own (profiles/mes: what the access policy searches by).
DEFINITION_FILES = tuple(Path(TABLES).parent / folder / "search-parameters.json" for folder in ("r4", "fr", "mes"))
#: Parameter types served from an index table of the same name.
INDEXED_TYPES = ("string", "token", "date", "number", "quantity", "reference", "uri", "composite")
#: Technical corrections of R4 definitions: DocumentReference-relationship swaps its components'
#: expressions (the relatesto reference is ``target``, the relation token is ``code``).
COMPONENT_EXPRESSIONS = {"http://hl7.org/fhir/SearchParameter/DocumentReference-relationship": ("target", "code")}
#: R4 SearchParamType; ``special`` is valid R4 but has no index here, so a custom one is refused.
R4_TYPES = frozenset({*INDEXED_TYPES, "special"})
#: A code usable in a query string: no ``:`` ``.`` ``,`` ``|`` ``$`` ``=`` ``&``; ``_`` names are the spec's.
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")
_reload_listeners: list[Callable[[], None]] = []


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
    for path in custom_files():
        out.extend(load_custom(path))
    return out


def custom_files() -> list[Path]:
    """The files named by ``MES_SEARCH_PARAMETERS`` (``os.pathsep``-separated), in order."""
    return [Path(part) for part in os.environ.get(SEARCH_PARAMETERS_ENV, "").split(os.pathsep) if part.strip()]


def load_custom(path: Path) -> list[dict]:
    """SearchParameter resources from a JSON array or a Bundle, each checked (ValueError naming the file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{SEARCH_PARAMETERS_ENV}: cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{SEARCH_PARAMETERS_ENV}: {path} is not valid JSON: {error}") from None
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        data = [entry.get("resource") if isinstance(entry, dict) else None for entry in data.get("entry") or []]
    if not isinstance(data, list):
        raise ValueError(f"{SEARCH_PARAMETERS_ENV}: {path} must hold a JSON array of SearchParameter resources "
                         f"or a Bundle of them")
    for i, definition in enumerate(data):
        problem = _problem(definition)
        if problem:
            code = definition.get("code") if isinstance(definition, dict) else None
            where = f"entry {i}" + (f" ('{code}')" if isinstance(code, str) else "")
            raise ValueError(f"{SEARCH_PARAMETERS_ENV}: {path}, {where}: {problem}")
    return data


def _problem(definition: object) -> str | None:
    """What makes a custom definition unusable, or None: the fields the server relies on."""
    if not isinstance(definition, dict) or definition.get("resourceType") != "SearchParameter":
        return "not a SearchParameter resource (resourceType must be 'SearchParameter')"
    code, kind, bases = definition.get("code"), definition.get("type"), definition.get("base")
    url, expression = definition.get("url"), definition.get("expression")
    if not isinstance(url, str) or not url:
        return "url (the definition's canonical URL, required by R4) is missing"
    if code is None:
        return "code (the parameter's name in queries) is missing"
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        return f"code {code!r} must be letters, digits, '-' or '_', starting with a letter or digit"
    if kind not in R4_TYPES:
        return f"type {kind!r} is not an R4 search parameter type ({', '.join(sorted(R4_TYPES))})"
    if kind not in INDEXED_TYPES:
        return f"type {kind!r} cannot be served: this server only searches {', '.join(INDEXED_TYPES)}"
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) for b in bases):
        return "base must be a non-empty list of resource types"
    served = [b for b in bases if b in SUPPORTED_TYPES]
    if not served and not {"Resource", "DomainResource"} & set(bases):
        return f"base {bases} names no type this server serves ({', '.join(SUPPORTED_TYPES)})"
    if not isinstance(expression, str) or not expression.strip():
        return "expression (FHIRPath) is required: it selects the values to index"
    for resource_type in served or SUPPORTED_TYPES:  # the expression each type will use (see _param)
        narrowed = _narrow(expression, resource_type) if resource_type in served else expression
        if not narrowed:
            return f"expression has no branch for base {resource_type}"
        try:
            compile_expression(narrowed)({"resourceType": resource_type})
        except Exception as error:  # fhirpathpy raises bare Exception on unknown functions or arities
            return f"expression cannot be evaluated: {error}"
    return None


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


#: Types searched by fewer parameters than their definitions offer. AuditEvents are read from
#: the access-trace log (``security/trail.py``), which keeps whose record, who, what, when and how
#: it went; the other parameters are reported as not supported rather than silently matching nothing.
SERVED_PARAMS = {"AuditEvent": frozenset({"_id", "_lastUpdated", "action", "agent", "date", "entity", "outcome",
                                          "patient", "subtype"})}


@cache
def params_for(resource_type: str) -> dict[str, SearchParam]:
    """All search parameters of a type, by code (later definitions — French ones — win on a clash)."""
    out: dict[str, SearchParam] = {}
    served = SERVED_PARAMS.get(resource_type)
    for definition in _definitions():
        param = _param(definition, resource_type)
        if param is not None and (served is None or param.code in served):
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


def on_reload(listener: Callable[[], None]) -> Callable[[], None]:
    """Have ``reload()`` also call ``listener`` (a cache elsewhere built from these definitions)."""
    _reload_listeners.append(listener)
    return listener


def reload() -> None:
    """Forget the definitions and everything built from them, then read them again now (so a bad
    ``MES_SEARCH_PARAMETERS`` file raises here). For tests and configuration changes; resources
    already stored are not re-indexed."""
    for cached in (_definitions, params_for, indexed_params):
        cached.cache_clear()
    for listener in _reload_listeners:
        listener()
    _definitions()
