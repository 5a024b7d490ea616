"""Regression tests for the holes a security review of the access layer found (each reproduced
over real HTTP before it was fixed): escalation through RelatedPerson, professionals changing
what is not theirs, label games, Binary contexts written another way, conditional operations
and nested searches as oracles, silent refusals, and inputs that gave a 500."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from access_world import (
    CLOSED,
)

from fhir_server.french.visibility import TRE_A07

JSON_PATCH = {"Content-Type": "application/json-patch+json"}



def _trail(system: httpx.Client, **params: str) -> list[dict]:
    r = system.get("/AuditEvent", params={"_count": 1000, **params})
    return [e["resource"] for e in r.json().get("entry", [])]


def test_a_representative_cannot_repoint_her_guardianship(env):
    server, world, clients = env
    rita = server.client("RelatedPerson/rita", "patient/*.cruds")
    dan = server.client("Patient/dan", "patient/*.cruds")
    for target in ("https://evil.example.org/fhir/Patient/alice", "x/Patient/bob", "Patient/alice"):
        forged = {**world.items["RelatedPerson/rita"].resource, "patient": {"reference": target}}
        assert rita.put("/RelatedPerson/rita", json=forged).status_code == 403, target
        assert dan.put("/RelatedPerson/rita", json=forged).status_code == 403, target
    assert clients["rita"].get("/DocumentReference/doc-alice-plain").status_code == 404
    assert dan.post("/RelatedPerson", json={**world.items["RelatedPerson/rita"].resource, "id": None}
                    | {"id": "rita2"}).status_code == 403  # guardianship is registered by the service


def test_professionals_change_only_what_is_theirs(env):
    server, _, _ = env
    dra = server.client("Practitioner/drA", "user/*.cruds")
    bob = dra.get("/Patient/bob").json()
    assert dra.put("/Patient/bob", json={**bob, "extension": [CLOSED]}).status_code == 403
    assert dra.put("/Patient/alice", json={"resourceType": "Patient", "id": "alice",
                                           "name": [{"family": "Autre"}]}).status_code == 403
    assert dra.delete("/Patient/dan").status_code == 403
    assert dra.delete("/List/list-alice").status_code == 403  # he is not its source
    masked = dra.get("/DocumentReference/doc-alice-masqueps").json()
    unmasked = {**masked, "securityLabel": [c for c in masked["securityLabel"]
                                             if c["coding"][0]["code"] != "MASQUE_PS"]}
    r = dra.put("/DocumentReference/doc-alice-masqueps", json=unmasked)
    assert r.status_code == 403, "the author may not lift the patient's mask"


def test_labels_in_meta_security_count_as_labels(env):
    server, _, clients = env
    rita = server.client("RelatedPerson/rita", "patient/*.cruds")
    hide = [{"op": "add", "path": "/meta/security", "value": [{"system": TRE_A07, "code": "INVISIBLE_PATIENT"}]}]
    assert rita.patch("/DocumentReference/doc-dan-masqueps", json=hide, headers=JSON_PATCH).status_code == 403
    assert server.client("Patient/dan", "patient/*.rs").get("/DocumentReference/doc-dan-masqueps").status_code == 200


def test_a_binary_context_is_read_as_the_index_reads_it(env):
    server, _, clients = env
    drbad = server.client("Practitioner/drBad", "user/*.cruds")
    system = server.client("dpi", "system/*.cruds")
    for context in ("DocumentReference/doc-bob-plain/_history/1", f"{server.base}/DocumentReference/doc-bob-plain"):
        binary = {"resourceType": "Binary", "contentType": "text/plain", "data": "eA==",
                  "securityContext": {"reference": context}}
        assert drbad.post("/Binary", json=binary).status_code == 403, context
        carol = {**binary, "securityContext": {"reference": context.replace("bob", "carol")}}
        assert system.post("/Binary", json=carol).status_code == 403, "a closed space accepts no new Binary"
    orphan = {"resourceType": "Binary", "contentType": "text/plain", "data": "eA=="}
    assert drbad.post("/Binary", json=orphan).status_code == 403


def test_conditional_operations_need_the_right_to_search_and_to_read(env):
    server, _, clients = env
    creator = server.client("dpi", "system/DocumentReference.c")
    doc = {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": "Patient/bob"},
           "content": [{"attachment": {"contentType": "text/plain"}}]}
    r = creator.post("/DocumentReference", json=doc, headers={"If-None-Exist": "_id=doc-bob-masqueps"})
    assert r.status_code == 403 and "doc-bob" not in r.text
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {**doc, "subject": {"reference": "Patient?name=Bo"}}, "request": {"method": "POST",
                                                                                        "url": "DocumentReference"}}]}
    assert creator.post("", json=bundle).status_code == 403  # a conditional reference is a Patient search
    dra = clients["drA"]
    before = len(_trail(clients["system"], patient="Patient/alice", agent="Practitioner/drA", subtype="read"))
    matched = server.client("Practitioner/drA", "user/*.cruds").post(
        "/DocumentReference", json={**doc, "subject": {"reference": "Patient/alice"}},
        headers={"If-None-Exist": "_id=doc-alice-plain"})
    assert matched.status_code == 200 and dra is not None
    after = _trail(clients["system"], patient="Patient/alice", agent="Practitioner/drA", subtype="read")
    assert len(after) == before + 1, "a matched conditional create is a read of the match, traced"


def test_nested_searches_need_the_right_to_search_each_type(env):
    server, _, _ = env
    patients_only = server.client("dpi", "system/Patient.rs")
    assert patients_only.get("/DocumentReference").status_code == 403
    for probe in ({"_has:DocumentReference:subject:description": "doc-bob-masqueps de bob"},
                  {"_has:Consent:patient:actor": "Practitioner/drBad"}):
        assert patients_only.get("/Patient", params=probe).json().get("entry") is None, probe
    reader_only = server.client("Patient/alice", "patient/*.r")
    assert reader_only.get("/_history").json().get("entry") is None  # history of a type is a search


def test_refused_writes_are_traced_and_answered_as_for_unknown_ids(env):
    server, _, clients = env
    drbad = server.client("Practitioner/drBad", "user/*.cruds")
    before = len(_trail(clients["system"], patient="Patient/bob", agent="Practitioner/drBad", outcome="4"))
    assert drbad.patch("/DocumentReference/doc-bob-plain", json=[], headers=JSON_PATCH).status_code == 404
    assert drbad.delete("/DocumentReference/doc-bob-plain").status_code == 204  # as for an unknown id
    after = _trail(clients["system"], patient="Patient/bob", agent="Practitioner/drBad", outcome="4")
    assert len(after) >= before + 2
    alice = server.client("Patient/alice", "patient/*.cruds")
    unknown = alice.delete("/DocumentReference/no-such-doc", headers={"If-Match": 'W/"9"'})
    hidden = alice.delete("/DocumentReference/doc-bob-plain", headers={"If-Match": 'W/"9"'})
    assert (hidden.status_code, hidden.json()["issue"][0]["diagnostics"].replace("doc-bob-plain", "X")) == \
        (unknown.status_code, unknown.json()["issue"][0]["diagnostics"].replace("no-such-doc", "X"))
    assert clients["system"].get("/DocumentReference/doc-bob-plain").status_code == 200  # still there


def test_a_put_does_not_tell_a_hidden_id_from_an_unknown_one(env):
    server, world, clients = env
    drbad = server.client("Practitioner/drBad", "user/*.cruds")  # blocked by Bob
    alice = server.client("Patient/alice", "patient/*.cruds")
    for who, hidden_id in ((drbad, "doc-bob-plain"), (alice, "doc-bob-plain"), (alice, "doc-alice-invisiblepatient")):
        body = {**world.items[f"DocumentReference/{hidden_id}"].resource, "description": "réécrit"}
        answers = []
        for target in (hidden_id, "no-such-doc"):
            r = who.put(f"/DocumentReference/{target}", json={**body, "id": target})
            answers.append((r.status_code, r.json()["issue"][0]["diagnostics"].replace(target, "X")))
        assert answers[0] == answers[1] and answers[0][0] == 404, (hidden_id, answers)
        conditional = who.put(f"/DocumentReference?identifier=urn:none|{hidden_id}", json=body)
        unknown = who.put("/DocumentReference?identifier=urn:none|x", json={**body, "id": "no-such-doc"})
        assert conditional.status_code == unknown.status_code == 404, (conditional.text, unknown.text)
    assert clients["system"].get("/DocumentReference/no-such-doc").status_code == 404  # nothing created
    assert clients["system"].get("/DocumentReference/doc-bob-plain").json().get("description") != "réécrit"


def test_a_fhir_user_of_another_server_is_refused(env):
    server, _, _ = env
    for user in ("https://other-server.example/fhir/Patient/alice", "Practitioner/drB/Patient/alice"):
        token = server.sign({"sub": "x", "fhirUser": user, "scope": "patient/*.rs", "aud": server.base,
                             "exp": 9_999_999_999})
        r = httpx.get(f"{server.base}/Patient/alice", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, user


def _position(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path,params", [
    ("/Patient", {"_count": "²"}), ("/Patient", {"_count": "9" * 5000}),
    ("/Patient", {"_cursor": _position([{}])}), ("/Patient", {"_cursor": _position([[1]])}),
    ("/Patient", {"_cursor": _position([2**64 - 1])}),
    ("", {"_type": "Patient", "_cursor": _position(["Patient", {}])}),
    ("/_history", {"_cursor": str(10**20)}), ("/_history", {"_cursor": "²"}),
    ("/Patient/alice/_history/²", {}), (f"/Patient/alice/_history/{10**20}", {}),
    ("/AuditEvent/²", {}), (f"/AuditEvent/{10**20}", {}), ("/AuditEvent", {"_id": str(10**20)}),
    ("/Patient", {"_has:DocumentReference:subject:_has:Binary:securitycontext:_id": "x"}),
    ("/Patient", {"_has:Patient:link:" * 60 + "_id": "x"}),
])
def test_odd_inputs_are_4xx_never_500(env, path, params):
    _, _, clients = env
    for principal in ("system", "drB"):
        r = clients[principal].get(path, params=params)
        assert r.status_code < 500, (principal, path, params, r.text[:200])


@pytest.mark.parametrize("request_", [{"method": "POST", "url": "Patient", "ifNoneExist": 5},
                                      {"method": "POST", "url": 5}, {"method": ["POST"], "url": "Patient"}])
def test_odd_bundle_entries_are_400(env, request_):
    server, _, _ = env
    system = server.client("dpi", "system/*.cruds")
    for kind in ("transaction", "batch"):
        entry = {"resource": {"resourceType": "Patient"}, "request": request_}
        r = system.post("", json={"resourceType": "Bundle", "type": kind, "entry": [entry]})
        assert 400 <= r.status_code < 500 or (kind == "batch" and r.status_code == 200), (kind, r.text[:200])


def test_history_pages_for_a_restricted_principal_are_full_and_linked(env):
    _, world, clients = env
    drb = clients["drB"]
    seen, url, params = [], "/_history", {"_count": 3}
    while url:
        page = drb.get(url, params=params).json()
        entries = page.get("entry", [])
        seen += [e["fullUrl"] for e in entries]
        url, params = next((link["url"] for link in page["link"] if link["relation"] == "next"), None), None
        assert len(entries) == 3 or url is None, "a page is full unless it is the last"
    everything = clients["system"].get("/_history", params={"_count": 1000}).json()["entry"]
    visible = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in everything
               if drb.get(f"/{e['resource']['resourceType']}/{e['resource']['id']}").status_code == 200}
    assert {u.split("/fhir/")[1].split("/_history")[0] for u in seen} == visible
    assert len(seen) == len(set(seen))


def test_a_failing_read_in_a_transaction_is_that_entry_s_answer(env):
    server, _, _ = env
    alice = server.client("Patient/alice", "patient/*.cruds")
    listed = {"resourceType": "List", "status": "current", "mode": "working", "subject": {"reference": "Patient/alice"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": listed, "request": {"method": "POST", "url": "List"}},
        {"request": {"method": "GET", "url": "DocumentReference/doc-bob-plain"}}]}
    r = alice.post("", json=bundle)
    assert r.status_code == 200, r.text
    created, read = r.json()["entry"]
    assert created["response"]["status"].startswith("201")
    assert read["response"]["status"].startswith("404")  # hidden, and the List is reported as written


def test_the_trail_does_not_reveal_documents_hidden_from_its_reader(env):
    server, _, clients = env
    clients["drA"].get("/DocumentReference/doc-alice-invisiblepatient")  # a read alice will see in her trail
    alice = clients["alice"]
    events = alice.get("/AuditEvent", params={"patient": "Patient/alice", "_count": 1000}).json()["entry"]
    named = {x["what"]["reference"] for e in events for x in e["resource"]["entity"]}
    assert "DocumentReference/doc-alice-invisiblepatient" not in named
    assert any(e["resource"]["agent"][0]["who"].get("reference") == "Practitioner/drA" for e in events)
    hidden = {"entity": "DocumentReference/doc-alice-invisiblepatient", "_summary": "count"}
    assert alice.get("/AuditEvent", params=hidden).json()["total"] == 0
    assert clients["system"].get("/AuditEvent", params=hidden).json()["total"] > 0


def test_only_the_author_of_its_document_rewrites_a_binary(env):
    server, _, _ = env
    binary = {"resourceType": "Binary", "id": "bin-doc-bob-plain", "contentType": "text/plain", "data": "ZmF1eA==",
              "securityContext": {"reference": "DocumentReference/doc-bob-plain"}}
    assert server.client("Practitioner/drB", "user/*.cruds").put("/Binary/bin-doc-bob-plain",
                                                                 json=binary).status_code == 403
    assert server.client("Practitioner/drA", "user/*.cruds").put("/Binary/bin-doc-bob-plain",
                                                                 json=binary).status_code == 200
