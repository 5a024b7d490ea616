"""Composite search values (R4 search.html#composite): ``[part]$[part]``, each part by its own type.

A composite is indexed as one row per element (``DocumentReference.relatesTo``) and combination of
its components' keys, so that both parts must match the same element. A key is one way a query
part may be written, spelled here for both sides (the index and the query) so they cannot drift:

* token: ``code`` (any system), ``system|code`` (``|code``: no system) and ``system|``; the code and
  system are escaped (``\\|``, ``\\\\``) so a bar inside a code cannot pass for the separator;
* reference, local (relative, or absolute on our base): ``id``, ``Type/id`` and, when the
  reference carries a version, ``Type/id/_history/v``; another server's: its URL only, as for a
  reference parameter (``[id]`` and ``[type]/[id]`` name local resources).

Other component types have no keys: such a composite matches nothing.
"""

from __future__ import annotations

import re

from fhir_server.core.errors import FhirError
from fhir_server.search.values import reference, token

_DOLLAR = re.compile(r"(?<!\\)((?:\\\\)*)\$")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def split_components(raw: str) -> list[str]:
    """Split a query value on unescaped ``$``; the parts keep their escapes (``\\|``, ``\\$``)."""
    parts, start = [], 0
    for match in _DOLLAR.finditer(raw):
        parts.append(raw[start:match.end(1)])
        start = match.end()
    parts.append(raw[start:])
    return parts


def index_keys(kind: str, value, local_base: str | None) -> list[str]:
    """The keys one component value of a resource is found by."""
    if kind == "token":
        keys = []
        for t in token.tokens(value):
            keys += [_escape(t.code), f"{_escape(t.system or '')}|{_escape(t.code)}"]
            keys += [f"{_escape(t.system)}|"] if t.system else []
        return keys
    if kind == "reference":
        keys = []
        for ref in reference.references(value, local_base=local_base):
            if ref.url is not None:
                keys.append(ref.url)
            elif ref.id is not None:
                keys += [ref.id, f"{ref.type}/{ref.id}"]
                keys += [f"{ref.type}/{ref.id}/_history/{ref.version}"] if ref.version else []
        return keys
    return []


def query_key(kind: str, raw: str, local_base: str | None) -> str:
    """The key one part of a query value names (``raw`` as written, escapes included)."""
    if kind == "token":
        q = token.parse_token(raw)
        if q.any_system:
            return _escape(q.code)
        if q.code is None:
            return f"{_escape(q.system)}|"
        return f"{_escape(q.system or '')}|{_escape(q.code)}"
    if kind == "reference":
        q = reference.parse_reference(raw, None, local_base)
        if q.id is None:
            return q.url if q.version is None else f"{q.url}|{q.version}"
        if q.version is not None:
            return f"{q.type}/{q.id}/_history/{q.version}"
        return f"{q.type}/{q.id}" if q.type else q.id
    raise FhirError(400, "not-supported", f"A composite with a {kind} component cannot be searched")
