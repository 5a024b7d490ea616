"""Date, number and quantity search values: index entries, query parsing and conditions.

Conditions are checked with a tiny in-memory evaluator, so these tests pin the semantics that
every backend must compile to (R4 search.html, "date", "number", "quantity", "Prefixes").
"""

from __future__ import annotations

import itertools
import operator
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from fhir_server.core.errors import FhirError
from fhir_server.search.conditions import All, AnyOf, Compare, Cond, Not
from fhir_server.search.values import date, number
from fhir_server.search.values.date import MAX_INSTANT, MIN_INSTANT

_OPS = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
UCUM = "http://unitsofmeasure.org"


def evaluate(cond: Cond, entry: dict) -> bool:
    """What a backend must answer for one index entry (a missing/None column never compares)."""
    if isinstance(cond, Compare):
        value = entry.get(cond.column)
        return value is not None and _OPS[cond.op](value, cond.value)
    if isinstance(cond, All):
        return all(evaluate(part, entry) for part in cond.parts)
    if isinstance(cond, AnyOf):
        return any(evaluate(part, entry) for part in cond.parts)
    if isinstance(cond, Not):
        return not evaluate(cond.part, entry)
    raise TypeError(cond)


def date_matches(query: str, value, zone=UTC, now: datetime | None = None) -> bool:
    """Some index range of the resource value satisfies the query (as a store would test)."""
    cond = date.condition(date.parse_query(query, zone), now=now)
    return any(evaluate(cond, {"low": low, "high": high}) for low, high in date.index_ranges(value, zone))


def ops_of(cond: Cond) -> set[str]:
    if isinstance(cond, Compare):
        return {cond.op}
    if isinstance(cond, Not):
        return ops_of(cond.part)
    return set().union(*(ops_of(p) for p in cond.parts))


# --- date: index ranges ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("2024", ("2024-01-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z")),
    ("2024-02", ("2024-02-01T00:00:00.000000Z", "2024-03-01T00:00:00.000000Z")),
    ("2024-12", ("2024-12-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z")),
    ("2024-03-05", ("2024-03-05T00:00:00.000000Z", "2024-03-06T00:00:00.000000Z")),
    ("2024-03-05T10:00Z", ("2024-03-05T10:00:00.000000Z", "2024-03-05T10:01:00.000000Z")),
    ("2024-03-05T10:00:00Z", ("2024-03-05T10:00:00.000000Z", "2024-03-05T10:00:01.000000Z")),
    ("2024-03-05T10:00:00+01:00", ("2024-03-05T09:00:00.000000Z", "2024-03-05T09:00:01.000000Z")),
    ("2024-03-05T10:00:00-05:30", ("2024-03-05T15:30:00.000000Z", "2024-03-05T15:30:01.000000Z")),
    ("2024-03-05T10:00:00.5Z", ("2024-03-05T10:00:00.500000Z", "2024-03-05T10:00:00.600000Z")),
    ("2024-03-05T10:00:00.123Z", ("2024-03-05T10:00:00.123000Z", "2024-03-05T10:00:00.124000Z")),
    ("2024-03-05T10:00:00.123456Z", ("2024-03-05T10:00:00.123456Z", "2024-03-05T10:00:00.123457Z")),
    ("2024-03-05T10:00:00.1234567Z", ("2024-03-05T10:00:00.123456Z", "2024-03-05T10:00:00.123457Z")),
    ("2024-12-31T23:59:59Z", ("2024-12-31T23:59:59.000000Z", "2025-01-01T00:00:00.000000Z")),
    ("9999", ("9999-01-01T00:00:00.000000Z", MAX_INSTANT)),
    ("0001-01-01", (MIN_INSTANT, "0001-01-02T00:00:00.000000Z")),
])
def test_index_range_covers_the_precision(value, expected):
    assert date.index_ranges(value, UTC) == [expected]


def test_local_time_is_the_server_zone_by_default():
    # Paris is +01:00 in winter, +02:00 in summer; a date without zone covers local midnights.
    assert date.index_ranges("2024-03") == [("2024-02-29T23:00:00.000000Z", "2024-03-31T22:00:00.000000Z")]
    assert date.index_ranges("2024-01-15T10:00:00") == [("2024-01-15T09:00:00.000000Z",
                                                          "2024-01-15T09:00:01.000000Z")]
    assert date.index_ranges("2024-07-15T10:00:00") == [("2024-07-15T08:00:00.000000Z",
                                                          "2024-07-15T08:00:01.000000Z")]
    # DST days are 23 and 25 hours long.
    assert date.index_ranges("2024-03-31") == [("2024-03-30T23:00:00.000000Z", "2024-03-31T22:00:00.000000Z")]
    assert date.index_ranges("2024-10-27") == [("2024-10-26T22:00:00.000000Z", "2024-10-27T23:00:00.000000Z")]
    # An explicit offset wins over the server zone.
    assert date.index_ranges("2024-07-15T10:00:00Z") == [("2024-07-15T10:00:00.000000Z",
                                                           "2024-07-15T10:00:01.000000Z")]


def test_z_offset_and_local_time_of_the_same_moment_agree():
    same = ["2024-01-15T09:00:00Z", "2024-01-15T10:00:00+01:00", "2024-01-15T10:00:00"]
    assert len({tuple(date.index_ranges(v)) for v in same}) == 1
    for v in same:
        assert date_matches("eq2024-01-15T09:00:00Z", v, zone=date.DEFAULT_ZONE)
        assert date_matches("eq2024-01-15T10:00:00+01:00", v, zone=date.DEFAULT_ZONE)


def test_instants_sort_as_strings():
    values = ["0001-01-01", "0999-05-01", "2024-03-05T10:00:00.5Z", "2024-03-05T10:00:00.05Z", "2024",
              "2024-03-05T11:00:00+02:00", "9999-12-31"]
    lows = [date.index_ranges(v, UTC)[0][0] for v in values]
    moments = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in lows]
    assert sorted(lows) == [lows[i] for i in sorted(range(len(lows)), key=moments.__getitem__)]
    assert all(len(t) == len(MIN_INSTANT) for t in lows)


def test_period_and_open_ends():
    assert date.index_ranges({"start": "2013-01-10", "end": "2013-01-20"}, UTC) == [
        ("2013-01-10T00:00:00.000000Z", "2013-01-21T00:00:00.000000Z")]
    assert date.index_ranges({"start": "2013-01-10"}, UTC) == [("2013-01-10T00:00:00.000000Z", MAX_INSTANT)]
    assert date.index_ranges({"end": "2013-01-20T10:00:00Z"}, UTC) == [(MIN_INSTANT, "2013-01-20T10:00:01.000000Z")]


def test_timing_events_and_bounds():
    timing = {"event": ["2024-01-01", "2024-01-08T09:00:00Z"],
              "repeat": {"boundsPeriod": {"start": "2024-01-01", "end": "2024-02"}, "frequency": 1}}
    assert date.index_ranges(timing, UTC) == [
        ("2024-01-01T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z"),
        ("2024-01-08T09:00:00.000000Z", "2024-01-08T09:00:01.000000Z"),
        ("2024-01-01T00:00:00.000000Z", "2024-03-01T00:00:00.000000Z"),
    ]
    assert date.index_ranges({"repeat": {"boundsDuration": {"value": 5, "unit": "d"}}}, UTC) == []


@pytest.mark.parametrize("value", [None, 3, D("2024"), True, [], {}, {"text": "x"}, "", "yesterday", "2024-13",
                                   "2024-02-30", "2024-01-01T25:00:00Z", "2024-01-01T10:00:00+1:00", "24-01-01",
                                   {"start": "garbage"}, {"start": "2024-02", "end": "2024-01"},
                                   {"event": "not a list of dates"}, {"repeat": ["x"]}])
def test_anything_else_has_no_range(value):
    assert date.index_ranges(value, UTC) == []


# --- date: queries ------------------------------------------------------------------------------------

def test_parse_query_prefix_and_precision():
    assert date.parse_query("2013-01", UTC) == date.DateQuery("eq", "2013-01-01T00:00:00.000000Z",
                                                              "2013-02-01T00:00:00.000000Z")
    assert date.parse_query("ge2013-01-14T10:00:00Z", UTC).prefix == "ge"
    assert date.parse_query("sa2013", UTC).low == "2013-01-01T00:00:00.000000Z"


def test_parse_query_accepts_a_plus_decoded_as_space():
    assert date.parse_query("2024-01-01T10:00:00 01:00") == date.parse_query("2024-01-01T10:00:00+01:00")
    assert date.parse_query("le2024-01-01T10:00:00.25 05:30").low == "2024-01-01T04:30:00.250000Z"


@pytest.mark.parametrize("raw", ["", "eq", "xx2024", "EQ2024", "2024-13", "2024-01-32", "13/01/2024", "2024-1-1",
                                 "2024-01-01T10", "2024-01-01T10:00:00 1:00", "ge 2024", "2024-01-01Z", "now",
                                 "\u0662\u0660\u0662\u0664"])
def test_bad_date_queries_are_400(raw):
    with pytest.raises(FhirError) as caught:
        date.parse_query(raw)
    assert caught.value.status == 400
    assert caught.value.issues[0].code == "invalid"
    assert repr(raw)[1:-1] in caught.value.issues[0].diagnostics


# --- date: R4 examples --------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "value", "expected"), [
    # eq: the search range fully contains the target
    ("eq2013-01-14", "2013-01-14T00:00:00Z", True),
    ("eq2013-01-14", "2013-01-14T10:00:00Z", True),
    ("eq2013-01-14", "2013-01-15T00:00:00Z", False),
    ("2013-01", "2013-01-14", True),
    ("2013-01", "2013-01", True),
    ("2013-01", "2013", False),
    ("2013", "2013-01", True),
    # ne
    ("ne2013-01-14", "2013-01-15T00:00:00Z", True),
    ("ne2013-01-14", "2013-01-14T00:00:00Z", False),
    ("ne2013-01-14", "2013-01-14T10:00:00Z", False),
    ("ne2013-01", "2013", True),
    # lt / gt: some of the target lies below / above the search range
    ("lt2013-01-14T10:00:00Z", "2013-01-14", True),
    ("gt2013-01-14T10:00:00Z", "2013-01-14", True),
    ("lt2013-01-14", "2013-01-14T10:00:00Z", False),
    ("gt2013-01-14", "2013-01-14T10:00:00Z", False),
    ("gt2013-01", "2013-01-14", False),
    ("gt2013-01", "2013", True),
    ("lt2013-01", "2013", False),
    ("lt2013-01", "2012-12-31T23:59:59Z", True),
    ("gt2013-01", "2013-02-01T00:00:00Z", True),
    # ge / le: also the equal ones
    ("ge2013-01", "2013-01-14", True),
    ("le2013-01", "2013-01-14", True),
    ("ge2013-01", "2012-12-31", False),
    ("le2013-01", "2013-02-01", False),
    ("le2013-01", "2013", False),
    ("ge2013-01", "2013", True),
    # sa / eb: wholly after / wholly before
    ("sa2013-01", "2013-02-01", True),
    ("sa2013-01", "2013-01-31T23:59:59Z", False),
    ("sa2013-01", "2013", False),
    ("eb2013-01", "2012-12-31", True),
    ("eb2013-01", "2013-01-01T00:00:00Z", False),
    ("eb2013-01", "2013", False),
    # periods open at one end
    ("gt2013-01-14", {"start": "2013-01-10"}, True),
    ("ge2013-01-14", {"start": "2013-01-10"}, True),
    ("lt2013-01-01", {"start": "2013-01-10"}, False),
    ("le2013-01-14", {"start": "2013-01-10"}, True),
    ("eq2013-01", {"start": "2013-01-10"}, False),
    ("sa2013-01-09", {"start": "2013-01-10"}, True),
    ("eb2014", {"start": "2013-01-10"}, False),
    ("lt2013-01-01", {"end": "2013-01-20"}, True),
    ("gt2013-01-30", {"end": "2013-01-20"}, False),
    ("eb2013-01-21", {"end": "2013-01-20"}, True),
    ("eb2013-01-20", {"end": "2013-01-20"}, False),
    ("sa2000", {"end": "2013-01-20"}, False),
    ("eq2013-01", {"start": "2013-01-10", "end": "2013-01-20"}, True),
    ("eq2013-01-15", {"start": "2013-01-10", "end": "2013-01-20"}, False),
    ("ne2013-01-15", {"start": "2013-01-10", "end": "2013-01-20"}, True),
    # instants with fractional seconds
    ("eq2024-01-15T10:00:00Z", "2024-01-15T10:00:00.123Z", True),
    ("eq2024-01-15T10:00:00.1Z", "2024-01-15T10:00:00.123Z", True),
    ("eq2024-01-15T10:00:00.12Z", "2024-01-15T10:00:00.123Z", True),
    ("eq2024-01-15T10:00:00.13Z", "2024-01-15T10:00:00.123Z", False),
    ("eq2024-01-15T10:00:00.1Z", "2024-01-15T10:00:00Z", False),
    ("gt2024-01-15T10:00:00.1Z", "2024-01-15T10:00:00Z", True),
    ("sa2024-01-15T10:00:00.1Z", "2024-01-15T10:00:00.2Z", True),
    ("eb2024-01-15T10:00:00.2Z", "2024-01-15T10:00:00.19999Z", True),
    # a query offset vs a resource in Z
    ("eq2024-01-15T11:00:00+01:00", "2024-01-15T10:00:00Z", True),
    ("eq2024-01-15T11:00:00 01:00", "2024-01-15T10:00:00Z", True),
    ("eq2024-01-15T11:00:00Z", "2024-01-15T10:00:00Z", False),
])
def test_r4_date_examples(query, value, expected):
    assert date_matches(query, value) is expected


def test_a_timing_matches_on_any_event():
    timing = {"event": ["2024-01-01", "2024-03-01"]}
    assert date_matches("eq2024-03", timing)
    assert not date_matches("eq2024-02", timing)


# --- date: brute force against the prose of R4 "Prefixes" ---------------------------------------------

_GRID = 7  # points 0..6; 0 and 6 are the open-end sentinels


def _instant(k: int) -> str:
    return {0: MIN_INSTANT, _GRID - 1: MAX_INSTANT}.get(k, f"2024-01-0{k}T00:00:00.000000Z")


def _reference(prefix: str, target: set[int], search: set[int]) -> bool:
    """Set semantics of R4's table on integer points; ranges are [low, high)."""
    lo, hi = min(search), max(search) + 1
    eq = target <= search
    gt = any(x >= hi for x in target)  # "the range above the search value intersects the target"
    lt = any(x < lo for x in target)
    return {"eq": eq, "ne": not eq, "gt": gt, "lt": lt, "ge": gt or eq, "le": lt or eq,
            "sa": all(x >= hi for x in target), "eb": all(x < lo for x in target)}[prefix]


def test_condition_agrees_with_set_semantics_on_a_grid():
    ranges = [(a, b) for a, b in itertools.combinations(range(_GRID), 2)]
    checked = 0
    for prefix in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"):
        for (ql, qh), (tl, th) in itertools.product(ranges, ranges):
            cond = date.condition(date.DateQuery(prefix, _instant(ql), _instant(qh)))
            got = evaluate(cond, {"low": _instant(tl), "high": _instant(th)})
            assert got == _reference(prefix, set(range(tl, th)), set(range(ql, qh))), (prefix, ql, qh, tl, th)
            checked += 1
    assert checked == 8 * len(ranges) ** 2


@pytest.mark.parametrize("prefix", ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
def test_date_conditions_use_only_portable_ops(prefix):
    assert ops_of(date.condition(date.parse_query(prefix + "2024"))) <= {"<", "<=", ">", ">=", "="}


# --- date: ap -------------------------------------------------------------------------------------------

NOW = datetime(2024, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(("query", "value", "expected"), [
    # ten years ago: widened by about a year on both sides
    ("ap2014-01-01", "2014-01-01", True),
    ("ap2014-01-01", "2013-03-01", True),
    ("ap2014-01-01", "2014-10-01", True),
    ("ap2014-01-01", "2012-06-01", False),
    ("ap2014-01-01", "2015-06-01", False),
    ("ap2014-01-01", {"start": "2010", "end": "2011"}, False),
    ("ap2014-01-01", {"start": "2010", "end": "2012"}, True),
    ("ap2014-01-01", {"start": "2010"}, True),
    # near now: at least a day
    ("ap2024-01-01", "2023-12-31", True),
    ("ap2024-01-01", "2024-01-02", True),
    ("ap2024-01-01", "2023-12-30", False),
    ("ap2024-01-01", "2024-01-03T00:00:00Z", False),
])
def test_ap_widens_by_a_tenth_of_the_gap_to_now(query, value, expected):
    assert date_matches(query, value, now=NOW) is expected


def test_ap_clamps_at_the_open_ends():
    cond = date.condition(date.parse_query("ap0001", UTC), now=NOW)
    assert evaluate(cond, {"low": MIN_INSTANT, "high": "0001-06-01T00:00:00.000000Z"})


# --- numbers ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (D("100"), (D("99.5"), D("100.5"))),
    (D("100.00"), (D("99.995"), D("100.005"))),
    (D("1.50"), (D("1.495"), D("1.505"))),
    (D("1E+2"), (D("50"), D("150"))),
    (D("1.0E+2"), (D("95"), D("105"))),
    (D("-2.5"), (D("-2.55"), D("-2.45"))),
    (D("0"), (D("-0.5"), D("0.5"))),
    (3, (D("2.5"), D("3.5"))),
    (D("123456789012345678901234567890.123"), (D("123456789012345678901234567890.1225"),
                                               D("123456789012345678901234567890.1235"))),
])
def test_number_range_is_half_an_ulp_either_side(value, expected):
    assert number.number_range(value) == expected
    assert number.number_index(value) == {"value": D(value), "low": expected[0], "high": expected[1]}


@pytest.mark.parametrize("value", [True, False, None, "100", 1.5, D("NaN"), D("Infinity"), {"value": 1}])
def test_non_numbers_have_no_range(value):
    assert number.number_range(value) is None
    assert number.number_index(value) is None


def test_parse_number():
    assert number.parse_number("100") == number.NumberQuery("eq", D("100"), D("99.5"), D("100.5"))
    assert number.parse_number("ge1e2") == number.NumberQuery("ge", D("1e2"), D("50"), D("150"))
    assert number.parse_number("lt-0.05").value == D("-0.05")
    assert number.parse_number("1.5E-3").low == D("0.00145")


@pytest.mark.parametrize("raw", ["", "ge", "abc", "xx100", "1,5", "1.", ".5", "1e", "100 ", "NaN", "Infinity",
                                 "0x10", "1e999999999999", "\u0661\u0660\u0660"])
def test_bad_numbers_are_400(raw):
    with pytest.raises(FhirError) as caught:
        number.parse_number(raw)
    assert caught.value.status == 400
    assert raw in caught.value.issues[0].diagnostics


def number_matches(query: str, value) -> bool:
    entry = number.number_index(D(value) if isinstance(value, str) else value)
    return evaluate(number.number_condition(number.parse_number(query)), entry)


@pytest.mark.parametrize(("query", "value", "expected"), [
    # R4: 100 means [99.5, 100.5); 100.00 means [99.995, 100.005)
    ("100", "99.5", True), ("100", "100.4", True), ("100", "100.5", False), ("100", "99.4", False),
    ("100", "100.0", True), ("100", 100, True),
    ("100.00", "100", True), ("100.00", "100.004", True), ("100.00", "100.005", False), ("100.00", "99.99", False),
    ("1e2", "140", True), ("1e2", "150", False), ("1e2", "50", True),
    ("eq-5", "-5.2", True), ("eq-5", "-5.6", False),
    # ne: outside the search range
    ("ne100", "100.4", False), ("ne100", "101", True), ("ne100", "99.4", True),
    # gt lt ge le: against the exact value, precision ignored
    ("gt100", "100.01", True), ("gt100", "100", False), ("gt100", "100.4", True),
    ("lt100", "99.99", True), ("lt100", "100", False), ("lt100", "99.6", True),
    ("ge100", "100", True), ("ge100", "99.99", False),
    ("le100", "100", True), ("le100", "100.0001", False),
    ("gt1e2", "101", True),
    # sa eb: the target's whole precision range
    ("sa100", "101", True), ("sa100", "100.4", True), ("sa100", "100", False), ("sa100", "100.5", True),
    ("eb100", "99", True), ("eb100", "99.5", True), ("eb100", "100", False), ("eb100", "99.99", True),
    # ap: within 10%, never narrower than eq
    ("ap100", "90", True), ("ap100", "110", True), ("ap100", "89.9", False), ("ap100", "110.1", False),
    ("ap-100", "-95", True), ("ap-100", "-111", False),
    ("ap0", "0.4", True), ("ap0", "-0.5", True), ("ap0", "0.6", False),
])
def test_r4_number_examples(query, value, expected):
    assert number_matches(query, value) is expected


@pytest.mark.parametrize("prefix", ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
def test_number_conditions_use_only_portable_ops_and_decimals(prefix):
    cond = number.number_condition(number.parse_number(prefix + "1.5"))
    assert ops_of(cond) <= {"<", "<=", ">", ">=", "="}

    def values(c: Cond) -> list:
        if isinstance(c, Compare):
            return [c.value]
        if isinstance(c, Not):
            return values(c.part)
        return [v for p in c.parts for v in values(p)]

    assert all(isinstance(v, D) for v in values(cond))


# --- quantities ----------------------------------------------------------------------------------------

MG = {"value": D("5.4"), "unit": "mg", "system": UCUM, "code": "mg"}
MG_LABEL = {"value": D("5.4"), "unit": "mg", "system": UCUM, "code": "milligram"}
NO_UNIT = {"value": D("5.4")}


def quantity_matches(query: str, value: dict) -> bool:
    entry = number.quantity_index(value)
    return evaluate(number.quantity_condition(number.parse_quantity(query)), entry)


def test_quantity_index():
    assert number.quantity_index(MG) == {"value": D("5.4"), "low": D("5.35"), "high": D("5.45"),
                                         "system": UCUM, "code": "mg", "unit": "mg"}
    assert number.quantity_index({"value": 12, "currency": "EUR"}) == {
        "value": D("12"), "low": D("11.5"), "high": D("12.5"), "system": number.CURRENCY_SYSTEM, "code": "EUR",
        "unit": None}
    assert number.quantity_index({"unit": "mg"}) is None
    assert number.quantity_index({"value": True}) is None
    assert number.quantity_index({"value": "5"}) is None


def test_parse_quantity_forms():
    assert number.parse_quantity("5.4") == number.QuantityQuery(number.parse_number("5.4"), None, None)
    assert number.parse_quantity("le5.4|http://unitsofmeasure.org|mg") == number.QuantityQuery(
        number.parse_number("le5.4"), UCUM, "mg")
    assert number.parse_quantity("5.4||mg") == number.QuantityQuery(number.parse_number("5.4"), None, "mg")


@pytest.mark.parametrize(("query", "value", "expected"), [
    ("5.4|http://unitsofmeasure.org|mg", MG, True),
    ("5.4|http://unitsofmeasure.org|mg", MG_LABEL, False),
    ("5.4|http://other.org|mg", MG, False),
    ("5.4|http://unitsofmeasure.org|g", MG, False),  # no UCUM conversion
    ("0.0054|http://unitsofmeasure.org|g", MG, False),
    ("5.4||mg", MG, True),
    ("5.4||mg", MG_LABEL, True),  # the unit column
    ("5.4||milligram", MG_LABEL, True),  # the code column
    ("5.4||g", MG, False),
    ("5.4||mg", NO_UNIT, False),
    ("5.4", MG, True),
    ("5.4", NO_UNIT, True),
    ("5", MG, True),
    ("5.40", MG, True),
    ("5.41||mg", MG, False),
    ("gt5|http://unitsofmeasure.org|mg", MG, True),
    ("lt5||mg", MG, False),
    ("ne5.4||mg", MG, False),
    ("ne6||mg", MG, True),
    ("ap5||mg", MG, True),
    ("5.4|http://unitsofmeasure.org|", MG, True),  # any code of that system
    ("12|urn:iso:std:iso:4217|EUR", {"value": D("12.00"), "currency": "EUR"}, True),
])
def test_quantity_matching(query, value, expected):
    assert quantity_matches(query, value) is expected


@pytest.mark.parametrize("raw", ["", "mg", "5.4|mg", "5.4|a|b|c", "xx5.4||mg", "||mg", "5,4||mg"])
def test_bad_quantities_are_400(raw):
    with pytest.raises(FhirError) as caught:
        number.parse_quantity(raw)
    assert caught.value.status == 400
    assert caught.value.issues[0].code == "invalid"
