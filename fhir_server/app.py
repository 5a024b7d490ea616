"""The ASGI application: routes of the FHIR REST API, error mapping, store lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.repository import Repository
from fhir_server.http import bundle, history, metadata, read, search, write
from fhir_server.http.responses import render_error
from fhir_server.store import open_store

log = logging.getLogger("mes")
Handler = Callable[[Request], Awaitable[Response]]


def by_method(**handlers: Handler) -> Handler:
    """One path, one handler per HTTP method."""

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method](request)

    return dispatch


def needs_criteria(handler: Handler) -> Handler:
    """``PUT/DELETE [type]?criteria`` are conditional interactions; without criteria they are not allowed."""

    async def dispatch(request: Request) -> Response:
        if not request.url.query:
            raise FhirError(405, "not-supported", f"{request.method} on a resource type needs search criteria")
        return await handler(request)

    return dispatch


def routes() -> list[Route]:
    def route(path: str, **handlers: Handler) -> Route:
        return Route(path, by_method(**handlers), methods=list(handlers))

    return [
        route("/fhir/metadata", GET=metadata.metadata),
        route("/fhir", POST=bundle.transaction_or_batch),
        route("/fhir/", POST=bundle.transaction_or_batch),
        route("/fhir/_history", GET=history.history),
        route("/fhir/{type}/_history", GET=history.history),
        route("/fhir/{type}/_search", POST=search.search_post),
        route("/fhir/{type}/{id}/_history/{vid}", GET=read.vread),
        route("/fhir/{type}/{id}/_history", GET=history.history),
        route("/fhir/{type}/{id}", GET=read.read, PUT=write.update, DELETE=write.delete, PATCH=write.patch),
        route("/fhir/{type}", GET=search.search_get, POST=write.create, PUT=needs_criteria(write.conditional_update),
              DELETE=needs_criteria(write.conditional_delete)),
    ]


async def _fhir_error(request: Request, error: FhirError) -> Response:
    return render_error(request, error)


async def _http_error(request: Request, error: HTTPException) -> Response:
    code = {404: "not-found", 405: "not-supported"}.get(error.status_code, "processing")
    return render_error(request, FhirError(error.status_code, code, f"{request.method} {request.url.path}: "
                                                                    f"{error.detail}", headers=error.headers))


async def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return render_error(request, FhirError(500, "exception", f"Internal error: {type(error).__name__}"))


def create_app(settings: Settings, on_start: Callable[[Repository], None] | None = None) -> Starlette:
    """The ASGI app; ``on_start`` runs once the store is open (e.g. to load the demo data)."""

    @asynccontextmanager
    async def lifespan(app: Starlette):
        store = open_store(settings)
        app.state.repository = Repository(store)
        if on_start is not None:
            on_start(app.state.repository)
        try:
            yield
        finally:
            store.close()

    app = Starlette(routes=routes(), lifespan=lifespan, exception_handlers={
        FhirError: _fhir_error, HTTPException: _http_error, Exception: _unexpected})
    app.state.settings = settings
    return app
