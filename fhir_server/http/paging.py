"""``_count`` handling shared by search and history."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.core.errors import FhirError
from fhir_server.http.context import query_param, settings


def page_size(request: Request) -> int:
    """``_count`` capped at the configured maximum (R4: the server may return fewer)."""
    raw = query_param(request, "_count")
    if raw is None:
        return settings(request).default_count
    if not raw.isdigit():
        raise FhirError(400, "invalid", f"_count '{raw}' is not a non-negative integer", ["_count"])
    return min(int(raw), settings(request).max_count)


def non_negative(request: Request, name: str) -> int | None:
    raw = query_param(request, name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise FhirError(400, "invalid", f"{name} '{raw}' is not a non-negative integer", [name])
    return int(raw)
