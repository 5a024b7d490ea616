"""Number and quantity search values (R4 search.html#number, #quantity).

A decimal carries its precision in how it is written: ``100`` means [99.5, 100.5), ``100.00``
means [99.995, 100.005), ``1e2`` (one significant figure) means [50, 150). Values stay
``decimal.Decimal`` end to end (the JSON parser never makes floats), so ``1.50`` keeps its
trailing zero and comparisons are exact.

An index entry keeps the exact ``value`` and its own precision range ``[low, high)``:

* ``eq`` / ``ne``: the target value lies (not) within the search value's precision range
  (R4 examples: ``100`` matches 99.5 ≤ value < 100.5, ``ne100`` everything outside);
* ``gt lt ge le``: the implicit precision is ignored, the target value is compared with the exact
  search value (R4: "treated as if they have arbitrarily high precision");
* ``sa`` / ``eb``: the target's whole precision range starts after / ends before the exact search
  value (so ``sa100`` does not match ``100.4`` recorded as ``100``, whose range reaches 99.5);
* ``ap``: the target value lies within 10% of the search value (R4's recommendation), never
  less tolerant than ``eq`` (so ``ap0`` is ``eq0``).

Quantities add ``system``/``code``/``unit``. There is no UCUM conversion: ``5|http://unitsofmeasure.org|g``
does not match ``5000 mg``; units are compared as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from fhir_server.core.errors import FhirError
from fhir_server.search.conditions import Compare, Cond, Not, all_of, any_of

PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})
#: Money (R4): the currency is the code, in ISO 4217.
CURRENCY_SYSTEM = "urn:iso:std:iso:4217"
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)


@dataclass(frozen=True)
class NumberQuery:
    """One query value: the exact ``value`` and its precision range ``[low, high)``."""

    prefix: str
    value: Decimal
    low: Decimal
    high: Decimal


@dataclass(frozen=True)
class QuantityQuery:
    """``system`` None: any system; ``code`` None: any unit; with ``system`` None, ``code`` matches
    the quantity's ``code`` or its human ``unit`` (``5.4||mg``)."""

    number: NumberQuery
    system: str | None
    code: str | None


# --- values ---------------------------------------------------------------------------------------

def _decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a JSON number; bool is not a number here (True is an int in Python)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    return None


def _bounds(value: Decimal) -> tuple[Decimal, Decimal]:
    """[v − ½ulp, v + ½ulp) with ulp = 10^exponent as written; exact, whatever the digits."""
    sign, digits, exponent = value.as_tuple()
    half = Decimal((0, (5,), int(exponent) - 1))
    with localcontext() as ctx:
        ctx.prec = len(digits) + 3  # room for one more digit below the value's own
        ctx.Emax, ctx.Emin = 10**9, -(10**9)
        return value - half, value + half


def number_range(value: Any) -> tuple[Decimal, Decimal] | None:
    """The implicit precision range of a resource value; None when it is not a number."""
    entry = number_index(value)
    return None if entry is None else (entry["low"], entry["high"])


def number_index(value: Any) -> dict | None:
    """The index entry of a number: ``value`` (exact) and its precision range ``low``/``high``."""
    number = _decimal(value)
    if number is None:
        return None
    try:
        low, high = _bounds(number)
    except ArithmeticError:  # an exponent beyond any sensible value: not searchable
        return None
    return {"value": number, "low": low, "high": high}


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def quantity_index(value: dict) -> dict | None:
    """The index entry of a Quantity (or Age, Duration, Distance, Count, SimpleQuantity, Money):
    the number's columns plus ``system``, ``code`` and ``unit``; None without a numeric value.
    ``comparator`` (``<5``) is not taken into account."""
    entry = number_index(value.get("value")) if isinstance(value, dict) else None
    if entry is None:
        return None
    system, code = _text_or_none(value.get("system")), _text_or_none(value.get("code"))
    currency = _text_or_none(value.get("currency"))
    if currency and code is None:
        system, code = CURRENCY_SYSTEM, currency
    return {**entry, "system": system, "code": code, "unit": _text_or_none(value.get("unit"))}


# --- queries ----------------------------------------------------------------------------------------

def _split_prefix(raw: str, kind: str) -> tuple[str, str]:
    if len(raw) >= 2 and raw[:2].isalpha():
        if raw[:2] not in PREFIXES:
            raise FhirError(400, "invalid", f"Unknown prefix '{raw[:2]}' in {kind} search value '{raw}' "
                                            f"(expected one of {', '.join(sorted(PREFIXES))})")
        return raw[:2], raw[2:]
    return "eq", raw


def _number_query(prefix: str, text: str, raw: str, kind: str) -> NumberQuery:
    if not _NUMBER.fullmatch(text):
        raise FhirError(400, "invalid", f"'{raw}' is not a valid {kind} search value "
                                        f"(expected [prefix]number, such as 100, ge1.5 or 1e2)")
    try:
        value = Decimal(text)
        low, high = _bounds(value)
    except (InvalidOperation, ArithmeticError):
        raise FhirError(400, "invalid", f"The number in {kind} search value '{raw}' is out of range") from None
    return NumberQuery(prefix, value, low, high)


def parse_number(raw: str) -> NumberQuery:
    """``[prefix]number`` from a URL; the precision is the one written (``1e2``: hundreds)."""
    prefix, text = _split_prefix(raw, "number")
    return _number_query(prefix, text, raw, "number")


def parse_quantity(raw: str) -> QuantityQuery:
    """``[prefix]number``, ``[prefix]number|system|code`` or ``[prefix]number||code``; an empty
    system or code means "any"."""
    parts = raw.split("|")
    if len(parts) not in (1, 3):
        raise FhirError(400, "invalid", f"'{raw}' is not a valid quantity search value (expected [prefix]number, "
                                        f"[prefix]number|system|code or [prefix]number||code)")
    prefix, text = _split_prefix(parts[0], "quantity")
    number = _number_query(prefix, text, raw, "quantity")
    if len(parts) == 1:
        return QuantityQuery(number, None, None)
    return QuantityQuery(number, parts[1] or None, parts[2] or None)


# --- conditions ------------------------------------------------------------------------------------

def _approximately(q: NumberQuery) -> Cond:
    """Within 10% of the search value (inclusive), or within its precision range ``[low, high)`` when
    that is wider: the union of two ranges around the value, so ``ap0`` is ``eq0`` (0.5 is not in it)."""
    margin = abs(q.value).scaleb(-1)  # exact, unlike a division in the default context
    with localcontext() as ctx:
        ctx.prec = len(q.value.as_tuple().digits) + 3
        low, high = q.value - margin, q.value + margin
    upper = Compare("value", "<=", high) if high >= q.high else Compare("value", "<", q.high)
    return all_of(Compare("value", ">=", min(low, q.low)), upper)


def number_condition(q: NumberQuery) -> Cond:
    """A condition on a number index entry (columns ``value``, ``low``, ``high``); see the module
    docstring for the meaning of each prefix."""
    eq = all_of(Compare("value", ">=", q.low), Compare("value", "<", q.high))
    simple = {"gt": ">", "lt": "<", "ge": ">=", "le": "<="}
    if q.prefix == "eq":
        return eq
    if q.prefix == "ne":
        return Not(eq)
    if q.prefix in simple:
        return Compare("value", simple[q.prefix], q.value)
    if q.prefix == "sa":
        return Compare("low", ">", q.value)
    if q.prefix == "eb":
        return Compare("high", "<=", q.value)
    if q.prefix == "ap":
        return _approximately(q)
    raise FhirError(400, "invalid", f"Unknown number prefix '{q.prefix}'")


def quantity_condition(q: QuantityQuery) -> Cond:
    """The number condition, and the unit: system and code together, or (``||code``) the code or
    the human-readable unit."""
    parts = [number_condition(q.number)]
    if q.system is not None:
        parts.append(Compare("system", "=", q.system))
    if q.code is not None:
        code = Compare("code", "=", q.code)
        parts.append(code if q.system is not None else any_of(code, Compare("unit", "=", q.code)))
    return all_of(*parts)
