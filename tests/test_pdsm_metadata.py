"""PDSm metadata update over real HTTP: a conditional PATCH on the document's identifier changes
only status, securityLabel and the isArchived extension (else 405); the TRE_A07 system misspelled
in PDSm examples is read, and the right spelling is what the server writes."""

from __future__ import annotations

import itertools

import httpx
import pytest
from conftest import ThreadServer

from fhir_server.dmp.metadata import IS_ARCHIVED
from fhir_server.french.visibility import TRE_A07, TRE_A07_TYPO
from fhir_server.synthetic_cda import cda_document, spec

JSON_PATCH = {"Content-Type": "application/json-patch+json"}
SEEDS = itertools.count(400)  # a new document for each test


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("pdsm")) as server, httpx.Client(base_url=server.base) as c:
        yield c


@pytest.fixture()
def filed(client):
    """A DocumentReference filed from a CDA document, and the conditional-PATCH URL naming it."""
    r = client.post("/DocumentReference/$import-cda", content=cda_document(spec(seed=next(SEEDS))),
                    headers={"Content-Type": "application/hl7-cda+xml"})
    assert r.status_code == 201, r.text
    document = r.json()
    master = document["masterIdentifier"]
    return document, f"/DocumentReference?identifier={master['system']}|{master['value']}"


def test_masking_by_conditional_patch_on_the_identifier_writes_the_right_spelling(client, filed):
    document, url = filed
    mask = [{"op": "add", "path": "/securityLabel/-",
             "value": {"coding": [{"system": TRE_A07_TYPO, "code": "MASQUE_PS"}]}}]
    r = client.patch(url, json=mask, headers=JSON_PATCH)
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2"
    systems = [c["system"] for label in r.json()["securityLabel"] for c in label["coding"]]
    assert TRE_A07 in systems and TRE_A07_TYPO not in systems
    assert client.get(f"/DocumentReference/{document['id']}").json()["securityLabel"] == r.json()["securityLabel"]


def test_archiving_and_status_change_but_nothing_else_does(client, filed):
    document, url = filed
    archive = [{"op": "add", "path": "/extension", "value": [{"url": IS_ARCHIVED, "valueBoolean": True}]}]
    assert client.patch(url, json=archive, headers=JSON_PATCH).status_code == 200
    status = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "DocumentReference.status"},
        {"name": "value", "valueCode": "superseded"}]}]}
    r = client.patch(url, json=status, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200 and r.json()["status"] == "superseded", r.text
    version = r.json()["meta"]["versionId"]
    for forbidden in ([{"op": "replace", "path": "/description", "value": "autre chose"}],
                      [{"op": "replace", "path": "/subject", "value": {"reference": "Patient/someone-else"}}],
                      [{"op": "add", "path": "/extension/-", "value": {"url": "urn:x", "valueString": "y"}}]):
        refused = client.patch(url, json=forbidden, headers=JSON_PATCH)
        assert refused.status_code == 405, refused.text
        assert refused.json()["issue"][0]["expression"]
        refused_by_id = client.patch(f"/DocumentReference/{document['id']}", json=forbidden, headers=JSON_PATCH)
        assert refused_by_id.status_code == 405
    assert client.get(f"/DocumentReference/{document['id']}").json()["meta"]["versionId"] == version


def test_a_conditional_patch_names_exactly_one_document(client, filed):
    _, url = filed
    unmask = [{"op": "test", "path": "/status", "value": "current"}]
    assert client.patch("/DocumentReference?identifier=urn:x|nobody", json=unmask, headers=JSON_PATCH).status_code \
        == 404
    assert client.patch("/DocumentReference?status=current", json=unmask, headers=JSON_PATCH).status_code == 412
    assert client.patch("/DocumentReference", json=unmask, headers=JSON_PATCH).status_code == 405  # no criteria


def test_a_label_written_with_the_misspelled_system_is_stored_spelled_right(client):
    document = {"resourceType": "DocumentReference", "status": "current",
                "securityLabel": [{"coding": [{"system": TRE_A07_TYPO, "code": "INVISIBLE_PATIENT"}]}],
                "meta": {"security": [{"system": TRE_A07_TYPO, "code": "MASQUE_PS"}]},
                "content": [{"attachment": {"contentType": "text/plain", "data": "eA=="}}]}
    stored = client.post("/DocumentReference", json=document).json()
    assert stored["securityLabel"][0]["coding"][0]["system"] == TRE_A07
    assert stored["meta"]["security"][0]["system"] == TRE_A07
    found = client.get("/DocumentReference", params={"_id": stored["id"],
                                                     "security-label": f"{TRE_A07}|INVISIBLE_PATIENT"}).json()
    assert len(found.get("entry", [])) == 1
