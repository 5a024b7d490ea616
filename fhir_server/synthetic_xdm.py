"""Synthetic IHE XDM packages (``IHE_XDM.zip``) of our synthetic CI-SIS CDA documents, and hostile ZIPs.

The MSSanté bridge needs packages shaped as real senders make them, and there is no public one with
a CDA inside (FRENCH_STANDARDS.md §5.6), so we build them: METADATA.XML is an ebRIM 3.0
``lcm:SubmitObjectsRequest`` (XDS classification schemes, external identifiers, slots, HasMember
associations) written from what the CDA header says, read back with ``cda.parse.load`` and
``cda.header.read_header`` (§3.4), times in UTC as XDS wants. Options (``XdmOptions``) choose the
layout, the DMP destination, a PDF rendition per document, attachments, and faults (a wrong hash or
size, a missing file). The hostile builders write ZIPs byte by byte (``raw_zip``), since what makes
them hostile — bombs, lying sizes, climbing names, links, encryption flags — is what ``zipfile``
will not write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree
from lxml.builder import ElementMaker

from cda.codes import document_class, structured_format
from cda.header import IDNAT_ST, CdaHeader, Ident, Person, read_header
from cda.parse import load
from cda.rules import MEDIA_TYPES
from fhir_server.synthetic import tiny_pdf
from fhir_server.synthetic_cda import PROJECT_OID, CdaSpec, cda_document, spec
from mssante_bridge import xdm

LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
R = ElementMaker(namespace=RIM, nsmap={"lcm": LCM, "rim": RIM})

STABLE_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
CLASSIFICATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
EXTERNAL_IDENTIFIER = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
REGISTRY_PACKAGE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
SOURCE_ID = PROJECT_OID + ".5"  # our (fictitious) sending software
IHE_FORMATS = "1.3.6.1.4.1.19376.1.2.3"  # TRE_A11
EXTRA_FORMATS = "1.2.250.1.213.1.1.4.2.282"  # TRE_A06
CLASSES = "1.2.250.1.213.1.1.4.1"  # TRE_A03
VISIBILITY = "1.2.250.1.213.1.1.4.13"  # TRE_A07
MIME_SUFFICIENT = "urn:ihe:iti:xds:2017:mimeTypeSufficient"
FORMAT_DISPLAYS = {
    "urn:ihe:iti:xds-sd:pdf:2008": "Document à corps non structuré en Pdf/A-1",
    "urn:ihe:iti:xds-sd:text:2008": "Document à corps non structuré en texte brut",
    "urn:ihe:iti-fr:xds-sd:rtf:2010": "Document à corps non structuré en format rtf",
    "urn:ihe:iti-fr:xds-sd:jpeg:2010": "Document à corps non structuré en format jpeg",
    "urn:ihe:iti-fr:xds-sd:tiff:2010": "Document à corps non structuré en format tiff",
    "urn:asipSante:modelesHorsProfils:2011": "Document non référencé IHE ou CI-SIS",
}
DATE = (2026, 1, 5, 9, 0, 0)  # ZIP entry times: fixed, so a package is the same bytes every time


@dataclass(frozen=True)
class XdmOptions:
    layout: str = "ihe"  # "ihe": IHE_XDM/SUBSET01/DOC0001.XML, URI DOC0001.XML; "ans": SS000001/CDA_1_1.XML
    pdf: bool = True  # a PDF rendition of each CDA document, as a document of its own
    dest_dmp: str | None = None  # DESTDMP slot ("Y"/"N") of each submission set
    dest_dmp_document: str | None = None  # DESTDMP slot of each CDA document
    dmp_recipient: bool = False  # an intendedRecipient "DMP" in each submission set
    visibility: tuple[str, ...] = ()  # TRE_A07 codes added to each document's confidentiality
    attachments: tuple[tuple[str, bytes, str], ...] = ()  # (file, data, MIME type) added to the first subset
    wrong_hash: bool = False  # the first CDA document's hash is not its SHA-1
    wrong_size: bool = False  # the first CDA document's size is off by one
    missing_file: bool = False  # the first CDA document's file is left out of the ZIP
    top_folder: str = ""  # e.g. "KA202401/": the whole package under one folder
    sender: str | None = None  # the author's MSSanté address (default: from the author's name)
    author_role: str | None = None
    author_person: bool = True  # False: the author is the institution alone (an organisation's mailbox)


@dataclass(frozen=True)
class _Member:
    """One document of a subset: its bytes, where it goes, and the CDA header its metadata comes from."""

    id: str
    header: CdaHeader
    data: bytes
    file: str
    uri: str
    mime: str
    unique_id: str
    format: tuple[str, str, str]  # code, scheme, display
    cda: bool


def xdm_package(subsets: Sequence[Sequence[CdaSpec]] | None = None, options: XdmOptions = XdmOptions(),
                **changes: object) -> bytes:
    """``IHE_XDM.zip`` with one subset per list of specs (default: one subset, one default document)."""
    entries = package_entries(subsets, dataclasses.replace(options, **changes))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name, DATE), data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def package_entries(subsets: Sequence[Sequence[CdaSpec]] | None, options: XdmOptions) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file of the package, in ZIP order."""
    subsets = subsets if subsets is not None else [[spec()]]
    top, files = options.top_folder, []
    members = [_members(specs, n, options) for n, specs in enumerate(subsets, 1)]
    for n, (folder, subset) in enumerate(members):
        files.append((f"{top}IHE_XDM/{folder}/METADATA.XML", metadata_xml(subset, options, faulty=n == 0)))
        first_cda = next(m for m in subset if m.cda) if n == 0 else None
        files += [(f"{top}IHE_XDM/{folder}/{m.file}", m.data) for m in subset
                  if not (options.missing_file and m is first_cda)]
    index = _index_htm(members)
    return [(f"{top}INDEX.HTM", index), (f"{top}README.TXT", README), *files]


def pdf_rendition(s: CdaSpec) -> bytes:
    """The human-readable PDF a mail carries next to IHE_XDM.zip: the CDA's own PDF, else one made for it."""
    if s.body == "pdf":
        return s.body_bytes
    return tiny_pdf([s.title, f"Patient(e) : {s.given[0]} {s.birth_family}", f"Document {s.document_id}"])


def xds_time(ts: str | None) -> str | None:
    """An HL7 TS (with its UTC offset) as XDS writes times: UTC, YYYYMMDDhhmmss (shorter ones as they are)."""
    if not ts or len(ts) < 19 or ts[-5] not in "+-":
        return ts
    moment = datetime.strptime(ts[:14], "%Y%m%d%H%M%S")
    offset = timedelta(hours=int(ts[-4:-2]), minutes=int(ts[-2:])) * (1 if ts[-5] == "+" else -1)
    return (moment - offset).strftime("%Y%m%d%H%M%S")


# --- members ------------------------------------------------------------------------------------


def _members(specs: Sequence[CdaSpec], subset: int, options: XdmOptions) -> tuple[str, list[_Member]]:
    folder = f"SUBSET{subset:02d}" if options.layout == "ihe" else f"SS{subset:06d}"
    members: list[_Member] = []

    def add(header: CdaHeader, data: bytes, ext: str, mime: str, unique_id: str, fmt: tuple[str, str, str],
            cda: bool, file: str | None = None) -> None:
        n = len(members) + 1
        if file is None:
            file = f"DOC{n:04d}.{ext}" if options.layout == "ihe" else f"{'CDA' if cda else ext}_{subset}_{n}.{ext}"
        uri = file if options.layout == "ihe" else f"{folder}/{file}"
        members.append(_Member(f"Document{subset:02d}{n:02d}", header, data, file, uri, mime, unique_id, fmt, cda))

    for s in specs:
        data = cda_document(s)
        header = read_header(load(data))
        add(header, data, "XML", "text/xml", header.document_id.value, _cda_format(header), True)
        if options.pdf:
            add(header, pdf_rendition(s), "PDF", "application/pdf", _derived(header.document_id, 99),
                (MIME_SUFFICIENT, IHE_FORMATS, MIME_SUFFICIENT), False)
    if subset == 1:
        for name, data, mime in options.attachments:
            add(members[0].header, data, "BIN", mime, _derived(members[0].header.document_id, 100 + len(members)),
                (MIME_SUFFICIENT, IHE_FORMATS, MIME_SUFFICIENT), False, file=name)
    return folder, members


def _cda_format(header: CdaHeader) -> tuple[str, str, str]:
    """ASS_A12 for an unstructured body (by media type), the content model's template otherwise."""
    if not header.body.structured and header.body.media_type in MEDIA_TYPES:
        code = MEDIA_TYPES[header.body.media_type]
    else:
        code = structured_format(header.template_ids)["code"]
    return code, IHE_FORMATS if code.startswith("urn:ihe:") else EXTRA_FORMATS, FORMAT_DISPLAYS.get(code, code)


def _derived(ident: Ident | None, arc: int) -> str:
    """A unique id for a rendition or an attachment: the document's root with one more arc."""
    assert ident is not None
    return f"{ident.root}.{arc}^{ident.extension}" if ident.extension else f"{ident.root}.{arc}"


# --- METADATA.XML -------------------------------------------------------------------------------


def metadata_xml(subset: list[_Member], options: XdmOptions = XdmOptions(), faulty: bool = True) -> bytes:
    """The SubmitObjectsRequest of one subset: its submission set, its documents, their associations;
    ``faulty``: the subset whose first CDA document gets the options' faults."""
    first = subset[0].header
    objects = R.RegistryObjectList(_submission_set(first, options))
    objects.append(R.Classification(classificationNode=xdm.SS_NODE, classifiedObject="SubmissionSet01",
                                    id="SubmissionSet01-node", objectType=CLASSIFICATION))
    cda_seen = False
    for member in subset:
        fault = faulty and member.cda and not cda_seen
        cda_seen = cda_seen or member.cda
        objects.append(_document(member, options, fault))
        association = R.Association(_slot("SubmissionSetStatus", "Original"), associationType=HAS_MEMBER,
                                    id=f"{member.id}-member", sourceObject="SubmissionSet01", targetObject=member.id)
        objects.append(association)
    root = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    root.append(objects)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _submission_set(header: CdaHeader, options: XdmOptions) -> etree._Element:
    package = R.RegistryPackage(id="SubmissionSet01", objectType=REGISTRY_PACKAGE)
    package.append(_slot("submissionTime", xds_time(_later(header.effective_time))))
    recipients = [_patient_recipient(header)] + ([xdm.DMP_RECIPIENT] if options.dmp_recipient else [])
    package.append(_slot("intendedRecipient", *recipients))
    if options.dest_dmp:
        package.append(_slot(xdm.DESTDMP, options.dest_dmp))
    package.append(_localized("Name", header.title))
    package.append(_localized("Description", "Envoi par messagerie sécurisée de santé"))
    package.append(_author(header, "SubmissionSet01", xdm.SS_AUTHOR, options))
    type_ = header.type
    package.append(_classification(xdm.SS_CONTENT_TYPE, "SubmissionSet01", "SubmissionSet01-content",
                                   type_.code, type_.system, type_.display))
    document_id = header.document_id
    package.append(_identifier(xdm.SS_UNIQUE_ID, "SubmissionSet01", f"{document_id.root}.0",
                               "XDSSubmissionSet.uniqueId"))
    package.append(_identifier(xdm.SS_SOURCE_ID, "SubmissionSet01", SOURCE_ID, "XDSSubmissionSet.sourceId"))
    package.append(_identifier(xdm.SS_PATIENT_ID, "SubmissionSet01", patient_cx(header),
                               "XDSSubmissionSet.patientId"))
    return package


def _document(member: _Member, options: XdmOptions, fault: bool) -> etree._Element:
    h, oid = member.header, member.id
    digest = hashlib.sha1(member.data + (b"!" if fault and options.wrong_hash else b"")).hexdigest()
    size = len(member.data) + (1 if fault and options.wrong_size else 0)
    entry = R.ExtrinsicObject(id=oid, mimeType=member.mime, objectType=STABLE_ENTRY)
    ipp = h.patient.other_ids[0] if h.patient.other_ids else h.patient.ins
    slots = [("creationTime", xds_time(h.effective_time)), ("languageCode", h.language),
             ("legalAuthenticator", xcn(h.legal_authenticator) if h.legal_authenticator else None),
             ("serviceStartTime", xds_time(h.service_start)), ("serviceStopTime", xds_time(h.service_end)),
             ("sourcePatientId", f"{ipp.extension}^^^&{ipp.root}&ISO^PI" if ipp else None),
             ("hash", digest), ("size", str(size)), ("URI", member.uri)]
    entry.extend(_slot(name, value) for name, value in slots if value)
    entry.append(_slot("sourcePatientInfo", *source_patient_info(h)))
    if member.cda and options.dest_dmp_document:
        entry.append(_slot(xdm.DESTDMP, options.dest_dmp_document))
    entry.append(_localized("Name", h.title))
    entry.append(_author(h, oid, xdm.DE_AUTHOR, options))
    class_code, class_display = document_class(h.type.code)
    codes = [(xdm.DE_CLASS, class_code, CLASSES, class_display), (xdm.DE_FORMAT, *member.format)]
    codes += [(xdm.DE_CONFIDENTIALITY, h.confidentiality.code, h.confidentiality.system, h.confidentiality.display)]
    codes += [(xdm.DE_CONFIDENTIALITY, code, VISIBILITY, code) for code in options.visibility]
    codes += [(xdm.DE_EVENT, e.code, e.system, e.display) for e in h.events]
    for scheme, code in ((xdm.DE_FACILITY, h.facility_type), (xdm.DE_PRACTICE, h.practice_setting),
                         (xdm.DE_TYPE, h.type)):
        if code is not None:
            codes.append((scheme, code.code, code.system, code.display))
    for n, (scheme, code, system, display) in enumerate(codes, 1):
        entry.append(_classification(scheme, oid, f"{oid}-c{n}", code, system, display))
    entry.append(_identifier(xdm.DE_PATIENT_ID, oid, patient_cx(h), "XDSDocumentEntry.patientId"))
    entry.append(_identifier(xdm.DE_UNIQUE_ID, oid, member.unique_id, "XDSDocumentEntry.uniqueId"))
    return entry


def _author(header: CdaHeader, target: str, scheme: str, options: XdmOptions) -> etree._Element:
    """authorPerson (XCN), authorInstitution (XON), authorRole, authorSpecialty (CE), authorTelecommunication."""
    person = header.authors[0]
    org = person.organization
    slots = [("authorPerson", xcn(person) if options.author_person else None),
             ("authorInstitution", f"{org.name}^^^^^&{IDNAT_ST}&ISO^IDNST^^^{org.id.extension}" if org and org.id
              else None),
             ("authorRole", options.author_role),
             ("authorSpecialty", f"{person.role.code}^{person.role.display}^{person.role.system}" if person.role
              else None),
             ("authorTelecommunication", f"^^Internet^{options.sender or sender_address(person)}")]
    element = R.Classification(classificationScheme=scheme, classifiedObject=target, id=f"{target}-author",
                               nodeRepresentation="", objectType=CLASSIFICATION)
    element.extend(_slot(name, value) for name, value in slots if value)
    return element


def xcn(person: Person) -> str:
    """A professional as XDS writes one: idNatPs^FAMILY^Given^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS."""
    ident = person.id
    return f"{ident.extension}^{person.family}^{person.given}^^^^^^&{ident.root}&ISO^D^^^IDNPS"


def patient_cx(header: CdaHeader) -> str:
    ins = header.patient.ins
    return f"{ins.extension}^^^&{ins.root}&ISO^NH"


def source_patient_info(header: CdaHeader) -> list[str]:
    p = header.patient
    values = [f"PID-3|{patient_cx(header)}", f"PID-5|{p.birth_family}^{p.first_given}^^^^^L",
              f"PID-7|{p.birth_time}", f"PID-8|{p.gender}"]
    return values + ([f"PID-11|^^^^^^BDL^^{p.birthplace_cog}"] if p.birthplace_cog else [])


def sender_address(person: Person) -> str:
    """prenom.nom@test.mssante.fr, unaccented."""
    local = f"{person.given}.{person.family}".lower().replace(" ", "-").replace("œ", "oe").replace("æ", "ae")
    return unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode() + "@test.mssante.fr"


def _patient_recipient(header: CdaHeader) -> str:
    """The patient as an intendedRecipient: |XCN (INS)|XTN (their MSSanté address)."""
    p = header.patient
    return (f"|{p.ins.extension}^{p.birth_family}^{p.first_given}^^^^^^&{p.ins.root}&ISO"
            f"|^^Internet^{p.ins.extension}@patient.mssante.fr")


def _later(ts: str | None) -> str | None:
    """Ten minutes after ``ts`` (the submission follows the document), keeping its offset."""
    if not ts or len(ts) < 19:
        return ts
    return (datetime.strptime(ts[:14], "%Y%m%d%H%M%S") + timedelta(minutes=10)).strftime("%Y%m%d%H%M%S") + ts[14:]


def _slot(name: str, *values: str) -> etree._Element:
    return R.Slot(R.ValueList(*(R.Value(v) for v in values)), name=name)


def _localized(tag: str, text: str | None) -> etree._Element:
    return R(tag, R.LocalizedString(value=text or "", charset="UTF-8", **{XML_LANG: "fr-FR"}))


def _classification(scheme: str, target: str, cid: str, code: str, system: str | None,
                    display: str | None) -> etree._Element:
    element = R.Classification(classificationScheme=scheme, classifiedObject=target, id=cid,
                               nodeRepresentation=code, objectType=CLASSIFICATION)
    element.append(_slot("codingScheme", system or ""))
    element.append(_localized("Name", display or code))
    return element


def _identifier(scheme: str, target: str, value: str, name: str) -> etree._Element:
    element = R.ExternalIdentifier(identificationScheme=scheme, registryObject=target, value=value,
                                   id=f"{target}-{name.rsplit('.', 1)[1]}", objectType=EXTERNAL_IDENTIFIER)
    element.append(_localized("Name", name))
    return element


README = ("IHE XDM package (IHE ITI XDM, CI-SIS \"Echange de documents de sante\").\r\n"
          "Made by: Mon Espace Sante interop server, synthetic test data (fictitious patients).\r\n"
          "Contents: see INDEX.HTM; metadata in IHE_XDM/<subset>/METADATA.XML.\r\n").encode("ascii")


def _index_htm(subsets: list[tuple[str, list[_Member]]]) -> bytes:
    items = "".join(f'<li><a href="IHE_XDM/{folder}/{m.file}">{m.header.title} ({m.mime})</a></li>\r\n'
                    for folder, members in subsets for m in members)
    return ("<html><head><meta charset=\"utf-8\"><title>IHE XDM</title></head><body>\r\n"
            f"<h1>Documents de santé</h1>\r\n<ul>\r\n{items}</ul>\r\n"
            "<p>Voir README.TXT.</p></body></html>\r\n").encode()


# --- hostile ZIPs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawEntry:
    """A ZIP entry exactly as written: the stored payload and what the headers declare."""

    name: str
    payload: bytes  # deflated (method 8) or as is (method 0)
    size: int  # declared inflated size
    crc: int
    method: int = 8
    flags: int = 0
    mode: int = 0o100644  # Unix mode; 0o120777 is a symbolic link


def raw_entry(name: str, data: bytes, method: int = 8) -> RawEntry:
    payload = data
    if method == 8:
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = packer.compress(data) + packer.flush()
    return RawEntry(name, payload, len(data), zlib.crc32(data), method)


def raw_zip(entries: Sequence[RawEntry], declared_count: int | None = None) -> bytes:
    """Local headers, payloads, central directory and end record; ``declared_count`` may lie."""
    body, central = bytearray(), bytearray()
    for e in entries:
        name, flags = e.name.encode("utf-8"), e.flags | 0x800
        common = struct.pack("<HHHHHIII", 20, flags, e.method, 0, 0x21, e.crc, len(e.payload), e.size)
        offset = len(body)
        body += struct.pack("<I", 0x04034B50) + common + struct.pack("<HH", len(name), 0) + name + e.payload
        central += (struct.pack("<IH", 0x02014B50, 0x0314) + common
                    + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, e.mode << 16, offset) + name)
    count = len(entries) if declared_count is None else declared_count
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), len(body), 0)
    return bytes(body + central + end)


def raw_package(options: XdmOptions = XdmOptions()) -> list[RawEntry]:
    """The default package's entries, ready to be tampered with."""
    return [raw_entry(name, data) for name, data in package_entries(None, options)]


def _document_index(entries: list[RawEntry]) -> int:
    """The first CDA document of the default package."""
    return next(i for i, e in enumerate(entries) if e.name.endswith(".XML") and not e.name.endswith("METADATA.XML"))


def bomb_stream(inflated: int) -> bytes:
    """Raw deflate of ``inflated`` zero bytes (rounded up to MiB), made without inflating them: one
    compressed MiB, flushed so the compressor forgets, repeated (about 1,000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(bytes(1 << 20)) + packer.flush(zlib.Z_FULL_FLUSH)
    return block * -(-inflated // (1 << 20)) + packer.flush()


def zip_bomb(inflated: int = 1100 << 20, declared: int | None = None) -> bytes:
    """A package whose CDA document inflates to ``inflated`` bytes; it declares ``declared`` (default:
    the truth, so the ratio gives it away; a small lie makes it look harmless). CRC left 0."""
    entries = raw_package()
    i = _document_index(entries)
    mib = -(-inflated // (1 << 20)) << 20
    entries[i] = RawEntry(entries[i].name, bomb_stream(mib), mib if declared is None else declared, 0)
    return raw_zip(entries)


def too_many_entries(count: int = 201, declared_count: int | None = None) -> bytes:
    """A package padded to ``count`` entries (the end record may understate them)."""
    entries = raw_package()
    entries += [raw_entry(f"IHE_XDM/SUBSET01/PAD{n:04d}.TXT", b"x") for n in range(count - len(entries))]
    return raw_zip(entries, declared_count)


def extra_entry(name: str, data: bytes = b"evil\n", mode: int = 0o100644, method: int = 8) -> bytes:
    """A package with one more entry: a climbing name ("../x", "/x", "a\\\\b", "C:/x"), a link (mode)…"""
    entry = dataclasses.replace(raw_entry(name, data, method), mode=mode)
    return raw_zip([*raw_package(), entry])


def symlink_entry(target: str = "/etc/passwd") -> bytes:
    return extra_entry("IHE_XDM/SUBSET01/LINK", target.encode(), mode=0o120777, method=0)


def encrypted_entry() -> bytes:
    """A package whose CDA document says it is encrypted (flag bit 0; the bytes are in clear)."""
    entries = raw_package()
    i = _document_index(entries)
    entries[i] = dataclasses.replace(entries[i], flags=0x1)
    return raw_zip(entries)


def with_entries(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """A plain ZIP of ``entries`` (deflated), for packages with odd contents."""
    return raw_zip([raw_entry(name, data) for name, data in entries])
