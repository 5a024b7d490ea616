"""``_count`` and cursor parameters, shared by search, history and Bundle search entries."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.resources import counting_number
from fhir_server.http.context import query_param, settings


def count_value(raw: str | None, config: Settings) -> int:
    """``_count`` capped at the configured maximum (R4: the server may return fewer)."""
    if raw is None:
        return config.default_count
    return min(non_negative_value(raw, "_count"), config.max_count)


def non_negative_value(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    value = counting_number(raw)
    if value is None:
        raise FhirError(400, "invalid", f"{name} '{raw[:40]}' is not a non-negative integer", [name])
    return value


def page_size(request: Request) -> int:
    return count_value(query_param(request, "_count"), settings(request))


def non_negative(request: Request, name: str) -> int | None:
    return non_negative_value(query_param(request, name), name)
