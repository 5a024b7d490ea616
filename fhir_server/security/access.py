"""From a verified Principal to an Access: whose record a patient or representative acts in, and
which references stand for a professional, looked up in the store (the authenticator remembers
the result briefly, and forgets it when this process writes a RelatedPerson or PractitionerRole).
"""

from __future__ import annotations

from fhir_server.formats import json as fjson
from fhir_server.french.visibility import LEGAL_REPRESENTATIVE_CODES
from fhir_server.search.conditions import Compare, all_of
from fhir_server.search.extract import references_of
from fhir_server.security.policy import Access
from fhir_server.security.tokens import Principal
from fhir_server.store.base import Store
from fhir_server.store.query import Match

#: Resource types a representative's or a professional's Access is derived from: writing one
#: (``roles_changed``) invalidates every remembered Access of this process at once.
ROLE_TYPES = frozenset({"RelatedPerson", "PractitionerRole"})
_generation = 0


def roles_changed() -> None:
    global _generation
    _generation += 1


def generation() -> int:
    """Bumped whenever a RelatedPerson or PractitionerRole is written in this process."""
    return _generation


#: The principal of internal work (start-up data, benchmarks) and of a server run with auth off.
INTERNAL = Access(Principal("system", None, "mes", "mes", ()), unrestricted=True)
MAX_ROLES = 10_000  # far beyond any real professional: a cut would silently ignore blocks


def resolve_access(store: Store, principal: Principal, purpose: str | None = None,
                   reason: str | None = None, local_base: str | None = None) -> Access:
    """The Access of ``principal``; ``purpose`` / ``reason`` (request headers) override the token's."""
    purpose, reason = purpose or principal.purpose, reason or principal.reason
    kind, reference = principal.kind, principal.reference or ""
    resource_type, _, resource_id = reference.partition("/")
    if kind == "patient":
        return Access(principal, purpose, reason, patients=(resource_id,))
    if kind == "related":
        return Access(principal, purpose, reason, patients=_represented(store, resource_id, local_base))
    if kind == "practitioner":
        return Access(principal, purpose, reason, actors=_actors(store, resource_type, resource_id))
    return Access(principal, purpose, reason)


def _represented(store: Store, related_id: str, local_base: str | None) -> tuple[str, ...]:
    """The patient a RelatedPerson legally represents (guardian, parent, tuteur…), if still active."""
    record = store.read("RelatedPerson", related_id)
    if record is None or record.deleted:
        return ()
    related = fjson.loads(record.body)
    codes = {c.get("code") for concept in related.get("relationship", ()) for c in concept.get("coding", ())}
    if related.get("active") is False or not codes & LEGAL_REPRESENTATIVE_CODES:
        return ()
    patients = references_of(related, ("patient",), local_base)  # local references only, as the index reads them
    return tuple(sorted(ref.partition("/")[2] for ref in patients if ref.startswith("Patient/")))


def _actors(store: Store, resource_type: str, resource_id: str) -> tuple[str, ...]:
    """A professional as themself, their roles and the organisations of those roles."""
    if resource_type == "PractitionerRole":
        roles = [r for r in [store.read("PractitionerRole", resource_id)] if r is not None and not r.deleted]
    else:
        points = all_of(Compare("target_type", "=", "Practitioner"), Compare("target_id", "=", resource_id))
        roles = store.find("PractitionerRole", [Match("reference", "practitioner", points)], limit=MAX_ROLES)
    actors = [f"{resource_type}/{resource_id}"]
    for record in roles:
        role = fjson.loads(record.body)
        actors.append(f"PractitionerRole/{record.id}")
        for field in ("practitioner", "organization"):
            reference = (role.get(field) or {}).get("reference", "")
            if reference.count("/") == 1:
                actors.append(reference)
    return tuple(dict.fromkeys(actors))
