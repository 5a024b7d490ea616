"""Conditional create, update, delete and conditional reads (If-Match, If-None-Match, ...)."""

from __future__ import annotations

from conftest import patient, unique

TEST_INS = "urn:oid:1.2.250.1.213.1.4.10"


def test_conditional_create_matches_existing(client):
    ins = unique()
    first = client.post("/Patient", json=patient(ins), headers={"If-None-Exist": f"identifier={TEST_INS}|{ins}"})
    assert first.status_code == 201
    second = client.post("/Patient", json=patient(ins), headers={"If-None-Exist": f"identifier={TEST_INS}|{ins}"})
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["meta"]["versionId"] == "1"
    found = client.get("/Patient", params={"identifier": f"{TEST_INS}|{ins}"}).json()
    assert len(found["entry"]) == 1


def test_conditional_create_with_several_matches_is_412(client):
    ins = unique()
    client.post("/Patient", json=patient(ins))
    client.post("/Patient", json=patient(ins))
    r = client.post("/Patient", json=patient(ins), headers={"If-None-Exist": f"identifier={ins}"})
    assert r.status_code == 412


def test_conditional_create_with_unknown_parameter_is_400(client):
    r = client.post("/Patient", json=patient(), headers={"If-None-Exist": "nonsense=1"})
    assert r.status_code == 400


def test_conditional_update_creates_then_updates(client):
    ins = unique()
    query = f"identifier={TEST_INS}|{ins}"
    created = client.put(f"/Patient?{query}", json=patient(ins))
    assert created.status_code == 201
    updated = client.put(f"/Patient?{query}", json=patient(ins, gender="male"))
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"


def test_conditional_update_by_id(client):
    created = client.post("/Patient", json=patient()).json()
    r = client.put(f"/Patient?_id={created['id']}", json=patient(gender="male"))
    assert r.status_code == 200
    assert r.json()["id"] == created["id"]


def test_conditional_update_with_body_id_differing_from_match_is_400(client):
    ins = unique()
    client.post("/Patient", json=patient(ins))
    assert client.put(f"/Patient?identifier={ins}", json=patient(ins, id="other")).status_code == 400


def test_conditional_update_with_several_matches_is_412(client):
    ins = unique()
    client.post("/Patient", json=patient(ins))
    client.post("/Patient", json=patient(ins))
    assert client.put(f"/Patient?identifier={ins}", json=patient(ins)).status_code == 412


def test_conditional_delete(client):
    ins = unique()
    created = client.post("/Patient", json=patient(ins)).json()
    assert client.delete(f"/Patient?identifier={ins}").status_code == 204
    assert client.get(f"/Patient/{created['id']}").status_code == 410
    assert client.delete(f"/Patient?identifier={ins}").status_code == 204  # nothing left to match


def test_conditional_delete_with_several_matches_is_412(client):
    ins = unique()
    client.post("/Patient", json=patient(ins))
    client.post("/Patient", json=patient(ins))
    assert client.delete(f"/Patient?identifier={ins}").status_code == 412


def test_type_level_put_or_delete_without_criteria_is_refused(client):
    assert client.put("/Patient", json=patient()).status_code == 405
    assert client.delete("/Patient").status_code == 405


def test_if_match_wrong_version_is_412_and_right_version_updates(client):
    created = client.post("/Patient", json=patient()).json()
    url = f"/Patient/{created['id']}"
    assert client.put(url, json=created, headers={"If-Match": 'W/"7"'}).status_code == 412
    ok = client.put(url, json=created, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    assert client.put(url, json=created, headers={"If-Match": 'W/"1"'}).status_code == 412
    assert client.delete(url, headers={"If-Match": 'W/"1"'}).status_code == 412
    assert client.get(url).json()["meta"]["versionId"] == "2"


def test_if_none_match_and_if_modified_since_give_304(client):
    created = client.post("/Patient", json=patient())
    url = f"/Patient/{created.json()['id']}"
    assert client.get(url, headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": 'W/"2"'}).status_code == 200
    assert client.get(url, headers={"If-Modified-Since": created.headers["last-modified"]}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
