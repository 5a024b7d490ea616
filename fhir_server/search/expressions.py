"""SearchParameter expressions compiled once into fast evaluators.

Nearly every R4 expression on our types is one of three shapes, evaluated here directly on the
JSON dict (~1 µs instead of ~20 µs through the FHIRPath engine):

- a dotted path ``DocumentReference.context.period`` (lists flattened at each step);
- a path filtered by target type ``Appointment.participant.actor.where(resolve() is Patient)``:
  ``resolve()`` is answered from the reference string itself (``Patient/…``), which is what it
  means for a reference inside our own server;
- a choice narrowed by type ``(X.value as Quantity)`` → the element ``valueQuantity``;
- a filter on a literal ``Patient.telecom.where(system='email')``, an ``extension('url')``, and
  the presence test ``Patient.deceased.exists() and Patient.deceased != false``.

Anything else goes to fhirpathpy.
Unions (``a | b``) evaluate each branch.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models

R4_MODEL = models["r4"]  # lets the engine resolve choice elements such as Patient.deceased

Evaluator = Callable[[dict], list]

_NAME = r"[A-Za-z][A-Za-z0-9]*"
_DOTTED = re.compile(rf"{_NAME}(?:\.{_NAME})*")
_WHERE_RESOLVE = re.compile(rf"({_NAME}(?:\.{_NAME})*)\.where\(resolve\(\) is ({_NAME})\)")
_AS_TYPE = re.compile(rf"({_NAME}(?:\.{_NAME})*)\s*(?:as\s+|\.as\()({_NAME})\)?")
_WHERE_EQUALS = re.compile(rf"({_NAME}(?:\.{_NAME})*)\.where\(({_NAME})\s*=\s*'([^']*)'\)")
_EXTENSION = re.compile(rf"({_NAME}(?:\.{_NAME})*)\.extension\('([^']*)'\)")
_PRESENT_NOT_FALSE = re.compile(rf"({_NAME}(?:\.{_NAME})*)\.exists\(\) and \1 != false")


def _walk(values: list, step: str) -> list:
    out = []
    for value in values:
        child = value.get(step) if isinstance(value, dict) else None
        if isinstance(child, list):
            out.extend(child)
        elif child is not None:
            out.append(child)
    return out


def _path(steps: list[str]) -> Evaluator:
    def evaluate(resource: dict) -> list:
        values = [resource]
        for step in steps:
            values = _walk(values, step)
            if not values:
                break
        return values

    return evaluate


def _resolves_to(target: str) -> Callable[[object], bool]:
    prefix = target + "/"

    def check(value: object) -> bool:
        reference = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(reference, str):
            return False
        return reference.startswith(prefix) or f"/{prefix}" in reference

    return check


def _present_not_false(steps: list[str]) -> Evaluator:
    """``X.a.exists() and X.a != false`` (e.g. Patient.deceased): a choice element present and not false."""
    *parents, last = steps

    def evaluate(resource: dict) -> list:
        holders = _path(parents)(resource) if parents else [resource]
        values = [v for h in holders if isinstance(h, dict) for k, v in h.items()
                  if k == last or (k.startswith(last) and k[len(last):len(last) + 1].isupper())]
        return [bool(values) and all(v is not False for v in values)]

    return evaluate


def _strip_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text


def _steps(path: str) -> list[str]:
    """Element names of a dotted path, without its leading type name (``Patient.name`` → [name])."""
    steps = path.split(".")
    return steps[1:] if steps[0][:1].isupper() else steps


def _branch(expression: str) -> Evaluator:
    text = _strip_parens(expression.strip())
    if _DOTTED.fullmatch(text):
        return _path(_steps(text))
    match = _WHERE_RESOLVE.fullmatch(text)
    if match:
        navigate, keep = _path(_steps(match.group(1))), _resolves_to(match.group(2))
        return lambda resource: [v for v in navigate(resource) if keep(v)]
    match = _AS_TYPE.fullmatch(text)
    if match:
        *parents, last = _steps(match.group(1))
        type_name = match.group(2)
        return _path([*parents, last + type_name[0].upper() + type_name[1:]])
    match = _WHERE_EQUALS.fullmatch(text)
    if match:
        navigate, key, wanted = _path(_steps(match.group(1))), match.group(2), match.group(3)
        return lambda resource: [v for v in navigate(resource) if isinstance(v, dict) and v.get(key) == wanted]
    match = _EXTENSION.fullmatch(text)
    if match:
        navigate, url = _path([*_steps(match.group(1)), "extension"]), match.group(2)
        return lambda resource: [v for v in navigate(resource) if isinstance(v, dict) and v.get("url") == url]
    match = _PRESENT_NOT_FALSE.fullmatch(text)
    if match:
        return _present_not_false(_steps(match.group(1)))
    engine = compile_fhirpath(text, R4_MODEL)
    return lambda resource: engine(resource)


def compile_expression(expression: str) -> Evaluator:
    """An evaluator returning the values (JSON: str, dict, Decimal...) the expression selects."""
    branches = [_branch(b) for b in _split_union(expression) if b.strip()]
    if len(branches) == 1:
        return branches[0]
    return lambda resource: [v for branch in branches for v in branch(resource)]


def _split_union(expression: str) -> list[str]:
    """Split on top-level ``|`` (not inside parentheses or quotes)."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and depth == 0 and ch == "|":
            parts.append(expression[start:i])
            start = i + 1
    parts.append(expression[start:])
    return parts
