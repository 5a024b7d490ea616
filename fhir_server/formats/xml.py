"""FHIR XML in and out, as the same plain dicts the JSON codec produces.

XML carries no types, so every element is resolved against the R4 definitions
(``profiles.definitions``): cardinality decides list or scalar, the type decides
boolean/integer/decimal/string, attribute or element, nested resource or XHTML.
Output follows definition order because FHIR XML requires it. Parsing is hardened:
no DTD (so no entity expansion or XXE), no network, bounded depth. Any problem is a
400 ``FhirError``; lxml exceptions never escape.

See http://hl7.org/fhir/R4/xml.html and http://hl7.org/fhir/R4/json.html.
"""

from __future__ import annotations

import copy
import re
import threading
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple

from lxml import etree

from fhir_server.core.errors import FhirError
from profiles.definitions import Child, Context, child, is_resource_type, resource_context, types

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
MAX_DEPTH = 64

_F = f"{{{FHIR_NS}}}"
_DIV_TAG = f"{{{XHTML_NS}}}div"
_EXTENSION_TAG = _F + "extension"
_EXTENSION = Context("Extension", "Extension")
_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "positiveInt": (1, 2**31 - 1), "unsignedInt": (0, 2**31 - 1)}
_INTEGER_RE = re.compile(r"-?(0|[1-9][0-9]*)")
_DECIMAL_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INDENT = "  "

_local = threading.local()


def _error(message: str, where: str | None = None) -> FhirError:
    return FhirError(400, "structure", message, expression=[where] if where else None)


def _parser() -> etree.XMLParser:
    """One hardened parser per thread: lxml parsers must not be shared across threads."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                                 huge_tree=False, remove_comments=True)
    return parser


# --- definitions, cached per context -------------------------------------------------------


@cache
def _is_resource_root(ctx: Context) -> bool:
    """A resource's own level, where ``id`` is an element rather than an attribute."""
    return ctx.path == ctx.owner and types()[ctx.owner]["kind"] == "resource"


@cache
def _attribute_names(ctx: Context) -> tuple[str, ...]:
    """JSON properties written as XML attributes at this level: Element.id and Extension.url.

    A tuple, not a set, so attributes come out in the same order in every process.
    """
    if _is_resource_root(ctx):
        return ()
    return ("id", "url") if ctx == _EXTENSION else ("id",)


class _Slot(NamedTuple):
    """One element child of a context, with everything the codec needs precomputed."""

    pos: int  # definition position (choice variants share the position of ``[x]``)
    name: str  # JSON property and XML element name (e.g. "deceasedBoolean")
    path: str  # element path (e.g. "Patient.deceased[x]")
    fhir_type: str
    is_list: bool
    kind: str  # "primitive", "complex", "resource" or "xhtml"
    tag: str  # Clark-notation XML tag
    context: Context  # where a complex child's own children are defined


def _slot(pos: int, ch: Child) -> _Slot:
    if ch.fhir_type == "xhtml":
        kind, tag = "xhtml", _DIV_TAG
    else:
        kind = "resource" if ch.fhir_type == "Resource" else "primitive" if ch.is_primitive else "complex"
        tag = _F + ch.name
    return _Slot(pos, ch.name, ch.path, ch.fhir_type, ch.is_list, kind, tag, ch.context)


@cache
def _layout(ctx: Context) -> dict[str, _Slot]:
    """JSON property → slot for the element (not attribute) children of ``ctx``, in definition order."""
    prefix = ctx.path + "."
    skip = _attribute_names(ctx)
    out: dict[str, _Slot] = {}
    for pos, (path, entry) in enumerate(types()[ctx.owner]["elements"].items()):
        rest = path[len(prefix):]
        if not path.startswith(prefix) or "." in rest:
            continue
        for name in _json_names(rest, entry[1]):
            resolved = child(ctx, name)
            if name not in skip and resolved is not None:
                out[name] = _slot(pos, resolved)
    return out


def _json_names(element: str, element_types: list[str]) -> list[str]:
    """``deceased[x]`` → ``deceasedBoolean``, ``deceasedDateTime``; other names stay as they are."""
    if not element.endswith("[x]"):
        return [element]
    return [element[:-3] + t[0].upper() + t[1:] for t in element_types]


# --- XML → dict ----------------------------------------------------------------------------


def parse_resource(body: bytes) -> dict:
    """Parse a FHIR XML resource into its FHIR JSON-shaped dict."""
    return _read_resource(_parse_document(body), None, 0)


def _parse_document(body: bytes) -> etree._Element:
    """Parse with the hardened parser; any DOCTYPE is refused outright (entity bombs, XXE)."""
    if b"<!DOCTYPE" in body:
        raise _error("XML with a DOCTYPE is not accepted")
    try:
        root = etree.fromstring(body, _parser())
    except (etree.LxmlError, ValueError) as exc:
        raise _error(f"Malformed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise _error("XML with a DOCTYPE is not accepted")
    return root


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _deeper(depth: int, where: str) -> int:
    if depth >= MAX_DEPTH:
        raise _error(f"XML nested deeper than {MAX_DEPTH} levels", where)
    return depth + 1


def _no_text(el: etree._Element, where: str) -> None:
    if el.text and not el.text.isspace():
        raise _error(f"Unexpected text content in {where}", where)


def _elements(el: etree._Element, where: str) -> list[etree._Element]:
    """Element children, refusing stray text between them (FHIR elements hold no text)."""
    _no_text(el, where)
    out = []
    for node in el:
        if isinstance(node.tag, str):  # skip processing instructions
            out.append(node)
        if node.tail and not node.tail.isspace():
            raise _error(f"Unexpected text content in {where}", where)
    return out


def _read_resource(el: etree._Element, where: str | None, depth: int) -> dict:
    name = _local_name(el.tag)
    if not el.tag.startswith(_F):
        raise _error(f"Element <{name}> is not in the FHIR namespace {FHIR_NS}", where)
    if not is_resource_type(name):
        raise _error(f"Unknown resource type {name}", where)
    path = where or name
    for key in el.attrib:
        if not key.startswith("{"):  # foreign attributes such as xsi:schemaLocation are tolerated
            raise _error(f"Unknown attribute {key} on {name}", path)
    out: dict = {"resourceType": name}
    _read_children(el, resource_context(name), path, depth, out)
    return out


def _read_complex(el: etree._Element, ctx: Context, where: str, depth: int) -> dict:
    out: dict = {}
    allowed = _attribute_names(ctx)
    for key, value in el.attrib.items():
        if key not in allowed:
            raise _error(f"Unknown attribute {key} on {where}", where)
        out[key] = value
    _read_children(el, ctx, where, depth, out)
    if not out:
        raise _error(f"Element {where} is empty", where)
    return out


def _read_children(el: etree._Element, ctx: Context, path: str, depth: int, out: dict) -> None:
    """Group the element children by property, then store them the JSON way."""
    groups: dict[str, tuple[_Slot, list]] = {}
    choices: dict[str, str] = {}
    for node in _elements(el, path):
        ch = _resolve(node, ctx, path)
        if choices.setdefault(ch.path, ch.name) != ch.name:
            raise _error(f"Both {choices[ch.path]} and {ch.name} given for {ch.path}", f"{path}.{ch.name}")
        items = groups.setdefault(ch.name, (ch, []))[1]
        if ch.is_list:
            where = f"{path}.{ch.name}[{len(items)}]"
        elif items:
            raise _error(f"Element {ch.name} repeated but it allows at most one", f"{path}.{ch.name}")
        else:
            where = f"{path}.{ch.name}"
        items.append(_read_value(node, ch, where, _deeper(depth, where)))
    for name, (ch, items) in groups.items():
        _store(out, name, ch, items)


def _resolve(node: etree._Element, ctx: Context, path: str) -> _Slot:
    """The slot an XML element denotes; attributes (id, url) and non-names are not elements."""
    tag = node.tag
    name = _local_name(tag)
    slot = _layout(ctx).get(name)
    if slot is None:
        if tag != _DIV_TAG and not tag.startswith(_F):
            raise _error(f"Element <{name}> in {path} is not in the FHIR namespace", f"{path}.{name}")
        raise _error(f"Unknown element {name} in {path}", f"{path}.{name}")
    if tag != slot.tag:
        raise _error(f"Element <{name}> in {path} is in the wrong namespace", f"{path}.{name}")
    return slot


def _read_value(node: etree._Element, ch: _Slot, where: str, depth: int) -> Any:
    if ch.kind == "primitive":
        return _read_primitive(node, ch.fhir_type, where, depth)
    if ch.kind == "complex":
        return _read_complex(node, ch.context, where, depth)
    if ch.kind == "resource":
        return _read_wrapped_resource(node, where, depth)
    return _read_xhtml(node, where, depth), None


def _read_primitive(node: etree._Element, fhir_type: str, where: str, depth: int) -> tuple[Any, dict | None]:
    """(value, {"id", "extension"} or None): the JSON value and its ``_name`` companion."""
    value = None
    extras: dict = {}
    for key, raw in node.attrib.items():
        if key == "value":
            value = _convert(raw, fhir_type, where)
        elif key == "id":
            extras["id"] = raw
        else:
            raise _error(f"Unknown attribute {key} on {where}", where)
    extensions = []
    for sub in _elements(node, where):
        sub_where = f"{where}.extension[{len(extensions)}]"
        if sub.tag != _EXTENSION_TAG:
            raise _error(f"Unknown element {_local_name(sub.tag)} in {where}", sub_where)
        extensions.append(_read_complex(sub, _EXTENSION, sub_where, _deeper(depth, sub_where)))
    if extensions:
        extras["extension"] = extensions
    if value is None and not extras:
        raise _error(f"Element {where} has neither a value nor extensions", where)
    return value, extras or None


def _convert(raw: str, fhir_type: str, where: str) -> Any:
    """Give the XML text its JSON type; decimals stay exact."""
    if fhir_type == "boolean":
        if raw in ("true", "false"):
            return raw == "true"
        raise _error(f"Invalid boolean {raw!r} in {where}: expected true or false", where)
    if fhir_type in _INT_RANGES:
        low, high = _INT_RANGES[fhir_type]
        if _INTEGER_RE.fullmatch(raw) and low <= int(raw) <= high:
            return int(raw)
        raise _error(f"Invalid {fhir_type} {raw!r} in {where}", where)
    if fhir_type == "decimal":
        if _DECIMAL_RE.fullmatch(raw):
            return Decimal(raw)
        raise _error(f"Invalid decimal {raw!r} in {where}", where)
    return raw


def _read_xhtml(node: etree._Element, where: str, depth: int) -> str:
    """The narrative as the JSON XHTML string; copying drops namespaces declared by ancestors."""
    _check_subtree_depth(node, depth, where)
    div = copy.deepcopy(node)
    div.tail = None
    return etree.tostring(div, encoding="unicode")


def _check_subtree_depth(node: etree._Element, depth: int, where: str) -> None:
    for sub in node:
        _check_subtree_depth(sub, _deeper(depth, where), where)


def _read_wrapped_resource(node: etree._Element, where: str, depth: int) -> dict:
    """``<contained><Practitioner>…</Practitioner></contained>`` → the Practitioner dict."""
    if node.attrib:
        raise _error(f"Unexpected attributes on {where}", where)
    inner = _elements(node, where)
    if len(inner) != 1:
        raise _error(f"Element {where} must hold exactly one resource", where)
    return _read_resource(inner[0], where, _deeper(depth, where))


def _store(out: dict, name: str, ch: _Slot, items: list) -> None:
    """Primitives split into ``name`` and ``_name`` (parallel arrays with nulls for lists)."""
    if ch.kind in ("complex", "resource"):
        out[name] = items if ch.is_list else items[0]
        return
    values = [v for v, _ in items]
    extras = [x for _, x in items]
    if ch.is_list:
        if any(v is not None for v in values):
            out[name] = values
        if any(x is not None for x in extras):
            out["_" + name] = extras
        return
    if values[0] is not None:
        out[name] = values[0]
    if extras[0] is not None:
        out["_" + name] = extras[0]


# --- dict → XML ----------------------------------------------------------------------------


def dump_resource(resource: dict, pretty: bool = False) -> bytes:
    """Serialise a FHIR JSON-shaped dict as FHIR XML (UTF-8, with an XML declaration)."""
    root = _write_resource(resource, None, None)
    if pretty:
        _indent(root, 0)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _write_resource(resource: Any, parent: etree._Element | None, where: str | None) -> etree._Element:
    if not isinstance(resource, dict):
        raise _error("A resource must be a JSON object", where)
    rt = resource.get("resourceType")
    if not isinstance(rt, str) or not is_resource_type(rt):
        raise _error(f"Unknown resource type {rt!r}", where)
    tag = _F + rt
    el = etree.Element(tag, nsmap={None: FHIR_NS}) if parent is None else etree.SubElement(parent, tag)
    _write_children(el, resource, resource_context(rt), where or rt)
    return el


def _write_children(el: etree._Element, obj: dict, ctx: Context, path: str) -> None:
    """Write the properties of ``obj`` in definition order; unknown ones are an error, not lost."""
    layout = _layout(ctx)
    present: dict[str, _Slot] = {}
    for key in obj:
        name = key[1:] if key[:1] == "_" else key
        slot = layout.get(name)
        if slot is not None:
            present[name] = slot
        elif key not in _attribute_names(ctx) and not (key == "resourceType" and _is_resource_root(ctx)):
            raise _error(f"Unknown element {key} in {path}", f"{path}.{key}")
    previous: _Slot | None = None
    for ch in sorted(present.values()):
        if previous is not None and previous.path == ch.path:
            raise _error(f"Both {previous.name} and {ch.name} given for {ch.path}", f"{path}.{ch.name}")
        previous = ch
        _write_property(el, obj, ch, f"{path}.{ch.name}")


def _write_property(el: etree._Element, obj: dict, ch: _Slot, where: str) -> None:
    value = obj.get(ch.name)
    extras = obj.get("_" + ch.name)
    if extras is not None and ch.kind != "primitive":
        raise _error(f"_{ch.name} is only allowed on primitive elements", where)
    if not ch.is_list:
        if isinstance(value, list) or isinstance(extras, list):
            raise _error(f"{ch.name} allows at most one value, got an array", where)
        _write_item(el, ch, value, extras, where)
        return
    values = _as_list(value, ch.name, where)
    extras_list = _as_list(extras, "_" + ch.name, where)
    for i in range(max(len(values), len(extras_list))):
        item = values[i] if i < len(values) else None
        item_extras = extras_list[i] if i < len(extras_list) else None
        _write_item(el, ch, item, item_extras, f"{where}[{i}]")


def _as_list(value: Any, name: str, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _error(f"{name} must be an array", where)
    return value


def _write_item(el: etree._Element, ch: _Slot, value: Any, extras: Any, where: str) -> None:
    if ch.kind == "primitive":
        _write_primitive(el, ch.tag, value, extras, where)
    elif ch.kind == "complex":
        if not isinstance(value, dict):
            raise _error(f"{ch.name} must be a JSON object", where)
        _write_complex(etree.SubElement(el, ch.tag), value, ch.context, where)
    elif ch.kind == "resource":
        _write_resource(value, etree.SubElement(el, ch.tag), where)
    else:
        _write_xhtml(el, value, where)


def _write_complex(el: etree._Element, obj: dict, ctx: Context, where: str) -> None:
    for name in _attribute_names(ctx):
        if name in obj:
            _set(el, name, obj[name], f"{where}.{name}")
    _write_children(el, obj, ctx, where)


def _write_primitive(parent: etree._Element, tag: str, value: Any, extras: Any, where: str) -> None:
    """``<tag id=… value=…>`` followed by the extensions from the ``_name`` companion."""
    if value is None and extras is None:
        return
    if extras is not None and (not isinstance(extras, dict) or not extras.keys() <= {"id", "extension"}):
        raise _error("A primitive's _ companion may only hold id and extension", where)
    if isinstance(value, dict | list):
        raise _error("Expected a primitive value", where)
    el = etree.SubElement(parent, tag)
    extras = extras or {}
    if "id" in extras:
        _set(el, "id", extras["id"], where)
    if value is not None:
        _set(el, "value", _text(value), where)
    extensions = _as_list(extras.get("extension"), "extension", where)
    for i, ext in enumerate(extensions):
        if not isinstance(ext, dict):
            raise _error("An extension must be a JSON object", f"{where}.extension[{i}]")
        _write_complex(etree.SubElement(el, _EXTENSION_TAG), ext, _EXTENSION, f"{where}.extension[{i}]")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _set(el: etree._Element, name: str, value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise _error(f"{name} must be a string", where)
    try:
        el.set(name, value)
    except ValueError as exc:  # control characters cannot be written in XML 1.0
        raise _error(f"Value cannot be written as XML: {exc}", where) from None


def _write_xhtml(parent: etree._Element, value: Any, where: str) -> None:
    """Embed the narrative string as real XHTML elements (parsed with the hardened parser)."""
    if not isinstance(value, str):
        raise _error("Narrative div must be an XHTML string", where)
    if "<!DOCTYPE" in value:
        raise _error("Narrative div must not contain a DOCTYPE", where)
    div = _parse_div(value, where)
    if div.tag == "div":  # tolerate a missing xmlns by declaring it on the div
        div = _parse_div(value.replace("<div", f'<div xmlns="{XHTML_NS}"', 1), where)
    if div.tag != _DIV_TAG:
        raise _error("Narrative must be an XHTML <div>", where)
    parent.append(div)


def _parse_div(value: str, where: str) -> etree._Element:
    try:
        return etree.fromstring(value.encode("utf-8"), _parser())
    except (etree.LxmlError, ValueError) as exc:
        raise _error(f"Narrative div is not well-formed XHTML: {exc}", where) from None


def _indent(el: etree._Element, level: int) -> None:
    """Pretty-print FHIR elements only: whitespace inside the XHTML narrative is content."""
    children = list(el)
    if not children or el.tag == _DIV_TAG:
        return
    inner = "\n" + _INDENT * (level + 1)
    el.text = inner
    for sub in children:
        _indent(sub, level + 1)
        sub.tail = inner
    children[-1].tail = "\n" + _INDENT * level

