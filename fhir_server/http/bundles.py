"""Bundles of stored versions (searchset, history) with the bodies embedded as stored bytes."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson

from fhir_server.store.base import Record


def resource_url(base: str, record: Record) -> str:
    return f"{base}/{record.type}/{record.id}"


def embedded(record: Record) -> orjson.Fragment:
    """The stored JSON placed into a Bundle without parsing it."""
    return orjson.Fragment(record.body)


def link(relation: str, url: str, params: list[tuple[str, str]]) -> dict:
    return {"relation": relation, "url": f"{url}?{urlencode(params)}" if params else url}


def bundle(bundle_type: str, entries: list[dict], links: list[dict], total: int | None = None) -> dict:
    out: dict = {"resourceType": "Bundle", "type": bundle_type}
    if total is not None:
        out["total"] = total
    if links:
        out["link"] = links
    if entries:
        out["entry"] = entries
    return out
