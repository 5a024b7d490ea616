"""The ASGI application: the FHIR REST routes, error mapping and the store's lifecycle.

A plain ASGI callable rather than a framework app: the routes are few and fixed, and every
layer removed is time saved on each read. Starlette's Request is still used for bodies and forms.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.repository import Repository
from fhir_server.dmp.ingest import check_cda_settings
from fhir_server.http import bundle, file_document, history, import_cda, metadata, read, search, write
from fhir_server.http.context import header
from fhir_server.http.responses import render_error
from fhir_server.http.router import Handler, Router
from fhir_server.inbox.door import MssanteDoor, check_smtp_settings
from fhir_server.search.registry import warm_up
from fhir_server.security.audit import AuditRecorder, AuditTrail
from fhir_server.security.authenticate import Authenticator, check_settings
from fhir_server.security.unauthenticated import refused_before_authentication
from fhir_server.store import open_store
from fhir_server.store.base import QueryTooComplex
from fhir_server.v2gateway.door import MllpDoor, check_mllp_settings

log = logging.getLogger("mes")
Message = dict[str, Any]
#: Paths answered without a token: they hold no patient data.
PUBLIC_PATHS = frozenset({"/fhir/metadata"})


def needs_criteria(handler: Handler) -> Handler:
    """``PUT/DELETE/PATCH [type]?criteria`` are conditional interactions; without criteria they are not allowed."""

    async def dispatch(request: Request):
        if not request.url.query:
            raise FhirError(405, "not-supported", f"{request.method} on a resource type needs search criteria")
        return await handler(request)

    return dispatch


def fhir_routes() -> Router:
    router = Router()
    router.add("/fhir", GET=search.system_search, POST=bundle.transaction_or_batch)
    router.add("/fhir/metadata", GET=metadata.metadata)
    router.add("/fhir/_history", GET=history.history)
    router.add("/fhir/{type}", GET=search.search_get, POST=write.create,
               PUT=needs_criteria(write.conditional_update), DELETE=needs_criteria(write.conditional_delete),
               PATCH=needs_criteria(write.conditional_patch))
    router.add("/fhir/{type}/_history", GET=history.history)
    router.add("/fhir/{type}/_search", POST=search.search_post)
    router.add("/fhir/DocumentReference/$import-cda", POST=import_cda.import_cda)
    router.add("/fhir/{type}/{id}", GET=read.read, PUT=write.update, DELETE=write.delete, PATCH=write.patch)
    router.add("/fhir/Communication/{id}/$file-document", POST=file_document.file_document)
    router.add("/fhir/{type}/{id}/_history", GET=history.history)
    router.add("/fhir/{compartment}/{cid}/{type}", GET=search.compartment_search)
    router.add("/fhir/{type}/{id}/_history/{vid}", GET=read.vread)
    return router


class FhirApp:
    """ASGI app; ``on_start`` runs once the store is open (e.g. to load the demo data)."""

    def __init__(self, settings: Settings, on_start: Callable[[Repository], None] | None = None) -> None:
        check_settings(settings)
        check_cda_settings(settings)
        check_mllp_settings(settings)
        check_smtp_settings(settings)
        self.state = SimpleNamespace(settings=settings, repository=None, authenticator=None, audit=None, mllp=None,
                                     smtp=None)
        self._on_start = on_start
        self._router = fhir_routes()

    async def __call__(self, scope: Message, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Message, receive, send) -> None:
        scope["app"] = self
        request = Request(scope, receive)
        recorder = None
        try:
            if scope["path"] not in PUBLIC_PATHS:
                try:
                    access = self.state.authenticator.access(
                        self.state.repository.resolve_access, header(request, "authorization"),
                        header(request, "x-access-mode"), header(request, "x-access-reason"))
                except FhirError as error:
                    if error.status == 401:
                        recorder = self._unauthenticated(scope, error)
                    raise
                scope["mes.access"] = access
                if self.state.authenticator.enabled:  # auth off: nobody to trace (development only)
                    recorder = AuditRecorder(access, (scope.get("client") or (None,))[0])
                scope["mes.audit"] = recorder
            handler, scope["path_params"] = self._router.resolve(scope["method"], scope["path"])
            response = await handler(request)
        except FhirError as error:
            response = render_error(request, error)
        except QueryTooComplex as error:
            response = render_error(request, FhirError(400, "too-costly", str(error)))
        except Exception as error:  # a bug: answer with an OperationOutcome, keep serving
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            response = render_error(request, FhirError(500, "exception", f"Internal error: {type(error).__name__}"))
        if recorder is not None and recorder.traces:  # answer only once the traces are durable
            try:
                await self.state.audit.record(recorder)
            except Exception:
                log.exception("access traces not written for %s %s", scope["method"], scope["path"])
                response = render_error(request, FhirError(503, "transient", "Access traces could not be written"))
        await response(scope, receive, send)

    def _unauthenticated(self, scope: Message, error: FhirError) -> AuditRecorder | None:
        """The trace of a request refused for want of a valid token (none for an unknown route)."""
        try:
            _, params = self._router.resolve(scope["method"], scope["path"])
        except FhirError:
            return None
        return refused_before_authentication(self.state.repository, scope["method"], params,
                                             (scope.get("client") or (None,))[0], error.issues[0].diagnostics)

    def _open(self) -> None:
        warm_up()
        self.state.authenticator = Authenticator(self.state.settings)
        self.state.repository = Repository(open_store(self.state.settings), self.state.settings.fhir_base)
        self.state.audit = AuditTrail(self.state.repository.store)
        if self._on_start is not None:
            self._on_start(self.state.repository)

    async def _open_doors(self) -> None:
        """The other doors of ``mes serve`` on the same loop, store and trail: MLLP (HL7 v2), SMTP (MSSanté)."""
        settings = self.state.settings
        if settings.mllp_port:
            self.state.mllp = MllpDoor(settings, self.state.repository, self.state.audit)
            await self.state.mllp.listener.start()
        if settings.smtp_port:
            self.state.smtp = MssanteDoor(settings, self.state.repository, self.state.audit)
            await self.state.smtp.start()

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._open()
                    await self._open_doors()
                except Exception as error:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.state.mllp is not None:
                    await self.state.mllp.listener.close()
                if self.state.smtp is not None:
                    await self.state.smtp.close()
                if self.state.audit is not None:
                    self.state.audit.close()
                if self.state.repository is not None:
                    self.state.repository.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings, on_start: Callable[[Repository], None] | None = None) -> FhirApp:
    return FhirApp(settings, on_start)
