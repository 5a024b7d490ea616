"""``cda.schematron``: the ANS "structuration minimale" schematron (XSLT 2.0, through saxonche) run
on CDA documents.

The ANS schematron is not shipped (no licence stated): its tests need ../shared beside the
checkout. Small schematrons written here test the machinery (XSLT 2.0 functions, includes,
abstract rules, value sets read with doc()) without it. All but the configuration tests need the
optional extra ``schematron`` (saxonche) and are skipped without it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from lxml import etree

from cda import schematron
from cda.parse import load
from cda.schematron import SchematronError, SchematronUnavailable, run, schematron_path_from_env, uncovered
from fhir_server.synthetic_cda import cda_document

SHARED = Path(__file__).resolve().parents[2] / "shared"
EXAMPLES = SHARED / "data" / "cda" / "examples"
ANS_SCH = SHARED / "data" / "cda" / "schematron" / "structurationMinimale" / "ASIP-STRUCT-MIN-StrucMin.sch"
EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.glob("*.xml")) if EXAMPLES.is_dir() else []


@pytest.fixture(scope="module")
def saxon():
    pytest.importorskip("saxonche", reason="the optional extra 'schematron' (saxonche) is not installed")


@pytest.fixture(scope="module")
def ans(saxon) -> Path:
    """The ANS schematron, compiled once for the module (about 10 s)."""
    if not ANS_SCH.is_file():
        pytest.skip(f"{ANS_SCH} is not there (shared/ data absent)")
    uncovered(ANS_SCH)
    return ANS_SCH


def only(problems: list) -> schematron.Problem:
    assert len(problems) == 1, problems
    return problems[0]


def line_of(xml: str, needle: str) -> int:
    assert xml.count(needle) == 1, needle
    return xml[: xml.index(needle)].count("\n") + 1


def synthetic(pattern: str = "", new: str = "", **overrides) -> str:
    """Our synthetic document, with the one match of the regular expression ``pattern`` replaced by ``new``."""
    xml = cda_document(**overrides).decode("utf-8")
    if pattern:
        xml, count = re.subn(pattern, new, xml)
        assert count == 1, pattern
    return xml


# -- configuration ------------------------------------------------------------------------------------------------


def test_schematron_path_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MES_CDA_SCHEMATRON", raising=False)
    assert schematron_path_from_env() is None
    monkeypatch.setenv("MES_CDA_SCHEMATRON", "  ")
    assert schematron_path_from_env() is None
    monkeypatch.setenv("MES_CDA_SCHEMATRON", str(tmp_path / "absent.sch"))
    with pytest.raises(SchematronError, match="does not name a schematron file"):
        schematron_path_from_env()
    sch = tmp_path / "x.sch"
    sch.write_text("<schema/>")
    monkeypatch.setenv("MES_CDA_SCHEMATRON", str(sch))
    assert schematron_path_from_env() == sch


def test_without_saxonche_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "saxonche", None)  # makes `import saxonche` fail
    with pytest.raises(SchematronUnavailable, match=r"mes-interop\[schematron\]"):
        run(load(cda_document()), tmp_path / "never-compiled.sch")


def test_a_missing_schematron_is_a_clear_error(saxon, tmp_path):
    with pytest.raises(SchematronError, match="No schematron at"):
        run(load(cda_document()), tmp_path / "absent.sch")


# -- the machinery, on small schematrons of our own ------------------------------------------------------------------

SMALL = """<?xml version="1.0" encoding="UTF-8"?>
<schema xmlns="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2">
  <ns uri="urn:hl7-org:v3" prefix="hl7"/>
  <pattern>
    <include href="include/abstract.sch"/>
  </pattern>
  <pattern>
    <rule context="/hl7:ClinicalDocument">
      <let name="languages" value="distinct-values(tokenize('fr-FR en-GB fr-FR', '\\s'))"/>
      <assert role="error" test="hl7:languageCode/@code = $languages">languageCode not in <value-of
        select="string-join($languages, ',')"/></assert>
      <assert role="error" test="hl7:confidentialityCode/@code = doc('include/voc-conf.xml')//concept/@code"
        >confidentialityCode not in the value set</assert>
      <assert role="error" test="empty(hl7:bogus) and not(hl7:code/@code = doc('include/voc-absent.xml')//@code)"
        >a check whose value set is missing</assert>
      <assert role="warning" test="hl7:versionNumber/@value = '1'">versionNumber is not 1</assert>
    </rule>
    <rule context="/hl7:ClinicalDocument/hl7:recordTarget/hl7:patientRole/hl7:id">
      <extends rule="II"/>
    </rule>
  </pattern>
</schema>
"""

ABSTRACT = """<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root, as ART-DECOR writes them -->
<rule xmlns="http://purl.oclc.org/dsdl/schematron" abstract="true" id="II">
  <assert role="error" test="@nullFlavor or @root">II: @root is required if @nullFlavor is not present</assert>
</rule>
"""

VOC = '<valueSets><valueSet><conceptList><concept code="N"/><concept code="R"/></conceptList></valueSet></valueSets>'


@pytest.fixture
def small(saxon, tmp_path) -> Path:
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "abstract.sch").write_text(ABSTRACT)
    (tmp_path / "include" / "voc-conf.xml").write_text(VOC)
    sch = tmp_path / "small.sch"
    sch.write_text(SMALL)
    return sch


def test_a_conformant_document_passes_a_small_xslt2_schematron(small):
    assert run(load(cda_document()), small) == []


def test_xslt2_functions_and_value_sets_are_evaluated(small):
    xml = synthetic('<languageCode code="fr-FR"/>', '<languageCode code="de-DE"/>')
    problem = only(run(load(xml.encode()), small))
    assert (problem.xpath, problem.code, problem.line) == ("/ClinicalDocument", "invalid", 2)
    assert problem.message == "languageCode not in fr-FR,en-GB"
    xml = synthetic('<confidentialityCode code="N"', '<confidentialityCode code="V"')
    assert only(run(load(xml.encode()), small)).message == "confidentialityCode not in the value set"


def test_an_included_abstract_rule_reports_at_the_context_node(small):
    xml = synthetic(r'<id root="1\.2\.250\.1\.213\.1\.4\.10"', "<id")
    problem = only(run(load(xml.encode()), small))
    assert problem.xpath == "/ClinicalDocument/recordTarget/patientRole/id[1]"
    assert problem.line == line_of(xml, '<id extension=')
    assert problem.message == "II: @root is required if @nullFlavor is not present"


def test_warnings_are_left_out_unless_asked_for(small):
    xml = synthetic('<versionNumber value="1"/>', '<versionNumber value="2"/>')
    assert run(load(xml.encode()), small) == []
    problem = only(run(load(xml.encode()), small, warnings=True))
    assert (problem.xpath, problem.code, problem.message) == ("/ClinicalDocument", "informational",
                                                              "versionNumber is not 1")


def test_a_check_whose_value_set_is_missing_is_left_out_and_listed(small):
    assert uncovered(small) == ["a check whose value set is missing"]


def test_the_tree_or_an_element_with_a_parent_are_accepted(small):
    xml = synthetic('<languageCode code="fr-FR"/>', '<languageCode code="de-DE"/>')
    root = load(xml.encode())
    assert only(run(root.getroottree(), small)).xpath == "/ClinicalDocument"
    wrapper = etree.Element("wrapper")
    wrapper.append(root)
    assert only(run(root, small)).xpath == "/ClinicalDocument"


def test_a_schematron_reading_a_network_document_is_refused(saxon, tmp_path):
    sch = tmp_path / "net.sch"
    sch.write_text(SMALL.replace("doc('include/voc-conf.xml')", "doc('http://example.org/voc.xml')"))
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "abstract.sch").write_text(ABSTRACT)
    with pytest.raises(SchematronError, match="is not a local file"):
        run(load(cda_document()), sch)


def test_a_schematron_is_compiled_once(small):
    run(load(cda_document()), small)
    before = schematron._compiled.cache_info().hits
    run(load(cda_document()), small)
    assert schematron._compiled.cache_info().hits == before + 1


# -- the ANS structuration minimale schematron ----------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_the_ans_examples_pass(ans, name):
    assert run(load((EXAMPLES / name).read_bytes()), ans) == []


def test_our_synthetic_document_passes(ans):
    assert run(load(cda_document()), ans) == []


def test_a_document_without_custodian_fails_at_the_clinical_document(ans):
    problem = only(run(load(cda_document(omit=("custodian",))), ans))
    assert (problem.xpath, problem.code, problem.line) == ("/ClinicalDocument", "invalid", 2)
    assert problem.message == ("(SMDS_CDAClinicalDocument): element hl7:custodian[not(@nullFlavor)]"
                               "[hl7:assignedCustodian] is mandatory [min 1x].")


def test_a_code_outside_its_value_set_fails_where_it_is(ans):
    xml = synthetic('<administrativeGenderCode code="[MFU]"', '<administrativeGenderCode code="Q"')
    problem = only(run(load(xml.encode()), ans))
    assert problem.xpath == "/ClinicalDocument/recordTarget/patientRole/patient/administrativeGenderCode"
    assert problem.line == line_of(xml, "<administrativeGenderCode")
    assert "value set '1.2.250.1.213.1.1.5.590' JDV_J143_AdministrativeGender_CISIS" in problem.message


def test_a_datatype_rule_fails_where_it_is(ans):
    xml = synthetic(r'<birthTime value="\d{8}"/>', '<birthTime value="1962-03-04"/>')
    problem = only(run(load(xml.encode()), ans))
    assert problem.xpath == "/ClinicalDocument/recordTarget/patientRole/patient/birthTime"
    assert problem.message == 'dtr1-2-TS: birthTime "1962-03-04" is not a valid timestamp.'


def test_a_missing_ins_trait_breaks_two_rules(ans):
    xml = synthetic(omit=("recordTarget/patientRole/patient/birthTime",))
    problems = run(load(xml.encode()), ans)
    assert [p.xpath for p in problems] == ["/ClinicalDocument", "/ClinicalDocument/recordTarget/patientRole/patient"]
    assert "les traits de l'INS" in problems[0].message
    assert problems[1].message == "(CI-SISRecordTarget): element hl7:birthTime is required [min 1x]."


def test_the_ans_schematron_leaves_out_only_the_document_type_check(ans):
    # voc-1.2.250.1.213.1.1.5.471-DYNAMIC.xml (JDV_J07_XdsTypeCode_CISIS) is referenced but not in ANS's include/.
    assert uncovered(ans) == ["(SMDS_CDAClinicalDocument): The value for code SHALL be selected from value set "
                              "'1.2.250.1.213.1.1.5.471' JDV_J07_XdsTypeCode_CISIS (DYNAMIC)."]


def test_a_server_with_the_schematron_refuses_what_only_the_schematron_sees(ans, tmp_path):
    import httpx
    from conftest import ThreadServer

    odd_gender = cda_document(gender="Q")  # the XSD and our header rules let it through; value set J143 does not
    with ThreadServer(tmp_path, cda_schematron=str(ans)) as server, httpx.Client(base_url=server.base) as c:
        r = c.post("/DocumentReference/$import-cda", content=odd_gender,
                   headers={"Content-Type": "application/hl7-cda+xml"})
        assert r.status_code == 422, r.text
        assert r.json()["issue"][0]["location"][0].endswith("/patient/administrativeGenderCode")
        fine = c.post("/DocumentReference/$import-cda", content=cda_document(seed=7),
                      headers={"Content-Type": "application/hl7-cda+xml"})
        assert fine.status_code == 201, fine.text
