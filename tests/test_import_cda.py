"""``POST [base]/DocumentReference/$import-cda`` over real HTTP: a CDA file filed in the DMP whole
or not at all — patient by INS, DocumentReference, original bytes, replacement, idempotency."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path

import httpx
import pytest
from conftest import ThreadServer

from cda.header import Ident
from cda.mapping import master_identifier
from fhir_server.french.ins import SYSTEM_RPPS
from fhir_server.french.visibility import TRE_A07
from fhir_server.security.devkeys import issue_dev_token
from fhir_server.synthetic_cda import billion_laughs, cda_document, replacement, spec

CDA = {"Content-Type": "application/hl7-cda+xml"}
IMPORT = "/DocumentReference/$import-cda"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cda"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("cda")) as server, httpx.Client(base_url=server.base, timeout=30) as c:
        yield c


def _details(response: httpx.Response) -> list[tuple[str | None, list[str]]]:
    """(DMP code, XPaths) of each issue of an OperationOutcome."""
    return [((i.get("details") or {}).get("coding", [{}])[0].get("code"), i.get("location", []))
            for i in response.json()["issue"]]


def _count(client: httpx.Client, path: str, **params) -> int:
    return client.get(path, params={**params, "_summary": "count"}).json()["total"]


def _identifier(s) -> str:
    master = master_identifier(Ident(s.doc_root, s.doc_extension))
    return f"{master['system']}|{master['value']}"


def test_a_cda_file_is_filed_with_its_patient_and_its_bytes_kept_unchanged(client):
    s = spec(seed=101)
    data = cda_document(s)
    r = client.post(IMPORT, content=data, headers=CDA)
    assert r.status_code == 201, r.text
    document = r.json()
    assert r.headers["Location"].endswith(f"/DocumentReference/{document['id']}/_history/1")
    patient = client.get(f"/{document['subject']['reference']}").json()
    assert {"system": f"urn:oid:{s.ins_root}", "value": s.ins} in [
        {k: i[k] for k in ("system", "value")} for i in patient["identifier"]]
    attachment = document["content"][0]["attachment"]
    raw = client.get(f"/{attachment['url']}", headers={"Accept": "*/*"})
    assert raw.status_code == 200 and raw.content == data and raw.headers["content-type"].startswith("text/xml")
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert attachment["size"] == len(data)
    found = client.get("/DocumentReference", params={"patient.identifier": f"urn:oid:{s.ins_root}|{s.ins}",
                                                     "status": "current"}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [document["id"]]


def test_the_capability_statement_offers_the_operation(client):
    resources = {r["type"]: r for r in client.get("/metadata").json()["rest"][0]["resource"]}
    assert [o["name"] for o in resources["DocumentReference"]["operation"]] == ["import-cda"]


def test_the_same_document_twice_is_one_document_reference(client):
    s = spec(seed=102)
    first = client.post(IMPORT, content=cda_document(s), headers=CDA)
    again = client.post(IMPORT, content=cda_document(s), headers={"Content-Type": "application/xml"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert _count(client, "/DocumentReference", identifier=_identifier(s)) == 1
    assert _count(client, "/Patient", identifier=f"urn:oid:{s.ins_root}|{s.ins}") == 1


def test_a_replacement_supersedes_the_document_it_replaces_in_the_same_write(client):
    parent = spec(seed=103)
    first = client.post(IMPORT, content=cda_document(parent), headers=CDA).json()
    second = client.post(IMPORT, content=cda_document(replacement(parent)), headers=CDA)
    assert second.status_code == 201, second.text
    relates = second.json()["relatesTo"][0]
    assert relates["code"] == "replaces" and relates["target"]["reference"] == f"DocumentReference/{first['id']}"
    assert client.get(f"/DocumentReference/{first['id']}").json()["status"] == "superseded"
    elsewhere = client.post(IMPORT, content=cda_document(spec(seed=104, replaces="1.2.250.1.999.404")), headers=CDA)
    assert elsewhere.status_code == 201  # replaces a document this DMP never had: related by identifier only
    assert elsewhere.json()["relatesTo"][0]["target"] == {"identifier": {
        "system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.999.404"}}


def test_ins_traits_that_contradict_the_known_patient_are_a_904_and_nothing_is_written(client):
    s = spec(seed=105)
    assert client.post(IMPORT, content=cda_document(s), headers=CDA).status_code == 201
    other = dataclasses.replace(s, doc_root=s.doc_root + ".9", birth_family="AUTRENOM")
    before = _count(client, "/DocumentReference")
    r = client.post(IMPORT, content=cda_document(other), headers=CDA)
    assert r.status_code == 422 and _details(r)[0] == ("904", ["/ClinicalDocument/recordTarget/patientRole/patient"])
    assert "AUTRENOM" in r.json()["issue"][0]["diagnostics"]
    assert _count(client, "/DocumentReference") == before
    accented = dataclasses.replace(s, doc_root=s.doc_root + ".10", birth_family=s.birth_family.lower())
    assert client.post(IMPORT, content=cda_document(accented), headers=CDA).status_code == 201  # case aside


def test_bad_documents_get_an_operation_outcome_with_xpaths_and_dmp_codes(client):
    before = _count(client, "/DocumentReference")
    no_ins = client.post(IMPORT, content=cda_document(ins=None, seed=106), headers=CDA)
    assert no_ins.status_code == 422 and ("903", ["/ClinicalDocument/recordTarget/patientRole/id"]) in _details(no_ins)
    good = spec(seed=107).ins
    bad_key = client.post(IMPORT, content=cda_document(seed=107, ins=good[:13] + ("00" if good[13:] != "00"
                                                                                   else "01")), headers=CDA)
    assert bad_key.status_code == 422 and any(code == "905" for code, _ in _details(bad_key))
    missing = client.post(IMPORT, content=cda_document(seed=108, omit=("custodian", "componentOf")), headers=CDA)
    assert missing.status_code == 400  # the CDA schema itself requires a custodian
    assert {tuple(x) for _, x in _details(missing)} >= {("/ClinicalDocument/custodian",),
                                                        ("/ClinicalDocument/componentOf",)}
    bomb = client.post(IMPORT, content=billion_laughs(), headers=CDA)
    assert bomb.status_code == 400 and bomb.json()["issue"][0]["code"] == "security"
    assert client.post(IMPORT, content=b"not xml at all", headers=CDA).status_code == 400
    wrong_type = client.post(IMPORT, content=cda_document(seed=109), headers={"Content-Type": "application/pdf"})
    assert wrong_type.status_code == 415
    assert _count(client, "/DocumentReference") == before


def test_a_deployment_may_refuse_documents_for_unknown_patients(tmp_path):
    with ThreadServer(tmp_path, cda_unknown_patients="refuse") as server, httpx.Client(base_url=server.base) as c:
        r = c.post(IMPORT, content=cda_document(seed=110), headers=CDA)
        assert r.status_code == 422 and _details(r)[0][0] == "902"
        assert _count(c, "/Patient") == 0


#: What the mapping table (FRENCH_STANDARDS.md §3.4) predicts for three ANS examples, read off the
#: documents by hand: (masterIdentifier value, type, class, date, author idNatPs, custodian idNatSt,
#: authenticator idNatPs, period start, period end, first event, facility type, practice setting,
#: format, title).
PREDICTED = {
    "DOC_NON_STRUCTURE_CDA-R2-N1.xml": (
        "urn:oid:1.3.6.1.4.1.19376.1.2.20.12345.1.1", "11502-2", "10", "2021-04-01T13:47:45+01:00",
        "801234534765", "1120459876", "807505123456", "2021-01-04T13:47:00+01:00", "2021-01-04T13:55:00+01:00",
        "18723-7", "SA07", "AMBULATOIRE", "urn:ihe:iti:xds-sd:pdf:2008", "Compte rendu d'examens biologiques"),
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml": (
        "urn:oid:1.2.250.1.213.1.1.1.45.2024.2.1", "18748-4", "10", "2021-01-08T11:17:00+01:00",
        "801234560801", "1750803447", "801234560801", "2021-01-08T10:25:00+01:00", "2021-01-08T11:17:00+01:00",
        "24727-0", "SA08", "AMBULATOIRE", "urn:ihe:iti:xds-sd:pdf:2008",
        "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection"),
    "LDL-SES_2022.01.xml": (
        "urn:oid:1.2.250.1.213.1.1.1.29.2022.1.1", "11490-0", "10", "2019-12-03T13:30:00+01:00",
        "801234567897", "1750803447", "801234567897", "2019-10-29T11:17:00+01:00", "2019-12-03T13:30:00+01:00",
        "IMP", "SA01", "ETABLISSEMENT", "urn:asipSante:modelesHorsProfils:2011",
        "Lettre de liaison à la sortie de l'établissement de santé"),
}


def _as_filed(document: dict) -> tuple:
    contained = {r["id"]: r for r in document["contained"]}

    def national_id(reference: str) -> str:
        resource = contained[reference[1:]]
        if resource["resourceType"] == "PractitionerRole":
            resource = contained[resource["practitioner"]["reference"][1:]]
        return resource["identifier"][0]["value"]

    context = document["context"]
    return (document["masterIdentifier"]["value"], document["type"]["coding"][0]["code"],
            document["category"][0]["coding"][0]["code"], document["date"],
            national_id(document["author"][0]["reference"]), national_id(document["custodian"]["reference"]),
            national_id(document["authenticator"]["reference"]), context["period"]["start"], context["period"]["end"],
            context["event"][0]["coding"][0]["code"], context["facilityType"]["coding"][0]["code"],
            context["practiceSetting"]["coding"][0]["code"], document["content"][0]["format"]["code"],
            document["content"][0]["attachment"]["title"])


@pytest.mark.skipif(not SHARED.is_dir(), reason="the ANS examples are in ../shared, absent here")
def test_every_ans_example_is_filed_with_the_metadata_the_mapping_predicts(tmp_path):
    with ThreadServer(tmp_path, cda_xsd=str(SHARED / "xsd" / "CDA_extended.xsd")) as server, \
            httpx.Client(base_url=server.base, timeout=30) as c:
        answers = {p.name: c.post(IMPORT, content=p.read_bytes(), headers=CDA)
                   for p in sorted((SHARED / "examples").glob("*.xml"))}
        assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 201)
        for name, predicted in PREDICTED.items():
            document = answers[name].json()
            assert _as_filed(document) == predicted, name
            assert document["securityLabel"][0]["coding"][0]["code"] == "N"
            assert document["content"][0]["attachment"]["language"] == "fr-FR"
            assert document["content"][0]["attachment"]["size"] == (SHARED / "examples" / name).stat().st_size
        formats = {name: r.json()["content"][0]["format"]["code"] for name, r in answers.items()}
        assert formats["BIO-CR-BIO_2024.01_TSH_1.xml"] == "urn:ihe:lab:xd-lab:2008"
        assert formats["eP-MED-DM_2024.01_PosoStruct.xml"] == "urn:ihe:pharm:pre:2010"
        relates = answers["IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"].json()["relatesTo"][0]
        assert relates["code"] == "replaces"
        assert relates["target"]["identifier"]["value"] == "urn:uuid:90e1c8ec-f951-4b26-a305-a34848818dd6"
        patients = c.get("/Patient", params={"identifier": "urn:oid:1.2.250.1.213.1.4.10|279035121518989"}).json()
        assert len(patients["entry"]) == 1  # one patient for the five documents
        patient = patients["entry"][0]["resource"]
        assert (patient["name"][0]["family"], patient["name"][0]["given"], patient["gender"], patient["birthDate"]) \
            == ("PAT-TROIS", ["DOMINIQUE"], "female", "1979-03-28")


def test_a_professional_replaces_only_the_documents_they_wrote(tmp_path):
    with ThreadServer(tmp_path, auth="on") as server:
        def client(sub: str, scope: str) -> httpx.Client:
            token = issue_dev_token(tmp_path, sub, scope, server.base)
            return httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

        parent = spec(seed=130)
        system = client("dpi", "system/*.cruds")
        ids = {}
        for who, rpps in (("author", parent.author_rpps), ("stranger", "10003456789")):
            practitioner = {"resourceType": "Practitioner", "identifier": [{"system": SYSTEM_RPPS, "value": rpps}]}
            ids[who] = system.post("/Practitioner", json=practitioner).json()["id"]
        author = client(f"Practitioner/{ids['author']}", "user/*.cruds")
        stranger = client(f"Practitioner/{ids['stranger']}", "user/*.cruds")
        first = author.post(IMPORT, content=cda_document(parent), headers=CDA)
        assert first.status_code == 201, first.text
        refused = stranger.post(IMPORT, content=cda_document(replacement(parent)), headers=CDA)
        assert refused.status_code == 403 and "901" in refused.text
        assert system.get(f"/DocumentReference/{first.json()['id']}").json()["status"] == "current"
        assert _count(system, "/DocumentReference") == 1  # the refused replacement left nothing behind
        replaced = author.post(IMPORT, content=cda_document(replacement(parent)), headers=CDA)
        assert replaced.status_code == 201, replaced.text
        assert system.get(f"/DocumentReference/{first.json()['id']}").json()["status"] == "superseded"


def test_a_blocked_professional_neither_duplicates_the_patient_nor_a_masked_document(tmp_path):
    with ThreadServer(tmp_path, auth="on") as server:
        def client(sub: str, scope: str) -> httpx.Client:
            token = issue_dev_token(tmp_path, sub, scope, server.base)
            return httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

        system = client("dpi", "system/*.cruds")
        s = spec(seed=140)
        first = system.post(IMPORT, content=cda_document(s), headers=CDA).json()
        patient_id = first["subject"]["reference"].split("/")[1]
        ids = [system.post("/Practitioner", json={"resourceType": "Practitioner",
                                                  "identifier": [{"system": SYSTEM_RPPS, "value": rpps}]}).json()["id"]
               for rpps in ("10003456789", "10004567890")]
        blocked, other = (client(f"Practitioner/{i}", "user/*.cruds") for i in ids)
        consent = {"resourceType": "Consent", "status": "active", "patient": {"reference": f"Patient/{patient_id}"},
                   "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                         "code": "patient-privacy"}]},
                   "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                   "provision": {"type": "deny", "actor": [{"role": {"coding": [{
                       "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
                       "reference": {"reference": f"Practitioner/{ids[0]}"}}]}}
        assert system.post("/Consent", json=consent).status_code == 201
        new = dataclasses.replace(s, doc_root=s.doc_root + ".2")
        refused = blocked.post(IMPORT, content=cda_document(new), headers=CDA)
        assert refused.status_code == 403, refused.text
        assert _count(system, "/Patient", identifier=f"urn:oid:{s.ins_root}|{s.ins}") == 1  # no second patient
        masked = [{"op": "add", "path": "/securityLabel/-", "value": {"coding": [{"system": TRE_A07,
                                                                                  "code": "MASQUE_PS"}]}}]
        assert system.patch(f"/DocumentReference/{first['id']}", json=masked,
                            headers={"Content-Type": "application/json-patch+json"}).status_code == 200
        again = other.post(IMPORT, content=cda_document(s), headers=CDA)
        assert again.status_code == 409, again.text  # filed already, hidden from them: not filed twice
        assert _count(system, "/DocumentReference") == 1
