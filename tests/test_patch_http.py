"""PATCH over HTTP: JSON Patch and FHIRPath Patch, versioning and validation of the result."""

from __future__ import annotations

from conftest import FHIR_JSON, patient

JSON_PATCH = "application/json-patch+json"


def fhirpath_patch(*operations: list[dict]) -> dict:
    return {"resourceType": "Parameters",
            "parameter": [{"name": "operation", "part": parts} for parts in operations]}


def test_json_patch(client):
    created = client.post("/Patient", json=patient()).json()
    ops = [{"op": "replace", "path": "/gender", "value": "male"},
           {"op": "add", "path": "/name/0/given/-", "value": "Marie"}]
    r = client.patch(f"/Patient/{created['id']}", json=ops, headers={"Content-Type": JSON_PATCH})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gender"] == "male"
    assert body["name"][0]["given"] == ["Hélène", "Marie"]
    assert body["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'


def test_fhirpath_patch(client):
    created = client.post("/Patient", json=patient()).json()
    doc = fhirpath_patch(
        [{"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"},
         {"name": "name", "valueString": "active"}, {"name": "value", "valueBoolean": True}],
        [{"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": "Patient.gender"}])
    patched = client.patch(f"/Patient/{created['id']}", json=doc, headers={"Content-Type": FHIR_JSON})
    assert patched.status_code == 200, patched.text
    r = client.get(f"/Patient/{created['id']}").json()
    assert "gender" not in r
    assert r["active"] is True
    assert r["meta"]["versionId"] == "2"


def test_fhirpath_patch_in_xml(client):
    created = client.post("/Patient", json=patient()).json()
    xml = b"""<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="operation"/>
      <part><name value="type"/><valueCode value="replace"/></part>
      <part><name value="path"/><valueString value="Patient.gender"/></part>
      <part><name value="value"/><valueCode value="other"/></part></parameter></Parameters>"""
    r = client.patch(f"/Patient/{created['id']}", content=xml, headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "other"


def test_patch_producing_an_invalid_resource_is_refused(client):
    created = client.post("/Patient", json=patient()).json()
    ops = [{"op": "replace", "path": "/gender", "value": "robot"}]
    r = client.patch(f"/Patient/{created['id']}", json=ops, headers={"Content-Type": JSON_PATCH})
    assert r.status_code == 400
    assert client.get(f"/Patient/{created['id']}").json()["meta"]["versionId"] == "1"


def test_patch_cannot_change_id(client):
    created = client.post("/Patient", json=patient()).json()
    ops = [{"op": "replace", "path": "/id", "value": "other"}]
    assert client.patch(f"/Patient/{created['id']}", json=ops, headers={"Content-Type": JSON_PATCH}).status_code == 422


def test_patch_errors(client):
    created = client.post("/Patient", json=patient()).json()
    url = f"/Patient/{created['id']}"
    failing_test = [{"op": "test", "path": "/gender", "value": "male"}]
    assert client.patch(url, json=failing_test, headers={"Content-Type": JSON_PATCH}).status_code == 422
    assert client.patch(url, json={"op": "x"}, headers={"Content-Type": JSON_PATCH}).status_code == 400
    assert client.patch(url, json=patient(), headers={"Content-Type": FHIR_JSON}).status_code == 415
    assert client.patch("/Patient/unknown-id", json=[], headers={"Content-Type": JSON_PATCH}).status_code == 404
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert client.patch(url, json=ops, headers={"Content-Type": JSON_PATCH, "If-Match": 'W/"5"'}).status_code == 412
