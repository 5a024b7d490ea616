"""Path routing by segments: no regular expressions, literal segments before placeholders.

FHIR URLs are a handful of shapes (``/fhir/{type}/{id}/_history/{vid}`` and so on); matching
them segment by segment is cheaper than a regex per route, which matters on the read path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from fhir_server.core.errors import FhirError
from fhir_server.http.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


class Route:
    def __init__(self, pattern: str, handlers: dict[str, Handler]) -> None:
        self.segments = tuple(pattern.strip("/").split("/"))
        self.literals = [(i, s) for i, s in enumerate(self.segments) if not s.startswith("{")]
        self.names = [(i, s[1:-1]) for i, s in enumerate(self.segments) if s.startswith("{")]
        self.handlers = handlers

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """Path parameters when ``parts`` (of the same length) fit this route, else None."""
        for i, literal in self.literals:
            if parts[i] != literal:
                return None
        params = {name: parts[i] for i, name in self.names}
        return params if all(params.values()) else None


class Router:
    def __init__(self) -> None:
        self._by_length: dict[int, list[Route]] = {}

    def add(self, pattern: str, **handlers: Handler) -> None:
        """Register a path; routes added first win (put literal paths before placeholders)."""
        route = Route(pattern, handlers)
        self._by_length.setdefault(len(route.segments), []).append(route)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters; 404 for an unknown path, 405 for a wrong method."""
        parts = path.strip("/").split("/")
        for route in self._by_length.get(len(parts), ()):
            params = route.match(parts)
            if params is None:
                continue
            handler = route.handlers.get(method)
            if handler is None:
                allowed = ", ".join(route.handlers)
                raise FhirError(405, "not-supported", f"{method} is not allowed on {path} (allowed: {allowed})",
                                headers={"Allow": allowed})
            return handler, params
        raise FhirError(404, "not-found", f"No FHIR endpoint at {path}")
