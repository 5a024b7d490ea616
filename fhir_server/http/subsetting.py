"""``_summary`` and ``_elements`` (R4 search.html#summary, #elements): smaller copies of resources.

A subsetted resource is tagged SUBSETTED in ``meta.tag`` so that no client mistakes it for the
whole resource (and writes it back). Mandatory elements are always kept.
"""

from __future__ import annotations

import json
from functools import cache

from fhir_server.core.errors import FhirError
from fhir_server.formats import json as fjson
from fhir_server.store.base import Record
from profiles.definitions import TABLES

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
SUMMARY_MODES = ("true", "text", "data", "count", "false")


@cache
def _summary_elements(resource_type: str) -> frozenset[str]:
    return frozenset(json.loads((TABLES / "summary.json").read_text()).get(resource_type, ()))


@cache
def _mandatory(resource_type: str) -> frozenset[str]:
    paths = json.loads((TABLES / "constraints.json").read_text())["mandatory"].get(resource_type, ())
    return frozenset(p.split(".")[1] for p in paths if p.count(".") == 1)


def _element_name(key: str, names: frozenset[str]) -> bool:
    """Whether JSON ``key`` is one of ``names`` (``_x`` siblings and choices ``value[x]`` included)."""
    key = key.lstrip("_")
    if key in names:
        return True
    return any(n.endswith("[x]") and key.startswith(n[:-3]) and key[len(n) - 3:len(n) - 2].isupper()
               for n in names)


def _tagged(resource: dict) -> dict:
    meta = dict(resource.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    return {**resource, "meta": meta}


def _keep(resource: dict, names: frozenset[str]) -> dict:
    kept = {k: v for k, v in resource.items() if k in ("resourceType", "id", "meta") or _element_name(k, names)}
    return _tagged(kept)


def requested(summary: str | None, elements: str | None) -> bool:
    if summary is not None and summary not in SUMMARY_MODES:
        raise FhirError(400, "invalid", f"_summary '{summary}' is not one of {', '.join(SUMMARY_MODES)}")
    return summary in ("true", "text", "data") or bool(elements)


def subset(record: Record, summary: str | None, elements: str | None) -> dict:
    """The resource of ``record`` cut down as asked."""
    resource = fjson.loads(record.body)
    mandatory = _mandatory(record.type)
    if summary == "true":
        return _keep(resource, _summary_elements(record.type) | mandatory)
    if summary == "text":
        return _keep(resource, frozenset({"text"}) | mandatory)
    if summary == "data":
        return _tagged({k: v for k, v in resource.items() if k != "text"})
    names = frozenset(e.strip() for e in (elements or "").split(",") if e.strip())
    return _keep(resource, names | mandatory)
