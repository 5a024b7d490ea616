"""PDSm metadata update (Flux 03/04): once filed, a document changes by PATCH only in its
``status``, its ``securityLabel`` (masking, visibility) and the isArchived extension; a patch that
would change anything else is refused with 405, as PDSm says."""

from __future__ import annotations

from fhir_server.core.errors import FhirError

IS_ARCHIVED = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
MUTABLE = frozenset({"status", "securityLabel"})
SERVER_META = frozenset({"versionId", "lastUpdated", "security"})  # meta.security carries labels too


def check_metadata_update(before: dict, after: dict) -> None:
    """Refuse (405) a patched DocumentReference that differs from ``before`` elsewhere than allowed."""
    changed = sorted(k for k in set(before) | set(after)
                     if k not in MUTABLE | {"meta", "extension"} and before.get(k) != after.get(k))
    if _other_extensions(before) != _other_extensions(after):
        changed.append("extension")
    if _own_meta(before) != _own_meta(after):
        changed.append("meta")
    if changed:
        raise FhirError(405, "not-supported", "A DocumentReference's metadata change only in status, securityLabel"
                        f" and the isArchived extension (PDSm); this patch changes {', '.join(changed)}",
                        [f"DocumentReference.{name}" for name in changed])


def _other_extensions(resource: dict) -> list:
    return [e for e in resource.get("extension", []) if e.get("url") != IS_ARCHIVED]


def _own_meta(resource: dict) -> dict:
    return {k: v for k, v in (resource.get("meta") or {}).items() if k not in SERVER_META}
