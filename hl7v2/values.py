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


def parse_ts(raw: str) -> re.Match | None:
    return TS.fullmatch(raw.strip())


def fhir_date_time(raw: str) -> str | None:
    """A FHIR dateTime at the precision sent (a time always gets its offset); None if not a TS."""
    m = parse_ts(raw)
    if m is None:
        return None
    year, month, day, hour, minute, second, offset = m.groups()
    if hour is None:
        return "-".join(p for p in (year, month, day) if p)
    if day is None:
        return None
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    if offset:
        zone = f"{offset[:3]}:{offset[3:]}"
    else:
        zone = local.replace(tzinfo=PARIS).strftime("%z")
        zone = f"{zone[:3]}:{zone[3:]}"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + zone


def fhir_date(raw: str) -> str | None:
    """The date part of a TS (``YYYY-MM-DD`` or less precise); None if not a TS."""
    m = parse_ts(raw)
    if m is None:
        return None
    return "-".join(p for p in m.groups()[:3] if p)
