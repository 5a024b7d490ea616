"""The system client the MSSanté bridge acts as, in the SMTP door and in the outbox courier's
process alike: one client id (``MES_SMTP_CLIENT_ID``) and the scopes its work needs."""

from __future__ import annotations

from fhir_server.config import Settings
from fhir_server.security.scopes import parse_scopes
from fhir_server.security.tokens import Principal

SCOPES = ("system/Patient.rs system/Communication.cruds system/Binary.cr system/DocumentReference.crus "
          "system/Practitioner.crus system/PractitionerRole.rs system/Organization.crs")


def bridge_principal(settings: Settings) -> Principal:
    return Principal("system", None, settings.smtp_client_id, settings.smtp_client_id, parse_scopes(SCOPES))
