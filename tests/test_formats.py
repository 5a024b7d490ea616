"""JSON and XML in and out, _format, _pretty, raw Binary, and the errors bad bodies get."""

from __future__ import annotations

import base64

import httpx
from conftest import FHIR_JSON, ThreadServer, patient
from lxml import etree

FHIR_XML = "application/fhir+xml"
NS = "{http://hl7.org/fhir}"

PATIENT_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <identifier><system value="urn:oid:1.2.250.1.213.1.4.10"/><value value="248092A12345678"/></identifier>
  <name><family value="Ch\xc3\xa2teau"/><given value="Zo\xc3\xab"/></name>
  <gender value="female"/>
  <birthDate value="2012-05-01"/>
</Patient>"""


def test_xml_in_json_out(client):
    r = client.post("/Patient", content=PATIENT_XML, headers={"Content-Type": FHIR_XML})
    assert r.status_code == 201, r.text
    assert r.json()["name"][0]["family"] == "Château"


def test_json_in_xml_out_by_accept_and_by_format(client):
    created = client.post("/Patient", json=patient()).json()
    r = client.get(f"/Patient/{created['id']}", headers={"Accept": FHIR_XML})
    assert r.headers["content-type"].startswith(FHIR_XML)
    root = etree.fromstring(r.content)
    assert root.tag == f"{NS}Patient"
    assert root.find(f"{NS}gender").get("value") == "female"
    by_param = client.get(f"/Patient/{created['id']}", params={"_format": "xml"}, headers={"Accept": FHIR_JSON})
    assert by_param.headers["content-type"].startswith(FHIR_XML)
    json_wins = client.get(f"/Patient/{created['id']}", params={"_format": "json"}, headers={"Accept": FHIR_XML})
    assert json_wins.json()["id"] == created["id"]


def test_xml_round_trip_through_the_server(client):
    created = client.post("/Patient", content=PATIENT_XML, headers={"Content-Type": FHIR_XML,
                                                                      "Accept": FHIR_XML})
    assert created.status_code == 201
    root = etree.fromstring(created.content)
    assert root.find(f"{NS}name/{NS}given").get("value") == "Zoë"


def test_pretty_output(client):
    created = client.post("/Patient", json=patient()).json()
    compact = client.get(f"/Patient/{created['id']}")
    pretty = client.get(f"/Patient/{created['id']}", params={"_pretty": "true"})
    assert b"\n" not in compact.content
    assert b'\n  "id"' in pretty.content
    assert pretty.json() == compact.json()


def test_bundle_in_xml(client):
    created = client.post("/Patient", json=patient()).json()
    r = client.get("/Patient", params={"_id": created["id"], "_format": "xml"})
    root = etree.fromstring(r.content)
    assert root.tag == f"{NS}Bundle"
    assert root.find(f"{NS}entry/{NS}resource/{NS}Patient/{NS}id").get("value") == created["id"]


def test_unsupported_format_and_content_type(client):
    assert client.get("/metadata", params={"_format": "text/csv"}).status_code == 406
    r = client.post("/Patient", content=b"family=Dupont", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["resourceType"] == "OperationOutcome"


def test_malformed_bodies_are_400(client):
    for body, media in ((b'{"resourceType": "Patient",', FHIR_JSON), (b"<Patient", FHIR_XML),
                        (b"[1, 2]", FHIR_JSON), (b"", FHIR_JSON), (b'{"resourceType":"Patient","x":NaN}', FHIR_JSON)):
        r = client.post("/Patient", content=body, headers={"Content-Type": media})
        assert r.status_code == 400, (body, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"


def test_xml_entities_are_refused(client):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b'<Patient xmlns="http://hl7.org/fhir"><gender value="&lol2;"/></Patient>')
    assert client.post("/Patient", content=bomb, headers={"Content-Type": FHIR_XML}).status_code == 400
    xxe = (b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<Patient xmlns="http://hl7.org/fhir"><gender value="&x;"/></Patient>')
    assert client.post("/Patient", content=xxe, headers={"Content-Type": FHIR_XML}).status_code == 400


def test_body_over_the_limit_is_413(tmp_path):
    with ThreadServer(tmp_path, max_body_bytes=2000) as small:
        big = patient(name=[{"family": "x" * 5000}])
        r = httpx.post(f"{small.base}/Patient", json=big)
        assert r.status_code == 413
        assert r.json()["resourceType"] == "OperationOutcome"
        assert httpx.post(f"{small.base}/Patient", json=patient()).status_code == 201


def test_binary_raw_content_in_and_out(client):
    pdf = b"%PDF-1.4\n% fake but binary \xff\xfe\n%%EOF\n"
    r = client.post("/Binary", content=pdf, headers={"Content-Type": "application/pdf"})
    assert r.status_code == 201, r.text
    binary_id = r.json()["id"]
    raw = client.get(f"/Binary/{binary_id}", headers={"Accept": "*/*"})
    assert raw.headers["content-type"] == "application/pdf"
    assert raw.content == pdf
    as_resource = client.get(f"/Binary/{binary_id}", headers={"Accept": FHIR_JSON}).json()
    assert as_resource["contentType"] == "application/pdf"
    assert base64.b64decode(as_resource["data"]) == pdf


def test_binary_as_fhir_resource(client):
    binary = {"resourceType": "Binary", "contentType": "text/plain", "data": base64.b64encode(b"bonjour").decode()}
    r = client.post("/Binary", json=binary)
    assert r.status_code == 201
    raw = client.get(f"/Binary/{r.json()['id']}", headers={"Accept": "text/plain"})
    assert raw.content == b"bonjour"
    assert raw.headers["content-type"].startswith("text/plain")


def test_binary_raw_update(client):
    r = client.put("/Binary/raw-doc-1", content=b"v1", headers={"Content-Type": "text/plain"})
    assert r.status_code in (200, 201)
    r = client.put("/Binary/raw-doc-1", content=b"v2", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    assert client.get("/Binary/raw-doc-1", headers={"Accept": "*/*"}).content == b"v2"
