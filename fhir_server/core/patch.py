"""PATCH bodies applied to resources held as plain dicts: RFC 6902 JSON Patch and FHIR R4 FHIRPath Patch.

Both functions work on a deep copy, so a failed patch never leaves a half-modified resource behind.
A malformed patch document is a 400; a well-formed patch that cannot apply to this resource is a 422.

FHIRPath Patch needs *locations* (container + key/index) to mutate, while fhirpathpy only yields values.
So paths are walked here by a small evaluator for the subset patch documents use (type name, member and
choice navigation, ``[n]``, ``where()``, ``first()``/``last()``/``single()``/``tail()``/``skip()``/
``take()``, ``ofType()``, ``extension('url')``); only ``where()`` criteria are handed to fhirpathpy, one
candidate element at a time. The R4 element tables (``profiles.definitions``) say which elements repeat,
so ``add`` can create a list, and let ``Patient.deceased`` find ``deceasedBoolean``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fhirpathpy
from fhirpathpy.models import models as fhirpath_models

from fhir_server.core.errors import FhirError
from profiles import definitions
from profiles.definitions import Child, Context


class _CannotApply(Exception):
    """A well-formed patch step that does not fit the document; becomes a 422 with the step named."""


def _invalid(message: str) -> FhirError:
    return FhirError(400, "invalid", message)


# --------------------------------------------------------------------------------------------------
# JSON Patch (RFC 6902)

_JSON_OPS: dict[str, tuple[str, ...]] = {
    "add": ("value",), "remove": (), "replace": ("value",), "move": ("from",), "copy": ("from",), "test": ("value",),
}
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


def apply_json_patch(resource: dict, operations: list) -> dict:
    """RFC 6902 JSON Patch (add, remove, replace, move, copy, test), returns a new dict (input untouched)."""
    if not isinstance(operations, list):
        raise FhirError(400, "structure", "A JSON Patch document must be a JSON array of operations")
    doc: Any = copy.deepcopy(resource)
    for number, operation in enumerate(operations):
        doc = _json_operation(doc, operation, number)
    if not isinstance(doc, dict):
        raise FhirError(422, "processing", "JSON Patch result is not a JSON object")
    return doc


def _json_operation(doc: Any, operation: Any, number: int) -> Any:
    """Validate one operation (400) then apply it (422 when it does not fit the document)."""
    if not isinstance(operation, dict):
        raise FhirError(400, "structure", f"JSON Patch operation #{number} is not a JSON object")
    op = operation.get("op")
    if op not in _JSON_OPS:
        raise _invalid(f"JSON Patch operation #{number}: unknown op {op!r}")
    for member in ("path", *_JSON_OPS[op]):
        if member not in operation:
            raise _invalid(f"JSON Patch operation #{number} ({op}) lacks '{member}'")
    path = _pointer(operation["path"], number)
    source = _pointer(operation["from"], number) if "from" in _JSON_OPS[op] else []
    try:
        return _JSON_APPLY[op](doc, path, source, operation)
    except _CannotApply as exc:
        raise FhirError(422, "processing", f"JSON Patch operation #{number} ({op} {operation['path']}): {exc}",
                        expression=[f"[{number}]"]) from None


def _pointer(text: Any, number: int) -> list[str]:
    """RFC 6901 pointer → reference tokens ('' is the whole document)."""
    if not isinstance(text, str) or (text and not text.startswith("/")) or re.search(r"~(?![01])", text):
        raise _invalid(f"JSON Patch operation #{number}: {text!r} is not a JSON pointer")
    return [token.replace("~1", "/").replace("~0", "~") for token in text.split("/")[1:]]


def _step(container: Any, token: str) -> Any:
    if isinstance(container, dict) and token in container:
        return container[token]
    if isinstance(container, list) and _ARRAY_INDEX.fullmatch(token) and int(token) < len(container):
        return container[int(token)]
    raise _CannotApply(f"'{token}' does not exist")


def _resolve(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        doc = _step(doc, token)
    return doc


def _json_add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, key = _resolve(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list) and key == "-":
        parent.append(value)
    elif isinstance(parent, list) and _ARRAY_INDEX.fullmatch(key) and int(key) <= len(parent):
        parent.insert(int(key), value)
    else:
        raise _CannotApply(f"cannot add '{key}' there")
    return doc


def _json_remove(doc: Any, tokens: list[str]) -> Any:
    """Remove and return the value at ``tokens``."""
    if not tokens:
        raise _CannotApply("cannot remove the whole document")
    parent, key = _resolve(doc, tokens[:-1]), tokens[-1]
    value = _step(parent, key)
    del parent[key if isinstance(parent, dict) else int(key)]
    return value


def _json_replace(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, key = _resolve(doc, tokens[:-1]), tokens[-1]
    _step(parent, key)
    parent[key if isinstance(parent, dict) else int(key)] = value
    return doc


def _json_move(doc: Any, path: list[str], source: list[str], _: dict) -> Any:
    if path[: len(source)] == source and len(path) > len(source):
        raise _CannotApply("cannot move a value into one of its own children")
    return _json_add(doc, path, _json_remove(doc, source))


def _json_test(doc: Any, path: list[str], _: list[str], operation: dict) -> Any:
    if not _json_equal(_resolve(doc, path), operation["value"]):
        raise _CannotApply("test failed: value differs")
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, but never a boolean against a number or a string against a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        return Decimal(str(a)) == Decimal(str(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _op_add(doc: Any, path: list[str], _: list[str], operation: dict) -> Any:
    return _json_add(doc, path, copy.deepcopy(operation["value"]))


def _op_remove(doc: Any, path: list[str], _: list[str], operation: dict) -> Any:
    _json_remove(doc, path)
    return doc


def _op_replace(doc: Any, path: list[str], _: list[str], operation: dict) -> Any:
    return _json_replace(doc, path, copy.deepcopy(operation["value"]))


def _op_copy(doc: Any, path: list[str], source: list[str], operation: dict) -> Any:
    return _json_add(doc, path, copy.deepcopy(_resolve(doc, source)))


_JSON_APPLY = {"add": _op_add, "remove": _op_remove, "replace": _op_replace, "move": _json_move, "copy": _op_copy,
               "test": _json_test}


# --------------------------------------------------------------------------------------------------
# FHIRPath Patch: parsing the path subset

@dataclass(frozen=True)
class _Member:
    name: str


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Call:
    name: str
    argument: str  # raw text between the parentheses, stripped


_Step = _Member | _Index | _Call
_R4 = fhirpath_models["r4"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTIONS = {"where", "first", "last", "single", "tail", "skip", "take", "ofType", "extension"}


def _parse_path(text: str) -> list[_Step]:
    """Split a FHIRPath patch path into navigation steps; anything outside the subset is a 400."""
    steps: list[_Step] = []
    pos = _skip_spaces(text, 0)
    expect_name = True
    while pos < len(text):
        if expect_name:
            name, pos = _read_name(text, pos)
            if text.startswith("(", pos):
                if name not in _FUNCTIONS:
                    raise _invalid(f"FHIRPath function '{name}()' is not supported in patch paths ({text!r})")
                argument, pos = _read_argument(text, pos, text)
                if name == "where":
                    _check_criteria(argument.strip(), text)
                steps.append(_Call(name, argument.strip()))
            else:
                steps.append(_Member(name))
            expect_name = False
        elif text[pos] == ".":
            pos, expect_name = pos + 1, True
        elif text[pos] == "[":
            end = text.find("]", pos)
            if end < 0 or not text[pos + 1:end].strip().isdigit():
                raise _invalid(f"Only integer indexers like [0] are supported in patch paths ({text!r})")
            steps.append(_Index(int(text[pos + 1:end])))
            pos = end + 1
        else:
            raise _invalid(f"Unsupported FHIRPath construct {text[pos:]!r} in patch path {text!r}")
        pos = _skip_spaces(text, pos)
    if expect_name:
        raise _invalid(f"Incomplete FHIRPath patch path {text!r}")
    return steps


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _read_name(text: str, pos: int) -> tuple[str, int]:
    if text.startswith("`", pos):
        end = text.find("`", pos + 1)
        if end > pos + 1:
            return text[pos + 1:end], end + 1
    match = _IDENTIFIER.match(text, pos)
    if match is None:
        raise _invalid(f"Unsupported FHIRPath construct {text[pos:]!r} in patch path {text!r}")
    return match.group(), match.end()


def _check_criteria(criteria: str, whole: str) -> None:
    """Reject broken where() criteria up front, even when no element would be tested."""
    try:
        fhirpathpy.evaluate({}, criteria, {"resource": {}, "rootResource": {}}, model=_R4) if criteria else None
    except Exception as exc:  # fhirpathpy raises bare Exception for parse and evaluation errors
        raise _invalid(f"Invalid FHIRPath criteria {criteria!r} in patch path {whole!r}: {exc}") from None
    if not criteria:
        raise _invalid(f"where() needs criteria in patch path {whole!r}")


def _read_argument(text: str, pos: int, whole: str) -> tuple[str, int]:
    """Text inside the parentheses opening at ``pos``, skipping over quoted strings and nested parentheses."""
    depth, i, quote = 0, pos, ""
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[pos + 1:i], i + 1
        i += 1
    raise _invalid(f"Unbalanced parentheses or quotes in patch path {whole!r}")


# --------------------------------------------------------------------------------------------------
# FHIRPath Patch: evaluating paths to locations

@dataclass(eq=False)
class _Node:
    """An element found by a path, with enough of its location to change or remove it."""

    value: Any
    parent: _Node | None = None  # element whose properties (or `_x` sibling, for a primitive) hold this one
    prop: str | None = None  # JSON property name in the parent (e.g. "deceasedBoolean")
    index: int | None = None  # position when that property is a list
    definition: Child | None = None  # R4 definition of the element, when known
    ctx: Context | None = None  # where this element's own children are defined, when known
    stem: str | None = None  # "deceased" when reached through choice navigation


class _Evaluator:
    """Walks parsed steps over one resource, keeping locations."""

    def __init__(self, resource: dict) -> None:
        self.resource = resource
        resource_type = resource.get("resourceType")
        ctx = definitions.resource_context(resource_type) if _known_resource(resource_type) else None
        self.root = _Node(resource, ctx=ctx)

    def evaluate(self, steps: list[_Step]) -> list[_Node]:
        nodes = [self.root]
        first = steps[0]
        if isinstance(first, _Member) and first.name[:1].isupper():
            if first.name != self.resource.get("resourceType") and first.name not in ("Resource", "DomainResource"):
                return []  # a type filter that does not match this resource: an empty collection
            steps = steps[1:]
        for step in steps:
            nodes = self._apply(nodes, step)
        return nodes

    def _apply(self, nodes: list[_Node], step: _Step) -> list[_Node]:
        if isinstance(step, _Member):
            return [child for node in nodes for child in _members(node, step.name)]
        if isinstance(step, _Index):
            return nodes[step.index:step.index + 1]
        return self._call(nodes, step)

    def _call(self, nodes: list[_Node], call: _Call) -> list[_Node]:
        name, argument = call.name, call.argument
        if name in ("first", "last", "single", "tail"):
            _no_argument(call)
            if name == "single" and len(nodes) > 1:
                raise _CannotApply(f"single() found {len(nodes)} elements")
            return {"first": nodes[:1], "last": nodes[-1:], "single": nodes, "tail": nodes[1:]}[name]
        if name in ("skip", "take"):
            if not argument.isdigit():
                raise _invalid(f"{name}() needs an integer literal, got {argument!r}")
            return nodes[int(argument):] if name == "skip" else nodes[:int(argument)]
        if name == "ofType":
            type_name = argument.removeprefix("FHIR.").strip("`")
            return [node for node in nodes if _is_type(node, type_name)]
        if name == "extension":
            url = _string_literal(argument, call)
            return [ext for node in nodes for ext in _members(node, "extension")
                    if isinstance(ext.value, dict) and ext.value.get("url") == url]
        return [node for node in nodes if self._matches(node, argument)]

    def _matches(self, node: _Node, criteria: str) -> bool:
        """where(): criteria evaluated by fhirpathpy with the candidate element as context."""
        expression: str | dict = criteria
        if node.ctx is not None and isinstance(node.value, dict):
            expression = {"expression": criteria, "base": node.ctx.path}  # lets fhirpathpy resolve choices
        variables = {"resource": self.resource, "rootResource": self.resource}
        try:
            result = fhirpathpy.evaluate(node.value, expression, variables, model=_R4)
        except Exception as exc:  # fhirpathpy raises bare Exception for parse and evaluation errors
            raise _invalid(f"Invalid FHIRPath criteria {criteria!r}: {exc}") from None
        return result == [True]


def _known_resource(resource_type: Any) -> bool:
    return isinstance(resource_type, str) and definitions.is_resource_type(resource_type)


def _no_argument(call: _Call) -> None:
    if call.argument:
        raise _invalid(f"{call.name}() takes no argument")


def _string_literal(argument: str, call: _Call) -> str:
    if len(argument) < 2 or argument[0] != "'" or argument[-1] != "'":
        raise _invalid(f"{call.name}() needs a string literal, got {argument!r}")
    return argument[1:-1].replace("\\'", "'")


def _child_definition(ctx: Context | None, prop: str) -> Child | None:
    if ctx is None or ctx.owner not in definitions.types():
        return None
    return definitions.child(ctx, prop)


def _child_context(definition: Child | None, value: Any) -> Context | None:
    if definition is None:
        return None
    if definition.fhir_type == "Resource":
        resource_type = value.get("resourceType") if isinstance(value, dict) else None
        return definitions.resource_context(resource_type) if _known_resource(resource_type) else None
    return definition.context


def _holder(node: _Node, create: bool = False) -> dict | None:
    """The dict holding the node's children: the object itself, or a primitive's `_x` sibling."""
    if isinstance(node.value, dict):
        return node.value
    if node.parent is None or node.prop is None:
        return None
    parent = _holder(node.parent, create)
    if parent is None:
        return None
    key = "_" + node.prop
    if node.index is None:
        if create and not isinstance(parent.get(key), dict):
            parent[key] = {}
        return parent.get(key)
    siblings = parent.get(key)
    if create:
        siblings = _padded(parent, key, len(parent[node.prop]))
        if not isinstance(siblings[node.index], dict):
            siblings[node.index] = {}
    return siblings[node.index] if isinstance(siblings, list) and node.index < len(siblings) else None


def _padded(holder: dict, key: str, length: int) -> list:
    """The `_x` list of a primitive list, created or padded with nulls to ``length``."""
    siblings = holder.get(key)
    if not isinstance(siblings, list):
        siblings = holder[key] = []
    siblings.extend([None] * (length - len(siblings)))
    return siblings


def _members(node: _Node, name: str) -> list[_Node]:
    holder = _holder(node)
    if not holder:
        return []
    prop, stem = name, None
    if name not in holder:
        prop, stem = _choice_property(node, holder, name), name
        if prop is None:
            return []
    definition = _child_definition(node.ctx, prop)
    raw = holder[prop]
    items = list(enumerate(raw)) if isinstance(raw, list) else [(None, raw)]
    return [_Node(value, node, prop, index, definition, _child_context(definition, value), stem)
            for index, value in items]


def _choice_property(node: _Node, holder: dict, name: str) -> str | None:
    """``deceased`` → ``deceasedBoolean`` (whichever type the data carries)."""
    if node.ctx is not None and not _is_choice(node.ctx, name):
        return None
    found = [key for key in holder if key.startswith(name) and key[len(name):len(name) + 1].isupper()]
    return found[0] if len(found) == 1 else None


def _is_choice(ctx: Context | None, name: str) -> bool:
    if ctx is None:
        return False
    return f"{ctx.path}.{name}[x]" in definitions.types().get(ctx.owner, {}).get("elements", {})


def _is_type(node: _Node, type_name: str) -> bool:
    if isinstance(node.value, dict) and "resourceType" in node.value:
        return node.value["resourceType"] == type_name
    if node.definition is not None:
        return node.definition.fhir_type == type_name
    suffix = node.prop[len(node.stem):] if node.stem and node.prop else ""
    return suffix.lower() == type_name.lower()


# --------------------------------------------------------------------------------------------------
# FHIRPath Patch: reading the Parameters resource

_OPERATION_PARTS: dict[str, tuple[str, ...]] = {
    "add": ("name", "value"), "insert": ("value", "index"), "delete": (),
    "replace": ("value",), "move": ("source", "destination"),
}
_KNOWN_PARTS = {"type", "path", "name", "value", "index", "source", "destination"}


@dataclass
class _Operation:
    number: int
    type: str
    path: str
    steps: list[_Step]
    parts: dict[str, dict]


@dataclass
class _Value:
    """A value[x] (or nested parts) turned into FHIR JSON."""

    json: Any
    extension: dict | None = None  # the `_x` sibling of a primitive (id / extensions), if sent
    suffix: str | None = None  # "DateTime" for valueDateTime; None for values built from parts


def _read_operations(parameters: Any) -> list[_Operation]:
    """Check the whole Parameters resource up front, so a malformed patch changes nothing."""
    if not isinstance(parameters, dict) or parameters.get("resourceType", "Parameters") != "Parameters":
        raise FhirError(400, "structure", "A FHIRPath Patch body must be a Parameters resource")
    entries = parameters.get("parameter", [])
    if not isinstance(entries, list):
        raise FhirError(400, "structure", "Parameters.parameter must be an array")
    return [_read_operation(entry, number) for number, entry in enumerate(entries)]


def _read_operation(entry: Any, number: int) -> _Operation:
    where = f"FHIRPath Patch operation #{number}"
    if not isinstance(entry, dict) or entry.get("name") != "operation":
        raise _invalid(f"{where}: every parameter must be named 'operation'")
    parts: dict[str, dict] = {}
    raw_parts = entry.get("part")
    for part in raw_parts if isinstance(raw_parts, list) else []:
        name = part.get("name") if isinstance(part, dict) else None
        if name not in _KNOWN_PARTS or name in parts:
            raise _invalid(f"{where}: unexpected or repeated part {name!r}")
        parts[name] = part
    op_type = _primitive(parts, "type", ("valueCode", "valueString"), str, where)
    if op_type not in _OPERATION_PARTS:
        raise _invalid(f"{where}: unknown operation type {op_type!r}")
    path = _primitive(parts, "path", ("valueString",), str, where)
    for name in _OPERATION_PARTS[op_type]:
        if name not in parts:
            raise _invalid(f"{where} ({op_type}) lacks the '{name}' part")
        if name in ("index", "source", "destination"):
            _primitive(parts, name, ("valueInteger",), int, where)
        elif name == "name" and not _IDENTIFIER.fullmatch(_primitive(parts, name, ("valueString",), str, where)):
            raise _invalid(f"{where}: {parts['name']['valueString']!r} is not an element name")
    if "value" in parts:
        _check_value(parts["value"], where)
    steps = _parse_path(path)
    if op_type in ("insert", "move") and not _names_a_list(steps):
        raise _invalid(f"{where} ({op_type}): path {path!r} must end with the name of a repeating element")
    return _Operation(number, op_type, path, steps, parts)


def _names_a_list(steps: list[_Step]) -> bool:
    """insert/move paths end with a member name (``Patient.identifier``), not an indexer or a function."""
    last = steps[-1]
    return isinstance(last, _Member) and (len(steps) > 1 or not last.name[:1].isupper())


def _primitive(parts: dict[str, dict], name: str, keys: tuple[str, ...], kind: type, where: str) -> Any:
    part = parts.get(name)
    for key in keys:
        if part is not None and key in part:
            value = part[key]
            if isinstance(value, kind) and not isinstance(value, bool) and value != "":
                return value
    raise _invalid(f"{where}: part '{name}' needs a {' or '.join(keys)}")


def _value_key(part: dict) -> str | None:
    keys = [key for key in part if (key.startswith("value") and len(key) > 5) or key == "resource"]
    return keys[0] if len(keys) == 1 else None


def _check_value(part: dict, where: str) -> None:
    """A value part carries one value[x] (or resource), or named sub-parts describing an element."""
    if _value_key(part) is not None:
        return
    subparts = part.get("part")
    if not isinstance(subparts, list) or not subparts:
        raise _invalid(f"{where}: part '{part.get('name')}' needs one value[x] or nested parts")
    for sub in subparts:
        if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
            raise _invalid(f"{where}: every nested value part needs a name")
        _check_value(sub, where)


def _build_value(part: dict, ctx: Context | None) -> _Value:
    """FHIR JSON for a value part; ``ctx`` (the target element's definition) decides which children repeat."""
    key = _value_key(part)
    if key is not None:
        suffix = key[5:] if key != "resource" else None
        return _Value(copy.deepcopy(part[key]), copy.deepcopy(part.get("_" + key)), suffix)
    names = [sub["name"] for sub in part["part"]]
    element: dict = {}
    for sub in part["part"]:
        name = sub["name"]
        definition = _child_definition(ctx, name)
        value = _build_value(sub, _child_context(definition, None))
        prop = _property_name(ctx, name, value)
        definition = _child_definition(ctx, prop)
        repeats = definition.is_list if definition else names.count(name) > 1
        _attach(element, prop, value, repeats)
    return _Value(element)


def _property_name(ctx: Context | None, name: str, value: _Value) -> str:
    """A choice element named without its type (``deceased``) takes the value's type (``deceasedBoolean``)."""
    if value.suffix and _is_choice(ctx, name):
        return name + value.suffix
    return name


def _attach(holder: dict, prop: str, value: _Value, repeats: bool | None) -> None:
    """Add a child: appended when the element repeats (None = unknown: append only to an existing list)."""
    if repeats or (repeats is None and isinstance(holder.get(prop), list)):
        items = holder.setdefault(prop, [])
        items.append(value.json)
        if value.extension is not None or "_" + prop in holder:
            _padded(holder, "_" + prop, len(items))[-1] = value.extension
        return
    if prop in holder or "_" + prop in holder:
        raise _CannotApply(f"'{prop}' already exists and does not repeat (use replace)")
    holder[prop] = value.json
    if value.extension is not None:
        holder["_" + prop] = value.extension


# --------------------------------------------------------------------------------------------------
# FHIRPath Patch: applying operations

def apply_fhirpath_patch(resource: dict, parameters: dict) -> dict:
    """FHIR R4 FHIRPath Patch (a Parameters resource with `operation` parts: add, insert, delete, replace, move),
    returns a new dict."""
    operations = _read_operations(parameters)
    doc = copy.deepcopy(resource)
    for operation in operations:
        try:
            _OPERATIONS[operation.type](_Evaluator(doc), operation)
        except _CannotApply as exc:
            raise FhirError(422, "processing",
                            f"FHIRPath Patch operation #{operation.number} ({operation.type} {operation.path}): {exc}",
                            expression=[operation.path]) from None
    return doc


def _single(nodes: list[_Node], allow_root: bool = False) -> _Node:
    """The base rule: a patch path must select exactly one element."""
    if not nodes:
        raise _CannotApply("no content found at the path")
    if len(nodes) > 1:
        raise _CannotApply(f"the path matches {len(nodes)} elements, one is required")
    if nodes[0].parent is None and not allow_root:
        raise _CannotApply("the path designates the resource itself")
    return nodes[0]


def _add(evaluator: _Evaluator, op: _Operation) -> None:
    target = _single(evaluator.evaluate(op.steps), allow_root=True)
    name = op.parts["name"]["valueString"]
    value = _build_value(op.parts["value"], _child_context(_child_definition(target.ctx, name), None))
    prop = _property_name(target.ctx, name, value)
    definition = _child_definition(target.ctx, prop)
    if target.ctx is not None and target.ctx.owner in definitions.types() and definition is None:
        raise _CannotApply(f"'{prop}' is not an element of {target.ctx.path}")
    _check_type(definition, value)
    holder = _holder(target, create=True)
    if holder is None:
        raise _CannotApply("cannot add children to a primitive value here")
    _attach(holder, prop, value, definition.is_list if definition else None)


def _collection(evaluator: _Evaluator, op: _Operation) -> tuple[dict, str, Child | None]:
    """insert/move: the path names a repeating element; returns (holder, property, definition)."""
    last = op.steps[-1]
    assert isinstance(last, _Member)  # checked by _read_operation
    parent = _single(evaluator.evaluate(op.steps[:-1]) if len(op.steps) > 1 else [evaluator.root], allow_root=True)
    holder = _holder(parent, create=op.type == "insert")
    definition = _child_definition(parent.ctx, last.name)
    current = holder.get(last.name) if holder is not None else None
    if (definition is not None and not definition.is_list) or (current is not None and not isinstance(current, list)):
        raise _CannotApply(f"'{last.name}' is not a repeating element")
    if holder is None:
        raise _CannotApply("no content found at the path")
    return holder, last.name, definition


def _insert(evaluator: _Evaluator, op: _Operation) -> None:
    holder, prop, definition = _collection(evaluator, op)
    value = _build_value(op.parts["value"], _child_context(definition, None))
    _check_type(definition, value)
    items = holder.get(prop, [])
    index = op.parts["index"]["valueInteger"]
    if not 0 <= index <= len(items):
        raise _CannotApply(f"index {index} is out of range (list has {len(items)} items)")
    items.insert(index, value.json)
    holder[prop] = items
    if value.extension is not None or "_" + prop in holder:
        _padded(holder, "_" + prop, len(items) - 1).insert(index, value.extension)


def _move(evaluator: _Evaluator, op: _Operation) -> None:
    holder, prop, _ = _collection(evaluator, op)
    items = holder.get(prop, [])
    source, destination = op.parts["source"]["valueInteger"], op.parts["destination"]["valueInteger"]
    for label, index in (("source", source), ("destination", destination)):
        if not 0 <= index < len(items):
            raise _CannotApply(f"{label} index {index} is out of range (list has {len(items)} items)")
    items.insert(destination, items.pop(source))
    if isinstance(holder.get("_" + prop), list):
        siblings = _padded(holder, "_" + prop, len(items))
        siblings.insert(destination, siblings.pop(source))


def _delete(evaluator: _Evaluator, op: _Operation) -> None:
    nodes = evaluator.evaluate(op.steps)
    if nodes:  # deleting nothing is not an error
        node = _single(nodes)
        _detach(node)
        _prune(node.parent)


def _replace(evaluator: _Evaluator, op: _Operation) -> None:
    node = _single(evaluator.evaluate(op.steps))
    value = _build_value(op.parts["value"], node.ctx if isinstance(node.value, dict) else None)
    _check_type(node.definition, value)
    holder = _parent_holder(node)
    prop = node.stem + value.suffix if node.stem and value.suffix else node.prop
    if node.index is None:
        holder.pop(node.prop)
        holder.pop("_" + node.prop, None)
        holder[prop] = value.json
        if value.extension is not None:
            holder["_" + prop] = value.extension
        return
    holder[prop][node.index] = value.json
    if value.extension is not None or isinstance(holder.get("_" + prop), list):
        _padded(holder, "_" + prop, len(holder[prop]))[node.index] = value.extension
        _drop_empty_siblings(holder, prop)


def _parent_holder(node: _Node) -> dict:
    """The dict in which ``node.prop`` lives (never called for the resource root)."""
    holder = _holder(node.parent) if node.parent is not None else None
    assert holder is not None and node.prop is not None
    return holder


def _detach(node: _Node) -> None:
    """Remove an element (and a primitive's `_x` sibling) from its parent; empty lists disappear."""
    holder = _parent_holder(node)
    if node.index is None:
        holder.pop(node.prop, None)
        holder.pop("_" + node.prop, None)
        return
    del holder[node.prop][node.index]
    siblings = holder.get("_" + node.prop)
    if isinstance(siblings, list) and node.index < len(siblings):
        del siblings[node.index]
    if not holder[node.prop]:
        del holder[node.prop]
        holder.pop("_" + node.prop, None)
    _drop_empty_siblings(holder, node.prop)


def _drop_empty_siblings(holder: dict, prop: str) -> None:
    siblings = holder.get("_" + prop)
    if isinstance(siblings, list) and all(s is None for s in siblings):
        del holder["_" + prop]


def _prune(node: _Node | None) -> None:
    """FHIR forbids empty objects: remove ancestors left empty by a delete, up to the resource."""
    while node is not None and node.parent is not None:
        holder = _holder(node)
        if holder is None or holder:
            return
        if isinstance(node.value, dict):
            _detach(node)
        else:  # a primitive whose `_x` sibling became empty: keep the value, drop the sibling
            parent = _parent_holder(node)
            if node.index is None:
                parent.pop("_" + node.prop, None)
            else:
                parent["_" + node.prop][node.index] = None
                _drop_empty_siblings(parent, node.prop)
            return
        node = node.parent


_JSON_KIND = {"boolean": bool, "integer": int, "positiveInt": int, "unsignedInt": int, "decimal": (int, Decimal, float)}


def _check_type(definition: Child | None, value: _Value) -> None:
    """The value's type must fit the element (a string may stand for any string-like primitive, e.g. xhtml)."""
    if definition is None or value.suffix is None:
        return
    given = value.suffix if value.suffix in definitions.types() else value.suffix[:1].lower() + value.suffix[1:]
    owner = definition.path.split(".")[0]  # element paths start with the StructureDefinition's type
    allowed = definitions.types()[owner]["elements"][definition.path][1]
    if given in allowed or definition.fhir_type in ("Resource", "Element", "BackboneElement"):
        return
    if definitions.is_primitive(given) and definitions.is_primitive(definition.fhir_type):
        kind = _JSON_KIND.get(definition.fhir_type, str)
        if isinstance(value.json, kind) and not (isinstance(value.json, bool) and kind is not bool):
            return
    raise _CannotApply(f"a {given} value does not fit {definition.path} ({' | '.join(allowed)})")


_OPERATIONS = {"add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move}
