"""Token search values (R4 search.html#token): ``[system]|[code]`` pairs, exact match.

What each datatype contributes (R4 token table):

* Coding: ``Coding.system | Coding.code``;
* CodeableConcept: each of its codings; a concept with only ``text`` has no token, but its text
  (and each ``Coding.display``) is still searchable with ``:text``, hence ``texts()``;
* Identifier: ``Identifier.system | Identifier.value``; ``:text`` searches ``Identifier.type.text``
  and ``:of-type`` the type codings, hence ``identifier_types()``;
* ContactPoint: the URI column is empty in R4: only ``ContactPoint.value`` is the code.
  ``ContactPoint.system`` (phone, email...) is a kind, not a namespace, so it is not the token system;
* code, id, uri, string: the value itself, without system; boolean: ``true`` / ``false``.

Values arrive as plain JSON from the FHIRPath evaluation, without their FHIR type, so the datatype
is recognised by its keys (see ``_kind``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.core.errors import FhirError
from fhir_server.search.conditions import Compare, Cond, all_of

#: ContactPoint.system codes (R4, required binding): tells a ContactPoint from an Identifier.
CONTACT_POINT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
#: ContactPoint.use codes that Identifier.use does not share (both have "temp" and "old").
_CONTACT_ONLY_USES = frozenset({"home", "work", "mobile"})
_ESCAPABLE = frozenset(",|$\\")
#: Code systems whose codes spell their own hierarchy, so a code's ancestors are its prefixes:
#: ATC (A → A10 → A10B → A10BA → A10BA02) and ICD-10 / CIM-10 (I → I2 → I21 → I21.0). Other
#: systems would need a terminology server: ``:above`` / ``:below`` on them is reported unsupported.
PREFIX_HIERARCHIES = frozenset({
    "http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73",  # ATC
    "http://hl7.org/fhir/sid/icd-10", "urn:oid:2.16.840.1.113883.6.3",  # ICD-10, CIM-10 (FRENCH_STANDARDS)
})


@dataclass(frozen=True)
class Token:
    system: str | None
    code: str
    display: str | None


@dataclass(frozen=True)
class TokenQuery:
    """One query value. ``any_system``: no ``|`` was given, so the system does not matter; with
    ``|code`` it is False and ``system`` None, meaning "no system"; with ``system|`` ``code`` is None."""

    system: str | None
    code: str | None
    any_system: bool


def _kind(value: dict) -> str:
    """The datatype of a dict value: concept, coding, identifier, contact, or "" when unknown."""
    if "coding" in value or ("text" in value and value.keys() <= {"text", "id", "extension"}):
        return "concept"
    if isinstance(value.get("value"), str):
        contact = (value.get("system") in CONTACT_POINT_SYSTEMS or "rank" in value
                   or value.get("use") in _CONTACT_ONLY_USES)
        return "contact" if contact else "identifier"
    if isinstance(value.get("code"), str):
        return "coding"
    return ""


def tokens(value) -> list[Token]:
    """The tokens one value contributes to a token parameter (see the module docstring)."""
    if isinstance(value, bool):
        return [Token(None, "true" if value else "false", None)]
    if isinstance(value, str):
        return [Token(None, value, None)]
    if not isinstance(value, dict):
        return []
    kind = _kind(value)
    if kind == "concept":
        text = value.get("text")
        return [Token(c.get("system"), c["code"], text or c.get("display"))
                for c in value.get("coding", []) if isinstance(c.get("code"), str)]
    if kind == "coding":
        return [Token(value.get("system"), value["code"], value.get("display"))]
    if kind == "identifier":
        return [Token(value.get("system"), value["value"], value.get("type", {}).get("text"))]
    if kind == "contact":
        return [Token(None, value["value"], None)]
    return []


def texts(value) -> list[str]:
    """What ``:text`` searches in one value: CodeableConcept.text, Coding.display, Identifier.type.text.

    Kept apart from ``tokens`` because a concept with only text has no token yet must be found."""
    if not isinstance(value, dict):
        return []
    kind = _kind(value)
    found: list = []
    if kind == "concept":
        found = [value.get("text")] + [c.get("display") for c in value.get("coding", [])]
    elif kind == "coding":
        found = [value.get("display")]
    elif kind == "identifier":
        found = [value.get("type", {}).get("text")]
    return list(dict.fromkeys(t for t in found if isinstance(t, str) and t))


def identifier_types(value) -> list[tuple[str | None, str, str]]:
    """(type system, type code, value) of an Identifier, for ``:of-type``; one per type coding."""
    if not isinstance(value, dict) or _kind(value) != "identifier":
        return []
    codings = value.get("type", {}).get("coding", [])
    return [(c.get("system"), c["code"], value["value"]) for c in codings if isinstance(c.get("code"), str)]


def split_unescaped(raw: str, sep: str = "|", maxsplit: int = -1) -> list[str]:
    """Split on unescaped ``sep`` and unescape ``\\,`` ``\\|`` ``\\$`` ``\\\\`` in the parts.

    Done in one scan, so ``a\\\\|b`` (an escaped backslash, then a real bar) splits correctly.
    A backslash before any other character is kept as written."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in _ESCAPABLE:
            current.append(raw[i + 1])
            i += 2
            continue
        if ch == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def parse_token(raw: str) -> TokenQuery:
    """``code``, ``system|code``, ``|code`` or ``system|``; one value, already split on commas."""
    parts = split_unescaped(raw)
    if len(parts) > 2:
        raise FhirError(400, "invalid", f"Token '{raw}' has more than one '|' (escape a literal bar as '\\|')")
    if len(parts) == 1:
        if not parts[0]:
            raise FhirError(400, "invalid", "Empty token value")
        return TokenQuery(None, parts[0], True)
    system, code = parts
    if not system and not code:
        raise FhirError(400, "invalid", "Token '|' has neither system nor code")
    return TokenQuery(system or None, code or None, False)


def parse_of_type(raw: str) -> tuple[str, str, str]:
    """``:of-type`` value ``[type system]|[type code]|[identifier value]``: all three are required."""
    parts = split_unescaped(raw)
    if len(parts) != 3 or not all(parts):
        raise FhirError(400, "invalid", f"':of-type' needs 'system|code|value', got '{raw}'")
    system, code, value = parts
    return system, code, value


def hierarchy_condition(raw: str, modifier: str) -> Cond | None:
    """``:below`` (the code and what it subsumes) or ``:above`` (the code and what subsumes it) on a
    ``system|code`` of a prefix hierarchy; None when the hierarchy is unknown."""
    q = parse_token(raw)
    if q.any_system or q.system not in PREFIX_HIERARCHIES or not q.code:
        return None
    if modifier == "below":
        codes = Compare("code", "prefix", q.code)
    else:
        codes = Compare("code", "in", tuple(q.code[:end] for end in range(1, len(q.code) + 1)))
    return all_of(Compare("system", "=", q.system), codes)
