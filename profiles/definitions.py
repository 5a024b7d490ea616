"""Navigation in the R4 element tables, shared by the validator and the XML codec.

A position inside a resource is a ``Context``: the StructureDefinition whose snapshot holds
the element (``owner``) and the element path in it. Complex datatypes move to their own
StructureDefinition; backbone elements stay in the owner's; ``contentReference`` jumps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLES = Path(__file__).parent / "r4"


@dataclass(frozen=True)
class Context:
    owner: str  # StructureDefinition type name holding the elements (e.g. "Patient", "HumanName")
    path: str  # element path inside it (e.g. "Patient.contact")


@dataclass(frozen=True)
class Child:
    """One JSON property resolved against the definitions."""

    name: str  # the property name as written (e.g. "deceasedBoolean")
    path: str  # the element path (e.g. "Patient.deceased[x]")
    fhir_type: str  # the concrete type (e.g. "boolean", "HumanName", "BackboneElement", "Resource")
    is_list: bool
    required_valueset: str | None
    context: Context  # where this child's own children are defined

    @property
    def is_primitive(self) -> bool:
        return is_primitive(self.fhir_type)


@cache
def types() -> dict:
    return json.loads((TABLES / "types.json").read_text())


@cache
def required_valuesets() -> dict[str, frozenset[str]]:
    raw = json.loads((TABLES / "required-valuesets.json").read_text())
    return {url: frozenset(codes) for url, codes in raw.items()}


def is_primitive(type_name: str) -> bool:
    t = types().get(type_name)
    return t is not None and t["kind"] == "primitive-type"


def is_resource_type(name: str) -> bool:
    t = types().get(name)
    return t is not None and t["kind"] == "resource" and not t["abstract"]


def resource_context(resource_type: str) -> Context:
    return Context(resource_type, resource_type)


@cache
def _choice_index(owner: str) -> dict[str, tuple[str, str]]:
    """For each parent path, maps e.g. 'deceasedBoolean' → ('Patient.deceased[x]', 'boolean')."""
    out: dict[str, tuple[str, str]] = {}
    for path, (_, el_types, _, _) in types()[owner]["elements"].items():
        if path.endswith("[x]"):
            parent, _, stem = path[:-3].rpartition(".")
            for t in el_types:
                out[f"{parent}|{stem}{t[0].upper()}{t[1:]}"] = (path, t)
    return out


@cache
def child(ctx: Context, name: str) -> Child | None:
    """Resolve the JSON property ``name`` at ``ctx``; None if the definitions have no such element."""
    elements = types()[ctx.owner]["elements"]
    path = f"{ctx.path}.{name}"
    entry = elements.get(path)
    if entry is not None:
        is_list, el_types, required, content_ref = entry
        if content_ref:
            return Child(name, path, "BackboneElement", is_list, required, Context(ctx.owner, content_ref))
        fhir_type = el_types[0] if el_types else "BackboneElement"
    else:
        hit = _choice_index(ctx.owner).get(f"{ctx.path}|{name}")
        if hit is None:
            return None
        path, fhir_type = hit
        is_list, _, required, _ = elements[path]
    if fhir_type in ("BackboneElement", "Element") and _has_inline_children(ctx.owner, path):
        next_ctx = Context(ctx.owner, path)
    else:
        next_ctx = Context(fhir_type, fhir_type)
    return Child(name, path, fhir_type, is_list, required, next_ctx)


@cache
def _has_inline_children(owner: str, path: str) -> bool:
    """True when the element's children are defined inline (a backbone element)."""
    prefix = path + "."
    return any(p.startswith(prefix) for p in types()[owner]["elements"])
