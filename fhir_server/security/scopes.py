"""SMART on FHIR resource scopes (App Launch 2.x, "Scopes for requesting FHIR resources").

A scope is ``context/Type.perms``: context ``patient``, ``user`` or ``system``; ``Type`` a resource
type or ``*``; ``perms`` the v2 letters ``c`` create, ``r`` read (read, vread, instance history),
``u`` update (and patch), ``d`` delete, ``s`` search (and type / system history), a non-empty
subset written in the order ``cruds``. The v1 suffixes still work: ``.read`` = ``rs``,
``.write`` = ``cud``, ``.*`` = ``cruds``.

Whatever is not a well-formed resource scope grants nothing and is skipped, without failing the
token: identity and launch scopes (``openid``, ``fhirUser``, ``launch``, ``launch/patient``,
``offline_access``, ``online_access``), unknown or out-of-order letters (``.dus``, ``.sr``: the spec
lets a server ignore them, so that no other convention is misread, e.g. ``.read`` as ``.rd``),
unknown contexts, lower-case or malformed resource types.

A v2 scope with a query restriction (``patient/Observation.rs?category=…``) also grants NOTHING:
granular scopes are not supported here, and honouring the scope without its restriction would
widen access beyond what the patient or the authorization server granted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PERMISSIONS = "cruds"
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset(PERMISSIONS)}
_SCOPE = re.compile(r"(patient|user|system)/([A-Z][A-Za-z]{0,63}|\*)\.(c?r?u?d?s?|read|write|\*)")


@dataclass(frozen=True, slots=True)
class Scope:
    """One granted resource scope: which interactions on which type, in which context."""

    context: str
    resource_type: str
    permissions: frozenset[str]

    def grants(self, context: str, resource_type: str, permission: str) -> bool:
        return (self.context == context and self.resource_type in ("*", resource_type)
                and permission in self.permissions)


def parse_scope(text: str) -> Scope | None:
    """The resource scope ``text`` grants, or None when it grants nothing (see the module docstring)."""
    match = _SCOPE.fullmatch(text)
    if match is None or not match[3]:
        return None
    context, resource_type, perms = match.groups()
    return Scope(context, resource_type, _V1.get(perms) or frozenset(perms))


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """The resource scopes of a space-separated OAuth ``scope`` value, in order, without duplicates."""
    scopes = (parse_scope(part) for part in text.split())
    return tuple(dict.fromkeys(s for s in scopes if s is not None))


def allows(scopes: Iterable[Scope], context: str, resource_type: str, permission: str) -> bool:
    """Whether any scope grants ``permission`` (one letter of ``cruds``) on ``resource_type`` in ``context``."""
    if len(permission) != 1 or permission not in PERMISSIONS:
        raise ValueError(f"permission must be one of the letters {PERMISSIONS!r}, not {permission!r}")
    return any(s.grants(context, resource_type, permission) for s in scopes)
