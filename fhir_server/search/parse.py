"""Query strings → parameter occurrences (R4 search.html: modifiers, chains, ``_has``, escaping).

Parsing knows the grammar only; what a name means for a resource type is the planner's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fhir_server.core.errors import FhirError

_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
#: Parameters that shape results rather than select resources.
RESULT_PARAMS = frozenset({
    "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_format", "_pretty",
    "_contained", "_containedType", "_cursor", "_before", "_type", "_include:iterate",
    "_revinclude:iterate", "_include:recurse", "_revinclude:recurse",
})


@dataclass(frozen=True)
class Link:
    """One step of a parameter name: ``subject:Patient`` is Link("subject", "Patient")."""

    name: str
    modifier: str | None = None


@dataclass(frozen=True)
class Occurrence:
    """One ``name=value`` of the query: its chain of links and its comma-separated values."""

    raw_name: str
    links: tuple[Link, ...]  # more than one link: a chain (subject:Patient.name)
    values: tuple[str, ...]  # escapes kept; each value module unescapes its own syntax


@dataclass(frozen=True)
class HasOccurrence:
    """``_has:Type:param:...=value``: resources that a ``Type`` refers to through ``param``."""

    raw_name: str
    source_type: str
    param: str
    inner: Occurrence | HasOccurrence


def unescape(text: str) -> str:
    """Undo the search escapes ``\\,`` ``\\|`` ``\\$`` ``\\\\`` in one value."""
    return re.sub(r"\\([,|$\\])", r"\1", text)


def split_values(raw: str) -> tuple[str, ...]:
    return tuple(_UNESCAPED_COMMA.split(raw))


def _links(name: str) -> tuple[Link, ...]:
    links = []
    for part in name.split("."):
        base, _, modifier = part.partition(":")
        if not base:
            raise FhirError(400, "invalid", f"Search parameter '{name}' has an empty name")
        links.append(Link(base, modifier or None))
    return tuple(links)


def _has(raw_name: str, name: str, raw_value: str) -> HasOccurrence:
    parts = name.split(":", 3)
    if len(parts) < 4 or not all(parts[1:]):
        raise FhirError(400, "invalid", f"'{raw_name}' is not _has:Type:reference:parameter")
    _, source_type, param, rest = parts
    inner = _has(raw_name, rest, raw_value) if rest.startswith("_has:") else \
        Occurrence(raw_name, _links(rest), split_values(raw_value))
    return HasOccurrence(raw_name, source_type, param, inner)


def parse(params: list[tuple[str, str]]) -> tuple[list[Occurrence | HasOccurrence], dict[str, list[str]]]:
    """Selection parameters in order, and result parameters by name (all their values)."""
    selection: list[Occurrence | HasOccurrence] = []
    result: dict[str, list[str]] = {}
    for name, value in params:
        if name in RESULT_PARAMS:
            result.setdefault(name, []).append(value)
        elif name.startswith("_has:"):
            selection.append(_has(name, name, value))
        else:
            selection.append(Occurrence(name, _links(name), split_values(value)))
    return selection, result
