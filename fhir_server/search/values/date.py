"""Date search values (R4 search.html#date): every value is a half-open range of instants.

A FHIR date, dateTime or instant stands for the whole interval its precision covers: ``2024-03``
is all of March, ``2024-03-05T10:00:00+01:00`` is one second. Index entries and query values are
both turned into ``[low, high)`` and compared as ranges (R4 "Prefixes"), so partial dates work in
both directions without special cases.

Instants are stored as UTC strings in one fixed format (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, as
``core/resources.py:now_instant``), so string order is time order in every backend. Open ends
(a Period without start or end) use the sentinels ``MIN_INSTANT`` / ``MAX_INSTANT``.

A date or dateTime without an offset is in the server's zone (R4: "where the timezone is not
specified, the server's timezone applies"): ``DEFAULT_ZONE``, a parameter so tests can vary it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.core.errors import FhirError
from fhir_server.search.conditions import Compare, Cond, Not, all_of, any_of

MIN_INSTANT = "0001-01-01T00:00:00.000000Z"
MAX_INSTANT = "9999-12-31T23:59:59.999999Z"
DEFAULT_ZONE: tzinfo = ZoneInfo("Europe/Paris")
PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})
#: ``ap`` never widens the search range by less than this (see ``_approximately``).
AP_MIN_MARGIN = timedelta(days=1)

_VALUE = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<offset>Z|[+-]\d{2}:\d{2})?)?)?)?",
    re.ASCII,  # int() would accept other scripts' digits
)
#: ``+01:00`` after URL decoding turned ``+`` into a space.
_SPACED_OFFSET = re.compile(r"(T[\d:.]+) (\d{2}:\d{2})$", re.ASCII)
_FORMAT_HINT = "YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|+hh:mm|-hh:mm]]]]"


@dataclass(frozen=True)
class DateQuery:
    """One query value: the prefix and the range ``[low, high)`` its precision covers."""

    prefix: str
    low: str
    high: str


# --- instants as text ---------------------------------------------------------------------------

def _text(moment: datetime) -> str:
    """Fixed width by hand: ``strftime('%Y')`` does not pad years below 1000 on every platform."""
    m = moment.astimezone(UTC)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
            f".{m.microsecond:06d}Z")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _utc(moment: datetime | None) -> str:
    """The UTC text of a range bound; beyond years 1..9999 in UTC (or None: past 9999) clamps to
    the nearer sentinel."""
    if moment is None:
        return MAX_INSTANT
    try:
        return _text(moment)
    except OverflowError:
        return MIN_INSTANT if moment.year < 5000 else MAX_INSTANT


def _shift(text: str, delta: timedelta) -> str:
    """An instant text moved by ``delta``, clamped to the sentinels."""
    try:
        return _text(_moment(text) + delta)
    except OverflowError:
        return MIN_INSTANT if delta < timedelta(0) else MAX_INSTANT


# --- one date/dateTime/instant → [low, high) ----------------------------------------------------

def _offset(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def _next_calendar(start: datetime, unit: str) -> datetime | None:
    """The start of the next year/month/day in wall-clock time; None past year 9999."""
    try:
        if unit == "year":
            return start.replace(year=start.year + 1)
        if unit == "month":
            return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        return start + timedelta(days=1)
    except (ValueError, OverflowError):
        return None


def _date_range(parts: dict, zone: tzinfo) -> tuple[str, str]:
    """A date of year, month or day precision: local midnights (DST-aware), converted to UTC."""
    unit = "day" if parts["day"] else "month" if parts["month"] else "year"
    start = datetime(int(parts["year"]), int(parts["month"] or 1), int(parts["day"] or 1))
    end = _next_calendar(start, unit)
    return _utc(start.replace(tzinfo=zone)), _utc(end.replace(tzinfo=zone) if end else None)


def _time_step(parts: dict) -> timedelta:
    """The width of a time's precision: a minute, a second, or the given fractional digits."""
    if parts["second"] is None:
        return timedelta(minutes=1)
    digits = len(parts["fraction"] or "")
    return timedelta(microseconds=10 ** (6 - digits)) if digits <= 6 else timedelta(microseconds=1)


def _datetime_range(parts: dict, zone: tzinfo) -> tuple[str, str]:
    """A dateTime with a time: the step is added in UTC so DST changes cannot reverse the range."""
    fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
    tz = _offset(parts["offset"]) if parts["offset"] else zone
    start = datetime(int(parts["year"]), int(parts["month"]), int(parts["day"]), int(parts["hour"]),
                     int(parts["minute"]), int(parts["second"] or 0), int(fraction), tzinfo=tz)
    try:
        high = _text(start.astimezone(UTC) + _time_step(parts))
    except OverflowError:
        high = MIN_INSTANT if start.year < 5000 else MAX_INSTANT
    return _utc(start), high


def _range(text: str, zone: tzinfo) -> tuple[str, str] | None:
    """``[low, high)`` of a date, dateTime or instant string; None when it is not one."""
    match = _VALUE.fullmatch(text)
    if match is None:
        return None
    parts = match.groupdict()
    try:
        if parts["hour"] is None:
            return _date_range(parts, zone)
        return _datetime_range(parts, zone)
    except ValueError:  # month 13, February 30, hour 25, offset beyond a day...
        return None


# --- resource values → index ranges -------------------------------------------------------------

def _period(value: dict, zone: tzinfo) -> tuple[str, str] | None:
    """A Period: from the start of ``start`` to the end of ``end``'s precision; a missing end
    means ongoing (R4 datatypes), a missing start means unknown, both are open."""
    low, high = MIN_INSTANT, MAX_INSTANT
    if isinstance(value.get("start"), str):
        start = _range(value["start"], zone)
        if start is None:
            return None
        low = start[0]
    if isinstance(value.get("end"), str):
        end = _range(value["end"], zone)
        if end is None:
            return None
        high = end[1]
    return (low, high) if low < high else None


def _timing(value: dict, zone: tzinfo) -> list[tuple[str, str]]:
    """A Timing: each ``event``, plus ``repeat.boundsPeriod`` (boundsDuration/boundsRange are
    relative to something unknown here and are not indexed)."""
    events = value.get("event")
    out = [r for event in (events if isinstance(events, list) else [events])
           if isinstance(event, str) and (r := _range(event, zone))]
    repeat = value.get("repeat")
    bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
    if isinstance(bounds, dict) and (period := _period(bounds, zone)):
        out.append(period)
    return out


def index_ranges(value: Any, zone: tzinfo = DEFAULT_ZONE) -> list[tuple[str, str]]:
    """The ranges one value selected by a date parameter's expression contributes to its index.

    Never raises: the value was validated when written, and an unexpected shape is just not
    searchable (a Period is told from a Timing by its keys)."""
    if isinstance(value, str):
        found = _range(value, zone)
        return [found] if found else []
    if not isinstance(value, dict):
        return []
    if "event" in value or "repeat" in value:
        return _timing(value, zone)
    if "start" in value or "end" in value:
        period = _period(value, zone)
        return [period] if period else []
    return []


# --- query values -------------------------------------------------------------------------------

def _split_prefix(raw: str) -> tuple[str, str]:
    if len(raw) >= 2 and raw[:2].isalpha():
        if raw[:2] not in PREFIXES:
            raise FhirError(400, "invalid", f"Unknown prefix '{raw[:2]}' in date search value '{raw}' "
                                            f"(expected one of {', '.join(sorted(PREFIXES))})")
        return raw[:2], raw[2:]
    return "eq", raw


def parse_query(raw: str, zone: tzinfo = DEFAULT_ZONE) -> DateQuery:
    """``[prefix]date`` from a URL; the range covers the precision given."""
    prefix, text = _split_prefix(raw)
    found = _range(_SPACED_OFFSET.sub(r"\1+\2", text), zone)
    if found is None:
        raise FhirError(400, "invalid", f"'{raw}' is not a valid date search value "
                                        f"(expected [prefix]{_FORMAT_HINT})")
    return DateQuery(prefix, *found)


def _approximately(q: DateQuery, now: datetime | None) -> Cond:
    """``ap``: the ranges overlap once the search range is widened on both sides by 10% of the
    gap between now and the search value's start (R4's recommendation), at least a day, so that
    values near now still get some tolerance."""
    gap = abs((now or datetime.now(UTC)) - _moment(q.low))
    margin = max(gap / 10, AP_MIN_MARGIN)
    return all_of(Compare("low", "<", _shift(q.high, margin)), Compare("high", ">", _shift(q.low, -margin)))


def condition(q: DateQuery, now: datetime | None = None) -> Cond:
    """A condition on a date index entry (columns ``low``/``high``, the resource range ``[low, high)``)
    with R4 range semantics; ``now`` (for ``ap``) defaults to the current time."""
    eq = all_of(Compare("low", ">=", q.low), Compare("high", "<=", q.high))
    gt = Compare("high", ">", q.high)  # some of the target lies above the search range
    lt = Compare("low", "<", q.low)  # some of the target lies below the search range
    if q.prefix == "eq":
        return eq
    if q.prefix == "ne":
        return Not(eq)
    if q.prefix == "gt":
        return gt
    if q.prefix == "lt":
        return lt
    if q.prefix == "ge":
        return any_of(gt, eq)
    if q.prefix == "le":
        return any_of(lt, eq)
    if q.prefix == "sa":
        return Compare("low", ">=", q.high)
    if q.prefix == "eb":
        return Compare("high", "<=", q.low)
    if q.prefix == "ap":
        return _approximately(q, now)
    raise FhirError(400, "invalid", f"Unknown date prefix '{q.prefix}'")
