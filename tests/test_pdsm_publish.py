"""PDSm publication over real HTTP: ITI-65 provide bundles checked (sizes, hashes, INS subjects)
before they are applied, and ITI-105 simplified publish (the document inline, kept as a Binary)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from conftest import ThreadServer

from fhir_server.dmp.publish import COMPREHENSIVE, PROVIDE_BUNDLE, SIMPLIFIED_PUBLISH, SUBMISSION_SET
from fhir_server.french.ins import OID_INS_NIR_TEST, nir_key

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "fhir" / "pdsm4dmp"
INS = "2790351215189" + nir_key("2790351215189")
BY_INS = f"Patient?identifier={OID_INS_NIR_TEST}|{INS}"
CONTENT = b"Compte rendu de consultation du 12/06.\n"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("publish")) as server, httpx.Client(base_url=server.base) as c:
        patient = {"resourceType": "Patient", "identifier": [{"system": OID_INS_NIR_TEST, "value": INS}],
                   "name": [{"family": "TEST"}]}
        assert c.post("/Patient", json=patient).status_code == 201
        yield c


def _sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def _document(**attachment) -> dict:
    return {"resourceType": "DocumentReference", "meta": {"profile": [COMPREHENSIVE]}, "status": "current",
            "subject": {"reference": BY_INS},
            "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
            "content": [{"attachment": {"contentType": "text/plain", **attachment}}]}


def _provide_bundle(**attachment) -> dict:
    document = _document(url="urn:uuid:00000000-0000-4000-8000-000000000003",
                         **({"size": len(CONTENT), "hash": _sha1(CONTENT)} | attachment))
    return {"resourceType": "Bundle", "type": "transaction", "meta": {"profile": [PROVIDE_BUNDLE]}, "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
         "resource": {"resourceType": "List", "meta": {"profile": [SUBMISSION_SET]}, "status": "current",
                      "mode": "working", "subject": {"reference": BY_INS},
                      "entry": [{"item": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"}}]},
         "request": {"method": "POST", "url": "List"}},
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002", "resource": document,
         "request": {"method": "POST", "url": "DocumentReference"}},
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003",
         "resource": {"resourceType": "Binary", "contentType": "text/plain",
                      "data": base64.b64encode(CONTENT).decode()},
         "request": {"method": "POST", "url": "Binary"}}]}


def _count(client: httpx.Client) -> int:
    return client.get("/DocumentReference", params={"_summary": "count"}).json()["total"]


def test_a_provide_bundle_whose_documents_describe_their_binaries_is_filed(client):
    r = client.post("", json=_provide_bundle())
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["201 Created"] * 3


@pytest.mark.parametrize(("change", "path"), [
    ({"size": len(CONTENT) + 1}, "Bundle.entry[1].resource.content[0].attachment.size"),
    ({"hash": _sha1(b"other bytes")}, "Bundle.entry[1].resource.content[0].attachment.hash"),
])
def test_a_size_or_hash_that_does_not_match_the_binary_refuses_the_whole_bundle(client, change, path):
    before = _count(client)
    r = client.post("", json=_provide_bundle(**change))
    assert r.status_code == 422, r.text
    assert r.json()["issue"][0]["expression"] == [path]
    assert _count(client) == before


def test_a_provide_bundle_whose_subject_is_not_named_by_ins_is_refused(client):
    bundle = _provide_bundle()
    bundle["entry"][1]["resource"]["subject"] = {"reference": "Patient?identifier=urn:ipp:x|123"}
    r = client.post("", json=bundle)
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.subject"]
    assert issue["details"]["coding"][0]["code"] == "903"


def test_a_simplified_publish_keeps_the_document_as_a_binary(client):
    document = _document(data=base64.b64encode(CONTENT).decode(), title="CR")
    document["meta"]["profile"] = [SIMPLIFIED_PUBLISH[0]]
    r = client.post("/DocumentReference", json=document)
    assert r.status_code == 201, r.text
    stored = r.json()
    attachment = stored["content"][0]["attachment"]
    assert "data" not in attachment and attachment["size"] == len(CONTENT) and attachment["hash"] == _sha1(CONTENT)
    assert stored["meta"]["profile"] == [COMPREHENSIVE]
    assert stored["subject"]["reference"].startswith("Patient/") and "?" not in stored["subject"]["reference"]
    raw = client.get(f"/{attachment['url']}", headers={"Accept": "*/*"})
    assert raw.content == CONTENT and raw.headers["content-type"].startswith("text/plain")


def test_a_simplified_publish_with_a_wrong_hash_or_an_unknown_patient_is_refused(client):
    before = _count(client)
    wrong = _document(data=base64.b64encode(CONTENT).decode(), hash=_sha1(b"x"))
    wrong["meta"]["profile"] = [SIMPLIFIED_PUBLISH[1]]
    assert client.post("/DocumentReference", json=wrong).status_code == 422
    unknown = copy.deepcopy(wrong)
    unknown["content"][0]["attachment"].pop("hash")
    unknown["subject"] = {"reference": f"Patient?identifier={OID_INS_NIR_TEST}|1790351215189{nir_key('1790351215189')}"}
    r = client.post("/DocumentReference", json=unknown)
    assert r.status_code == 422 and r.json()["issue"][0]["details"]["coding"][0]["code"] == "902"
    assert _count(client) == before


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the PDSm4DMP examples are in ../shared, absent here")
def test_the_pdsm4dmp_examples_are_accepted(tmp_path):
    with ThreadServer(tmp_path) as server, httpx.Client(base_url=server.base) as c:
        patient = {"resourceType": "Patient", "name": [{"family": "EXEMPLE"}],
                   "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "123456789012345"}]}
        assert c.post("/Patient", json=patient).status_code == 201
        bundle = json.loads((EXAMPLES / "Bundle-example-td2-iti65-lot-soumission.json").read_text())
        assert c.post("", json=bundle).status_code == 200
        simplified = json.loads((EXAMPLES / "DocumentReference-example-td2-iti105-publication-simplifiee.json")
                                .read_text())
        simplified.pop("id")
        assert c.post("/DocumentReference", json=simplified).status_code == 201
