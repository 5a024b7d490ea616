"""The ANS "structuration minimale" schematron (``ASIP-STRUCT-MIN-StrucMin.sch``), run on a CDA document.

The schematron is ANS's (ansforge/TestContenuCDA-3-0, ``schematrons/profils/structurationMinimale``): its
repository states no licence, so it is not shipped; point ``MES_CDA_SCHEMATRON`` at the ``.sch``, with
its ``include/`` folder (the ``DTr1_*`` datatype rules, the template rules and the ``voc-*.xml`` value
sets it reads with ``doc()``) beside it.

Its queryBinding is ``xslt2`` (``tokenize``, ``distinct-values``, ``empty``, ``doc()``), which libxslt
(``lxml.isoschematron``) cannot run, so it takes two steps:

1. lxml's bundled ISO Schematron skeleton (``iso_dsdl_include``, ``iso_abstract_expand``,
   ``iso_svrl_for_xslt1``, all XSLT 1.0 run by lxml) turns the schema into a validating stylesheet.
   The skeleton copies each rule's XPath into the stylesheet as written; it never evaluates one.
2. Saxon-HE (``saxonche``, the optional extra ``schematron``: ``pip install 'mes-interop[schematron]'``)
   compiles that stylesheet as XSLT 2.0 and runs it; its SVRL report becomes ``Problem``s.

Without ``saxonche`` nothing here runs (``SchematronUnavailable``); the CI-SIS header rules that
``cda.rules`` implements in Python are then all that is checked.

Before compiling, every ``doc('include/voc-…')`` is resolved against the ``.sch``'s folder into an
absolute ``file:`` URI (Saxon is never asked for anything else, and a ``doc()`` of a network URL is
refused). A check whose value set is missing from that folder cannot be evaluated and is left out, not
failed: ``uncovered(sch)`` lists them. In the ANS copy of 2024 one is: ``ClinicalDocument/code`` in
JDV_J07_XdsTypeCode_CISIS (``voc-1.2.250.1.213.1.1.5.471-DYNAMIC.xml`` is referenced but not there).

Costs, measured on one core: compiling takes about 10 s (2.5 s of skeleton in lxml, 7 s of Saxon), once
per path and process; validating takes 15-120 ms per document (the five ANS examples and our synthetic
ones). Calls into Saxon are serialised by a lock, since the thread safety of SaxonC's one processor per
process is not documented for Python threads.

Configuration (environment):

``MES_CDA_SCHEMATRON``
    Path to ``ASIP-STRUCT-MIN-StrucMin.sch``. Read by ``schematron_path_from_env()``.
"""

from __future__ import annotations

import copy
import os
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

from lxml import etree

from cda.parse import short_name, xpath
from cda.problems import Problem

ENV_SCHEMATRON = "MES_CDA_SCHEMATRON"
INSTALL_HINT = "pip install 'mes-interop[schematron]' (saxonche, Saxon-HE for XSLT 2.0)"
SCH = "http://purl.oclc.org/dsdl/schematron"
SVRL = "http://purl.oclc.org/dsdl/svrl"
ERROR_ROLES = {None, "", "error", "fatal"}  # an assert without a role is an error (ISO Schematron)
CHECKS = {f"{{{SCH}}}assert", f"{{{SCH}}}report"}
_DOC = re.compile(r"""\bdoc\(\s*(['"])(.*?)\1\s*\)""")


class SchematronError(RuntimeError):
    """A schematron that cannot be compiled, or that Saxon could not run to the end on a document."""


class SchematronUnavailable(SchematronError):
    """The optional XSLT 2.0 engine (saxonche) is not installed."""


def schematron_path_from_env() -> Path | None:
    """The ``.sch`` named by ``MES_CDA_SCHEMATRON``, or None when it is not set (the schematron is not run).

    A path that is set but names no file is a mistake worth stopping for, rather than silently not
    checking what was asked for."""
    value = os.environ.get(ENV_SCHEMATRON, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise SchematronError(f"{ENV_SCHEMATRON}={value!r} does not name a schematron file")
    return path


def run(root: etree._Element | etree._ElementTree, sch: Path, *, warnings: bool = False) -> list[Problem]:
    """Every failed error-level check of the schematron ``sch`` on ``root``, as ``Problem``s.

    Each says where (the XPath of the rule's context node, as ``cda.parse.xpath`` writes it, with its
    line) and why (the assert's text, whitespace collapsed). Checks of role ``warning`` or ``info`` are
    left out, unless ``warnings``: then they come too, with code ``informational``, for a caller that
    reports them without refusing the document."""
    element = root.getroot() if isinstance(root, etree._ElementTree) else root
    if element.getparent() is not None:  # the schematron sees a document: give it one of its own
        element = copy.deepcopy(element)
    compiled = _compiled(str(Path(sch).resolve()))
    report = compiled.validate(etree.tostring(element, encoding="unicode"))
    tree = element.getroottree()
    problems = []
    for fired in report.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
        role = fired.get("role")
        is_error = (role or "").lower() in ERROR_ROLES
        if not is_error and not warnings:
            continue
        where, line = _where(tree, fired.get("location") or "/")
        message = " ".join((fired.findtext(f"{{{SVRL}}}text") or "").split())
        problems.append(Problem(where, message, "invalid" if is_error else "informational", line=line))
    return problems


def uncovered(sch: Path) -> list[str]:
    """The checks of ``sch`` left out because a value set they read is not beside it (their texts)."""
    return list(_compiled(str(Path(sch).resolve())).uncovered)


# --- compiling -----------------------------------------------------------------------------------------


@dataclass
class _Compiled:
    executable: Any  # saxonche.PyXsltExecutable
    uncovered: tuple[str, ...]

    def validate(self, document: str) -> etree._Element:
        """The SVRL report of ``document`` (serialised XML without declaration)."""
        saxonche = _saxonche()
        with _saxon_lock:
            try:
                node = _processor().parse_xml(xml_text=document)
                svrl = self.executable.transform_to_string(xdm_node=node)
            except saxonche.PySaxonApiError as error:
                raise SchematronError(f"The schematron could not be run on this document: {error}") from None
        if not svrl:
            raise SchematronError("The schematron produced no report")
        return etree.fromstring(svrl.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))


_compile_lock = threading.Lock()
_saxon_lock = threading.RLock()  # every call into Saxon, compiling or transforming: one at a time
_processors: list[Any] = []


def _saxonche() -> Any:
    try:
        import saxonche
    except ImportError:
        raise SchematronUnavailable(f"Running the ANS schematron (XSLT 2.0) needs saxonche: {INSTALL_HINT}") from None
    return saxonche


def _processor() -> Any:
    """The process's one Saxon processor (SaxonC wants one, not one per use)."""
    with _saxon_lock:
        if not _processors:
            _processors.append(_saxonche().PySaxonProcessor(license=False))
        return _processors[0]


@cache
def _compiled(path: str) -> _Compiled:
    """The schematron at ``path``, compiled once per process."""
    with _compile_lock:
        return _compile(Path(path))


def _compile(sch: Path) -> _Compiled:
    saxonche = _saxonche()
    if not sch.is_file():
        raise SchematronError(f"No schematron at {sch}")
    stylesheet, left_out = _stylesheet(sch)
    try:
        with _saxon_lock:
            executable = _processor().new_xslt30_processor().compile_stylesheet(stylesheet_text=stylesheet)
    except saxonche.PySaxonApiError as error:
        raise SchematronError(f"{sch} did not compile as XSLT 2.0: {error}") from None
    if executable is None:
        raise SchematronError(f"{sch} did not compile as XSLT 2.0")
    return _Compiled(executable, tuple(left_out))


def _stylesheet(sch: Path) -> tuple[str, list[str]]:
    """The XSLT 2.0 stylesheet that validates against ``sch``, and the checks left out of it."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    try:
        schema = etree.parse(str(sch), parser)
    except (OSError, etree.XMLSyntaxError) as error:
        raise SchematronError(f"Cannot read schematron {sch}: {error}") from None
    try:
        expanded = _skeleton("iso_abstract_expand.xsl")(_skeleton("iso_dsdl_include.xsl")(schema))
    except etree.XSLTApplyError as error:
        raise SchematronError(f"Cannot assemble {sch} and its includes: {error}") from None
    top = expanded.getroot()
    if top is None or top.tag != f"{{{SCH}}}schema":
        raise SchematronError(f"{sch} is not an ISO schematron schema")
    if (top.get("queryBinding") or "xslt").lower() not in ("xslt", "xslt1", "xslt2", "xslt3", "xpath", "xpath2"):
        raise SchematronError(f"{sch}: queryBinding {top.get('queryBinding')!r} is not XSLT/XPath")
    top.set("queryBinding", "xslt")  # the skeleton emits only what it is told; Saxon evaluates XPath 2 below
    left_out = _resolve_documents(top, sch)
    try:
        generated = _skeleton("iso_svrl_for_xslt1.xsl")(expanded)
    except etree.XSLTApplyError as error:
        raise SchematronError(f"Cannot generate a validator from {sch}: {error}") from None
    xsl = generated.getroot()
    if xsl is None:
        raise SchematronError(f"Cannot generate a validator from {sch}")
    xsl.set("version", "2.0")  # XSLT 2.0 semantics, not Saxon's 1.0 backwards-compatible mode
    return etree.tostring(xsl, encoding="unicode"), left_out


def _resolve_documents(schema: etree._Element, sch: Path) -> list[str]:
    """Point every ``doc()`` at an absolute local file, and drop the checks whose file is missing.

    ART-DECOR writes ``doc('include/voc-….xml')`` relative to the main ``.sch``. A check (assert or
    report) that reads a missing file is dropped; a rule whose context or variables do, with all its
    checks. Returns the texts of what was dropped."""
    base = sch.resolve().parent.as_uri() + "/"
    drop: dict[etree._Element, None] = {}
    for element in schema.iter(etree.Element):
        for name, value in element.attrib.items():
            if "doc(" not in value:
                continue
            missing = False

            def absolute(match: re.Match[str], _name: str = name) -> str:
                nonlocal missing
                url = urljoin(base, match.group(2))
                parsed = urlparse(url)
                if parsed.scheme != "file":
                    raise SchematronError(f"{sch}: doc({match.group(2)!r}) in @{_name} is not a local file")
                missing = missing or not Path(_file_path(url)).is_file()
                return f"doc('{url}')"

            element.set(name, _DOC.sub(absolute, value))
            if missing:
                drop[_check_or_rule(element, sch)] = None
    left_out = []
    for element in drop:
        if element.tag in CHECKS:
            left_out.append(" ".join("".join(element.itertext()).split()))
        else:
            count = sum(1 for e in element.iter() if e.tag in CHECKS)
            left_out.append(f"rule {element.get('context')}: {count} check(s)")
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    return left_out


def _check_or_rule(element: etree._Element, sch: Path) -> etree._Element:
    """What to drop when ``element`` reads a missing file: itself if a check, else its rule."""
    node: etree._Element | None = element
    while node is not None and node.tag not in CHECKS and node.tag != f"{{{SCH}}}rule":
        node = node.getparent()
    if node is None:
        raise SchematronError(f"{sch}: a pattern- or schema-level <{etree.QName(element).localname}> reads a "
                              "value set that is not beside the schematron")
    return node


def _file_path(url: str) -> str:
    return url2pathname(urlparse(url).path)


@cache
def _skeleton(name: str) -> etree.XSLT:
    """One of lxml's bundled ISO Schematron XSLT 1.0 stylesheets, allowed to read local files only."""
    import lxml.isoschematron

    folder = Path(lxml.isoschematron.__file__).parent / "resources" / "xsl" / "iso-schematron-xslt1"
    no_writes = etree.XSLTAccessControl(read_network=False, write_file=False, create_dir=False, write_network=False)
    return etree.XSLT(etree.parse(str(folder / name)), access_control=no_writes)


# --- locating ----------------------------------------------------------------------------------------


def _where(tree: etree._ElementTree, location: str) -> tuple[str, int | None]:
    """``cda.parse.xpath`` of the node at the SVRL ``location`` (the skeleton's
    ``/*[local-name()='…' and namespace-uri()='…'][n]/…`` paths), with its line."""
    if location in ("", "/"):
        return "/", None
    try:
        found = tree.xpath(location)
    except etree.XPathError:
        return location, None
    node = found[0] if isinstance(found, list) and found else None
    if isinstance(node, etree._Element) and isinstance(node.tag, str):
        return xpath(node), node.sourceline
    parent = getattr(node, "getparent", lambda: None)()
    if parent is not None and getattr(node, "is_attribute", False):
        qname = etree.QName(node.attrname)
        return f"{xpath(parent)}/@{short_name(qname.namespace, qname.localname)}", parent.sourceline
    if isinstance(parent, etree._Element):  # a text node or comment: its element
        return xpath(parent), parent.sourceline
    return location, None

