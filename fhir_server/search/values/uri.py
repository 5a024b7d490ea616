"""URI search values (R4 search.html#uri): exact match, plus ``:below`` and ``:above`` on URL paths.

``:below`` and ``:above`` compare whole path segments, so ``http://acme.org/fhir`` is above
``http://acme.org/fhir/ValueSet/1`` but not above ``http://acme.org/fhirx``. Below is a prefix
condition on the stored value; above is turned into equality on the query's ancestors
(``uri_ancestors``), which any index can answer without scanning.
Canonical values ``url|version`` are indexed as written and without their version, so a query
for the bare URL finds every version.
"""

from __future__ import annotations

import re

from fhir_server.search.conditions import Compare, Cond, any_of

_URL = re.compile(r"(?P<authority>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)(?P<path>/[^?#]*)?")


def _versionless(uri: str) -> str:
    return uri.split("|", 1)[0]


def uri_values(value) -> list[str]:
    """What one value contributes: the string as written, and without ``|version`` when it has one."""
    if not isinstance(value, str) or not value:
        return []
    return list(dict.fromkeys([value, _versionless(value)]))


def uri_ancestors(uri: str) -> list[str]:
    """The (versionless) uri itself, then each path prefix down to the authority, each both without
    and with a trailing ``/``: ``http://a.org/fhir/x`` → ``http://a.org/fhir/x``, ``http://a.org/fhir/x/``,
    ``http://a.org/fhir``, ``http://a.org/fhir/``, ``http://a.org``, ``http://a.org/``.
    A URI without ``scheme://authority`` (``urn:...``) is its only ancestor."""
    uri = _versionless(uri)
    match = _URL.match(uri)
    if not match:
        return [uri]
    segments = [s for s in (match["path"] or "").split("/") if s]
    out = [uri]
    for n in range(len(segments), -1, -1):
        prefix = match["authority"] + "".join("/" + s for s in segments[:n])
        out += [prefix, prefix + "/"]
    return list(dict.fromkeys(out))


def is_below(stored: str, query: str) -> bool:
    """``stored`` is ``query`` or lies under it, on whole path segments."""
    base = _versionless(query).rstrip("/")
    return stored == base or stored.startswith(base + "/")


def below_condition(query: str, column: str = "uri") -> Cond:
    """``:below``: the stored uri is the query or starts with it plus ``/``."""
    base = _versionless(query).rstrip("/")
    return any_of(Compare(column, "=", base), Compare(column, "prefix", base + "/"))


def above_condition(query: str, column: str = "uri") -> Cond:
    """``:above``: the stored uri is one of the query's ancestors (or the query itself)."""
    return any_of(*(Compare(column, "=", a) for a in uri_ancestors(query)))
