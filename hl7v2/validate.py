"""Strict structure validation with hl7apy, for deployments that want it (``MES_MLLP_VALIDATION=strict``).

hl7apy checks what our own parser does not: the message structure of the event (required
segments and groups in order, e.g. an ADT^A04 without EVN), required fields (TXA-12 of an MDM),
and the data types of the values (a date that is not a date). It takes 6 to 14 ms a message
(``bench/mllp_bench.py``), which is why it is off by default: the gateway's own parser reads
what the mapping needs in microseconds and the core checks the resulting FHIR resources anyway.
"""

from __future__ import annotations

import re

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from hl7v2.ack import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, SEGMENT_SEQUENCE_ERROR, Location, V2Problem
from hl7v2.er7 import SEGMENT_END, Message

#: "Missing required child TXA.TXA_12" / "… ADT_A01.EVN": where hl7apy says something is missing.
MAX_TEXT = 300  # an error quoting a whole value is cut: ERR-7 is for people
_MISSING = re.compile(r"Missing required child (?:[A-Z0-9_]+\.)?([A-Z][A-Z0-9]{2})(?:_(\d+))?\b")


def structure_problems(message: Message, data: bytes) -> list[V2Problem]:
    """What hl7apy finds wrong with the message's structure, fields and data types (empty if nothing)."""
    lines = [_without_document(line, message) for line in SEGMENT_END.split(data.decode(message.codec))]
    try:
        parse_message("\r".join(line for line in lines if line.strip()), find_groups=True,
                      validation_level=VALIDATION_LEVEL.STRICT).validate()
    except (HL7apyException, ValueError) as error:
        return [_problem(str(error)[:MAX_TEXT])]
    return []


def _without_document(line: str, message: Message) -> str:
    """An OBX's encapsulated data (OBX-5.5 of an ED) left out: HL7 caps it at 199 characters, which
    no real document fits, and the document gets its own checks (``cda/``)."""
    d = message.delimiters
    fields = line.split(d.field)
    if fields[0] != "OBX" or len(fields) < 6 or fields[2] != "ED":
        return line
    components = fields[5].split(d.component)
    if len(components) >= 5:
        components[4] = "X"
    fields[5] = d.component.join(components)
    return d.field.join(fields)


def _problem(text: str) -> V2Problem:
    missing = _MISSING.search(text)
    if missing:
        segment, field = missing.group(1), missing.group(2)
        code = REQUIRED_FIELD_MISSING if field else SEGMENT_SEQUENCE_ERROR
        return V2Problem(code, f"Structure: {text}", f"Structure du message non conforme : {text}",
                         Location(segment, int(field) if field else None))
    return V2Problem(DATA_TYPE_ERROR, f"Structure: {text}", f"Structure du message non conforme : {text}")
