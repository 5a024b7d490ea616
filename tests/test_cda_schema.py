"""``cda.schema``: XSD validation against the shipped HL7 CDA R2 schema or a configured one (ANS extended),
errors located by XPath and line, schemas loaded from local files only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import CountingListener
from lxml import etree

from cda import schema
from cda.schema import HL7_NORMATIVE, HL7_SDTC, SchemaError, schema_path_from_env, validate

SHARED = Path(__file__).resolve().parents[2] / "shared"
EXAMPLES = SHARED / "data" / "cda" / "examples"
ANS_XSD = SHARED / "data" / "cda" / "xsd" / "CDA_extended.xsd"

# A small CDA R2 document valid against the HL7 schema: one line per start tag, so a test can say
# on which line an element is.
MINIMAL = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <id root="1.2.250.1.999.1" extension="DOC-1"/>
  <code code="11488-4" codeSystem="2.16.840.1.113883.6.1" displayName="Compte rendu de consultation"/>
  <title>Compte rendu</title>
  <effectiveTime value="20240102103000+0100"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <setId root="1.2.250.1.999.2"/>
  <versionNumber value="1"/>
  <recordTarget>
    <patientRole>
      <id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>
      <patient>
        <name><given>DOMINIQUE</given><family qualifier="BR">PAT-TROIS</family></name>
        <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="19790328"/>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value="20240102103000+0100"/>
    <assignedAuthor>
      <id root="1.2.250.1.71.4.2.1" extension="801234567890"/>
    </assignedAuthor>
  </author>
  <custodian>
    <assignedCustodian>
      <representedCustodianOrganization>
        <id root="1.2.250.1.71.4.2.2" extension="1234567890"/>
      </representedCustodianOrganization>
    </assignedCustodian>
  </custodian>
  <legalAuthenticator>
    <time value="20240102103000+0100"/>
    <signatureCode code="S"/>
    <assignedEntity>
      <id root="1.2.250.1.71.4.2.1" extension="801234567890"/>
    </assignedEntity>
  </legalAuthenticator>
  <component>
    <nonXMLBody>
      <text mediaType="text/plain" representation="B64">Qm9uam91cg==</text>
    </nonXMLBody>
  </component>
</ClinicalDocument>
"""


def tree_of(xml: str) -> etree._ElementTree:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    return etree.fromstring(xml.encode(), parser).getroottree()


def line_of(xml: str, needle: str) -> int:
    assert xml.count(needle) == 1, needle
    return xml[: xml.index(needle)].count("\n") + 1


def edit(old: str, new: str) -> str:
    assert MINIMAL.count(old) == 1, old
    return MINIMAL.replace(old, new)


def only(problems: list) -> schema.Problem:
    assert len(problems) == 1, problems
    return problems[0]


# -- the shipped HL7 schema ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("xsd", [None, HL7_SDTC, HL7_NORMATIVE], ids=["default", "sdtc", "normative"])
def test_a_minimal_cda_is_valid(xsd):
    assert validate(tree_of(MINIMAL), xsd) == []


def test_the_root_element_is_accepted_as_well_as_the_tree():
    assert validate(tree_of(MINIMAL).getroot()) == []
    bad = tree_of(edit("<title>", "<bogus/><title>")).getroot()
    assert only(validate(bad)).xpath == "/ClinicalDocument/bogus"


def test_an_unknown_element_is_reported_where_it_is():
    xml = edit("      <patient>\n", "      <favouriteColour>blue</favouriteColour>\n      <patient>\n")
    problem = only(validate(tree_of(xml)))
    assert problem.xpath == "/ClinicalDocument/recordTarget/patientRole/favouriteColour"
    assert problem.line == line_of(xml, "<favouriteColour>")
    assert problem.message.startswith("Element 'favouriteColour' is not allowed here.")
    assert "{urn:hl7-org:v3}" not in problem.message
    assert problem.code == "structure"


def test_a_misplaced_element_is_reported_with_what_was_expected():
    # effectiveTime moved before code: the schema's sequence is id, code, title, effectiveTime
    xml = edit('  <title>Compte rendu</title>\n  <effectiveTime value="20240102103000+0100"/>\n',
               "  <title>Compte rendu</title>\n")
    xml = xml.replace("  <code code=", '  <effectiveTime value="20240102103000+0100"/>\n  <code code=', 1)
    problem = only(validate(tree_of(xml)))
    assert problem.xpath == "/ClinicalDocument/effectiveTime"
    assert problem.line == line_of(xml, "<effectiveTime")
    assert "Expected" in problem.message and "code" in problem.message


def test_a_missing_required_child_is_reported_on_its_parent():
    xml = edit('      <id root="1.2.250.1.71.4.2.2" extension="1234567890"/>\n', "")
    problem = only(validate(tree_of(xml)))
    assert problem.xpath == (
        "/ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization")
    assert problem.line == line_of(xml, "<representedCustodianOrganization>")
    assert problem.message == ("Element 'representedCustodianOrganization' lacks a required child element. "
                               "Expected one of: realmCode, typeId, templateId, id.")


def test_a_missing_required_header_element_is_reported_on_the_element_that_took_its_place():
    start, end = MINIMAL.index("  <custodian>"), MINIMAL.index("  <legalAuthenticator>")
    xml = MINIMAL[:start] + MINIMAL[end:]
    problem = only(validate(tree_of(xml)))
    assert problem.xpath == "/ClinicalDocument/legalAuthenticator"
    assert problem.line == line_of(xml, "<legalAuthenticator>")
    assert "custodian" in problem.message


def test_positions_are_given_among_same_named_siblings():
    xml = edit('  <templateId root="1.2.250.1.213.1.1.1.1"/>\n',
               '  <templateId root="1.2.250.1.213.1.1.1.1" colour="red"/>\n')
    problem = only(validate(tree_of(xml)))
    assert problem.xpath == "/ClinicalDocument/templateId[2]"
    assert problem.message == "Attribute 'colour' is not allowed on element 'templateId'."
    assert problem.line == line_of(xml, 'colour="red"')


def test_a_bad_attribute_value_is_reported():
    xml = edit('<versionNumber value="1"/>', '<versionNumber value="one"/>')
    problem = only(validate(tree_of(xml)))
    assert problem.xpath == "/ClinicalDocument/versionNumber"
    assert "'one'" in problem.message


def test_problems_are_capped():
    recipient = "  <informationRecipient><intendedRecipient><junk/></intendedRecipient></informationRecipient>\n"
    recipients = recipient * 80
    problems = validate(tree_of(edit("  <legalAuthenticator>", recipients + "  <legalAuthenticator>")))
    assert len(problems) == schema.MAX_PROBLEMS
    assert [p.xpath for p in problems[:-1]] == [
        f"/ClinicalDocument/informationRecipient[{i}]/intendedRecipient/junk" for i in range(1, schema.MAX_PROBLEMS)]
    assert problems[-1].message == f"{80 - schema.MAX_PROBLEMS + 1} more schema error(s) not listed"


def test_concurrent_validations_each_get_their_own_errors():
    good, bad = tree_of(MINIMAL), tree_of(edit("<title>", "<bogus/><title>"))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: (i % 2, validate(bad if i % 2 else good)), range(200)))
    for is_bad, problems in results:
        assert [p.xpath for p in problems] == (["/ClinicalDocument/bogus"] if is_bad else [])


def test_a_schema_is_compiled_once():
    validate(tree_of(MINIMAL))
    before = schema._compiled.cache_info()
    validate(tree_of(MINIMAL))
    after = schema._compiled.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_the_shipped_schemas_name_no_remote_file():
    shipped = list(schema.HL7_DIR.rglob("*.xsd"))
    assert len(shipped) == 15
    for xsd in shipped:
        root = etree.parse(str(xsd), etree.XMLParser(no_network=True, load_dtd=False)).getroot()
        locations = root.xpath("//*[local-name()='include' or local-name()='import']/@schemaLocation")
        assert all("://" not in location for location in locations), xsd


# -- loading schemas: local files only ---------------------------------------------------------------------------

def _xsd(body: str, doctype: str = "") -> str:
    return (f'<?xml version="1.0"?>\n{doctype}<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            f'targetNamespace="urn:t" xmlns:t="urn:t">\n{body}\n</xs:schema>\n')


@pytest.mark.parametrize("kind", ["import", "include"])
def test_a_schema_that_imports_from_the_network_is_refused_without_fetching(tmp_path, kind):
    listener = CountingListener("/remote.xsd")
    try:
        namespace = ' namespace="urn:remote"' if kind == "import" else ""
        xsd = tmp_path / f"{kind}.xsd"
        xsd.write_text(_xsd(f'<xs:{kind}{namespace} schemaLocation="{listener.url}"/>\n'
                            '<xs:element name="r" type="xs:string"/>'))
        with pytest.raises(SchemaError, match="never from the network") as raised:
            validate(tree_of("<r xmlns='urn:t'/>"), xsd)
        assert listener.url in str(raised.value)
    finally:
        listener.close()
    assert listener.connections == 0


def test_an_entity_in_a_schema_is_never_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    doctype = f'<!DOCTYPE xs:schema [<!ENTITY leak SYSTEM "{secret.as_uri()}">]>\n'
    (tmp_path / "part.xsd").write_text(_xsd('<xs:element name="r" type="xs:string">'
                                            "<xs:annotation><xs:documentation>&leak;</xs:documentation>"
                                            "</xs:annotation></xs:element>", doctype))
    for top in ("part.xsd", "top.xsd"):
        (tmp_path / "top.xsd").write_text(_xsd('<xs:include schemaLocation="part.xsd"/>'))
        with pytest.raises(SchemaError) as raised:
            validate(tree_of("<r xmlns='urn:t'/>"), tmp_path / top)
        assert "leak" in str(raised.value) and "TOP-SECRET" not in str(raised.value)


def test_a_missing_schema_or_include_is_a_clear_error(tmp_path):
    with pytest.raises(SchemaError, match="No XSD at"):
        validate(tree_of(MINIMAL), tmp_path / "nothere.xsd")
    (tmp_path / "top.xsd").write_text(_xsd('<xs:include schemaLocation="gone.xsd"/>'))
    with pytest.raises(SchemaError, match="gone.xsd, which is not there"):
        validate(tree_of(MINIMAL), tmp_path / "top.xsd")


def test_a_local_schema_with_local_includes_works(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "types.xsd").write_text(_xsd('<xs:simpleType name="T"><xs:restriction base="xs:string">'
                                                     '<xs:maxLength value="3"/></xs:restriction></xs:simpleType>'))
    (tmp_path / "top.xsd").write_text(_xsd('<xs:include schemaLocation="sub/types.xsd"/>'
                                           '<xs:element name="r" type="t:T"/>'))
    assert validate(tree_of("<r xmlns='urn:t'>abc</r>"), tmp_path / "top.xsd") == []
    problem = only(validate(tree_of("<r xmlns='urn:t'>abcd</r>"), tmp_path / "top.xsd"))
    assert problem.xpath == "/{urn:t}r" and problem.line == 1


# -- configuration -----------------------------------------------------------------------------------------------

def test_schema_path_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv(schema.ENV_XSD, raising=False)
    assert schema_path_from_env() is None
    monkeypatch.setenv(schema.ENV_XSD, "  ")
    assert schema_path_from_env() is None
    xsd = tmp_path / "x.xsd"
    xsd.write_text(_xsd(""))
    monkeypatch.setenv(schema.ENV_XSD, str(xsd))
    assert schema_path_from_env() == xsd
    monkeypatch.setenv(schema.ENV_XSD, str(tmp_path / "nothere.xsd"))
    with pytest.raises(SchemaError, match="MES_CDA_XSD"):
        schema_path_from_env()


# -- the ANS examples (when ../shared is there) ----------------------------------------------------------------

# Which ANS examples the plain HL7 schema rejects, and the first extension element it trips on.
PLAIN_HL7_FAILS = {
    "BIO-CR-BIO_2024.01_TSH_1.xml": "/ClinicalDocument/documentationOf[1]/serviceEvent/lab:statusCode",
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml": "/ClinicalDocument/inFulfillmentOf/order/ps3-20:accessionNumber",
    "eP-MED-DM_2024.01_PosoStruct.xml": "/ClinicalDocument/component/structuredBody/component[2]/section/entry[1]"
                                        "/substanceAdministration/consumable/manufacturedProduct"
                                        "/manufacturedMaterial/pharm:formCode",
}
ANS_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("*.xml")) if EXAMPLES.is_dir() else []
needs_shared = pytest.mark.skipif(not ANS_EXAMPLES or not ANS_XSD.is_file(), reason="../shared not present")


def _example(name: str) -> etree._ElementTree:
    return etree.parse(str(EXAMPLES / name), etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False))


@needs_shared
@pytest.mark.parametrize("name", ANS_EXAMPLES)
def test_ans_examples_pass_the_ans_extended_schema(name):
    assert validate(_example(name), ANS_XSD) == []


@needs_shared
@pytest.mark.parametrize("name", ANS_EXAMPLES)
@pytest.mark.parametrize("xsd", [HL7_SDTC, HL7_NORMATIVE], ids=["sdtc", "normative"])
def test_ans_examples_against_the_plain_hl7_schema(name, xsd):
    problems = validate(_example(name), xsd)
    if name not in PLAIN_HL7_FAILS:
        assert problems == []
        return
    assert problems and problems[0].xpath == PLAIN_HL7_FAILS[name]
    source = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
    assert PLAIN_HL7_FAILS[name].rsplit("/", 1)[1] in source[problems[0].line - 1]


@needs_shared
def test_the_ans_schema_is_used_from_the_environment(monkeypatch):
    monkeypatch.setenv(schema.ENV_XSD, str(ANS_XSD))
    assert validate(_example("BIO-CR-BIO_2024.01_TSH_1.xml"), schema_path_from_env()) == []


def test_an_element_whose_path_cannot_be_replayed_is_found_by_its_line():
    # libxml2's paths use the document's prefixes; here "x" means two namespaces, so the second
    # error's path finds nothing and the element is found by line and name instead.
    xml = edit("      <patient>\n", '      <x:extra xmlns:x="urn:one"/>\n      <patient>\n')
    xml = xml.replace("    </assignedAuthor>", '      <x:extra xmlns:x="urn:two"/>\n    </assignedAuthor>', 1)
    first, second = validate(tree_of(xml))
    assert first.xpath == "/ClinicalDocument/recordTarget/patientRole/{urn:one}extra"
    assert second.xpath == "/ClinicalDocument/author/assignedAuthor/{urn:two}extra"
    assert second.line == line_of(xml, 'xmlns:x="urn:two"')
    assert second.message.startswith("Element '{urn:two}extra' is not allowed here.")
