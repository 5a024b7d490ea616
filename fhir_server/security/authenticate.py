"""The HTTP door's authentication: a bearer token (or, with auth off, nobody) to an Access.

Verifying a signature costs 50-80 µs, more than serving a read, so a verified token is
remembered until it expires (bounded; keyed by the whole token, so a changed byte is a new
token), and so is the Access of a patient or system client. The Access of a representative or a
professional (store lookups: whom they represent, their roles) is remembered briefly, and
forgotten as soon as this process writes a RelatedPerson or PractitionerRole.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.security.access import INTERNAL, generation
from fhir_server.security.devkeys import dev_private_key
from fhir_server.security.policy import Access
from fhir_server.security.tokens import PURPOSES, Principal, TokenError, TokenVerifier, load_keys

log = logging.getLogger("mes")
#: The core's turning of a verified principal into an Access (``Repository.resolve_access``).
Resolve = Callable[[Principal, str | None, str | None], Access]
CACHE_SIZE = 10_000
#: Principals whose Access needs no store lookup (a patient's compartment is their own id; a system
#: client's rights are its scopes): their Access is reused until the token expires.
SELF_CONTAINED = frozenset({"patient", "system"})
#: A representative's or professional's Access (whom they represent, their roles) is reused for at
#: most this long, and not at all once this process writes a RelatedPerson or PractitionerRole:
#: within the process a change counts at once; another process on the same data within seconds.
RESOLVED_TTL_S = 2.0
REALM = 'Bearer realm="mes"'


def unauthorized(description: str, error: str | None = "invalid_token") -> FhirError:
    challenge = REALM + (f', error="{error}", error_description="{description}"' if error else "")
    return FhirError(401, "login", description, headers={"WWW-Authenticate": challenge})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(settings: Settings) -> None:
    """Refuse the unsafe combinations at start-up, rather than serving data openly."""
    if settings.auth not in ("on", "off"):
        raise ValueError(f"MES_AUTH must be 'on' or 'off', not {settings.auth!r}")
    if not is_loopback(settings.host):
        if settings.auth == "off":
            raise ValueError(f"Authentication may only be turned off on a loopback host, not on {settings.host}")
        if settings.auth_hs256_secret:
            raise ValueError(f"HS256 development tokens are refused on a non-loopback host ({settings.host})")
    if settings.auth == "off":
        log.warning("AUTHENTICATION IS OFF: every request acts with full access. Development only.")


class Authenticator:
    """Bearer tokens checked against the configured keys and the data directory's development key."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth == "on"
        self._verifier = _verifier(settings) if self.enabled else None
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._accesses: dict[tuple, tuple[Access, float, int]] = {}

    def access(self, resolve: Resolve, authorization: str | None, mode: str | None, reason: str | None) -> Access:
        """The Access of a request, from its ``Authorization``, ``X-Access-Mode`` and ``X-Access-Reason``."""
        if not self.enabled:
            return INTERNAL
        if not authorization:
            raise unauthorized("A bearer token is required", error=None)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("The Authorization header must be 'Bearer <token>'", error="invalid_request")
        key = (token, mode, reason)
        known = self._accesses.get(key)
        now = time.time()
        if known is not None and known[1] > now and known[2] == generation():
            return known[0]
        principal, expires = self._principal(token.strip())
        if mode is not None and mode not in PURPOSES:
            raise FhirError(400, "invalid", f"X-Access-Mode must be one of {', '.join(sorted(PURPOSES))}")
        current = generation()
        access = resolve(principal, mode, unquote(reason) if reason else None)
        if principal.kind not in SELF_CONTAINED:
            expires = min(expires, now + RESOLVED_TTL_S)
        _remember(self._accesses, key, (access, expires, current))
        return access

    def _principal(self, token: str) -> tuple[Principal, float]:
        known = self._cache.get(token)
        if known is not None and known[1] > time.time():
            return known
        try:
            verified = self._verifier.verify_with_expiry(token)
        except TokenError as error:
            raise unauthorized(str(error)) from None
        _remember(self._cache, token, verified)
        return verified


def _remember(cache: dict, key, value) -> None:
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[key] = value


def _verifier(settings: Settings) -> TokenVerifier:
    keys = load_keys([Path(p) for p in settings.auth_keys.split(os.pathsep) if p.strip()],
                     Path(settings.auth_jwks) if settings.auth_jwks else None)
    keys.append(dev_private_key(Path(settings.data_dir)).public_key())  # `mes token` signs with it
    audiences = settings.auth_audience.split() or [settings.fhir_base]
    return TokenVerifier(keys, audiences, issuer=settings.auth_issuer or None,
                         hs256_secret=settings.auth_hs256_secret or None)
