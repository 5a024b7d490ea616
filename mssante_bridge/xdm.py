"""IHE XDM packages (``IHE_XDM.zip``) read safely: ZIP bytes in, submission sets and documents out.

A professional's MSSanté mail to a patient carries ``IHE_XDM.zip`` (IHE ITI XDM, CI-SIS "Echange de
documents de santé"): ``INDEX.HTM``, ``README.TXT`` and, per subset, ``IHE_XDM/<SUBSET>/METADATA.XML``,
an ebRIM ``SubmitObjectsRequest`` with the XDS metadata (FRENCH_STANDARDS.md §3.4) whose ``URI`` slot
names each document's file. The ``URI`` is read relative to the subset folder (IHE's
``SUBSET01/DOC0001.XML`` layout, URI ``DOC0001.XML``) or, when it starts with the subset's own name,
relative to ``IHE_XDM/`` (the ANS DRIM-M example: URI ``SS000001/KOS_1_1.DCM``). The whole package
may sit in one top folder. This module is pure: no network, no store.

The archive comes from outside, so nothing in it is trusted (ARCHITECTURE.md, "Security"): the
end-of-central-directory's entry count and size are checked before ``zipfile`` parses anything;
entry count, total inflated size and per-entry compression ratio are limited (``XdmLimits``), first
on the declared sizes (a bomb is refused without inflating a byte), then again on the bytes actually
inflated, in chunks, stopping as soon as a limit is crossed or an entry inflates past the size it
declares; names that climb out (``..``), are absolute, use backslashes or drive letters, symbolic
links, encrypted entries, duplicate names and compression methods other than stored/deflate are
refused; only the entries the metadata needs are inflated, and a ZIP inside is a document like any
other, never opened. METADATA.XML is parsed as ``cda/parse.py`` parses CDA (no DOCTYPE, no entity,
no network, bounded size and depth); each document's size and SHA-1 are checked against the metadata.

Which documents go to the DMP — ``XdmDocument.for_dmp``. The sources give no XDM-level signal:
* ``ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss`` (CI-SIS "Transmission au LPS de
  documents CDA provenant d'un courriel MSSanté") ``input/pagecontent/profils-messages.md``: what a
  receiving platform passes on from a mail is MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REP_LEGAUX and
  MODIF_CONF_CODE — no DESTDMP; ``meta-dmp-mss.md`` lists the MetaDMPMSS table.
* ``ansforge/IG-hl7v2-volet-transmission-document-cda-r2`` ``profils-messages.md`` /
  ``regles-gestion-mssante.md``: DESTDMP (Y/N, "le document doit être utilisé pour une transaction
  DMP") is an instruction from the producing software to its own sending platform, which feeds the
  DMP itself (XDS) and mails separately; its "Point d'attention" (issue #15): a document of
  reinforced confidentiality (R or V) should not be shared.
* ``ansforge/IG-FHIR-PDSM4DMP-EEDS`` ``input/fsh/Model/SubmissionSet.fsh``: intendedRecipient =
  "destinataires (structure ou professionnel)", not used by the DMP transactions;
  ``ansforge/DRIM-M_DATA`` ``informatif/XDM/.../METADATA.XML`` and ``ansforge/TestContenuCDA-2-41``
  ``FeuilleDeStyle/CDAHeaderToXDM.xsl`` (CDA → XDM) write no destination at all; the CI-SIS XDM
  volet itself is a PDF we could not read.
Our rule, therefore our choice, conservative (nothing is filed unless asked explicitly):
a document is filed in the DMP when (1) it is a CDA document — declared XML (``mimeType``) and its
root element is ``{urn:hl7-org:v3}ClinicalDocument``; (2) filing is asked for, first found of: a
``DESTDMP`` slot on the document (``Y``/``N``, MetaDMPMSS vocabulary), a ``DESTDMP`` slot on its
submission set, an ``intendedRecipient`` of its submission set whose organisation (XON.1) is
``DMP``; (3) it is not of reinforced confidentiality (v3 ``R``/``V``), as the ANS note says. Every
other document stays in the patient's inbox only. ``XdmDocument.is_cda``, ``dmp_request`` and
``confidentiality`` keep what the decision was based on.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

from lxml import etree

from cda.header import IDNAT_PS, Code
from cda.parse import PROLOG_BYTES, _check_depth
from cda.problems import CdaError

CDA_ROOT = "{urn:hl7-org:v3}ClinicalDocument"
CONFIDENTIALITY_V3 = "2.16.840.1.113883.5.25"
DMP_RECIPIENT = "DMP"  # XON.1 of the intendedRecipient that asks for DMP filing (our convention)
DESTDMP = "DESTDMP"  # the MetaDMPMSS code, as a slot name
XML_TYPES = frozenset({"text/xml", "application/xml"})
CHUNK = 64 << 10
CENTRAL_ENTRY_BYTES = 4096  # a generous bound on one central-directory record (46 bytes + name + extras)

# XDS classification schemes, identification schemes and nodes (IHE ITI TF-3 §4.2.5; FRENCH_STANDARDS §3.4).
SS_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_FACILITY = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_EVENT = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"

METADATA = re.compile(r"(?P<base>(?:[^/]+/)?)IHE_XDM/(?P<subset>[^/]+)/METADATA\.XML", re.IGNORECASE)


class XdmError(ValueError):
    """A package refused, and why (in words the sender can act on)."""


class NotXdm(XdmError):
    """A well-formed ZIP that holds no IHE XDM package (an ordinary archive)."""


@dataclass(frozen=True)
class XdmLimits:
    max_entries: int = 200
    max_total_bytes: int = 50 << 20  # inflated, all entries together
    max_ratio: int = 100  # inflated : compressed, per entry
    ratio_grace_bytes: int = 1 << 20  # smaller entries may compress better (a page of blanks is no bomb)
    max_zip_bytes: int = 50 << 20
    max_metadata_bytes: int = 10 << 20
    max_metadata_depth: int = 50  # ebRIM nests 6 deep


@dataclass(frozen=True)
class Author:
    person: str | None  # XCN, e.g. 810001234567^MARTIN^Anne^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS
    id_nat_ps: str | None  # the person id when its authority is 1.2.250.1.71.4.2.1
    rpps: str | None  # the RPPS: id_nat_ps without its "8" prefix (None for ADELI and other kinds)
    institution: str | None  # XON (first authorInstitution)
    role: str | None
    specialty: str | None  # CE code^display^system
    telecom: str | None  # the e-mail of the XTN (the MSSanté address), else the raw value


@dataclass(frozen=True)
class SubmissionSet:
    subset: str
    entry_uuid: str | None
    unique_id: str | None
    source_id: str | None
    patient_id: str | None
    submission_time: str | None
    authors: tuple[Author, ...]
    intended_recipients: tuple[str, ...]  # XON|XCN|XTN as written
    content_type: Code | None
    title: str | None
    comments: str | None
    dest_dmp: bool | None  # its DESTDMP slot, when it has one


@dataclass(frozen=True)
class XdmDocument:
    subset: str
    path: str  # the ZIP entry
    data: bytes = field(repr=False)
    entry_uuid: str | None = None
    mime_type: str | None = None
    unique_id: str | None = None
    hash: str | None = None  # SHA-1 hex, checked
    size: int | None = None  # checked
    type_code: Code | None = None
    class_code: Code | None = None
    format_code: Code | None = None
    confidentiality: tuple[Code, ...] = ()
    practice_setting: Code | None = None
    facility_type: Code | None = None
    event_codes: tuple[Code, ...] = ()
    patient_id: str | None = None  # CX, e.g. 279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH
    source_patient_id: str | None = None
    source_patient_info: tuple[str, ...] = ()
    authors: tuple[Author, ...] = ()
    legal_authenticator: str | None = None
    title: str | None = None
    comments: str | None = None
    creation_time: str | None = None
    service_start: str | None = None
    service_stop: str | None = None
    language: str | None = None
    is_cda: bool = False  # declared XML and rooted in ClinicalDocument
    dmp_request: str | None = None  # what asks for DMP filing (see the module docstring), None if nothing

    @property
    def restricted(self) -> bool:
        """Reinforced confidentiality (v3 R or V): not to be shared (ANS)."""
        return any(c.system == CONFIDENTIALITY_V3 and c.code in ("R", "V") for c in self.confidentiality)

    @property
    def for_dmp(self) -> bool:
        return self.is_cda and self.dmp_request is not None and not self.restricted


@dataclass(frozen=True)
class XdmPackage:
    index_htm: str | None
    readme: str | None
    submission_sets: tuple[SubmissionSet, ...]
    documents: tuple[XdmDocument, ...]

    @property
    def submission_set(self) -> SubmissionSet:
        return self.submission_sets[0]


def read_xdm(data: bytes, limits: XdmLimits = XdmLimits()) -> XdmPackage:
    """The package in ``data``, or ``XdmError`` saying why it is refused."""
    archive = _Archive(data, limits)
    found = [(m["base"], m["subset"], info) for info in archive.files()
             if (m := METADATA.fullmatch(info.filename))]
    if not found:
        raise NotXdm("Not an IHE XDM package: no IHE_XDM/<subset>/METADATA.XML")
    if len({base.casefold() for base, _, _ in found}) > 1:
        raise XdmError("The package has IHE_XDM folders under several top folders")
    base = found[0][0]
    sets, documents = [], []
    for _, subset, info in sorted(found, key=lambda f: f[1].casefold()):
        if info.file_size > limits.max_metadata_bytes:
            raise XdmError(f"{info.filename} is {info.file_size} bytes; the limit is {limits.max_metadata_bytes}")
        root = _load_metadata(archive.read(info), info.filename, limits)
        submission, docs = _subset(root, archive, base, subset)
        sets.append(submission)
        documents.extend(docs)
    return XdmPackage(_text(archive, base + "INDEX.HTM"), _text(archive, base + "README.TXT"),
                      tuple(sets), tuple(documents))


# --- the ZIP -----------------------------------------------------------------------------------


class _Archive:
    """The entries of a checked ZIP, and a bounded way to inflate them."""

    def __init__(self, data: bytes, limits: XdmLimits) -> None:
        if len(data) > limits.max_zip_bytes:
            raise XdmError(f"The ZIP archive is {len(data)} bytes; the limit is {limits.max_zip_bytes}")
        _check_directory(data, limits)
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, IndexError,
                struct.error) as error:
            raise XdmError(f"Not a readable ZIP archive: {error}") from None
        infos = self.zip.infolist()
        if len(infos) > limits.max_entries:
            raise XdmError(f"The ZIP archive has {len(infos)} entries; at most {limits.max_entries} are accepted")
        self.limits, self.budget = limits, limits.max_total_bytes
        self.entries: dict[str, zipfile.ZipInfo] = {}
        self.inflated: dict[str, bytes] = {}
        declared = 0
        for info in infos:
            _check_entry(info, limits)
            key = info.filename.casefold()
            if key in self.entries:
                raise XdmError(f"The entry {info.filename!r} appears twice in the ZIP archive")
            self.entries[key] = info
            declared += info.file_size
            if declared > limits.max_total_bytes:
                raise XdmError(f"The ZIP archive declares more than {limits.max_total_bytes} bytes once inflated")

    def files(self) -> list[zipfile.ZipInfo]:
        return [i for i in self.entries.values() if not i.is_dir()]

    def get(self, name: str) -> zipfile.ZipInfo | None:
        info = self.entries.get(name.casefold())
        return info if info is not None and not info.is_dir() else None

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """The entry's bytes, inflated in chunks; stops as soon as the ratio, the total or the declared
        size is exceeded (``zipfile`` never returns more than ``file_size``, so it gets our cap + 1, and
        no CRC, which we check)."""
        if info.filename in self.inflated:
            return self.inflated[info.filename]
        ratio_cap = max(self.limits.ratio_grace_bytes, self.limits.max_ratio * info.compress_size)
        bounded = copy.copy(info)
        bounded.file_size = min(info.file_size, ratio_cap, self.budget) + 1
        del bounded.CRC  # zipfile would check it on reaching our cap; we check it ourselves, at the end
        out, crc = bytearray(), 0
        try:
            with self.zip.open(bounded) as stream:
                while chunk := stream.read(CHUNK):
                    out += chunk
                    crc = zlib.crc32(chunk, crc)
                    if len(out) > ratio_cap:
                        raise XdmError(_ratio(info, len(out), self.limits))
                    if len(out) > self.budget:
                        raise XdmError(f"The ZIP archive inflates to more than {self.limits.max_total_bytes} bytes")
                    if len(out) > info.file_size:
                        raise XdmError(f"The entry {info.filename!r} inflates past the {info.file_size} bytes it "
                                       "declares (a ZIP bomb?)")
        except XdmError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError,
                struct.error) as error:
            raise XdmError(f"The entry {info.filename!r} is corrupt: {error}") from None
        if len(out) != info.file_size:
            raise XdmError(f"The entry {info.filename!r} inflates to {len(out)} bytes, not the {info.file_size} "
                           "it declares")
        if crc != info.CRC:
            raise XdmError(f"The entry {info.filename!r} is corrupt: its CRC-32 is not the one it declares")
        self.budget -= len(out)
        self.inflated[info.filename] = data = bytes(out)
        return data


def _check_directory(data: bytes, limits: XdmLimits) -> None:
    """Entry count and central-directory size, from the end records, before ``zipfile`` parses them."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if at < 0 or at + 22 > len(data):
        raise XdmError("Not a ZIP archive: no end of central directory")
    count, size = struct.unpack_from("<HI", data, at + 10)
    if count == 0xFFFF or size == 0xFFFFFFFF:  # ZIP64: the real values are in the ZIP64 end record
        locator = at - 20
        if locator < 0 or data[locator:locator + 4] != b"PK\x06\x07":
            raise XdmError("Malformed ZIP64 archive: no end of central directory locator")
        (record,) = struct.unpack_from("<Q", data, locator + 8)
        if record + 56 > len(data) or data[record:record + 4] != b"PK\x06\x06":
            raise XdmError("Malformed ZIP64 archive: no end of central directory record")
        count, size = struct.unpack_from("<QQ", data, record + 32)
    if count > limits.max_entries:
        raise XdmError(f"The ZIP archive declares {count} entries; at most {limits.max_entries} are accepted")
    if size > limits.max_entries * CENTRAL_ENTRY_BYTES:
        raise XdmError(f"The ZIP archive's central directory is {size} bytes, too large for "
                       f"{limits.max_entries} entries")


def _check_entry(info: zipfile.ZipInfo, limits: XdmLimits) -> None:
    _check_path(info.filename, f"The entry {info.filename!r}")
    if info.flag_bits & 0x41:  # 0x01 encrypted, 0x40 strong encryption
        raise XdmError(f"The entry {info.filename!r} is encrypted")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise XdmError(f"The entry {info.filename!r} is a symbolic link")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise XdmError(f"The entry {info.filename!r} uses compression method {info.compress_type}; "
                       "only stored and deflate are accepted")
    if info.file_size > max(limits.ratio_grace_bytes, limits.max_ratio * info.compress_size):
        raise XdmError(_ratio(info, info.file_size, limits))


def _ratio(info: zipfile.ZipInfo, inflated: int, limits: XdmLimits) -> str:
    ratio = inflated // max(info.compress_size, 1)
    return (f"The entry {info.filename!r} has a compression ratio of {ratio}:1 ({inflated} bytes from "
            f"{info.compress_size}); the limit is {limits.max_ratio}:1 (a ZIP bomb?)")


def _check_path(name: str, what: str) -> None:
    """No way out of the package: no '..', absolute path, backslash, drive letter or NUL."""
    if "\\" in name:
        raise XdmError(f"{what} has a backslash in its path")
    if name.startswith("/"):
        raise XdmError(f"{what} is an absolute path")
    if re.match(r"[A-Za-z]:", name):
        raise XdmError(f"{what} starts with a drive letter")
    if ".." in name.split("/"):
        raise XdmError(f"{what} climbs out of the package ('..')")
    if "\x00" in name or not name:
        raise XdmError(f"{what} is not a usable path")


def _text(archive: _Archive, name: str) -> str | None:
    info = archive.get(name)
    if info is None:
        return None
    data = archive.read(info)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# --- METADATA.XML ------------------------------------------------------------------------------


def _load_metadata(data: bytes, where: str, limits: XdmLimits) -> etree._Element:
    """As ``cda.parse.load`` reads CDA (its DOCTYPE rule, depth check, parser options); that function
    insists on a ClinicalDocument root, hence this wrapper."""
    if b"<!DOCTYPE" in data[:PROLOG_BYTES]:
        raise XdmError(f"{where}: a document type declaration (DOCTYPE) is not allowed")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise XdmError(f"{where} is not well-formed XML: {error.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise XdmError(f"{where}: a document type declaration (DOCTYPE) is not allowed")
    try:
        _check_depth(root, limits.max_metadata_depth)
    except CdaError as error:
        raise XdmError(f"{where}: {error}") from None
    if _local(root) != "SubmitObjectsRequest":
        raise XdmError(f"{where}: the root element must be SubmitObjectsRequest, not {_local(root)}")
    return root


class _Registry:
    """Classifications and external identifiers by the object they describe (nested or not)."""

    def __init__(self, root: etree._Element) -> None:
        self.by_object: dict[str, list[etree._Element]] = {}
        self.packages, self.documents, self.ss_ids = [], [], set()
        for element in root.iter(etree.Element):
            name = _local(element)
            if name in ("Classification", "ExternalIdentifier"):
                target = element.get("classifiedObject") or element.get("registryObject")
                if target is None and element.getparent() is not None:
                    target = element.getparent().get("id")
                self.by_object.setdefault(target or "", []).append(element)
                if name == "Classification" and element.get("classificationNode") == SS_NODE:
                    self.ss_ids.add(target)
                if name == "ExternalIdentifier" and element.get("identificationScheme") == SS_UNIQUE_ID:
                    self.ss_ids.add(target)
            elif name == "RegistryPackage":
                self.packages.append(element)
            elif name == "ExtrinsicObject":
                self.documents.append(element)

    def classified(self, element: etree._Element, scheme: str) -> list[etree._Element]:
        return [c for c in self.by_object.get(element.get("id") or "", [])
                if _local(c) == "Classification" and c.get("classificationScheme") == scheme]

    def identifier(self, element: etree._Element, scheme: str) -> str | None:
        return next((e.get("value") for e in self.by_object.get(element.get("id") or "", [])
                     if _local(e) == "ExternalIdentifier" and e.get("identificationScheme") == scheme), None)

    def code(self, element: etree._Element, scheme: str) -> Code | None:
        return next(iter(self.codes(element, scheme)), None)

    def codes(self, element: etree._Element, scheme: str) -> tuple[Code, ...]:
        return tuple(Code(c.get("nodeRepresentation") or "", next(iter(_slot(c, "codingScheme")), None),
                          _localized(c, "Name")) for c in self.classified(element, scheme))

    def authors(self, element: etree._Element, scheme: str) -> tuple[Author, ...]:
        return tuple(_author(c) for c in self.classified(element, scheme))


def _subset(root: etree._Element, archive: _Archive, base: str,
            subset: str) -> tuple[SubmissionSet, list[XdmDocument]]:
    registry = _Registry(root)
    packages = [p for p in registry.packages if p.get("id") in registry.ss_ids]
    if len(packages) != 1:
        raise XdmError(f"{subset}/METADATA.XML must describe one submission set, not {len(packages)}")
    package = packages[0]
    submission = SubmissionSet(
        subset=subset, entry_uuid=package.get("id"),
        unique_id=registry.identifier(package, SS_UNIQUE_ID), source_id=registry.identifier(package, SS_SOURCE_ID),
        patient_id=registry.identifier(package, SS_PATIENT_ID), submission_time=_first(package, "submissionTime"),
        authors=registry.authors(package, SS_AUTHOR), intended_recipients=_slot(package, "intendedRecipient"),
        content_type=registry.code(package, SS_CONTENT_TYPE), title=_localized(package, "Name"),
        comments=_localized(package, "Description"), dest_dmp=_yes_no(_first(package, DESTDMP)))
    return submission, [_document(e, registry, archive, base, subset, submission) for e in registry.documents]


def _document(element: etree._Element, registry: _Registry, archive: _Archive, base: str, subset: str,
              submission: SubmissionSet) -> XdmDocument:
    where = f"{subset}/METADATA.XML, document {element.get('id')!r}"
    uri = _first(element, "URI")
    if not uri:
        raise XdmError(f"{where} names no file (URI slot)")
    info = _entry(archive, base, subset, uri, where)
    data = archive.read(info)
    size, digest = _first(element, "size"), _first(element, "hash")
    if size is not None and (not size.isdigit() or int(size) != len(data)):
        raise XdmError(f"{where}: {uri} is {len(data)} bytes, the metadata says {size}")
    if digest is not None and digest.lower() != hashlib.sha1(data).hexdigest():
        raise XdmError(f"{where}: the SHA-1 of {uri} is not the metadata's hash {digest}")
    mime = element.get("mimeType")
    return XdmDocument(
        subset=subset, path=info.filename, data=data, entry_uuid=element.get("id"), mime_type=mime,
        unique_id=registry.identifier(element, DE_UNIQUE_ID), hash=digest and digest.lower(),
        size=len(data) if size is not None else None, type_code=registry.code(element, DE_TYPE),
        class_code=registry.code(element, DE_CLASS), format_code=registry.code(element, DE_FORMAT),
        confidentiality=registry.codes(element, DE_CONFIDENTIALITY),
        practice_setting=registry.code(element, DE_PRACTICE), facility_type=registry.code(element, DE_FACILITY),
        event_codes=registry.codes(element, DE_EVENT), patient_id=registry.identifier(element, DE_PATIENT_ID),
        source_patient_id=_first(element, "sourcePatientId"), source_patient_info=_slot(element, "sourcePatientInfo"),
        authors=registry.authors(element, DE_AUTHOR), legal_authenticator=_first(element, "legalAuthenticator"),
        title=_localized(element, "Name"), comments=_localized(element, "Description"),
        creation_time=_first(element, "creationTime"), service_start=_first(element, "serviceStartTime"),
        service_stop=_first(element, "serviceStopTime"), language=_first(element, "languageCode"),
        is_cda=_is_cda(data, mime), dmp_request=_dmp_request(element, submission))


def _entry(archive: _Archive, base: str, subset: str, uri: str, where: str) -> zipfile.ZipInfo:
    """The file a URI names: inside the subset folder, or under IHE_XDM/ when it starts with the subset."""
    _check_path(uri, f"{where}: the URI {uri!r}")
    candidates = [f"{base}IHE_XDM/{subset}/{uri}"]
    if uri.split("/", 1)[0].casefold() == subset.casefold():
        candidates.append(f"{base}IHE_XDM/{uri}")
    for name in candidates:
        info = archive.get(name)
        if info is not None:
            return info
    raise XdmError(f"{where} names the file {uri!r}, which the package lacks")


def _dmp_request(element: etree._Element, submission: SubmissionSet) -> str | None:
    own = _yes_no(_first(element, DESTDMP))
    if own is not None:
        return "DESTDMP slot of the document" if own else None
    if submission.dest_dmp is not None:
        return "DESTDMP slot of the submission set" if submission.dest_dmp else None
    for recipient in submission.intended_recipients:
        if recipient.split("|", 1)[0].split("^", 1)[0].strip().casefold() == DMP_RECIPIENT.casefold():
            return "intendedRecipient DMP of the submission set"
    return None


def _is_cda(data: bytes, mime: str | None) -> bool:
    """Declared XML, and the first element is a CDA ClinicalDocument (the DMP door checks the rest)."""
    kind = (mime or "").split(";", 1)[0].strip().lower()
    if kind not in XML_TYPES and not kind.endswith("+xml"):
        return False
    try:
        for _, element in etree.iterparse(io.BytesIO(data), events=("start",), resolve_entities=False,
                                          no_network=True, load_dtd=False, huge_tree=False):
            return element.tag == CDA_ROOT
    except etree.XMLSyntaxError:
        return False
    return False


def _author(classification: etree._Element) -> Author:
    person = next(iter(_slot(classification, "authorPerson")), None)
    id_nat_ps = _id_nat_ps(person)
    telecom = next(iter(_slot(classification, "authorTelecommunication")), None)
    return Author(
        person=person, id_nat_ps=id_nat_ps,
        rpps=id_nat_ps[1:] if id_nat_ps and id_nat_ps.startswith("8") else None,
        institution=next(iter(_slot(classification, "authorInstitution")), None),
        role=next(iter(_slot(classification, "authorRole")), None),
        specialty=next(iter(_slot(classification, "authorSpecialty")), None),
        telecom=_email(telecom))


def _id_nat_ps(xcn: str | None) -> str | None:
    """XCN.1 when XCN.9 (assigning authority, &OID&ISO) is the national professional id's OID."""
    parts = (xcn or "").split("^")
    authority = parts[8].split("&") if len(parts) > 8 else []
    oid = authority[1] if len(authority) > 1 else (authority[0] if authority else "")
    return parts[0] if parts[0] and oid == IDNAT_PS else None


def _email(xtn: str | None) -> str | None:
    parts = (xtn or "").split("^")
    return parts[3] if len(parts) > 3 and parts[3] else xtn


def _yes_no(value: str | None) -> bool | None:
    return {"Y": True, "N": False}.get((value or "").strip().upper())


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _slot(element: etree._Element, name: str) -> tuple[str, ...]:
    """The values of the element's own slot ``name``."""
    for slot in element:
        if isinstance(slot.tag, str) and _local(slot) == "Slot" and slot.get("name") == name:
            return tuple((v.text or "").strip() for v in slot.iter(etree.Element) if _local(v) == "Value")
    return ()


def _first(element: etree._Element, name: str) -> str | None:
    return next(iter(_slot(element, name)), None)


def _localized(element: etree._Element, name: str) -> str | None:
    """The value of the element's own Name or Description (first LocalizedString)."""
    for child in element:
        if isinstance(child.tag, str) and _local(child) == name:
            strings = [s for s in child.iter(etree.Element) if _local(s) == "LocalizedString"]
            return strings[0].get("value") if strings else None
    return None
