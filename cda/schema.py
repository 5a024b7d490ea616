"""XSD validation of CDA documents, with errors said as ``Problem``s a sender can act on.

Two schemas matter:

* the HL7 CDA R2 schema, shipped in ``cda/schemas/hl7/`` (``schema=None``): the SDTC-extended
  ``CDA_SDTC.xsd`` by default, the 2005 normative ``CDA.xsd`` as ``HL7_NORMATIVE``;
* the ANS "extended" schema (``CDA_extended.xsd`` of ansforge/TestContenuCDA-3-0), which French
  documents need: structured biology (IHE lab ``lab:``), prescriptions (``pharm:``) and imaging
  (DICOM ``ps3-20:``) fail the plain HL7 one. Its repository states no licence, so it is not shipped:
  point ``MES_CDA_XSD`` at it.

Configuration (environment):

``MES_CDA_XSD``
    Path to an XSD to validate CDA documents against instead of the shipped HL7 schema, e.g.
    ``…/TestContenuCDA-3-0/infrastructure/cda/CDA_extended.xsd``. Read by ``schema_path_from_env()``.

Loading a schema never touches the network and never expands an entity: every schema document (the
one named and all it includes or imports) is read by ``_LocalOnly`` from a local file, with a parser
that loads no DTD and resolves no entity, and handed to libxml2 without its DOCTYPE. An include or
import that names a URL is refused and makes the schema fail to load (libxml2 would otherwise skip a
failed ``xs:import`` silently). Schemas compile in milliseconds (HL7 ~10 ms, ANS ~45 ms) and are
cached per path anyway, since a server validates many documents against the same one.

The ANS schematron (``ASIP-STRUCT-MIN-StrucMin.sch``, XSLT 2) is not this module's: the CI-SIS
header rules are in Python (``cda/rules.py``), the schematron itself runs in ``cda/schematron.py``
when the optional extra is installed.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from lxml import etree

from cda.parse import short_name, xpath
from cda.problems import Problem

HL7_DIR = Path(__file__).resolve().parent / "schemas" / "hl7"
HL7_NORMATIVE = HL7_DIR / "normative" / "infrastructure" / "cda" / "CDA.xsd"
HL7_SDTC = HL7_DIR / "extensions" / "SDTC" / "infrastructure" / "cda" / "CDA_SDTC.xsd"
DEFAULT_SCHEMA = HL7_SDTC  # the normative schema plus HL7's approved sdtc: extensions
ENV_XSD = "MES_CDA_XSD"
MAX_PROBLEMS = 50  # a sender fixes the first ones first; thousands would only drown them



class SchemaError(RuntimeError):
    """A schema that cannot be loaded: the server's configuration is wrong, not the document."""


def schema_path_from_env() -> Path | None:
    """The XSD named by ``MES_CDA_XSD``, or None to use the shipped HL7 schema.

    A path that is set but names no file is a mistake worth stopping for, rather than silently
    validating against another schema."""
    value = os.environ.get(ENV_XSD, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise SchemaError(f"{ENV_XSD}={value!r} does not name an XSD file")
    return path


def validate(tree: etree._ElementTree | etree._Element, schema: Path | None = None) -> list[Problem]:
    """Every way ``tree`` breaks the XSD (``schema``, or the shipped HL7 one), at most ``MAX_PROBLEMS``."""
    compiled = _compiled(str(Path(schema or DEFAULT_SCHEMA).resolve()))
    with compiled.lock:  # an XMLSchema keeps its last error log on itself: one validation at a time
        valid = compiled.xsd.validate(tree)
        errors = list(compiled.xsd.error_log)
    if valid:
        return []
    locate = _Locator(tree)
    problems = [_problem(error, locate) for error in errors[: MAX_PROBLEMS - 1]]
    if len(errors) >= MAX_PROBLEMS:
        rest = len(errors) - len(problems)
        problems.append(Problem("/ClinicalDocument", f"{rest} more schema error(s) not listed", "structure"))
    return problems


# --- loading a schema ------------------------------------------------------------------------------


@dataclass
class _Compiled:
    xsd: etree.XMLSchema
    lock: threading.Lock = field(default_factory=threading.Lock)


_compile_lock = threading.Lock()


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False, huge_tree=False)


@cache
def _compiled(path: str) -> _Compiled:
    """The XSD at ``path``, compiled once per process."""
    with _compile_lock:
        return _Compiled(_compile(Path(path)))


def _compile(path: Path) -> etree.XMLSchema:
    if not path.is_file():
        raise SchemaError(f"No XSD at {path}")
    resolver = _LocalOnly()
    parser = _safe_parser()
    parser.resolvers.add(resolver)
    try:
        doc = etree.fromstring(_schema_document(path), parser, base_url=str(path)).getroottree()
        xsd = etree.XMLSchema(doc)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as error:
        raise SchemaError(_refusal(path, resolver) or f"{path} is not a usable XSD: {error}") from None
    if refusal := _refusal(path, resolver):
        raise SchemaError(refusal)
    return xsd


def _refusal(path: Path, resolver: _LocalOnly) -> str | None:
    if resolver.refused:
        return (f"{path} includes or imports {', '.join(resolver.refused)}: schemas are loaded from local files "
                "only, never from the network; copy the file and point schemaLocation at the copy")
    if resolver.missing:
        return f"{path} includes or imports {', '.join(resolver.missing)}, which is not there"
    return None


def _schema_document(path: Path) -> bytes:
    """``path``'s root element, read without DTD or entities and re-serialised without its DOCTYPE,
    so that libxml2 (which parses included schemas with entity substitution on) has none to expand."""
    try:
        root = etree.parse(str(path), _safe_parser()).getroot()
    except (OSError, etree.XMLSyntaxError) as error:
        raise SchemaError(f"Cannot read schema document {path}: {error}") from None
    return etree.tostring(root)


class _LocalOnly(etree.Resolver):
    """Serves xs:include / xs:import (and any DTD or entity libxml2 asks for) from local files only."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []  # network URLs
        self.missing: list[str] = []  # local files that are not there

    def resolve(self, url: str | None, pubid: str | None, context: object) -> object:
        path = _local_path(url or "")
        if path is None or not path.is_file():
            # Returning None would hand the URL to libxml2's default loader; an empty answer
            # makes the load fail, and ``refused``/``missing`` make it loud.
            (self.refused if path is None else self.missing).append(url or repr(pubid))
            return self.resolve_string(b"", context)
        return self.resolve_string(_schema_document(path), context, base_url=str(path))


def _local_path(url: str) -> Path | None:
    """The local file ``url`` names, or None for anything with a network scheme."""
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # http:, https:, ftp:…  (a one-letter scheme is a drive)
        return None
    return Path(url)


# --- turning lxml's errors into Problems -----------------------------------------------------------


def _problem(error: etree._LogEntry, locate: _Locator) -> Problem:
    element = locate(error)
    where = xpath(element) if element is not None else "/ClinicalDocument"
    line = error.line or (element.sourceline if element is not None else None)
    return Problem(where, _clean(error.message), "structure", line=line or None)


class _Locator:
    """Finds the element an error is about: by lxml's ``error.path``, else by line and name."""

    def __init__(self, tree: etree._ElementTree | etree._Element) -> None:
        self.root = tree.getroot() if isinstance(tree, etree._ElementTree) else tree
        self._namespaces: dict[str, str] | None = None

    def __call__(self, error: etree._LogEntry) -> etree._Element | None:
        found = self._by_path(error.path)
        return found if found is not None else self._by_line(error.line, error.message)

    def _by_path(self, path: str | None) -> etree._Element | None:
        if not path:
            return None
        try:
            found = self.root.xpath(path, namespaces=self.namespaces())
        except etree.XPathError:
            return None
        return found[0] if isinstance(found, list) and found and isinstance(found[0], etree._Element) else None

    def namespaces(self) -> dict[str, str]:
        """Every prefix the document declares (libxml2's paths use the document's own prefixes)."""
        if self._namespaces is None:
            self._namespaces = {}
            for element in self.root.iter():
                for prefix, uri in element.nsmap.items():
                    if prefix:
                        self._namespaces.setdefault(prefix, uri)
        return self._namespaces

    def _by_line(self, line: int, message: str) -> etree._Element | None:
        named = re.match(r"Element '(?:\{([^}]*)\})?([^']+)'", message)
        candidates = [e for e in self.root.iter() if isinstance(e.tag, str) and e.sourceline == line]
        if named:
            tag = f"{{{named[1]}}}{named[2]}" if named[1] else named[2]
            candidates = [e for e in candidates if e.tag == tag] or candidates
        return candidates[0] if candidates else None


_REWRITES = [
    (r"^Element '([^']+)': This element is not expected\.", r"Element '\1' is not allowed here."),
    (r"^Element '([^']+)': Missing child element\(s\)\.", r"Element '\1' lacks a required child element."),
    (r"^Element '([^']+)': No matching global declaration available for the validation root\.",
     r"The root element '\1' is not one the schema declares."),
    (r"^Element '([^']+)', attribute '([^']+)': The attribute '[^']+' is not allowed\.",
     r"Attribute '\2' is not allowed on element '\1'."),
    (r"^Element '([^']+)': The attribute '([^']+)' is required but missing\.",
     r"Element '\1' lacks the required attribute '\2'."),
    (r"Expected is one of \( (.*?) \)\.", r"Expected one of: \1."),
    (r"Expected is \( (.*?) \)\.", r"Expected: \1."),
]


def _clean(message: str) -> str:
    """lxml's message with namespaces shortened (``{urn:hl7-org:v3}id`` → ``id``) and its stock
    phrasings turned into plainer English."""
    text = " ".join(message.split())
    text = re.sub(r"\{([^}]*)\}([\w.-]+)", lambda m: short_name(m[1], m[2]), text)
    for pattern, replacement in _REWRITES:
        text = re.sub(pattern, replacement, text)
    return text if len(text) <= 500 else text[:497] + "..."
