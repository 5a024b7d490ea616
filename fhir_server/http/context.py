"""What a handler needs from the application: the repository and the settings."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.repository import Repository


def repo(request: Request) -> Repository:
    return request.app.state.repository


def settings(request: Request) -> Settings:
    return request.app.state.settings


def base_url(request: Request) -> str:
    return settings(request).fhir_base


def if_match_version(request: Request) -> int | None:
    """The version in an ``If-Match: W/"n"`` header, or None."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise FhirError(400, "invalid", f"If-Match '{header}' is not an ETag like W/\"3\"")
    return int(text)
