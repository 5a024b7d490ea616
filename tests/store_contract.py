"""The Store contract: every backend (SQLite now, MongoDB later) must pass these tests.

A backend's test module subclasses ``StoreContract`` and provides a ``store`` fixture.
"""

from __future__ import annotations

import pytest

from fhir_server.store.base import IdCriterion, TokenCriterion, TokenEntry, VersionConflict

T1, T2, T3 = "2026-01-01T00:00:00.000000Z", "2026-01-02T00:00:00.000000Z", "2026-01-03T00:00:00.000000Z"


def put(store, id_, version, body=b'{"a":1}', when=T1, tokens=(), method="PUT"):
    with store.unit() as unit:
        return unit.put("Patient", id_, version, body, last_updated=when, method=method, tokens=list(tokens))


def token(code, system="urn:sys"):
    return TokenEntry("identifier", system, code)


def by_token(system, code):
    return [TokenCriterion("identifier", ((system, code),))]


class StoreContract:
    def test_put_then_read_and_vread(self, store):
        put(store, "p1", 1, b'{"v":1}')
        put(store, "p1", 2, b'{"v":2}', when=T2)
        current = store.read("Patient", "p1")
        assert (current.version, current.body, current.last_updated) == (2, b'{"v":2}', T2)
        assert store.vread("Patient", "p1", 1).body == b'{"v":1}'
        assert store.vread("Patient", "p1", 3) is None
        assert store.read("Patient", "nope") is None

    def test_bytes_are_kept_exactly(self, store):
        body = '{"name":"Hélène","x":1.50}'.encode()
        put(store, "bytes", 1, body)
        assert store.read("Patient", "bytes").body == body

    def test_version_must_follow_current(self, store):
        put(store, "p2", 1)
        with pytest.raises(VersionConflict):
            put(store, "p2", 1)
        with pytest.raises(VersionConflict):
            put(store, "p2", 3)
        with pytest.raises(VersionConflict):
            put(store, "new", 2)
        assert store.read("Patient", "p2").version == 1

    def test_unit_rolls_back_whole(self, store):
        with pytest.raises(RuntimeError), store.unit() as unit:
            unit.put("Patient", "r1", 1, b"{}", last_updated=T1, method="POST", tokens=[token("r1")])
            unit.put("Patient", "r2", 1, b"{}", last_updated=T1, method="POST", tokens=[])
            raise RuntimeError("boom")
        assert store.read("Patient", "r1") is None and store.read("Patient", "r2") is None
        assert store.find("Patient", by_token("urn:sys", "r1"), 10) == []
        assert store.history("Patient", "r1", since=None, before_seq=None, limit=10) == []

    def test_unit_sees_its_own_writes(self, store):
        with store.unit() as unit:
            unit.put("Patient", "own", 1, b"{}", last_updated=T1, method="POST", tokens=[token("own")])
            assert unit.read("Patient", "own").version == 1
            assert unit.find("Patient", by_token("urn:sys", "own"), 10) == ["own"]

    def test_delete_writes_tombstone(self, store):
        put(store, "d1", 1, tokens=[token("d1")])
        with store.unit() as unit:
            tomb = unit.delete("Patient", "d1", 2, last_updated=T2)
        assert tomb.deleted and tomb.version == 2 and tomb.body == b""
        assert store.read("Patient", "d1").deleted
        assert store.vread("Patient", "d1", 1).body == b'{"a":1}'
        assert store.find("Patient", by_token("urn:sys", "d1"), 10) == []
        put(store, "d1", 3, tokens=[token("d1")])
        assert [r.id for r in store.find("Patient", by_token("urn:sys", "d1"), 10)] == ["d1"]

    def test_token_matching_rules(self, store):
        put(store, "t1", 1, tokens=[token("A", "urn:s1")])
        put(store, "t2", 1, tokens=[TokenEntry("identifier", None, "A")])
        ids = lambda crit: sorted(r.id for r in store.find("Patient", crit, 10))  # noqa: E731
        assert ids(by_token("urn:s1", "A")) == ["t1"]
        assert ids(by_token(None, "A")) == ["t1", "t2"]
        assert ids(by_token("", "A")) == ["t2"]
        assert ids(by_token("urn:s1", None)) == ["t1"]
        assert ids([TokenCriterion("identifier", (("urn:s1", "A"), ("", "A")))]) == ["t1", "t2"]
        assert ids([IdCriterion(("t2", "zz"))]) == ["t2"]
        assert ids([IdCriterion(("t1", "t2")), *by_token("urn:s1", "A")]) == ["t1"]

    def test_index_follows_current_version(self, store):
        put(store, "i1", 1, tokens=[token("old")])
        put(store, "i1", 2, tokens=[token("new")])
        assert store.find("Patient", by_token("urn:sys", "old"), 10) == []
        assert [r.version for r in store.find("Patient", by_token("urn:sys", "new"), 10)] == [2]

    def test_find_pages_and_counts(self, store):
        for i in range(5):
            put(store, f"page{i}", 1, tokens=[token("paged")])
        crit = by_token("urn:sys", "paged")
        first, second = store.find("Patient", crit, 3, 0), store.find("Patient", crit, 3, 3)
        assert len(first) == 3 and len(second) == 2
        assert {r.id for r in first} | {r.id for r in second} == {f"page{i}" for i in range(5)}
        assert store.count("Patient", crit) == 5

    def test_history_newest_first_with_since_and_cursor(self, store):
        put(store, "h1", 1, when=T1, method="POST")
        put(store, "h1", 2, when=T2)
        put(store, "h2", 1, when=T3, method="POST")
        rows = store.history("Patient", None, since=None, before_seq=None, limit=10)
        assert [(r.id, r.version) for _, r in rows] == [("h2", 1), ("h1", 2), ("h1", 1)]
        assert [r.method for _, r in rows] == ["POST", "PUT", "POST"]
        assert [(r.id, r.version) for _, r in store.history("Patient", "h1", since=None, before_seq=None,
                                                            limit=10)] == [("h1", 2), ("h1", 1)]
        since = store.history("Patient", None, since=T2, before_seq=None, limit=10)
        assert [(r.id, r.version) for _, r in since] == [("h2", 1), ("h1", 2)]
        cursor = rows[0][0]
        assert [(r.id, r.version) for _, r in store.history("Patient", None, since=None, before_seq=cursor,
                                                            limit=1)] == [("h1", 2)]
        assert store.history(None, None, since=None, before_seq=None, limit=1)[0][1].id == "h2"

    def test_types_are_separate(self, store):
        put(store, "same", 1)
        with store.unit() as unit:
            unit.put("Practitioner", "same", 1, b'{"p":1}', last_updated=T1, method="POST", tokens=[])
        assert store.read("Practitioner", "same").body == b'{"p":1}'
        assert store.read("Patient", "same").body == b'{"a":1}'
        assert [r.id for r in store.iter_current("Practitioner")] == ["same"]
