"""HL7 v2 date-times (TS/DTM: ``YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]``) as FHIR values.

A time without an offset is French local time (the gateway serves French software): its offset is
Europe/Paris's on that day, so summer and winter times both come out right.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d{1,4})?)?([+-]\d{4})?")


def parse_ts(raw: str) -> tuple[str | None, ...] | None:
    """The parts of a TS (year, month, day, hour, minute, second, offset), or None if it is not one
    or names no real moment (a 13th month, a 30th of February, an offset beyond ±14:00)."""
    m = TS.fullmatch(raw.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, offset = parts = m.groups()
    if (hour is not None and day is None) or (offset and (int(offset[1:3]) > 14 or int(offset[3:]) > 59)):
        return None
    try:
        datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    return parts


def fhir_date_time(raw: str) -> str | None:
    """A FHIR dateTime at the precision sent (a time always gets its offset); None if not a TS."""
    parts = parse_ts(raw)
    if parts is None:
        return None
    year, month, day, hour, minute, second, offset = parts
    if hour is None:
        return "-".join(p for p in (year, month, day) if p)
    local = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    if offset:
        zone = f"{offset[:3]}:{offset[3:]}"
    else:
        zone = local.replace(tzinfo=PARIS).strftime("%z")
        zone = f"{zone[:3]}:{zone[3:]}"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + zone


def fhir_date(raw: str) -> str | None:
    """The date part of a TS (``YYYY-MM-DD`` or less precise); None if not a TS."""
    parts = parse_ts(raw)
    return None if parts is None else "-".join(p for p in parts[:3] if p)
