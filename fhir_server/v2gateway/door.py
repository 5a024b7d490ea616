"""The MLLP door: the listener (``hl7v2/listener.py``) wired to the core.

It authenticates by network or client certificate (the listener) and acts as one configured
system client with limited scopes (``MES_MLLP_CLIENT_ID``, ``MES_MLLP_SCOPES``); every message's
writes and refusals are traced with the peer's address like any other door's, and the ACK leaves
only once those traces are durable.
"""

from __future__ import annotations

import logging

from fhir_server.config import Settings
from fhir_server.core.repository import Repository
from fhir_server.security.audit import AuditRecorder, AuditTrail
from fhir_server.security.scopes import parse_scopes
from fhir_server.security.tokens import Principal
from fhir_server.tls import server_context
from fhir_server.v2gateway.options import Options
from fhir_server.v2gateway.receive import receive
from hl7v2 import ack
from hl7v2.listener import ListenerSettings, MllpListener, networks

log = logging.getLogger("mes")


def check_mllp_settings(settings: Settings) -> None:
    """Refuse at start-up what would make the door unusable or open."""
    networks(settings.mllp_allowed_networks)
    if settings.mllp_validation not in ("off", "strict"):
        raise ValueError(f"MES_MLLP_VALIDATION must be 'off' or 'strict', not {settings.mllp_validation!r}")
    if bool(settings.mllp_tls_cert) != bool(settings.mllp_tls_key):
        raise ValueError("MES_MLLP_TLS_CERT and MES_MLLP_TLS_KEY go together")
    if settings.mllp_client_ca and not settings.mllp_tls_cert:
        raise ValueError("MES_MLLP_CLIENT_CA needs TLS: set MES_MLLP_TLS_CERT and MES_MLLP_TLS_KEY")
    parse_scopes(settings.mllp_scopes)


class MllpDoor:
    def __init__(self, settings: Settings, repository: Repository, audit: AuditTrail) -> None:
        check_mllp_settings(settings)
        principal = Principal("system", None, settings.mllp_client_id, settings.mllp_client_id,
                              parse_scopes(settings.mllp_scopes))
        self._access = repository.resolve_access(principal)
        self._repository = repository
        self._audit = audit
        self._options = Options.from_settings(settings)
        context = server_context(settings.mllp_tls_cert, settings.mllp_tls_key, settings.mllp_client_ca or None) \
            if settings.mllp_tls_cert else None
        self.listener = MllpListener(ListenerSettings(
            settings.mllp_host, settings.mllp_port, settings.mllp_max_message_bytes,
            networks(settings.mllp_allowed_networks), context, bool(settings.mllp_client_ca),
            settings.mllp_max_connections), self.handle)

    async def handle(self, data: bytes, peer: str) -> bytes:
        recorder = AuditRecorder(self._access, peer)
        answer = receive(self._repository.acting_as(self._access, recorder), data, self._options)
        try:
            await self._audit.record(recorder)
        except Exception:  # applied, but not traced: the sender is told to send again (applied once)
            log.exception("access traces of an HL7 v2 message not written")
            return ack.acknowledge(None, ack.ERROR, (ack.V2Problem(
                ack.INTERNAL_ERROR, "Access traces could not be written; send the message again",
                "Les traces d'accès n'ont pu être écrites ; renvoyez le message"),), echo=ack.readable_header(data))
        return answer
