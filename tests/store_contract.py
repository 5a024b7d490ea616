"""The Store contract: every backend (SQLite now, MongoDB later) must pass these tests.

A backend's test module subclasses ``StoreContract`` and provides a ``store`` fixture.
"""

from __future__ import annotations

import pytest

from fhir_server.search.conditions import Compare, all_of, any_of
from fhir_server.store.base import VersionConflict
from fhir_server.store.query import Chain, Either, Has, IdIn, IndexEntry, Match, Negate, SortKey

T1, T2, T3 = "2026-01-01T00:00:00.000000Z", "2026-01-02T00:00:00.000000Z", "2026-01-03T00:00:00.000000Z"


def put(store, id_, version, body=b'{"a":1}', when=T1, tokens=(), method="PUT", type_="Patient"):
    with store.unit() as unit:
        return unit.put(type_, id_, version, body, last_updated=when, method=method, entries=list(tokens))


def token(code, system="urn:sys"):
    return IndexEntry("token", "identifier", (system, code, None))


def token_cond(system, code):
    parts = []
    if code is not None:
        parts.append(Compare("code", "=", code))
    if system is not None:
        parts.append(Compare("system", "=", system or None))
    return all_of(*parts)


def by_token(system, code):
    return [Match("token", "identifier", token_cond(system, code))]


def ids(store, clauses, type_="Patient", **kw):
    return [r.id for r in store.find(type_, clauses, limit=100, **kw)]


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
            unit.put("Patient", "r1", 1, b"{}", last_updated=T1, method="POST", entries=[token("r1")])
            unit.put("Patient", "r2", 1, b"{}", last_updated=T1, method="POST", entries=[])
            raise RuntimeError("boom")
        assert store.read("Patient", "r1") is None and store.read("Patient", "r2") is None
        assert ids(store, by_token("urn:sys", "r1")) == []
        assert store.history("Patient", "r1", since=None, before_seq=None, limit=10) == []

    def test_unit_sees_its_own_writes(self, store):
        with store.unit() as unit:
            unit.put("Patient", "own", 1, b"{}", last_updated=T1, method="POST", entries=[token("own")])
            assert unit.read("Patient", "own").version == 1
            assert unit.find("Patient", by_token("urn:sys", "own"), 10) == ["own"]

    def test_receipts_are_kept_with_their_unit_only(self, store):
        with store.unit() as unit:
            assert unit.receipt("mllp", "APP|FAC", "42") is None
            unit.keep_receipt("mllp", "APP|FAC", "42", b"MSA|AA|42", at=T1)
        with pytest.raises(RuntimeError), store.unit() as unit:
            unit.keep_receipt("mllp", "APP|FAC", "43", b"MSA|AA|43", at=T1)
            raise RuntimeError("rolled back")
        with store.unit() as unit:
            assert unit.receipt("mllp", "APP|FAC", "42") == b"MSA|AA|42"
            assert unit.receipt("mllp", "APP|FAC", "43") is None  # its unit rolled back
            assert unit.receipt("mllp", "OTHER|FAC", "42") is None  # a control id is unique per sender
            assert unit.receipt("smtp", "APP|FAC", "42") is None

    def test_delete_writes_tombstone(self, store):
        put(store, "d1", 1, tokens=[token("d1")])
        with store.unit() as unit:
            tomb = unit.delete("Patient", "d1", 2, last_updated=T2)
        assert tomb.deleted and tomb.version == 2 and tomb.body == b""
        assert store.read("Patient", "d1").deleted
        assert store.vread("Patient", "d1", 1).body == b'{"a":1}'
        assert ids(store, by_token("urn:sys", "d1")) == []
        put(store, "d1", 3, tokens=[token("d1")])
        assert ids(store, by_token("urn:sys", "d1")) == ["d1"]

    def test_token_matching_rules(self, store):
        put(store, "t1", 1, tokens=[token("A", "urn:s1")])
        put(store, "t2", 1, tokens=[IndexEntry("token", "identifier", (None, "A", None))])
        assert ids(store, by_token("urn:s1", "A")) == ["t1"]
        assert ids(store, by_token(None, "A")) == ["t1", "t2"]
        assert ids(store, [Match("token", "identifier", all_of(Compare("code", "=", "A"),
                                                                 Compare("system", "=", None)))]) == ["t2"]
        assert ids(store, by_token("urn:s1", None)) == ["t1"]
        assert ids(store, [Match("token", "identifier", any_of(token_cond("urn:s1", "A"),
                                                                 Compare("system", "=", None)))]) == ["t1", "t2"]
        assert ids(store, [IdIn(("t2", "zz"))]) == ["t2"]
        assert ids(store, [IdIn(("t1", "t2")), *by_token("urn:s1", "A")]) == ["t1"]
        assert ids(store, [Negate(Match("token", "identifier", token_cond("urn:s1", "A")))]) == ["t2"]
        assert ids(store, [Either((IdIn(("t1",)), IdIn(("t2",))))]) == ["t1", "t2"]

    def test_index_follows_current_version(self, store):
        put(store, "i1", 1, tokens=[token("old")])
        put(store, "i1", 2, tokens=[token("new")])
        assert ids(store, by_token("urn:sys", "old")) == []
        assert [r.version for r in store.find("Patient", by_token("urn:sys", "new"), limit=10)] == [2]

    def test_every_index_kind_round_trips(self, store):
        entries = [IndexEntry("string", "name", ("helene", "Hélène")),
                   IndexEntry("date", "birthdate", ("1979-03-04T23:00:00.000000Z", "1979-03-05T23:00:00.000000Z")),
                   IndexEntry("number", "n", (3, 2.5, 3.5)),
                   IndexEntry("quantity", "q", ("http://unitsofmeasure.org", "kg", "kg", 70, 69.5, 70.5)),
                   IndexEntry("reference", "link", ("Patient", "other", None, None)),
                   IndexEntry("uri", "_profile", ("http://example.org/p",))]
        put(store, "all", 1, tokens=entries)
        assert ids(store, [Match("string", "name", Compare("norm", "prefix", "hel"))]) == ["all"]
        assert ids(store, [Match("string", "name", Compare("norm", "contains", "len"))]) == ["all"]
        assert ids(store, [Match("string", "name", Compare("raw", "=", "Hélène"))]) == ["all"]
        assert ids(store, [Match("string", "name", Compare("norm", "prefix", "x%"))]) == []
        assert ids(store, [Match("date", "birthdate", Compare("low", "<", "1980"))]) == ["all"]
        assert ids(store, [Match("number", "n", Compare("value", ">", 2))]) == ["all"]
        assert ids(store, [Match("quantity", "q", all_of(Compare("code", "=", "kg"), Compare("low", "<=", 70)))]) \
            == ["all"]
        assert ids(store, [Match("reference", "link", Compare("target_id", "=", "other"))]) == ["all"]
        assert ids(store, [Match("uri", "_profile", Compare("uri", "=", "http://example.org/p"))]) == ["all"]
        assert ids(store, [Match("uri", "_profile")]) == ["all"]
        assert ids(store, [Negate(Match("token", "gender"))]) == ["all"]

    def test_chain_and_has(self, store):
        put(store, "pat", 1, tokens=[IndexEntry("string", "family", ("martin", "Martin"))])
        put(store, "doc", 1, type_="DocumentReference",
            tokens=[IndexEntry("reference", "subject", ("Patient", "pat", None, None))])
        martin = (Match("string", "family", Compare("norm", "=", "martin")),)
        assert ids(store, [Chain("subject", "Patient", martin)], "DocumentReference") == ["doc"]
        assert ids(store, [Chain("subject", "Patient", (IdIn(("nobody",)),))], "DocumentReference") == []
        assert ids(store, [Has("DocumentReference", "subject", (IdIn(("doc",)),))]) == ["pat"]
        assert ids(store, [Has("DocumentReference", "subject", (IdIn(("other",)),))]) == []

    def test_read_where_reads_and_checks_in_one(self, store):
        put(store, "w1", 1, tokens=[token("A")])
        put(store, "w2", 1, tokens=[token("A")])
        with store.unit() as unit:
            unit.delete("Patient", "w2", 2, last_updated=T2)
        record, matches = store.read_where("Patient", "w1", tuple(by_token("urn:sys", "A")))
        assert record.id == "w1" and matches
        assert store.read_where("Patient", "w1", tuple(by_token("urn:sys", "B")))[1] is False
        assert store.read_where("Patient", "w1", ())[1] is True
        gone, matches = store.read_where("Patient", "w2", tuple(by_token("urn:sys", "A")))
        assert gone.deleted and not matches  # a tombstone satisfies nothing
        assert store.read_where("Patient", "nobody", ()) == (None, False)

    def test_find_pages_sorts_and_counts(self, store):
        for i in range(5):
            put(store, f"page{i}", 1, tokens=[token("paged"), IndexEntry("string", "family", (f"n{4 - i}", "x"))])
        put(store, "nameless", 1, tokens=[token("paged")])
        crit = by_token("urn:sys", "paged")
        assert store.count("Patient", crit) == 6
        assert ids(store, crit) == ["nameless", "page0", "page1", "page2", "page3", "page4"]
        by_name = (SortKey("string", "family"),)
        assert ids(store, crit, sort=by_name) == ["page4", "page3", "page2", "page1", "page0", "nameless"]
        descending = (SortKey("string", "family", descending=True),)
        assert ids(store, crit, sort=descending) == ["page0", "page1", "page2", "page3", "page4", "nameless"]

    def test_keyset_pages_walk_every_order_once(self, store):
        for i in range(7):
            put(store, f"k{i}", 1, tokens=[token("keyset")] + ([IndexEntry("string", "family", (f"n{i % 3}", "x"))]
                                                               if i != 3 else []))
        crit = by_token("urn:sys", "keyset")
        for sort in ((), (SortKey("string", "family"),), (SortKey("string", "family", descending=True),)):
            full = [r.id for r, _ in store.page("Patient", crit, limit=100, sort=sort)]
            walked, after = [], None
            while True:
                page = store.page("Patient", crit, limit=2, sort=sort, after=after)
                if not page:
                    break
                walked += [r.id for r, _ in page]
                after = page[-1][1]
            assert walked == full, sort
            last_two = store.page("Patient", crit, limit=2, sort=sort, before=store.page(
                "Patient", crit, limit=100, sort=sort)[-1][1])
            assert [r.id for r, _ in last_two] == full[-3:-1], sort

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
            unit.put("Practitioner", "same", 1, b'{"p":1}', last_updated=T1, method="POST", entries=[])
        assert store.read("Practitioner", "same").body == b'{"p":1}'
        assert store.read("Patient", "same").body == b'{"a":1}'
        assert [r.id for r in store.find("Practitioner", [], limit=10)] == ["same"]
