"""URI search values (R4 search.html#uri): exact match, plus ``:below`` and ``:above`` on URL paths.

``:below`` and ``:above`` compare whole path segments, so ``http://acme.org/fhir`` is above
``http://acme.org/fhir/ValueSet/1`` but not above ``http://acme.org/fhirx``; they apply to URLs
(``scheme://authority…``): a URN is only above and below itself. Below is a prefix
condition on the stored value; above is turned into equality on the query's ancestors
(``uri_ancestors``), which any index can answer without scanning.
Canonical values ``url|version`` are indexed as written and without their version, so a query
for the bare URL finds every version.
"""

from __future__ import annotations

import re

from fhir_server.search.conditions import Compare, Cond, any_of

_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


def _versionless(uri: str) -> str:
    return uri.split("|", 1)[0]


def uri_values(value) -> list[str]:
    """What one value contributes: the string as written, and without ``|version`` when it has one."""
    if not isinstance(value, str) or not value:
        return []
    return list(dict.fromkeys([value, _versionless(value)]))


def uri_ancestors(uri: str) -> list[str]:
    """The (versionless) uri itself, then each prefix ending before a ``/`` after the authority, each
    both without and with the ``/``: ``http://a.org/fhir/x`` → ``http://a.org/fhir/x``,
    ``http://a.org/fhir/x/``, ``http://a.org/fhir``, ``http://a.org/fhir/``, ``http://a.org``,
    ``http://a.org/``. Segments are cut at ``/`` wherever it is, as ``:below`` cuts them, so that
    the two agree: ``http://a.org/p#f`` is above ``http://a.org/p#f/1`` (``http://a.org/p`` is not
    above ``http://a.org/p#f``). A URI without ``scheme://authority`` (``urn:...``) is its only ancestor."""
    uri = _versionless(uri)
    match = _AUTHORITY.match(uri)
    if not match:
        return [uri]
    base = uri.rstrip("/")
    cuts = [i for i in range(len(base) - 1, match.end() - 1, -1) if base[i] == "/"]
    out = [uri]
    for end in (len(base), *cuts):
        out += [base[:end], base[:end] + "/"]
    return list(dict.fromkeys(out))


def is_below(stored: str, query: str) -> bool:
    """``stored`` is ``query`` or lies under it, on whole path segments (a URN: is ``query``)."""
    if not _AUTHORITY.match(query):
        return stored == _versionless(query)
    base = _versionless(query).rstrip("/")
    return stored == base or stored.startswith(base + "/")


def below_condition(query: str, column: str = "uri") -> Cond:
    """``:below``: the stored uri is the query or starts with it plus ``/``. Only URLs have a
    hierarchy: below a URN (``urn:oid:…``, which has no ``/`` to cut at) is the URN itself."""
    if not _AUTHORITY.match(query):
        return Compare(column, "=", _versionless(query))
    base = _versionless(query).rstrip("/")
    return any_of(Compare(column, "=", base), Compare(column, "prefix", base + "/"))


def above_condition(query: str, column: str = "uri") -> Cond:
    """``:above``: the stored uri is one of the query's ancestors (or the query itself)."""
    return any_of(*(Compare(column, "=", a) for a in uri_ancestors(query)))
