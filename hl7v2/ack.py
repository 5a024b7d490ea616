"""Acknowledgements (HL7 v2.5 original mode): AA applied, AE refused for a business reason, AR
not processed. A refusal carries an ERR segment: where (ERR-2), the HL7 error code of table 0357
(ERR-3), the severity (ERR-4), the DMP error code when there is one (ERR-5), the English
diagnostic (ERR-7) and the French message for the user (ERR-8).

The ACK is written in the message's own character set and repeats its MSH-18, so a sender in
ISO 8859-1 reads accented French text back correctly.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass

from hl7v2.er7 import DEFAULT, Delimiters, Message, escape

ACCEPT, ERROR, REJECT = "AA", "AE", "AR"
#: HL7 table 0357, the codes the gateway uses.
REQUIRED_FIELD_MISSING, DATA_TYPE_ERROR, TABLE_VALUE_NOT_FOUND = "101", "102", "103"
UNSUPPORTED_MESSAGE_TYPE, UNSUPPORTED_EVENT, UNSUPPORTED_VERSION = "200", "201", "203"
UNKNOWN_KEY, DUPLICATE_KEY, INTERNAL_ERROR = "204", "205", "207"
SEGMENT_SEQUENCE_ERROR = "100"
HL7_ERRORS = {
    "100": "Segment sequence error", "101": "Required field missing", "102": "Data type error",
    "103": "Table value not found", "200": "Unsupported message type", "201": "Unsupported event code",
    "203": "Unsupported version id", "204": "Unknown key identifier", "205": "Duplicate key identifier",
    "207": "Application internal error",
}
APPLICATION = "MES"
_CONTROL = itertools.count(1)


@dataclass(frozen=True)
class Location:
    """ERR-2: segment, its sequence among segments of that name, field, component."""

    segment: str
    field: int | None = None
    component: int | None = None
    sequence: int = 1

    def er7(self) -> str:
        parts = [self.segment, str(self.sequence), str(self.field or ""), "1" if self.field else "",
                 str(self.component or "")]
        return "^".join(parts).rstrip("^")


@dataclass(frozen=True)
class V2Problem:
    """Why a message is refused, or what the sender should know of an accepted one: an ERR segment."""

    code: str  # HL7 table 0357
    english: str
    french: str
    location: Location | None = None
    dmp_code: str | None = None  # the CI-SIS DMP error code (902, 903, …), ERR-5
    severity: str = "E"  # ERR-4: E error, W warning (an AA may carry warnings)


class V2Error(Exception):
    """A message the gateway refuses: AE (business error) or AR (cannot be processed)."""

    def __init__(self, ack_code: str, *problems: V2Problem) -> None:
        super().__init__("; ".join(p.english for p in problems))
        self.ack_code = ack_code
        self.problems = problems


def acknowledge(message: Message | None, ack_code: str, problems: tuple[V2Problem, ...] = (), *,
                echo: dict[str, str] | None = None) -> bytes:
    """The ACK of ``message``, encoded in its character set. Without a readable message, ``echo``
    gives what could be read of its MSH (``control_id``, ``sender``, …) for MSA-2 and the header."""
    d = message.delimiters if message is not None else DEFAULT
    msh = _header(message, echo or {})
    text = problems[0].english if problems and ack_code != ACCEPT else ""
    segments = [_msh(d, msh), _join(d, ["MSA", ack_code, escape(msh["control_id"], d), escape(text[:80], d)])]
    segments += [_err(d, p) for p in problems]
    codec = message.codec if message is not None else "utf-8"
    return "\r".join(segments).encode(codec, errors="replace") + b"\r"


def _header(message: Message | None, echo: dict[str, str]) -> dict[str, str]:
    if message is None:
        return {"sending_app": echo.get("sending_app", ""), "sending_facility": echo.get("sending_facility", ""),
                "receiving_app": echo.get("receiving_app", ""), "receiving_facility": "",
                "trigger": echo.get("trigger", ""), "control_id": echo.get("control_id", ""),
                "version": echo.get("version", "") or "2.5", "charset": ""}
    msh = message.msh
    return {"sending_app": msh.raw(3), "sending_facility": msh.raw(4), "receiving_app": msh.raw(5),
            "receiving_facility": msh.raw(6), "trigger": msh(9, 2), "control_id": msh(10),
            "version": msh.raw(12) or "2.5", "charset": msh.raw(18)}


def _msh(d: Delimiters, h: dict[str, str]) -> str:
    """The ACK's MSH: sender and receiver swapped, a control id of its own, version and charset repeated."""
    now = time.strftime("%Y%m%d%H%M%S")
    control = f"{APPLICATION}{_base36(time.time_ns() // 1000)}{_base36(next(_CONTROL) % 36**4):0>4}"  # ≤ 20
    fields = ["MSH", d.encoding_characters, h["receiving_app"] or APPLICATION, h["receiving_facility"],
              h["sending_app"], h["sending_facility"], now, "",
              d.component.join(["ACK", h["trigger"], "ACK"]) if h["trigger"] else "ACK", control, "P",
              h["version"], "", "", "", "", "", h["charset"]]
    return d.field.join(fields).rstrip(d.field)


def _base36(number: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = digits[digit] + out
        if not number:
            return out


def _err(d: Delimiters, problem: V2Problem) -> str:
    c = d.component
    fields = ["ERR", "", problem.location.er7().replace("^", c) if problem.location else "",
              c.join([problem.code, escape(HL7_ERRORS.get(problem.code, ""), d), "HL70357"]), problem.severity,
              c.join([problem.dmp_code, "", "DMPERRORCODE"]) if problem.dmp_code else "", "",
              escape(problem.english, d), escape(problem.french, d)]
    return _join(d, fields)


def _join(d: Delimiters, fields: list[str]) -> str:
    return d.field.join(fields).rstrip(d.field)


_MSH10 = re.compile(rb"^MSH(.)")


def readable_header(data: bytes) -> dict[str, str]:
    """What can be read of a broken message's MSH, to answer it (MSA-2 = its MSH-10) all the same."""
    match = _MSH10.match(data)
    if not match:
        return {}
    separator = match.group(1)
    first = re.split(rb"[\r\n]", data[:4096], maxsplit=1)[0]
    fields = [f.decode("latin-1", errors="replace") for f in first.split(separator)]
    names = {2: "sending_app", 3: "sending_facility", 4: "receiving_app", 9: "control_id", 11: "version"}
    found = {name: fields[i] for i, name in names.items() if i < len(fields) and len(fields[i]) < 200}
    component = fields[1][:1] if len(fields) > 1 and fields[1] else "^"
    if len(fields) > 8 and component in fields[8]:
        found["trigger"] = fields[8].split(component)[1]
    return found
