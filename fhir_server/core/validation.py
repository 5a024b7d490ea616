"""Write-time validation of FHIR R4 resources against the official core definitions.

Every create/update goes through :func:`validate_resource`, so the walk is table-driven and
cheap: one pass over the JSON dict, per-context lookups compiled once (``_Spec``), regexes
compiled at import, paths built only when descending into objects or reporting a problem.
It checks structure (known elements, list-ness, mandatory elements, no empty values),
primitive lexical forms, choice types, required bindings we can expand, ``contained`` and
Bundle entries, narrative safety (txt-1/txt-2), ext-1 and local references (ref-1).
Profiles, other invariants and terminology servers are out of scope.
"""

from __future__ import annotations

import binascii
import html.entities
import json
import re
import threading
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

from lxml import etree

from fhir_server.core.errors import FhirError, Issue
from profiles.definitions import TABLES, Child, Context, child, is_resource_type, required_valuesets, types

MAX_ISSUES = 100
MAX_STRING = 1024 * 1024  # "strings SHALL NOT exceed 1MB (1024*1024 characters)"
XHTML_NS = "http://www.w3.org/1999/xhtml"

# ---------------------------------------------------------------------------------------------
# Primitive lexical forms (R4 datatypes page regexes; re.ASCII so \s means XML-schema whitespace,
# a non-breaking space in French text is content, not whitespace).

_YEAR = r"(?P<y>[0-9](?:[0-9](?:[0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(?P<m>0[1-9]|1[0-2])"
_DAY = r"(?P<d>0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
_TZ = r"(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"

_DATE = re.compile(rf"{_YEAR}(?:-{_MONTH}(?:-{_DAY})?)?", re.ASCII)
_DATETIME = re.compile(rf"{_YEAR}(?:-{_MONTH}(?:-{_DAY}(?:T{_TIME}{_TZ})?)?)?", re.ASCII)
_INSTANT = re.compile(rf"{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_TZ}", re.ASCII)
_TIME_RE = re.compile(_TIME, re.ASCII)
_CODE = re.compile(r"[^\s]+(?:\s[^\s]+)*", re.ASCII)
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}", re.ASCII)
_URI = re.compile(r"\S+", re.ASCII)
_OID = re.compile(r"urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+", re.ASCII)
_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_WHITESPACE = re.compile(r"\s+", re.ASCII)

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _real_day(match: re.Match) -> bool:
    """The regexes allow 31 days in every month: check the calendar (leap years included)."""
    day = match.group("d")
    if day is None or day < "29":  # two-digit strings compare like the numbers
        return True
    d, m, y = int(day), int(match.group("m")), int(match.group("y"))
    if m == 2:
        return d == 29 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return d <= _DAYS[m - 1]


# Each checker returns None for a valid value, else the problem. The valid case is tested first
# in one expression: it is the one that runs on every write.

def _text(value: Any) -> str | None:
    """Shared checks for every string-based primitive; returns a problem or None."""
    if type(value) is not str:
        return f"must be a JSON string, not {_json_kind(value)}"
    if not value:
        return "must not be an empty string"
    return None


def _string(value: Any, _search: Callable = _CONTROL.search) -> str | None:
    if type(value) is str and value and len(value) <= MAX_STRING and _search(value) is None:
        return None
    if (err := _text(value)) is not None:
        return err
    return "exceeds the 1 MB limit for strings" if len(value) > MAX_STRING else "contains control characters"


def _pattern(regex: re.Pattern, label: str) -> Callable[[Any], str | None]:
    """A checker for primitives whose lexical space is one regex."""
    fullmatch = regex.fullmatch

    def check(value: Any) -> str | None:
        if type(value) is str and fullmatch(value) is not None:
            return None
        return _text(value) or f"is not a valid {label}: {_show(value)}"

    return check


def _temporal(regex: re.Pattern, label: str) -> Callable[[Any], str | None]:
    """A checker for date/dateTime/instant: the regex, then the calendar."""
    fullmatch = regex.fullmatch

    def check(value: Any) -> str | None:
        match = fullmatch(value) if type(value) is str else None
        if match is not None:
            return None if _real_day(match) else f"is not a real calendar date: {_show(value)}"
        return _text(value) or f"is not a valid {label}: {_show(value)}"

    return check


def _boolean(value: Any) -> str | None:
    return None if type(value) is bool else f"must be JSON true or false, not {_json_kind(value)}"


def _integer_in(low: int) -> Callable[[Any], str | None]:
    """A checker for integer, unsignedInt (low 0) and positiveInt (low 1): JSON integers only."""

    def check(value: Any) -> str | None:
        if type(value) is int and low <= value <= _INT_MAX:
            return None
        return f"is out of range: {value}" if type(value) is int else f"must be a JSON integer, not {_json_kind(value)}"

    return check


def _decimal(value: Any) -> str | None:
    if type(value) is int or (type(value) is Decimal and value.is_finite()):
        return None
    return f"must be a JSON number, not {_json_kind(value)}"


def _base64(value: Any) -> str | None:
    if (err := _text(value)) is not None:
        return err
    try:  # documents run to megabytes: the C decoder first, the whitespace regex only when it objects
        binascii.a2b_base64(value, strict_mode=True)
        return None
    except (binascii.Error, ValueError):
        pass
    try:
        binascii.a2b_base64(_WHITESPACE.sub("", value), strict_mode=True)
    except (binascii.Error, ValueError):
        return "is not valid base64"
    return None


# ---------------------------------------------------------------------------------------------
# Narrative (txt-1: only basic XHTML formatting, no active content; txt-2: some text).

_XHTML_TAGS = frozenset((
    "p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6", "a", "span", "b", "em", "i", "strong", "small", "big",
    "tt", "dfn", "q", "var", "abbr", "acronym", "cite", "blockquote", "hr", "address", "bdo", "kbd", "sub", "sup",
    "ul", "ol", "li", "dl", "dt", "dd", "pre", "table", "caption", "colgroup", "col", "thead", "tr", "tfoot",
    "tbody", "th", "td", "code", "samp", "img", "map", "area"))
_XML_ENTITIES = frozenset({"lt", "gt", "amp", "quot", "apos"})
_SCRIPT_URL = re.compile(r"(?:java|vb)script:", re.IGNORECASE)
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_PARSERS = threading.local()  # lxml parsers must not be shared between threads


def _xhtml_parser() -> etree.XMLParser:
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                                   huge_tree=False)
    return parser


def _html_entity(match: re.Match) -> str:
    """HTML named entities (&nbsp;, &eacute;) are common in narratives but undefined in bare XML."""
    name = match.group(1)
    code = html.entities.name2codepoint.get(name)
    return match.group(0) if name in _XML_ENTITIES or code is None else f"&#{code};"


def _xhtml(value: Any) -> str | None:
    """Narrative.div: cheap text screens first, then a real XML parse for structure and txt-1."""
    if (err := _text(value)) is not None:
        return err
    lowered = value.lower()
    if not value.lstrip().startswith("<div"):
        return "narrative must be a <div> element"
    if "<!doctype" in lowered or "<!entity" in lowered or "<?" in value:
        return "narrative must not contain a DOCTYPE, entity declaration or processing instruction"
    if "<script" in lowered or "javascript:" in lowered:
        return "narrative must not contain scripts (txt-1)"
    source = _ENTITY.sub(_html_entity, value) if "&" in value else value
    try:
        root = etree.fromstring(source, _xhtml_parser())
    except etree.XMLSyntaxError as exc:
        return f"narrative is not well-formed XHTML: {exc}"
    if root.tag != f"{{{XHTML_NS}}}div":
        return f"narrative root must be a div in the XHTML namespace {XHTML_NS}"
    return _xhtml_content(root)


def _xhtml_content(root: etree._Element) -> str | None:
    """txt-1 element/attribute rules and txt-2 (some non-whitespace content)."""
    has_content = False
    for el in root.iter():
        if not isinstance(el.tag, str):  # comments
            continue
        ns, _, tag = el.tag[1:].partition("}")
        if ns != XHTML_NS or tag not in _XHTML_TAGS:
            return f"narrative element <{tag or el.tag}> is not allowed (txt-1)"
        for name, attr in el.attrib.items():
            if name.lower().startswith("on"):
                return f"narrative attribute {name} (event handler) is not allowed (txt-1)"
            if _SCRIPT_URL.search(_WHITESPACE.sub("", attr)):
                return "narrative must not contain script URLs (txt-1)"
        if tag == "img" or (el.text and not el.text.isspace()) or (el.tail and not el.tail.isspace()):
            has_content = True
    return None if has_content else "narrative must have some non-whitespace content (txt-2)"


_PRIMITIVES: dict[str, Callable[[Any], str | None]] = {
    "boolean": _boolean,
    "integer": _integer_in(_INT_MIN),
    "unsignedInt": _integer_in(0),
    "positiveInt": _integer_in(1),
    "decimal": _decimal,
    "string": _string,
    "markdown": _string,
    "code": _pattern(_CODE, "code"),
    "id": _pattern(_ID, "id"),
    "uri": _pattern(_URI, "uri"),
    "url": _pattern(_URI, "url"),
    "canonical": _pattern(_URI, "canonical"),
    "oid": _pattern(_OID, "oid"),
    "uuid": _pattern(_UUID, "uuid"),
    "base64Binary": _base64,
    "date": _temporal(_DATE, "date"),
    "dateTime": _temporal(_DATETIME, "dateTime (a time needs seconds and a timezone)"),
    "instant": _temporal(_INSTANT, "instant (needs seconds and a timezone)"),
    "time": _pattern(_TIME_RE, "time"),
    "xhtml": _xhtml,
}
_CHECK_ID = _PRIMITIVES["id"]


def _json_kind(value: Any) -> str:
    """A JSON-ish name for a Python value, for messages."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) is int or type(value) is Decimal:
        return "a number"
    if type(value) is float:
        return "a Python float (decimals must be parsed as Decimal to keep their precision)"
    if type(value) is str:
        return "a string"
    return "an array" if type(value) is list else "an object"


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


# ---------------------------------------------------------------------------------------------
# Compiled view of the definitions: one _Spec per element context.

@cache
def _constraints() -> dict:
    return json.loads((TABLES / "constraints.json").read_text())


_SYSTEMS: dict[str, frozenset[str]] = {}


def _valueset_systems(url: str) -> frozenset[str]:
    return _SYSTEMS.setdefault(url, frozenset(_constraints()["valuesetSystems"].get(url, ())))

_ELEMENT = Context("Element", "Element")


class _Kid:
    """A Child with what the walk needs precomputed (plain attributes beat properties and lookups)."""

    __slots__ = ("name", "path", "fhir_type", "is_list", "valueset", "codes", "context", "check", "is_choice",
                 "_spec")

    def __init__(self, c: Child) -> None:
        self.name, self.path, self.fhir_type, self.is_list = c.name, c.path, c.fhir_type, c.is_list
        self.valueset, self.context = c.required_valueset, c.context
        # None when unbound or when the value set cannot be expanded here (then it is not checked)
        self.codes = required_valuesets().get(c.required_valueset) if c.required_valueset else None
        self.check = _PRIMITIVES.get(c.fhir_type) if c.is_primitive else None
        self.is_choice = c.path.endswith("[x]")
        self._spec: _Spec | None = None

    @property
    def spec(self) -> _Spec:
        """Resolved on first use: types are recursive (Extension.extension), so never eagerly."""
        if self._spec is None:
            self._spec = _spec(self.context)
        return self._spec


class _Spec:
    """What may appear in one JSON object: its properties (resolved once), mandatory ones."""

    __slots__ = ("context", "children", "mandatory", "is_resource")

    def __init__(self, ctx: Context) -> None:
        self.context = ctx
        names = _property_names(ctx)
        self.children: dict[str, _Kid] = {n: _Kid(c) for n in names if (c := child(ctx, n)) is not None}
        self.mandatory = _mandatory(ctx)
        self.is_resource = ctx.owner == ctx.path and is_resource_type(ctx.owner)


_SPECS: dict[Context, _Spec] = {}


def _spec(ctx: Context) -> _Spec:
    spec = _SPECS.get(ctx)
    if spec is None:
        spec = _SPECS[ctx] = _Spec(ctx)
    return spec


def _property_names(ctx: Context) -> list[str]:
    """Every JSON property name legal at ctx (choice elements expanded to valueString, ...)."""
    names = []
    prefix = ctx.path + "."
    for path, (_, el_types, _, _) in types()[ctx.owner]["elements"].items():
        if not path.startswith(prefix) or "." in path[len(prefix):]:
            continue
        names.extend(_json_names(path[len(prefix):], el_types))
    return names


def _json_names(name: str, el_types: list[str]) -> list[str]:
    """JSON property names of an element: 'value[x]' → ['valueString', 'valueBoolean', ...]."""
    if not name.endswith("[x]"):
        return [name]
    return [name[:-3] + t[0].upper() + t[1:] for t in el_types]


def _mandatory(ctx: Context) -> tuple[tuple[str, frozenset[str]], ...]:
    """(element name, JSON keys any of which satisfies it) for each min>=1 element at ctx."""
    out = []
    prefix = ctx.path + "."
    elements = types()[ctx.owner]["elements"]
    for path in _constraints()["mandatory"].get(ctx.owner, ()):
        if not path.startswith(prefix) or "." in path[len(prefix):]:
            continue
        name = path[len(prefix):]
        keys = _json_names(name, elements[path][1])
        out.append((name, frozenset(keys + ["_" + k for k in keys])))
    return tuple(out)


@cache
def _extension_value_keys() -> frozenset[str]:
    """Every valueX / _valueX property of Extension, for ext-1."""
    names = [n for n in _spec(Context("Extension", "Extension")).children if n.startswith("value")]
    return frozenset(names + ["_" + n for n in names])


# ---------------------------------------------------------------------------------------------
# The walk.

class _TooMany(Exception):
    """Stops the walk once MAX_ISSUES problems are known: the client has enough to fix."""


class _Walk:
    """Issues found so far, and the '#id' references of the resource being walked (ref-1)."""

    __slots__ = ("issues", "local_refs")

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.local_refs: list[tuple[str, str]] = []

    def add(self, code: str, path: str, message: str) -> None:
        self.issues.append(Issue(code, f"{path}: {message}", [path]))
        if len(self.issues) >= MAX_ISSUES:
            raise _TooMany


def validate_resource(resource: dict, expected_type: str | None = None) -> None:
    """Raise FhirError(400) listing every problem found in ``resource``; return None when valid."""
    walk = _Walk()
    root = resource.get("resourceType") if type(resource) is dict else None
    path = root if type(root) is str and is_resource_type(root) else expected_type or "Resource"
    try:
        if type(resource) is not dict:
            walk.add("structure", path, f"a resource must be a JSON object, not {_json_kind(resource)}")
        else:
            _resource(resource, path, walk, expected_type=expected_type)
    except _TooMany:
        pass
    except RecursionError:  # only for dicts built in code: the JSON parser already caps the depth
        walk.issues.append(Issue("structure", f"{path}: nested too deeply to validate", [path]))
    if walk.issues:
        first = walk.issues[0].diagnostics
        more = len(walk.issues) - 1
        summary = first if not more else f"{first} (and {more} more issue{'s' if more > 1 else ''})"
        raise FhirError(400, "invalid", summary, issues=walk.issues)


def _resource(res: dict, path: str, walk: _Walk, expected_type: str | None = None, contained: bool = False) -> None:
    """One resource: its type, id, contents, and (unless contained) its local references."""
    rt = res.get("resourceType")
    if rt is None:
        walk.add("required", f"{path}.resourceType", "resourceType is missing")
        return
    if type(rt) is not str or not is_resource_type(rt):
        shown = _show(rt) if type(rt) is str else _json_kind(rt)
        walk.add("structure", f"{path}.resourceType", f"unknown or abstract resource type {shown}")
        return
    if expected_type is not None and rt != expected_type:
        walk.add("invalid", f"{path}.resourceType", f"expected a {expected_type}, got a {rt}")
    rid = res.get("id")
    if type(rid) is str and rid and (err := _CHECK_ID(rid)) is not None:
        walk.add("value", f"{path}.id", err)
    if contained:
        if rid is None:
            walk.add("required", f"{path}.id", "a contained resource must have an id")
        if "contained" in res:
            walk.add("invariant", f"{path}.contained", "a contained resource must not contain resources (dom-2)")
        _object(res, _spec(Context(rt, rt)), path, walk)
        return
    outer, walk.local_refs = walk.local_refs, []
    try:
        _object(res, _spec(Context(rt, rt)), path, walk)
        _check_local_refs(res, walk)
    finally:
        walk.local_refs = outer


def _check_local_refs(res: dict, walk: _Walk) -> None:
    """ref-1: a '#id' reference must point at a contained resource ('#' alone is the container)."""
    if not walk.local_refs:
        return
    contained = res.get("contained")
    ids = {c.get("id") for c in contained if type(c) is dict} if type(contained) is list else set()
    for target, path in walk.local_refs:
        if target and target not in ids:
            walk.add("invariant", path, f"local reference #{target} matches no contained resource (ref-1)")


def _object(obj: dict, spec: _Spec, path: str, walk: _Walk) -> None:
    """Check each property of a JSON object against spec, then the mandatory elements."""
    if not obj:
        walk.add("structure", path, "empty objects are not allowed")
        return
    if len(obj) == 1 and "id" in obj:
        walk.add("structure", path, "an element must have a value or children besides id (ele-1)")
    children = spec.children
    choices: dict[str, str] | None = None
    for name, value in obj.items():
        kid = children.get(name)
        if kid is None:  # rare: '_x' primitive extensions, resourceType, or an unknown property
            kid = children.get(name[1:]) if name[:1] == "_" else None
            if kid is not None and kid.check is not None:
                if kid.is_choice:
                    choices = _check_choice(kid, choices, path, walk)
                _primitive_extension(obj, name, value, kid, path, walk)
            elif not (name == "resourceType" and spec.is_resource):
                shown = name if len(name) <= 80 else name[:77] + "..."
                walk.add("structure", f"{path}.{shown}", f"unknown element '{shown}'")
            continue
        if kid.is_choice:
            choices = _check_choice(kid, choices, path, walk)
        if value is None:
            walk.add("structure", f"{path}.{name}", "null values are not allowed")
        elif type(value) is list:
            _list(obj, name, value, kid, path, walk)
        elif kid.is_list:
            walk.add("structure", f"{path}.{name}", "must be an array (the element repeats)")
        elif kid.check is not None:  # primitives inline: they are most of the values
            err = kid.check(value)
            if err is not None:
                walk.add("value", f"{path}.{name}", err)
            elif kid.codes is not None and value not in kid.codes:
                _bad_code(value, kid, f"{path}.{name}", walk)
        else:
            _complex(value, kid, f"{path}.{name}", walk)
    for label, keys in spec.mandatory:
        if keys.isdisjoint(obj):
            walk.add("required", f"{path}.{label}", f"mandatory element '{label}' is missing")


def _check_choice(kid: _Kid, choices: dict[str, str] | None, path: str, walk: _Walk) -> dict[str, str]:
    """At most one type per choice element: valueString and valueBoolean together is an error."""
    if choices is None:
        choices = {}
    seen = choices.setdefault(kid.path, kid.name)
    if seen != kid.name:
        stem = kid.path.rpartition(".")[2]
        walk.add("structure", f"{path}.{kid.name}", f"only one type allowed for {stem}, already has {seen}")
    return choices


def _list(obj: dict, name: str, items: list, kid: _Kid, path: str, walk: _Walk) -> None:
    """A JSON array: the element must repeat, the array be non-empty, nulls only opposite an '_x' item."""
    if not kid.is_list:
        walk.add("structure", f"{path}.{name}", "must not be an array (the element does not repeat)")
        return
    if not items:
        walk.add("structure", f"{path}.{name}", "empty arrays are not allowed")
        return
    check, codes = kid.check, kid.codes
    for i, item in enumerate(items):
        if item is None:
            ext = obj.get("_" + name) if check is not None else None
            if not (type(ext) is list and i < len(ext) and ext[i] is not None):
                walk.add("structure", f"{path}.{name}[{i}]", "null values are not allowed in arrays")
        elif check is None:
            _complex(item, kid, f"{path}.{name}[{i}]", walk)
        elif (err := check(item)) is not None:
            walk.add("value", f"{path}.{name}[{i}]", err)
        elif codes is not None and item not in codes:
            _bad_code(item, kid, f"{path}.{name}[{i}]", walk)


def _complex(value: Any, kid: _Kid, here: str, walk: _Walk) -> None:
    """One value of a complex element (datatype, backbone element or resource) found at here."""
    if type(value) is not dict:
        walk.add("structure", here, f"must be a JSON object, not {_json_kind(value)}")
        return
    fhir_type = kid.fhir_type
    if fhir_type == "Resource":
        _resource(value, here, walk, contained=kid.name == "contained")
        return
    _object(value, kid.spec, here, walk)
    if fhir_type == "Extension":
        if _extension_value_keys().isdisjoint(value) == ("extension" not in value):  # neither, or both
            walk.add("invariant", here, "an extension must have either extensions or value[x], not both (ext-1)")
    elif fhir_type == "Reference":
        ref = value.get("reference")
        if type(ref) is str and ref.startswith("#"):
            walk.local_refs.append((ref[1:], f"{here}.reference"))
    elif kid.codes is not None and fhir_type in ("Coding", "CodeableConcept"):
        _check_codings(value, kid, here, walk)


def _primitive_extension(obj: dict, name: str, value: Any, kid: _Kid, path: str, walk: _Walk) -> None:
    """'_given' carries id/extension for 'given'; for repeating elements the arrays run in parallel."""
    here = f"{path}.{name}"
    element = _spec(_ELEMENT)
    if not kid.is_list:
        if type(value) is not dict:
            walk.add("structure", here, f"must be a JSON object, not {_json_kind(value)}")
        else:
            _object(value, element, here, walk)
        return
    if type(value) is not list or not value:
        walk.add("structure", here, "must be a non-empty array parallel to " + name[1:])
        return
    base = obj.get(name[1:])
    if type(base) is list and len(base) != len(value):
        walk.add("structure", here, f"must have as many items as {name[1:]} ({len(base)})")
    for i, item in enumerate(value):
        if item is None:
            if not (type(base) is list and i < len(base) and base[i] is not None):
                walk.add("structure", f"{here}[{i}]", "null with no matching value")
        elif type(item) is not dict:
            walk.add("structure", f"{here}[{i}]", f"must be a JSON object, not {_json_kind(item)}")
        else:
            _object(item, element, f"{here}[{i}]", walk)


def _bad_code(value: str, kid: _Kid, path: str, walk: _Walk) -> None:
    walk.add("code-invalid", path, f"code {_show(value)} is not in the required value set {kid.valueset}")


def _check_codings(value: dict, kid: _Kid, path: str, walk: _Walk) -> None:
    """Required binding on a Coding/CodeableConcept: codings of the value set's systems must be in it.

    A coding without a system is judged too; one from another system (a translation) is not.
    """
    systems = _valueset_systems(kid.valueset)
    if kid.fhir_type == "Coding":
        codings = [(path, value)]
    else:
        raw = value.get("coding")
        raw = raw if type(raw) is list else []
        codings = [(f"{path}.coding[{i}]", c) for i, c in enumerate(raw) if type(c) is dict]
    for where, coding in codings:
        code, system = coding.get("code"), coding.get("system")
        if type(code) is str and (system is None or system in systems) and code not in kid.codes:
            _bad_code(code, kid, f"{where}.code", walk)
