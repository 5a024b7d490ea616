"""SMART on FHIR scopes: v2 and v1 syntax, what is ignored, and what a scope set allows."""

from __future__ import annotations

import pytest

from fhir_server.security.scopes import Scope, allows, parse_scope, parse_scopes

ALL = frozenset("cruds")


@pytest.mark.parametrize(("text", "expected"), [
    ("patient/*.rs", Scope("patient", "*", frozenset("rs"))),
    ("user/DocumentReference.cruds", Scope("user", "DocumentReference", ALL)),
    ("system/Patient.c", Scope("system", "Patient", frozenset("c"))),
    ("user/Observation.cu", Scope("user", "Observation", frozenset("cu"))),
    ("patient/Observation.rd", Scope("patient", "Observation", frozenset("rd"))),  # in order: valid
    ("patient/*.s", Scope("patient", "*", frozenset("s"))),
])
def test_v2_scopes(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("patient/*.read", Scope("patient", "*", frozenset("rs"))),
    ("user/Observation.write", Scope("user", "Observation", frozenset("cud"))),
    ("user/*.*", Scope("user", "*", ALL)),
    ("system/*.*", Scope("system", "*", ALL)),
    ("system/Binary.read", Scope("system", "Binary", frozenset("rs"))),
])
def test_v1_scopes_map_to_v2(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize("text", [
    # identity and launch scopes are not resource scopes
    "openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access",
    "online_access",
    # out of order, repeated or unknown letters (the spec's own example is .dus)
    "patient/*.dus", "patient/*.sr", "user/Observation.rr", "user/Observation.x", "user/*.crudsx", "user/*.rw",
    # empty or malformed parts
    "patient/*.", "patient/.rs", "patient/*rs", "patient/*", "/*.rs", "patient/*.READ", "patient/*.Read",
    "Patient/*.rs", "admin/*.rs", "patient/observation.rs", "patient/Observation/1.rs", "patient/**.rs",
    "patient/*.rs.rs", "user/*.writes", "",
])
def test_ignored_scopes(text: str) -> None:
    assert parse_scope(text) is None


@pytest.mark.parametrize("text", [
    "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
    "patient/*.rs?category=laboratory",
    "user/DocumentReference.cruds?type=http://loinc.org|11488-4",
    "patient/*.rs?",
    "patient/Observation.read?category=vital-signs",
])
def test_granular_scopes_grant_nothing(text: str) -> None:
    assert parse_scope(text) is None
    assert not allows(parse_scopes(text), "patient", "Observation", "r")


def test_a_scope_string_keeps_only_resource_scopes_in_order_without_duplicates() -> None:
    text = ("openid fhirUser launch/patient offline_access patient/Observation.rs?category=laboratory "
            "patient/*.rs  user/Observation.write\tpatient/*.rs\npatient/*.dus system/*.*")
    assert parse_scopes(text) == (
        Scope("patient", "*", frozenset("rs")),
        Scope("user", "Observation", frozenset("cud")),
        Scope("system", "*", ALL),
    )


def test_empty_scope_strings() -> None:
    assert parse_scopes("") == ()
    assert parse_scopes("   ") == ()
    assert parse_scopes("openid fhirUser") == ()


def test_patient_wildcard_read_search() -> None:
    scopes = parse_scopes("patient/*.rs")
    for resource_type in ("Patient", "DocumentReference", "Observation"):
        assert allows(scopes, "patient", resource_type, "r")
        assert allows(scopes, "patient", resource_type, "s")
        for letter in "cud":
            assert not allows(scopes, "patient", resource_type, letter)
    # the context must match: a patient scope does not act in user or system context
    assert not allows(scopes, "user", "Patient", "r")
    assert not allows(scopes, "system", "Patient", "r")


def test_typed_scope_covers_only_its_type() -> None:
    scopes = parse_scopes("user/DocumentReference.cruds")
    assert all(allows(scopes, "user", "DocumentReference", letter) for letter in "cruds")
    assert not allows(scopes, "user", "Observation", "r")
    assert not allows(scopes, "user", "*", "r")  # a type named "*" is not a wildcard request


def test_split_scopes_equal_the_compound_one() -> None:
    split = parse_scopes("patient/Observation.r patient/Observation.s")
    compound = parse_scopes("patient/Observation.rs")
    for letter in "cruds":
        assert allows(split, "patient", "Observation", letter) == allows(compound, "patient", "Observation", letter)


def test_union_of_scopes() -> None:
    scopes = parse_scopes("user/Patient.rs user/DocumentReference.c user/*.read")
    assert allows(scopes, "user", "DocumentReference", "c")
    assert allows(scopes, "user", "Appointment", "s")
    assert not allows(scopes, "user", "Appointment", "u")
    assert not allows(scopes, "user", "Patient", "d")


def test_v1_write_does_not_read() -> None:
    scopes = parse_scopes("user/Observation.write")
    assert allows(scopes, "user", "Observation", "c")
    assert allows(scopes, "user", "Observation", "u")
    assert allows(scopes, "user", "Observation", "d")
    assert not allows(scopes, "user", "Observation", "r")
    assert not allows(scopes, "user", "Observation", "s")


def test_no_scopes_allow_nothing() -> None:
    assert not allows((), "patient", "Patient", "r")


@pytest.mark.parametrize("permission", ["", "rs", "x", "R", "read", "*"])
def test_allows_wants_one_permission_letter(permission: str) -> None:
    with pytest.raises(ValueError, match="permission"):
        allows(parse_scopes("user/*.cruds"), "user", "Patient", permission)


def test_scopes_are_frozen_and_hashable() -> None:
    scope = parse_scope("user/*.rs")
    assert scope is not None
    with pytest.raises(AttributeError):
        scope.context = "system"  # type: ignore[misc]
    assert len({scope, parse_scope("user/*.read")}) == 1
