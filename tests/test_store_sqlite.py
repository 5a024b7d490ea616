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
