"""``cda/``: CI-SIS CDA R2 bytes in, checked header and FHIR resources out — on the project's own
synthetic documents, hostile ones, and the ANS examples when ``../shared`` is there."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import pytest
from conftest import CountingListener
from lxml import etree

from cda.document import read_cda
from cda.header import read_header
from cda.parse import load
from cda.problems import CdaError
from cda.rules import check
from fhir_server.core.validation import validate_resource
from fhir_server.synthetic_cda import (
    billion_laughs,
    cda_document,
    deeply_nested,
    dental_document,
    external_dtd,
    spec,
    xxe_file,
    xxe_network,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "cda" / "examples"


def problems(data: bytes) -> list:
    try:
        read_cda(data)
    except CdaError as error:
        return error.problems
    return []


# -- hostile input -------------------------------------------------------------------------------

def test_entity_bombs_external_entities_and_dtds_are_refused_without_expanding_or_fetching(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    listener = CountingListener("/evil")
    try:
        for hostile in (billion_laughs(), xxe_file(str(secret)), xxe_network(listener.url),
                        external_dtd(listener.url)):
            started = time.perf_counter()
            found = problems(hostile)
            assert time.perf_counter() - started < 1.0  # refused at once, not after expanding anything
            assert found and found[0].code == "security", found
            assert "TOP-SECRET" not in str(found)
        time.sleep(0.3)
        assert listener.connections == 0, "the parser reached out to the network"
    finally:
        listener.close()


def test_too_large_or_too_deep_documents_are_refused_before_they_cost_much():
    assert load(cda_document()) is not None
    with pytest.raises(CdaError) as error:
        load(cda_document(), max_bytes=1000)
    assert error.value.problems[0].code == "too-costly"
    for depth in (150, 400):
        with pytest.raises(CdaError) as error:
            load(deeply_nested(depth), max_depth=100)
        assert error.value.problems[0].code in ("too-costly", "structure")


def test_not_xml_or_not_a_clinical_document_says_so():
    assert problems(b"%PDF-1.4 not xml")[0].code == "structure"
    found = problems(b'<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"/>')
    assert found[0].xpath == "/Bundle" and "ClinicalDocument" in found[0].message


# -- the header rules ----------------------------------------------------------------------------

def test_a_complete_document_passes_and_its_header_reads_back():
    s = spec(replaces=None)
    document = read_cda(cda_document(s))
    h = document.header
    assert h.patient.ins.extension == s.ins and h.patient.ins.root == s.ins_root
    assert h.patient.birth_family == s.birth_family and h.patient.gender == s.gender
    assert h.patient.birth_time.startswith(s.birth_date) and h.patient.birthplace_cog == s.birthplace_cog
    assert h.type.code == s.type_code and h.title == s.title and h.effective_time == s.effective_time
    assert h.authors[0].id.extension == "8" + s.author_rpps
    assert h.custodian.id.extension == "1" + s.organization_finess
    assert h.facility_type.code == s.facility_type and h.practice_setting.code == s.practice_setting
    assert h.body.content == s.body_bytes and h.replaces is None


@pytest.mark.parametrize("omitted", ["custodian", "legalAuthenticator", "componentOf", "documentationOf", "author",
                                     "recordTarget", "realmCode", "languageCode", "versionNumber"])
def test_each_missing_header_element_is_named_by_its_xpath(omitted):
    found = problems(cda_document(omit=(omitted,)))
    assert any(p.xpath == f"/ClinicalDocument/{omitted}" for p in found), found


def test_a_document_without_ins_is_a_903_and_a_bad_or_incomplete_one_a_905():
    assert any(p.dmp_code == "903" for p in problems(cda_document(ins=None)))
    good = spec().ins
    broken_key = good[:13] + f"{(int(good[13:]) + 1) % 100:02d}"
    bad = [p for p in problems(cda_document(ins=broken_key)) if p.dmp_code == "905"]
    assert bad and bad[0].xpath.startswith("/ClinicalDocument/recordTarget/patientRole/id")
    assert any(p.dmp_code == "905" and "birth name" in p.message for p in problems(cda_document(birth_family="")))


def test_an_author_without_a_national_id_and_a_bad_body_are_refused():
    root = etree.fromstring(cda_document())
    for element in root.iter("{urn:hl7-org:v3}id"):
        if element.get("root") == "1.2.250.1.71.4.2.1" and element.getparent().tag.endswith("assignedAuthor"):
            element.set("root", "1.2.3.4")
    assert any("national id" in p.message for p in check(root))
    text = etree.fromstring(cda_document(body="pdf")).find(".//{urn:hl7-org:v3}nonXMLBody/{urn:hl7-org:v3}text")
    text.set("mediaType", "application/x-msdownload")
    assert any("mediaType" in p.message for p in check(text.getroottree().getroot()))


# -- the mapping ---------------------------------------------------------------------------------

def test_the_mapping_gives_a_valid_pdsm_document_reference_and_fr_core_patient():
    s = spec(replaces=None)
    data = cda_document(s)
    mapped = read_cda(data).to_fhir("Patient/p1", "Binary/b1")
    validate_resource(mapped.patient, "Patient")
    validate_resource(mapped.document, "DocumentReference")
    doc = mapped.document
    assert doc["masterIdentifier"]["value"].endswith(s.doc_extension or s.doc_root)
    assert doc["type"]["coding"][0] == {"system": "http://loinc.org", "code": s.type_code, "display": s.type_display}
    assert doc["category"][0]["coding"][0]["code"] == "10"
    assert doc["subject"] == {"reference": "Patient/p1"} and doc["status"] == "current"
    attachment = doc["content"][0]["attachment"]
    assert attachment["url"] == "Binary/b1" and attachment["size"] == len(data)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    contained = {r["id"]: r for r in doc["contained"]}
    author = contained[doc["author"][0]["reference"][1:]]
    assert contained[author["practitioner"]["reference"][1:]]["identifier"][0]["value"] == "8" + s.author_rpps
    assert contained[doc["custodian"]["reference"][1:]]["identifier"][0]["value"] == "1" + s.organization_finess
    assert doc["context"]["facilityType"]["coding"][0]["code"] == s.facility_type
    assert doc["context"]["practiceSetting"]["coding"][0]["code"] == s.practice_setting
    assert contained["source-patient"]["identifier"][0]["value"] == s.ins
    patient = mapped.patient
    assert patient["identifier"][0] == {"use": "official", "type": {"coding": [
        {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "code": "INS-NIR-TEST"}]},
        "system": f"urn:oid:{s.ins_root}", "value": s.ins}
    assert patient["name"][0]["family"] == s.birth_family and patient["gender"] in ("male", "female", "unknown")
    assert patient["birthDate"].replace("-", "") == s.birth_date
    assert mapped.binary["data"] == base64.b64encode(data).decode()


def test_a_replacement_relates_to_the_document_it_replaces_and_a_pdf_has_its_format():
    replacement = cda_document(replaces="1.2.250.1.999.7.7", version=2, body="pdf")
    mapped = read_cda(replacement).to_fhir("Patient/p", "Binary/b")
    assert mapped.document["relatesTo"] == [{"code": "replaces", "target": {"identifier": {
        "system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.7.7"}}}]
    assert mapped.document["content"][0]["format"]["code"] == "urn:ihe:iti:xds-sd:pdf:2008"


def test_a_dentists_document_is_read_and_mapped():
    mapped = read_cda(dental_document()).to_fhir("Patient/p", "Binary/b")
    assert mapped.document["type"]["coding"][0]["code"] == "28617-9"
    contained = {r["id"]: r for r in mapped.document["contained"]}
    role = contained[mapped.document["author"][0]["reference"][1:]]
    assert role["specialty"][0]["coding"][0]["code"].startswith("G15_40")


# -- the ANS examples (when ../shared is there) --------------------------------------------------

@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the ANS examples are in ../shared, absent here")
@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.xml")) if EXAMPLES.is_dir() else [])
def test_the_ans_examples_pass_the_rules_and_map_to_valid_resources(name):
    data = (EXAMPLES / name).read_bytes()
    root = load(data)
    assert check(root) == []
    header = read_header(root)
    assert header.patient.ins.extension == "279035121518989" and header.patient.birth_family == "PAT-TROIS"
    mapped = read_cda(data, xsd=EXAMPLES.parent / "xsd" / "CDA_extended.xsd").to_fhir("Patient/p", "Binary/b")
    validate_resource(mapped.document, "DocumentReference")
    validate_resource(mapped.patient, "Patient")
    assert ("relatesTo" in mapped.document) == name.startswith("IMG_CR_IMG")
