"""The SQLite backend against the Store contract, on a real file."""

from __future__ import annotations

import pytest
from store_contract import StoreContract

from fhir_server.store.sqlite import SqliteStore


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


def test_common_prefix_is_scanned_in_id_order_with_the_same_results(store):
    """Above COMMON_TEXT matches the string clause probes instead of driving: same pages."""
    from fhir_server.search.conditions import Compare
    from fhir_server.store.query import IndexEntry, Match
    from fhir_server.store.sqlite import COMMON_TEXT, _common_text

    with store.unit() as unit:
        for i in range(COMMON_TEXT + 50):
            family = "martin" if i % 2 else "durand"
            unit.put("Patient", f"p{i:05d}", 1, b"{}", last_updated="2026-01-01T00:00:00.000000Z", method="POST",
                     entries=[IndexEntry("string", "family", (f"{family}{i}", family))])
    martin = Match("string", "family", Compare("norm", "prefix", "m"))
    everyone = Match("string", "family", Compare("norm", "prefix", ""))
    rare = Match("string", "family", Compare("norm", "prefix", "martin101"))
    conn = store._reader()
    assert _common_text(conn, "Patient", martin) is False  # half of them: below the threshold, seek
    assert _common_text(conn, "Patient", everyone) is True  # all of them: probe in id order
    page = [r.id for r in store.find("Patient", [everyone], limit=5)]
    assert page == ["p00000", "p00001", "p00002", "p00003", "p00004"]
    martins = [r.id for r, _ in store.page("Patient", [martin], limit=3, after=("p00002",))]
    assert martins == ["p00003", "p00005", "p00007"]
    assert [r.id for r in store.find("Patient", [rare], limit=5)] == ["p00101"]
