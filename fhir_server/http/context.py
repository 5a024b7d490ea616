"""What a handler needs from the application: the repository and the settings."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.config import Settings
from fhir_server.core.repository import Repository
from fhir_server.core.resources import etag_version


def repo(request: Request) -> Repository:
    """The repository acting as the request's authenticated principal, tracing its accesses (both
    set by the app for every non-public path: a handler reached without them fails rather than
    serve data unchecked)."""
    return request.app.state.repository.acting_as(request.scope["mes.access"], request.scope["mes.audit"])


def settings(request: Request) -> Settings:
    return request.app.state.settings


def base_url(request: Request) -> str:
    return settings(request).fhir_base


def header(request: Request, name: str) -> str | None:
    """A request header by lower-case name; the headers are read into a dict once per request."""
    scope = request.scope
    headers = scope.get("mes.headers")
    if headers is None:
        headers = {}
        for key, value in scope["headers"]:
            text = value.decode("latin-1")
            name_ = key.decode("latin-1")
            headers[name_] = f"{headers[name_]}, {text}" if name_ in headers else text
        scope["mes.headers"] = headers
    return headers.get(name)


def query_param(request: Request, name: str) -> str | None:
    """One query parameter; free when the URL has no query string (the common read)."""
    if not request.scope["query_string"]:
        return None
    return request.query_params.get(name)


def if_match_version(request: Request) -> int | None:
    """The version in an ``If-Match: W/"n"`` header, or None."""
    return etag_version(header(request, "if-match"))
