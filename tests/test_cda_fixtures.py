"""The synthetic CDA fixtures are what they claim: CI-SIS headers that validate, faithful to their spec.

Schema and value-set checks need the shared ANS/HL7 artefacts next to the repository and are
skipped without them (CI); everything else runs anywhere.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from lxml import etree

from fhir_server.french.ins import is_luhn_valid, is_valid_ins
from fhir_server.synthetic_cda import (
    CCAM,
    CONFIDENTIALITY,
    GENDER,
    HL7,
    IDNAT_PS,
    IDNAT_ST,
    INS_NIR_TEST,
    LOINC,
    MEDIA_TYPES,
    NS,
    STRUCTURED_TEMPLATE,
    TEMPLATE_CISIS,
    TEMPLATE_HL7_FRANCE,
    TEMPLATE_XDS_SD,
    TRE_A01,
    TRE_A02,
    TRE_R02,
    CdaSpec,
    billion_laughs,
    cda_document,
    deeply_nested,
    dental_document,
    dental_spec,
    external_dtd,
    replacement,
    spec,
    xxe_file,
    xxe_network,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
CDA_DATA = SHARED / "data" / "cda"
SCHEMAS = {
    "ans-extended": CDA_DATA / "xsd" / "CDA_extended.xsd",
    "hl7-core": CDA_DATA / "hl7-cda-core-2.0" / "schema" / "normative" / "infrastructure" / "cda" / "CDA.xsd",
}
SVS = SHARED / "data" / "terminology" / "svs"
#: A parser that neither expands nor fetches anything: how hostile documents are inspected safely.
SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def documents() -> dict[str, tuple[CdaSpec, bytes]]:
    """The documents the fixtures promise to be valid CI-SIS CDA, with their specs."""
    specs = {
        "default": spec(),
        "structured": spec(body="structured"),
        "dental": dental_spec(),
        "replacement": replacement(spec()),
        "with-extensions": spec(doc_extension="CR-2026-0042", set_id_extension="CR-2026", replaces="1.2.3.4^77"),
        "no-ins": spec(ins=None),
        **{f"body-{kind}": spec(body=kind) for kind in MEDIA_TYPES if kind != "pdf"},
    }
    return {name: (s, cda_document(s)) for name, s in specs.items()}


DOCUMENTS = documents()
VALID = ("default", "structured", "dental", "replacement")


def root_of(doc: bytes) -> etree._Element:
    return etree.fromstring(doc, SAFE)


def count(root: etree._Element, path: str) -> int:
    return int(root.xpath(f"count({path})", namespaces=NS))


def one(root: etree._Element, path: str) -> str:
    """The single string an XPath (attribute or text) selects."""
    found = root.xpath(path, namespaces=NS)
    assert len(found) == 1, f"{path}: {found!r}"
    return str(found[0])


# --- CI-SIS header rules ---------------------------------------------------------------------

# (XPath, exact count) from the CI-SIS header cardinalities (FRENCH_STANDARDS.md §3.1) and the
# "structuration minimale" schematron; "h:" is urn:hl7-org:v3.
EXACTLY_ONE = (
    "h:realmCode[@code='FR']",
    "h:typeId[@root='2.16.840.1.113883.1.3'][@extension='POCD_HD000040']",
    f"h:templateId[@root='{TEMPLATE_HL7_FRANCE}']",
    f"h:templateId[@root='{TEMPLATE_CISIS}']",
    "h:id[@root]",
    "h:code[@code][@codeSystem][@displayName]",
    "h:title",
    "h:effectiveTime[@value]",
    f"h:confidentialityCode[@code='N' or @code='R' or @code='V'][@codeSystem='{CONFIDENTIALITY}'][@displayName]",
    "h:languageCode[@code='fr-FR']",
    "h:setId[@root]",
    "h:versionNumber[@value]",
    "h:recordTarget/h:patientRole[h:patient]",
    "h:recordTarget/h:patientRole/h:patient/h:name",
    "h:recordTarget/h:patientRole/h:patient/h:name/h:family[@qualifier='BR']",
    "h:recordTarget/h:patientRole/h:patient/h:name/h:given[@qualifier='BR']",
    f"h:recordTarget/h:patientRole/h:patient/h:administrativeGenderCode[@codeSystem='{GENDER}']",
    "h:recordTarget/h:patientRole/h:patient/h:birthTime[@value]",
    "h:recordTarget/h:patientRole/h:patient/h:birthplace/h:place/h:addr/h:county",
    "h:author/h:time[@value]",
    f"h:author/h:assignedAuthor/h:id[@root='{IDNAT_PS}'][@extension]",
    f"h:author/h:assignedAuthor/h:code[@codeSystem='{TRE_A02}'][@displayName]",
    "h:author/h:assignedAuthor/h:assignedPerson/h:name[h:family]",
    f"h:author/h:assignedAuthor/h:representedOrganization/h:id[@root='{IDNAT_ST}']",
    "h:author/h:assignedAuthor/h:representedOrganization/h:name",
    f"h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id[@root='{IDNAT_ST}']",
    "h:legalAuthenticator[h:signatureCode[@code='S']]",
    "h:legalAuthenticator/h:time[@value]",
    "h:legalAuthenticator/h:assignedEntity/h:id[@root][@extension]",
    "h:legalAuthenticator/h:assignedEntity/h:assignedPerson",
    "h:documentationOf[1]/h:serviceEvent/h:performer",
    "h:documentationOf[1]/h:serviceEvent/h:effectiveTime[h:low][h:high]",
    f"h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization"
    f"/h:standardIndustryClassCode[@codeSystem='{TRE_A01}']",
    "h:componentOf/h:encompassingEncounter/h:effectiveTime",
    f"h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code[@codeSystem='{TRE_R02}']",
    "h:component",
)


@pytest.mark.parametrize("name", VALID)
def test_header_follows_cisis_cardinalities(name: str) -> None:
    root = root_of(DOCUMENTS[name][1])
    missing = [path for path in EXACTLY_ONE if count(root, path) != 1]
    assert not missing
    assert count(root, "h:author") >= 1 and count(root, "h:documentationOf[h:serviceEvent]") >= 1
    assert count(root, "h:relatedDocument") <= 1
    qualifiers = set(root.xpath("h:recordTarget/h:patientRole/h:patient/h:name/*/@qualifier", namespaces=NS))
    assert qualifiers <= {"BR", "CL"}  # what the CI-SIS schematron admits


@pytest.mark.parametrize("name", [*VALID, *(n for n in DOCUMENTS if n.startswith("body-"))])
def test_template_ids_match_the_body(name: str) -> None:
    """Three templateIds; XDS-SD with a nonXMLBody (and then nothing else), a volet-like one with structuredBody."""
    s, doc = DOCUMENTS[name]
    roots = root_of(doc).xpath("h:templateId/@root", namespaces=NS)
    third = STRUCTURED_TEMPLATE if s.body == "structured" else TEMPLATE_XDS_SD
    assert roots == [TEMPLATE_HL7_FRANCE, TEMPLATE_CISIS, third]


def test_element_order_is_the_cda_one() -> None:
    names = [etree.QName(e).localname for e in root_of(DOCUMENTS["replacement"][1])]
    assert names == [
        "realmCode", "typeId", "templateId", "templateId", "templateId", "id", "code", "title", "effectiveTime",
        "confidentialityCode", "languageCode", "setId", "versionNumber", "recordTarget", "author", "custodian",
        "legalAuthenticator", "documentationOf", "relatedDocument", "componentOf", "component",
    ]  # fmt: skip


# --- schemas and value sets (need the shared artefacts) -------------------------------------


@pytest.fixture(scope="module", params=sorted(SCHEMAS))
def schema(request: pytest.FixtureRequest) -> etree.XMLSchema:
    path = SCHEMAS[request.param]
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data is not next to the repository)")
    return etree.XMLSchema(etree.parse(str(path)))


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_documents_validate_against_the_cda_schemas(schema: etree.XMLSchema, name: str) -> None:
    root = root_of(DOCUMENTS[name][1])
    assert schema.validate(root), schema.error_log


def value_set(file_name: str) -> set[tuple[str, str]]:
    """(code, codeSystem) of an ANS SVS value set file."""
    path = SVS / file_name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data is not next to the repository)")
    concepts = etree.parse(str(path)).iter("{urn:ihe:iti:svs:2008}Concept")
    return {(c.get("code"), c.get("codeSystem")) for c in concepts}


@pytest.mark.parametrize("name", VALID)
def test_codes_come_from_the_cisis_value_sets(name: str) -> None:
    s = DOCUMENTS[name][0]
    assert (s.type_code, s.type_system) in value_set("JDV_J07_XdsTypeCode_CISIS.xml")
    assert (s.author_specialty, TRE_A02) in value_set("JDV_J01_XdsAuthorSpecialty_CISIS.xml")
    assert (s.facility_type, TRE_R02) in value_set("JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml")
    assert (s.practice_setting, TRE_A01) in value_set("JDV_J04_XdsPracticeSettingCode_CISIS.xml")
    assert (s.confidentiality, CONFIDENTIALITY) in value_set("JDV_J08_XdsConfidentialityCode_CISIS.xml")


# --- identifiers -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(300))
def test_generated_identifiers_carry_valid_keys(seed: int) -> None:
    s = spec(seed=seed)
    assert is_valid_ins(s.ins), s.ins
    assert is_luhn_valid(s.author_rpps) and len(s.author_rpps) == 11
    assert is_luhn_valid(s.organization_finess) and len(s.organization_finess) == 9


@pytest.mark.parametrize(
    "traits",
    [
        {"gender": "F"},
        {"gender": "M", "birth_date": "19991231"},
        {"birthplace_cog": "2A004"},
        {"birthplace_cog": "2B033"},
    ],
)
def test_ins_follows_the_identity_traits(traits: dict) -> None:
    s = spec(**traits)
    assert is_valid_ins(s.ins)
    assert s.ins[0] == {"M": "1", "F": "2"}[s.gender]
    assert s.ins[1:5] == s.birth_date[2:6]
    assert s.ins[5:10] == s.birthplace_cog


def test_generation_is_deterministic() -> None:
    assert spec() == spec() and cda_document() == cda_document()
    assert spec(seed=1) != spec(seed=2)
    assert len({spec(seed=n).doc_root for n in range(50)}) == 50


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(TypeError):
        spec(colour="blue")
    with pytest.raises(ValueError):
        spec(body="docx")


# --- the document says what the spec says ---------------------------------------------------


def test_document_round_trips_the_spec() -> None:
    s, doc = DOCUMENTS["default"]
    root = root_of(doc)
    role = "h:recordTarget/h:patientRole"
    name = f"{role}/h:patient/h:name"
    assert doc.startswith(b"<?xml version='1.0' encoding='UTF-8'?>") and root.tag == f"{{{HL7}}}ClinicalDocument"
    assert one(root, "h:id/@root") == s.doc_root and count(root, "h:id[@extension]") == 0
    assert one(root, "h:setId/@root") == s.set_id_root and one(root, "h:versionNumber/@value") == "1"
    assert (one(root, "h:code/@code"), one(root, "h:code/@codeSystem")) == (s.type_code, LOINC)
    assert one(root, "h:code/@displayName") == s.type_display and one(root, "h:title/text()") == s.title
    assert one(root, "h:effectiveTime/@value") == s.effective_time
    assert one(root, "h:confidentialityCode/@code") == s.confidentiality
    assert one(root, f"{role}/h:id[@root='{INS_NIR_TEST}']/@extension") == s.ins
    assert one(root, f"{role}/h:id[@root='{s.ipp_root}']/@extension") == s.ipp
    assert one(root, f"{role}/h:telecom/@value") == f"mailto:{s.ins}@patient.mssante.fr"
    assert one(root, f"{name}/h:family[@qualifier='BR']/text()") == s.birth_family
    assert one(root, f"{name}/h:family[@qualifier='CL']/text()") == s.used_family
    assert one(root, f"{name}/h:given[not(@qualifier)]/text()") == " ".join(s.given)
    assert one(root, f"{name}/h:given[@qualifier='BR']/text()") == s.given[0]
    assert one(root, f"{role}/h:patient/h:administrativeGenderCode/@code") == s.gender
    assert one(root, f"{role}/h:patient/h:birthTime/@value") == s.birth_date
    assert one(root, f"{role}/h:patient/h:birthplace/h:place/h:addr/h:county/text()") == s.birthplace_cog
    author = "h:author/h:assignedAuthor"
    assert one(root, f"{author}/h:id/@extension") == "8" + s.author_rpps
    assert one(root, f"{author}/h:code/@code") == s.author_specialty
    assert one(root, f"{author}/h:assignedPerson/h:name/h:family/text()") == s.author_family
    assert one(root, f"{author}/h:assignedPerson/h:name/h:given/text()") == s.author_given
    assert one(root, f"{author}/h:representedOrganization/h:id/@extension") == "1" + s.organization_finess
    assert one(root, f"{author}/h:representedOrganization/h:name/text()") == s.organization_name
    custodian = "h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id/@extension"
    assert one(root, custodian) == "1" + s.organization_finess
    assert one(root, "h:legalAuthenticator/h:assignedEntity/h:id/@extension") == "8" + s.author_rpps
    event = "h:documentationOf/h:serviceEvent"
    assert one(root, f"{event}/h:effectiveTime/h:low/@value") == s.service_start
    assert one(root, f"{event}/h:effectiveTime/h:high/@value") == s.service_end
    assert count(root, f"{event}/h:code") == 0  # a GP consultation has no CCAM act
    setting = f"{event}/h:performer/h:assignedEntity/h:representedOrganization/h:standardIndustryClassCode/@code"
    assert one(root, setting) == s.practice_setting
    facility = "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code/@code"
    assert one(root, facility) == s.facility_type
    assert count(root, "h:relatedDocument") == 0


def test_ids_with_extensions_round_trip() -> None:
    s, doc = DOCUMENTS["with-extensions"]
    root = root_of(doc)
    assert (one(root, "h:id/@root"), one(root, "h:id/@extension")) == (s.doc_root, "CR-2026-0042")
    assert one(root, "h:setId/@extension") == "CR-2026"
    parent = "h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id"
    assert (one(root, f"{parent}/@root"), one(root, f"{parent}/@extension")) == ("1.2.3.4", "77")
    assert s.version == 2 and one(root, "h:versionNumber/@value") == "2"
    assert s.document_id == f"{s.doc_root}^CR-2026-0042"


def test_replacement_points_at_its_parent() -> None:
    parent = spec()
    s, doc = DOCUMENTS["replacement"]
    root = root_of(doc)
    assert one(root, "h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id/@root") == parent.doc_root
    assert count(root, "h:relatedDocument/h:parentDocument/h:id[@extension]") == 0
    assert one(root, "h:setId/@root") == parent.set_id_root and one(root, "h:versionNumber/@value") == "2"
    assert s.doc_root != parent.doc_root and s.effective_time > parent.effective_time
    assert s.ins == parent.ins and s.body_bytes == parent.body_bytes


@pytest.mark.parametrize("kind", list(MEDIA_TYPES))
def test_unstructured_bodies_carry_their_content(kind: str) -> None:
    s = spec(body=kind)
    text = root_of(cda_document(s)).find("h:component/h:nonXMLBody/h:text", NS)
    assert (text.get("mediaType"), text.get("representation")) == (MEDIA_TYPES[kind], "B64")
    assert base64.b64decode(text.text, validate=True) == s.body_bytes != b""
    magic = {"pdf": b"%PDF-1.4", "rtf": b"{\\rtf1", "jpeg": b"\xff\xd8\xff", "tiff": b"II*\x00"}
    if kind == "text":
        assert s.title in s.body_bytes.decode("utf-8")
    else:
        assert s.body_bytes.startswith(magic[kind])
    if kind == "jpeg":
        assert s.body_bytes.endswith(b"\xff\xd9")


def test_structured_body_has_one_narrative_section() -> None:
    s, doc = DOCUMENTS["structured"]
    root = root_of(doc)
    assert s.body_bytes == b"" and count(root, "h:component/h:nonXMLBody") == 0
    section = "h:component/h:structuredBody/h:component/h:section"
    assert count(root, section) == 1 and count(root, f"{section}/h:text/h:paragraph") >= 3
    assert one(root, f"{section}/h:title/text()") == s.title


def test_dental_document_is_a_dentists_oral_checkup() -> None:
    root = root_of(dental_document())
    assert one(root, "h:code/@code") == "28617-9" and one(root, "h:code/@displayName") == "Bilan bucco-dentaire"
    assert one(root, "h:author/h:assignedAuthor/h:code/@code") == "G15_40"
    assert one(root, "h:author/h:assignedAuthor/h:code/@displayName") == "Chirurgien-Dentiste"
    assert one(root, "h:documentationOf/h:serviceEvent/h:code/@codeSystem") == CCAM
    setting = "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization"
    assert one(root, f"{setting}/h:standardIndustryClassCode/@code") == "AMBULATOIRE"
    assert one(root, "h:componentOf//h:healthCareFacility/h:code/@code") == "SA07"
    assert one(root, "h:component/h:nonXMLBody/h:text/@mediaType") == "application/pdf"
    assert dental_spec(confidentiality="R").confidentiality == "R"


def test_document_without_ins_keeps_the_ipp() -> None:
    s, doc = DOCUMENTS["no-ins"]
    root = root_of(doc)
    assert root.xpath("h:recordTarget/h:patientRole/h:id/@root", namespaces=NS) == [s.ipp_root]
    assert count(root, "h:recordTarget/h:patientRole/h:telecom") == 0


def test_used_name_qualifier_and_absence() -> None:
    name = "h:recordTarget/h:patientRole/h:patient/h:name"
    sp = root_of(cda_document(used_qualifier="SP"))
    assert count(sp, f"{name}/h:family[@qualifier='SP']") == 1 and count(sp, f"{name}/h:family[@qualifier='CL']") == 0
    plain = root_of(cda_document(used_family=None, given=["LÉA"]))
    assert plain.xpath(f"{name}/*/@qualifier", namespaces=NS) == ["BR", "BR"]


HEADER = [etree.QName(e).localname for e in root_of(DOCUMENTS["default"][1])]


@pytest.mark.parametrize(
    "omitted",
    ["custodian", "legalAuthenticator", "componentOf", "documentationOf", "author", "recordTarget", "realmCode",
     "languageCode", "templateId", "setId"],
)  # fmt: skip
def test_omit_removes_exactly_that_element(omitted: str) -> None:
    names = [etree.QName(e).localname for e in root_of(cda_document(omit=(omitted,)))]
    assert names == [n for n in HEADER if n != omitted]


def test_omit_accepts_a_path() -> None:
    root = root_of(cda_document(omit=("recordTarget/patientRole/patient/birthplace",)))
    assert count(root, "h:recordTarget/h:patientRole/h:patient/h:birthplace") == 0
    assert count(root, "h:recordTarget/h:patientRole/h:patient/h:birthTime") == 1


# --- hostile documents -----------------------------------------------------------------------


def untrick(doc: bytes, title: str | None = None) -> bytes:
    """The document without its DOCTYPE, the title markup put back: what remains of a hostile fixture."""
    text = re.sub(r"<!DOCTYPE[^\[>]*(\[.*?\])?>\n", "", doc.decode("utf-8"), count=1, flags=re.DOTALL)
    if title is not None:
        text = text.replace(f"<title>{title}</title>", f"<title>{spec().title}</title>", 1)
    return text.encode("utf-8")


def internal_subset(doc: bytes) -> etree.DTD:
    """The internal DTD subset, parsed as a DTD: declarations are read, nothing is expanded."""
    subset = re.search(rb"<!DOCTYPE ClinicalDocument \[(.*?)\]>", doc, re.DOTALL)
    assert subset is not None
    return etree.DTD(io.StringIO(subset.group(1).decode("utf-8")))


def test_billion_laughs_nests_internal_entities() -> None:
    doc = billion_laughs()
    entities = {e.name: e.content for e in internal_subset(doc).iterentities()}
    assert entities["lol0"] == "lol"
    assert all(entities[f"lol{n}"] == f"&lol{n - 1};" * 10 for n in range(1, 10))
    assert b"<title>&lol9;</title>" in doc
    assert untrick(doc, "&lol9;") == cda_document()


def test_billion_laughs_really_expands() -> None:
    """A small instance, expanded on purpose: the trick works (3 * 10 ** 2 characters)."""
    root = etree.fromstring(billion_laughs(levels=3), etree.XMLParser(resolve_entities=True))
    assert root.findtext("h:title", namespaces=NS) == "lol" * 100


def test_billion_laughs_is_refused_even_unexpanded() -> None:
    """libxml2 counts entity amplification even when lxml is told not to substitute entities."""
    with pytest.raises(etree.XMLSyntaxError, match="amplification"):
        etree.fromstring(billion_laughs(), SAFE)


def test_xxe_file_reads_a_local_file_when_entities_are_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top-secret-42")
    doc = xxe_file(str(secret))
    root = etree.fromstring(doc, SAFE)
    entity = next(root.getroottree().docinfo.internalDTD.iterentities())
    assert (entity.name, entity.system_url) == ("xxe", secret.as_uri())
    assert b"top-secret-42" not in etree.tostring(root)
    leaky = etree.fromstring(doc, etree.XMLParser(resolve_entities=True, no_network=True))
    assert leaky.findtext("h:title", namespaces=NS) == "top-secret-42"
    assert untrick(doc, "&xxe;") == cda_document()


def test_xxe_network_declares_a_remote_entity() -> None:
    url = "http://127.0.0.1:9/cda-probe"
    doc = xxe_network(url)
    root = etree.fromstring(doc, SAFE)
    entities = [(e.name, e.system_url) for e in root.getroottree().docinfo.internalDTD.iterentities()]
    assert entities == [("xxe", url)]
    assert untrick(doc, "&xxe;") == cda_document()
    with pytest.raises(ValueError):
        xxe_network('http://x/"><evil/>')


def test_external_dtd_points_at_the_url() -> None:
    url = "http://127.0.0.1:9/cda.dtd"
    doc = external_dtd(url)
    root = etree.fromstring(doc, SAFE)
    assert root.getroottree().docinfo.system_url == url
    assert untrick(doc) == cda_document()


def test_deeply_nested_nests_sections() -> None:
    root = etree.fromstring(deeply_nested(10), SAFE)
    sections = root.xpath("//h:section", namespaces=NS)
    assert len(sections) == 10
    assert len(list(sections[-1].iterancestors())) == 2 * 10 + 2  # element depth 2 * depth + 3
    assert count(root, "h:recordTarget") == 1 and count(root, "h:component") == 1


def test_deeply_nested_exceeds_libxml2_default_depth() -> None:
    """256 is libxml2's limit without XML_PARSE_HUGE; 300 sections go beyond it."""
    doc = deeply_nested(300)
    with pytest.raises(etree.XMLSyntaxError, match="depth"):
        etree.fromstring(doc)
    assert len(etree.fromstring(doc, etree.XMLParser(huge_tree=True)).xpath("//h:section", namespaces=NS)) == 300
