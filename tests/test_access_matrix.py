"""Who sees what, over real HTTP with real tokens: every role × every type × read, search, count,
_include, _revinclude, _has, chains and history, on a small world where documents are plain,
masked, hidden from the patient or from representatives, one patient blocks a professional and
one space is closed.

The expected answers come from ``access_world.sees``, written from docs/security.md independently of
``security/policy.py``: each world resource is annotated with its owner and participants.
"""

from __future__ import annotations

import httpx
import pytest
from access_world import (
    LABELS,
    PRINCIPALS,
    World,
    build_world,
    sees,
)

from fhir_server.french.visibility import TRE_A07
from fhir_server.security.trail import CLIENT_IDS


def _ids(bundle: dict, mode: str = "match") -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", mode) == mode}


def _expected(world: World, principal: str, rtype: str | None = None) -> set[str]:
    return {k for k, i in world.items.items()
            if (rtype is None or i.resource["resourceType"] == rtype) and sees(world, principal, i)}


TYPES = sorted({k.split("/")[0] for k in build_world().items})


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_reads_show_exactly_what_the_rules_allow(env, principal):
    _, world, clients = env
    for key, item in world.items.items():
        r = clients[principal].get(key)
        expected = 200 if sees(world, principal, item) else 404
        assert r.status_code == expected, f"{principal} reading {key}: {r.status_code} {r.text[:200]}"
        if expected == 200 and item.resource["resourceType"] != "Binary":
            assert r.json()["id"] == item.resource["id"]


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("rtype", TYPES)
def test_searches_and_counts_show_exactly_what_the_rules_allow(env, principal, rtype):
    _, world, clients = env
    r = clients[principal].get(f"/{rtype}", params={"_count": 500, "_total": "accurate"})
    assert r.status_code == 200, r.text
    expected = _expected(world, principal, rtype)
    assert _ids(r.json()) == expected, f"{principal} searching {rtype}"
    assert r.json()["total"] == len(expected)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_includes_and_revincludes_hide_the_same(env, principal):
    _, world, clients = env
    c = clients[principal]
    r = c.get("/Patient", params={"_revinclude": "DocumentReference:subject", "_count": 500}).json()
    assert _ids(r) == _expected(world, principal, "Patient")
    assert _ids(r, "include") == _expected(world, principal, "DocumentReference")
    r = c.get("/DocumentReference", params={"_include": "DocumentReference:subject", "_count": 500}).json()
    patients_of_docs = {f"Patient/{world.items[k].owner}" for k in _ids(r)}
    assert _ids(r, "include") == patients_of_docs & _expected(world, principal, "Patient")
    r = c.get("/Binary", params={"_include": "Binary:securitycontext", "_count": 500}).json()
    assert _ids(r, "include") <= _expected(world, principal, "DocumentReference")


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_chains_and_has_do_not_reveal_hidden_documents(env, principal):
    _, world, clients = env
    c = clients[principal]
    for label in LABELS:
        r = c.get("/Patient", params={"_has:DocumentReference:subject:security-label": f"{TRE_A07}|{label}"})
        owners = {f"Patient/{i.owner}" for i in world.items.values()
                  if label in i.labels and sees(world, principal, i)}
        assert _ids(r.json()) == owners & _expected(world, principal, "Patient"), f"{principal} _has {label}"
    r = c.get("/Binary", params={"securitycontext.security-label": f"{TRE_A07}|MASQUE_PS", "_count": 500})
    expected = {k for k in _expected(world, principal, "Binary")
                if world.items[k].context and "MASQUE_PS" in world.items[world.items[k].context].labels}
    assert _ids(r.json()) == expected


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_history_shows_only_visible_resources(env, principal):
    _, world, clients = env
    r = clients[principal].get("/_history", params={"_count": 1000})
    assert r.status_code == 200
    seen = {e["fullUrl"].split("/fhir/")[1].split("/_history")[0] for e in r.json().get("entry", [])}
    assert seen == _expected(world, principal)
    hidden = next(k for k, i in world.items.items() if not sees(world, principal, i)
                  and i.resource["resourceType"] == "DocumentReference") if principal != "system" else None
    if hidden:
        assert clients[principal].get(f"/{hidden}/_history").status_code == 404
        assert clients[principal].get(f"/{hidden}/_history/1").status_code == 404


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_access_to_patient_data_leaves_its_trace(env, principal):
    """Each read of a record's resource is in that patient's trail, allowed or refused; directory
    reads are nobody's record and leave none."""
    _, world, clients = env
    sub = PRINCIPALS[principal][0]
    agent = {"agent": sub} if "/" in sub else {"agent:identifier": f"{CLIENT_IDS}|{sub}"}
    before = _trail_ids(clients["system"], agent)
    reads = ["DocumentReference/doc-alice-plain", "DocumentReference/doc-bob-invisiblepatient",
             "Practitioner/drA", "Binary/bin-doc-dan-masqueps"]
    for key in reads:
        clients[principal].get(key)
    events = [e for e in _trail(clients["system"], agent) if e["id"] not in before]
    for key in reads:
        item = world.items[key]
        found = [e for e in events if any(x["what"]["reference"] == key for x in e["entity"])]
        if item.resource["resourceType"] == "Practitioner":
            assert not found, f"{principal}: a directory read left a trace"
            continue
        owner = item.owner or world.items[item.context].owner
        assert found, f"{principal}: no trace of reading {key}"
        assert {x["what"]["reference"] for x in found[-1]["entity"]} >= {f"Patient/{owner}", key}
        assert found[-1]["outcome"] == ("0" if sees(world, principal, item) else "4"), key


def _trail(client: httpx.Client, params: dict) -> list[dict]:
    r = client.get("/AuditEvent", params={**params, "_count": 1000})
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


def _trail_ids(client: httpx.Client, params: dict) -> set[str]:
    return {e["id"] for e in _trail(client, params)}
