"""Query strings → store criteria, for the parameters the index serves today (``_id``, tokens).

Token syntax (R4 search.html#token): ``code``, ``system|code``, ``|code`` (no system),
``system|`` (any code in system); commas OR values, repeated parameters AND them, and
``\\,`` ``\\|`` ``\\$`` ``\\\\`` escape.
"""

from __future__ import annotations

import re

from fhir_server.core.errors import FhirError
from fhir_server.search.registry import INDEXED_PARAMS, params_for
from fhir_server.store.base import Criterion, IdCriterion, TokenCriterion

_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_UNESCAPED_BAR = re.compile(r"(?<!\\)\|")
#: Result-shaping parameters: they do not select resources.
CONTROL_PARAMS = frozenset({"_count", "_format", "_pretty", "_summary", "_elements", "_total", "_sort",
                            "_include", "_revinclude", "_contained", "_containedType", "_offset"})


def _unescape(text: str) -> str:
    return re.sub(r"\\([,|$\\])", r"\1", text)


def _token_value(raw: str) -> tuple[str | None, str | None]:
    parts = _UNESCAPED_BAR.split(raw, maxsplit=1)
    if len(parts) == 1:
        return None, _unescape(parts[0])
    system, code = (_unescape(p) for p in parts)
    return system, code or None


def parse_criteria(resource_type: str, params: list[tuple[str, str]]) -> tuple[list[Criterion], list[str]]:
    """Criteria for the supported parameters, and the names of those not supported."""
    criteria: list[Criterion] = []
    unsupported: list[str] = []
    known = params_for(resource_type)
    for name, raw in params:
        if name in CONTROL_PARAMS:
            continue
        values = [v for v in _UNESCAPED_COMMA.split(raw)]
        if name == "_id":
            criteria.append(IdCriterion(tuple(_unescape(v) for v in values)))
        elif name in INDEXED_PARAMS and name in known and known[name].type == "token":
            criteria.append(TokenCriterion(name, tuple(_token_value(v) for v in values)))
        else:
            unsupported.append(name)
    return criteria, unsupported


def parse_conditional(resource_type: str, query: str) -> list[Criterion]:
    """Criteria of a conditional create/update/delete; every parameter must be understood."""
    from urllib.parse import parse_qsl

    params = parse_qsl(query, keep_blank_values=True)
    criteria, unsupported = parse_criteria(resource_type, params)
    if unsupported:
        raise FhirError(400, "not-supported",
                        f"Conditional criteria use unsupported parameters: {', '.join(unsupported)}")
    if not criteria:
        raise FhirError(400, "invalid", "Conditional operation without search criteria")
    return criteria
