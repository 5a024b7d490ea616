"""The patient's health space: open or closed (Mon Espace Santé account lifecycle, §4.3).

A closed space keeps its data, readable by the patient, but refuses new documents, messages and
appointments on every door, and professionals no longer reach it. Closure is recorded on the
Patient with the extension below (sub-extensions ``date`` and ``reason``); the server's own
search parameter ``space-closed`` indexes its date, so the policy can ask for open spaces only.
"""

from __future__ import annotations

MES_CANONICAL = "https://mes-interop.org/fhir"
SPACE_CLOSURE = f"{MES_CANONICAL}/StructureDefinition/space-closure"

#: Resource types a closed space no longer accepts (new ones: existing ones stay readable).
REFUSED_WHEN_CLOSED = frozenset({"DocumentReference", "Communication", "Appointment", "Binary", "List"})


def closure(patient: dict) -> dict | None:
    """The closure extension of a Patient, or None while the space is open."""
    return next((e for e in patient.get("extension", ()) if e.get("url") == SPACE_CLOSURE), None)
