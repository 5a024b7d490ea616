"""Deployment-defined search parameters (``MES_SEARCH_PARAMETERS``): loaded, served, refused when bad.

Each test writes its definitions to a temporary JSON file, points the variable at it and reloads
the registry; the fixture reloads again without the variable, so no other test sees them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from access_world import closure_extension
from search_oracle import engine_search, oracle_search

from fhir_server.app import create_app
from fhir_server.config import SEARCH_PARAMETERS_ENV, load_settings
from fhir_server.http.metadata import capability_statement
from fhir_server.search import registry
from fhir_server.security.space import SPACE_CLOSURE

GROUPE = "https://example.org/fhir/StructureDefinition/groupe-sanguin"
BLOOD_GROUP = {"resourceType": "SearchParameter", "url": "https://example.org/fhir/SearchParameter/groupe-sanguin",
               "name": "GroupeSanguin", "status": "active", "code": "groupe-sanguin", "base": ["Patient"],
               "type": "token", "expression": f"Patient.extension.where(url='{GROUPE}').value"}
DURATION = {"resourceType": "SearchParameter", "url": "https://example.org/fhir/SearchParameter/duree",
            "name": "Duree", "status": "active", "code": "duree", "base": ["Appointment"], "type": "number",
            "expression": "Appointment.minutesDuration"}

Use = Callable[..., Path]


@pytest.fixture
def custom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Use]:
    """``custom(content, ...)``: each content (JSON-able, or raw text) in its own file, all named by the
    variable, then ``registry.reload()``; the registry is back to the built-in definitions afterwards."""

    def use(*contents: object) -> Path:
        paths = []
        for i, content in enumerate(contents):
            path = tmp_path / f"params-{i}.json"
            path.write_text(content if isinstance(content, str) else json.dumps(content))
            paths.append(str(path))
        monkeypatch.setenv(SEARCH_PARAMETERS_ENV, os.pathsep.join(paths))
        registry.reload()
        return Path(paths[0])

    yield use
    monkeypatch.delenv(SEARCH_PARAMETERS_ENV, raising=False)
    registry.reload()


def _patient(ident: str, *groups: str) -> dict:
    extensions = [{"url": GROUPE, "valueCode": group} for group in groups]
    return {"resourceType": "Patient", "id": ident, **({"extension": extensions} if extensions else {})}


def _appointment(ident: str, minutes: int | None) -> dict:
    duration = {} if minutes is None else {"minutesDuration": minutes}
    return {"resourceType": "Appointment", "id": ident, "status": "booked", **duration,
            "participant": [{"status": "accepted", "actor": {"reference": "Patient/a"}}]}


PATIENTS = [_patient("a", "A+"), _patient("b", "O-", "AB+"), _patient("c"),
            {**_patient("d"), "extension": [{"url": "https://example.org/other", "valueCode": "A+"}]}]
APPOINTMENTS = [_appointment("15", 15), _appointment("30", 30), _appointment("31", 31), _appointment("none", None)]


@pytest.mark.parametrize(("query", "expected"), [
    ([("groupe-sanguin", "A+")], {"a"}),
    ([("groupe-sanguin", "AB+,A+")], {"a", "b"}),
    ([("groupe-sanguin:not", "A+")], {"b", "c", "d"}),
    ([("groupe-sanguin:missing", "true")], {"c", "d"}),
])
def test_custom_token_is_indexed_and_searched(custom: Use, query: list[tuple[str, str]], expected: set[str]) -> None:
    custom([BLOOD_GROUP])
    [(found, unsupported)] = engine_search(PATIENTS, "Patient", [query])
    assert (found, unsupported) == (expected, [])
    assert oracle_search(PATIENTS, "Patient", query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("30", {"30"}), ("30.0", {"30"}), ("30.5", set()),  # R4: integers match exactly, "cannot be any matches"
    ("ge30", {"30", "31"}), ("lt30", {"15"}), ("ne30", {"15", "31"}), ("3e1", {"30", "31"}), ("ap30", {"30", "31"}),
])
def test_custom_number_from_a_bundle(custom: Use, query: str, expected: set[str]) -> None:
    custom({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": DURATION}]})
    [(found, unsupported)] = engine_search(APPOINTMENTS, "Appointment", [[("duree", query)]])
    assert (found, unsupported) == (expected, [])
    assert oracle_search(APPOINTMENTS, "Appointment", [("duree", query)]) == expected


def test_several_files_and_the_capability_statement(custom: Use) -> None:
    custom([BLOOD_GROUP], [DURATION])
    assert registry.params_for("Patient")["groupe-sanguin"].type == "token"
    assert registry.params_for("Appointment")["duree"] in registry.indexed_params("Appointment")
    patient = next(r for r in capability_statement("http://test/fhir")["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "groupe-sanguin", "type": "token", "definition": BLOOD_GROUP["url"]} in patient["searchParam"]


def test_reload_without_the_variable_forgets_them(custom: Use, monkeypatch: pytest.MonkeyPatch) -> None:
    custom([DURATION])
    capability_statement("http://test/fhir")
    monkeypatch.delenv(SEARCH_PARAMETERS_ENV)
    registry.reload()
    assert "duree" not in registry.params_for("Appointment")
    served = capability_statement("http://test/fhir")["rest"][0]["resource"]
    appointment = next(r for r in served if r["type"] == "Appointment")
    assert "duree" not in {p["name"] for p in appointment["searchParam"]}
    [(_, unsupported)] = engine_search(APPOINTMENTS, "Appointment", [[("duree", "30")]])
    assert unsupported == ["duree"]


def test_a_later_definition_of_a_code_wins(custom: Use) -> None:
    """Custom files come after the R4 and French ones, so a deployment can redefine a parameter."""
    custom([{**DURATION, "code": "description", "type": "number"}])
    assert registry.params_for("Appointment")["description"].type == "number"


def _bad(**changes: object) -> dict:
    return {k: v for k, v in {**DURATION, **changes}.items() if v is not None}


@pytest.mark.parametrize(("content", "problem"), [
    ("[{", "is not valid JSON"),
    ({"resourceType": "SearchParameter"}, "JSON array of SearchParameter resources or a Bundle"),
    ([_bad(resourceType="StructureDefinition")], "entry 0 ('duree'): not a SearchParameter"),
    ([BLOOD_GROUP, _bad(code=None)], "entry 1: code (the parameter's name in queries) is missing"),
    ([_bad(url=None)], "entry 0 ('duree'): url (the definition's canonical URL, required by R4) is missing"),
    ([_bad(code=7)], "code 7 must be"),
    ([_bad(code="duree.min")], "code 'duree.min' must be"),
    ([_bad(code="_duree")], "code '_duree' must be"),
    ([_bad(type="integer")], "type 'integer' is not an R4 search parameter type"),
    ([_bad(type="special")], "type 'special' cannot be served"),
    ([_bad(base=None)], "base must be a non-empty list"),
    ([_bad(base=["Observation"])], "base ['Observation'] names no type this server serves"),
    ([_bad(expression=None)], "expression (FHIRPath) is required"),
    ([_bad(expression="Observation.valueInteger")], "expression has no branch for base Appointment"),
    ([_bad(expression="Appointment.minutesDuration.frobnicate()")], "expression cannot be evaluated"),
    ([_bad(base=["Resource"], expression="meta.frobnicate()")], "expression cannot be evaluated"),
])
def test_bad_definitions_are_refused_with_the_file_and_the_problem(custom: Use, content: object,
                                                                   problem: str) -> None:
    with pytest.raises(ValueError, match=r"MES_SEARCH_PARAMETERS: .*params-0\.json") as caught:
        custom(content)
    assert problem in str(caught.value)


def test_a_missing_file_is_refused(custom: Use, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEARCH_PARAMETERS_ENV, str(tmp_path / "absent.json"))
    with pytest.raises(ValueError, match="cannot read .*absent.json"):
        registry.reload()


def test_a_bad_file_stops_the_server_at_start_up(custom: Use, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.json").write_text(json.dumps([_bad(type="special")]))
    monkeypatch.setenv(SEARCH_PARAMETERS_ENV, str(tmp_path / "bad.json"))
    for cached in (registry._definitions, registry.params_for, registry.indexed_params):
        cached.cache_clear()  # as in a new process
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "lifespan.startup"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(create_app(load_settings(data_dir=tmp_path))({"type": "lifespan"}, receive, send))
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "bad.json, entry 0 ('duree'): type 'special' cannot be served" in sent[0]["message"]


@pytest.mark.parametrize("path", [".value", ".valueCode", ".value.ofType(code)"])
def test_extension_function_selects_every_repeat(custom: Use, path: str) -> None:
    """``extension('url')`` is ``extension.where(url='url')`` (FHIRPath): every repeat, not the first
    one only (fhirpathpy's, which the engine used to hand such expressions)."""
    custom([{**BLOOD_GROUP, "expression": f"Patient.extension('{GROUPE}'){path}"}])
    for query, expected in (("AB+", {"b"}), ("O-,A+", {"a", "b"})):
        [(found, unsupported)] = engine_search(PATIENTS, "Patient", [[("groupe-sanguin", query)]])
        assert (found, unsupported) == (expected, [])
        assert oracle_search(PATIENTS, "Patient", [("groupe-sanguin", query)]) == expected


def _closed(ident: str, *extensions: dict) -> dict:
    return {"resourceType": "Patient", "id": ident, **({"extension": list(extensions)} if extensions else {})}


CLOSURES = [
    _closed("closed", closure_extension("2026-02-01T10:30:00+01:00", "fermeture à la demande du patient")),
    _closed("last-year", closure_extension("2025-12-31", "décès")),
    _closed("new-year", closure_extension("2026-01-01T00:30:00+01:00", "décès")),  # 2025-12-31T23:30Z
    _closed("open"),
    _closed("no-date", {"url": SPACE_CLOSURE, "extension": [{"url": "reason", "valueString": "décès"}]}),
    _closed("elsewhere", {"url": "https://example.org/fhir/StructureDefinition/autre",
                          "extension": [{"url": "date", "valueDateTime": "2026-03-01"}]}),
]


@pytest.mark.parametrize(("query", "expected"), [
    ([("space-closed", "ge2026-01-01")], {"closed", "new-year"}),
    ([("space-closed", "lt2026-01-01")], {"last-year"}),
    ([("space-closed", "2026-02-01")], {"closed"}),
    ([("space-closed", "ge2026-01-01T00:00:00Z")], {"closed"}),
    ([("space-closed:missing", "true")], {"open", "no-date", "elsewhere"}),
    ([("space-closed:missing", "false")], {"closed", "last-year", "new-year"}),
])
def test_space_closure_date_is_indexed(query: list[tuple[str, str]], expected: set[str]) -> None:
    """The server's own ``space-closed`` (profiles/mes): ``extension('…space-closure').extension('date').value``,
    a dateTime in a sub-extension, found by date and by ``:missing`` (what the access policy asks)."""
    assert registry.params_for("Patient")["space-closed"].expression.endswith(".extension('date').value")
    [(found, unsupported)] = engine_search(CLOSURES, "Patient", [query])
    assert (found, unsupported) == (expected, [])
    assert oracle_search(CLOSURES, "Patient", query) == expected
