"""Persistence behind the small Store protocol; see base.py."""

from fhir_server.store.base import Store


def open_store(settings) -> Store:
    """The embedded SQLite store under the data directory (MongoDB will plug in here)."""
    from fhir_server.store.sqlite import SqliteStore

    return SqliteStore(settings.database_path, synchronous=settings.sqlite_synchronous)


__all__ = ["Store", "open_store"]
