"""Search criteria that the server's own code writes (conditional lookups of the doors)."""

from __future__ import annotations

from urllib.parse import urlencode


def escaped(text: str) -> str:
    """A value with the FHIR search escapes (``\\``, ``|``, ``,``, ``$``)."""
    return "".join("\\" + c if c in "\\|,$" else c for c in text)


def token_query(param: str, system: str, value: str) -> str:
    """``param=system|value``, escaped and URL-encoded (values may hold ``&`` or ``+``)."""
    return urlencode([(param, f"{escaped(system)}|{escaped(value)}")])


def identifier_query(identifier: dict) -> str:
    return token_query("identifier", identifier["system"], identifier["value"])
