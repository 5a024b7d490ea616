"""Parameter occurrences → store clauses, per parameter type and modifier (R4 search.html).

Unknown parameters and unsupported modifiers are collected, not raised: the caller ignores and
reports them, or refuses them under ``Prefer: handling=strict`` and in conditional interactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from fhir_server.core.errors import FhirError
from fhir_server.search.conditions import Compare, Cond, all_of, any_of
from fhir_server.search.extract import IDENTIFIER, OF_TYPE
from fhir_server.search.include import IncludeSpec, parse_includes
from fhir_server.search.parse import HasOccurrence, Link, parse, unescape
from fhir_server.search.registry import SearchParam, params_for
from fhir_server.search.values import composite, date, number, reference, string, token, uri
from fhir_server.store.query import Chain, Clause, Either, Has, IdIn, Match, Negate, SortKey

TOKEN_MODIFIERS = {None, "not", "text", "missing", "above", "below", "of-type"}
MODIFIERS = {
    "string": {None, "exact", "contains", "missing"},
    "token": TOKEN_MODIFIERS,
    "date": {None, "missing"},
    "number": {None, "missing"},
    "quantity": {None, "missing"},
    "reference": {None, "missing", "identifier"},  # plus :[type]
    "uri": {None, "above", "below", "missing"},
    "composite": {None, "missing"},
}


class Unsupported(Exception):
    """A parameter or modifier this server does not support (reported, not fatal by default)."""


@dataclass
class SearchPlan:
    resource_type: str
    clauses: list[Clause] = field(default_factory=list)
    sort: tuple[SortKey, ...] = ()
    includes: list[IncludeSpec] = field(default_factory=list)
    revincludes: list[IncludeSpec] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    result_params: dict[str, list[str]] = field(default_factory=dict)


# -- values of one parameter ----------------------------------------------------------------


def _string_cond(value: str, modifier: str | None) -> Cond:
    text = unescape(value)
    if modifier == "exact":  # the folded text narrows the index range to seek, the raw text decides
        return all_of(Compare("norm", "=", string.fold(text)), Compare("raw", "=", text))
    return Compare("norm", "contains" if modifier == "contains" else "prefix", string.fold(text))


def _token_cond(value: str, modifier: str | None) -> Cond:
    if modifier == "text":
        return Compare("text", "prefix", string.fold(unescape(value)))
    q = token.parse_token(value)
    parts = []
    if q.code is not None:
        parts.append(Compare("code", "=", q.code))
    if not q.any_system:
        parts.append(Compare("system", "=", q.system))
    return all_of(*parts) if parts else Compare("code", "!=", None)


def _of_type_cond(value: str) -> Cond:
    system, code, identifier = token.parse_of_type(value)
    return all_of(Compare("system", "=", system), Compare("code", "=", f"{code}|{identifier}"))


def _reference_cond(param: SearchParam, value: str, modifier: str | None, local_base: str | None) -> Cond:
    q = reference.parse_reference(value, modifier, local_base)
    if q.url is not None and q.id is None:
        return Compare("url", "=", q.url)
    parts = [Compare("target_id", "=", q.id)]
    target_type = q.type or (param.targets[0] if len(param.targets) == 1 else None)
    if target_type is not None:  # also lets the index seek on (param, target_type, target_id)
        parts.append(Compare("target_type", "=", target_type))
    if q.version is not None:
        parts.append(Compare("version", "=", q.version))
    return all_of(*parts)


def _uri_cond(value: str, modifier: str | None) -> Cond:
    text = unescape(value)
    if modifier == "below":
        return uri.below_condition(text)
    if modifier == "above":
        return uri.above_condition(text)
    return Compare("uri", "=", text)


def _composite_cond(param: SearchParam, value: str, local_base: str | None) -> Cond:
    parts = composite.split_components(value)
    if len(parts) != len(param.components):
        raise FhirError(400, "invalid", f"'{param.code}' takes {len(param.components)} values joined by $")
    return all_of(*(Compare(f"part{i}", "=", composite.query_key(kind, raw, local_base))
                    for i, ((kind, _), raw) in enumerate(zip(param.components, parts, strict=True))))


def value_cond(param: SearchParam, value: str, modifier: str | None, local_base: str | None) -> Cond:
    kind = param.type
    if kind == "composite":
        return _composite_cond(param, value, local_base)
    if kind == "string":
        return _string_cond(value, modifier)
    if kind == "token":
        return _token_cond(value, modifier)
    if kind == "date":
        return date.condition(date.parse_query(value))
    if kind == "number":
        return number.number_condition(number.parse_number(value))
    if kind == "quantity":
        return number.quantity_condition(number.parse_quantity(value))
    if kind == "reference":
        return _reference_cond(param, value, modifier, local_base)
    return _uri_cond(value, modifier)


# -- one occurrence -------------------------------------------------------------------------


def _lookup(resource_type: str, name: str) -> SearchParam:
    param = params_for(resource_type).get(name)
    if param is None or not param.indexed:
        raise Unsupported(f"{resource_type}.{name}")
    return param


def _missing(param: SearchParam, values: tuple[str, ...]) -> Clause:
    if values not in (("true",), ("false",)):
        raise FhirError(400, "invalid", f":missing takes true or false, not '{','.join(values)}'")
    present: Clause = Match(param.type, param.code)
    if param.type == "reference":  # a Reference may carry only an identifier: that is not missing
        present = Either((present, Match("token", IDENTIFIER.format(param.code))))
    return Negate(present) if values == ("true",) else present


def _chain_targets(param: SearchParam, link: Link) -> list[str]:
    if link.modifier and link.modifier[0].isupper():
        return [link.modifier]
    return list(param.targets)


def _occurrence(resource_type: str, links: tuple[Link, ...], values: tuple[str, ...],
                local_base: str | None) -> Clause:
    first, rest = links[0], links[1:]
    if first.name == "_id" and not rest:
        if first.modifier not in (None, "not"):
            raise Unsupported(f"_id:{first.modifier}")
        clause = IdIn(tuple(unescape(v) for v in values))
        return Negate(clause) if first.modifier == "not" else clause
    param = _lookup(resource_type, first.name)
    if rest:
        if param.type != "reference":
            raise FhirError(400, "invalid", f"'{first.name}' is not a reference: it cannot be chained")
        chains = []
        for target in _chain_targets(param, first):
            try:
                chains.append(Chain(param.code, target, (_occurrence(target, rest, values, local_base),)))
            except Unsupported:
                continue
        if not chains:
            raise Unsupported(".".join(link.name for link in links))
        return chains[0] if len(chains) == 1 else Either(tuple(chains))
    modifier = first.modifier
    if modifier == "missing":
        return _missing(param, values)
    is_type_modifier = param.type == "reference" and modifier is not None and modifier[0].isupper()
    if modifier not in MODIFIERS[param.type] and not is_type_modifier:
        raise Unsupported(f"{first.name}:{modifier}")
    if param.type == "token" and modifier in ("above", "below"):
        conds = [token.hierarchy_condition(v, modifier) for v in values]
        if None in conds:
            raise Unsupported(f"{first.name}:{modifier}")  # a hierarchy we do not know
        return Match("token", param.code, any_of(*conds))
    if modifier == "identifier":  # a reference searched by the identifier it carries
        return Match("token", IDENTIFIER.format(param.code), any_of(*(_token_cond(v, None) for v in values)))
    if modifier == "of-type":
        return Match("token", OF_TYPE.format(param.code), any_of(*(_of_type_cond(v) for v in values)))
    conds = [value_cond(param, v, modifier, local_base) for v in values]
    match = Match(param.type, param.code, any_of(*conds))
    return Negate(match) if modifier == "not" else match


def _has(resource_type: str, occurrence: HasOccurrence, local_base: str | None) -> Clause:
    source_params = params_for(occurrence.source_type)
    link = source_params.get(occurrence.param)
    if link is None or link.type != "reference":
        raise Unsupported(occurrence.raw_name)
    inner = occurrence.inner
    inner_clause = _has(occurrence.source_type, inner, local_base) if isinstance(inner, HasOccurrence) else \
        _occurrence(occurrence.source_type, inner.links, inner.values, local_base)
    return Has(occurrence.source_type, occurrence.param, (inner_clause,))


# -- sorting and the whole query ------------------------------------------------------------


def _sort(resource_type: str, raw: list[str], unsupported: list[str]) -> tuple[SortKey, ...]:
    keys = []
    for item in (v for value in raw for v in value.split(",") if v):
        descending = item.startswith("-")
        name = item.lstrip("-")
        if name == "_id":
            keys.append(SortKey("_id", "_id", descending))
            continue
        param = params_for(resource_type).get(name)
        if param is None or not param.indexed or param.type == "composite":
            unsupported.append(f"_sort={item}")
            continue
        keys.append(SortKey(param.type, param.code, descending))
    return tuple(keys)


def plan_search(resource_type: str, params: list[tuple[str, str]], local_base: str | None = None) -> SearchPlan:
    occurrences, result_params = parse(params)
    plan = SearchPlan(resource_type, result_params=result_params)
    for occurrence in occurrences:
        try:
            if isinstance(occurrence, HasOccurrence):
                plan.clauses.append(_has(resource_type, occurrence, local_base))
            else:
                plan.clauses.append(_occurrence(resource_type, occurrence.links, occurrence.values, local_base))
        except Unsupported:
            plan.unsupported.append(occurrence.raw_name)
    plan.sort = _sort(resource_type, result_params.get("_sort", []), plan.unsupported)
    for reverse, name in ((False, "_include"), (True, "_revinclude")):
        specs = parse_includes(result_params.get(name, []), False, reverse, plan.unsupported)
        specs += parse_includes(result_params.get(f"{name}:iterate", []) + result_params.get(f"{name}:recurse", []),
                                True, reverse, plan.unsupported)
        (plan.revincludes if reverse else plan.includes).extend(specs)
    return plan


def plan_conditional(resource_type: str, query: str, local_base: str | None = None) -> list[Clause]:
    """Clauses of a conditional create/update/delete or reference: every parameter must be understood,
    so a typo can never widen the match."""
    plan = plan_search(resource_type, parse_qsl(query, keep_blank_values=True), local_base)
    if plan.unsupported:
        raise FhirError(400, "not-supported",
                        f"Conditional criteria use unsupported parameters: {', '.join(plan.unsupported)}")
    if not plan.clauses:
        raise FhirError(400, "invalid", "Conditional operation without search criteria")
    return plan.clauses
