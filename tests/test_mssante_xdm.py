"""IHE XDM packages: synthetic round trips (every metadata field against the CDA spec it came from),
both layouts, several subsets, the DMP-destination rule, and every refusal for its own reason."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from cda.header import Code
from fhir_server.synthetic_cda import (
    CCAM,
    CONFIDENTIALITY,
    IDNAT_PS,
    IDNAT_ST,
    LOINC,
    TRE_A01,
    TRE_A02,
    TRE_R02,
    CdaSpec,
    billion_laughs,
    cda_document,
    dental_spec,
    display,
    replacement,
    spec,
)
from fhir_server.synthetic_xdm import (
    SOURCE_ID,
    RawEntry,
    bomb_stream,
    encrypted_entry,
    extra_entry,
    package_entries,
    pdf_rendition,
    raw_entry,
    raw_package,
    raw_zip,
    symlink_entry,
    too_many_entries,
    with_entries,
    xdm_package,
    xds_time,
    zip_bomb,
)
from fhir_server.synthetic_xdm import XdmOptions as Options
from mssante_bridge.xdm import XdmDocument, XdmError, XdmLimits, XdmPackage, read_xdm

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_XDM = sorted(p for p in SHARED.rglob("*.zip") if "xdm" in str(p).lower()) if SHARED.is_dir() else []
SENDER = "zoe.martin@test.mssante.fr"
FORMATS = {"pdf": "urn:ihe:iti:xds-sd:pdf:2008", "text": "urn:ihe:iti:xds-sd:text:2008",
           "structured": "urn:asipSante:modelesHorsProfils:2011"}
CLASS_OF = {"11488-4": ("10", "Compte rendu"), "28617-9": ("10", "Compte rendu"), "60591-5": ("11", "Synthèse")}


def utc(ts: str, minutes: int = 0) -> str:
    moment = datetime.strptime(ts, "%Y%m%d%H%M%S%z") + timedelta(minutes=minutes)
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


DEFAULT_LIMITS = XdmLimits()


def refused(data: bytes, limits: XdmLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(XdmError) as caught:
        read_xdm(data, limits)
    return str(caught.value)


def cda_documents(package: XdmPackage) -> list[XdmDocument]:
    return [d for d in package.documents if d.mime_type == "text/xml"]


def patient_cx(s: CdaSpec) -> str:
    return f"{s.ins}^^^&{s.ins_root}&ISO^NH"


def author_xcn(s: CdaSpec) -> str:
    return f"8{s.author_rpps}^{s.author_family}^{s.author_given}^^^^^^&{IDNAT_PS}&ISO^D^^^IDNPS"


def assert_author(author, s: CdaSpec) -> None:
    assert author.person == author_xcn(s)
    assert author.id_nat_ps == "8" + s.author_rpps and author.rpps == s.author_rpps
    assert author.institution == f"{s.organization_name}^^^^^&{IDNAT_ST}&ISO^IDNST^^^1{s.organization_finess}"
    assert author.specialty == f"{s.author_specialty}^{display(TRE_A02, s.author_specialty)}^{TRE_A02}"
    assert author.telecom == SENDER and author.role is None


def assert_document(doc: XdmDocument, s: CdaSpec) -> None:
    """Every field of a CDA document's entry, against its spec."""
    data = cda_document(s)
    assert doc.data == data and doc.mime_type == "text/xml"
    assert doc.size == len(data) and doc.hash == hashlib.sha1(data).hexdigest()
    assert doc.unique_id == s.document_id
    assert doc.type_code == Code(s.type_code, LOINC, s.type_display)
    assert doc.class_code == Code(*CLASS_OF[s.type_code][:1], "1.2.250.1.213.1.1.4.1", CLASS_OF[s.type_code][1])
    format_system = "1.3.6.1.4.1.19376.1.2.3" if s.body != "structured" else "1.2.250.1.213.1.1.4.2.282"
    assert (doc.format_code.code, doc.format_code.system) == (FORMATS[s.body], format_system)
    confidentiality = Code(s.confidentiality, CONFIDENTIALITY, display(CONFIDENTIALITY, s.confidentiality))
    assert doc.confidentiality == (confidentiality,)
    assert doc.practice_setting == Code(s.practice_setting, TRE_A01, display(TRE_A01, s.practice_setting))
    assert doc.facility_type == Code(s.facility_type, TRE_R02, display(TRE_R02, s.facility_type))
    assert doc.event_codes == ((Code(s.event_code, CCAM, display(CCAM, s.event_code)),) if s.event_code else ())
    assert doc.patient_id == patient_cx(s)
    assert doc.source_patient_id == f"{s.ipp}^^^&{s.ipp_root}&ISO^PI"
    assert doc.source_patient_info == (f"PID-3|{patient_cx(s)}", f"PID-5|{s.birth_family}^{s.given[0]}^^^^^L",
                                       f"PID-7|{s.birth_date}", f"PID-8|{s.gender}",
                                       f"PID-11|^^^^^^BDL^^{s.birthplace_cog}")
    assert len(doc.authors) == 1
    assert_author(doc.authors[0], s)
    assert doc.legal_authenticator == author_xcn(s)
    assert doc.title == s.title and doc.language == s.language
    assert doc.creation_time == utc(s.effective_time)
    assert (doc.service_start, doc.service_stop) == (utc(s.service_start), utc(s.service_end))
    assert doc.is_cda and not doc.for_dmp and doc.dmp_request is None


def assert_submission_set(package: XdmPackage, s: CdaSpec, index: int = 0) -> None:
    ss = package.submission_sets[index]
    assert ss.unique_id == f"{s.doc_root}.0" and ss.source_id == SOURCE_ID
    assert ss.patient_id == patient_cx(s) and ss.submission_time == utc(s.effective_time, 10)
    assert len(ss.authors) == 1
    assert_author(ss.authors[0], s)
    assert ss.intended_recipients == (f"|{s.ins}^{s.birth_family}^{s.given[0]}^^^^^^&{s.ins_root}&ISO"
                                      f"|^^Internet^{s.ins}@patient.mssante.fr",)
    assert ss.content_type == Code(s.type_code, LOINC, s.type_display)
    assert ss.title == s.title and ss.comments and ss.dest_dmp is None


# --- round trips ---------------------------------------------------------------------------------


def test_ihe_layout_round_trip() -> None:
    s = spec()
    package = read_xdm(xdm_package([[s]], sender=SENDER))
    assert [d.path for d in package.documents] == ["IHE_XDM/SUBSET01/DOC0001.XML", "IHE_XDM/SUBSET01/DOC0002.PDF"]
    cda, pdf = package.documents
    assert_document(cda, s)
    assert_submission_set(package, s)
    assert package.submission_set is package.submission_sets[0] and package.submission_set.subset == "SUBSET01"
    assert pdf.data == pdf_rendition(s) == s.body_bytes and pdf.mime_type == "application/pdf"
    assert pdf.unique_id == f"{s.doc_root}.99" and not pdf.is_cda and not pdf.for_dmp
    assert pdf.patient_id == patient_cx(s) and pdf.type_code == cda.type_code
    assert "DOC0001.XML" in package.index_htm and package.readme.startswith("IHE XDM package")


def test_ans_layout_uri_relative_to_ihe_xdm_and_a_top_folder() -> None:
    s = dental_spec()
    data = xdm_package([[s]], layout="ans", top_folder="KA202401/", sender=SENDER)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "KA202401/IHE_XDM/SS000001/CDA_1_1.XML" in names
    metadata = zipfile.ZipFile(io.BytesIO(data)).read("KA202401/IHE_XDM/SS000001/METADATA.XML")
    assert b"<rim:Value>SS000001/CDA_1_1.XML</rim:Value>" in metadata  # the ANS DRIM-M form
    package = read_xdm(data)
    assert package.documents[0].path == "KA202401/IHE_XDM/SS000001/CDA_1_1.XML"
    assert_document(package.documents[0], s)
    assert package.index_htm is not None and package.readme is not None


def test_several_subsets_several_documents() -> None:
    first = spec(seed=11)
    second = replacement(first)
    third = spec(seed=12, body="structured", type_code="60591-5")
    package = read_xdm(xdm_package([[first, second], [third]], sender=SENDER))
    assert [ss.subset for ss in package.submission_sets] == ["SUBSET01", "SUBSET02"]
    documents = cda_documents(package)
    assert [d.subset for d in documents] == ["SUBSET01", "SUBSET01", "SUBSET02"]
    for doc, s in zip(documents, [first, second, third], strict=True):
        assert_document(doc, s)
    assert_submission_set(package, first, 0)
    assert_submission_set(package, third, 1)
    assert [d.path for d in package.documents][-2:] == ["IHE_XDM/SUBSET02/DOC0001.XML", "IHE_XDM/SUBSET02/DOC0002.PDF"]


def test_without_pdf_and_with_an_author_role() -> None:
    s = spec(seed=5, body="text")
    package = read_xdm(xdm_package([[s]], pdf=False, author_role="Médecin traitant", sender=SENDER))
    (doc,) = package.documents
    assert doc.format_code.code == FORMATS["text"] and doc.authors[0].role == "Médecin traitant"


def test_metadata_without_namespaces_is_read_by_local_names() -> None:
    """ANS's own example METADATA.XML has unqualified ebRIM elements: local names are what count."""
    entries = package_entries(None, Options(layout="ans"))
    name, metadata = next(e for e in entries if e[0].endswith("METADATA.XML"))
    root = etree.fromstring(metadata)
    for element in root.iter(etree.Element):
        element.tag = etree.QName(element).localname
    etree.cleanup_namespaces(root)
    plain = etree.tostring(root)
    assert b"urn:oasis" not in plain.split(b">", 1)[0]
    package = read_xdm(with_entries([(n, plain if n == name else d) for n, d in entries]))
    assert package.documents[0].unique_id == spec().document_id and package.documents[0].is_cda


def test_a_zip_inside_is_a_document_never_opened() -> None:
    inner = xdm_package()
    package = read_xdm(xdm_package(attachments=(("INNER.ZIP", inner, "application/zip"),)))
    nested = package.documents[-1]
    assert nested.path.endswith("INNER.ZIP") and nested.data == inner and not nested.is_cda
    assert len(package.documents) == 3  # the inner package's documents are not listed


def test_entries_the_metadata_does_not_name_are_not_inflated(monkeypatch) -> None:
    junk = RawEntry("IHE_XDM/SUBSET01/JUNK.BIN", bomb_stream(64 << 20), 1000, 0)  # lies: 1,000 bytes
    opened = spy_opens(monkeypatch)
    package = read_xdm(raw_zip([*raw_package(), junk]))
    assert len(package.documents) == 2 and not any(name.endswith("JUNK.BIN") for name in opened)


def test_a_small_very_compressible_file_is_no_bomb() -> None:
    """Under the grace size, a ratio above 100:1 is a page of blanks, not an attack."""
    read_xdm(extra_entry("IHE_XDM/SUBSET01/BLANK.TXT", b" " * 500_000))


def test_xds_time_is_utc() -> None:
    assert xds_time("20251103101500+0100") == "20251103091500"
    assert xds_time("20250703101500+0200") == "20250703081500"
    assert xds_time("20251103") == "20251103"


# --- the DMP destination ----------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "request_"), [
    ({}, None),
    ({"dest_dmp": "Y"}, "DESTDMP slot of the submission set"),
    ({"dest_dmp_document": "Y"}, "DESTDMP slot of the document"),
    ({"dmp_recipient": True}, "intendedRecipient DMP of the submission set"),
    ({"dest_dmp": "Y", "dest_dmp_document": "N"}, None),  # the document's own word wins
    ({"dmp_recipient": True, "dest_dmp": "N"}, None),  # an explicit N beats the recipient
    ({"dest_dmp": "N", "dest_dmp_document": "Y"}, "DESTDMP slot of the document"),
])
def test_dmp_destination(options: dict, request_: str | None) -> None:
    package = read_xdm(xdm_package(**options))
    cda, pdf = package.documents
    assert cda.dmp_request == request_ and cda.for_dmp is (request_ is not None)
    assert not pdf.for_dmp  # a PDF is never filed, whatever is asked


def test_dmp_destination_spares_restricted_documents_but_not_masked_ones() -> None:
    restricted = read_xdm(xdm_package([[spec(confidentiality="R")]], dest_dmp="Y")).documents[0]
    assert restricted.dmp_request and restricted.restricted and not restricted.for_dmp
    masked = read_xdm(xdm_package(dest_dmp="Y", visibility=("MASQUE_PS",))).documents[0]
    assert Code("MASQUE_PS", "1.2.250.1.213.1.1.4.13", "MASQUE_PS") in masked.confidentiality
    assert masked.for_dmp and not masked.restricted


def test_only_cda_documents_declared_xml_go_to_the_dmp() -> None:
    cda = cda_document(spec())
    not_cda = b'<?xml version="1.0"?><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>'
    attachments = (("SIGN.XML", not_cda, "text/xml"), ("CDA.BIN", cda, "application/octet-stream"),
                   ("CDA.XML", cda, "application/hl7-v3+xml"), ("BROKEN.XML", b"<ClinicalDocument", "text/xml"))
    documents = read_xdm(xdm_package(dest_dmp="Y", attachments=attachments)).documents
    assert [d.for_dmp for d in documents] == [True, False, False, False, True, False]


def test_deliver_reads_the_sender_rpps() -> None:
    s = spec()
    assert read_xdm(xdm_package([[s]])).submission_set.authors[0].rpps == s.author_rpps


# --- refusals ------------------------------------------------------------------------------------------


def test_wrong_hash_size_missing_file() -> None:
    assert "is not the metadata's hash" in refused(xdm_package(wrong_hash=True))
    assert "the metadata says" in refused(xdm_package(wrong_size=True))
    assert "names the file 'DOC0001.XML', which the package lacks" in refused(xdm_package(missing_file=True))


def test_not_an_xdm_package() -> None:
    assert "no end of central directory" in refused(b"hello")
    assert "no end of central directory" in refused(xdm_package()[:-30])
    assert "no IHE_XDM/<subset>/METADATA.XML" in refused(with_entries([("INDEX.HTM", b"<html/>")]))
    assert "the limit is 100" in refused(xdm_package(), XdmLimits(max_zip_bytes=100))


@pytest.mark.parametrize(("metadata", "reason"), [
    (b"<SubmitObjectsRequest>", "is not well-formed XML"),
    (billion_laughs(levels=3), "DOCTYPE"),
    (b"<ClinicalDocument/>", "the root element must be SubmitObjectsRequest"),
    (b"<SubmitObjectsRequest><RegistryObjectList/></SubmitObjectsRequest>", "must describe one submission set, not 0"),
    (b"<SubmitObjectsRequest>" + b"<a>" * 60 + b"</a>" * 60 + b"</SubmitObjectsRequest>", "nests deeper than 50"),
])
def test_bad_metadata(metadata: bytes, reason: str) -> None:
    assert reason in refused(with_entries([("IHE_XDM/SUBSET01/METADATA.XML", metadata)]))


@pytest.mark.parametrize(("uri", "reason"), [
    (None, "names no file (URI slot)"),
    ("../../etc/passwd", "climbs out of the package"),
    ("/etc/passwd", "is an absolute path"),
    ("SUBSET02/DOC0001.XML", "which the package lacks"),
])
def test_bad_uri(uri: str | None, reason: str) -> None:
    entries = package_entries(None, Options(pdf=False))
    name, metadata = next(e for e in entries if e[0].endswith("METADATA.XML"))
    root = etree.fromstring(metadata)
    value = next(v for v in root.iter("{*}Value") if v.text == "DOC0001.XML")
    if uri is None:
        slot = value.getparent().getparent()
        slot.getparent().remove(slot)
    else:
        value.text = uri
    assert reason in refused(with_entries([(n, etree.tostring(root) if n == name else d) for n, d in entries]))


def test_too_many_entries() -> None:
    assert "declares 201 entries; at most 200" in refused(too_many_entries(201))  # before zipfile parses
    assert "has 201 entries; at most 200" in refused(too_many_entries(201, declared_count=1))  # the end record lies
    assert "declares 5 entries; at most 4" in refused(xdm_package(), XdmLimits(max_entries=4))
    read_xdm(too_many_entries(200))


def test_central_directory_too_large_for_its_entry_count() -> None:
    """Few entries with huge names (or extras) would still cost zipfile a long parse: refused first."""
    long_names = [raw_entry(f"IHE_XDM/SUBSET01/{n:02d}" + "A" * 65_000, b"x") for n in range(13)]
    assert "central directory is" in refused(raw_zip([*raw_package(), *long_names]))


@pytest.mark.parametrize(("name", "reason"), [
    ("../evil.txt", "climbs out of the package ('..')"),
    ("IHE_XDM/SUBSET01/../../../evil.txt", "climbs out of the package ('..')"),
    ("/etc/evil.txt", "is an absolute path"),
    ("IHE_XDM\\SUBSET01\\evil.txt", "has a backslash"),
    ("C:/evil.txt", "starts with a drive letter"),
])
def test_path_traversal(name: str, reason: str) -> None:
    assert reason in refused(extra_entry(name))


def test_symlink_encrypted_duplicate_and_unsupported_method() -> None:
    assert "'IHE_XDM/SUBSET01/LINK' is a symbolic link" in refused(symlink_entry())
    assert "'IHE_XDM/SUBSET01/DOC0001.XML' is encrypted" in refused(encrypted_entry())
    entries = package_entries(None, Options())
    assert "appears twice" in refused(with_entries([*entries, ("ihe_xdm/subset01/doc0001.xml", b"again")]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data, zipfile.ZIP_BZIP2)
    assert "compression method 12; only stored and deflate" in refused(out.getvalue())


def test_corrupt_entry() -> None:
    entries = raw_package()
    entries[3] = RawEntry(entries[3].name, entries[3].payload, entries[3].size, entries[3].crc ^ 1)
    reason = refused(raw_zip(entries))
    assert "'IHE_XDM/SUBSET01/DOC0001.XML' is corrupt: its CRC-32 is not the one it declares" in reason


def spy_opens(monkeypatch) -> list[str]:
    """The names of the entries read_xdm opens (to inflate them)."""
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


def test_zip_bomb_refused_by_its_ratio_without_inflating(monkeypatch) -> None:
    bomb = zip_bomb(1100 << 20)
    declared = {i.filename: i for i in zipfile.ZipFile(io.BytesIO(bomb)).infolist()}["IHE_XDM/SUBSET01/DOC0001.XML"]
    assert declared.file_size > 1 << 30 and len(bomb) < 2 << 20  # a gigabyte from under 2 MB
    opened = spy_opens(monkeypatch)
    reason = refused(bomb)
    assert "'IHE_XDM/SUBSET01/DOC0001.XML' has a compression ratio of" in reason
    assert "the limit is 100:1" in reason and opened == []


def test_lying_zip_bomb_stops_at_its_declared_size(monkeypatch) -> None:
    """It declares 50,000 bytes (a fine ratio): inflation stops one chunk past that, not a GB later."""
    inflated = []
    original = zipfile.ZipExtFile.read

    def counting(self, n=-1):
        data = original(self, n)
        if self.name.endswith("DOC0001.XML"):
            inflated.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting)
    reason = refused(zip_bomb(1100 << 20, declared=50_000))
    assert "'IHE_XDM/SUBSET01/DOC0001.XML' inflates past the 50000 bytes it declares" in reason
    assert sum(inflated) == 50_001


def test_ratio_and_total_limits() -> None:
    zeros = extra_entry("IHE_XDM/SUBSET01/ZEROS.BIN", bytes(5 << 20))  # named by no metadata: refused anyway
    assert "'IHE_XDM/SUBSET01/ZEROS.BIN' has a compression ratio of" in refused(zeros)
    assert "declares more than 5000 bytes once inflated" in refused(xdm_package(), XdmLimits(max_total_bytes=5000))
    relaxed = XdmLimits(max_ratio=10_000, max_total_bytes=4 << 20)
    assert "declares more than 4194304 bytes" in refused(zeros, relaxed)


def test_hostile_helpers_are_what_they_say() -> None:
    """The fixtures must stay hostile: a test of a refusal is worth its fixture."""
    infos = zipfile.ZipFile(io.BytesIO(symlink_entry())).infolist()
    assert (infos[-1].external_attr >> 16) & 0o170000 == 0o120000
    assert zipfile.ZipFile(io.BytesIO(encrypted_entry())).getinfo("IHE_XDM/SUBSET01/DOC0001.XML").flag_bits & 1
    assert raw_entry("a", b"abc", method=0).payload == b"abc"


# --- ANS examples, when the shared data has some ---------------------------------------------------------


@pytest.mark.skipif(not SHARED_XDM, reason="no IHE XDM example under ../shared/data")
@pytest.mark.parametrize("path", SHARED_XDM, ids=[p.name for p in SHARED_XDM])
def test_shared_xdm_examples(path: Path) -> None:
    package = read_xdm(path.read_bytes())
    assert package.documents
    for doc in package.documents:
        assert doc.size in (None, len(doc.data))
