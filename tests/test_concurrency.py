"""No lost update and race-free conditional create, with real concurrent clients.

Clients run in threads with their own connections; the second group of tests spreads them
over two server processes sharing one SQLite file, so the guarantee cannot come from the
event loop serialising requests.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import ProcessServer, patient, unique

WORKERS = 16


def _put_all(bases: list[str], path: str, body: dict, headers: dict) -> list[int]:
    def one(i: int) -> int:
        with httpx.Client(timeout=60) as c:
            return c.put(f"{bases[i % len(bases)]}{path}", json=body, headers=headers).status_code

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, range(WORKERS)))


def _create_all(bases: list[str], body: dict, if_none_exist: str) -> list[int]:
    def one(i: int) -> int:
        with httpx.Client(timeout=60) as c:
            r = c.post(f"{bases[i % len(bases)]}/Patient", json=body, headers={"If-None-Exist": if_none_exist})
            return r.status_code

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, range(WORKERS)))


def _check_if_match_race(bases: list[str]) -> None:
    created = httpx.post(f"{bases[0]}/Patient", json=patient()).json()
    statuses = _put_all(bases, f"/Patient/{created['id']}", {**created, "gender": "male"}, {"If-Match": 'W/"1"'})
    assert Counter(statuses) == {200: 1, 412: WORKERS - 1}
    assert httpx.get(f"{bases[0]}/Patient/{created['id']}").json()["meta"]["versionId"] == "2"


def _check_blind_updates_all_kept(bases: list[str]) -> None:
    created = httpx.post(f"{bases[0]}/Patient", json=patient()).json()
    statuses = _put_all(bases, f"/Patient/{created['id']}", created, {})
    assert statuses == [200] * WORKERS
    history = httpx.get(f"{bases[0]}/Patient/{created['id']}/_history", params={"_count": 100}).json()
    versions = sorted(int(e["response"]["etag"][3:-1]) for e in history["entry"])
    assert versions == list(range(1, WORKERS + 2))


def _check_conditional_create_once(bases: list[str]) -> None:
    ins = unique()
    statuses = _create_all(bases, patient(ins), f"identifier={ins}")
    assert Counter(statuses) == {201: 1, 200: WORKERS - 1}
    found = httpx.get(f"{bases[0]}/Patient", params={"identifier": ins}).json()
    assert len(found["entry"]) == 1


def test_if_match_race_has_exactly_one_winner(server):
    _check_if_match_race([server.base])


def test_blind_concurrent_updates_each_get_a_version(server):
    _check_blind_updates_all_kept([server.base])


def test_concurrent_conditional_creates_make_one_resource(server):
    _check_conditional_create_once([server.base])


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("shared-data")
    first, second = ProcessServer(data_dir).start(), ProcessServer(data_dir).start()
    yield [first.base, second.base]
    first.stop()
    second.stop()


def test_if_match_race_across_two_processes(two_processes):
    _check_if_match_race(two_processes)


def test_blind_updates_across_two_processes(two_processes):
    _check_blind_updates_all_kept(two_processes)


def test_conditional_create_across_two_processes(two_processes):
    _check_conditional_create_once(two_processes)
