"""Reading CDA bytes safely: no DTD, no entity, no network; bounded in size and depth.

A CDA file comes from outside (practice software, a mailbox, an MLLP message), so the parser
trusts nothing in it: a document type declaration (the carrier of entity bombs and external
entities) is refused outright, entities are never expanded nor fetched, and a document larger or
deeper than the limits is refused before it can cost much.
"""

from __future__ import annotations

from lxml import etree

from cda.problems import CdaError, Problem

V3 = "urn:hl7-org:v3"
NS = {"h": V3, "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
MAX_BYTES = 32 << 20  # a CDA with a base64 PDF of ~24 MB
MAX_DEPTH = 200  # CDA bodies nest sections and entries, but not this deep
PROLOG_BYTES = 4096  # where a DOCTYPE would be, before the root element
PREFIXES = {  # how paths and messages name elements outside the CDA namespace
    "urn:hl7-org:sdtc": "sdtc",
    "urn:oid:1.3.6.1.4.1.19376.1.3.2": "lab",
    "urn:ihe:pharm:medication": "pharm",
    "urn:dicom-org:ps3-20": "ps3-20",
    "http://www.w3.org/2001/XMLSchema-instance": "xsi",
}


def load(data: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> etree._Element:
    """The ``ClinicalDocument`` element of ``data``, or a ``CdaError`` saying why not."""
    if len(data) > max_bytes:
        raise CdaError([Problem("/", f"The document is {len(data)} bytes; the limit is {max_bytes}", "too-costly")])
    if b"<!DOCTYPE" in data[:PROLOG_BYTES]:
        raise _doctype()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_blank_text=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise CdaError([Problem("/", f"Not well-formed XML: {error.msg}", "structure", line=error.lineno)]) from None
    if root.getroottree().docinfo.doctype:  # entities (bombs, external files or URLs) come with a DTD
        raise _doctype()
    _check_depth(root, max_depth)
    if root.tag != f"{{{V3}}}ClinicalDocument":
        raise CdaError([Problem(f"/{etree.QName(root).localname}",
                                f"The root element must be ClinicalDocument in the {V3} namespace", "structure")])
    return root


def _doctype() -> CdaError:
    return CdaError([Problem("/", "A document type declaration (DOCTYPE) is not allowed in a CDA document: "
                                  "it is how entity bombs and external entities get in", "security")])


def _check_depth(root: etree._Element, max_depth: int) -> None:
    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > max_depth:
            raise CdaError([Problem(xpath(element), f"The document nests deeper than {max_depth} elements",
                                    "too-costly", line=element.sourceline)])


def xpath(element: etree._Element) -> str:
    """A readable XPath of ``element``: local names (``lab:``, ``pharm:``… outside the CDA
    namespace), with a position among same-named siblings when there are several
    (``/ClinicalDocument/recordTarget/patientRole/id[2]``)."""
    steps = []
    node: etree._Element | None = element
    while node is not None and isinstance(node.tag, str):
        qname = etree.QName(node)
        name = short_name(qname.namespace, qname.localname)
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if isinstance(c.tag, str) and c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def short_name(namespace: str | None, local: str) -> str:
    """``id`` for the CDA namespace (and none), ``sdtc:id`` for a known extension, ``{urn:x}id`` otherwise."""
    if namespace in (V3, None):
        return local
    return f"{PREFIXES[namespace]}:{local}" if namespace in PREFIXES else f"{{{namespace}}}{local}"
