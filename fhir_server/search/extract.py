"""Index entries extracted from a resource at write time, in the same unit of work as the write."""

from __future__ import annotations

from fhir_server.search.registry import indexed_params
from fhir_server.store.base import TokenEntry


def _tokens_of(value) -> list[tuple[str | None, str]]:
    """(system, code) pairs of one token-typed value: Identifier, Coding, CodeableConcept, code."""
    if isinstance(value, str):
        return [(None, value)]
    if isinstance(value, bool):
        return [(None, "true" if value else "false")]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [pair for coding in value["coding"] for pair in _tokens_of(coding)]
    code = value.get("code", value.get("value"))
    return [(value.get("system"), code)] if isinstance(code, str) else []


def token_entries(resource: dict) -> list[TokenEntry]:
    entries = []
    for param in indexed_params(resource["resourceType"]):
        if param.type != "token":
            continue
        for value in param.evaluate(resource):
            entries.extend(TokenEntry(param.code, system, code) for system, code in _tokens_of(value))
    return entries
