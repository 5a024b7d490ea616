"""Authentication, scopes and the write rules over real HTTP: forged tokens, scope escalation,
a patient masking a document and blocking a professional, professionals writing for reachable
patients only, a closed space refusing new data, break-the-glass needing a reason, `mes token`."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_server.app import create_app
from fhir_server.config import load_settings
from fhir_server.french.visibility import TRE_A07

MASK = [{"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"system": TRE_A07, "code": "MASQUE_PS"}]}}]
JSON_PATCH = {"Content-Type": "application/json-patch+json"}



def _doc_for(patient: str, author: str = "drA") -> dict:
    return {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": f"Patient/{patient}"},
            "author": [{"reference": f"Practitioner/{author}"}],
            "content": [{"attachment": {"contentType": "text/plain", "title": "Compte rendu"}}]}


def test_no_data_without_a_valid_token(env):
    server, _, _ = env
    with httpx.Client(base_url=server.base, timeout=30) as anonymous:
        assert anonymous.get("/metadata").status_code == 200
        r = anonymous.get("/Patient/alice")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["issue"][0]["code"] == "login"
        assert anonymous.get("/Patient", headers={"Authorization": "Basic YTpi"}).status_code == 401
        assert anonymous.get("/nonsense", headers={"Authorization": "Bearer x.y.z"}).status_code == 401


def test_forged_expired_and_misdirected_tokens_are_refused(env, tmp_path):
    server, _, _ = env
    now = int(time.time())
    claims = {"sub": "Patient/alice", "fhirUser": "Patient/alice", "scope": "patient/*.rs", "aud": server.base,
              "iat": now, "exp": now + 600}
    stranger = ec.generate_private_key(ec.SECP256R1())
    unsigned = ".".join(jwt.utils.base64url_encode(part).decode() for part in (
        b'{"alg":"none","typ":"JWT"}', jwt.api_jws.json.dumps(claims).encode())) + "."
    good = server.token("Patient/alice", "patient/*.rs")
    head, payload, signature = good.split(".")
    escalated = jwt.utils.base64url_encode(jwt.api_jws.json.dumps({**claims, "scope": "system/*.*"}).encode())
    forged = {
        "alg none": unsigned,
        "unknown key": jwt.encode(claims, stranger, algorithm="ES256"),
        "HS256 with a guessable secret": jwt.encode(claims, "x" * 32, algorithm="HS256"),
        "expired": server.sign({**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
        "not yet valid": server.sign({**claims, "nbf": now + 3600}),
        "wrong audience": server.sign({**claims, "aud": "https://ailleurs.example.org/fhir"}),
        "scope escalated after signing": f"{head}.{escalated.decode()}.{signature}",
    }
    for name, token in forged.items():
        r = httpx.get(f"{server.base}/Patient/alice", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        assert 'error="invalid_token"' in r.headers["www-authenticate"], name
    assert httpx.get(f"{server.base}/Patient/alice", headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_scopes_bound_every_interaction(env):
    server, _, clients = env
    reader = server.client("Patient/alice", "patient/*.rs")
    r = reader.post("/Consent", json={"resourceType": "Consent"})
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
    assert reader.patch("/DocumentReference/doc-alice-plain", json=MASK, headers=JSON_PATCH).status_code == 403
    patient_only = server.client("Patient/alice", "patient/Patient.rs")
    assert patient_only.get("/Patient/alice").status_code == 200
    assert patient_only.get("/DocumentReference").status_code == 403
    assert patient_only.get("/DocumentReference/doc-alice-plain").status_code == 403
    assert clients["system"].delete("/Patient/alice").status_code == 403  # system/*.rs
    system_with_patient_scopes = server.client("dpi", "patient/*.cruds")
    assert system_with_patient_scopes.get("/Patient/alice").status_code == 403
    audit = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2026-01-01T00:00:00Z",
             "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}
    assert clients["loader"].post("/AuditEvent", json=audit).status_code == 403


def test_patient_masks_and_unmasks_a_document(env):
    server, _, clients = env
    alice, drb = clients["alice"], clients["drB"]
    assert drb.get("/DocumentReference/doc-alice-plain").status_code == 200
    r = alice.patch("/DocumentReference/doc-alice-plain", json=MASK, headers=JSON_PATCH)
    assert r.status_code == 200, r.text
    assert drb.get("/DocumentReference/doc-alice-plain").status_code == 404
    assert clients["drA"].get("/DocumentReference/doc-alice-plain").status_code == 200  # the author
    assert alice.get("/DocumentReference/doc-alice-plain").status_code == 200
    masked = alice.get("/DocumentReference/doc-alice-plain").json()
    unmasked = {**masked, "securityLabel": [c for c in masked["securityLabel"]
                                             if c["coding"][0]["code"] != "MASQUE_PS"]}
    assert alice.put("/DocumentReference/doc-alice-plain", json=unmasked).status_code == 200
    assert drb.get("/DocumentReference/doc-alice-plain").status_code == 200
    rewritten = {**unmasked, "description": "réécrit par la patiente"}
    r = alice.put("/DocumentReference/doc-alice-plain", json=rewritten)
    assert r.status_code == 403, "a patient may only toggle visibility on a professional's document"
    assert alice.delete("/DocumentReference/doc-alice-plain").status_code == 403
    assert alice.put("/Patient/alice", json={"resourceType": "Patient", "id": "alice",
                                             "name": [{"family": "Autre"}]}).status_code == 403


def test_patient_blocks_and_unblocks_a_professional(env):
    server, _, clients = env
    alice = clients["alice"]
    drb_writer = server.client("Practitioner/drB", "user/*.cruds")
    assert drb_writer.get("/Patient/alice").status_code == 200
    block = {"resourceType": "Consent", "status": "active",
             "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                   "code": "patient-privacy"}]},
             "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
             "patient": {"reference": "Patient/alice"},
             "provision": {"type": "deny", "actor": [{"role": {"coding": [{
                 "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
                 "reference": {"reference": "Organization/org-a"}}]}}  # drB works there
    r = alice.post("/Consent", json=block)
    assert r.status_code == 201, r.text
    consent = r.json()["id"]
    assert drb_writer.get("/Patient/alice").status_code == 404
    assert drb_writer.get("/DocumentReference", params={"subject": "Patient/alice"}).json().get("entry") is None
    assert drb_writer.post("/DocumentReference", json=_doc_for("alice", "drB")).status_code == 403
    assert clients["drA"].get("/Patient/alice").status_code == 200  # others are not affected
    assert alice.delete(f"/Consent/{consent}").status_code == 204
    assert drb_writer.get("/Patient/alice").status_code == 200


def test_professionals_write_for_reachable_patients_and_their_own_documents(env):
    server, _, clients = env
    dra = clients["drA"]
    r = dra.post("/DocumentReference", json=_doc_for("alice"))
    assert r.status_code == 201, r.text
    mine = r.json()
    assert dra.put(f"/DocumentReference/{mine['id']}", json={**mine, "description": "corrigé"}).status_code == 200
    r = dra.post("/DocumentReference", json=_doc_for("carol"))
    assert r.status_code == 403 and "closed" in r.json()["issue"][0]["diagnostics"]
    drbad = server.client("Practitioner/drBad", "user/*.cruds")
    assert drbad.post("/DocumentReference", json=_doc_for("bob", "drBad")).status_code == 403
    assert drbad.post("/DocumentReference", json=_doc_for("alice", "drBad")).status_code == 201
    drb = server.client("Practitioner/drB", "user/*.cruds")
    r = drb.put(f"/DocumentReference/{mine['id']}", json={**mine, "description": "par un autre"})
    assert r.status_code == 403 and "901" in r.json()["issue"][0]["diagnostics"]
    assert drb.delete(f"/DocumentReference/{mine['id']}").status_code == 403
    assert dra.delete(f"/DocumentReference/{mine['id']}").status_code == 204
    consent = {"resourceType": "Consent", "status": "active", "scope": {"text": "x"}, "category": [{"text": "x"}]}
    assert drb.post("/Consent", json=consent).status_code == 403
    registered = dra.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Nouveau"}]})
    assert registered.status_code == 201, registered.text
    assert dra.post("/DocumentReference", json=_doc_for(registered.json()["id"])).status_code == 201


def test_a_closed_space_refuses_new_data_on_every_principal_and_stays_readable(env):
    server, _, clients = env
    system = server.client("dpi-hopital", "system/*.cruds")
    appointment = {"resourceType": "Appointment", "status": "booked",
                   "participant": [{"actor": {"reference": "Patient/carol"}, "status": "accepted"}]}
    r = system.post("/Appointment", json=appointment)
    assert r.status_code == 403 and "closed" in r.json()["issue"][0]["diagnostics"]
    carol = server.client("Patient/carol", "patient/*.rs")
    assert carol.get("/DocumentReference/doc-carol-plain").status_code == 200
    assert clients["drA"].get("/DocumentReference/doc-carol-plain").status_code == 404


def test_break_the_glass_needs_a_stated_reason(env):
    server, _, _ = env
    emergency = server.client("Practitioner/drB", "user/*.rs", **{"X-Access-Mode": "bris_de_glace"})
    r = emergency.get("/Patient/alice")
    assert r.status_code == 403 and "reason" in r.json()["issue"][0]["diagnostics"]
    reason = {"X-Access-Reason": "Patiente%20inconsciente%20aux%20urgences"}
    assert emergency.get("/Patient/alice", headers=reason).status_code == 200
    assert emergency.get("/Patient/alice", headers={"X-Access-Mode": "n'importe quoi"}).status_code == 400
    with_claims = server.client("Practitioner/drB", "user/*.rs", purpose="centre_15", reason="Appel au 15")
    assert with_claims.get("/Patient/alice").status_code == 200


def test_mes_token_prints_a_token_the_server_accepts(env):
    server, _, _ = env
    out = subprocess.run([sys.executable, "-m", "fhir_server.cli", "token", "--data-dir", str(server.data_dir),
                          "--sub", "Patient/alice", "--scope", "patient/*.rs", "--aud", server.base],
                         capture_output=True, text=True, timeout=60, check=True)
    token = out.stdout.strip()
    r = httpx.get(f"{server.base}/DocumentReference", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["entry"]


def test_auth_off_and_hs256_are_refused_on_a_network_host(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        create_app(load_settings(host="0.0.0.0", auth="off", data_dir=tmp_path))
    with pytest.raises(ValueError, match="HS256"):
        create_app(load_settings(host="10.1.2.3", auth="on", auth_hs256_secret="s" * 40, data_dir=tmp_path))
    with pytest.raises(ValueError, match="on' or 'off"):
        create_app(load_settings(auth="maybe", data_dir=tmp_path))


def test_patient_chooses_what_representatives_see(env):
    server, _, clients = env
    dan = server.client("Patient/dan", "patient/*.cruds")
    rita = clients["rita"]
    assert rita.get("/DocumentReference/doc-dan-plain").status_code == 200
    hide = [{"op": "add", "path": "/securityLabel/-",
             "value": {"coding": [{"system": TRE_A07, "code": "INVISIBLE_REPRESENTANTS_LEGAUX"}]}}]
    assert dan.patch("/DocumentReference/doc-dan-plain", json=hide, headers=JSON_PATCH).status_code == 200
    assert rita.get("/DocumentReference/doc-dan-plain").status_code == 404
    assert dan.get("/DocumentReference/doc-dan-plain").status_code == 200
    rita_writer = server.client("RelatedPerson/rita", "patient/*.cruds")
    unhide = [{"op": "remove", "path": "/securityLabel/1"}]  # she cannot even see it to unhide it
    assert rita_writer.patch("/DocumentReference/doc-dan-plain", json=unhide, headers=JSON_PATCH).status_code == 404


def test_no_access_mode_reveals_a_masked_document(env):
    server, _, _ = env
    reason = {"X-Access-Reason": "urgence"}
    for mode in ("bris_de_glace", "centre_15"):
        emergency = server.client("Practitioner/drB", "user/*.rs", **{"X-Access-Mode": mode}, **reason)
        assert emergency.get("/DocumentReference/doc-bob-masqueps").status_code == 404, mode
        assert emergency.get("/DocumentReference/doc-bob-plain").status_code == 200, mode


def test_patient_closes_their_space(env):
    server, _, clients = env
    from access_world import CLOSED

    alice_writer = server.client("Patient/alice", "patient/*.cruds")
    assert clients["drB"].get("/Patient/alice").status_code == 200
    close = [{"op": "add", "path": "/extension", "value": [CLOSED]}]
    r = alice_writer.patch("/Patient/alice", json=close, headers=JSON_PATCH)
    assert r.status_code == 200, r.text
    assert clients["drB"].get("/Patient/alice").status_code == 404
    assert clients["drA"].post("/DocumentReference", json=_doc_for("alice")).status_code == 403
    assert alice_writer.get("/DocumentReference/doc-alice-plain").status_code == 200  # still hers to read
    reopen = [{"op": "remove", "path": "/extension"}]
    assert alice_writer.patch("/Patient/alice", json=reopen, headers=JSON_PATCH).status_code == 200
    assert clients["drB"].get("/Patient/alice").status_code == 200


def test_capability_statement_declares_smart_security_and_read_only_traces(env):
    server, _, _ = env
    rest = httpx.get(f"{server.base}/metadata").json()["rest"][0]
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    audit = next(r for r in rest["resource"] if r["type"] == "AuditEvent")
    assert {i["code"] for i in audit["interaction"]} == {"read", "vread", "search-type"}


def test_an_ended_guardianship_or_role_counts_at_once(env):
    server, world, clients = env
    rita, system = clients["rita"], server.client("dpi", "system/*.cruds")
    assert rita.get("/Patient/dan").status_code == 200
    ended = {**world.items["RelatedPerson/rita"].resource, "active": False}
    assert system.put("/RelatedPerson/rita", json=ended).status_code == 200
    assert rita.get("/Patient/dan").status_code == 404
    assert system.put("/RelatedPerson/rita", json=world.items["RelatedPerson/rita"].resource).status_code == 200
    assert rita.get("/Patient/dan").status_code == 200
    drb = clients["drB"]
    assert drb.get("/Communication/msg-alice").status_code == 200  # as a member of org-a, its sender
    assert system.delete("/PractitionerRole/role-b").status_code == 204
    assert drb.get("/Communication/msg-alice").status_code == 404
    role = world.items["PractitionerRole/role-b"].resource
    assert system.put("/PractitionerRole/role-b", json=role).status_code in (200, 201)
    assert drb.get("/Communication/msg-alice").status_code == 200
