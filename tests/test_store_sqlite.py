"""The SQLite backend against the Store contract, on a real file."""

from __future__ import annotations

import pytest
from store_contract import StoreContract

from fhir_server.search.conditions import Compare
from fhir_server.store.base import BadPosition
from fhir_server.store.query import Chain, Has, IdIn, IndexEntry, Match, Negate, SortKey
from fhir_server.store.sqlite import COMMON_TEXT, SqliteStore, _common_text


@pytest.fixture()
def store(tmp_path):
    s = SqliteStore(tmp_path / "contract.sqlite3")
    yield s
    s.close()


class TestSqliteStore(StoreContract):
    def test_data_survives_reopen(self, tmp_path):
        path = tmp_path / "reopen.sqlite3"
        first = SqliteStore(path)
        with first.unit() as unit:
            unit.put("Patient", "x", 1, b"{}", last_updated="2026-01-01T00:00:00.000000Z", method="POST", entries=[])
        first.close()
        second = SqliteStore(path)
        assert second.read("Patient", "x").version == 1
        second.close()


def _names(store, count: int) -> None:
    """Patients p00000… with family names durand<i> / martin<i>; every third also given "Martine"."""
    with store.unit() as unit:
        for i in range(count):
            family = "martin" if i % 2 else "durand"
            entries = [IndexEntry("string", "name", (f"{family}{i}", family))]
            if i % 3 == 0:
                entries.append(IndexEntry("string", "name", ("martine", "Martine")))
            unit.put("Patient", f"p{i:05d}", 1, b"{}", last_updated="2026-01-01T00:00:00.000000Z", method="POST",
                     entries=entries)


def _walk(store, clauses, limit: int) -> list[str]:
    walked, after = [], None
    while page := store.page("Patient", clauses, limit=limit, after=after):
        walked += [r.id for r, _ in page]
        after = page[-1][1]
    return walked


def test_text_prefix_pages_follow_the_text_index_each_resource_once(store):
    """Unsorted ``name=mar``: pages in (folded text, id) order, stopping when full; no repeats."""
    _names(store, 40)
    martins = Match("string", "name", Compare("norm", "prefix", "mar"))
    expected = {f"p{i:05d}" for i in range(40) if i % 2 or i % 3 == 0}
    walked = _walk(store, [martins], limit=4)
    assert len(walked) == len(set(walked)) and set(walked) == expected
    first = store.page("Patient", [martins], limit=3)
    assert [r.id for r, _ in first] == ["p00001", "p00011", "p00013"]  # martin1, martin11… in text order
    assert [position[0] for _, position in first] == ["martin1", "martin11", "martin13"]
    back = store.page("Patient", [martins], limit=2, before=store.page("Patient", [martins], limit=3)[2][1])
    assert [r.id for r, _ in back] == ["p00001", "p00011"]
    with pytest.raises(BadPosition):
        store.page("Patient", [martins], limit=3, after=("p00002",))  # an id-order position


def test_text_order_keeps_other_clauses_and_leaves_sorted_searches_alone(store):
    _names(store, 40)
    martins = Match("string", "name", Compare("norm", "prefix", "mar"))
    skip = Negate(IdIn(("p00011",)))
    assert [r.id for r in store.find("Patient", [martins, skip], limit=2)] == ["p00001", "p00013"]
    by_id = (SortKey("_id", "_id"),)
    assert [r.id for r in store.find("Patient", [martins], limit=3, sort=by_id)] == ["p00000", "p00001", "p00003"]


def test_common_contains_is_scanned_in_id_order_with_the_same_results(store):
    """A ``:contains`` text matching ≥ COMMON_TEXT entries probes in id order instead of driving."""
    _names(store, COMMON_TEXT + 50)
    everyone = Match("string", "name", Compare("norm", "contains", "r"))
    rare = Match("string", "name", Compare("norm", "contains", "in101"))
    conn = store._reader()
    assert _common_text(conn, "Patient", rare) is False
    assert _common_text(conn, "Patient", everyone) is True
    assert [r.id for r in store.find("Patient", [everyone], limit=3)] == ["p00000", "p00001", "p00002"]
    assert [r.id for r, _ in store.page("Patient", [everyone], limit=2, after=("p00002",))] == ["p00003", "p00004"]
    assert [r.id for r in store.find("Patient", [rare], limit=5)] == ["p00101"]


# -- read verdicts: remembered, never stale -------------------------------------------------------

WHEN = "2026-01-01T00:00:00.000000Z"
#: What a professional's read of a document asks, in small: its patient is live, the space is not
#: closed and no Consent of that patient names the reader; the document itself is not masked.
REACHABLE = (Negate(Match("date", "space-closed")),
             Negate(Has("Consent", "patient", (Match("reference", "actor", Compare("target_id", "=", "dr")),))))
VISIBLE = (Chain("subject", "Patient", REACHABLE), Negate(Match("token", "security-label", Compare("code", "=", "M"))))


def _write(store, type_, id_, entries=(), delete=False):
    with store.unit() as unit:
        current = unit.read(type_, id_)
        version = current.version + 1 if current else 1
        if delete:
            unit.delete(type_, id_, version, last_updated=WHEN)
        else:
            unit.put(type_, id_, version, b"{}", last_updated=WHEN, method="PUT", entries=list(entries))


def _world(store):
    _write(store, "Patient", "pat")
    _write(store, "DocumentReference", "doc", [IndexEntry("reference", "subject", ("Patient", "pat", None, None))])


def _verdict(store) -> bool:
    """The document read twice with the same clauses (the second answer may be a remembered one)."""
    first, second = store.read_where("DocumentReference", "doc", VISIBLE), store.read_where(
        "DocumentReference", "doc", VISIBLE)
    assert first[1] == second[1]
    return second[1]


CLOSED = [IndexEntry("date", "space-closed", ("2026-01-01T00:00:00", "2026-01-01T23:59:59"))]
BLOCK = [IndexEntry("reference", "patient", ("Patient", "pat", None, None)),
         IndexEntry("reference", "actor", ("Practitioner", "dr", None, None))]


def test_a_remembered_read_verdict_follows_every_write_to_what_its_clauses_reach(store):
    """Each write — to the chained Patient, to a Consent found through ``_has``, to the document
    itself — changes the very next read's answer, with the same clause tuple each time."""
    _world(store)
    assert _verdict(store) is True
    _write(store, "Patient", "pat", CLOSED)
    assert _verdict(store) is False
    _write(store, "Patient", "pat")
    assert _verdict(store) is True
    _write(store, "Consent", "block", BLOCK)
    assert _verdict(store) is False
    _write(store, "Consent", "block", delete=True)
    assert _verdict(store) is True
    _write(store, "DocumentReference", "doc", [IndexEntry("reference", "subject", ("Patient", "pat", None, None)),
                                               IndexEntry("token", "security-label", (None, "M", None))])
    assert _verdict(store) is False
    _write(store, "DocumentReference", "doc", [IndexEntry("reference", "subject", ("Patient", "pat", None, None))])
    assert _verdict(store) is True
    _write(store, "Patient", "pat", delete=True)
    assert _verdict(store) is False


def test_a_remembered_read_verdict_follows_another_store_s_writes_on_the_same_file(tmp_path):
    """Two stores on one file (as two server processes are): what one writes, the other's very
    next read answers by."""
    reading, writing = SqliteStore(tmp_path / "shared.sqlite3"), SqliteStore(tmp_path / "shared.sqlite3")
    try:
        _world(writing)
        assert _verdict(reading) is True
        _write(writing, "Consent", "block", BLOCK)
        assert _verdict(reading) is False
        _write(writing, "Consent", "block", delete=True)
        assert _verdict(reading) is True
        _write(writing, "Patient", "pat", CLOSED)
        assert _verdict(reading) is False
        _write(writing, "Patient", "pat")
        assert _verdict(reading) is True
    finally:
        reading.close()
        writing.close()
