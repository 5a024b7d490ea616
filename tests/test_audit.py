"""Access traces over real HTTP: reads, search hits, writes and refusals leave AuditEvents in the
patient's trail, committed before the answer, listable by the patient, unalterable by anyone."""

from __future__ import annotations

import httpx
import pytest

from fhir_server.security.audit import DENIED


def _trail(client: httpx.Client, **params: str) -> list[dict]:
    r = client.get("/AuditEvent", params={"_count": 1000, **params})
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


def _about(events: list[dict], who: str, what: str, subtype: str) -> list[dict]:
    return [e for e in events if e["agent"][0]["who"].get("reference") == who and subtype == e["subtype"][0]["code"]
            and any(x["what"]["reference"] == what for x in e["entity"])]


def test_reads_leave_a_trace_the_patient_lists_at_once(env):
    _, _, clients = env
    assert clients["drB"].get("/DocumentReference/doc-alice-plain").status_code == 200
    events = _about(_trail(clients["alice"], patient="Patient/alice"), "Practitioner/drB",
                    "DocumentReference/doc-alice-plain", "read")
    assert events, "the read is in alice's trail as soon as it was answered"
    event = events[-1]
    assert event["outcome"] == "0" and event["action"] == "R"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "normal"
    assert event["entity"][0]["what"]["reference"] == "Patient/alice"
    assert event["agent"][0]["network"]["address"] == "127.0.0.1"


def test_refused_attempts_are_traced_for_the_patient_concerned(env):
    _, _, clients = env
    assert clients["drBad"].get("/DocumentReference/doc-bob-plain").status_code == 404  # bob blocks drBad
    refused = _about(_trail(clients["system"], patient="Patient/bob"), "Practitioner/drBad",
                     "DocumentReference/doc-bob-plain", "read")
    assert refused and refused[-1]["outcome"] == DENIED and refused[-1]["outcomeDesc"]
    bob = clients["loader"]  # bob has no client in the world; the loader (system) lists for him
    assert _trail(bob, patient="Patient/bob", outcome="4")


def test_search_hits_writes_and_break_the_glass_are_traced(env):
    server, _, clients = env
    found = clients["drA"].get("/DocumentReference", params={"subject": "Patient/alice"}).json()
    hits = {f"DocumentReference/{e['resource']['id']}" for e in found["entry"]}
    events = [e for e in _trail(clients["system"], patient="Patient/alice", subtype="search-type")
              if e["agent"][0]["who"].get("reference") == "Practitioner/drA"]
    last = max(e["recorded"] for e in events)  # the traces of one request share its instant
    assert hits == {x["what"]["reference"] for e in events if e["recorded"] == last for x in e["entity"]
                    if x["what"]["reference"] != "Patient/alice"}, "one trace per search hit"
    doc = {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": "Patient/alice"},
           "author": [{"reference": "Practitioner/drA"}], "content": [{"attachment": {"contentType": "text/plain"}}]}
    created = clients["drA"].post("/DocumentReference", json=doc).json()["id"]
    assert _about(_trail(clients["alice"], patient="Patient/alice", action="C"), "Practitioner/drA",
                  f"DocumentReference/{created}", "create")
    emergency = server.client("Practitioner/drB", "user/*.rs", **{"X-Access-Mode": "bris_de_glace",
                                                                   "X-Access-Reason": "Arr%C3%AAt%20cardiaque"})
    assert emergency.get("/Patient/alice").status_code == 200
    flagged = _about(_trail(clients["alice"], patient="Patient/alice"), "Practitioner/drB", "Patient/alice", "read")
    purpose = flagged[-1]["purposeOfEvent"][0]
    assert purpose["coding"][0]["code"] == "bris_de_glace" and purpose["text"] == "Arrêt cardiaque"


def test_patients_see_only_their_own_trail_and_nobody_alters_it(env):
    server, _, clients = env
    clients["drA"].get("/Patient/bob")
    assert not _trail(clients["alice"], patient="Patient/bob")
    assert all(any(x["what"]["reference"] == "Patient/alice" for x in e["entity"])
               or e["agent"][0]["who"].get("reference") == "Patient/alice" for e in _trail(clients["alice"]))
    mine = _trail(clients["alice"])[0]
    writer = server.client("dpi", "system/*.cruds")
    for client in (clients["alice"], writer):
        assert client.put(f"/AuditEvent/{mine['id']}", json=mine).status_code == 403
        assert client.delete(f"/AuditEvent/{mine['id']}").status_code == 403
    assert clients["drA"].get("/AuditEvent").json().get("entry") is None  # professionals see no trail


def test_counting_and_reading_the_trail_leave_no_trace(env):
    _, _, clients = env
    before = len(_trail(clients["system"], agent="Practitioner/drA"))
    assert clients["drA"].get("/DocumentReference", params={"_summary": "count"}).json()["total"] > 0
    clients["drA"].get("/AuditEvent")
    assert len(_trail(clients["system"], agent="Practitioner/drA")) == before
    assert clients["system"].get("/AuditEvent", params={"site": "x"}, headers={"Prefer": "handling=strict"}
                                 ).status_code == 400  # a parameter the trail does not keep
    newest = _trail(clients["system"], _sort="-date")
    assert [e["recorded"] for e in newest] == sorted((e["recorded"] for e in newest), reverse=True)



@pytest.mark.parametrize("order", ["", "-date"])
def test_the_trail_pages_without_repeats(env, order):
    _, _, clients = env
    system = clients["system"]
    expected = [e["id"] for e in _trail(system, patient="Patient/alice", **({"_sort": order} if order else {}))]
    seen, url = [], "/AuditEvent"
    params: dict | None = {"patient": "Patient/alice", "_count": 7, **({"_sort": order} if order else {})}
    while url:
        page = system.get(url, params=params).json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url, params = next((link["url"] for link in page["link"] if link["relation"] == "next"), None), None
    assert seen[:len(expected)] == expected and len(seen) == len(set(seen))
    second = system.get("/AuditEvent", params={"patient": "Patient/alice", "_count": 7}).json()
    nxt = next(link["url"] for link in second["link"] if link["relation"] == "next")
    back = system.get(next(link["url"] for link in system.get(nxt).json()["link"]
                           if link["relation"] == "previous")).json()
    assert [e["resource"]["id"] for e in back["entry"]] == [e["resource"]["id"] for e in second["entry"]]


def test_the_trail_of_one_patient_compartment(env):
    _, _, clients = env
    clients["drA"].get("/Patient/bob")
    system = clients["system"]
    inside = system.get("/Patient/alice/AuditEvent", params={"_count": 1000}).json()["entry"]
    assert inside and all(any(x["what"]["reference"] == "Patient/alice" for x in e["resource"]["entity"])
                          for e in inside)
    counted = system.get("/Patient/alice/AuditEvent", params={"_summary": "count"}).json()["total"]
    assert counted == len(_trail(system, patient="Patient/alice"))


def test_requests_without_a_valid_token_are_traced_as_denied_attempts(env):
    server, _, clients = env
    with httpx.Client(base_url=server.base, timeout=30) as anonymous:
        assert anonymous.get("/DocumentReference/doc-alice-plain").status_code == 401
        forged = {"Authorization": "Bearer not.a.token"}
        assert anonymous.delete("/DocumentReference/doc-alice-plain", headers=forged).status_code == 401
        assert anonymous.get("/Patient", params={"name": "alice"}).status_code == 401
    events = [e for e in _trail(clients["alice"], patient="Patient/alice", outcome=DENIED)
              if e["agent"][0]["who"].get("identifier", {}).get("value") == "unauthenticated"]
    by_subtype = {e["subtype"][0]["code"]: e for e in events}
    assert {"read", "delete"} <= set(by_subtype), events
    read = by_subtype["read"]
    assert read["entity"][-1]["what"]["reference"] == "DocumentReference/doc-alice-plain"
    assert "401" in read["outcomeDesc"] and read["agent"][0]["network"]["address"] == "127.0.0.1"
    searches = [e for e in _trail(clients["system"], outcome=DENIED, subtype="search-type")
                if e["agent"][0]["who"].get("identifier", {}).get("value") == "unauthenticated"]
    assert searches, "a refused search is traced, in no patient's trail (system auditors see it)"
    assert [x["what"]["reference"] for x in searches[-1]["entity"]] == ["Patient"]
