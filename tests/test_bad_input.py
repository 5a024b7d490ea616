"""Bad input gets a 4xx OperationOutcome — never a 500, a hang or a half-written record."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from conftest import FHIR_JSON, ThreadServer, patient, unique

HOSTILE_BODIES = [
    b"", b"null", b"42", b'"Patient"', b"[]", b"{}", b'{"resourceType":null}', b'{"resourceType":["Patient"]}',
    b'{"resourceType":"Patient","id":123}', b'{"resourceType":"Observation"}', b'{"resourceType":"Patient",}',
    b"\xff\xfe\x00garbage", b'{"resourceType":"Patient","name":"Dupont"}', b'{"resourceType":"Patient","name":[{}]}',
    b'{"resourceType":"Patient","active":"yes"}', b'{"resourceType":"Patient","birthDate":"1979-02-30"}',
    b'{"resourceType":"Patient","gender":"M"}', b'{"resourceType":"Patient","extension":[{"valueString":"x"}]}',
    b'{"resourceType":"Patient","multipleBirthInteger":1e999999}', b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000, b'{"resourceType":"Patient","text":{"status":"generated",'
    b'"div":"<div xmlns=\\"http://www.w3.org/1999/xhtml\\"><script>alert(1)</script></div>"}}',
]


def assert_clean_error(r, expected_status: int | None = None) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if expected_status is not None:
        assert r.status_code == expected_status, r.text[:300]
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_create_bodies(client, body):
    assert_clean_error(client.post("/Patient", content=body, headers={"Content-Type": FHIR_JSON}))


@pytest.mark.parametrize("body", HOSTILE_BODIES[:12], ids=range(12))
def test_hostile_bundle_and_update_bodies(client, body):
    assert_clean_error(client.post("", content=body, headers={"Content-Type": FHIR_JSON}))
    assert_clean_error(client.put("/Patient/x1", content=body, headers={"Content-Type": FHIR_JSON}))


@pytest.mark.parametrize("entries", [
    [1, 2], [{"request": "x"}], [{"request": {"method": "POST", "url": "Patient"}, "resource": []}],
    [{"request": {"method": "TRACE", "url": "Patient"}}], [{"request": {"method": "GET", "url": "a/b/c/d/e"}}],
    [{"request": {"method": "PUT", "url": "Patient/1"}, "resource": {"resourceType": "Patient", "id": "2"}}],
    [{"request": {"method": "POST", "url": "Patient", "ifNoneExist": "bogus=1"},
      "resource": {"resourceType": "Patient"}}],
    [{"request": {"method": "DELETE", "url": "Patient/1", "ifMatch": "nope"}}],
    [{"request": {"method": "PATCH", "url": "Patient/1"}, "resource": {"resourceType": "Patient"}}],
])
def test_hostile_transaction_entries(client, entries):
    r = client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert_clean_error(r)


@pytest.mark.parametrize(("method", "url", "headers"), [
    ("GET", "/Patient?_count=-1", {}), ("GET", "/Patient?_count=abc", {}), ("GET", "/Patient/_history?_since=x", {}),
    ("GET", "/Patient/x/_history/abc", {}), ("GET", "/Patient/" + "a" * 200, {}), ("GET", "/Patient/%C3%A9t%C3%A9", {}),
    ("GET", "/Nope", {}), ("GET", "/no/such/path/at/all/here", {}), ("OPTIONS", "/Patient", {}),
    ("PUT", "/Patient/x", {"If-Match": "garbage", "Content-Type": FHIR_JSON}),
    ("GET", "/Patient?identifier=a&_format=application/pdf", {}),
])
def test_hostile_requests(client, method, url, headers):
    body = json.dumps(patient(id="x")).encode() if method == "PUT" else None
    assert_clean_error(client.request(method, url, content=body, headers=headers))


def _mutations(seed: int, count: int):
    """Random damage to a valid Patient: dropped bytes, swapped types, odd values."""
    rng = random.Random(seed)
    valid = json.dumps(patient(ins="279035121518989", active=True, telecom=[{"system": "email", "value": "a@b.fr"}]))
    odd_values = ["null", "[]", "{}", '""', "true", "0", "-1", "1.5e400", '"\\ud800"', '"' + "x" * 300 + '"']
    for _ in range(count):
        text = valid
        if rng.random() < 0.5:
            cut = rng.randrange(len(text))
            text = text[:cut] + text[cut + rng.randrange(1, 5):]
        else:
            quote_positions = [i for i, ch in enumerate(text) if ch == ":"]
            pos = rng.choice(quote_positions) + 1
            end = pos
            while end < len(text) and text[end] not in ",}]":
                end += 1
            text = text[:pos] + rng.choice(odd_values) + text[end:]
        yield text.encode()


def test_random_damage_never_gives_500(tmp_path):
    accepted = 0
    with ThreadServer(tmp_path) as fresh, httpx.Client(base_url=fresh.base, timeout=30) as c:
        for body in _mutations(seed=7, count=150):
            r = c.post("/Patient", content=body, headers={"Content-Type": FHIR_JSON})
            assert r.status_code < 500, (body, r.text[:300])
            accepted += r.status_code == 201
        written = c.get("/_history", params={"_count": 1000}).json().get("entry", [])
    assert 0 < accepted < 150
    assert len(written) == accepted  # every refusal left nothing behind


def test_rejected_write_leaves_nothing(client):
    ins = unique()
    r = client.post("/Patient", json=patient(ins, gender="nope"))
    assert_clean_error(r, 400)
    assert r.json()["issue"][0]["expression"] == ["Patient.gender"]
    assert client.get("/Patient", params={"identifier": ins}).json().get("entry") is None
