"""FHIR JSON in and out, keeping decimals exact.

Resources are plain dicts. Decimals are parsed as ``decimal.Decimal`` so ``1.50`` keeps its
precision (FHIR makes precision significant) and written back verbatim through
``orjson.Fragment``. Canonical bytes are compact, keys in the order received.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.core.errors import FhirError

MAX_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_depth(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise FhirError(400, "structure", f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for v in value.values():
            if isinstance(v, (dict, list)):
                _check_depth(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                _check_depth(v, depth + 1)


def _check_surrogates(value: Any) -> None:
    """Lone UTF-16 surrogates (``"\\ud800"``) parse but are not text: refuse them."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _check_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _check_surrogates(item)


def loads(body: bytes | str) -> Any:
    """Parse JSON with exact decimals; malformed input is a 400 OperationOutcome."""
    try:
        value = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
        _check_depth(value)
        if _SURROGATE_ESCAPE.search(body if isinstance(body, bytes) else body.encode("utf-8", "replace")):
            _check_surrogates(value)
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise FhirError(400, "structure", f"Malformed JSON: {exc}") from None
    return value


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any, pretty: bool = False) -> bytes:
    """Serialise to compact (or indented) UTF-8 JSON bytes."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(value, default=_default, option=option)
