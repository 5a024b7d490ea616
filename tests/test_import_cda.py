"""``POST [base]/DocumentReference/$import-cda`` over real HTTP: a CDA file filed in the DMP whole
or not at all — patient by INS, DocumentReference, original bytes, replacement, idempotency."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path

import httpx
import pytest
from cda_fixtures import billion_laughs, cda_document, replacement, spec
from conftest import ThreadServer

from cda.header import Ident
from cda.mapping import master_identifier

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
    unknown = client.post(IMPORT, content=cda_document(spec(seed=104, replaces="1.2.250.1.999.404")), headers=CDA)
    assert unknown.status_code == 422 and _details(unknown)[0][0] == "900"


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


@pytest.mark.skipif(not SHARED.is_dir(), reason="the ANS examples are in ../shared, absent here")
def test_the_ans_examples_are_filed_with_the_ans_schema(tmp_path):
    with ThreadServer(tmp_path, cda_xsd=str(SHARED / "xsd" / "CDA_extended.xsd")) as server, \
            httpx.Client(base_url=server.base, timeout=30) as c:
        answers = {p.name: c.post(IMPORT, content=p.read_bytes(), headers=CDA)
                   for p in sorted((SHARED / "examples").glob("*.xml"))}
        for name, r in answers.items():
            if name.startswith("IMG_CR_IMG"):  # replaces a document this DMP never had
                assert r.status_code == 422 and _details(r)[0][0] == "900", name
            else:
                assert r.status_code == 201, (name, r.text[:500])
        assert _count(c, "/Patient", identifier="urn:oid:1.2.250.1.213.1.4.10|279035121518989") == 1
