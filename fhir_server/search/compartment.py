"""Compartment search (``Patient/123/DocumentReference?…``) from the Patient CompartmentDefinition.

A resource is in the patient's compartment when one of the parameters the definition lists for
its type references the patient (and the Patient itself belongs to its own compartment).
"""

from __future__ import annotations

import json
from functools import cache

from fhir_server.core.errors import FhirError
from fhir_server.search.conditions import Compare, all_of
from fhir_server.store.query import Clause, Either, IdIn, Match
from profiles.definitions import TABLES


@cache
def _members() -> dict[str, tuple[str, ...]]:
    definition = json.loads((TABLES / "compartment-patient.json").read_text())
    return {r["code"]: tuple(r.get("param", ())) for r in definition["resource"]}


def compartment_params(resource_type: str) -> tuple[str, ...]:
    """The reference parameters that put a ``resource_type`` resource in a patient's compartment."""
    return _members().get(resource_type, ())


def compartment_clause(compartment_type: str, compartment_ids: str | tuple[str, ...], resource_type: str) -> Clause:
    """The clause selecting ``resource_type`` resources inside the compartment(s) of these patients."""
    if compartment_type != "Patient":
        raise FhirError(404, "not-supported", f"Compartment '{compartment_type}' is not supported (Patient is)")
    ids = (compartment_ids,) if isinstance(compartment_ids, str) else tuple(compartment_ids)
    if not ids:
        return IdIn(())
    points_here = all_of(Compare("target_type", "=", "Patient"),
                         Compare("target_id", "=", ids[0]) if len(ids) == 1 else Compare("target_id", "in", ids))
    clauses: list[Clause] = [Match("reference", p, points_here) for p in compartment_params(resource_type)]
    if resource_type == "Patient":
        clauses.append(IdIn(ids))
    if not clauses:
        return IdIn(())  # the type has no members in this compartment
    return clauses[0] if len(clauses) == 1 else Either(tuple(clauses))
