"""Reference search evaluator (a test oracle): FHIRPath on each resource, no index.

For every parameter of a query, the SearchParameter's FHIRPath expression (``params_for``: the
R4 definitions plus the French ones, narrowed to the type) is evaluated with fhirpathpy on each
resource, and the values are compared with the query value by the R4 search.html rules,
written out directly and naively. Nothing here uses the engine's value modules, index or SQL:
this is the specification the indexed search is tested against (``test_search_oracle.py``).

FHIRPath details:

* ``resolve()`` has nothing to fetch in a test. A user function answers a resource of the type
  that the literal reference names (``Type/id``, or ``.../Type/id`` at the end of a URL), which is
  all ``where(resolve() is Patient)`` asks.
* fhirpathpy does not see a Patient as a ``Resource`` at the root, so ``Resource.meta.profile``
  is evaluated as ``Patient.meta.profile``.
* fhirpathpy's ``extension('url')`` keeps only the first extension with that url; FHIRPath says it
  is short for ``extension.where(url = 'url')``, which is what is evaluated.

Composites (R4 search.html#composite): ``[part]$[part]``, both parts matching the same element the
composite's expression selects, each by its own type's rules above. A component's expression is
its own definition's, relative to that element: ``DocumentReference.relatesTo.target`` for
``relatesto`` on ``DocumentReference.relatesTo``, ``target`` (R4 writes the components'
expressions the other way round; the definitions of the components say which is which).

Where R4 leaves a choice, the project's: string matching also ignores ligatures (``Œuvray`` =
``oeuvray``) and runs of spaces; a date or query without a time zone is in Europe/Paris. References
follow R4 search.html#reference: ``[id]`` and ``[type]/[id]`` name local references (relative, or
absolute on ``LOCAL_BASE``); a reference to another server matches only its own URL.

Numbers and quantities (R4 search.html#number, #quantity, #prefix), compared as exact fractions:
a value written with N significant figures stands for the range of ± half its last digit (``100``
is [99.5, 100.5), ``1e2`` [50, 150), ``5.40e-3`` ± 0.000005). ``eq``/``ne``: the target's value
is (not) in the search value's range ("searching for values in the range [99.5 ... 100.5)");
``gt lt ge le``: the exact values ("less than exactly 100"); ``sa``/``eb``: the target decimal's
own range lies wholly above / below the exact search value (#prefix: "sa and eb are not used with
integer values but are used for decimals", "the number 2.0 has an implicit range of 1.95 to
2.05"); ``ap``, whose width R4 leaves to the server: within 10% of the search value, or ``eq``.
No unit conversion (R4: the server "may choose" canonical units); ``||code`` is the code or the unit.
"""

from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from fhir_server.core.repository import Repository
from fhir_server.core.validation import validate_resource
from fhir_server.formats import json as fjson
from fhir_server.search.registry import DEFINITION_FILES, params_for
from fhir_server.store.sqlite import SqliteStore

LOCAL_BASE = "http://test/fhir"
ZONE = ZoneInfo("Europe/Paris")
R4 = models["r4"]
#: ContactPoint.system codes: a ContactPoint's "system" is a kind, not a token system (R4 token table).
CONTACT_KINDS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
STRING_FIELDS = ("family", "given", "prefix", "suffix", "text",  # HumanName
                 "line", "city", "district", "state", "postalCode", "country")  # Address
ANY_SYSTEM = object()
INF = float("inf")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Range = tuple[float, float]  # [low, high) in microseconds since the epoch; ±inf for open ends


# --- FHIRPath ---------------------------------------------------------------------------------

def _resolve(references: list) -> list:
    """``resolve()``: a bare resource of the type named by each literal reference."""
    out = []
    for ref in references:
        text = ref.get("reference", "") if isinstance(ref, dict) else ""
        match = re.search(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]+(?:/_history/[A-Za-z0-9\-.]+)?$", text)
        if match:
            out.append(ResourceNode.create_node({"resourceType": match[1]}))
    return out


FUNCTIONS = {"resolve": {"fn": _resolve, "arity": {0: []}}}


@cache
def _compiled(expression: str) -> Callable:
    return fhirpathpy.compile(expression, R4, {"userInvocationTable": FUNCTIONS})


def _fhirpath(expression: str, resource_type: str) -> str:
    expression = re.sub(r"(^|\.)extension\('([^']*)'\)", r"\1extension.where(url = '\2')", expression)
    return re.sub(r"\bResource\.", resource_type + ".", expression)


def values_of(resource: dict, code: str) -> list:
    """What the parameter's expression selects in ``resource`` (``_id``: the id)."""
    if code == "_id":
        return [resource["id"]]
    expression = params_for(resource["resourceType"])[code].expression
    return _compiled(_fhirpath(expression, resource["resourceType"]))(resource)


# --- escapes ----------------------------------------------------------------------------------

def _split(raw: str, sep: str) -> list[str]:
    """Split on unescaped ``sep`` (a comma between alternatives, a bar in a token); escapes kept."""
    return re.split(rf"(?<!\\){re.escape(sep)}", raw)


def _unescape(text: str) -> str:
    """Undo the search escapes ``\\,`` ``\\|`` ``\\$`` ``\\\\``."""
    return re.sub(r"\\([,|$\\])", r"\1", text)


# --- string -----------------------------------------------------------------------------------

def fold(text: str) -> str:
    """Case- and accent-insensitive form: no combining marks, casefolded, œ/æ spelled out."""
    bare = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return " ".join(bare.casefold().replace("œ", "oe").replace("æ", "ae").split())


def strings_of(value) -> list[str]:
    """A string is itself; a HumanName or an Address gives its text parts."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    for field in STRING_FIELDS:
        item = value.get(field)
        out += item if isinstance(item, list) else [item] if isinstance(item, str) else []
    return out


def _string_match(value, query: str, modifier: str | None) -> bool:
    """Default: starts with, folded; ``:contains``: anywhere, folded; ``:exact``: equal as written."""
    query = _unescape(query)
    texts = strings_of(value)
    if modifier == "exact":
        return query in texts
    if modifier == "contains":
        return any(fold(query) in fold(text) for text in texts)
    return any(fold(text).startswith(fold(query)) for text in texts)


# --- token ------------------------------------------------------------------------------------

def tokens_of(value) -> list[tuple[str | None, str]]:
    """(system, code) pairs: boolean, code/string, Coding, CodeableConcept, Identifier, ContactPoint."""
    if isinstance(value, bool):
        return [(None, "true" if value else "false")]
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [(c.get("system"), c["code"]) for c in value["coding"] if "code" in c]
    if "code" in value:
        return [(value.get("system"), value["code"])]
    if "value" in value:
        system = value.get("system")
        return [(None if system in CONTACT_KINDS else system, value["value"])]
    return []


def texts_of(value) -> list[str]:
    """What ``:text`` searches: CodeableConcept.text, Coding.display, Identifier.type.text."""
    if not isinstance(value, dict):
        return []
    found = [value.get("text"), value.get("display"), (value.get("type") or {}).get("text")]
    found += [c.get("display") for c in value.get("coding", [])]
    return [t for t in found if isinstance(t, str)]


def _token_match(value, query: str, modifier: str | None) -> bool:
    if modifier == "text":
        return any(fold(t).startswith(fold(_unescape(query))) for t in texts_of(value))
    parts = [_unescape(part) for part in _split(query, "|")]
    system, code = (ANY_SYSTEM, parts[0]) if len(parts) == 1 else (parts[0] or None, parts[1] or None)
    if modifier == "below":  # ATC / ICD-10 codes spell their hierarchy: descendants extend the code
        return any(s == system and c.startswith(code) for s, c in tokens_of(value))
    if modifier == "above":
        return any(s == system and code.startswith(c) for s, c in tokens_of(value))
    return any((system is ANY_SYSTEM or s == system) and (code is None or c == code) for s, c in tokens_of(value))


# --- date -------------------------------------------------------------------------------------

_DATE = re.compile(r"(\d{4})(?:-(\d\d)(?:-(\d\d)(?:T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?"
                   r"(Z|[+-]\d\d:\d\d)?)?)?)?")


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _zone(text: str | None) -> tzinfo:
    if text is None:
        return ZONE
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def date_range(text: str) -> Range:
    """The instants a date, dateTime or instant covers at its precision, ``[low, high)``."""
    year, month, day, hour, minute, second, fraction, zone = _DATE.fullmatch(text).groups()
    if hour is None:  # local midnights: a day is 23 or 25 hours when the clocks change
        start = datetime(int(year), int(month or 1), int(day or 1), tzinfo=_zone(zone))
        if day:
            end = start + timedelta(days=1)
        elif month:
            end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        else:
            end = start.replace(year=start.year + 1)
        return _micros(start), _micros(end)
    micro = int((fraction or "").ljust(6, "0")[:6])
    start = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro,
                     tzinfo=_zone(zone))
    width = 60_000_000 if second is None else max(1, 10 ** (6 - len(fraction or "")))
    return _micros(start), _micros(start) + width


def ranges_of(value) -> list[Range]:
    """A date string's range, or a Period's: start of ``start`` to end of ``end``, open if absent."""
    if isinstance(value, str):
        return [date_range(value)]
    if isinstance(value, dict) and ("start" in value or "end" in value):
        low = date_range(value["start"])[0] if "start" in value else -INF
        high = date_range(value["end"])[1] if "end" in value else INF
        return [(low, high)]
    return []


def _contains(outer: Range, inner: Range) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]


DATE_PREFIXES: dict[str, Callable[[Range, Range], bool]] = {
    "eq": lambda t, q: _contains(q, t),
    "ne": lambda t, q: not _contains(q, t),
    "gt": lambda t, q: t[1] > q[1],  # the range above the search value overlaps the target
    "lt": lambda t, q: t[0] < q[0],
    "ge": lambda t, q: t[1] > q[1] or _contains(q, t),
    "le": lambda t, q: t[0] < q[0] or _contains(q, t),
    "sa": lambda t, q: t[0] >= q[1],  # the target lies wholly above the search range
    "eb": lambda t, q: t[1] <= q[0],
}


def _approximately(now: datetime | None) -> Callable[[Range, Range], bool]:
    """``ap``: overlap with the search range widened by 10% of its distance to now (R4's advice)."""
    def match(t: Range, q: Range) -> bool:
        margin = abs(_micros(now or datetime.now(UTC)) - q[0]) / 10
        return t[0] < q[1] + margin and t[1] > q[0] - margin
    return match


def _date_match(value, query: str, now: datetime | None) -> bool:
    prefix, text = (query[:2], query[2:]) if query[:2].isalpha() else ("eq", query)
    compare = _approximately(now) if prefix == "ap" else DATE_PREFIXES[prefix]
    wanted = date_range(_unescape(text).replace(" ", "+"))  # a "+" of the offset decoded as a space
    return any(compare(target, wanted) for target in ranges_of(value))


# --- reference --------------------------------------------------------------------------------

_LITERAL = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]+))?")


def _target(text: str) -> tuple[str, ...]:
    """("local", type, id, version) or ("url", text): relative or on our base is local."""
    if text.startswith(LOCAL_BASE + "/"):
        text = text[len(LOCAL_BASE) + 1:]
    elif re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", text):
        return ("url", text)
    match = _LITERAL.fullmatch(text)
    return ("local", *match.groups()) if match else ("url", text)


def _reference_match(value, query: str, modifier: str | None) -> bool:
    """``id`` (of any type, or of ``:Type``), ``Type/id``, ``Type/id/_history/v``, or a URL."""
    if not isinstance(value, dict) or "reference" not in value:
        return False
    target = _target(value["reference"])
    bare_id = re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", query)
    wanted = ("local", None, query, None) if bare_id else _target(query)
    if wanted[0] == "url":
        return target == wanted
    _, kind, ident, version = wanted
    return (target[0] == "local" and target[2] == ident and kind in (None, target[1])
            and modifier in (None, target[1]) and version in (None, target[3]))


# --- uri --------------------------------------------------------------------------------------

def _under(uri: str, base: str) -> bool:
    """``uri`` is ``base`` or below it, on whole ``/``-separated segments; only URLs have segments
    (R4 search.html#uri: "the :above and :below modifiers only apply to URLs, and not URNs such as
    OIDs"): a URN is only under itself."""
    if not re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://", base):
        return uri == base
    return uri.rstrip("/") == base.rstrip("/") or uri.startswith(base.rstrip("/") + "/")


def _uri_match(value, query: str, modifier: str | None) -> bool:
    if not isinstance(value, str):
        return False
    query = _unescape(query)
    if modifier == "below":
        return _under(value, query)
    if modifier == "above":
        return _under(query, value)
    return value == query


# --- number and quantity ----------------------------------------------------------------------

def number_range(text: str) -> tuple[Fraction, Fraction]:
    """[value − ½, value + ½) of the last digit written: ``100`` → [99.5, 100.5), ``1e2`` → [50, 150)."""
    mantissa, _, exponent = text.lower().partition("e")
    half = Fraction(1, 2) * Fraction(10) ** (int(exponent or 0) - len(mantissa.partition(".")[2]))
    value = Fraction(text)
    return value - half, value + half


def _number_match(value, query: str) -> bool:
    """One resource number (an int or a Decimal as the JSON wrote it) against ``[prefix]number``."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return False
    prefix, text = (query[:2], query[2:]) if query[:2].isalpha() else ("eq", query)
    target, wanted = Fraction(str(value)), Fraction(text)
    low, high = number_range(text)
    in_range = low <= target < high
    if prefix in ("eq", "ne"):
        return in_range == (prefix == "eq")
    if prefix == "ap":
        return in_range or abs(target - wanted) <= abs(wanted) / 10
    if prefix in ("sa", "eb"):
        own_low, own_high = number_range(str(value))
        return own_low > wanted if prefix == "sa" else own_high <= wanted
    return {"gt": target > wanted, "lt": target < wanted, "ge": target >= wanted, "le": target <= wanted}[prefix]


def _quantity_match(value, query: str) -> bool:
    """``number``, ``number|system|code``, ``number|system|`` or ``number||code`` (code or unit)."""
    if not isinstance(value, dict) or "value" not in value:
        return False
    number, *unit = query.split("|")
    system, code = (unit[0] or None, unit[1] or None) if unit else (None, None)
    if system is not None and value.get("system") != system:
        return False
    if code is not None and code not in ((value.get("code"),) if system else (value.get("code"), value.get("unit"))):
        return False
    return _number_match(value["value"], number)


# --- composite ----------------------------------------------------------------------------------

@cache
def _definitions() -> dict[str, dict]:
    """Every SearchParameter definition the server reads, by url."""
    return {d["url"]: d for path in DEFINITION_FILES if path.exists() for d in json.loads(path.read_text())}


@cache
def components(resource_type: str, code: str) -> tuple[tuple[str, str], ...]:
    """(type, expression on the element) of each component of a composite parameter."""
    composite = next(d for d in _definitions().values() if d["code"] == code and resource_type in d["base"])
    out = []
    for part in composite["component"]:
        definition = _definitions()[part["definition"]]
        out.append((definition["type"], definition["expression"].removeprefix(composite["expression"] + ".")))
    return tuple(out)


def _composite_match(element, query: str, parts: tuple[tuple[str, str], ...]) -> bool:
    """Every ``$``-separated part matches a value of its component in this same element."""
    texts = _split(query, "$")
    if len(texts) != len(parts) or not isinstance(element, dict):
        return False
    match = {"token": lambda v, q: _token_match(v, q, None), "reference": lambda v, q: _reference_match(v, q, None)}
    return all(any(match[kind](v, text) for v in _compiled(expression)(element))
               for (kind, expression), text in zip(parts, texts, strict=True))


# --- the query --------------------------------------------------------------------------------

def _kind(resource_type: str, code: str) -> str:
    return "token" if code == "_id" else params_for(resource_type)[code].type


def matches(resource: dict, name: str, raw: str, now: datetime | None = None) -> bool:
    """One ``name=value`` of a query: any value of the parameter matches any comma alternative;
    ``:not`` is none does, ``:missing=true`` that the expression selects nothing of the parameter's
    type (for a quantity, nothing with a number: a Quantity with a unit only has no value any search
    could match; for a reference, no Reference or canonical: ``Consent.source`` may be an Attachment)."""
    code, _, modifier = name.partition(":")
    modifier = modifier or None
    values = values_of(resource, code)
    kind = _kind(resource["resourceType"], code)
    if modifier == "missing":
        if kind == "quantity":
            values = [v for v in values if isinstance(v, dict) and isinstance(v.get("value"), int | Decimal)]
        if kind == "reference":
            values = [v for v in values if isinstance(v, str) or isinstance(v, dict) and ("reference" in v
                                                                                          or "identifier" in v)]
        return (not values) == (raw == "true")
    alternatives = _split(raw, ",")
    if kind == "token":
        hit = any(_token_match(v, a, None if modifier == "not" else modifier) for v in values for a in alternatives)
        return not hit if modifier == "not" else hit
    test: Callable[[object, str], bool] = {
        "composite": lambda v, a: _composite_match(v, a, components(resource["resourceType"], code)),
        "string": lambda v, a: _string_match(v, a, modifier),
        "date": lambda v, a: _date_match(v, a, now),
        "reference": lambda v, a: _reference_match(v, a, modifier),
        "uri": lambda v, a: _uri_match(v, a, modifier),
        "number": _number_match,
        "quantity": _quantity_match,
    }[kind]
    return any(test(v, a) for v in values for a in alternatives)


def oracle_search(resources: list[dict], resource_type: str, params: list[tuple[str, str]],
                  now: datetime | None = None) -> set[str]:
    """Ids of the ``resource_type`` resources matching every parameter (AND; commas are OR)."""
    return {r["id"] for r in resources if r["resourceType"] == resource_type
            and all(matches(r, name, raw, now) for name, raw in params)}


class Engine:
    """The real search over resources written through the Repository (see ``written``)."""

    def __init__(self, repo: Repository, resources: list[dict]) -> None:
        self.repo = repo
        self.resources = resources

    def stored(self) -> list[dict]:
        """The resources as the server stored them (``meta.versionId``, ``meta.lastUpdated``), read back."""
        return [fjson.loads(self.repo.read(r["resourceType"], r["id"]).body) for r in self.resources]

    def search(self, resource_type: str, query: list[tuple[str, str]]) -> tuple[set[str], list]:
        """The ids found and the parameters the engine did not understand."""
        result = self.repo.search(resource_type, query, count=1000)
        return {record.id for record in result.records}, result.plan.unsupported


@contextmanager
def written(resources: list[dict], one_by_one: bool = False) -> Iterator[Engine]:
    """``resources`` written into a fresh SQLite file through the Repository: all in one unit of work,
    or ``one_by_one`` in a unit each, so each gets its own ``meta.lastUpdated`` (the server's clock)."""
    for resource in resources:
        validate_resource(resource)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "db.sqlite3", synchronous="OFF")
        try:
            repo = Repository(store, LOCAL_BASE)
            for batch in [[r] for r in resources] if one_by_one else [resources]:
                with repo.writer() as writer:
                    for resource in batch:
                        writer.update(resource["resourceType"], resource["id"], resource)
            yield Engine(repo, resources)
        finally:
            store.close()


def engine_search(resources: list[dict], resource_type: str,
                  searches: list[list[tuple[str, str]]]) -> list[tuple[set[str], list]]:
    """Write ``resources`` into a fresh SQLite file through the Repository and run each search."""
    with written(resources) as engine:
        return [engine.search(resource_type, query) for query in searches]
