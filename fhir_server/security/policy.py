"""Who may see and do what (docs/security.md): scopes, visibility and write rules, for every door.

Visibility is a list of store clauses added to every query a principal makes — searches, counts,
``_include``/``_revinclude``, the inside of chains and ``_has``, reads and history — so a hidden
resource is absent everywhere by construction, decided by the same indexes the search uses.
Writes are checked on the resource itself, inside the unit of work that writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from fhir_server.core.errors import FhirError
from fhir_server.french.visibility import (
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    TRE_A07_SYSTEMS,
)
from fhir_server.search.compartment import compartment_clause, compartment_params
from fhir_server.search.conditions import Compare, all_of
from fhir_server.search.registry import params_for
from fhir_server.security.scopes import Scope, allows
from fhir_server.security.tokens import Principal
from fhir_server.store.query import Chain, Clause, Either, Has, IdIn, Match, Negate

#: Directory data (who the professionals and organisations are): not patient data.
DIRECTORY_TYPES = frozenset({"Practitioner", "PractitionerRole", "Organization"})
#: Patient data a professional reaches through the DMP rules (open space, not blocked, not masked).
DMP_TYPES = frozenset({"Patient", "DocumentReference", "List", "Provenance"})
#: Patient data a professional reaches only as a participant (their messages, their appointments).
PARTICIPANT_PARAMS = {"Communication": ("sender", "recipient"), "Appointment": ("actor",)}
#: What SMART scope contexts each kind of principal may use.
CONTEXTS = {"patient": ("patient", "user"), "related": ("patient", "user"), "practitioner": ("user",),
            "system": ("system",)}
ACCESS_MODES_WITH_REASON = frozenset({"bris_de_glace", "centre_15"})
NOTHING: tuple[Clause, ...] = (IdIn(()),)


@dataclass(frozen=True)
class Viewer:
    """What visibility depends on: a small value, cheap to hash, so the rules are built once per viewer."""

    kind: str
    patients: tuple[str, ...]
    actors: tuple[str, ...]
    unrestricted: bool


@dataclass(frozen=True)
class Access:
    """Who acts in one request (or one message on another door), resolved against the store.

    ``patients``: the compartments a patient or legal representative acts in (their own, their
    children's). ``actors``: the references that stand for a professional (``Practitioner/…``,
    their ``PractitionerRole/…`` and ``Organization/…``) — authorship and blocks name any of them.
    """

    principal: Principal
    purpose: str = "normal"
    reason: str | None = None
    patients: tuple[str, ...] = ()
    actors: tuple[str, ...] = field(default=())
    unrestricted: bool = False  # internal work and `MES_AUTH=off`: no scope or visibility rule applies
    #: Decisions and values derived from this Access, kept while it is reused (an Access lives as
    #: long as its token for principals whose rights need no store lookup).
    memo: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def kind(self) -> str:
        return self.principal.kind

    @property
    def viewer(self) -> Viewer:
        viewer = self.memo.get("viewer")
        if viewer is None:
            viewer = self.memo["viewer"] = Viewer(self.principal.kind, self.patients, self.actors, self.unrestricted)
        return viewer


def denied(message: str) -> FhirError:
    return FhirError(403, "forbidden", message)


# -- scopes ------------------------------------------------------------------------------------

def require(access: Access, permission: str, resource_type: str) -> None:
    """403 unless a scope of a context this principal may use grants ``permission`` on the type."""
    if access.unrestricted:
        return
    key = ("require", permission, resource_type)
    refusal = access.memo[key] if key in access.memo else access.memo.setdefault(
        key, _refusal(access, permission, resource_type))
    if refusal is not None:
        raise denied(refusal)


def _may_search(access: Access, resource_type: str) -> bool:
    try:
        require(access, "s", resource_type)
    except FhirError:
        return False
    return True


def _refusal(access: Access, permission: str, resource_type: str) -> str | None:
    if access.purpose in ACCESS_MODES_WITH_REASON and not access.reason:
        return f"Access mode {access.purpose} needs a stated reason (X-Access-Reason header or token claim)"
    scopes: tuple[Scope, ...] = access.principal.scopes
    if not any(allows(scopes, context, resource_type, permission) for context in CONTEXTS[access.kind]):
        return f"The token's scopes do not allow '{permission}' on {resource_type}"
    return None


# -- visibility --------------------------------------------------------------------------------

def visibility(access: Access, resource_type: str) -> tuple[Clause, ...]:
    """Clauses selecting the resources of ``resource_type`` this principal may see."""
    return _visibility(access.viewer, resource_type)


@lru_cache(maxsize=4096)
def _visibility(viewer: Viewer, resource_type: str) -> tuple[Clause, ...]:
    if viewer.unrestricted or viewer.kind == "system" or resource_type in DIRECTORY_TYPES:
        return ()
    if viewer.kind in ("patient", "related"):
        return _own_record(viewer, resource_type)
    return _professional(viewer, resource_type)


def can_see(access: Access, record, satisfies: Callable[[str, str, tuple[Clause, ...]], bool]) -> bool:
    """Whether ``access`` may see ``record`` now, asked through ``satisfies`` (a store's or a unit's).

    A deleted resource has no index entries left to judge by: only unrestricted or system
    principals learn that it existed (410); the others get 404.
    """
    clauses = visibility(access, record.type)
    if not clauses:
        return True
    return not record.deleted and satisfies(record.type, record.id, clauses)


def restrict(access: Access, resource_type: str, clauses: list[Clause]) -> list[Clause]:
    """A query's clauses with visibility added at every level: chains and ``_has`` see no more."""
    if access.unrestricted:
        return list(clauses)
    return [*(_nested(access, c) for c in clauses), *visibility(access, resource_type)]


def _nested(access: Access, clause: Clause) -> Clause:
    """Visibility at every level of a chain or ``_has``, and the scope to search each type it crosses
    (a type one may not search must not answer questions through another's search)."""
    if isinstance(clause, Chain):
        inner = restrict(access, clause.target_type, clause.clauses) if _may_search(access, clause.target_type) \
            else list(NOTHING)
        return Chain(clause.param, clause.target_type, tuple(inner))
    if isinstance(clause, Has):
        inner = restrict(access, clause.source_type, clause.clauses) if _may_search(access, clause.source_type) \
            else list(NOTHING)
        return Has(clause.source_type, clause.param, tuple(inner))
    if isinstance(clause, Negate):
        return Negate(_nested(access, clause.clause))
    if isinstance(clause, Either):
        return Either(tuple(_nested(access, c) for c in clause.clauses))
    return clause


def _own_record(viewer: Viewer, resource_type: str) -> tuple[Clause, ...]:
    """A patient's compartment (a representative's: the children's), minus what is hidden from them."""
    hidden = {INVISIBLE_PATIENT} | ({INVISIBLE_REPRESENTANTS_LEGAUX} if viewer.kind == "related" else set())
    if resource_type == "Binary":
        return (_binary_of(viewer),)
    inside = compartment_clause("Patient", viewer.patients, resource_type)
    return inside, Negate(labelled(resource_type, hidden))


def _professional(viewer: Viewer, resource_type: str) -> tuple[Clause, ...]:
    """DMP data of open spaces that have not blocked them (masked documents: their own only);
    messages and appointments they take part in."""
    if resource_type in PARTICIPANT_PARAMS:
        return (_refers_to(PARTICIPANT_PARAMS[resource_type], viewer.actors),)
    if resource_type == "Binary":
        return (_binary_of(viewer),)
    if resource_type not in DMP_TYPES:
        return NOTHING  # Consent and AuditEvent are the patient's own business
    reachable = reachable_patient(viewer)
    if resource_type == "Patient":
        return reachable
    via = [Chain(p, "Patient", reachable) for p in compartment_params(resource_type)]
    clauses: list[Clause] = [via[0] if len(via) == 1 else Either(tuple(via))]
    masked = labelled(resource_type, {MASQUE_PS})
    author = _refers_to(("author",), viewer.actors) if "author" in params_for(resource_type) else None
    clauses.append(Either((Negate(masked), author)) if author else Negate(masked))
    return tuple(clauses)


def reachable_patient(viewer: Viewer) -> tuple[Clause, ...]:
    """On a Patient: the space is open and has no active block naming one of the professional's actors."""
    return (Negate(Match("date", "space-closed")), Negate(Has("Consent", "patient", blocks(viewer.actors))))


def blocks(actors: tuple[str, ...]) -> tuple[Clause, ...]:
    """On a Consent: an active denial naming one of ``actors``."""
    return (Match("token", "status", Compare("code", "=", "active")),
            Match("token", "provision-type", Compare("code", "=", "deny")),
            _refers_to(("actor",), actors))


def _binary_of(viewer: Viewer) -> Clause:
    """A Binary is visible with what its ``securityContext`` points to: a visible document or message,
    or (for the patient) the patient themself. Without a security context: system clients only."""
    via = [Chain("securitycontext", t, _visibility(viewer, t)) for t in ("DocumentReference", "Communication")]
    if viewer.kind in ("patient", "related"):
        via.append(_refers_to(("securitycontext",), tuple(f"Patient/{p}" for p in viewer.patients)))
    return Either(tuple(via))


def labelled(resource_type: str, codes: set[str]) -> Clause:
    """The resource carries one of these TRE_A07 visibility codes (``securityLabel`` or ``meta.security``)."""
    cond = all_of(Compare("system", "in", TRE_A07_SYSTEMS), Compare("code", "in", tuple(sorted(codes))))
    params = [p for p in ("security-label", "_security") if p in params_for(resource_type)]
    matches = tuple(Match("token", p, cond) for p in params)
    if not matches:
        return IdIn(())  # the type carries no searchable labels (AuditEvent): nothing is labelled
    return matches[0] if len(matches) == 1 else Either(matches)


def _refers_to(params: tuple[str, ...], references: tuple[str, ...]) -> Clause:
    """One of ``params`` references one of ``references`` ("Type/id")."""
    if not references:
        return IdIn(())
    options = []
    for reference in references:
        target_type, _, target_id = reference.partition("/")
        points = all_of(Compare("target_type", "=", target_type), Compare("target_id", "=", target_id))
        options += [Match("reference", p, points) for p in params]
    return options[0] if len(options) == 1 else Either(tuple(options))
