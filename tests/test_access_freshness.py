"""A read's visibility verdict may be remembered (``SqliteStore.read_where``), but a professional's
next request always answers to the patient's latest decision — a block, a closed space, a masked
document, a deleted record — whether this server process wrote it or another process on the same
data directory. Real HTTP on real SQLite: each read is made twice, so the second can come from
what the server remembered."""

from __future__ import annotations

import httpx
from access_world import CLOSED, block_consent
from conftest import FHIR_JSON, ProcessServer

from fhir_server.french.visibility import TRE_A07

MASK = [{"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"system": TRE_A07, "code": "MASQUE_PS"}]}}]
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def _status(client: httpx.Client, path: str) -> int:
    """The status of a read made twice in a row (the second may be answered from memory): the same."""
    first, second = client.get(path).status_code, client.get(path).status_code
    assert first == second, path
    return second


def test_a_professional_s_next_read_follows_each_decision_written_here(env):
    server, _, clients = env
    alice, dra, drb = server.client("Patient/alice", "patient/*.cruds"), clients["drA"], clients["drB"]
    doc = "/DocumentReference/doc-alice-plain"
    assert _status(drb, doc) == 200 and _status(drb, "/Patient/alice") == 200
    r = alice.post("/Consent", json=block_consent("alice", "Practitioner/drB"))
    assert r.status_code == 201, r.text
    assert _status(drb, doc) == 404 and _status(drb, "/Patient/alice") == 404
    assert _status(dra, doc) == 200  # others are not affected
    assert alice.delete(f"/Consent/{r.json()['id']}").status_code == 204
    assert _status(drb, doc) == 200 and _status(drb, "/Patient/alice") == 200
    closing = alice.patch("/Patient/alice", json=[{"op": "add", "path": "/extension", "value": [CLOSED]}],
                          headers=JSON_PATCH)
    assert closing.status_code == 200, closing.text
    assert _status(drb, doc) == 404 and _status(dra, doc) == 404
    reopening = alice.patch("/Patient/alice", json=[{"op": "remove", "path": "/extension"}], headers=JSON_PATCH)
    assert reopening.status_code == 200, reopening.text
    assert _status(drb, doc) == 200
    assert alice.patch(doc, json=MASK, headers=JSON_PATCH).status_code == 200
    assert _status(drb, doc) == 404 and _status(dra, doc) == 200  # the author still sees it
    masked = alice.get(doc).json()
    labels = [c for c in masked["securityLabel"] if c["coding"][0]["code"] != "MASQUE_PS"]
    unmasked = {**masked, "securityLabel": labels}
    assert alice.put(doc, json=unmasked).status_code == 200
    assert _status(drb, doc) == 200


def test_a_decision_written_by_another_process_counts_at_the_next_request(env):
    server, world, clients = env
    drb = clients["drB"]
    doc, patient = "/DocumentReference/doc-dan-plain", "/Patient/dan"
    dan = world.items["Patient/dan"].resource
    other = ProcessServer(server.data_dir).start()  # the same data directory; auth off: it acts as the service
    try:
        with httpx.Client(base_url=other.base, timeout=30, headers={"Accept": FHIR_JSON}) as service:
            assert _status(drb, doc) == 200 and _status(drb, patient) == 200
            r = service.post("/Consent", json=block_consent("dan", "Organization/org-a"))  # drB works there
            assert r.status_code == 201, r.text
            assert _status(drb, doc) == 404 and _status(drb, patient) == 404
            assert service.delete(f"/Consent/{r.json()['id']}").status_code == 204
            assert _status(drb, doc) == 200 and _status(drb, patient) == 200
            assert service.put(patient, json={**dan, "extension": [CLOSED]}).status_code == 200
            assert _status(drb, doc) == 404
            assert service.put(patient, json=dan).status_code == 200
            assert _status(drb, doc) == 200
            assert service.delete(patient).status_code == 204
            assert _status(drb, doc) == 404
            assert service.put(patient, json=dan).status_code == 201
            assert _status(drb, doc) == 200
    finally:
        other.stop()
