"""Pure value modules for string, token, reference and uri search parameters."""

from __future__ import annotations

import pytest

from fhir_server.core.errors import FhirError
from fhir_server.search.conditions import AnyOf, Compare
from fhir_server.search.values.reference import (
    Ref,
    RefQuery,
    parse_reference,
    reference_identifiers,
    references,
)
from fhir_server.search.values.string import fold, string_values
from fhir_server.search.values.token import (
    Token,
    TokenQuery,
    identifier_types,
    parse_of_type,
    parse_token,
    split_unescaped,
    texts,
    tokens,
)
from fhir_server.search.values.uri import above_condition, below_condition, is_below, uri_ancestors, uri_values

LOCAL = "https://mes.example.fr/fhir"


# --------------------------------------------------------------------------------------------------
# string

@pytest.mark.parametrize(("left", "right"), [
    ("Hélène", "HELENE"),
    ("Françoise", "FRANCOISE"),
    ("Zoë", "zoe"),
    ("Anaïs Lefèvre", "anais lefevre"),
    ("Gérald  \t Dupont ", "gerald dupont"),
    ("Straße", "STRASSE"),
    ("ÆLIS", "aelis"),
])
def test_fold_is_case_and_accent_insensitive(left: str, right: str) -> None:
    assert fold(left) == fold(right)


@pytest.mark.parametrize(("text", "folded"), [
    ("Œuvray", "oeuvray"),
    ("Dubœuf", "duboeuf"),
    ("Ç", "c"),
    ("Zoë", "zoe"),
    ("Jean-Baptiste", "jean-baptiste"),
    ("  Marie   Claire\u00a0Dupont  ", "marie claire dupont"),
    ("Søren Łukasz Đorđe Þór", "soren lukasz dorde thor"),
    ("D’Alembert", "d'alembert"),
    ("Ŝaint-Émilion (33)", "saint-emilion (33)"),
])
def test_fold_examples(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_fold_is_idempotent() -> None:
    for text in ("Œuvray", "Hélène", "Straße", "Jean-Baptiste"):
        assert fold(fold(text)) == fold(text)


def test_string_values_of_human_name() -> None:
    name = {"use": "official", "family": "Dubœuf", "given": ["Hélène", "Marie"], "prefix": ["Mme"],
            "suffix": ["PhD"], "text": "Mme Hélène Marie Dubœuf"}
    assert string_values(name) == ["Dubœuf", "Hélène", "Marie", "Mme", "PhD", "Mme Hélène Marie Dubœuf"]


def test_string_values_of_address() -> None:
    address = {"use": "home", "line": ["3 rue de la Paix", "Bât. B"], "city": "Paris", "district": "Paris",
               "state": "Île-de-France", "postalCode": "75002", "country": "FR", "text": "3 rue de la Paix"}
    assert string_values(address) == ["3 rue de la Paix", "Bât. B", "Paris", "Paris", "Île-de-France", "75002",
                                      "FR", "3 rue de la Paix"]


def test_string_values_of_other_values() -> None:
    assert string_values("Compte rendu") == ["Compte rendu"]
    assert string_values({"text": "**markdown** note", "time": "2024-01-01"}) == ["**markdown** note"]
    assert string_values({"system": "http://loinc.org", "code": "11488-4"}) == []
    assert string_values({"coding": [{"code": "x"}], "text": "concept"}) == []
    assert string_values(True) == []
    assert string_values(3) == []
    assert string_values(None) == []


# --------------------------------------------------------------------------------------------------
# token values

LOINC = "http://loinc.org"
INS = "urn:oid:1.2.250.1.213.1.4.8"


def test_tokens_of_coding() -> None:
    coding = {"system": LOINC, "code": "11488-4", "display": "Consultation note"}
    assert tokens(coding) == [Token(LOINC, "11488-4", "Consultation note")]
    assert texts(coding) == ["Consultation note"]


def test_tokens_of_codeable_concept() -> None:
    concept = {"coding": [{"system": LOINC, "code": "11488-4", "display": "Consult note"},
                          {"system": "urn:oid:1.2.250.1.213.1.1.4.12", "code": "CR-CONS"}],
               "text": "Compte rendu de consultation"}
    assert tokens(concept) == [Token(LOINC, "11488-4", "Compte rendu de consultation"),
                               Token("urn:oid:1.2.250.1.213.1.1.4.12", "CR-CONS", "Compte rendu de consultation")]
    assert texts(concept) == ["Compte rendu de consultation", "Consult note"]


def test_codeable_concept_with_only_text_has_no_token_but_text() -> None:
    assert tokens({"text": "Allergie aux arachides"}) == []
    assert texts({"text": "Allergie aux arachides"}) == ["Allergie aux arachides"]


def test_codeable_concept_coding_display_when_no_text() -> None:
    assert tokens({"coding": [{"system": LOINC, "code": "x", "display": "X"}]}) == [Token(LOINC, "x", "X")]


def test_tokens_of_identifier() -> None:
    ident = {"use": "official", "system": INS, "value": "248092A014003",
             "type": {"coding": [{"system": "http://interopsante.org/CodeSystem/v2-0203", "code": "INS-NIR"}],
                      "text": "NIR"}}
    assert tokens(ident) == [Token(INS, "248092A014003", "NIR")]
    assert texts(ident) == ["NIR"]
    assert identifier_types(ident) == [("http://interopsante.org/CodeSystem/v2-0203", "INS-NIR", "248092A014003")]


def test_identifier_without_system_or_type() -> None:
    assert tokens({"value": "12345"}) == [Token(None, "12345", None)]
    assert identifier_types({"value": "12345"}) == []
    assert texts({"value": "12345"}) == []


def test_tokens_of_contact_point_use_value_only() -> None:
    phone = {"system": "phone", "value": "+33 6 12 34 56 78", "use": "mobile"}
    assert tokens(phone) == [Token(None, "+33 6 12 34 56 78", None)]
    assert tokens({"system": "email", "value": "a@b.fr"}) == [Token(None, "a@b.fr", None)]
    assert identifier_types(phone) == []


def test_tokens_of_primitives() -> None:
    assert tokens("final") == [Token(None, "final", None)]
    assert tokens(True) == [Token(None, "true", None)]
    assert tokens(False) == [Token(None, "false", None)]
    assert tokens(12) == []
    assert tokens(None) == []
    assert tokens({"start": "2024"}) == []
    assert texts("final") == []


# --------------------------------------------------------------------------------------------------
# token queries

@pytest.mark.parametrize(("raw", "query"), [
    ("11488-4", TokenQuery(None, "11488-4", True)),
    (f"{LOINC}|11488-4", TokenQuery(LOINC, "11488-4", False)),
    ("|11488-4", TokenQuery(None, "11488-4", False)),
    (f"{LOINC}|", TokenQuery(LOINC, None, False)),
    (r"a\,b", TokenQuery(None, "a,b", True)),
    (r"a\|b", TokenQuery(None, "a|b", True)),
    (r"sys|a\|b", TokenQuery("sys", "a|b", False)),
    (r"sys\|x|code", TokenQuery("sys|x", "code", False)),
    (r"cost\$", TokenQuery(None, "cost$", True)),
    ("a\\\\|b", TokenQuery("a\\", "b", False)),  # escaped backslash, then a real bar
    (r"C:\dir", TokenQuery(None, r"C:\dir", True)),  # unknown escape kept as written
])
def test_parse_token(raw: str, query: TokenQuery) -> None:
    assert parse_token(raw) == query


@pytest.mark.parametrize("raw", ["", "|", "a|b|c"])
def test_parse_token_rejects(raw: str) -> None:
    with pytest.raises(FhirError) as err:
        parse_token(raw)
    assert err.value.status == 400
    assert err.value.issues[0].code == "invalid"


def test_split_unescaped_maxsplit() -> None:
    assert split_unescaped("a|b|c", maxsplit=1) == ["a", "b|c"]


def test_parse_of_type() -> None:
    assert parse_of_type("http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053") == (
        "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "446053")
    for bad in ("MR|446053", "s||v", "s|c|v|x"):
        with pytest.raises(FhirError) as err:
            parse_of_type(bad)
        assert err.value.status == 400


# --------------------------------------------------------------------------------------------------
# reference values

def test_relative_reference() -> None:
    assert references({"reference": "Patient/123"}) == [Ref("Patient", "123", None, None)]


def test_versioned_reference() -> None:
    assert references({"reference": "Patient/123/_history/2"}) == [Ref("Patient", "123", "2", None)]


def test_absolute_local_reference_is_relative() -> None:
    assert references({"reference": f"{LOCAL}/Patient/123"}, local_base=LOCAL) == [Ref("Patient", "123", None, None)]
    assert references({"reference": f"{LOCAL}/Patient/123"}, local_base=LOCAL + "/") == [
        Ref("Patient", "123", None, None)]


def test_absolute_foreign_reference_keeps_url() -> None:
    url = "http://other.example.org/fhir/Practitioner/abc/_history/3"
    assert references({"reference": url}, local_base=LOCAL) == [Ref("Practitioner", "abc", "3", url)]
    assert references({"reference": f"{LOCAL}/Patient/1"}) == [Ref("Patient", "1", None, f"{LOCAL}/Patient/1")]


def test_absolute_reference_without_type_id_tail() -> None:
    url = "http://other.example.org/some/thing"
    assert references({"reference": url}) == [Ref(None, None, None, url)]


def test_urn_uuid_reference() -> None:
    urn = "urn:uuid:4c1b3a9e-0c43-4b38-9a4e-1f0e9e5b2d01"
    assert references({"reference": urn}) == [Ref(None, None, None, urn)]
    assert references({"reference": urn, "type": "Patient"}) == [Ref("Patient", None, None, urn)]


def test_contained_reference_is_skipped_unless_its_type_is_known() -> None:
    assert references({"reference": "#p1"}) == []
    assert references({"reference": "#p1"}, lambda cid: "Patient" if cid == "p1" else None) == [
        Ref("Patient", None, None, "#p1")]
    assert references({"reference": "#other"}, lambda cid: None) == []


def test_canonical_reference() -> None:
    url = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-simplified-publish"
    assert references(url) == [Ref(None, None, None, url)]
    assert references(url + "|3.1.1") == [Ref(None, None, "3.1.1", url)]


def test_reference_without_literal() -> None:
    ident_only = {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810000000001"}, "display": "Dr X"}
    assert references(ident_only) == []
    assert reference_identifiers(ident_only) == [("urn:oid:1.2.250.1.71.4.2.1", "810000000001")]
    assert reference_identifiers({"reference": "Patient/1"}) == []
    assert references({"display": "x"}) == []
    assert references(None) == []


# --------------------------------------------------------------------------------------------------
# reference queries

@pytest.mark.parametrize(("raw", "modifier", "query"), [
    ("123", None, RefQuery(None, "123", None, None)),
    ("123", "Patient", RefQuery("Patient", "123", None, None)),
    ("Patient/123", None, RefQuery("Patient", "123", None, None)),
    ("Patient/123", "Patient", RefQuery("Patient", "123", None, None)),
    ("Patient/123/_history/2", None, RefQuery("Patient", "123", "2", None)),
    (f"{LOCAL}/Patient/123", None, RefQuery("Patient", "123", None, None)),
    (f"{LOCAL}/Patient/123/_history/4", None, RefQuery("Patient", "123", "4", None)),
    ("http://other.org/fhir/Patient/9", None, RefQuery(None, None, None, "http://other.org/fhir/Patient/9")),
    ("http://other.org/fhir/Patient/9", "Patient", RefQuery("Patient", None, None, "http://other.org/fhir/Patient/9")),
    ("urn:uuid:1234", None, RefQuery(None, None, None, "urn:uuid:1234")),
    ("http://x.org/Questionnaire/q|2.0", None, RefQuery(None, None, "2.0", "http://x.org/Questionnaire/q")),
])
def test_parse_reference(raw: str, modifier: str | None, query: RefQuery) -> None:
    assert parse_reference(raw, modifier, LOCAL) == query


@pytest.mark.parametrize(("raw", "modifier"), [
    ("", None),
    ("Patient/123", "Practitioner"),
    ("patient/123", None),
    ("Patient/", None),
    ("Patient/12 3", None),
    ("a b", None),
    ("123", "patient"),
    (f"{LOCAL}/not a ref", None),
])
def test_parse_reference_rejects(raw: str, modifier: str | None) -> None:
    with pytest.raises(FhirError) as err:
        parse_reference(raw, modifier, LOCAL)
    assert err.value.status == 400
    assert err.value.issues[0].code == "invalid"


def test_local_base_is_optional() -> None:
    assert parse_reference(f"{LOCAL}/Patient/1", None, None) == RefQuery(None, None, None, f"{LOCAL}/Patient/1")


# --------------------------------------------------------------------------------------------------
# uri

def test_uri_values() -> None:
    assert uri_values("http://acme.org/fhir/ValueSet/1") == ["http://acme.org/fhir/ValueSet/1"]
    assert uri_values("http://acme.org/fhir/ValueSet/1|2.0") == ["http://acme.org/fhir/ValueSet/1|2.0",
                                                                "http://acme.org/fhir/ValueSet/1"]
    assert uri_values({"url": "x"}) == []
    assert uri_values("") == []


def test_uri_ancestors() -> None:
    assert uri_ancestors("http://acme.org/fhir/ValueSet/123") == [
        "http://acme.org/fhir/ValueSet/123", "http://acme.org/fhir/ValueSet/123/",
        "http://acme.org/fhir/ValueSet", "http://acme.org/fhir/ValueSet/",
        "http://acme.org/fhir", "http://acme.org/fhir/",
        "http://acme.org", "http://acme.org/",
    ]
    assert uri_ancestors("http://acme.org/fhir/|1.0")[:3] == ["http://acme.org/fhir/", "http://acme.org/fhir",
                                                              "http://acme.org"]
    assert uri_ancestors("urn:oid:1.2.250.1.213") == ["urn:oid:1.2.250.1.213"]


def test_below_matches_whole_segments() -> None:
    assert is_below("http://acme.org/fhir/ValueSet/123", "http://acme.org/fhir/")
    assert is_below("http://acme.org/fhir", "http://acme.org/fhir/")
    assert is_below("http://acme.org/fhir/", "http://acme.org/fhir")
    assert not is_below("http://acme.org/fhirx/ValueSet", "http://acme.org/fhir")
    assert below_condition("http://acme.org/fhir/") == AnyOf((Compare("uri", "=", "http://acme.org/fhir"),
                                                             Compare("uri", "prefix", "http://acme.org/fhir/")))


def test_above_is_equality_on_ancestors() -> None:
    cond = above_condition("http://acme.org/fhir/ValueSet/123", column="value")
    assert isinstance(cond, AnyOf)
    wanted = {part.value for part in cond.parts}
    assert "http://acme.org/fhir/" in wanted and "http://acme.org/fhir/ValueSet/123" in wanted
    assert all(part.op == "=" and part.column == "value" for part in cond.parts)
    # above and below agree: stored is above query exactly when query is below stored
    for stored in ("http://acme.org/fhir/", "http://acme.org/fhir/ValueSet", "http://acme.org/fhirx"):
        assert (stored in wanted) == is_below("http://acme.org/fhir/ValueSet/123", stored)
