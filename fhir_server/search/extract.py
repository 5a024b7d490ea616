"""Index entries of a resource, extracted at write time in the same unit of work as the write.

For every indexed parameter of the type, the compiled expression selects values and the value
module of the parameter's type normalises them into entries (``store/query.py:INDEX_COLUMNS``).
"""

from __future__ import annotations

from collections.abc import Iterator

from fhir_server.search.registry import SearchParam, indexed_params, params_for
from fhir_server.search.values import composite, date, number, reference, string, token, uri
from fhir_server.store.query import IndexEntry


def _string(code: str, value) -> Iterator[IndexEntry]:
    for text in string.string_values(value):
        yield IndexEntry("string", code, (string.fold(text), text))


#: Index names of the entries behind two modifiers (kept in the token table).
OF_TYPE = "{}:of-type"
IDENTIFIER = "{}:identifier"


def _token(code: str, value) -> Iterator[IndexEntry]:
    for t in token.tokens(value):
        yield IndexEntry("token", code, (t.system, t.code, string.fold(t.display) if t.display else None))
    for text in token.texts(value):
        yield IndexEntry("token", code, (None, None, string.fold(text)))
    for type_system, type_code, identifier in token.identifier_types(value):
        yield IndexEntry("token", OF_TYPE.format(code), (type_system, f"{type_code}|{identifier}", None))


def _date(code: str, value) -> Iterator[IndexEntry]:
    for low, high in date.index_ranges(value):
        yield IndexEntry("date", code, (low, high))


def _number(code: str, value) -> Iterator[IndexEntry]:
    entry = number.number_index(value)
    if entry is not None:
        yield IndexEntry("number", code, (entry["value"], entry["low"], entry["high"]))


def _quantity(code: str, value) -> Iterator[IndexEntry]:
    entry = number.quantity_index(value) if isinstance(value, dict) else None
    if entry is not None:
        yield IndexEntry("quantity", code, (entry["system"], entry["code"], entry["unit"], entry["value"],
                                            entry["low"], entry["high"]))


def _uri(code: str, value) -> Iterator[IndexEntry]:
    for text in uri.uri_values(value):
        yield IndexEntry("uri", code, (text,))


EXTRACTORS = {"string": _string, "token": _token, "date": _date, "number": _number, "quantity": _quantity,
              "uri": _uri}


def _reference(param: SearchParam, value, local_base: str | None) -> Iterator[IndexEntry]:
    for ref in reference.references(value, local_base=local_base):
        if ref.url is not None:  # another server's resource: found by its URL, never as a local id
            yield IndexEntry("reference", param.code, (None, None, ref.version, ref.url))
        else:
            yield IndexEntry("reference", param.code, (ref.type, ref.id, ref.version, None))
    for system, identifier in reference.reference_identifiers(value):
        yield IndexEntry("token", IDENTIFIER.format(param.code), (system, identifier, None))


def references_of(resource: dict, params: tuple[str, ...], local_base: str | None = None) -> set[str]:
    """The local resources ("Type/id") the reference parameters ``params`` of ``resource`` point to.

    Cheaper than ``index_entries`` when only a few links matter (the access policy, the traces).
    """
    defined = params_for(resource["resourceType"])
    out = set()
    for code in params:
        param = defined.get(code)
        for value in param.evaluate(resource) if param is not None and param.type == "reference" else ():
            out |= {f"{r.type}/{r.id}" for r in reference.references(value, local_base=local_base)
                    if r.url is None and r.type}
    return out


def _composite(param: SearchParam, element, local_base: str | None) -> Iterator[IndexEntry]:
    (first_kind, _), (second_kind, _) = param.components
    first_eval, second_eval = param.component_evaluators
    firsts = {k for v in first_eval(element) for k in composite.index_keys(first_kind, v, local_base)}
    seconds = {k for v in second_eval(element) for k in composite.index_keys(second_kind, v, local_base)}
    for a in sorted(firsts):
        for b in sorted(seconds):
            yield IndexEntry("composite", param.code, (a, b))


def index_entries(resource: dict, local_base: str | None = None) -> list[IndexEntry]:
    """Every index entry of a resource, for the parameters of its type."""
    entries: list[IndexEntry] = []
    for param in indexed_params(resource["resourceType"]):
        values = param.evaluate(resource)
        if not values:
            continue
        if param.type == "reference":
            for value in values:
                entries.extend(_reference(param, value, local_base))
        elif param.type == "composite":
            for value in values:
                entries.extend(_composite(param, value, local_base))
        else:
            extract = EXTRACTORS[param.type]
            for value in values:
                entries.extend(extract(param.code, value))
    return entries
