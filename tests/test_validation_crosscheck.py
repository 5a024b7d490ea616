"""Our validator rejects at least what the fhir.resources R4B models reject, on random damage.

fhir.resources is the reference implementation named in the design; we validate against the
R4 definitions ourselves (faster, and stricter where the models are lax), so this test proves
on a few hundred randomly damaged resources that nothing they would refuse gets through.
"""

from __future__ import annotations

import copy
import random
from decimal import Decimal

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_server.core.errors import FhirError
from fhir_server.core.validation import validate_resource
from fhir_server.synthetic import demo_bundle

ODD_VALUES = ["", "yes", 12, True, Decimal("1.5"), [], {}, ["x"], {"x": 1}, "2023-02-30", "not a uri with spaces"]


def _paths(value, prefix=()):
    """Every (path to a value) inside a resource, except resourceType."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "resourceType":
                yield (*prefix, key)
                yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _damage(resource: dict, rng: random.Random) -> dict:
    damaged = copy.deepcopy(resource)
    path = rng.choice(list(_paths(damaged)))
    parent = damaged
    for step in path[:-1]:
        parent = parent[step]
    action = rng.random()
    if action < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
    elif action < 0.3 and isinstance(parent, dict):
        parent[f"unknown{rng.randrange(9)}"] = "x"
    else:
        parent[path[-1]] = rng.choice(ODD_VALUES)
    return damaged


def _model_accepts(resource: dict) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def _we_accept(resource: dict) -> bool:
    try:
        validate_resource(resource)
    except FhirError:
        return False
    return True


@pytest.mark.parametrize("seed", range(4))
def test_nothing_the_models_refuse_gets_through(seed):
    rng = random.Random(seed)
    resources = [e["resource"] for e in demo_bundle(seed + 1)["entry"]]
    refused_by_models = 0
    for _ in range(100):
        damaged = _damage(rng.choice(resources), rng)
        if not _model_accepts(damaged):
            refused_by_models += 1
            assert not _we_accept(damaged), damaged
    assert refused_by_models > 20  # the damage really exercises the models
