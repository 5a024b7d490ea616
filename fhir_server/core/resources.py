"""Small facts about resources shared by every layer: supported types, ids, timestamps, meta."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import UTC, datetime

from fhir_server.config import SUPPORTED_TYPES
from fhir_server.core.errors import FhirError

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_SUPPORTED = frozenset(SUPPORTED_TYPES)


def check_type(resource_type: str) -> str:
    """The type itself when served here; any other type is a 404 (R4 http.html)."""
    if resource_type not in _SUPPORTED:
        raise FhirError(404, "not-supported", f"Resource type '{resource_type}' is not supported by this server")
    return resource_type


def check_id(resource_id: str) -> str:
    if not ID_PATTERN.fullmatch(resource_id):
        raise FhirError(400, "invalid", f"'{resource_id[:80]}' is not a valid resource id (1-64 of A-Z a-z 0-9 - .)")
    return resource_id


def new_id() -> str:
    """A UUID with the version-7 layout: 48 bits of milliseconds first, then random bits.

    Ids that grow with time land at the right edge of the store's B-trees, so a transaction of
    new resources touches few pages instead of one random page per index per resource.
    """
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | (0x7 << 76) | (secrets.randbits(12) << 64) | (0b10 << 62) \
        | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def now_instant() -> str:
    """UTC, fixed width, so stored instants order correctly as strings."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalise_instant(value: str) -> str:
    """A client date/dateTime/instant (any precision or offset) in the stored instant format."""
    text = value.strip()
    try:
        if len(text) == 4:
            moment = datetime(int(text), 1, 1, tzinfo=UTC)
        elif len(text) == 7:
            moment = datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise FhirError(400, "invalid", f"'{value}' is not a valid FHIR instant") from None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def etag(version: int) -> str:
    """The weak ETag of a version (R4 http.html#versioning)."""
    return f'W/"{version}"'


def counting_number(text: str) -> int | None:
    """A non-negative integer written in ASCII digits that SQLite can hold (``str.isdigit`` also
    accepts "²" and any length); None otherwise."""
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


def etag_version(raw: str | None, label: str = "If-Match") -> int | None:
    """The version number in an ETag such as ``W/"3"`` (or ``3``); None when absent."""
    if raw is None:
        return None
    version = counting_number(raw.strip().removeprefix("W/").strip('"'))
    if version is None:
        raise FhirError(400, "invalid", f"{label} '{raw}' is not an ETag like W/\"3\"", [label])
    return version


def with_meta(resource: dict, resource_id: str, version: int, last_updated: str) -> dict:
    """The resource as stored: resourceType, id, meta first; server-owned meta fields replaced."""
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    out = {"resourceType": resource["resourceType"], "id": resource_id,
           "meta": {"versionId": str(version), "lastUpdated": last_updated, **meta}}
    out.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "meta"))
    return out
