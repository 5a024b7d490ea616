"""What the gateway's handlers need to know of the deployment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fhir_server.config import Settings


@dataclass(frozen=True)
class Options:
    create_patients: bool = True  # a document for an unknown INS creates the patient (else 902)
    cda_xsd: Path | None = None
    cda_schematron: Path | None = None
    strict_structure: bool = False  # hl7apy validates each message's structure first (slow)

    @classmethod
    def from_settings(cls, settings: Settings) -> Options:
        return cls(create_patients=settings.cda_unknown_patients == "create",
                   cda_xsd=Path(settings.cda_xsd) if settings.cda_xsd else None,
                   cda_schematron=Path(settings.cda_schematron) if settings.cda_schematron else None,
                   strict_structure=settings.mllp_validation == "strict")
