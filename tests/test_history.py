"""history at instance, type and system level, with _since, _count and stable next links."""

from __future__ import annotations

import time

from conftest import patient, unique


def test_instance_history_newest_first_with_methods(client):
    created = client.post("/Patient", json=patient()).json()
    url = f"/Patient/{created['id']}"
    client.put(url, json={**created, "gender": "male"})
    client.delete(url)
    h = client.get(f"{url}/_history").json()
    assert h["type"] == "history"
    assert [e["request"]["method"] for e in h["entry"]] == ["DELETE", "PUT", "POST"]
    assert [e["response"]["etag"] for e in h["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert "resource" not in h["entry"][0]
    assert h["entry"][1]["resource"]["gender"] == "male"


def test_instance_history_of_unknown_is_404(client):
    assert client.get(f"/Patient/{unique()}/_history").status_code == 404


def test_type_and_system_history_include_new_writes(client):
    for _ in range(5):
        client.post("/Patient", json=patient())
    created = client.post("/Practitioner", json={"resourceType": "Practitioner",
                                                 "name": [{"family": unique()}]}).json()
    type_ids = [e["resource"]["id"] for e in client.get("/Practitioner/_history").json()["entry"]]
    assert created["id"] in type_ids
    system = client.get("/_history", params={"_count": 5}).json()
    assert len(system["entry"]) == 5
    assert system["entry"][0]["resource"]["id"] == created["id"]  # newest first, all types


def test_since_filters_older_versions(client):
    old = client.post("/Patient", json=patient()).json()
    time.sleep(0.01)
    marker = client.post("/Patient", json=patient()).json()["meta"]["lastUpdated"]
    newer = client.post("/Patient", json=patient()).json()
    ids = [e["resource"]["id"] for e in client.get("/Patient/_history", params={"_since": marker}).json()["entry"]]
    assert newer["id"] in ids
    assert old["id"] not in ids


def test_count_and_next_links_walk_every_version_once(client):
    created = client.post("/Patient", json=patient()).json()
    url = f"/Patient/{created['id']}"
    for gender in ("male", "female", "other", "unknown", "male"):
        client.put(url, json={**created, "gender": gender})
    seen, page = [], client.get(f"{url}/_history", params={"_count": 2}).json()
    while True:
        seen += [e["response"]["etag"] for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            break
        client.put(url, json={**created, "gender": "female"})  # writes during paging must not shift pages
        page = client.get(nxt[0]).json()
    assert seen == [f'W/"{v}"' for v in range(6, 0, -1)]


def test_bad_since_is_400(client):
    assert client.get("/Patient/_history", params={"_since": "yesterday"}).status_code == 400
