"""The PDSm and GAP SearchParameters shipped in profiles/fr (built by profiles.build_fr)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiles.build_r4 import SEARCH_PARAMETER_FIELDS, SERVED

FR = Path(__file__).resolve().parents[1] / "profiles" / "fr" / "search-parameters.json"
PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/SearchParameter/"
GAP = "https://interop.esante.gouv.fr/ig/fhir/gap/SearchParameter/"


@pytest.fixture(scope="module")
def definitions() -> list[dict]:
    assert FR.is_file(), "profiles/fr/search-parameters.json ships with the project"
    return json.loads(FR.read_text())


def _by_code(definitions: list[dict], base: str, code: str) -> list[dict]:
    return [sp for sp in definitions if base in sp["base"] and sp["code"] == code]


def test_sorted_by_url_and_reduced(definitions: list[dict]) -> None:
    urls = [sp["url"] for sp in definitions]
    assert urls == sorted(urls) and len(set(urls)) == len(urls)
    for sp in definitions:
        assert set(sp) <= set(SEARCH_PARAMETER_FIELDS)
        assert SERVED & set(sp["base"]), sp["url"]


@pytest.mark.parametrize(("code", "kind"), [("period-start", "date"), ("period-end", "date"), ("isArchived", "token")])
def test_pdsm_document_reference_parameters(definitions: list[dict], code: str, kind: str) -> None:
    [sp] = _by_code(definitions, "DocumentReference", code)
    assert sp["url"].startswith(PDSM)
    assert sp["type"] == kind
    assert sp["expression"].strip()


def test_pdsm_period_expressions(definitions: list[dict]) -> None:
    [start] = _by_code(definitions, "DocumentReference", "period-start")
    [end] = _by_code(definitions, "DocumentReference", "period-end")
    assert start["expression"] == "DocumentReference.context.period.start"
    assert end["expression"] == "DocumentReference.context.period.end"


def test_is_archived_also_on_list(definitions: list[dict]) -> None:
    [sp] = _by_code(definitions, "List", "isArchived")
    assert "pdsm-ext-is-archived" in sp["expression"]


@pytest.mark.parametrize(("code", "kind"), [("created", "date"), ("description", "string"), ("priority", "token")])
def test_gap_appointment_parameters(definitions: list[dict], code: str, kind: str) -> None:
    [sp] = _by_code(definitions, "Appointment", code)
    assert sp["url"].startswith(GAP)
    assert sp["type"] == kind
    assert sp["expression"].startswith("Appointment.")


def test_gap_start_bounds(definitions: list[dict]) -> None:
    starts = {sp["url"].rsplit("/", 1)[-1]: sp for sp in _by_code(definitions, "Appointment", "start")}
    assert set(starts) == {"GAP-Appointment-earliestStart", "GAP-Appointment-latestStart"}
    assert starts["GAP-Appointment-earliestStart"]["comparator"] == ["gt", "ge"]
    assert starts["GAP-Appointment-latestStart"]["comparator"] == ["lt", "le"]


def test_unserved_types_left_out(definitions: list[dict]) -> None:
    assert not [sp for sp in definitions if "Slot" in sp["base"]]
