"""Searches across links agree with a small oracle: ``:of-type``, ``:identifier``, chains, ``_has``.

Hypothesis draws small sets of Patients, Practitioners, Organizations and DocumentReferences with
explicit ids that refer to each other by local ``Type/id`` references (some dangling), writes them
through the real ``Repository`` into a fresh SQLite file, and compares ``Repository.search`` with an
oracle built here on ``search_oracle`` (FHIRPath per resource): the inner parameter of a chain or
of ``_has`` is evaluated by ``search_oracle.matches`` on the resources the references name.
"""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from search_oracle import engine_search, matches, tokens_of, values_of

from fhir_server.core.validation import validate_resource
from fhir_server.search.registry import params_for

LINKS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
Query = list[tuple[str, str]]

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
FR_TYPES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identifier-type"
ID_TYPES = [(V2, "MR"), (V2, "PI"), (V2, "NH"), (V2, "PPN"), (FR_TYPES, "INS-NIR"), (FR_TYPES, "INS-NIA")]
IDENT_SYSTEMS = ["urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.10", "https://hopital.example.org/ipp"]
IDENT_VALUES = ["1790305123456", "ABC123", "abc123", "42", "2790305123457"]
FAMILY = ["Lefèvre", "LEFEVRE", "Dupont", "Œuvray", "Le Goff"]
GIVEN = ["Hélène", "helene", "Zoë", "Jean-Pierre"]
ORG_NAMES = ["Cabinet Dupont", "Clinique Lefèvre", "Hôpital Œuvray"]
STATUSES = ["current", "superseded", "entered-in-error"]

PATIENT_IDS = ["p1", "p2", "p3", "p4"]
PRACTITIONER_IDS = ["pr1", "pr2", "pr3"]
ORGANIZATION_IDS = ["o1", "o2"]


# --- datatypes ----------------------------------------------------------------------------------

type_codings = st.sampled_from(ID_TYPES).map(lambda t: {"system": t[0], "code": t[1]})
identifiers = st.fixed_dictionaries(
    {"value": st.sampled_from(IDENT_VALUES)},
    optional={"system": st.sampled_from(IDENT_SYSTEMS),
              "type": st.lists(type_codings, min_size=1, max_size=2, unique_by=lambda c: c["code"]).map(
                  lambda cs: {"coding": cs})})
human_names = st.fixed_dictionaries({}, optional={
    "family": st.sampled_from(FAMILY), "given": st.lists(st.sampled_from(GIVEN), min_size=1, max_size=2)}
).filter(bool)


def listed(strategy, max_size: int = 2):
    return st.lists(strategy, min_size=1, max_size=max_size)


def local(types_and_ids: list[tuple[str, str]]):
    """A relative ``Type/id`` reference; some ids are never written (dangling)."""
    return st.sampled_from(types_and_ids).map(lambda t: {"reference": f"{t[0]}/{t[1]}"})


PATIENT_TARGETS = [("Patient", i) for i in PATIENT_IDS + ["p9"]]
GP_TARGETS = ([("Practitioner", i) for i in PRACTITIONER_IDS + ["pr9"]]
              + [("Organization", i) for i in ORGANIZATION_IDS] + [("PractitionerRole", "pr1")])

#: A Reference to a patient: literal only, identifier only, or both.
subject_refs = st.one_of(
    local(PATIENT_TARGETS), local(PATIENT_TARGETS),
    identifiers.map(lambda i: {"identifier": {k: v for k, v in i.items() if k != "type"}}),
    st.tuples(local(PATIENT_TARGETS), identifiers).map(
        lambda t: {**t[0], "identifier": {k: v for k, v in t[1].items() if k != "type"}}),
)


# --- resources ------------------------------------------------------------------------------------

def _patient(ident: str):
    return st.fixed_dictionaries({"resourceType": st.just("Patient"), "id": st.just(ident)}, optional={
        "identifier": listed(identifiers, 3), "name": listed(human_names),
        "generalPractitioner": listed(local(GP_TARGETS)),
    }).filter(lambda p: "identifier" in p or "generalPractitioner" in p)


def _practitioner(ident: str):
    return st.fixed_dictionaries({"resourceType": st.just("Practitioner"), "id": st.just(ident),
                                  "name": listed(human_names)}, optional={"identifier": listed(identifiers)})


def _organization(ident: str):
    return st.fixed_dictionaries({"resourceType": st.just("Organization"), "id": st.just(ident)}, optional={
        "name": st.sampled_from(ORG_NAMES)})


def _document(ident: str):
    return st.fixed_dictionaries({
        "resourceType": st.just("DocumentReference"), "id": st.just(ident),
        "status": st.sampled_from(STATUSES),
        "content": st.just([{"attachment": {"contentType": "application/pdf"}}]),
    }, optional={"subject": subject_refs})


def _some(make, ids: list[str], min_size: int = 0):
    """Resources for a subset of ``ids`` (each id at most once)."""
    return st.lists(st.sampled_from(ids), unique=True, min_size=min_size, max_size=len(ids)).flatmap(
        lambda chosen: st.tuples(*(make(i) for i in chosen)).map(list))


@st.composite
def worlds(draw) -> list[dict]:
    """Patients, Practitioners, Organizations and DocumentReferences that refer to each other."""
    patients = draw(_some(_patient, PATIENT_IDS, 2))
    others = draw(_some(_practitioner, PRACTITIONER_IDS, 1)) + draw(_some(_organization, ORGANIZATION_IDS))
    documents = draw(st.lists(st.sampled_from(range(8)), unique=True, min_size=2, max_size=6).flatmap(
        lambda ns: st.tuples(*(_document(f"d{n}") for n in ns)).map(list)))
    return patients + others + documents


# --- the oracle -------------------------------------------------------------------------------------

def _split(raw: str, sep: str) -> list[str]:
    return re.split(rf"(?<!\\){re.escape(sep)}", raw)


def _token_hit(pairs: list[tuple[str | None, str]], query: str) -> bool:
    parts = _split(query, "|")
    if len(parts) == 1:
        return any(code == parts[0] for _, code in pairs)
    system, code = parts[0] or None, parts[1] or None
    return any(s == system and (code is None or c == code) for s, c in pairs)


def _of_type(resource: dict, code: str, raw: str) -> bool:
    """``[type system]|[type code]|[value]``: an Identifier with that type coding and that value."""
    for alternative in _split(raw, ","):
        system, type_code, value = _split(alternative, "|")
        for ident in values_of(resource, code):
            codings = (ident.get("type") or {}).get("coding", [])
            if ident.get("value") == value and any(
                    c.get("system") == system and c.get("code") == type_code for c in codings):
                return True
    return False


def _by_identifier(resource: dict, code: str, raw: str) -> bool:
    """``:identifier``: a Reference whose ``identifier`` matches the token."""
    pairs = [p for ref in values_of(resource, code) if isinstance(ref, dict) and "identifier" in ref
             for p in tokens_of(ref["identifier"])]
    return any(_token_hit(pairs, alternative) for alternative in _split(raw, ","))


def _targets(resources: list[dict], resource: dict, code: str) -> list[dict]:
    """The written resources that the parameter's local ``Type/id`` references name."""
    by_key = {(r["resourceType"], r["id"]): r for r in resources}
    out = []
    for ref in values_of(resource, code):
        match = re.fullmatch(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]+)", (ref or {}).get("reference", ""))
        if match and (match[1], match[2]) in by_key:
            out.append(by_key[(match[1], match[2])])
    return out


def oracle(resources: list[dict], resource_type: str, query: Query) -> set[str]:
    def one(resource: dict, name: str, raw: str) -> bool:
        if name.startswith("_has:"):
            _, source, link, inner = name.split(":", 3)
            return any(resource in _targets(resources, source_resource, link) and matches(source_resource, inner, raw)
                       for source_resource in resources if source_resource["resourceType"] == source)
        if "." in name:
            link, inner = name.split(".", 1)
            return any(matches(target, inner, raw) for target in _targets(resources, resource, link)
                       if inner in _inner_params(target["resourceType"]))
        code, _, modifier = name.partition(":")
        if modifier == "of-type":
            return _of_type(resource, code, raw)
        if modifier == "identifier":
            return _by_identifier(resource, code, raw)
        return matches(resource, name, raw)

    return {r["id"] for r in resources if r["resourceType"] == resource_type
            and all(one(r, name, raw) for name, raw in query)}


def _inner_params(resource_type: str) -> set[str]:
    return set(params_for(resource_type))


# --- the comparison ---------------------------------------------------------------------------------

def assert_agree(resources: list[dict], resource_type: str, searches: list[Query]) -> None:
    for query, (found, unsupported) in zip(searches, engine_search(resources, resource_type, searches), strict=True):
        expected = oracle(resources, resource_type, query)
        if found == expected and not unsupported:
            continue
        raise AssertionError(
            f"{resource_type}?{'&'.join(f'{n}={v}' for n, v in query)}\n"
            f"engine: {sorted(found)}  oracle: {sorted(expected)}  unsupported: {unsupported}\n"
            "resources:\n" + "\n".join(json.dumps(r, ensure_ascii=False) for r in resources))


# --- query values -------------------------------------------------------------------------------------

def _all_identifiers(resources: list[dict]) -> list[dict]:
    found = [i for r in resources for i in r.get("identifier", [])]
    found += [r["subject"]["identifier"] for r in resources if "identifier" in r.get("subject", {})]
    return found


@st.composite
def of_type_values(draw, resources: list[dict]) -> str:
    """``system|code|value`` from a drawn identifier, or one part changed, or an unrelated one."""
    typed = [(c["system"], c["code"], i["value"]) for i in _all_identifiers(resources)
             for c in (i.get("type") or {}).get("coding", [])]
    system, code = draw(st.sampled_from(ID_TYPES))
    base = draw(st.sampled_from(typed)) if typed and draw(st.integers(0, 3)) else (system, code,
                                                                                 draw(st.sampled_from(IDENT_VALUES)))
    part = draw(st.sampled_from([None, None, 0, 1, 2]))
    if part is not None:
        base = list(base)
        base[part] = [system, code, draw(st.sampled_from(IDENT_VALUES))][part]
    return "|".join(base)


@st.composite
def identifier_values(draw, resources: list[dict]) -> str:
    """``system|value``, ``value`` or ``system|`` from identifiers in the world (mostly) or the pools."""
    known = _all_identifiers(resources)
    ident = draw(st.sampled_from(known)) if known and draw(st.integers(0, 3)) else draw(identifiers)
    system = ident.get("system") or draw(st.sampled_from(IDENT_SYSTEMS))
    form = draw(st.sampled_from(["system|value", "value", "system|", "other-system"]))
    return {"system|value": f"{system}|{ident['value']}", "value": ident["value"], "system|": f"{system}|",
            "other-system": f"urn:other|{ident['value']}"}[form]


@st.composite
def name_values(draw, resources: list[dict]) -> str:
    """A name part of a Practitioner or an Organization (mostly), maybe cut short, or from the pools."""
    known = [r["name"] for r in resources if r["resourceType"] == "Organization" and "name" in r]
    known += [part for r in resources if r["resourceType"] == "Practitioner" for n in r["name"]
              for part in [n.get("family"), *n.get("given", [])] if part]
    if known and draw(st.integers(0, 3)):
        text = draw(st.sampled_from(known))
        return text[:draw(st.integers(1, len(text)))]
    return draw(st.sampled_from(FAMILY + GIVEN + ORG_NAMES + ["lef", "hel", "cab", "xyz"]))


# --- properties ---------------------------------------------------------------------------------------

@LINKS
@given(st.data())
def test_generated_worlds_are_valid(data: st.DataObject) -> None:
    for resource in data.draw(worlds()):
        validate_resource(resource)


@LINKS
@given(st.data())
def test_identifier_of_type(data: st.DataObject) -> None:
    resources = data.draw(worlds(), label="resources")
    searches = data.draw(st.lists(st.builds(lambda v: [("identifier:of-type", v)], of_type_values(resources)),
                                  min_size=1, max_size=4), label="searches")
    assert_agree(resources, "Patient", searches)


@LINKS
@given(st.data())
def test_reference_identifier(data: st.DataObject) -> None:
    resources = data.draw(worlds(), label="resources")
    searches = data.draw(st.lists(st.builds(lambda v: [("subject:identifier", v)], identifier_values(resources)),
                                  min_size=1, max_size=4), label="searches")
    assert_agree(resources, "DocumentReference", searches)


@LINKS
@given(st.data())
def test_chain_patient_identifier(data: st.DataObject) -> None:
    resources = data.draw(worlds(), label="resources")
    searches = data.draw(st.lists(st.builds(lambda v: [("patient.identifier", v)], identifier_values(resources)),
                                  min_size=1, max_size=4), label="searches")
    assert_agree(resources, "DocumentReference", searches)


@LINKS
@given(st.data())
def test_chain_general_practitioner_name(data: st.DataObject) -> None:
    resources = data.draw(worlds(), label="resources")
    searches = data.draw(st.lists(st.builds(lambda v: [("general-practitioner.name", v)], name_values(resources)),
                                  min_size=1, max_size=4), label="searches")
    assert_agree(resources, "Patient", searches)


@LINKS
@given(st.data())
def test_has_document_reference_status(data: st.DataObject) -> None:
    resources = data.draw(worlds(), label="resources")
    searches = data.draw(st.lists(st.builds(lambda v: [("_has:DocumentReference:patient:status", v)],
                                            st.sampled_from(STATUSES + ["current,superseded"])),
                                  min_size=1, max_size=4), label="searches")
    assert_agree(resources, "Patient", searches)
