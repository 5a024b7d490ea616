"""Reference search values (R4 search.html#reference): what a reference points at, and query values.

A reference is indexed by what it points at, not by how it was written, so that ``Patient/123``,
``123`` with ``:Patient`` and ``https://our-server/fhir/Patient/123`` all find the same resources:
absolute URLs on our own base (``local_base``) are made relative. References elsewhere keep the
whole URL in ``url`` (searched by equality), with type and id also parsed from the last path
segments for ``:[type]``. ``urn:uuid:`` / ``urn:oid:`` references (resolved inside a Bundle) only
have a ``url``. Canonicals (plain strings) keep ``url`` with the ``|version`` split off.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from fhir_server.core.errors import FhirError

_TYPE = r"[A-Z][A-Za-z]{0,63}"
_ID = r"[A-Za-z0-9\-.]{1,64}"
_RELATIVE = re.compile(rf"(?P<type>{_TYPE})/(?P<id>{_ID})(?:/_history/(?P<version>{_ID}))?")
#: Type/id[/_history/v] at the end of an absolute URL's path.
_URL_TAIL = re.compile(rf"/(?P<type>{_TYPE})/(?P<id>{_ID})(?:/_history/(?P<version>{_ID}))?$")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_ID_ONLY = re.compile(_ID)
_TYPE_ONLY = re.compile(_TYPE)


@dataclass(frozen=True)
class Ref:
    """One indexed reference: local ones have type and id (url None); foreign ones keep ``url``."""

    type: str | None
    id: str | None
    version: str | None
    url: str | None


@dataclass(frozen=True)
class RefQuery:
    type: str | None
    id: str | None
    version: str | None
    url: str | None


def _local(text: str, local_base: str | None) -> str | None:
    """``text`` made relative when it is an absolute URL on our own base, else None."""
    if not local_base:
        return None
    prefix = local_base.rstrip("/") + "/"
    return text[len(prefix):] if text.startswith(prefix) else None


def _type_from(reference_type: str | None) -> str | None:
    """Reference.type is a uri: ``Patient`` or ``http://hl7.org/fhir/StructureDefinition/Patient``."""
    if not isinstance(reference_type, str):
        return None
    name = reference_type.rsplit("/", 1)[-1]
    return name if _TYPE_ONLY.fullmatch(name) else None


def _literal(text: str, declared_type: str | None, local_base: str | None) -> Ref:
    """A (non-contained) Reference.reference string as an index entry."""
    relative = _local(text, local_base)
    if relative is None and not _ABSOLUTE.match(text):
        relative = text
    if relative is not None:
        match = _RELATIVE.fullmatch(relative)
        if match:
            return Ref(match["type"], match["id"], match["version"], None)
        return Ref(declared_type, None, None, text)  # e.g. a logical URL we cannot parse: equality only
    tail = _URL_TAIL.search(text.split("?", 1)[0].split("#", 1)[0])
    if tail:
        return Ref(tail["type"], tail["id"], tail["version"], text)
    return Ref(declared_type, None, None, text)


def _split_version(canonical: str) -> tuple[str, str | None]:
    url, _, version = canonical.partition("|")
    return url, version or None


def references(value, resource_type_of_contained: Callable[[str], str | None] | None = None,
               local_base: str | None = None) -> list[Ref]:
    """The references one value contributes: a Reference dict or a canonical string.

    A contained reference (``#x``) has no id to search by; it is skipped unless
    ``resource_type_of_contained`` can name the type of contained resource ``x``, in which case it
    yields ``Ref(type, None, None, "#x")`` so that type-only conditions still see it.
    """
    if isinstance(value, str):
        url, version = _split_version(value)
        return [Ref(None, None, version, url)] if url else []
    if not isinstance(value, dict):
        return []
    text = value.get("reference")
    if not isinstance(text, str) or not text:
        return []
    if text.startswith("#"):
        kind = resource_type_of_contained(text[1:]) if resource_type_of_contained and len(text) > 1 else None
        return [Ref(kind, None, None, text)] if kind else []
    return [_literal(text, _type_from(value.get("type")), local_base)]


def reference_identifiers(value) -> list[tuple[str | None, str]]:
    """(system, value) of ``Reference.identifier``, for ``:identifier`` (a token search)."""
    if not isinstance(value, dict):
        return []
    ident = value.get("identifier")
    if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
        return []
    return [(ident.get("system"), ident["value"])]


def parse_reference(raw: str, modifier_type: str | None, local_base: str | None) -> RefQuery:
    """One query value: ``123`` (any type, or ``modifier_type`` from ``:Patient``), ``Patient/123``,
    ``Patient/123/_history/2``, an absolute URL (made relative on our own base) or a canonical
    ``url|version``."""
    if modifier_type is not None and not _TYPE_ONLY.fullmatch(modifier_type):
        raise FhirError(400, "invalid", f"':{modifier_type}' is not a resource type")
    if not raw:
        raise FhirError(400, "invalid", "Empty reference value")
    relative = _local(raw, local_base)
    if relative is None and _ABSOLUTE.match(raw):
        url, version = _split_version(raw)
        return RefQuery(modifier_type, None, version, url)
    text = raw if relative is None else relative
    if _ID_ONLY.fullmatch(text):
        return RefQuery(modifier_type, text, None, None)
    match = _RELATIVE.fullmatch(text)
    if not match:
        raise FhirError(400, "invalid", f"'{raw}' is not a reference: expected id, Type/id or a URL")
    if modifier_type and match["type"] != modifier_type:
        raise FhirError(400, "invalid", f"'{raw}' contradicts the ':{modifier_type}' modifier")
    return RefQuery(match["type"], match["id"], match["version"], None)
