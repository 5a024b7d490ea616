"""transaction (all or nothing, reference rewriting, conditional references, order) and batch."""

from __future__ import annotations

from conftest import patient, unique

TEST_INS = "urn:oid:1.2.250.1.213.1.4.10"


def post(full_url: str, resource: dict, **request) -> dict:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], **request}}


def document(subject: str, binary_url: str) -> dict:
    return {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": subject},
            "content": [{"attachment": {"contentType": "text/plain", "url": binary_url}}]}


def test_transaction_rewrites_urn_uuid_references(client):
    pat, binary = "urn:uuid:5f3b2c1e-0000-4000-8000-000000000001", "urn:uuid:5f3b2c1e-0000-4000-8000-000000000002"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        post("urn:uuid:5f3b2c1e-0000-4000-8000-000000000003", document(pat, binary)),
        post(pat, patient()),
        post(binary, {"resourceType": "Binary", "contentType": "text/plain", "data": "Ym9uam91cg=="}),
    ]}
    r = client.post("", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created"] * 3
    doc_location, pat_location, bin_location = (e["response"]["location"] for e in out["entry"])
    doc = client.get(doc_location.split("/_history")[0]).json()
    assert doc["subject"]["reference"] == pat_location.split("/_history")[0]
    assert doc["content"][0]["attachment"]["url"] == bin_location.split("/_history")[0]


def test_transaction_is_all_or_nothing(client):
    ins = unique()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        post("urn:uuid:00000000-0000-4000-8000-0000000000a1", patient(ins)),
        post("urn:uuid:00000000-0000-4000-8000-0000000000a2", patient(gender="not-a-gender")),
    ]}
    r = client.post("", json=bundle)
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert "Bundle.entry[1]" in issue["diagnostics"]
    assert client.get("/Patient", params={"identifier": ins}).json().get("entry") is None


def test_transaction_failing_on_if_match_rolls_back_earlier_writes(client):
    victim = client.post("/Patient", json=patient()).json()
    ins = unique()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        post("urn:uuid:00000000-0000-4000-8000-0000000000b1", patient(ins)),
        {"resource": {**victim, "gender": "male"},
         "request": {"method": "PUT", "url": f"Patient/{victim['id']}", "ifMatch": 'W/"9"'}},
    ]}
    assert client.post("", json=bundle).status_code == 412
    assert client.get("/Patient", params={"identifier": ins}).json().get("entry") is None
    assert client.get(f"/Patient/{victim['id']}").json()["gender"] == "female"


def test_conditional_reference_and_conditional_create_in_transaction(client):
    ins = unique()
    existing = client.post("/Patient", json=patient(ins)).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        post("urn:uuid:00000000-0000-4000-8000-0000000000c1", patient(ins),
             ifNoneExist=f"identifier={TEST_INS}|{ins}"),
        post("urn:uuid:00000000-0000-4000-8000-0000000000c2",
             {"resourceType": "Appointment", "status": "booked",
              "participant": [{"actor": {"reference": f"Patient?identifier={TEST_INS}|{ins}"},
                               "status": "accepted"}]}),
    ]}
    r = client.post("", json=bundle)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["200 OK", "201 Created"]
    appointment = client.get(r.json()["entry"][1]["response"]["location"].split("/_history")[0]).json()
    assert appointment["participant"][0]["actor"]["reference"] == f"Patient/{existing['id']}"


def test_conditional_reference_without_match_fails_the_transaction(client):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        post("urn:uuid:00000000-0000-4000-8000-0000000000d1",
             {"resourceType": "Appointment", "status": "booked",
              "participant": [{"actor": {"reference": f"Patient?identifier={unique()}"}, "status": "accepted"}]}),
    ]}
    r = client.post("", json=bundle)
    assert r.status_code in (404, 412)
    assert r.json()["resourceType"] == "OperationOutcome"


def test_transaction_processing_order_delete_before_create(client):
    ins = unique()
    old = client.post("/Patient", json=patient(ins)).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        post("urn:uuid:00000000-0000-4000-8000-0000000000e1", patient(ins),
             ifNoneExist=f"identifier={TEST_INS}|{ins}"),
        {"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}},
        {"request": {"method": "GET", "url": f"Patient/{old['id']}/_history/1"}},
    ]}
    r = client.post("", json=bundle).json()
    assert r["entry"][1]["response"]["status"] == "204 No Content"
    assert r["entry"][2]["resource"]["id"] == old["id"]
    assert client.get(f"/Patient/{old['id']}").status_code == 410


def test_transaction_refuses_same_resource_twice(client):
    created = client.post("/Patient", json=patient()).json()
    entry = {"resource": created, "request": {"method": "PUT", "url": f"Patient/{created['id']}"}}
    r = client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry, entry]})
    assert r.status_code == 400


def test_transaction_put_and_patch_entries(client):
    created = client.post("/Patient", json=patient()).json()
    new_id = f"tx-{unique()}"
    patch = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.gender"},
        {"name": "value", "valueCode": "other"}]}]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(id=new_id), "request": {"method": "PUT", "url": f"Patient/{new_id}"}},
        {"resource": patch, "request": {"method": "PATCH", "url": f"Patient/{created['id']}"}},
    ]}
    r = client.post("", json=bundle)
    assert r.status_code == 200, r.text
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["201 Created", "200 OK"]
    assert client.get(f"/Patient/{created['id']}").json()["gender"] == "other"


def test_batch_entries_are_independent(client):
    ins = unique()
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        post("urn:uuid:00000000-0000-4000-8000-0000000000f1", patient(ins)),
        post("urn:uuid:00000000-0000-4000-8000-0000000000f2", patient(gender="bogus")),
        {"request": {"method": "GET", "url": f"Patient/{unique()}"}},
    ]}
    r = client.post("", json=bundle)
    assert r.status_code == 200
    out = r.json()
    assert out["type"] == "batch-response"
    assert out["entry"][0]["response"]["status"] == "201 Created"
    assert out["entry"][1]["response"]["status"] == "400"
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert out["entry"][2]["response"]["status"] == "404"
    assert len(client.get("/Patient", params={"identifier": ins}).json()["entry"]) == 1


def test_bundle_must_be_transaction_or_batch(client):
    r = client.post("", json={"resourceType": "Bundle", "type": "collection"})
    assert r.status_code == 400
    r = client.post("", json={"resourceType": "Bundle", "type": "transaction",
                              "entry": [{"resource": patient()}]})
    assert r.status_code == 400


def test_search_entries_in_batch_and_transaction(client):
    ins = unique()
    client.post("/Patient", json=patient(ins))
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient?identifier={ins}"}}]}
    found = client.post("", json=batch).json()["entry"][0]
    assert found["response"]["status"] == "200 OK"
    assert found["resource"]["type"] == "searchset"
    assert len(found["resource"]["entry"]) == 1
    other = unique()
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": f"Patient?identifier={other}"}},
        post("urn:uuid:00000000-0000-4000-8000-0000000000aa", patient(other)),
    ]}
    out = client.post("", json=transaction).json()
    assert len(out["entry"][0]["resource"]["entry"]) == 1  # GET runs after the POST (R4 processing order)
