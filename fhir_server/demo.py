"""``mes serve --demo``: the synthetic French dataset, loaded once into an empty store."""

from __future__ import annotations

import logging

from fhir_server.core import bundle as processing
from fhir_server.core.repository import Repository
from fhir_server.synthetic import demo_bundle

log = logging.getLogger("mes")


def load_demo(repository: Repository) -> None:
    """Load the demo transaction through the core, unless the store already holds patients."""
    if repository.count("Patient"):
        return
    entries = processing.parse_entries(demo_bundle(), "transaction", "", limit=10_000)
    processing.run_transaction(repository, entries)
    log.info("demo data loaded: %d resources", len(entries))
