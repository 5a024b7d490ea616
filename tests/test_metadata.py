"""The CapabilityStatement describes what the server really does."""

from __future__ import annotations

from conftest import patient

from fhir_server.config import SUPPORTED_TYPES


def test_capability_statement(client):
    r = client.get("/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert set(cs["format"]) == {"application/fhir+json", "application/fhir+xml"}
    rest = cs["rest"][0]
    assert [r["type"] for r in rest["resource"]] == list(SUPPORTED_TYPES)
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system", "search-system"}
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert "DocumentReference:subject" in patient["searchRevInclude"]
    assert "Patient:organization" in patient["searchInclude"]


def test_every_declared_interaction_and_search_param_answers(client):
    """Each search parameter the statement lists is accepted in strict mode."""
    cs = client.get("/metadata").json()
    sample = {"date": "2024", "number": "1", "quantity": "1", "composite": "x$y"}
    for resource in cs["rest"][0]["resource"]:
        assert len(resource["searchParam"]) > 3
        for param in resource["searchParam"]:
            r = client.get(f"/{resource['type']}", params={param["name"]: sample.get(param["type"], "x")},
                           headers={"Prefer": "handling=strict"})
            assert r.status_code == 200, (resource["type"], param["name"], r.text)
    created = client.post("/Patient", json=patient()).json()
    assert client.get(f"/Patient/{created['id']}/_history/1").status_code == 200


def test_metadata_in_xml(client):
    r = client.get("/metadata", headers={"Accept": "application/fhir+xml"})
    assert r.status_code == 200
    assert b"<CapabilityStatement" in r.content
