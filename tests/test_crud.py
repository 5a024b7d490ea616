"""create, read, vread, update (and update-as-create), delete over real HTTP."""

from __future__ import annotations

from conftest import FHIR_JSON, patient, unique


def test_create_sets_id_meta_and_headers(client):
    r = client.post("/Patient", json=patient())
    assert r.status_code == 201
    body = r.json()
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/Patient/{body['id']}/_history/1")
    assert r.headers["content-type"].startswith(FHIR_JSON)
    assert "GMT" in r.headers["last-modified"]


def test_client_meta_versioning_fields_are_replaced_but_profiles_kept(client):
    sent = patient(meta={"versionId": "99", "lastUpdated": "2000-01-01T00:00:00Z",
                         "profile": ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"]})
    body = client.post("/Patient", json=sent).json()
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "2000-01-01T00:00:00Z"
    assert body["meta"]["profile"] == sent["meta"]["profile"]


def test_read_returns_exactly_what_create_returned(client):
    created = client.post("/Patient", json=patient())
    read = client.get(f"/Patient/{created.json()['id']}")
    assert read.status_code == 200
    assert read.content == created.content
    assert read.headers["etag"] == 'W/"1"'


def test_read_unknown_is_404_with_operation_outcome(client):
    r = client.get(f"/Patient/{unique()}")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"


def test_unsupported_type_is_404(client):
    r = client.get("/Observation/1")
    assert r.status_code == 404
    assert r.json()["issue"][0]["code"] == "not-supported"
    assert client.post("/Observation", json={"resourceType": "Observation"}).status_code == 404


def test_update_bumps_version_and_vread_keeps_old(client):
    created = client.post("/Patient", json=patient()).json()
    changed = {**created, "gender": "male"}
    r = client.put(f"/Patient/{created['id']}", json=changed)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    assert client.get(f"/Patient/{created['id']}/_history/1").json()["gender"] == "female"
    assert client.get(f"/Patient/{created['id']}/_history/2").json()["gender"] == "male"
    assert client.get(f"/Patient/{created['id']}/_history/3").status_code == 404


def test_update_as_create_with_client_id(client):
    new_id = f"pat-{unique()}"
    r = client.put(f"/Patient/{new_id}", json=patient(id=new_id))
    assert r.status_code == 201
    assert r.json()["id"] == new_id
    assert r.headers["location"].endswith(f"/Patient/{new_id}/_history/1")


def test_update_id_mismatch_or_missing_is_400(client):
    assert client.put("/Patient/abc", json=patient(id="xyz")).status_code == 400
    r = client.put("/Patient/abc", json=patient())
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Patient.id"]


def test_id_longer_than_64_is_refused(client):
    long_id = "a" * 65
    assert client.put(f"/Patient/{long_id}", json=patient(id=long_id)).status_code == 400


def test_delete_then_read_is_410_and_vread_of_old_version_still_works(client):
    created = client.post("/Patient", json=patient()).json()
    pid = created["id"]
    r = client.delete(f"/Patient/{pid}")
    assert r.status_code == 204
    assert r.headers["etag"] == 'W/"2"'
    assert client.get(f"/Patient/{pid}").status_code == 410
    assert client.get(f"/Patient/{pid}/_history/1").status_code == 200
    assert client.get(f"/Patient/{pid}/_history/2").status_code == 410
    # deleting again is harmless and writes no new version
    assert client.delete(f"/Patient/{pid}").status_code == 204
    history = client.get(f"/Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]


def test_update_after_delete_revives_with_next_version(client):
    created = client.post("/Patient", json=patient()).json()
    client.delete(f"/Patient/{created['id']}")
    r = client.put(f"/Patient/{created['id']}", json=created)
    assert r.status_code == 201
    assert r.json()["meta"]["versionId"] == "3"


def test_delete_unknown_is_204(client):
    assert client.delete(f"/Patient/{unique()}").status_code == 204


def test_decimal_precision_is_preserved(client):
    body = (b'{"resourceType":"Patient","gender":"other",'
            b'"extension":[{"url":"http://example.org/weight","valueDecimal":71.50}]}')
    created = client.post("/Patient", content=body, headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201, created.text
    assert b'"valueDecimal":71.50' in created.content
    again = client.get(f"/Patient/{created.json()['id']}")
    assert b'"valueDecimal":71.50' in again.content


def test_prefer_return_minimal_and_operation_outcome(client):
    r = client.post("/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b""
    assert r.headers["location"]
    r = client.post("/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 201
    assert r.json()["resourceType"] == "OperationOutcome"
